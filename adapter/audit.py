"""AuditEvents: who sent what about which person, on behalf of which organisation, with what outcome.

Stored as FHIR R4 AuditEvent JSON in the ``audit_events`` table of the outbox database, so they
commit in the same transaction as the state change they describe. The person appears only as
the outbox's person key (an HMAC, see ``adapter.outbox.subjects``) and a masked personnummer.
An event about several persons (a Bundle about more than one) names each of them and has one
``audit_event_persons`` row per person, so a search by any one of them finds it.

    event = transfer_event(...)          # build
    record(connection, event, ...)       # store (inside the caller's transaction)
    events(connection, person_key=...)   # read back, newest first
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from adapter.outbox.schema import audit_event_persons, audit_events
from mappings import systems

#: AuditEvent.outcome codes.
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"
#: AuditEvent.action per carebridge action.
ACTION_CODE = {"transfer": "E", "reject": "E", "replay": "U", "edit": "U", "discard": "D", "access": "R"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def transfer_event(*, action: str, outcome: str, outcome_text: str, interaction: str, destination: str,
                   person_key: str | None, person_label: str | None, organisation: str | None,
                   message_id: int | None, correlation_id: str | None, actor: str = "carebridge",
                   details: dict[str, str] | None = None, recorded: dt.datetime | None = None,
                   persons: Sequence[tuple[str, str | None]] = ()) -> dict[str, Any]:
    """An AuditEvent for one transfer (or rejection, replay, edit, discard) of an outbox message.

    ``persons``: (person key, masked label) of each person of a message about several; they are
    named instead of ``person_key`` (the key that orders them together).
    """
    agents: list[dict[str, Any]] = [
        {"type": {"coding": [{"system": systems.CS_DICOM_DCM, "code": "110150", "display": "Application"}]},
         "who": {"identifier": {"system": systems.SID_SYSTEM, "value": "carebridge"}, "display": actor},
         "requestor": True},
        {"type": {"coding": [{"system": systems.CS_DICOM_DCM, "code": "110152", "display": "Destination Role ID"}]},
         "who": {"display": destination}, "requestor": False,
         "network": {"address": destination, "type": "5"}},
    ]
    if organisation:
        agents.append({"who": {"identifier": {"system": _organisation_system(organisation), "value": organisation}},
                       "requestor": False,
                       "role": [{"text": "responsible organisation"}]})
    entities: list[dict[str, Any]] = [person_entity(key, label) for key, label in persons] if persons else \
        [person_entity(person_key, person_label)] if person_key else []
    if message_id is not None:
        detail = [{"type": "correlation-id", "valueString": correlation_id or ""}]
        detail += [{"type": k, "valueString": str(v)} for k, v in (details or {}).items()]
        entities.append({
            "what": {"identifier": {"system": systems.SID_OUTBOX_MESSAGE, "value": str(message_id)}},
            "type": {"system": systems.CS_AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": systems.CS_OBJECT_ROLE, "code": "3", "display": "Report"},
            "detail": detail,
        })
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": systems.CS_DICOM_DCM, "code": "110106", "display": "Export"},
        "subtype": [{"system": systems.CS_RESTFUL_INTERACTION, "code": interaction},
                    {"system": systems.CS_AUDIT_ACTION, "code": action}],
        "action": ACTION_CODE.get(action, "E"),
        "recorded": (recorded or _now()).isoformat(timespec="milliseconds"),
        "outcome": outcome,
        "outcomeDesc": outcome_text[:1000],
        "agent": agents,
        "source": {"observer": {"display": "carebridge outbox"},
                   "type": [{"system": systems.CS_SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}]},
        "entity": entities,
    }


def person_entity(person_key: str, label: str | None) -> dict[str, Any]:
    """The AuditEvent.entity naming a person by person key (and masked personnummer)."""
    person: dict[str, Any] = {
        "what": {"identifier": {"system": systems.SID_PERSON_KEY, "value": person_key}},
        "type": {"system": systems.CS_AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": systems.CS_OBJECT_ROLE, "code": "1", "display": "Patient"},
    }
    if label:
        person["name"] = label
    return person


def _organisation_system(value: str) -> str:
    return systems.ORGANISATIONSNUMMER if value.isdigit() and len(value) == 10 else systems.HSA_ID


def record(connection: Connection, event: dict[str, Any], *, action: str, person_key: str | None = None,
           organisation: str | None = None, message_id: int | None = None,
           correlation_id: str | None = None, person_keys: Sequence[str] = ()) -> str:
    """Store an AuditEvent in the caller's transaction; returns its id."""
    record_many(connection, [row(event, action=action, person_key=person_key, organisation=organisation,
                                 message_id=message_id, correlation_id=correlation_id, person_keys=person_keys)])
    return str(event["id"])


def row(event: dict[str, Any], *, action: str, person_key: str | None, organisation: str | None,
        message_id: int | None, correlation_id: str | None, person_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The ``audit_events`` row of an AuditEvent (for ``record_many``).

    ``person_keys``: each person's key when the event is about several (``person_key`` is then the
    key that orders them together); ``record_many`` stores one searchable row per person.
    """
    out = {"id": event["id"], "recorded": dt.datetime.fromisoformat(event["recorded"]), "action": action,
           "outcome": event["outcome"], "person_key": person_key, "organisation": organisation,
           "message_id": message_id, "correlation_id": correlation_id,
           "resource": json.dumps(event, ensure_ascii=False, separators=(",", ":"))}
    if len(person_keys) > 1:
        out[_PERSONS] = tuple(person_keys)
    return out


#: The key of a row (made by ``row``) holding the keys of each person of an event about several.
_PERSONS = "_person_keys"


def record_many(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Store several AuditEvents (rows made by ``row``) in the caller's transaction, in one statement
    (and one more for the persons of events about several)."""
    if not rows:
        return
    links = [{"event_id": r["id"], "person_key": k} for r in rows for k in dict.fromkeys(r.get(_PERSONS, ()))]
    if links:
        rows = [{k: v for k, v in r.items() if k != _PERSONS} for r in rows]
    connection.execute(insert(audit_events), rows)
    if links:
        connection.execute(insert(audit_event_persons), links)


def events(connection: Connection, *, person_key: str | None = None, message_id: int | None = None,
           action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Stored AuditEvents (FHIR JSON), newest first, optionally for one person, message or action.

    A person's events include those about several persons that name them.
    """
    query = select(audit_events.c.resource).order_by(audit_events.c.recorded.desc()).limit(limit)
    if person_key is not None:
        query = query.where(or_(audit_events.c.person_key == person_key, audit_events.c.id.in_(
            select(audit_event_persons.c.event_id).where(audit_event_persons.c.person_key == person_key))))
    if message_id is not None:
        query = query.where(audit_events.c.message_id == message_id)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    return [json.loads(row[0]) for row in connection.execute(query)]
