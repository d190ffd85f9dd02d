"""GetCareServices 2.0 ⇄ FHIR: the official examples, decision Bundles, refusals and hostile input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from lxml import etree

from mappings import decision, safexml, systems
from mappings import fhir as f
from mappings.models.decision import CareDecision
from mappings.riv import CARE_SERVICES_NS, CORE_NS, RivError, RivFormatError, RivWriteError, care_services, detect
from tests.riv import oracle

DECISIONS = sorted((oracle.REPO / "fixtures" / "decision").glob("*.json"))
RIV_FIXTURES = sorted((oracle.REPO / "fixtures" / "riv").glob("GetCareServicesResponse-*.xml"))


def _decision_bundle(name: str) -> dict:
    return decision.to_fhir(CareDecision.model_validate_json((oracle.REPO / "fixtures" / "decision" / name).read_text("utf-8")))


def _services(xml: bytes) -> list:
    return etree.fromstring(xml).findall(f"{{{CARE_SERVICES_NS}}}careService")


def _text(service, path: str) -> str | None:
    el = service.find("/".join(f"{{{CORE_NS}}}{step}" for step in path.split("/")))
    return None if el is None else el.text


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


# --- Inera's official examples ----------------------------------------------------------


@oracle.needs_shared
def test_official_correct_example_round_trips() -> None:
    xml = (oracle.EXAMPLES / "GetCareServicesResponse-example-correct.xml").read_bytes()
    oracle.assert_valid("care-services", xml)
    bundle = care_services.to_fhir(xml)
    oracle.assert_r4b(bundle)
    out = care_services.from_fhir(bundle)
    oracle.assert_valid("care-services", out)
    assert oracle.same_tree(xml, out), oracle.first_difference(xml, out)


@oracle.needs_shared
def test_official_correct_example_reads_as_a_regional_reader_expects() -> None:
    bundle = care_services.to_fhir((oracle.EXAMPLES / "GetCareServicesResponse-example-correct.xml").read_bytes())
    (sr,) = _resources(bundle, "ServiceRequest")
    assert sr["status"] == "active" and sr["intent"] == "order"
    assert f.code_in(sr["category"], systems.CS_CARE_SERVICE_TYPE) == "HSJV"
    assert sr["occurrenceTiming"]["repeat"]["boundsPeriod"] == {"start": "2013-05-24T15:56:00+02:00"}
    assert sr["authoredOn"] == "2013-05-24T15:56:00+02:00"
    (patient,) = _resources(bundle, "Patient")
    assert patient["identifier"] == [{"system": systems.PERSONNUMMER, "value": "198611062384"}]
    performer = next(r for r in _resources(bundle, "Organization") if r["identifier"][0]["value"] == "SE2321000230-1016")
    assert performer["identifier"][0]["system"] == systems.HSA_ID
    (prov,) = _resources(bundle, "Provenance")
    assert prov["target"] == [{"reference": next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is sr)}]


@oracle.needs_shared
def test_official_incorrect_example_is_rejected_by_the_xsd_and_by_the_reader() -> None:
    xml = (oracle.EXAMPLES / "GetCareServicesResponse-example-incorrect.xml").read_bytes()
    assert oracle.xsd_errors("care-services", xml)
    with pytest.raises(RivFormatError, match="careService is in no namespace"):
        care_services.to_fhir(xml)


# --- Project fixtures (the CLI's RIV inputs) ---------------------------------------------


@pytest.mark.parametrize("path", RIV_FIXTURES, ids=lambda p: p.name)
def test_riv_fixture_round_trips(path: Path) -> None:
    xml = path.read_bytes()
    bundle = care_services.to_fhir(xml)
    oracle.assert_r4b(bundle)
    oracle.assert_idempotent_entries(bundle)
    out = care_services.from_fhir(json.loads(json.dumps(bundle)))
    assert oracle.same_tree(xml, out), oracle.first_difference(xml, out)
    if oracle.SHARED_RIV.is_dir():
        oracle.assert_valid("care-services", xml)
        oracle.assert_valid("care-services", out)


def test_fixture_has_several_care_services_for_one_patient() -> None:
    bundle = care_services.to_fhir(RIV_FIXTURES[0].read_bytes())
    assert len(_resources(bundle, "ServiceRequest")) >= 3
    assert len(_resources(bundle, "Patient")) == 1


def test_fixture_maps_authorship_signature_and_nullification() -> None:
    bundle = care_services.to_fhir(RIV_FIXTURES[0].read_bytes())
    requests = {sr["identifier"][0]["value"]: sr for sr in _resources(bundle, "ServiceRequest")}
    nullified = requests["HAN-2026-0733/2"]
    assert nullified["status"] == "entered-in-error"
    reason = f.extension_value(nullified, systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept")
    assert reason["text"].startswith("Registrerad på fel beslut")
    first = requests["HAN-2026-0733/1"]
    index = f.BundleIndex(bundle)
    prov = next(p for p in _resources(bundle, "Provenance") if index.resolve(p["target"][0]) is first)
    author, attester = prov["agent"]
    assert f.code_in(author["type"], systems.CS_PROVENANCE_AGENT_TYPE) == "author"
    assert index.resolve(author["who"])["identifier"] == [{"system": systems.HSA_ID, "value": "SE2120000134-HL17"}]
    assert author["onBehalfOf"] == {"reference": "#orgunit"}
    assert prov["contained"][0]["name"] == "Haninge kommun, socialnämnden, biståndsenheten"
    assert f.code_in(attester["type"], systems.CS_PROVENANCE_AGENT_TYPE) == "attester"
    assert prov["signature"][0]["when"] == "2026-04-10T14:30:00+02:00"
    assert f.extension_value(first, systems.EXT_RIV_SCOPE, "valueString") == "28 timmar per månad"
    foreign = [e for e in first["extension"] if e["url"] == systems.EXT_RIV_FOREIGN]
    assert len(foreign) == 1 and "lokalInsatskod" in foreign[0]["extension"][1]["valueString"]


# --- Timestamps across daylight saving time ---------------------------------------------


@pytest.mark.parametrize(
    ("riv", "fhir"),
    [
        ("20260115120000", "2026-01-15T12:00:00+01:00"),
        ("20260715120000", "2026-07-15T12:00:00+02:00"),
        ("20261025023000", "2026-10-25T02:30:00+02:00"),  # the repeated hour: first occurrence
        ("20261025033000", "2026-10-25T03:30:00+01:00"),
        ("20260329023000", "2026-03-29T02:30:00+01:00"),  # the skipped hour: winter offset
        ("20260329033000", "2026-03-29T03:30:00+02:00"),
    ],
)
def test_timestamps_get_the_stockholm_offset_and_come_back_identical(riv: str, fhir: str) -> None:
    from mappings.riv import times

    assert times.to_fhir(riv, "t") == fhir
    assert times.from_fhir(fhir, "t") == riv


def test_other_offsets_are_converted_to_stockholm_wall_time() -> None:
    from mappings.riv import times

    assert times.from_fhir("2026-10-25T01:30:00Z", "t") == "20261025023000"  # second 02:30 (+01:00)
    assert times.from_fhir("2026-10-25T00:30:00Z", "t") == "20261025023000"  # first 02:30 (+02:00)
    assert times.from_fhir("2026-07-01T10:00:00.750Z", "t") == "20260701120000"
    assert times.from_fhir("2026-09-30", "t", date_time="235959") == "20260930235959"


def test_second_occurrence_of_the_repeated_hour_keeps_its_digits() -> None:
    from mappings.riv import times

    assert times.from_fhir("2026-10-25T02:30:00+01:00", "t") == "20261025023000"


def test_impossible_timestamp_is_refused() -> None:
    xml = _official_like(start="20260231120000")  # matches the XSD pattern, but 31 February
    with pytest.raises(RivFormatError, match="not a real date"):
        care_services.to_fhir(xml)


# --- Decision Bundles -> careService ----------------------------------------------------


@pytest.mark.parametrize("path", DECISIONS, ids=lambda p: p.name)
def test_every_decision_fixture_exports_valid_riv(path: Path) -> None:
    bundle = decision.to_fhir(CareDecision.model_validate_json(path.read_text("utf-8")))
    out = care_services.from_fhir(bundle)
    if oracle.SHARED_RIV.is_dir():
        oracle.assert_valid("care-services", out)
    back = care_services.to_fhir(out)  # what we write, we read
    oracle.assert_r4b(back)


def test_decision_insats_becomes_a_care_service() -> None:
    out = care_services.from_fhir(_decision_bundle("hemtjanst-timmar.json"))
    first, second = _services(out)
    assert _text(first, "careServiceHeader/documentId") == "HAN-2026-0412/1"
    assert _text(first, "careServiceHeader/sourceSystemHSAId") == "SE2120000134-SN01"
    assert _text(first, "careServiceHeader/patientId/id") == "193802142384"
    assert _text(first, "careServiceHeader/patientId/type") == systems.RIV_PERSONNUMMER_OID
    assert _text(first, "careServiceHeader/accountableHealthcareProfessional/authorTime") == "20260302000000"
    assert _text(first, "careServiceHeader/accountableHealthcareProfessional/healthcareProfessionalHSAId") == "SE2120000134-HL17"
    assert _text(first, "careServiceHeader/accountableHealthcareProfessional/healthcareProfessionalName") == "Maria Lindqvist"
    assert _text(first, "careServiceHeader/approvedForPatient") == "true"
    assert _text(first, "careServiceBody/performerHealthCareUnit/root") == "SE5566778899-HTJ1"
    assert _text(first, "careServiceBody/typeOfCareService") == "HTJ"
    assert _text(first, "careServiceBody/timePeriod/start") == "20260309000000"
    assert _text(first, "careServiceBody/timePeriod/end") == "20260930235959"
    assert _text(first, "careServiceBody/input") == "Hjälp med dusch, på- och avklädning och förflyttning"
    assert _text(first, "careServiceBody/scope") == "28 timmar per månad"
    assert _text(second, "careServiceBody/scope") == "12 timmar per månad"


@pytest.mark.parametrize(
    ("fixture", "scope"),
    [
        ("andringsbeslut.json", "3 besök à 30 minuter per dag"),
        ("trygg-hemgang-rambeslut.json", "Rambeslut: innehåll och tid bestäms av utföraren"),
        ("matdistribution.json", "5 besök per vecka"),
        ("dagverksamhet-skyddad.json", "2 besök à 360 minuter per vecka"),
        ("trygghetslarm.json", care_services.NO_SCOPE),
    ],
)
def test_scope_is_a_readable_swedish_rendering(fixture: str, scope: str) -> None:
    first = _services(care_services.from_fhir(_decision_bundle(fixture)))[0]
    assert _text(first, "careServiceBody/scope") == scope


def test_municipality_without_hsa_id_is_named_by_organisationsnummer() -> None:
    first = _services(care_services.from_fhir(_decision_bundle("trygg-hemgang-rambeslut.json")))[0]
    assert _text(first, "careServiceHeader/sourceSystemHSAId") == "2321000164"


def test_performer_without_hsa_id_is_written_with_its_organisationsnummer() -> None:
    first = _services(care_services.from_fhir(_decision_bundle("lss-ledsagarservice.json")))[0]
    assert _text(first, "careServiceBody/performerHealthCareUnit/root") == "2.5.4.97"
    assert _text(first, "careServiceBody/performerHealthCareUnit/extension") == "5561234567"


def test_refused_insats_is_not_a_care_service() -> None:
    out = care_services.from_fhir(_decision_bundle("avslag-sarskilt-boende.json"))
    root = etree.fromstring(out)
    assert _services(out) == []
    assert root.find(f"{{{CARE_SERVICES_NS}}}result/{{{CORE_NS}}}resultCode").text == "INFO"


def test_provenance_fallback_names_the_municipality_when_no_care_plan() -> None:
    bundle = _decision_bundle("hemtjanst-timmar.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "CarePlan"]
    first = _services(care_services.from_fhir(bundle))[0]
    assert _text(first, "careServiceHeader/sourceSystemHSAId") == "SE2120000134-SN01"


def test_approved_for_patient_false_is_honoured() -> None:
    bundle = _decision_bundle("hemtjanst-timmar.json")
    for sr in _resources(bundle, "ServiceRequest"):
        sr.setdefault("extension", []).append({"url": systems.EXT_RIV_APPROVED_FOR_PATIENT, "valueBoolean": False})
    assert _text(_services(care_services.from_fhir(bundle))[0], "careServiceHeader/approvedForPatient") == "false"


# --- Idempotency and FHIR validity ------------------------------------------------------


def test_to_fhir_is_deterministic_and_every_entry_is_a_conditional_create() -> None:
    xml = RIV_FIXTURES[0].read_bytes()
    assert care_services.to_fhir(xml) == care_services.to_fhir(xml)
    oracle.assert_idempotent_entries(care_services.to_fhir(xml))


def test_samordningsnummer_and_other_person_id_types() -> None:
    from mappings.identifiers import with_check_digit

    sam = _official_like(pid=with_check_digit("19861166238"), pid_type=systems.RIV_SAMORDNINGSNUMMER_OID)
    (patient,) = _resources(care_services.to_fhir(sam), "Patient")
    assert patient["identifier"][0]["system"] == systems.SAMORDNINGSNUMMER
    other = _official_like(pid="RES-0042", pid_type="1.2.752.97.3.1.3")
    bundle = care_services.to_fhir(other)
    (patient,) = _resources(bundle, "Patient")
    assert patient["identifier"] == [{"system": "urn:oid:1.2.752.97.3.1.3", "value": "RES-0042"}]
    assert oracle.same_tree(other, care_services.from_fhir(bundle))


# --- Refusals ---------------------------------------------------------------------------


def test_bundle_without_service_request_is_refused() -> None:
    bundle = _decision_bundle("hemtjanst-timmar.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "ServiceRequest"]
    with pytest.raises(care_services.NoCareServiceError, match="no ServiceRequest"):
        care_services.from_fhir(bundle)


def test_not_a_bundle_is_refused() -> None:
    with pytest.raises(RivWriteError, match="not a FHIR Bundle"):
        care_services.from_fhir({"resourceType": "Patient"})


def test_service_request_without_performer_is_refused_with_one_line() -> None:
    bundle = _decision_bundle("hemtjanst-timmar.json")
    for sr in _resources(bundle, "ServiceRequest"):
        sr.pop("performer")
    with pytest.raises(RivWriteError) as info:
        care_services.from_fhir(bundle)
    assert "performerHealthCareUnit" in str(info.value) and "\n" not in str(info.value)


def test_invalid_personnummer_is_refused_naming_the_field() -> None:
    with pytest.raises(RivFormatError, match=r"patientId/id: personnummer .* wrong check digit"):
        care_services.to_fhir(_official_like(pid="198611062385"))


def test_personnummer_type_with_a_samordningsnummer_is_refused() -> None:
    from mappings.identifiers import with_check_digit

    with pytest.raises(RivFormatError, match="type says personnummer"):
        care_services.to_fhir(_official_like(pid=with_check_digit("19861166238")))


def test_empty_document_id_is_refused() -> None:
    with pytest.raises(RivFormatError, match="documentId is empty"):
        care_services.to_fhir(_official_like(document_id=""))


def test_wrong_root_and_unknown_elements_are_refused() -> None:
    plans = b'<p:GetCarePlansResponse xmlns:p="urn:riv:clinicalprocess:logistics:logistics:GetCarePlansResponder:2"/>'
    with pytest.raises(RivFormatError, match="not a GetCareServicesResponse"):
        care_services.to_fhir(plans)
    extra = _official_like().replace(b"<tns1:input>", b"<tns1:bogus>x</tns1:bogus><tns1:input>")
    with pytest.raises(RivFormatError, match="bogus"):
        care_services.to_fhir(extra)
    with pytest.raises(RivFormatError, match="typeOfCareService"):
        care_services.to_fhir(_official_like().replace(b">HSJV<", b">HEMSJUKVARD<"))


def test_kept_foreign_xml_from_a_bundle_is_parsed_safely() -> None:
    bundle = care_services.to_fhir(RIV_FIXTURES[0].read_bytes())
    hostile = copy.deepcopy(bundle)
    sr = _resources(hostile, "ServiceRequest")[0]
    ext = next(e for e in sr["extension"] if e["url"] == systems.EXT_RIV_FOREIGN)
    ext["extension"][1]["valueString"] = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x:a xmlns:x="urn:x">&e;</x:a>'
    with pytest.raises(RivWriteError, match="refused"):
        care_services.from_fhir(hostile)
    ext["extension"][1]["valueString"] = f'<c:scope xmlns:c="{CORE_NS}">smuggled</c:scope>'
    with pytest.raises(RivWriteError, match="not in another namespace"):
        care_services.from_fhir(hostile)


# --- Hostile RIV input --------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<tns:GetCareServicesResponse xmlns:tns="urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2">&xxe;</tns:GetCareServicesResponse>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<tns:GetCareServicesResponse xmlns:tns="urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2">&lol3;</tns:GetCareServicesResponse>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://example.invalid/evil.dtd">
<tns:GetCareServicesResponse xmlns:tns="urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2"/>"""


