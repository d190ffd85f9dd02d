"""The genomförandeplan ⇄ FHIR mapping on the fixtures: round trips, shape, idempotency keys, profiles."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adapter import conversion
from adapter.compliance import has_errors, validate
from adapter.compliance import registry as registry_mod
from mappings import implementation_plan, municipal_xml, systems
from mappings.flows import flow_of_bundle
from mappings.models.decision import CareDecision
from mappings.models.implementation_plan import ImplementationPlan
from tests.strategies_plans import as_read_back

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "fixtures" / "implementation-plan").glob("*.json"))
DECISIONS = sorted((REPO / "fixtures" / "decision").glob("*.json"))


def load(name: str) -> ImplementationPlan:
    return ImplementationPlan.model_validate_json((REPO / "fixtures" / "implementation-plan" / name).read_text("utf-8"))


def of_type(bundle: dict, t: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == t]


def by_identifier(bundle: dict, t: str, system: str, value: str) -> dict:
    return next(r for r in of_type(bundle, t) if any(i == {"system": system, "value": value} for i in r.get("identifier", ())))


def test_there_are_fixtures_for_every_required_case() -> None:
    plans = [ImplementationPlan.model_validate_json(p.read_text("utf-8")) for p in FIXTURES]
    records = [r for p in plans for r in p.deliveries]
    assert len(FIXTURES) >= 3
    assert any(r.outcome == "avbojd" and r.risk_note for r in records), "a declined visit with a risk note"
    assert any(r.switched_to and r.outcome == "utford" for r in records), "a same-day channel switch"
    assert any(r.outcome == "flyttad" for r in records) and any(r.moved_from for r in records), "a moved contact and its replacement"
    assert any(a.activity_type == "vardagsrehabilitering" for p in plans for a in p.activities), "a vardagsrehabilitering task"
    assert {a.channel for p in plans for a in p.activities} == {"fysiskt", "digitalt"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_source_fhir_json_fhir_json_changes_nothing(path: Path) -> None:
    """source → FHIR → canonical JSON → FHIR → canonical JSON, through the conversion pipeline."""
    source = conversion.read(path.read_bytes())
    fhir1 = conversion.write(source, "fhir")
    json1 = conversion.convert(fhir1, "json")
    fhir2 = conversion.convert(json1, "fhir")
    json2 = conversion.convert(fhir2, "json")
    assert fhir1 == fhir2
    assert json1 == json2
    assert ImplementationPlan.model_validate_json(json1) == source.model
    assert json.loads(json1) == source.model.model_dump(mode="json", exclude_none=True)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_municipal_xml_round_trip(path: Path) -> None:
    plan = ImplementationPlan.model_validate_json(path.read_text("utf-8"))
    xml = conversion.convert(path.read_bytes(), "xml")
    assert municipal_xml.from_xml(xml) == plan
    assert conversion.convert(xml, "json") == conversion.convert(path.read_bytes(), "json")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_bundles_parse_with_the_reference_model(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(implementation_plan.to_fhir(ImplementationPlan.model_validate_json(path.read_text("utf-8"))))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_bundles_conform_to_the_profiles(path: Path) -> None:
    bundle = implementation_plan.to_fhir(ImplementationPlan.model_validate_json(path.read_text("utf-8")))
    outcome = validate(bundle)
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert not [i for i in outcome["issue"] if i["severity"] == "warning"]
    claimed = {p for e in bundle["entry"] for p in e["resource"].get("meta", {}).get("profile", ())}
    assert claimed <= set(registry_mod.registry().profiles), claimed - set(registry_mod.registry().profiles)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_a_server_shaped_bundle_decodes_exactly(path: Path) -> None:
    plan = ImplementationPlan.model_validate_json(path.read_text("utf-8"))
    for seed in range(3):
        back = implementation_plan.from_fhir(as_read_back(implementation_plan.to_fhir(plan), seed=seed))
        assert back.model_dump_json() == plan.model_dump_json()


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_entry_is_a_conditional_create_with_a_deterministic_url(path: Path) -> None:
    plan = ImplementationPlan.model_validate_json(path.read_text("utf-8"))
    bundle = implementation_plan.to_fhir(plan)
    assert bundle["type"] == "transaction"
    assert bundle == implementation_plan.to_fhir(plan.model_copy(deep=True))
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"].startswith(("identifier=", "_tag=")), entry["resource"]["resourceType"]
        assert entry["fullUrl"].startswith("urn:uuid:")
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])
    assert len({(e["resource"]["resourceType"], e["request"]["ifNoneExist"]) for e in bundle["entry"]}) == len(bundle["entry"])
    # SEKMET has no search parameters for Goal and CareTeam: those go by the business-key tag
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] in ("Goal", "CareTeam"):
            assert entry["request"]["ifNoneExist"].startswith("_tag=")


def test_the_bundle_is_recognised_as_this_flow() -> None:
    bundle = implementation_plan.to_fhir(load("astrid-hemtjanst-vecka.json"))
    assert flow_of_bundle(bundle).kind == "implementation-plan"
    assert flow_of_bundle(as_read_back(bundle)).kind == "implementation-plan"


def test_care_plan_is_a_gp_plan_resting_on_the_decision() -> None:
    bundle = implementation_plan.to_fhir(load("astrid-hemtjanst-vecka.json"))
    (plan,) = of_type(bundle, "CarePlan")
    assert plan["category"] == [{"coding": [{"system": systems.CS_CARE_PLAN_TYPE, "code": "GP", "display": "Genomförandeplan"}]}]
    assert plan["basedOn"] == [{"type": "CarePlan", "identifier": {"system": systems.SID_CAREPLAN, "value": "HAN-2026-0412"}}]
    assert plan["intent"] == "plan" and plan["status"] == "active"
    assert all(set(a) <= {"reference", "outcomeReference"} for a in plan["activity"]), "activities by reference, never detail"
    assert [n["text"] for n in plan["note"]][0] == "Astrid vill bli kallad Asta."
    assert plan["note"][0]["authorReference"] == plan["subject"]


def test_planned_activity_carries_channel_timing_window_staff_and_basis() -> None:
    bundle = implementation_plan.to_fhir(load("astrid-hemtjanst-vecka.json"))
    sr = by_identifier(bundle, "ServiceRequest", systems.SID_PLAN_ACTIVITY, "OSH-GP-2026-0031/a2")
    assert sr["intent"] == "plan"
    assert sr["basedOn"] == [{"type": "ServiceRequest", "identifier": {"system": systems.SID_INSATS, "value": "HAN-2026-0412/1"}}]
    codes = {c["system"]: c["code"] for cat in sr["category"] for c in cat["coding"]}
    assert codes == {systems.CS_CONTACT_CHANNEL: "fysiskt", systems.CS_LEGAL_DOMAIN: "SoL", systems.CS_HUVUDMAN: "kommun"}
    repeat = sr["occurrenceTiming"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"], repeat["dayOfWeek"], repeat["duration"]) == (2, 1, "wk", ["tue", "fri"], 30)
    window = next(e for e in sr["extension"] if e["url"] == systems.EXT_TIME_WINDOW)
    assert window["extension"] == [{"url": "start", "valueTime": "08:00:00"}, {"url": "end", "valueTime": "10:00:00"}]
    practitioners = {f"{p['resourceType']}|{p['identifier'][0]['value']}" for p in of_type(bundle, "Practitioner")}
    assert "Practitioner|osh-0117" in practitioners and len(sr["performer"]) == 2


def test_care_team_names_the_fast_omsorgskontakt() -> None:
    bundle = implementation_plan.to_fhir(load("elsa-trygg-hemgang.json"))
    (team,) = of_type(bundle, "CareTeam")
    roles = [p["role"][0]["coding"][0]["code"] for p in team["participant"]]
    assert roles == ["utforare", "fast-omsorgskontakt", "kand-personal"]
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert index[team["participant"][1]["member"]["reference"]]["name"] == [{"text": "Sara Nilsson"}]


def test_a_done_contact_is_a_completed_task_with_its_encounter_and_kvittens() -> None:
    bundle = implementation_plan.to_fhir(load("elsa-trygg-hemgang.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    task = by_identifier(bundle, "Task", systems.SID_CONTACT, "TSH-GP-2026-0107/k01")
    assert task["status"] == "completed" and task["businessStatus"]["coding"][0]["code"] == "utford"
    assert task["restriction"]["period"]["start"] == "2026-06-02T08:00:00+02:00"
    assert task["executionPeriod"] == {"start": "2026-06-02T08:10:00+02:00", "end": "2026-06-02T08:58:00+02:00"}
    assert task["partOf"] == [{"type": "Task", "identifier": {"system": systems.SID_TASK, "value": "SDT-2026-2315/1"}}]
    encounter = index[task["output"][0]["valueReference"]["reference"]]
    assert encounter["class"]["code"] == "HH" and encounter["status"] == "finished"
    kvittens = [index[o["valueReference"]["reference"]] for o in task["output"][1:]]
    assert [(index[o["focus"][0]["reference"]]["description"]["text"][:20], o["valueBoolean"]) for o in kvittens] == [
        ("Jag vill klara mig h", True),
        ("Jag vill själv kunna", False),
        ("Jag vill ta rätt tab", True),
    ]
    assert kvittens[1]["note"] == [{"text": "Första dagen hemma; vi lagade frukosten tillsammans."}]
    assert all(o["encounter"]["reference"] == task["output"][0]["valueReference"]["reference"] for o in kvittens)


def test_a_same_day_channel_switch_is_a_virtual_encounter_linked_to_the_planned_visit() -> None:
    bundle = implementation_plan.to_fhir(load("elsa-trygg-hemgang.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    task = by_identifier(bundle, "Task", systems.SID_CONTACT, "TSH-GP-2026-0107/k05")
    encounter = index[task["output"][0]["valueReference"]["reference"]]
    planned = index[task["focus"]["reference"]]
    assert encounter["class"]["code"] == "VR"
    assert encounter["basedOn"] == [task["focus"]]
    assert planned["category"][0]["coding"][0]["code"] == "fysiskt"
    outputs = {o["type"]["coding"][0]["code"]: o for o in task["output"]}
    assert outputs["kanalbyte-till"]["valueCodeableConcept"]["coding"][0]["code"] == "digitalt"
    assert outputs["kanalbyte-orsak"]["valueCodeableConcept"]["coding"][0]["code"] == "bemanning"


def test_a_declined_visit_carries_reason_and_risk_note_and_no_encounter() -> None:
    bundle = implementation_plan.to_fhir(load("astrid-hemtjanst-vecka.json"))
    task = by_identifier(bundle, "Task", systems.SID_CONTACT, "OSH-GP-2026-0031/r14")
    assert task["status"] == "cancelled" and task["businessStatus"]["coding"][0]["code"] == "avbojd"
    assert task["statusReason"]["coding"][0] == {"system": systems.CS_DECLINED_REASON, "code": "dagsform", "display": "Trött eller dålig dagsform"}
    (risk,) = task["output"]
    assert risk["type"]["coding"][0]["code"] == "riskanteckning" and "trycksår" in risk["valueString"]
    assert task["note"][0]["text"].startswith("Astrid hade sovit dåligt")
    assert "executionPeriod" not in task
    assert not [e for e in of_type(bundle, "Encounter") if e["identifier"][0]["value"].endswith("/r14")]


def test_a_moved_contact_names_its_new_time_and_the_replacement_replaces_it() -> None:
    bundle = implementation_plan.to_fhir(load("astrid-hemtjanst-vecka.json"))
    urls = {id(e["resource"]): e["fullUrl"] for e in bundle["entry"]}
    moved = by_identifier(bundle, "Task", systems.SID_CONTACT, "OSH-GP-2026-0031/r08")
    replacement = by_identifier(bundle, "Task", systems.SID_CONTACT, "OSH-GP-2026-0031/r11")
    assert moved["statusReason"]["coding"][0]["code"] == "vader"
    assert moved["output"] == [{"type": {"coding": [{"system": systems.CS_CONTACT_DETAIL, "code": "flyttad-till", "display": "Ny tid för flyttad kontakt"}]}, "valueDateTime": "2026-03-19T10:30:00+01:00"}]
    assert replacement["extension"] == [{"url": systems.EXT_TASK_REPLACES, "valueReference": {"reference": urls[id(moved)]}}]


def test_outcome_references_list_every_contact_of_the_activity() -> None:
    plan = load("astrid-hemtjanst-vecka.json")
    bundle = implementation_plan.to_fhir(plan)
    (care_plan,) = of_type(bundle, "CarePlan")
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    for activity, line in zip(plan.activities, care_plan["activity"]):
        tasks = [index[r["reference"]] for r in line.get("outcomeReference", ()) if index[r["reference"]]["resourceType"] == "Task"]
        expected = [f"{plan.plan_id}/{r.record_id}" for r in plan.deliveries if r.activity_id == activity.activity_id]
        assert [t["identifier"][0]["value"] for t in tasks] == expected


def test_new_contacts_reported_later_decode_into_the_plan() -> None:
    """Status flowing back: the utförare reports Friday's morning visit as a new contact Task."""
    plan = load("astrid-hemtjanst-vecka.json")
    bundle = as_read_back(implementation_plan.to_fhir(plan))
    template = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Task" and e["resource"]["identifier"][0]["value"].endswith("/r10"))
    task = copy.deepcopy(template["resource"])
    task.update(id="9001", identifier=[{"system": systems.SID_CONTACT, "value": "OSH-GP-2026-0031/r16"}])
    task["restriction"] = {"period": {"start": "2026-03-20T08:00:00+01:00"}}
    task["executionPeriod"] = {"start": "2026-03-20T08:15:00+01:00", "end": "2026-03-20T08:44:00+01:00"}
    task["output"] = [o for o in task["output"] if o["type"]["coding"][0]["code"] == "besok"]
    task["note"] = [{"text": "Astrid avböjde duschen men ville ha hjälp med påklädningen."}]
    bundle["entry"].append({"fullUrl": "https://region.example.se/fhir/Task/9001", "resource": task})
    back = implementation_plan.from_fhir(bundle)
    new = next(r for r in back.deliveries if r.record_id == "r16")
    assert new.activity_id == "a1" and new.outcome == "utford" and new.performed_by == plan.deliveries[9].performed_by
    assert new.acknowledgements == [] and new.narrative.startswith("Astrid avböjde")
    # kept in the canonical order (planned start): Friday 08:00 comes before the declined 08:30 shower
    assert [r.record_id for r in back.deliveries][-4:] == ["r13", "r16", "r14", "r15"]
    assert [r for r in back.deliveries if r.record_id != "r16"] == plan.deliveries


