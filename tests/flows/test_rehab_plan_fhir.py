"""The rehabiliteringsplan ⇄ FHIR mapping on the fixtures: round trips, shape, lifecycle, status flowing back."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adapter import conversion
from adapter.compliance import has_errors, validate
from adapter.compliance import registry as registry_mod
from mappings import municipal_xml, rehab_plan, systems
from mappings.flows import flow_of_bundle
from mappings.models.decision import CareDecision
from mappings.models.rehab_plan import RehabPlan
from tests.strategies_plans import as_read_back

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "fixtures" / "rehab-plan").glob("*.json"))
DECISIONS = sorted((REPO / "fixtures" / "decision").glob("*.json"))


def load(name: str) -> RehabPlan:
    return RehabPlan.model_validate_json((REPO / "fixtures" / "rehab-plan" / name).read_text("utf-8"))


def of_type(bundle: dict, t: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == t]


def by_identifier(bundle: dict, t: str, system: str, value: str) -> dict:
    return next(r for r in of_type(bundle, t) if any(i == {"system": system, "value": value} for i in r.get("identifier", ())))


def entry_of(bundle: dict, t: str, system: str, value: str) -> dict:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == t and {"system": system, "value": value} in e["resource"].get("identifier", []))


def test_there_are_fixtures_for_every_required_case() -> None:
    plans = [RehabPlan.model_validate_json(p.read_text("utf-8")) for p in FIXTURES]
    assert len(plans) >= 3
    lifecycles = [[e.code for e in p.events] for p in plans]
    assert ["AW020", "AW024", "AW035"] in lifecycles, "create → day-5 follow-up → closure"
    assert any("AW027" in codes for codes in lifecycles), "a follow-up with revision"
    assert any(p.closure for p in plans) and any(p.status == "active" for p in plans)
    assert any(t.basis is None for p in plans for t in p.training_instructions), "a training instruction on no granted insats"
    assert {p.huvudman for p in plans} == {"kommun", "region"}
    findings = [f for p in plans for f in p.assessment.findings]
    assert {f.factor_role for f in findings if f.factor_role} == {"resurs", "hinder"}
    assert {a.kind for p in plans for a in p.actions} == {"vard", "egenvard"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_source_fhir_json_fhir_json_changes_nothing(path: Path) -> None:
    source = conversion.read(path.read_bytes())
    fhir1 = conversion.write(source, "fhir")
    json1 = conversion.convert(fhir1, "json")
    fhir2 = conversion.convert(json1, "fhir")
    json2 = conversion.convert(fhir2, "json")
    assert fhir1 == fhir2
    assert json1 == json2
    assert RehabPlan.model_validate_json(json1) == source.model
    assert json.loads(json1) == source.model.model_dump(mode="json", exclude_none=True)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_municipal_xml_round_trip(path: Path) -> None:
    xml = conversion.convert(path.read_bytes(), "xml")
    assert municipal_xml.from_xml(xml) == RehabPlan.model_validate_json(path.read_text("utf-8"))
    assert conversion.convert(xml, "json") == conversion.convert(path.read_bytes(), "json")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_bundles_parse_with_the_reference_model(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(rehab_plan.to_fhir(RehabPlan.model_validate_json(path.read_text("utf-8"))))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_bundles_conform_to_the_profiles(path: Path) -> None:
    bundle = rehab_plan.to_fhir(RehabPlan.model_validate_json(path.read_text("utf-8")))
    outcome = validate(bundle)
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert not [i for i in outcome["issue"] if i["severity"] == "warning"]
    claimed = {p for e in bundle["entry"] for p in e["resource"].get("meta", {}).get("profile", ())}
    assert claimed <= set(registry_mod.registry().profiles)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_a_server_shaped_bundle_decodes_exactly(path: Path) -> None:
    plan = RehabPlan.model_validate_json(path.read_text("utf-8"))
    for seed in range(3):
        assert rehab_plan.from_fhir(as_read_back(rehab_plan.to_fhir(plan), seed=seed)).model_dump_json() == plan.model_dump_json()


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_every_entry_is_a_conditional_create(path: Path) -> None:
    plan = RehabPlan.model_validate_json(path.read_text("utf-8"))
    bundle = rehab_plan.to_fhir(plan)
    assert bundle["type"] == "transaction" and bundle == rehab_plan.to_fhir(plan.model_copy(deep=True))
    keys = set()
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "POST" and entry["fullUrl"].startswith("urn:uuid:")
        kind = entry["resource"]["resourceType"]
        expected = "_tag=" if kind in ("Goal", "CareTeam", "ClinicalImpression") else "identifier="
        assert entry["request"]["ifNoneExist"].startswith(expected), kind
        keys.add((kind, entry["request"]["ifNoneExist"]))
    assert len(keys) == len(bundle["entry"])


def test_the_bundle_is_recognised_as_this_flow() -> None:
    bundle = rehab_plan.to_fhir(load("gustav-fallprevention.json"))
    assert flow_of_bundle(bundle).kind == "rehab-plan"


def test_lifecycle_events_are_kva_coded_procedures() -> None:
    bundle = rehab_plan.to_fhir(load("elsa-trygg-hemgang-rehab.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    events = of_type(bundle, "Procedure")
    assert [(p["code"]["coding"][0]["system"], p["code"]["coding"][0]["code"], p["performedDateTime"]) for p in events] == [
        (systems.CS_KVA, "AW020", "2026-06-02"),
        (systems.CS_KVA, "AW024", "2026-06-06"),
        (systems.CS_KVA, "AW035", "2026-06-15"),
    ]
    day5 = events[1]
    assert [index[r["reference"]]["resourceType"] for r in day5["basedOn"]] == ["CarePlan", "ServiceRequest"]
    assert index[day5["basedOn"][1]["reference"]]["occurrenceDateTime"] == "2026-06-06"
    closing = events[2]
    assert closing["outcome"]["coding"][0]["code"] == "mal-uppnadda"
    assert [f["coding"][0]["code"] for f in closing["followUp"]] == ["egenvard", "kontaktvag"]
    assert closing["followUp"][1]["text"].startswith("Ring kommunens rehabenhet")
    assert "outcome" not in events[0] and "followUp" not in events[1]


def test_plan_status_follows_the_lifecycle() -> None:
    statuses = {p.stem: of_type(rehab_plan.to_fhir(load(p.name)), "CarePlan")[0]["status"] for p in FIXTURES}
    assert statuses == {"astrid-primarvardsrehab-hoft": "active", "elsa-trygg-hemgang-rehab": "completed", "gustav-fallprevention": "active"}
    draft = load("gustav-fallprevention.json").model_copy(update={"events": []})
    bundle = rehab_plan.to_fhir(draft)
    assert of_type(bundle, "CarePlan")[0]["status"] == "draft"
    assert {g["lifecycleStatus"] for g in of_type(bundle, "Goal")} == {"proposed"}
    closed = rehab_plan.to_fhir(load("elsa-trygg-hemgang-rehab.json"))
    assert {g["lifecycleStatus"] for g in of_type(closed, "Goal")} == {"completed"}
    assert {sr["status"] for sr in of_type(closed, "ServiceRequest") if systems.PROFILE_REHAB_FOLLOW_UP in sr["meta"]["profile"]} == {"completed"}


def test_goals_are_the_persons_words_with_sub_goals_as_milestones() -> None:
    bundle = rehab_plan.to_fhir(load("astrid-primarvardsrehab-hoft.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    main = by_identifier(bundle, "Goal", systems.SID_GOAL, "rehabplan/RS-RP-2026-7731/m1")
    assert main["description"]["text"] == "Jag vill kunna gå till affären själv igen."
    assert main["expressedBy"] == main["subject"]
    assert main["category"] == [{"coding": [{"system": systems.CS_ICF, "code": "d460"}]}]
    assert main["achievementStatus"]["coding"][0] == {"system": systems.CS_GOAL_ACHIEVEMENT, "code": "in-progress"}
    subs = [
        index[{x["url"]: x for x in ext["extension"]}["target"]["valueReference"]["reference"]]["description"]["text"]
        for ext in main["extension"]
        if ext["url"] == systems.EXT_GOAL_RELATIONSHIP
    ]
    assert subs == ["Jag vill kunna resa mig från stolen utan att ta spjärn.", "Jag vill orka gå till brevlådan själv."]


def test_assessment_findings_are_icf_coded_with_resources_and_obstacles() -> None:
    bundle = rehab_plan.to_fhir(load("elsa-trygg-hemgang-rehab.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (impression,) = of_type(bundle, "ClinicalImpression")
    assert impression["note"] == [{"authorReference": impression["subject"], "text": "Att kunna bo kvar hemma och klara frukosten själv."}]
    findings = [index[f["itemReference"]["reference"]] for f in impression["finding"]]
    balance = findings[0]
    assert balance["code"] == {"coding": [{"system": systems.CS_ICF, "code": "b235"}], "text": "Nedsatt balans vid uppresning och vändning"}
    assert (balance["method"], balance["valueString"]) == ({"text": "Bergs balansskala"}, "38 av 56")
    roles = [(f["category"][0]["coding"][0]["code"], (f.get("interpretation") or [{"coding": [{}]}])[0]["coding"][0].get("code")) for f in findings[4:]]
    assert roles == [("omgivningsfaktor", "resurs"), ("omgivningsfaktor", "hinder"), ("personfaktor", "resurs")]
    assert "coding" not in findings[6]["code"]  # personal factors have no ICF code
    (plan,) = of_type(bundle, "CarePlan")
    assert plan["supportingInfo"][1] == {"type": "ServiceRequest", "identifier": {"system": systems.SID_REHAB_REFERRAL, "value": "SÖS-REM-2026-0441"}}


def test_actions_say_what_who_when_and_scope() -> None:
    bundle = rehab_plan.to_fhir(load("astrid-primarvardsrehab-hoft.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    self_care = by_identifier(bundle, "ServiceRequest", systems.SID_REHAB_ACTION, "RS-RP-2026-7731/a1")
    assert [index[p["reference"]]["resourceType"] for p in self_care["performer"]] == ["Patient", "Practitioner"]
    home_care = by_identifier(bundle, "ServiceRequest", systems.SID_REHAB_ACTION, "RS-RP-2026-7731/a3")
    codes = {c["system"]: c["code"] for cat in home_care["category"] for c in cat["coding"]}
    assert codes == {systems.CS_REHAB_ACTION_KIND: "vard", systems.CS_LEGAL_DOMAIN: "SoL", systems.CS_HUVUDMAN: "kommun"}
    assert home_care["status"] == "draft"
    visits = by_identifier(bundle, "ServiceRequest", systems.SID_REHAB_ACTION, "RS-RP-2026-7731/a2")
    assert visits["occurrenceTiming"]["code"] == {"text": "Varje onsdag till och med september"}
    assert visits["occurrenceTiming"]["repeat"]["boundsPeriod"] == {"start": "2026-07-01", "end": "2026-09-30"}


def test_training_instruction_is_a_task_for_home_care() -> None:
    bundle = rehab_plan.to_fhir(load("elsa-trygg-hemgang-rehab.json"))
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (task,) = of_type(bundle, "Task")
    assert task["code"]["coding"][0]["code"] == "vardagsrehabilitering"
    assert task["basedOn"] == [{"type": "ServiceRequest", "identifier": {"system": systems.SID_INSATS, "value": "SDT-2026-2315/1"}}]
    assert index[task["owner"]["reference"]]["name"] == "Södertälje kommun, Trygg och säker hemgång"
    assert index[task["focus"]["reference"]]["identifier"][0]["value"] == "SDT-RP-2026-0214/a4"
    assert task["status"] == "completed"


def test_status_changes_made_on_the_other_side_flow_back() -> None:
    """The region's plan comes back from the server after the kommun and the region changed it."""
    plan = load("astrid-primarvardsrehab-hoft.json")
    bundle = as_read_back(rehab_plan.to_fhir(plan))
    resources = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in bundle["entry"]}
    # 1. home care accepts the training instruction once the handläggare granted vardagsrehabilitering
    task = next(r for r in resources.values() if r["resourceType"] == "Task")
    task.update(status="in-progress", basedOn=[{"type": "ServiceRequest", "identifier": {"system": systems.SID_INSATS, "value": "HAN-2026-1102/1"}}])
    task.pop("statusReason")
    # 2. the region follows the plan up on 5 August: a new AW024 Procedure, goal d2 improving, action a3 active
    goal = next(r for r in resources.values() if r["resourceType"] == "Goal" and r["identifier"][0]["value"].endswith("/d2"))
    goal["achievementStatus"] = {"coding": [{"system": systems.CS_GOAL_ACHIEVEMENT, "code": "improving"}]}
    action = next(r for r in resources.values() if r["resourceType"] == "ServiceRequest" and r["identifier"][0]["value"].endswith("/a3"))
    action["status"] = "active"
    care_plan = next(r for r in resources.values() if r["resourceType"] == "CarePlan")
    follow_up = next(r for r in resources.values() if r["resourceType"] == "ServiceRequest" and r["identifier"][0]["value"].endswith("/u2"))
    practitioner = next(k for k, r in resources.items() if r["resourceType"] == "Practitioner")
    bundle["entry"].append(
        {
            "fullUrl": "https://region.example.se/fhir/Procedure/777",
            "resource": {
                "resourceType": "Procedure",
                "id": "777",
                "meta": {"versionId": "1", "lastUpdated": "2026-08-05T14:02:11.000+02:00", "profile": [systems.PROFILE_REHAB_EVENT]},
                "identifier": [{"system": systems.SID_REHAB_EVENT, "value": "RS-RP-2026-7731/h3"}],
                "basedOn": [{"reference": f"CarePlan/{care_plan['id']}"}, {"reference": f"ServiceRequest/{follow_up['id']}"}],
                "status": "completed",
                "code": {"coding": [{"system": systems.CS_KVA, "code": "AW024"}]},
                "subject": care_plan["subject"],
                "performedDateTime": "2026-08-05",
                "performer": [{"actor": {"reference": practitioner}}],
                "note": [{"text": "Går till brevlådan med hemtjänsten tre gånger i veckan."}],
            },
        }
    )
    back = rehab_plan.from_fhir(bundle)
    assert back.training_instructions[0].status == "in-progress" and back.training_instructions[0].status_reason is None
    assert back.training_instructions[0].basis.key == ("HAN-2026-1102", "1")
    assert next(g for g in back.goals if g.goal_id == "d2").achievement == "improving"
    assert next(a for a in back.actions if a.action_id == "a3").status == "pagaende"
    assert [(e.code, str(e.date), e.followup_id) for e in back.events] == [("AW020", "2026-07-01", None), ("AW027", "2026-07-15", "u1"), ("AW024", "2026-08-05", "u2")]
    # ...and the changed plan is a canonical document again: JSON and municipal XML
    as_json = conversion.convert(json.dumps(bundle).encode(), "json")
    assert RehabPlan.model_validate_json(as_json) == back
    assert municipal_xml.from_xml(conversion.convert(json.dumps(bundle).encode(), "xml")) == back
    # everything else is as it was
    same = back.model_copy(update={"training_instructions": plan.training_instructions, "goals": plan.goals, "actions": plan.actions, "events": plan.events})
    assert same == plan