@pytest.mark.parametrize("xml", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
def test_hostile_xml_is_refused(xml: bytes) -> None:
    with pytest.raises(safexml.UnsafeXmlError):
        care_services.to_fhir(xml)


def test_errors_are_value_errors_with_one_line() -> None:
    assert issubclass(RivError, ValueError)
    with pytest.raises(ValueError) as info:
        care_services.to_fhir(b"<not-xml")
    assert "\n" not in str(info.value)


def test_detect_names_the_contract() -> None:
    assert detect(safexml.parse(RIV_FIXTURES[0].read_bytes())) == "care-services"
    assert detect(safexml.parse(b'<p:GetCarePlansResponse xmlns:p="urn:riv:clinicalprocess:logistics:logistics:GetCarePlansResponder:2"/>')) == "care-plans"
    assert detect(safexml.parse(b"<GetCareServicesResponse/>")) is None


# --- helpers ------------------------------------------------------------------------------


def _official_like(*, pid: str = "198611062384", pid_type: str = systems.RIV_PERSONNUMMER_OID, start: str = "20130524155600", document_id: str = "20130524155600") -> bytes:
    """Inera's correct example with a few values replaced (built here, not copied from ../shared)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<tns:GetCareServicesResponse xmlns:tns="{CARE_SERVICES_NS}" xmlns:tns1="{CORE_NS}">
  <tns:careService>
    <tns1:careServiceHeader>
      <tns1:documentId>{document_id}</tns1:documentId>
      <tns1:sourceSystemHSAId>SE162321000230-0011</tns1:sourceSystemHSAId>
      <tns1:patientId><tns1:id>{pid}</tns1:id><tns1:type>{pid_type}</tns1:type></tns1:patientId>
      <tns1:accountableHealthcareProfessional><tns1:authorTime>20130524155600</tns1:authorTime></tns1:accountableHealthcareProfessional>
      <tns1:approvedForPatient>true</tns1:approvedForPatient>
    </tns1:careServiceHeader>
    <tns1:careServiceBody>
      <tns1:performerHealthCareUnit><tns1:root>SE2321000230-1016</tns1:root></tns1:performerHealthCareUnit>
      <tns1:typeOfCareService>HSJV</tns1:typeOfCareService>
      <tns1:timePeriod><tns1:start>{start}</tns1:start></tns1:timePeriod>
      <tns1:input>Insulin morgon och kväll</tns1:input>
      <tns1:scope>2 besök per dag</tns1:scope>
    </tns1:careServiceBody>
  </tns:careService>
  <tns:result><tns1:resultCode>OK</tns1:resultCode><tns1:logId>N/A</tns1:logId></tns:result>
</tns:GetCareServicesResponse>""".encode()


def _as_read_from_a_server(bundle: dict, drop: tuple[str, ...] = ()) -> dict:
    """The Bundle as a search result: server ids, `Type/id` references, no transaction meta."""
    text = json.dumps(bundle)
    entries = []
    for n, entry in enumerate(bundle["entry"], start=1):
        kind = entry["resource"]["resourceType"]
        text = text.replace(entry["fullUrl"], f"{kind}/{n}")
    searched = json.loads(text)
    for n, entry in enumerate(searched["entry"], start=1):
        res = entry["resource"]
        if res["resourceType"] in drop:
            continue
        entries.append({"fullUrl": f"https://region.example.se/fhir/{res['resourceType']}/{n}", "resource": {**res, "id": str(n)}})
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def test_care_services_survive_a_server_round_trip() -> None:
    xml = RIV_FIXTURES[0].read_bytes()
    searched = _as_read_from_a_server(care_services.to_fhir(xml), drop=("Organization",))
    out = care_services.from_fhir(searched)
    original = [oracle.canon(s) for s in _services(xml)]
    assert [oracle.canon(s) for s in _services(out)] == original
    result = etree.fromstring(out).find(f"{{{CARE_SERVICES_NS}}}result/{{{CORE_NS}}}resultCode")
    assert result.text == "OK"  # the response's result is transport, not stored: written anew
