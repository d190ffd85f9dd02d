"""GetCarePlans 2.0 ⇄ FHIR: fixtures, plans from the other flows, refusals and hostile input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from lxml import etree

from mappings import decision, safexml, systems, terminology
from mappings import fhir as f
from mappings.models import model_for
from mappings.models.decision import CareDecision
from mappings.riv import CARE_PLANS_NS, CORE_NS, RivFormatError, RivWriteError, care_plans
from tests.riv import oracle

RIV_FIXTURES = sorted((oracle.REPO / "fixtures" / "riv").glob("GetCarePlansResponse-*.xml"))
#: Canonical plan fixtures of the other flows whose CarePlans carry a RIV plan type.
PLAN_FIXTURES = sorted(p for kind in ("implementation-plan", "rehab-plan", "sip") for p in (oracle.REPO / "fixtures" / kind).glob("*.json"))


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _plans(xml: bytes) -> list:
    return etree.fromstring(xml).findall(f"{{{CARE_PLANS_NS}}}carePlan")


def _text(element, path: str) -> str | None:
    el = element.find("/".join(f"{{{CORE_NS}}}{step}" for step in path.split("/")))
    return None if el is None else el.text


@pytest.mark.parametrize("path", RIV_FIXTURES, ids=lambda p: p.name)
def test_riv_fixture_round_trips(path: Path) -> None:
    xml = path.read_bytes()
    bundle = care_plans.to_fhir(xml)
    oracle.assert_r4b(bundle)
    oracle.assert_idempotent_entries(bundle)
    out = care_plans.from_fhir(json.loads(json.dumps(bundle)))
    assert oracle.same_tree(xml, out), oracle.first_difference(xml, out)
    if oracle.SHARED_RIV.is_dir():
        oracle.assert_valid("care-plans", xml)
        oracle.assert_valid("care-plans", out)


def test_fixture_reads_as_care_plan_with_document_and_participants() -> None:
    bundle = care_plans.to_fhir(RIV_FIXTURES[0].read_bytes())
    index = f.BundleIndex(bundle)
    rehab = next(p for p in _resources(bundle, "CarePlan") if f.code_in(p.get("category"), systems.CS_CARE_PLAN_TYPE) == "RP")
    assert rehab["intent"] == "plan" and rehab["status"] == "active"
    assert rehab["title"] == "Rehabiliteringsplan efter fall, Margit Holmberg"
    units = [index.resolve(c)["identifier"][0]["value"] for c in rehab["contributor"]]
    assert units == ["SE2321000016-R4HN", "SE5566778899-HTJ1", "SE2120000134-REH1"]
    doc = index.resolve(rehab["supportingInfo"][0])
    assert doc["resourceType"] == "DocumentReference"
    assert index.resolve(doc["context"]["related"][0]) is rehab
    text, pdf = (c["attachment"] for c in doc["content"])
    assert text["contentType"] == "text/plain"
    assert "Margits egna ord" in base64.b64decode(text["data"]).decode("utf-8")
    assert pdf == {
        "extension": [{"url": systems.EXT_RIV_CONTENT_ID, "valueString": "RP-HVC-2026-0388-pdf"}],
        "contentType": "application/pdf",
        "url": "https://journal.regionstockholm.example.se/rehab/RP-HVC-2026-0388.pdf",
    }
    gp = next(p for p in _resources(bundle, "CarePlan") if p is not rehab)
    assert f.extension_value(gp, systems.EXT_RIV_APPROVED_FOR_PATIENT, "valueBoolean") is False


@pytest.mark.parametrize("path", PLAN_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_plans_of_the_other_flows_export_valid_riv(path: Path) -> None:
    from mappings.flows import FLOWS

    kind = path.parent.name
    model = model_for(kind).model_validate_json(path.read_text("utf-8"))
    bundle = FLOWS[kind].mapping().to_fhir(model)
    out = care_plans.from_fhir(bundle)
    if oracle.SHARED_RIV.is_dir():
        oracle.assert_valid("care-plans", out)
    expected = {f.code_in(p.get("category"), systems.CS_CARE_PLAN_TYPE) for p in _resources(bundle, "CarePlan")} - {None}
    assert {_text(p, "carePlanBody/typeOfCarePlanEnum") for p in _plans(out)} == expected
    oracle.assert_r4b(care_plans.to_fhir(out))


def _rehab_plan_bundle() -> dict:
    """A CarePlan as a later flow makes it: category RP, goals, activities, no DocumentReference."""
    patient = {"resourceType": "Patient", "identifier": [{"system": systems.PERSONNUMMER, "value": "194708232485"}]}
    org = {"resourceType": "Organization", "identifier": [{"system": systems.HSA_ID, "value": "SE2321000016-REH9"}], "name": "Rehab Söder"}
    team_org = {"resourceType": "Organization", "identifier": [{"system": systems.ORGANISATIONSNUMMER, "value": "2120000134"}], "name": "Haninge kommun"}
    goal = {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "Jag vill gå till affären själv."}, "subject": {"reference": "urn:uuid:p"}}
    team = {"resourceType": "CareTeam", "participant": [{"member": {"reference": "urn:uuid:o"}}, {"member": {"reference": "urn:uuid:t"}}]}
    plan = {
        "resourceType": "CarePlan",
        "identifier": [{"system": "http://carebridge.se/fhir/sid/plan", "value": "RP-2026-007"}],
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [terminology.coding("riv-care-plan-type", "RP")]}],
        "subject": {"reference": "urn:uuid:p"},
        "period": {"start": "2026-06-01", "end": "2026-08-31"},
        "created": "2026-06-01T09:30:00+02:00",
        "author": {"reference": "urn:uuid:o"},
        "careTeam": [{"reference": "urn:uuid:team"}],
        "goal": [{"reference": "urn:uuid:g"}],
        "activity": [{"detail": {"status": "scheduled", "description": "Gångträning med rollator, 3 gånger per vecka"}}],
    }
    entries = [("p", patient), ("o", org), ("t", team_org), ("g", goal), ("team", team), ("plan", plan)]
    return {"resourceType": "Bundle", "id": "rp-test", "type": "transaction", "entry": [{"fullUrl": f"urn:uuid:{k}", "resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for k, r in entries]}


def test_plan_without_document_is_rendered_as_text() -> None:
    out = care_plans.from_fhir(_rehab_plan_bundle())
    if oracle.SHARED_RIV.is_dir():
        oracle.assert_valid("care-plans", out)
    (plan,) = _plans(out)
    assert _text(plan, "carePlanHeader/documentId") == "RP-2026-007"
    assert _text(plan, "carePlanHeader/sourceSystemHSAId") == "SE2321000016-REH9"
    assert _text(plan, "carePlanHeader/documentTitle") == "Rehabiliteringsplan"
    assert _text(plan, "carePlanHeader/accountableHealthcareProfessional/authorTime") == "20260601093000"
    assert _text(plan, "carePlanBody/content/mediaType") == "text/plain"
    text = base64.b64decode(_text(plan, "carePlanBody/content/value")).decode("utf-8")
    assert "Typ: Rehabiliteringsplan (RP)" in text
    assert "- Jag vill gå till affären själv." in text
    assert "- Gångträning med rollator, 3 gånger per vecka" in text
    units = [(_text(u, "root"), _text(u, "extension")) for u in plan.findall(f"{{{CORE_NS}}}carePlanBody/{{{CORE_NS}}}participatingCareUnitHSAId")]
    assert units == [("SE2321000016-REH9", None), ("2.5.4.97", "2120000134")]
    assert _text(plan, "carePlanBody/typeOfCarePlanEnum") == "RP"


def test_decision_bundle_has_no_care_plan_to_write() -> None:
    path = oracle.REPO / "fixtures" / "decision" / "hemtjanst-timmar.json"
    bundle = decision.to_fhir(CareDecision.model_validate_json(path.read_text("utf-8")))
    with pytest.raises(care_plans.NoCarePlanError, match="no CarePlan with a RIV plan type"):
        care_plans.from_fhir(bundle)


def test_unknown_media_type_is_refused() -> None:
    bundle = care_plans.to_fhir(RIV_FIXTURES[0].read_bytes())
    doc = _resources(bundle, "DocumentReference")[0]
    doc["content"][0]["attachment"]["contentType"] = "application/json"
    with pytest.raises(RivWriteError, match="MediaTypeEnum"):
        care_plans.from_fhir(bundle)


def test_reference_with_spaces_is_kept_outside_the_attachment_url() -> None:
    xml = RIV_FIXTURES[0].read_bytes().replace(b"https://journal.regionstockholm.example.se/rehab/RP-HVC-2026-0388.pdf", b"rehabplan 0388.pdf")
    bundle = care_plans.to_fhir(xml)
    doc = _resources(bundle, "DocumentReference")[0]
    assert "url" not in doc["content"][1]["attachment"]
    assert oracle.same_tree(xml, care_plans.from_fhir(bundle))


def test_empty_response_round_trips() -> None:
    xml = f'<p:GetCarePlansResponse xmlns:p="{CARE_PLANS_NS}" xmlns:c="{CORE_NS}"><p:result><c:resultCode>INFO</c:resultCode><c:logId></c:logId><c:message>Inga planer</c:message></p:result></p:GetCarePlansResponse>'.encode()
    bundle = care_plans.to_fhir(xml)
    assert bundle["entry"] == []
    out = care_plans.from_fhir(bundle)
    assert oracle.same_tree(xml, out), oracle.first_difference(xml, out)


def test_hostile_xml_is_refused() -> None:
    xml = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><p:GetCarePlansResponse xmlns:p="urn:riv:clinicalprocess:logistics:logistics:GetCarePlansResponder:2">&x;</p:GetCarePlansResponse>'
    with pytest.raises(safexml.UnsafeXmlError):
        care_plans.to_fhir(xml)


def test_wrong_contract_is_refused() -> None:
    with pytest.raises(RivFormatError, match="not a GetCarePlansResponse"):
        care_plans.to_fhir((oracle.REPO / "fixtures" / "riv").glob("GetCareServicesResponse-*.xml").__next__().read_bytes())
