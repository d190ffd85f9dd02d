"""The decision ⇄ FHIR mapping on the fixtures: shape, idempotency keys, reference model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mappings import decision, systems
from mappings.models.decision import CareDecision

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "decision").glob("*.json"))


def load(name: str) -> CareDecision:
    return CareDecision.model_validate_json(Path(__file__).parents[2].joinpath("fixtures", "decision", name).read_text("utf-8"))


def of_type(bundle: dict, t: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == t]


def test_there_are_fixtures_for_every_required_case() -> None:
    kinds = {CareDecision.model_validate_json(p.read_text("utf-8")).decision_kind for p in FIXTURES}
    assert {"beviljande", "avslag", "andringsbeslut", "avslut"} <= kinds
    assert len(FIXTURES) >= 6


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_bundles_parse_with_the_reference_model_and_round_trip(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    d = CareDecision.model_validate_json(path.read_text("utf-8"))
    bundle = decision.to_fhir(d)
    Bundle.model_validate(bundle)
    assert decision.from_fhir(json.loads(json.dumps(bundle))) == d


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_entry_is_a_conditional_create(path: Path) -> None:
    bundle = decision.to_fhir(CareDecision.model_validate_json(path.read_text("utf-8")))
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"], entry["resource"]["resourceType"]
        assert entry["fullUrl"].startswith("urn:uuid:")
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


def test_output_is_deterministic() -> None:
    d = load("hemtjanst-timmar.json")
    assert decision.to_fhir(d) == decision.to_fhir(d)


def test_hours_per_month_becomes_a_ucum_ratio() -> None:
    sr = of_type(decision.to_fhir(load("hemtjanst-timmar.json")), "ServiceRequest")[0]
    assert sr["quantityRatio"]["numerator"] == {"value": 28.0, "unit": "h", "system": systems.UCUM, "code": "h"}
    assert sr["quantityRatio"]["denominator"]["code"] == "mo"
    assert sr["occurrenceTiming"]["repeat"]["boundsPeriod"] == {"start": "2026-03-09", "end": "2026-09-30"}
    assert sr["intent"] == "order" and sr["status"] == "active"


def test_visits_become_timing_with_duration() -> None:
    sr = of_type(decision.to_fhir(load("andringsbeslut.json")), "ServiceRequest")[0]
    repeat = sr["occurrenceTiming"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"], repeat["duration"], repeat["durationUnit"]) == (3, 1, "d", 30, "min")
    assert sr["replaces"][0]["identifier"] == {"system": systems.SID_DECISION, "value": "HAN-2026-0412"}


def test_rambeslut_trygg_hemgang_has_no_volume_and_is_fee_exempt() -> None:
    sr = of_type(decision.to_fhir(load("trygg-hemgang-rambeslut.json")), "ServiceRequest")[0]
    assert "quantityRatio" not in sr and "frequency" not in sr["occurrenceTiming"]["repeat"]
    urls = {e["url"]: e for e in sr["extension"]}
    assert urls[systems.EXT_FRAMEWORK_DECISION]["valueBoolean"] is True
    assert urls[systems.EXT_FEE_EXEMPT]["valueBoolean"] is True


def test_avslag_is_a_revoked_proposal_without_task() -> None:
    bundle = decision.to_fhir(load("avslag-sarskilt-boende.json"))
    sr = of_type(bundle, "ServiceRequest")[0]
    assert (sr["intent"], sr["status"]) == ("proposal", "revoked")
    reason = next(e for e in sr["extension"] if e["url"] == systems.EXT_REQUEST_STATUS_REASON)
    assert reason["valueCodeableConcept"]["coding"][0]["code"] == "avslag-behov-tillgodosett"
    assert of_type(bundle, "Task") == []


def test_granted_insats_is_assigned_to_its_utforare() -> None:
    bundle = decision.to_fhir(load("lss-ledsagarservice.json"))
    task = of_type(bundle, "Task")[0]
    org = next(e for e in bundle["entry"] if e["fullUrl"] == task["owner"]["reference"])["resource"]
    assert org["identifier"][0] == {"system": systems.ORGANISATIONSNUMMER, "value": "5561234567"}
    assert task["code"]["coding"][0]["code"] == "fulfill" and task["status"] == "requested"


def test_samordningsnummer_uses_its_own_identifier_system() -> None:
    patient = of_type(decision.to_fhir(load("matdistribution.json")), "Patient")[0]
    assert patient["identifier"][0]["system"] == systems.SAMORDNINGSNUMMER


def test_skyddad_folkbokforing_is_a_security_label() -> None:
    patient = of_type(decision.to_fhir(load("dagverksamhet-skyddad.json")), "Patient")[0]
    assert patient["meta"]["security"][0]["code"] == "skyddadFolkbokforing"


def test_inera_personnummer_system_is_accepted_on_input() -> None:
    bundle = decision.to_fhir(load("trygghetslarm.json"))
    patient = of_type(bundle, "Patient")[0]
    patient["identifier"][0]["system"] = systems.PERSONNUMMER_INERA
    assert decision.from_fhir(bundle).person.personnummer == "194209051129"


def test_bad_personnummer_in_fhir_is_named() -> None:
    bundle = decision.to_fhir(load("trygghetslarm.json"))
    of_type(bundle, "Patient")[0]["identifier"][0]["value"] = "194209051128"
    with pytest.raises(ValueError, match="personnummer"):
        decision.from_fhir(bundle)


def test_unresolvable_reference_is_named() -> None:
    bundle = decision.to_fhir(load("trygghetslarm.json"))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Practitioner"]
    with pytest.raises(decision.NotADecisionError, match="requester"):
        decision.from_fhir(bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decision_kind": "andringsbeslut", "replaces": None}, "replaces"),
        ({"rambeslut": True}, "rambeslut"),
        ({"legal_basis": "sol-99"}, "legal-basis"),
    ],
)
def test_inconsistent_decisions_are_refused(change: dict, message: str) -> None:
    raw = load("hemtjanst-timmar.json").model_dump(mode="json")
    raw.update(change)
    with pytest.raises(ValueError, match=message):
        CareDecision.model_validate(raw)


def test_skyddad_folkbokforing_strips_address_and_phone() -> None:
    d = load("dagverksamhet-skyddad.json")
    d = d.model_copy(update={"person": d.person.model_copy(update={"phone": "+46700000000", "address": {"line": "Hemlig väg 1"}})})
    patient = of_type(decision.to_fhir(d), "Patient")[0]
    assert "address" not in patient and "telecom" not in patient
    assert decision.from_fhir(decision.to_fhir(d)).person.address is None


def test_consent_travels_with_the_decision_and_satisfies_the_consent_rule() -> None:
    from adapter.compliance import ValidationContext, has_errors, validate

    region = ValidationContext(sender_huvudman="kommun", receiver_huvudman="region")
    d = load("hemtjanst-timmar.json")
    bundle = decision.to_fhir(d)
    consent = of_type(bundle, "Consent")[0]
    assert consent["provision"]["code"][0]["coding"][0]["code"] == "bistandsbeslut"
    assert all(sr["supportingInfo"] for sr in of_type(bundle, "ServiceRequest"))
    assert not has_errors(validate(bundle, context=region))

    without = decision.to_fhir(d.model_copy(update={"samtycke": None}))
    outcome = validate(without, context=region)
    assert has_errors(outcome)
    assert any("Consent" in i["details"]["text"] and i["severity"] == "error" for i in outcome["issue"])
    # within the municipality (kommun -> its utförare) no consent is needed
    assert not has_errors(validate(without, context=ValidationContext(sender_huvudman="kommun", receiver_huvudman="kommun")))


def test_sender_huvudman_is_read_from_the_decision_when_only_the_receiver_is_known() -> None:
    from adapter.compliance import ValidationContext, has_errors, validate

    d = load("trygghetslarm.json").model_copy(update={"samtycke": None})
    assert has_errors(validate(decision.to_fhir(d), context=ValidationContext(receiver_huvudman="region")))
    assert not has_errors(validate(decision.to_fhir(d), context=ValidationContext(receiver_huvudman="kommun")))