def test_decoding_something_else_fails_clearly() -> None:
    decision = CareDecision.model_validate_json(DECISIONS[0].read_text("utf-8"))
    from mappings import decision as decision_flow

    with pytest.raises(implementation_plan.NotAnImplementationPlanError, match="found 0"):
        implementation_plan.from_fhir(decision_flow.to_fhir(decision))
    bundle = implementation_plan.to_fhir(load("mikael-matdistribution.json"))
    broken = copy.deepcopy(bundle)
    broken["entry"] = [e for e in broken["entry"] if e["resource"]["resourceType"] != "Goal"]
    with pytest.raises(implementation_plan.NotAnImplementationPlanError, match="goal does not resolve"):
        implementation_plan.from_fhir(broken)
    odd = copy.deepcopy(bundle)
    sr = next(e["resource"] for e in odd["entry"] if e["resource"]["resourceType"] == "ServiceRequest")
    sr["occurrenceTiming"]["repeat"]["period"] = 2
    with pytest.raises(ValueError, match="only 'n times per 1 day, week or month'"):
        implementation_plan.from_fhir(odd)


def test_plan_persons_and_organisations_are_those_of_the_decisions() -> None:
    """The same person or utförare carries the same data in every fixture (one Patient, one Organization)."""
    decisions = [CareDecision.model_validate_json(p.read_text("utf-8")) for p in DECISIONS]
    persons = {d.person.personnummer: d.person for d in decisions}
    orgs = {o.hsa_id or o.organisationsnummer: o for d in decisions for o in [d.municipality, *(i.performer for i in d.insatser if i.performer)]}
    granted = {(d.decision_id, i.insats_id) for d in decisions for i in d.insatser}
    for path in FIXTURES:
        plan = ImplementationPlan.model_validate_json(path.read_text("utf-8"))
        assert persons[plan.person.personnummer] == plan.person, path.name
        assert orgs[plan.utforare.hsa_id or plan.utforare.organisationsnummer] == plan.utforare, path.name
        assert all(a.basis.key in granted for a in plan.activities if a.basis), path.name


