"""Discharge events ⇄ FHIR messages on the fixtures: thread, round trips, reference model, profiles, minimisation, acks."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapter import conversion
from adapter.compliance import validate
from adapter.compliance.outcome import rule_of
from mappings import discharge, municipal_xml, systems
from mappings.flows import FLOWS, flow_of_bundle
from mappings.models.discharge import DischargeEvent

ROOT = Path(__file__).parents[2]
FIXTURES = sorted(ROOT.joinpath("fixtures", "discharge").glob("*.json"))
AT = dt.datetime(2026, 6, 2, 8, 41, tzinfo=dt.timezone.utc)


def load(path: Path) -> DischargeEvent:
    return DischargeEvent.model_validate_json(path.read_text("utf-8"))


def of_type(bundle: dict, t: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == t]


def errors(outcome: dict) -> list[tuple[str | None, str, str]]:
    return [(rule_of(i), ", ".join(i.get("expression", ())), i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def server_style(bundle: dict) -> dict:
    """As SEKMET stores a message's resources: references rewritten to `Type/id`, read back as a collection."""
    out = copy.deepcopy(bundle)
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in out["entry"]}

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
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "http://sekmet.local/fhir/" + ids[e["fullUrl"]], "resource": e["resource"]} for e in out["entry"]]}


# --- the fixtures: one hospital stay, threaded ------------------------------------------------


