"""SIP / SPU ⇄ FHIR on the fixtures: round trips, reference model, profiles, Swedish rules, FHIR shape."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapter import conversion
from adapter.compliance import has_errors, validate
from adapter.compliance.context import ValidationContext
from adapter.compliance.outcome import rule_of
from mappings import municipal_xml, sip, systems
from mappings.models.sip import CoordinatedPlan

ROOT = Path(__file__).parents[2]
FIXTURES = sorted(ROOT.joinpath("fixtures", "sip").glob("*.json"))
SIP_PROFILES = {
    "CarePlan": systems.PROFILE_SIP_CAREPLAN,
    "CareTeam": systems.PROFILE_SIP_CARETEAM,
    "ServiceRequest": systems.PROFILE_SIP_SERVICE_REQUEST,
    "Observation": systems.PROFILE_SIP_FOLLOW_UP,
    "Consent": systems.PROFILE_CONSENT,
}


def load(name: str) -> CoordinatedPlan:
    return CoordinatedPlan.model_validate_json(ROOT.joinpath("fixtures", "sip", name).read_text("utf-8"))


def of_type(bundle: dict, t: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == t]


def errors(outcome: dict) -> list[tuple[str | None, str]]:
    return [(rule_of(i), i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def server_style(bundle: dict) -> dict:
    """The Bundle as a server hands it back: ids assigned, references `Type/id`, absolute fullUrls."""
    out = copy.deepcopy(bundle)
    ids = {}
    for n, entry in enumerate(out["entry"], start=1):
        res = entry["resource"]
        res["id"] = f"x{n}"
        ids[entry["fullUrl"]] = f"{res['resourceType']}/x{n}"

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str) and node["reference"] in ids:
                node["reference"] = ids[node["reference"]]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(out)
    for entry in out["entry"]:
        entry["fullUrl"] = "https://region.example.se/fhir/" + ids[entry["fullUrl"]]
        entry.pop("request", None)
    out["type"] = "collection"
    return out


# --- the fixtures ------------------------------------------------------------------------


def test_fixtures_cover_sip_spu_consent_several_huvudman_and_a_guardian() -> None:
    plans = [CoordinatedPlan.model_validate_json(p.read_text("utf-8")) for p in FIXTURES]
    assert len(plans) >= 3
    assert {p.plan_type for p in plans} == {"SIP", "SPU"}
    assert any(p.guardian and p.guardian.kind == "god-man" for p in plans)
    assert all(p.consent is not None for p in plans)
    assert any({i.huvudman for i in p.interventions} == {"kommun", "region", "annan"} for p in plans)
    spu = next(p for p in plans if p.plan_type == "SPU")
    assert spu.person.personnummer == "193802142384"
    assert "HAN-2026-0412" in " ".join(i.description for i in spu.interventions)
    decision_persons = {json.loads(p.read_text("utf-8"))["person"]["personnummer"] for p in ROOT.joinpath("fixtures", "decision").glob("*.json")}
    assert {p.person.personnummer for p in plans} <= decision_persons


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_source_fhir_json_fhir_json_has_no_change(path: Path) -> None:
    source = path.read_bytes()
    fhir1 = conversion.convert(source, "fhir")
    json1 = conversion.convert(fhir1, "json")
    fhir2 = conversion.convert(json1, "fhir")
    json2 = conversion.convert(fhir2, "json")
    assert json.loads(json1) == json.loads(json2) == json.loads(conversion.convert(source, "json"))
    assert fhir1 == fhir2
    assert CoordinatedPlan.model_validate_json(json2) == CoordinatedPlan.model_validate_json(source)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fhir_parses_with_the_reference_model(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(sip.to_fhir(CoordinatedPlan.model_validate_json(path.read_text("utf-8"))))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fhir_validates_with_zero_errors_against_the_profiles_and_rules(path: Path) -> None:
    bundle = sip.to_fhir(CoordinatedPlan.model_validate_json(path.read_text("utf-8")))
    claimed = {r["resourceType"]: (r.get("meta") or {}).get("profile", []) for r in (e["resource"] for e in bundle["entry"])}
    for rtype, url in SIP_PROFILES.items():
        if rtype in claimed:
            assert url in claimed[rtype], rtype
    outcome = validate(bundle)
    assert errors(outcome) == []
    assert not [i for i in outcome["issue"] if i["severity"] == "warning"]
    assert not has_errors(validate(bundle, profile=systems.PROFILE_SIP_CAREPLAN))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_municipal_xml_validates_and_reads_back(path: Path) -> None:
    from lxml import etree

    plan = CoordinatedPlan.model_validate_json(path.read_text("utf-8"))
    xml = municipal_xml.to_xml(plan)
    schema = etree.XMLSchema(etree.fromstring(municipal_xml.schema_text("sip").encode()))
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    assert municipal_xml.from_xml(xml) == plan
    assert conversion.convert(conversion.convert(xml, "fhir"), "xml") == xml


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_entry_is_a_conditional_create_and_output_is_deterministic(path: Path) -> None:
    plan = CoordinatedPlan.model_validate_json(path.read_text("utf-8"))
    bundle = sip.to_fhir(plan)
    assert bundle == sip.to_fhir(plan)
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"], entry["resource"]["resourceType"]
        assert entry["fullUrl"].startswith("urn:uuid:")
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_a_bundle_read_back_from_a_server_decodes(path: Path) -> None:
    plan = CoordinatedPlan.model_validate_json(path.read_text("utf-8"))
    assert sip.from_fhir(server_style(sip.to_fhir(plan))) == plan


# --- the FHIR representation -------------------------------------------------------------


def test_care_team_lists_each_organisation_with_role_huvudman_and_the_lead() -> None:
    plan = load("sip-karin-holm-hemsjukvard-hemtjanst.json")
    bundle = sip.to_fhir(plan)
    team = of_type(bundle, "CareTeam")[0]
    orgs = {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"}
    by_name = {}
    for part in team["participant"]:
        member = orgs.get(part["member"]["reference"])
        if member:
            codes = {(c["system"], c["code"]) for r in part["role"] for c in r["coding"]}
            by_name[member["name"]] = codes
    lead = "Handens vårdcentral, hemsjukvården"
    assert (systems.CS_HUVUDMAN, "region") in by_name[lead] and (systems.CS_SIP_ROLE, "overgripande-ansvar") in by_name[lead]
    assert (systems.CS_HUVUDMAN, "kommun") in by_name["Omsorgshuset Södertörn AB"]
    assert sum((systems.CS_SIP_ROLE, "overgripande-ansvar") in codes for codes in by_name.values()) == 1
    assert orgs[team["managingOrganization"][0]["reference"]]["name"] == lead
    roles = [c["code"] for part in team["participant"] for r in part["role"] for c in r["coding"] if c["system"] == systems.CS_SIP_ROLE]
    assert roles.count("den-enskilde") == 1 and roles.count("narstaende") == 1 and roles.count("kontaktperson") == 2
    contact = next(p for p in team["participant"] if "onBehalfOf" in p)
    assert contact["member"]["reference"].startswith("urn:uuid:") and contact["onBehalfOf"]["reference"] in orgs


def test_interventions_are_service_requests_with_the_responsible_organisation_as_performer() -> None:
    plan = load("sip-karin-holm-hemsjukvard-hemtjanst.json")
    bundle = sip.to_fhir(plan)
    orgs = {e["fullUrl"]: e["resource"]["name"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"}
    care_plan = of_type(bundle, "CarePlan")[0]
    requests = {sr["identifier"][0]["value"]: sr for sr in of_type(bundle, "ServiceRequest")}
    assert len(care_plan["activity"]) == len(requests) == 5
    k1 = requests["SIP-HAN-2026-0031/K1"]
    assert orgs[k1["performer"][0]["reference"]] == "Omsorgshuset Södertörn AB"
    assert {c["code"] for cat in k1["category"] for c in cat["coding"]} >= {"kommun", "SoL", "SIP"}
    assert (k1["status"], k1["intent"]) == ("active", "plan")
    assert requests["SIP-HAN-2026-0031/K3"]["intent"] == "proposal"
    a1 = requests["SIP-HAN-2026-0031/A1"]
    assert a1["performer"] == [{"display": "Eva Holm (dotter)"}]
    assert {c["code"] for cat in a1["category"] for c in cat["coding"]} == {"annan", "SIP"}
    assert care_plan["category"][0]["coding"][0] == {"system": systems.CS_CARE_PLAN_TYPE, "code": "SIP", "display": "Samordnad individuell plan"}
    assert care_plan["extension"] == [{"url": systems.EXT_NEXT_FOLLOW_UP, "valueDate": "2026-06-09"}]


def test_follow_up_per_intervention_says_delivered_and_effect() -> None:
    bundle = sip.to_fhir(load("sip-karin-holm-hemsjukvard-hemtjanst.json"))
    care_plan = of_type(bundle, "CarePlan")[0]
    observations = {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    k1 = next(a for a in care_plan["activity"] if "outcomeReference" in a and observations[a["outcomeReference"][0]["reference"]]["identifier"][0]["value"].endswith("/K1/2026-05-26"))
    obs = observations[k1["outcomeReference"][0]["reference"]]
    comps = {c["code"]["coding"][0]["code"]: c["valueCodeableConcept"]["coding"][0]["code"] for c in obs["component"]}
    assert comps == {"levererad": "delvis", "effekt": "for-tidigt"}
    assert obs["basedOn"][0]["reference"] == k1["reference"]["reference"]
    goal = next(g for g in of_type(bundle, "Goal") if g["identifier"][0]["value"] == "sip/SIP-HAN-2026-0031/insats/K2")
    assert goal["achievementStatus"]["coding"][0]["code"] == "achieved"


def test_consent_carries_scope_category_performer_policy_and_provision() -> None:
    bundle = sip.to_fhir(load("sip-karin-holm-hemsjukvard-hemtjanst.json"))
    consent = of_type(bundle, "Consent")[0]
    care_plan = of_type(bundle, "CarePlan")[0]
    urls = {f"Organization/{e['resource']['name']}": e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"}
    consent_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is consent)
    patient_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert care_plan["supportingInfo"] == [{"reference": consent_url}]
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["category"][0]["coding"][0]["code"] == "59284-0"
    assert consent["status"] == "active" and consent["dateTime"] == "2026-05-05"
    assert consent["performer"] == [{"reference": patient_url}]
    assert {c["code"] for c in consent["policyRule"]["coding"]} == {"hsl-16-4", "sol-2-7"}
    provision = consent["provision"]
    assert len(provision["actor"]) == 4 and all(a["role"]["coding"][0]["code"] == "IRCP" for a in provision["actor"])
    assert urls["Organization/Haninge kommun, larmgruppen"] in [a["reference"]["reference"] for a in provision["actor"]]
    assert [p["code"] for p in provision["purpose"]] == ["COC", "TREAT"]
    assert "samordnad-plan" in {c["coding"][0]["code"] for c in provision["code"]}
    relatives = provision["provision"][0]
    assert relatives["type"] == "permit" and len(relatives["actor"]) == 1


def test_provenance_per_contribution() -> None:
    plan = load("sip-karin-holm-hemsjukvard-hemtjanst.json")
    bundle = sip.to_fhir(plan)
    provenances = {p["meta"]["tag"][0]["code"]: p for p in of_type(bundle, "Provenance")}
    contributors = {i.responsible for i in plan.interventions if i.responsible}
    assert set(provenances) == {"provenance/sip/SIP-HAN-2026-0031", *(f"provenance/sip/SIP-HAN-2026-0031/{k}" for k in contributors)}
    requests = {e["fullUrl"]: e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"}
    for key in contributors:
        prov = provenances[f"provenance/sip/SIP-HAN-2026-0031/{key}"]
        mine = [requests[t["reference"]] for t in prov["target"] if t["reference"] in requests]
        assert mine and all(sr["performer"][0]["display"] == plan.participant(key).organisation.name for sr in mine)
    # every resource of the Bundle is covered by exactly one Provenance, except the people and organisations
    targets = [t["reference"] for p in provenances.values() for t in p["target"]]
    assert len(targets) == len(set(targets))
    covered = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] not in ("Patient", "Organization", "Practitioner", "Provenance")}
    assert set(targets) == covered


def test_spu_names_its_hospital_stay_and_rests_on_lag_2017_612() -> None:
    bundle = sip.to_fhir(load("spu-astrid-berglund-utskrivning.json"))
    care_plan = of_type(bundle, "CarePlan")[0]
    assert care_plan["category"][0]["coding"][0]["code"] == "SPU"
    assert care_plan["encounter"] == {"identifier": {"system": systems.SID_ENCOUNTER, "value": "SOS-VT-2026-55102"}}
    assert "lus-4-1" in {c["code"] for c in of_type(bundle, "Consent")[0]["policyRule"]["coding"]}


def test_guardian_case_is_flagged_for_manual_handling() -> None:
    plan = load("sip-gustav-lund-god-man.json")
    assert plan.needs_manual_handling
    bundle = sip.to_fhir(plan)
    care_plan = of_type(bundle, "CarePlan")[0]
    assert {"system": systems.CS_WORKFLOW_FLAG, "code": sip.MANUAL_HANDLING} == {k: v for k, v in care_plan["meta"]["tag"][0].items() if k != "display"}
    guardian = next(r for r in of_type(bundle, "RelatedPerson") if r["identifier"][0]["value"].endswith("/stallforetradare"))
    assert {c["code"] for c in guardian["relationship"][0]["coding"]} == {"GUARD", "god-man"}
    guardian_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is guardian)
    assert of_type(bundle, "Consent")[0]["performer"] == [{"reference": guardian_url}]
    plain = load("sip-karin-holm-hemsjukvard-hemtjanst.json")
    assert "tag" not in of_type(sip.to_fhir(plain), "CarePlan")[0]["meta"]


# --- what the model refuses ----------------------------------------------------------------


def _doc(name: str = "sip-karin-holm-hemsjukvard-hemtjanst.json") -> dict:
    return json.loads(ROOT.joinpath("fixtures", "sip", name).read_text("utf-8"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("consent"), "närstående take part only if the person has consented"),
        (lambda d: d["consent"].update(relatives_may_take_part=False), "närstående take part only"),
        (lambda d: d["consent"].update(status="nekat"), "närstående take part only"),
        (lambda d: d["participants"][1].update(lead=True), "exactly one huvudman with overall responsibility"),
        (lambda d: [p.update(lead=False) for p in d["participants"]], "exactly one huvudman with overall responsibility"),
        (lambda d: d.update(participants=[{**p, "lead": True} if p["huvudman"] == "kommun" and "contact" in p else p for p in d["participants"] if p["huvudman"] != "region"], author="SE2120000134-SN01", interventions=[i for i in d["interventions"] if i["huvudman"] != "region"], consent=None, relatives=[]), "both the kommun and the region"),
        (lambda d: d["interventions"][1].update(responsible="SE2321000016-HVC1"), "carried out by a participant acting for that huvudman"),
        (lambda d: d["interventions"][1].update(responsible="5566778899"), "name it by its HSA-id SE5566778899-HTJ1"),
        (lambda d: d["interventions"][1].pop("legal_domain"), "names its legal domain"),
        (lambda d: d["interventions"][4].pop("performed_by"), "names who carries it out"),
        (lambda d: d["interventions"][0].update(need_ids=["B9"]), "unknown need_ids B9"),
        (lambda d: d["consent"].update(given_by="stallforetradare"), "needs the guardian to be named"),
        (lambda d: d["consent"]["share_between"].append("SE0000000000-XXXX"), "is not a participant's key"),
        (lambda d: d.update(plan_type="SPU"), "an SPU names the hospital stay"),
        (lambda d: d.update(next_follow_up="2026-01-01"), "next_follow_up is before the meeting date"),
        (lambda d: d["interventions"][0]["follow_ups"].append(dict(d["interventions"][0]["follow_ups"][0])), "once per date"),
        (lambda d: d["participants"].append(dict(d["participants"][2])), "listed twice among the participants"),
        (lambda d: d["participants"][0].update(role="narstaende"), "is not an organisation role"),
    ],
)
def test_the_model_refuses_an_inconsistent_plan(change, message: str) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(ValidationError, match=message):
        CoordinatedPlan.model_validate(doc)


# --- compliance: the plan cannot leave its author without consent ---------------------------


def _without_consent() -> CoordinatedPlan:
    doc = _doc("spu-astrid-berglund-utskrivning.json")
    doc.pop("consent")
    doc.pop("relatives")
    return CoordinatedPlan.model_validate(doc)


def test_a_sip_without_consent_fails_the_consent_rule() -> None:
    outcome = validate(sip.to_fhir(_without_consent()))
    assert ("se-consent" in {rule for rule, _ in errors(outcome)}), errors(outcome)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["consent"].update(status="aterkallat", relatives_may_take_part=False) or d.pop("relatives"), "not 'active'"),
        (lambda d: d["consent"].update(status="nekat", relatives_may_take_part=False) or d.pop("relatives"), "not 'active'"),
        (lambda d: d["consent"].update(information=["halsotillstand"]), "does not cover samordnad-plan"),
        (lambda d: d["consent"].update(share_between=["SE2321000016-HVC1", "SE2120000134-SN01"]), "is not among the organisations"),
        (lambda d: d["consent"].update(valid_to="2026-06-30"), "the consent ended 2026-06-30"),
    ],
)
def test_a_consent_out_of_scope_fails_the_consent_rule(change, fragment: str) -> None:
    doc = _doc("spu-astrid-berglund-utskrivning.json")
    change(doc)
    outcome = validate(sip.to_fhir(CoordinatedPlan.model_validate(doc)), context=ValidationContext(today=dt.date(2026, 7, 15)))
    consent_errors = [text for rule, text in errors(outcome) if rule == "se-consent"]
    assert any(fragment in text for text in consent_errors), errors(outcome)


def test_the_rules_need_interventions_per_huvudman_and_a_goal_per_planned_intervention() -> None:
    doc = _doc("spu-astrid-berglund-utskrivning.json")
    doc["interventions"] = [i for i in doc["interventions"] if i["huvudman"] != "region"]
    doc["interventions"][0].pop("intended_effect")
    rules = {rule for rule, _ in errors(validate(sip.to_fhir(CoordinatedPlan.model_validate(doc))))}
    assert {"se-sip-responsibility", "se-activity-goal"} <= rules


def test_profile_catches_a_broken_plan() -> None:
    bundle = sip.to_fhir(load("spu-astrid-berglund-utskrivning.json"))
    plan = of_type(bundle, "CarePlan")[0]
    plan.pop("encounter")
    plan.pop("careTeam")
    texts = " ".join(text for _, text in errors(validate(bundle)))
    assert "cb-sip-2" in texts and "CarePlan.careTeam: minimum required = 1" in texts


# --- from the region ---------------------------------------------------------------------------


def test_a_sip_arriving_as_fhir_becomes_municipal_json_and_xml() -> None:
    plan = load("spu-astrid-berglund-utskrivning.json")
    incoming = json.dumps(server_style(sip.to_fhir(plan))).encode()
    as_json = conversion.convert(incoming, "json")
    as_xml = conversion.convert(incoming, "xml")
    assert CoordinatedPlan.model_validate_json(as_json) == plan
    assert municipal_xml.from_xml(as_xml) == plan


def test_a_foreign_bundle_without_a_sip_is_refused() -> None:
    with pytest.raises(sip.NotASipError):
        sip.from_fhir({"resourceType": "Bundle", "type": "collection", "entry": []})