def test_decoding_something_else_fails_clearly() -> None:
    from mappings import decision as decision_flow

    decision = CareDecision.model_validate_json(DECISIONS[0].read_text("utf-8"))
    with pytest.raises(rehab_plan.NotARehabPlanError, match="found 0"):
        rehab_plan.from_fhir(decision_flow.to_fhir(decision))
    bundle = rehab_plan.to_fhir(load("gustav-fallprevention.json"))
    broken = copy.deepcopy(bundle)
    broken["entry"] = [e for e in broken["entry"] if e["resource"]["resourceType"] != "ClinicalImpression"]
    with pytest.raises(rehab_plan.NotARehabPlanError, match="supportingInfo does not resolve"):
        rehab_plan.from_fhir(broken)
    odd = copy.deepcopy(bundle)
    entry_of(odd, "ServiceRequest", systems.SID_REHAB_ACTION, "HAN-RP-2026-0318/a2")["resource"]["status"] = "unknown"
    with pytest.raises(rehab_plan.NotARehabPlanError, match="not a rehab action status"):
        rehab_plan.from_fhir(odd)


def test_plan_persons_and_organisations_are_those_of_the_decisions() -> None:
    decisions = [CareDecision.model_validate_json(p.read_text("utf-8")) for p in DECISIONS]
    persons = {d.person.personnummer: d.person for d in decisions}
    orgs = {o.hsa_id or o.organisationsnummer: o for d in decisions for o in [d.municipality, *(i.performer for i in d.insatser if i.performer)]}
    for path in FIXTURES:
        plan = RehabPlan.model_validate_json(path.read_text("utf-8"))
        assert persons[plan.person.personnummer] == plan.person, path.name
        for org in plan.organisations():
            key = org.hsa_id or org.organisationsnummer
            assert orgs.get(key, org) == org, (path.name, key)


