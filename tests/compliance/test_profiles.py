"""Layer 2: the carebridge profiles fit what the mappings produce, stay generated, and extend by data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adapter.compliance import build_profiles, build_rules, has_errors, registry as registry_mod, validate
from adapter.compliance.outcome import rule_of
from mappings import decision, systems
from mappings.models.decision import CareDecision

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "fixtures" / "decision").glob("*.json"))
PROFILES = Path(build_profiles.__file__).with_name("profiles")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_decision_bundles_conform(path):
    bundle = decision.to_fhir(CareDecision.model_validate_json(path.read_text("utf-8")))
    outcome = validate(bundle)
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] == "error"]
    claimed = {p for e in bundle["entry"] for p in e["resource"].get("meta", {}).get("profile", ())}
    assert claimed <= set(registry_mod.registry().profiles)


def test_decision_profiles_are_the_ones_in_systems():
    reg = registry_mod.registry()
    for url in (systems.PROFILE_DECISION_SERVICE_REQUEST, systems.PROFILE_PROVIDER_TASK, systems.PROFILE_DECISION_CAREPLAN, systems.PROFILE_GOAL):
        assert url in reg.profiles
    for url in (systems.EXT_FEE_EXEMPT, systems.EXT_TIME_STRICTNESS, systems.EXT_FRAMEWORK_DECISION):
        assert url in reg.extensions


def test_every_profile_invariant_compiles():
    reg = registry_mod.registry()
    bad = []
    for profile in reg.profiles.values():
        todo = [profile.root]
        while todo:
            node = todo.pop()
            bad += [(profile.url, inv.key, inv.problem) for inv in node.constraints if inv.fn is None]
            todo += [*node.children.values(), *node.slices.values()]
    assert not bad


def test_snapshots_are_generated_and_current(r4_package):
    stale = [name for name, text in build_profiles.build(r4_package).items() if (PROFILES / name).read_text("utf-8") != text]
    assert not stale, f"run python -m adapter.compliance.build_profiles: {stale}"


def test_compiled_r4_rules_are_current(r4_package):
    assert build_rules.render(build_rules.build(r4_package)) == build_rules.OUT.read_text("utf-8"), "run python -m adapter.compliance.build_rules"


def test_unknown_claimed_profile_is_a_warning_not_an_error():
    res = {"resourceType": "Patient", "meta": {"profile": [systems.BASE + "/StructureDefinition/cb-not-yet-written"]}}
    outcome = validate(res)
    assert not has_errors(outcome)
    assert [rule_of(i) for i in outcome["issue"] if i["severity"] == "warning"] == ["profile-unknown"]


def test_profile_argument_on_a_bundle_checks_its_entries():
    bundle = decision.to_fhir(CareDecision.model_validate_json(FIXTURES[0].read_text("utf-8")))
    bundle = copy.deepcopy(bundle)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "ServiceRequest":
            e["resource"].pop("meta")  # no claim: only --profile makes it checked
            e["resource"]["identifier"] = e["resource"]["identifier"][1:]
    assert not has_errors(validate(bundle))
    outcome = validate(bundle, systems.PROFILE_DECISION_SERVICE_REQUEST)
    assert any(rule_of(i) == "profile-cardinality" for i in outcome["issue"] if i["severity"] == "error")


def test_adding_a_profile_is_dropping_a_json_file(monkeypatch):
    url = systems.BASE + "/StructureDefinition/cb-test-patient"
    sd = {
        "resourceType": "StructureDefinition", "url": url, "name": "CbTestPatient", "status": "draft", "kind": "resource",
        "abstract": False, "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "differential": {"element": [
            {"id": "Patient", "path": "Patient", "constraint": [{"key": "cb-test-1", "severity": "error", "human": "needs a birth date", "expression": "birthDate.exists()"}]},
            {"id": "Patient.name", "path": "Patient.name", "min": 1},
        ]},
    }
    docs = [*registry_mod._documents(), json.loads(json.dumps(sd))]
    monkeypatch.setattr(registry_mod, "_documents", lambda: docs)
    registry_mod.registry.cache_clear()
    try:
        outcome = validate({"resourceType": "Patient", "meta": {"profile": [url]}})
        rules = sorted(rule_of(i) for i in outcome["issue"] if i["severity"] == "error")
        assert rules == ["cb-test-1", "profile-cardinality"]
    finally:
        registry_mod.registry.cache_clear()
