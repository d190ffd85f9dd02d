"""Discharge events (lag 2017:612) ⇄ FHIR R4 messages, and their acknowledgements.

An event becomes a message Bundle (MedCom style, see docs/flows/discharge.md):

    Bundle (type message, timestamp = sent_at)
      MessageHeader   eventCoding = discharge-event code; source/destination endpoints;
                      sender = hospital unit, destination.receiver = kommun; focus = Encounter
                      (and the planning Communication); reason = why a utskrivningsklar is recalled
      Encounter       class IMP, status from the event, period admitted → discharged,
                      serviceProvider = sender, extensions for expected discharge date and the
                      utskrivningsklar time, hospitalization.dischargeDisposition = destination
      Patient         identifier and name only (data minimisation)
      Organization    sender and receiver
      Communication   planning information (planeringsinformation only), Practitioner = ward contact
      Provenance      target = this MessageHeader, activity = the event, entity (role revision) =
                      `MessageHeader/<id>` of the previous message in the thread

Resource ids are deterministic (uuid5 of business keys, never of a personnummer), so the same
event always gives the same Bundle. An acknowledgement (`acknowledgement()`) answers each
message: `MessageHeader.response` = {identifier: the acknowledged MessageHeader.id, code: ok |
transient-error | fatal-error}, with an OperationOutcome when not ok.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from mappings import fhir as f
from mappings import systems, terminology
from mappings.models.common import Organisation, Staff
from mappings.models.discharge import DischargeEvent, PlanningInformation

Bundle = dict[str, Any]

_NS = uuid.UUID("3a7c4f0e-9d21-4b6a-8f5e-2c1d0b9a8e77")
RESPONSE_CODES = ("ok", "transient-error", "fatal-error")
URN_SYSTEM = "urn:ietf:rfc:3986"


def _id(*key: str) -> str:
    """A deterministic resource id from a business key."""
    return str(uuid.uuid5(_NS, "|".join(key)))


def default_bundle_id(message_id: str) -> str:
    """The Bundle.id a message gets when its canonical form names none."""
    return _id("message-bundle", message_id)


def _entry(resource: dict) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def _url(resource: dict) -> str:
    return f"urn:uuid:{resource['id']}"


# ======================================================================================
# Encoder
# ======================================================================================


def to_fhir(event: DischargeEvent) -> Bundle:
    """Encode a discharge event as a FHIR R4 message Bundle (MessageHeader first)."""
    e = event
    stay_key = (f.organisation_key(e.sender), e.stay.encounter_id)
    sender = _organization(e.sender)
    receiver = _organization(e.receiver) if f.organisation_key(e.receiver) != f.organisation_key(e.sender) else sender
    patient, _ = f.patient(e.person)
    patient = {"resourceType": "Patient", "id": _id("Patient", *stay_key), **{k: v for k, v in patient.items() if k != "resourceType"}}
    encounter = _encounter(e, _id("Encounter", *stay_key), patient, sender)
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": e.message_id,
        "meta": {"profile": [systems.PROFILE_DISCHARGE_MESSAGEHEADER]},
        "eventCoding": terminology.coding("discharge-event", e.event),
        "destination": [{"endpoint": e.destination_endpoint, "receiver": f.ref(_url(receiver), e.receiver.name)}],
        "sender": f.ref(_url(sender), e.sender.name),
        "source": {"endpoint": e.source_endpoint},
    }
    if e.cancellation_reason:
        header["reason"] = {"text": e.cancellation_reason}
    focus = [f.ref(_url(encounter))]
    extra: list[dict] = []
    if e.planning:
        communication, practitioner = _communication(e, e.planning, patient, encounter, sender, receiver)
        focus.append(f.ref(_url(communication)))
        extra = [communication, *([practitioner] if practitioner else [])]
    header["focus"] = focus
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": _id("Provenance", e.message_id),
        "target": [f.ref(f"urn:uuid:{e.message_id}")],
        "recorded": _instant(e.sent_at),
        "activity": {"coding": [terminology.coding("discharge-event", e.event)]},
        "agent": [{"type": {"coding": [{"system": systems.CS_PROVENANCE_AGENT_TYPE, "code": "author"}]}, "who": f.ref(_url(sender), e.sender.name)}],
    }
    if e.previous_message_id:
        provenance["entity"] = [{"role": "revision", "what": {"reference": f"MessageHeader/{e.previous_message_id}"}}]
    organizations = [sender] if receiver is sender else [sender, receiver]
    resources = [header, encounter, patient, *organizations, *extra, provenance]
    bundle_id = e.bundle_id or default_bundle_id(e.message_id)
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"profile": [systems.PROFILE_DISCHARGE_MESSAGE]},
        "identifier": bundle_identifier(bundle_id),
        "type": "message",
        "timestamp": _instant(e.sent_at),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def bundle_identifier(bundle_id: str) -> dict[str, str]:
    """Bundle.identifier of a message: its Bundle.id as a URN, so a server that re-ids stored Bundles still finds it."""
    return {"system": URN_SYSTEM, "value": f"urn:uuid:{bundle_id}"}


def _instant(value: dt.datetime) -> str:
    return value.isoformat()


def _organization(org: Organisation) -> dict:
    res, _ = f.organization(org)
    return {"resourceType": "Organization", "id": _id("Organization", f.organisation_key(org)), **{k: v for k, v in res.items() if k != "resourceType"}}


def _encounter(e: DischargeEvent, encounter_id: str, patient: dict, sender: dict) -> dict:
    s = e.stay
    extensions = []
    if s.expected_discharge:
        extensions.append({"url": systems.EXT_EXPECTED_DISCHARGE, "valueDate": s.expected_discharge.isoformat()})
    if s.ready_for_discharge_at:
        extensions.append({"url": systems.EXT_READY_FOR_DISCHARGE, "valueDateTime": _instant(s.ready_for_discharge_at)})
    res: dict[str, Any] = {"resourceType": "Encounter", "id": encounter_id, "meta": {"profile": [systems.PROFILE_DISCHARGE_ENCOUNTER]}}
    if extensions:
        res["extension"] = extensions
    res["identifier"] = [f.identifier(systems.SID_ENCOUNTER, s.encounter_id)]
    res["status"] = terminology.row("discharge-event", e.event)["encounter_status"]
    res["class"] = {"system": systems.CS_V3_ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
    res["subject"] = f.ref(_url(patient))
    period = {"start": _instant(s.admitted_at)}
    if s.discharged_at:
        period["end"] = _instant(s.discharged_at)
    res["period"] = period
    if s.discharge_destination:
        res["hospitalization"] = {"dischargeDisposition": {"coding": [terminology.coding("discharge-destination", s.discharge_destination)]}}
    res["serviceProvider"] = f.ref(_url(sender), e.sender.name)
    return res


def _communication(e: DischargeEvent, planning: PlanningInformation, patient: dict, encounter: dict, sender: dict, receiver: dict) -> tuple[dict, dict | None]:
    practitioner = None
    if planning.contact:
        res, _ = f.practitioner(planning.contact)
        practitioner = {"resourceType": "Practitioner", "id": _id("Practitioner", f.staff_key(planning.contact)), **{k: v for k, v in res.items() if k != "resourceType"}}
    com: dict[str, Any] = {"resourceType": "Communication", "id": _id("Communication", e.message_id)}
    if planning.spu_needed:
        com["extension"] = [{"url": systems.EXT_SPU_NEEDED, "valueBoolean": True}]
    com["status"] = "completed"
    com["category"] = [{"coding": [terminology.coding("discharge-event", e.event)]}]
    com["subject"] = f.ref(_url(patient))
    com["encounter"] = f.ref(_url(encounter))
    com["sent"] = _instant(e.sent_at)
    com["recipient"] = [f.ref(_url(receiver), e.receiver.name)]
    com["sender"] = f.ref(_url(practitioner), planning.contact.name) if practitioner and planning.contact else f.ref(_url(sender), e.sender.name)
    if planning.needs:
        com["payload"] = [{"contentString": need} for need in planning.needs]
    com["note"] = [{"text": planning.summary}]
    return com, practitioner


# ======================================================================================
# Decoder
# ======================================================================================


class NotADischargeMessageError(ValueError):
    """A FHIR Bundle that carries no (or more than one) discharge event."""


def event_header(bundle: Bundle) -> dict | None:
    """The discharge-event MessageHeader of a Bundle (not an acknowledgement's), if exactly one."""
    headers = [
        h
        for h in f.BundleIndex(bundle).resources("MessageHeader")
        if "response" not in h and (h.get("eventCoding") or {}).get("system") == systems.CS_DISCHARGE_EVENT
    ]
    return headers[0] if len(headers) == 1 else None


def from_fhir(bundle: Bundle) -> DischargeEvent:
    """Decode the discharge event of a message Bundle, or of a collection read back from a server."""
    index = f.BundleIndex(bundle)
    header = event_header(bundle)
    if header is None:
        raise NotADischargeMessageError("expected exactly one discharge-event MessageHeader in the Bundle")
    message_id = header.get("id") or ""
    focus = [index.resolve(r) for r in header.get("focus", ())]
    encounter = next((r for r in focus if r and r.get("resourceType") == "Encounter"), None)
    if encounter is None:
        raise NotADischargeMessageError(f"MessageHeader {message_id}: focus names no Encounter in the Bundle")
    communication = next((r for r in focus if r and r.get("resourceType") == "Communication"), None)
    patient = _must(index, encounter.get("subject"), "Encounter.subject")
    sender = _must(index, header.get("sender"), "MessageHeader.sender")
    destination = (header.get("destination") or [{}])[0]
    receiver = _must(index, destination.get("receiver"), "MessageHeader.destination.receiver")
    provenance = next((p for p in index.resources("Provenance") if any(index.resolve(t) is header for t in p.get("target", ()))), None)
    previous = None
    for entity in (provenance or {}).get("entity", ()):
        target = (entity.get("what") or {}).get("reference", "")
        if entity.get("role") == "revision" and target.startswith("MessageHeader/"):
            previous = target.split("/")[1]
    is_message = bundle.get("type") == "message"
    sent_at = bundle.get("timestamp") if is_message and bundle.get("timestamp") else (provenance or {}).get("recorded")
    bundle_id = _bundle_id(bundle) if is_message else None
    if bundle_id == default_bundle_id(message_id):
        bundle_id = None
    return DischargeEvent.model_validate({
        "message_id": message_id,
        "bundle_id": bundle_id,
        "event": (header.get("eventCoding") or {}).get("code"),
        "sent_at": sent_at,
        "previous_message_id": previous,
        "sender": f.organisation_from(sender),
        "receiver": f.organisation_from(receiver),
        "source_endpoint": (header.get("source") or {}).get("endpoint"),
        "destination_endpoint": destination.get("endpoint"),
        "person": f.person_from(patient),
        "stay": _stay(encounter),
        "planning": _planning(communication, index) if communication else None,
        "cancellation_reason": (header.get("reason") or {}).get("text"),
    })


def _bundle_id(bundle: Bundle) -> str | None:
    """The message's own Bundle.id: from Bundle.identifier when present (servers re-id stored Bundles)."""
    ident = bundle.get("identifier") or {}
    value = ident.get("value") or ""
    if ident.get("system") == URN_SYSTEM and value.startswith("urn:uuid:"):
        return value.removeprefix("urn:uuid:")
    return bundle.get("id")


def _stay(encounter: dict) -> dict[str, Any]:
    """The canonical HospitalStay fields of the message's Encounter."""
    period = encounter.get("period") or {}
    destination = ((encounter.get("hospitalization") or {}).get("dischargeDisposition"))
    return {
        "encounter_id": f.first_identifier(encounter, systems.SID_ENCOUNTER),
        "admitted_at": period.get("start"),
        "expected_discharge": f.extension_value(encounter, systems.EXT_EXPECTED_DISCHARGE, "valueDate"),
        "ready_for_discharge_at": f.extension_value(encounter, systems.EXT_READY_FOR_DISCHARGE, "valueDateTime"),
        "discharged_at": period.get("end"),
        "discharge_destination": f.code_in(destination, systems.CS_DISCHARGE_DESTINATION),
    }


def _planning(com: dict, index: f.BundleIndex) -> dict[str, Any]:
    """The canonical PlanningInformation fields of the planning Communication."""
    sender = index.resolve(com.get("sender"))
    contact: Staff | None = f.staff_from(sender) if sender and sender.get("resourceType") == "Practitioner" else None
    return {
        "summary": (com.get("note") or [{}])[0].get("text"),
        "needs": [p["contentString"] for p in com.get("payload", ()) if "contentString" in p],
        "spu_needed": bool(f.extension_value(com, systems.EXT_SPU_NEEDED, "valueBoolean")),
        "contact": contact,
    }


def _must(index: f.BundleIndex, reference: dict | None, what: str) -> dict:
    res = index.resolve(reference)
    if res is None:
        raise NotADischargeMessageError(f"{what} does not resolve inside the Bundle ({(reference or {}).get('reference')})")
    return res


# ======================================================================================
# Acknowledgements
# ======================================================================================


@dataclass(frozen=True)
class Acknowledgement:
    """What an acknowledgement says: which message, ok or not, and why."""

    message_id: str
    code: str
    issues: tuple[dict, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code == "ok"


def message_ids(bundle: Bundle) -> tuple[str | None, str | None]:
    """(Bundle.id, MessageHeader.id) of a message Bundle: the receiver's dedupe key."""
    entries = bundle.get("entry") or []
    first = (entries[0] or {}).get("resource") if entries and isinstance(entries[0], dict) else None
    header_id = first.get("id") if isinstance(first, dict) and first.get("resourceType") == "MessageHeader" else None
    return bundle.get("id"), header_id


def addressee(bundle: Bundle) -> set[str]:
    """The identifiers (HSA-id, organisationsnummer) of the organisation a message is addressed to."""
    entries = bundle.get("entry") or []
    header = (entries[0] or {}).get("resource") if entries else None
    if not isinstance(header, dict) or not isinstance(header.get("destination"), list) or not header["destination"]:
        return set()
    receiver = f.BundleIndex(bundle).resolve((header["destination"][0] or {}).get("receiver"))
    if not receiver:
        return set()
    return {v for v in (f.first_identifier(receiver, systems.HSA_ID), f.first_identifier(receiver, systems.ORGANISATIONSNUMMER)) if v}


def acknowledgement(request: Bundle, code: str, issues: list[dict] | None = None, *, at: dt.datetime) -> Bundle:
    """The acknowledgement message answering `request`: response code, and an OperationOutcome unless ok.

    The acknowledging side is the request's receiver: the ack goes to the request's
    `source.endpoint`, from its `destination.endpoint`; both Organizations are copied in.
    """
    if code not in RESPONSE_CODES:
        raise ValueError(f"unknown response code {code!r}")
    if code != "ok" and not issues:
        raise ValueError("an acknowledgement that is not ok carries an OperationOutcome issue")
    bundle_id, header_id = message_ids(request)
    index = f.BundleIndex(request)
    req = (request.get("entry") or [{}])[0].get("resource") or {}
    destination = (req.get("destination") or [{}])[0] if isinstance(req.get("destination"), list) else {}
    req_sender = index.resolve(req.get("sender")) if isinstance(req.get("sender"), dict) else None
    req_receiver = index.resolve(destination.get("receiver")) if isinstance(destination.get("receiver"), dict) else None
    key = (str(bundle_id), str(header_id), code)
    header: dict[str, Any] = {"resourceType": "MessageHeader", "id": _id("ack", *key), "meta": {"profile": [systems.PROFILE_ACK_MESSAGEHEADER]}}
    if isinstance(req.get("eventCoding"), dict):
        header["eventCoding"] = req["eventCoding"]
    else:
        header["eventCoding"] = terminology.coding("message-activity", "kvittens")
    ack_destination: dict[str, Any] = {"endpoint": (req.get("source") or {}).get("endpoint") or "urn:unknown:sender"}
    orgs: list[dict] = []
    if req_sender is not None and req_sender.get("resourceType") == "Organization":
        ack_destination["receiver"] = f.ref(f"urn:uuid:{req_sender['id']}", req_sender.get("name"))
        orgs.append(req_sender)
    header["destination"] = [ack_destination]
    if req_receiver is not None and req_receiver.get("resourceType") == "Organization":
        header["sender"] = f.ref(f"urn:uuid:{req_receiver['id']}", req_receiver.get("name"))
        if req_receiver is not req_sender:
            orgs.append(req_receiver)
    header["source"] = {"endpoint": destination.get("endpoint") or "urn:unknown:receiver"}
    header["response"] = {"identifier": header_id or "unknown", "code": code}
    resources: list[dict] = [header, *orgs]
    if code != "ok":
        outcome = {"resourceType": "OperationOutcome", "id": _id("ack-outcome", *key), "issue": list(issues or ())}
        header["response"]["details"] = f.ref(f"urn:uuid:{outcome['id']}")
        resources.append(outcome)
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": _id("ack-provenance", *key),
        "target": [f.ref(f"urn:uuid:{header['id']}")],
        "recorded": at.isoformat(),
        "activity": {"coding": [terminology.coding("message-activity", "kvittens")]},
        "agent": [{"type": {"coding": [{"system": systems.CS_PROVENANCE_AGENT_TYPE, "code": "author"}]}, "who": header.get("sender") or {"display": "carebridge"}}],
    }
    if header_id:
        provenance["entity"] = [{"role": "source", "what": {"reference": f"MessageHeader/{header_id}"}}]
    resources.append(provenance)
    return {
        "resourceType": "Bundle",
        "id": _id("ack-bundle", *key),
        "meta": {"profile": [systems.PROFILE_ACK_MESSAGE]},
        "type": "message",
        "timestamp": at.isoformat(),
        "entry": [_entry(r) for r in resources],
    }


def read_acknowledgement(bundle: Bundle) -> Acknowledgement:
    """Read an acknowledgement message (ours or a server's): acknowledged id, code, issues."""
    entries = bundle.get("entry") or []
    header = (entries[0] or {}).get("resource") if entries else None
    if bundle.get("type") != "message" or not isinstance(header, dict) or "response" not in header:
        raise NotADischargeMessageError("not an acknowledgement: a message Bundle whose MessageHeader has a response")
    response = header["response"]
    outcome = f.BundleIndex(bundle).resolve(response.get("details")) or {}
    return Acknowledgement(message_id=response.get("identifier", ""), code=response.get("code", ""), issues=tuple(outcome.get("issue", ())))