def test_staff_and_units_of_the_plans_are_the_same_in_every_fixture() -> None:
    """One HSA-id or local staff id is one Organization or Practitioner on the server: the plans
    must describe it exactly as every other fixture does, or a read back returns the other data."""

    def walk(node, found: dict, where: str) -> None:
        if isinstance(node, dict):
            for key in ("hsa_id", "local_id"):
                if isinstance(node.get(key), str) and "name" in node:
                    found.setdefault((key, node[key]), {}).setdefault(json.dumps(node, sort_keys=True, ensure_ascii=False), where)
            for value in node.values():
                walk(value, found, where)
        elif isinstance(node, list):
            for value in node:
                walk(value, found, where)

    mine: dict = {}
    for kind in ("implementation-plan", "rehab-plan"):
        for path in sorted((REPO / "fixtures" / kind).glob("*.json")):
            walk(json.loads(path.read_text("utf-8")), mine, f"{kind}/{path.name}")
    everywhere: dict = {}
    for path in sorted((REPO / "fixtures").glob("*/*.json")):
        walk(json.loads(path.read_text("utf-8")), everywhere, f"{path.parent.name}/{path.name}")
    clashes = {key: variants for key, variants in everywhere.items() if key in mine and len(variants) > 1}
    assert not clashes, clashes


