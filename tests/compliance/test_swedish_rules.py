"""Layer 3: each named Swedish rule passes good payloads and catches a broken one.

The broken payloads are in the negative corpus (one or more per rule, checked there); here the
good ones, the table itself and the configuration-as-data behaviour.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from adapter.compliance import ValidationContext, has_errors, validate
from adapter.compliance import swedish
from adapter.compliance.outcome import rule_of
from mappings import identifiers, systems
from tests.compliance.conftest import HERE, load

PNR = identifiers.with_check_digit("19380214238")
SAMORDNING = identifiers.with_check_digit("19380274238")


def errors(outcome: dict, rule: str) -> list[dict]:
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal") and rule_of(i) == rule]


def patient(**extra) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": systems.PERSONNUMMER, "value": PNR}], "name": [{"family": "Berglund"}], **extra}


def test_every_rule_has_a_negative_case():
    covered = {e["rule"] for p in (HERE / "negative").glob("*.json") for e in load(p)["expect"]}
    missing = [r.id for r in swedish.RULES if r.id not in covered]
    assert not missing


def test_rule_ids_are_unique_and_named():
    ids = [r.id for r in swedish.RULES]
    assert len(ids) == len(set(ids)) and all(i.startswith("se-") and r.title for i, r in zip(ids, swedish.RULES))


# --- se-personnummer ---------------------------------------------------------------------
def test_valid_personnummer_and_samordningsnummer_pass():
    assert not errors(validate(patient()), "se-personnummer")
    good = patient(identifier=[{"system": systems.SAMORDNINGSNUMMER, "value": SAMORDNING}])
    assert not errors(validate(good), "se-personnummer")


def test_personnummer_in_a_reference_identifier_is_checked():
    task = {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"identifier": {"system": systems.PERSONNUMMER, "value": "193802142385"}}}
    found = errors(validate(task), "se-personnummer")
    assert [i["expression"] for i in found] == [["Task.for.identifier.value"]]


def test_personnummer_message_is_masked():
    text = errors(validate(patient(identifier=[{"system": systems.PERSONNUMMER, "value": "193802142385"}])), "se-personnummer")[0]["details"]["text"]
    assert "193802142385" not in text


# --- se-protected-identity -----------------------------------------------------------------
def test_protected_person_without_contact_data_passes():
    label = {"security": [{"system": systems.CS_SECURITY_LABEL_SE, "code": systems.SECURITY_SKYDDAD_FOLKBOKFORING}]}
    assert not errors(validate(patient(meta=label)), "se-protected-identity")
    assert not errors(validate(patient(address=[{"city": "Handen"}])), "se-protected-identity")  # not protected


# --- se-consent, se-sip-responsibility, se-activity-goal, se-activity-responsibility -----------
@pytest.fixture(scope="module")
def sip_bundle() -> dict:
    return load(HERE / "negative" / next(p.name for p in (HERE / "negative").glob("*se-consent-expired.json")))["resource"]


def test_sip_with_consent_in_scope_passes(sip_bundle):
    outcome = validate(sip_bundle, context=ValidationContext(today=dt.date(2026, 6, 15)))
    for rule in ("se-consent", "se-sip-responsibility", "se-activity-goal", "se-activity-responsibility"):
        assert not errors(outcome, rule), rule


def test_consent_not_yet_valid_is_out_of_scope(sip_bundle):
    outcome = validate(sip_bundle, context=ValidationContext(today=dt.date(2026, 1, 1)))
    assert errors(outcome, "se-consent")


def test_transfer_within_one_huvudman_needs_no_consent():
    decision = load(next((HERE / "negative").glob("*se-consent-decision-to-region.json")))["resource"]
    assert not errors(validate(decision), "se-consent")
    same = ValidationContext(sender_huvudman="kommun", receiver_huvudman="kommun")
    assert not errors(validate(decision, context=same), "se-consent")


def test_legal_basis_exemption_is_configuration(monkeypatch):
    decision = load(next((HERE / "negative").glob("*se-consent-decision-to-region.json")))["resource"]
    ctx = ValidationContext(sender_huvudman="kommun", receiver_huvudman="region")
    assert errors(validate(decision, context=ctx), "se-consent")
    cfg = copy.deepcopy(swedish.config())
    cfg["consent"]["exemptions"].append({"system": systems.CS_LEGAL_BASIS, "code": "sol-4-1", "basis": "test basis"})
    monkeypatch.setattr(swedish, "config", lambda: cfg)
    outcome = validate(decision, context=ctx)
    assert not errors(outcome, "se-consent")
    assert any("test basis" in i["details"]["text"] for i in outcome["issue"])


def test_discharge_message_is_exempt_by_law():
    message = load(next((HERE / "negative").glob("*se-minimisation-patient-address.json")))["resource"]
    message = copy.deepcopy(message)
    for e in message["entry"]:
        e["resource"].pop("address", None)
    outcome = validate(message)
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] == "error"]
    assert any(rule_of(i) == "se-consent" and i["severity"] == "information" for i in outcome["issue"])


def test_skip_rules_leaves_a_rule_out():
    bad = patient(identifier=[{"system": systems.PERSONNUMMER, "value": "193802142385"}])
    assert not errors(validate(bad, context=ValidationContext(skip_rules=frozenset({"se-personnummer"}))), "se-personnummer")


# --- se-delegation ------------------------------------------------------------------------------
@pytest.mark.parametrize("role,task,bad", [
    ("underskoterska", "lakemedelsordination", True),
    ("sjukskoterska", "lakemedelsordination", False),
    ("underskoterska", "lakemedelsoverlamning", False),
    ("omsorgspersonal", "dodsfallsbekraftelse", True),
])
def test_delegation(role, task, bad):
    case = copy.deepcopy(load(next((HERE / "negative").glob("*se-delegation-ordination-to-care-staff.json")))["resource"])
    case["entry"][0]["resource"]["qualification"][0]["code"]["coding"][0]["code"] = role
    case["entry"][1]["resource"]["code"]["coding"][0]["code"] = task
    assert bool(errors(validate(case), "se-delegation")) is bad


def test_task_focused_on_a_medication_order_counts_as_ordination():
    case = copy.deepcopy(load(next((HERE / "negative").glob("*se-delegation-ordination-to-care-staff.json")))["resource"])
    task = case["entry"][1]["resource"]
    task.pop("code")
    case["entry"].append({"fullUrl": "urn:uuid:0f6b1d9e-7a2c-4a4e-8d3e-2b6f0c9a1e09", "resource": {"resourceType": "MedicationRequest", "status": "draft", "intent": "proposal", "medicationCodeableConcept": {"text": "Alvedon"}, "subject": {"reference": "Patient/p1"}}})
    task["focus"] = {"reference": "urn:uuid:0f6b1d9e-7a2c-4a4e-8d3e-2b6f0c9a1e09"}
    assert errors(validate(case), "se-delegation")


# --- se-data-minimisation --------------------------------------------------------------------------
def test_planning_information_may_carry_more_than_an_admission_notice():
    case = copy.deepcopy(load(next((HERE / "negative").glob("*se-minimisation-extra-resource.json")))["resource"])
    header = case["entry"][0]["resource"]
    header["eventCoding"]["code"] = "planeringsinformation"
    assert not errors(validate(case), "se-data-minimisation")