def test_fixtures_are_one_stay_of_astrid_threaded_by_provenance() -> None:
    events = [load(p) for p in FIXTURES]
    assert [e.event for e in events] == ["inskrivning", "planeringsinformation", "utskrivningsklar", "utskrivningsklar-aterkallad", "utskrivningsklar", "utskrivning"]
    assert {e.person.personnummer for e in events} == {"193802142384"}
    assert len({e.stay.encounter_id for e in events}) == 1
    assert events[0].previous_message_id is None
    for before, after in zip(events, events[1:]):
        assert after.previous_message_id == before.message_id
        assert after.sent_at > before.sent_at
    for before, after in zip(events, events[1:]):
        provenance = of_type(discharge.to_fhir(after), "Provenance")[0]
        assert provenance["entity"] == [{"role": "revision", "what": {"reference": f"MessageHeader/{before.message_id}"}}]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_source_fhir_json_fhir_json_has_no_change(path: Path) -> None:
    source = path.read_bytes()
    fhir1 = conversion.convert(source, "fhir")
    json1 = conversion.convert(fhir1, "json")
    fhir2 = conversion.convert(json1, "fhir")
    json2 = conversion.convert(fhir2, "json")
    assert fhir1 == fhir2
    assert json1 == json2
    assert DischargeEvent.model_validate_json(json2) == load(path)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fhir_message_to_canonical_to_fhir_message_is_byte_identical(path: Path) -> None:
    message = json.dumps(discharge.to_fhir(load(path)), ensure_ascii=False).encode()
    for target in ("json", "xml"):
        canonical = conversion.convert(message, target)
        assert json.dumps(json.loads(conversion.convert(canonical, "fhir")), ensure_ascii=False).encode() == message


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fhir_parses_with_the_reference_model(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(discharge.to_fhir(load(path)))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_message_validates_with_zero_errors_and_claims_the_profiles(path: Path) -> None:
    bundle = discharge.to_fhir(load(path))
    assert bundle["meta"]["profile"] == [systems.PROFILE_DISCHARGE_MESSAGE]
    assert of_type(bundle, "MessageHeader")[0]["meta"]["profile"] == [systems.PROFILE_DISCHARGE_MESSAGEHEADER]
    assert of_type(bundle, "Encounter")[0]["meta"]["profile"] == [systems.PROFILE_DISCHARGE_ENCOUNTER]
    outcome = validate(bundle)
    assert errors(outcome) == []
    assert not [i for i in outcome["issue"] if i["severity"] == "warning"]
    assert "se-consent" in {rule_of(i) for i in outcome["issue"] if i["severity"] == "information"}  # lag 2017:612 is the basis


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_municipal_xml_validates_and_reads_back(path: Path) -> None:
    from lxml import etree

    event = load(path)
    xml = municipal_xml.to_xml(event)
    schema = etree.XMLSchema(etree.fromstring(municipal_xml.schema_text("discharge").encode()))
    assert schema.validate(etree.fromstring(xml)), schema.error_log
    assert municipal_xml.from_xml(xml) == event


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_a_message_read_back_from_a_server_decodes(path: Path) -> None:
    event = load(path)
    assert discharge.from_fhir(server_style(discharge.to_fhir(event))) == event


def test_the_flow_is_registered_as_a_message_flow() -> None:
    bundle = discharge.to_fhir(load(FIXTURES[0]))
    assert flow_of_bundle(bundle) is FLOWS["discharge"]
    assert FLOWS["discharge"].delivery == "message"
    assert FLOWS["sip"].delivery == FLOWS["decision"].delivery == "transaction"


# --- the message's shape --------------------------------------------------------------------


def test_admission_message_shape() -> None:
    event = load(FIXTURES[0])
    bundle = discharge.to_fhir(event)
    assert bundle["type"] == "message" and bundle["timestamp"] == "2026-06-02T08:40:00+02:00"
    assert bundle["identifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{bundle['id']}"}
    header = bundle["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader" and header["id"] == event.message_id
    assert bundle["entry"][0]["fullUrl"] == f"urn:uuid:{event.message_id}"
    assert header["eventCoding"] == {"system": systems.CS_DISCHARGE_EVENT, "code": "inskrivning", "display": "Inskrivningsmeddelande"}
    assert header["source"] == {"endpoint": event.source_endpoint}
    assert header["destination"][0]["endpoint"] == event.destination_endpoint
    orgs = {e["fullUrl"]: e["resource"]["name"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization"}
    assert orgs[header["sender"]["reference"]] == "Södersjukhuset, geriatrisk avdelning 63"
    assert orgs[header["destination"][0]["receiver"]["reference"]] == "Haninge kommun, socialnämnden"
    encounter = of_type(bundle, "Encounter")[0]
    assert header["focus"] == [{"reference": f"urn:uuid:{encounter['id']}"}]
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "in-progress"
    assert encounter["period"] == {"start": "2026-06-02T08:15:00+02:00"}
    assert encounter["extension"] == [{"url": systems.EXT_EXPECTED_DISCHARGE, "valueDate": "2026-06-09"}]
    patient = of_type(bundle, "Patient")[0]
    assert set(patient) == {"resourceType", "id", "identifier", "name"}
    assert "193802142384" not in json.dumps({k: v for k, v in patient.items() if k != "identifier"})  # ids never derive from it
    assert [r["resourceType"] for r in (e["resource"] for e in bundle["entry"])] == ["MessageHeader", "Encounter", "Patient", "Organization", "Organization", "Provenance"]


def test_planning_information_is_a_communication_in_focus() -> None:
    bundle = discharge.to_fhir(load(FIXTURES[1]))
    com = of_type(bundle, "Communication")[0]
    header = bundle["entry"][0]["resource"]
    assert {"reference": f"urn:uuid:{com['id']}"} in header["focus"]
    assert len(com["payload"]) == 4 and com["note"][0]["text"].startswith("Astrid föll")
    assert com["extension"] == [{"url": systems.EXT_SPU_NEEDED, "valueBoolean": True}]
    practitioner = of_type(bundle, "Practitioner")[0]
    assert com["sender"]["reference"] == f"urn:uuid:{practitioner['id']}"


def test_ready_recall_and_discharge() -> None:
    ready, recall, discharged = (discharge.to_fhir(load(FIXTURES[i])) for i in (2, 3, 5))
    assert {"url": systems.EXT_READY_FOR_DISCHARGE, "valueDateTime": "2026-06-08T13:00:00+02:00"} in of_type(ready, "Encounter")[0]["extension"]
    assert recall["entry"][0]["resource"]["reason"]["text"].startswith("Astrid har fått feber")
    assert systems.EXT_READY_FOR_DISCHARGE not in json.dumps(of_type(recall, "Encounter")[0])
    enc = of_type(discharged, "Encounter")[0]
    assert enc["status"] == "finished" and enc["period"]["end"] == "2026-06-12T11:30:00+02:00"
    assert enc["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "hem"


def test_same_stay_same_resource_ids_across_messages() -> None:
    bundles = [discharge.to_fhir(load(p)) for p in FIXTURES]
    assert len({of_type(b, "Encounter")[0]["id"] for b in bundles}) == 1
    assert len({of_type(b, "Patient")[0]["id"] for b in bundles}) == 1
    assert len({b["id"] for b in bundles}) == len({b["entry"][0]["resource"]["id"] for b in bundles}) == len(bundles)


# --- data minimisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path_index", "change", "message"),
    [
        (0, lambda d: d["person"].update(address={"line": "Vendelsövägen 12"}), "no address or phone"),
        (0, lambda d: d["person"].update(phone="+46701234567"), "no address or phone"),
        (0, lambda d: d.update(planning={"summary": "x"}), "carries no planning"),
        (0, lambda d: d["stay"].update(discharged_at="2026-06-03T10:00:00+02:00"), "carries no stay.discharged_at"),
        (1, lambda d: d.pop("planning"), "needs planning"),
        (2, lambda d: d["stay"].pop("ready_for_discharge_at"), "needs stay.ready_for_discharge_at"),
        (3, lambda d: d["stay"].update(ready_for_discharge_at="2026-06-08T13:00:00+02:00"), "carries no stay.ready_for_discharge_at"),
        (5, lambda d: d["stay"].pop("discharge_destination"), "needs stay.discharge_destination"),
        (5, lambda d: d.update(cancellation_reason="x"), "carries no cancellation_reason"),
        (1, lambda d: d.update(previous_message_id=d["message_id"]), "cannot follow itself"),
        (0, lambda d: d.update(message_id="not-a-uuid"), "message_id"),
        (0, lambda d: d.update(sent_at="2026-06-02T08:40:00"), "UTC offset"),
        (0, lambda d: d["stay"].update(admitted_at="2026-06-03T08:15:00+02:00", expected_discharge=None) or d.update(event="utskrivning") or d["stay"].update(discharged_at="2026-06-02T08:15:00+02:00", discharge_destination="hem"), "before admitted_at"),
    ],
)
def test_the_model_refuses_more_or_less_than_an_event_carries(path_index: int, change, message: str) -> None:
    doc = json.loads(FIXTURES[path_index].read_text("utf-8"))
    change(doc)
    with pytest.raises(ValidationError, match=message):
        DischargeEvent.model_validate(doc)


def test_an_admission_carrying_more_than_it_needs_fails_data_minimisation() -> None:
    bundle = discharge.to_fhir(load(FIXTURES[0]))
    of_type(bundle, "Patient")[0]["address"] = [{"line": ["Vendelsövägen 12"], "city": "Handen"}]
    patient_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    bundle["entry"].append({"fullUrl": "urn:uuid:5b0f5a57-5b0d-4a4e-9d59-1c1b6f7d9a01", "resource": {
        "resourceType": "Condition", "id": "5b0f5a57-5b0d-4a4e-9d59-1c1b6f7d9a01", "subject": {"reference": patient_url}, "code": {"text": "Höftfraktur"}}})
    found = [(rule, where) for rule, where, _ in errors(validate(bundle))]
    assert ("se-data-minimisation", "Bundle.entry[2].resource.address") in found
    assert ("se-data-minimisation", "Bundle.entry[6].resource") in found


def test_profile_keeps_the_encounter_minimal() -> None:
    bundle = discharge.to_fhir(load(FIXTURES[0]))
    encounter = of_type(bundle, "Encounter")[0]
    encounter["diagnosis"] = [{"condition": {"display": "Höftfraktur"}}]
    encounter["status"] = "finished"
    texts = " ".join(text for _, _, text in errors(validate(bundle)))
    assert "Encounter.diagnosis: max allowed = 0" in texts and "cb-enc-1" in texts


def test_profile_requires_message_header_first_and_one_patient() -> None:
    bundle = discharge.to_fhir(load(FIXTURES[0]))
    bundle["entry"].append(copy.deepcopy(bundle["entry"][2]))
    bundle["entry"][-1]["fullUrl"] = "urn:uuid:0f2d1f9e-4c55-4a8e-8b1e-6a3f6f7c1d22"
    bundle["entry"][-1]["resource"]["id"] = "0f2d1f9e-4c55-4a8e-8b1e-6a3f6f7c1d22"
    bundle["entry"][0], bundle["entry"][1] = bundle["entry"][1], bundle["entry"][0]
    texts = " ".join(text for _, _, text in errors(validate(bundle)))
    assert "cb-msg-1" in texts and "cb-msg-3" in texts


# --- acknowledgements --------------------------------------------------------------------------


def test_ok_acknowledgement_answers_the_message() -> None:
    message = discharge.to_fhir(load(FIXTURES[0]))
    ack = discharge.acknowledgement(message, "ok", at=AT)
    header = ack["entry"][0]["resource"]
    request = message["entry"][0]["resource"]
    assert ack["type"] == "message" and ack["timestamp"] == AT.isoformat()
    assert header["response"] == {"identifier": request["id"], "code": "ok"}
    assert header["destination"][0]["endpoint"] == request["source"]["endpoint"]
    assert header["source"]["endpoint"] == request["destination"][0]["endpoint"]
    assert header["sender"]["reference"] == request["destination"][0]["receiver"]["reference"]
    assert not of_type(ack, "OperationOutcome")
    assert of_type(ack, "Provenance")[0]["entity"] == [{"role": "source", "what": {"reference": f"MessageHeader/{request['id']}"}}]
    assert errors(validate(ack)) == []
    assert discharge.read_acknowledgement(ack) == discharge.Acknowledgement(request["id"], "ok")
    assert discharge.acknowledgement(message, "ok", at=AT) == ack


@pytest.mark.parametrize("code", ["fatal-error", "transient-error"])
def test_an_acknowledgement_that_is_not_ok_carries_an_operation_outcome(code: str) -> None:
    message = discharge.to_fhir(load(FIXTURES[1]))
    issue = {"severity": "error", "code": "invalid", "details": {"text": "Patient.identifier saknas"}}
    ack = discharge.acknowledgement(message, code, [issue], at=AT)
    header = ack["entry"][0]["resource"]
    outcome = of_type(ack, "OperationOutcome")[0]
    assert header["response"]["code"] == code
    assert header["response"]["details"] == {"reference": f"urn:uuid:{outcome['id']}"}
    assert outcome["issue"] == [issue]
    assert errors(validate(ack)) == []
    read = discharge.read_acknowledgement(ack)
    assert read.code == code and not read.ok and read.issues == (issue,)
    with pytest.raises(ValueError, match="carries an OperationOutcome"):
        discharge.acknowledgement(message, code, [], at=AT)


def test_the_ack_profile_requires_an_outcome_when_not_ok() -> None:
    message = discharge.to_fhir(load(FIXTURES[1]))
    ack = discharge.acknowledgement(message, "fatal-error", [{"severity": "fatal", "code": "invalid", "details": {"text": "x"}}], at=AT)
    ack["entry"] = [e for e in ack["entry"] if e["resource"]["resourceType"] != "OperationOutcome"]
    ack["entry"][0]["resource"]["response"].pop("details")
    texts = " ".join(text for _, _, text in errors(validate(ack)))
    assert "cb-ack-2" in texts and "cb-ackh-1" in texts