# --- Consent to share the plan with the region (OSL 12 kap. 2 §) --------------------------------


def test_consent_is_a_consent_resource_in_the_care_plans_supporting_info() -> None:
    plan = load("elsa-trygg-hemgang-rehab.json")
    bundle = rehab_plan.to_fhir(plan)
    index = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (consent,) = of_type(bundle, "Consent")
    (care_plan,) = of_type(bundle, "CarePlan")
    info = care_plan["supportingInfo"]
    assert [index[r["reference"]]["resourceType"] for r in info if "reference" in r] == ["ClinicalImpression", "Consent"]
    assert index[info[-1]["reference"]] is consent
    assert consent["provision"]["code"] == [{"coding": [{"system": systems.CS_CONSENT_INFORMATION, "code": "rehabiliteringsplan", "display": "Rehabiliteringsplan med bedömning, mål, åtgärder och uppföljning"}]}]
    assert consent["organization"] == [care_plan["author"]], "the rehab unit holds the consent"
    recipients = [index[a["reference"]["reference"]] for a in consent["provision"]["actor"]]
    assert [(r["resourceType"], r["identifier"][0]["value"]) for r in recipients] == [("Organization", "SE2321000016-SODG")]
    assert rehab_plan.from_fhir(bundle).samtycke == plan.samtycke
    assert rehab_plan.from_fhir(as_read_back(bundle, seed=7)).samtycke == plan.samtycke