# --- Consent to share the plan with the region (OSL 12 kap. 2 §) --------------------------------


def test_consent_is_a_consent_resource_in_the_care_plans_supporting_info() -> None:
    plan = load("elsa-trygg-hemgang.json")
    bundle = implementation_plan.to_fhir(plan)
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (consent,) = of_type(bundle, "Consent")
    (care_plan,) = of_type(bundle, "CarePlan")
    assert [index[r["reference"]] for r in care_plan["supportingInfo"]] == [consent]
    assert consent["identifier"] == [{"system": systems.SID_CONSENT, "value": "TSH-GP-2026-0107-S1"}]
    assert consent["provision"]["code"] == [{"coding": [{"system": systems.CS_CONSENT_INFORMATION, "code": "genomforandeplan", "display": "Genomförandeplan och hemtjänstens dokumentation"}]}]
    assert consent["organization"] == [care_plan["author"]], "the utförare holds the consent"
    recipients = [index[a["reference"]["reference"]] for a in consent["provision"]["actor"]]
    assert [r["resourceType"] for r in recipients] == ["Organization"]
    assert recipients[0]["identifier"][0] == {"system": systems.HSA_ID, "value": "SE2321000016-SODG"}
    assert implementation_plan.from_fhir(bundle).samtycke == plan.samtycke
    assert "supportingInfo" not in of_type(implementation_plan.to_fhir(plan.model_copy(update={"samtycke": None})), "CarePlan")[0]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_may_be_sent_to_the_region(path: Path) -> None:
    """What `carebridge demo` checks before sending to the stand-in regional server: zero errors."""
    from adapter.compliance import ValidationContext

    bundle = conversion.bundle_of(conversion.read(path.read_bytes()))
    outcome = validate(bundle, context=ValidationContext(receiver_huvudman="region"))
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


MUNICIPAL = [p for p in FIXTURES if ImplementationPlan.model_validate_json(p.read_text("utf-8")).utforare.kind == "kommunal"]


def test_there_are_municipal_plans_and_each_carries_consent() -> None:
    assert MUNICIPAL
    assert all(ImplementationPlan.model_validate_json(p.read_text("utf-8")).samtycke for p in MUNICIPAL)


@pytest.mark.parametrize("path", MUNICIPAL, ids=lambda p: p.stem)
def test_a_municipal_plan_without_consent_is_refused_by_the_consent_rule(path: Path) -> None:
    from adapter.compliance import ValidationContext
    from adapter.compliance.outcome import rule_of

    plan = ImplementationPlan.model_validate_json(path.read_text("utf-8")).model_copy(update={"samtycke": None})
    outcome = validate(implementation_plan.to_fhir(plan), context=ValidationContext(receiver_huvudman="region"))
    assert {rule_of(i) for i in outcome["issue"] if i["severity"] == "error"} == {"se-consent"}
    # within the kommun no consent is needed
    assert not has_errors(validate(implementation_plan.to_fhir(plan), context=ValidationContext(receiver_huvudman="kommun")))
