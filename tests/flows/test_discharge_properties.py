"""Property: discharge event → FHIR message → event is exact; our messages survive FHIR → canonical → FHIR byte for byte.

What is lossy, precisely: nothing of the canonical model, and nothing of a message carebridge
wrote. For a message written by someone else, what the canonical model has no field for is
dropped (and the data-minimisation rule refuses most of it anyway), and what carebridge derives
is rewritten: resource ids (uuid5 of business keys), `Encounter.status` and `class` (from the
event), `Provenance.recorded` (= the Bundle's timestamp), the notation of times (`Z` becomes
`+00:00`; the instant is the same), display texts of codings.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings import discharge, municipal_xml, terminology
from mappings.models.common import Person
from mappings.models.discharge import DischargeEvent, HospitalStay, PlanningInformation
from tests import strategies as s

ZONES = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5))])
instants = st.builds(
    lambda d, z: d.replace(tzinfo=z),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31)),
    ZONES,
)
uuids = st.uuids(version=4).map(str)
endpoints = st.sampled_from(["https://integration.sodersjukhuset.example/fhir/$process-message", "https://carebridge.haninge.example/fhir/$process-message", "urn:oid:1.2.752.29.4.19"])
persons = st.builds(Person, personnummer=s.personnummer(), given_name=s.optional_text, family_name=s.optional_text, skyddad_folkbokforing=st.booleans())


@st.composite
def events(draw) -> DischargeEvent:
    event = draw(st.sampled_from(terminology.codes("discharge-event")))
    row = terminology.row("discharge-event", event)

    def present(path: str) -> bool:
        return path in row["required"] or (path in row["allowed"] and draw(st.booleans()))

    admitted = draw(instants)
    later = st.integers(0, 90 * 24 * 3600).map(lambda n: admitted + dt.timedelta(seconds=n))
    stay = HospitalStay(
        encounter_id=draw(s.business_id),
        admitted_at=admitted,
        expected_discharge=draw(s.dates) if present("stay.expected_discharge") else None,
        ready_for_discharge_at=draw(later) if present("stay.ready_for_discharge_at") else None,
        discharged_at=draw(later) if present("stay.discharged_at") else None,
        discharge_destination=draw(st.sampled_from(terminology.codes("discharge-destination"))) if present("stay.discharge_destination") else None,
    )
    planning = None
    if present("planning"):
        planning = PlanningInformation(summary=draw(s.text), needs=draw(st.lists(s.text, max_size=4)), spu_needed=draw(st.booleans()), contact=draw(st.none() | s.staff()))
    sender = draw(s.organisations())
    receiver = draw(st.just(sender) | s.organisations().filter(lambda o: not ({o.hsa_id, o.organisationsnummer} - {None}) & ({sender.hsa_id, sender.organisationsnummer} - {None})))
    message_id = draw(uuids)
    return DischargeEvent(
        message_id=message_id,
        bundle_id=draw(st.none() | uuids),
        event=event,
        sent_at=draw(instants),
        previous_message_id=draw(st.none() | uuids.filter(lambda u: u != message_id)),
        sender=sender,
        receiver=receiver,
        source_endpoint=draw(endpoints),
        destination_endpoint=draw(endpoints),
        person=draw(persons),
        stay=stay,
        planning=planning,
        cancellation_reason=draw(s.text) if present("cancellation_reason") else None,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_fhir_round_trip_is_exact(event: DischargeEvent) -> None:
    assert discharge.from_fhir(discharge.to_fhir(event)) == event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_our_messages_survive_canonical_byte_for_byte(event: DischargeEvent) -> None:
    message = json.dumps(discharge.to_fhir(event), ensure_ascii=False)
    via_json = DischargeEvent.model_validate_json(discharge.from_fhir(json.loads(message)).model_dump_json(exclude_none=True))
    via_xml = municipal_xml.from_xml(municipal_xml.to_xml(discharge.from_fhir(json.loads(message))))
    assert json.dumps(discharge.to_fhir(via_json), ensure_ascii=False) == message
    assert json.dumps(discharge.to_fhir(via_xml), ensure_ascii=False) == message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_municipal_xml_round_trip_is_exact(event: DischargeEvent) -> None:
    assert municipal_xml.from_xml(municipal_xml.to_xml(event)) == event


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events(), st.sampled_from(["ok", "fatal-error", "transient-error"]))
def test_messages_and_acknowledgements_parse_and_pass_base_r4_and_the_profiles(event: DischargeEvent, code: str) -> None:
    from fhir.resources.R4B.bundle import Bundle

    from adapter.compliance import validate
    from adapter.compliance.context import ValidationContext

    ctx = ValidationContext(layers=frozenset({"base", "profiles"}), forbid_example_urls=False)
    message = discharge.to_fhir(event)
    issues = [] if code == "ok" else [{"severity": "error", "code": "invalid", "details": {"text": "x"}}]
    ack = discharge.acknowledgement(message, code, issues, at=event.sent_at + dt.timedelta(seconds=3))
    for bundle in (message, ack):
        Bundle.model_validate(bundle)
        outcome = validate(bundle, context=ctx)
        assert [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")] == []
    assert discharge.read_acknowledgement(ack).message_id == event.message_id
    assert uuid.UUID(message["entry"][0]["resource"]["id"]) and message["entry"][0]["resource"]["id"] == event.message_id