def test_a_region_plan_going_to_the_region_carries_no_consent() -> None:
    plan = load("astrid-primarvardsrehab-hoft.json")
    assert plan.huvudman == "region" and plan.samtycke is None
    assert not of_type(rehab_plan.to_fhir(plan), "Consent")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_may_be_sent_to_the_region(path: Path) -> None:
    """What `carebridge demo` checks before sending to the stand-in regional server: zero errors."""
    from adapter.compliance import ValidationContext

    bundle = conversion.bundle_of(conversion.read(path.read_bytes()))
    outcome = validate(bundle, context=ValidationContext(receiver_huvudman="region"))
    assert not has_errors(outcome), [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


MUNICIPAL = [p for p in FIXTURES if RehabPlan.model_validate_json(p.read_text("utf-8")).organisation.kind == "kommunal"]


def test_there_are_municipal_plans_and_each_carries_consent() -> None:
    assert MUNICIPAL
    assert all(RehabPlan.model_validate_json(p.read_text("utf-8")).samtycke for p in MUNICIPAL)


@pytest.mark.parametrize("path", MUNICIPAL, ids=lambda p: p.stem)
def test_a_municipal_plan_without_consent_is_refused_by_the_consent_rule(path: Path) -> None:
    from adapter.compliance import ValidationContext
    from adapter.compliance.outcome import rule_of

    plan = RehabPlan.model_validate_json(path.read_text("utf-8")).model_copy(update={"samtycke": None})
    outcome = validate(rehab_plan.to_fhir(plan), context=ValidationContext(receiver_huvudman="region"))
    assert {rule_of(i) for i in outcome["issue"] if i["severity"] == "error"} == {"se-consent"}
    assert not has_errors(validate(rehab_plan.to_fhir(plan), context=ValidationContext(receiver_huvudman="kommun")))


def test_a_consent_that_does_not_cover_the_rehab_plan_is_out_of_scope() -> None:
    from adapter.compliance import ValidationContext

    bundle = rehab_plan.to_fhir(load("gustav-fallprevention.json"))
    of_type(bundle, "Consent")[0]["provision"]["code"] = [{"coding": [{"system": systems.CS_CONSENT_INFORMATION, "code": "genomforandeplan"}]}]
    outcome = validate(bundle, context=ValidationContext(receiver_huvudman="region"))
    assert any("does not cover rehabiliteringsplan" in i["details"]["text"] for i in outcome["issue"] if i["severity"] == "error")
