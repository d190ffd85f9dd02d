"""Submitting documents and reporting their status: the work behind /documents.

A submission is read in the format its Content-Type names, checked to be the flow of the URL,
converted and validated as a transfer to the regional server's huvudman
(``adapter.outbox.intake.prepare``; a document another huvudman authored needs the person's
consent), authorised against the document's
sending organisation, and stored in one outbox transaction: queued when valid, kept as a
dead letter (stage ``validation``) with its OperationOutcome when not.
"""

from __future__ import annotations

import json
from typing import Any

from adapter.api.errors import ApiError, informational, outcome_of
from adapter.api.parties import Parties, parties_of
from adapter.api.store import DocumentRow
from adapter.outbox.store import DEAD, DELIVERED, DISCARDED, PENDING, REJECTED, Message

#: Content-Type -> the formats it may carry.
FORMATS_BY_MEDIA_TYPE = {
    "application/json": ("json",),
    "application/fhir+json": ("fhir",),
    "application/xml": ("xml", "riv"),
    "text/xml": ("xml", "riv"),
}
#: RIV-TA contracts accepted as flows of their own.
RIV_FLOWS = ("care-services", "care-plans")
#: Outbox status -> API status.
STATUS = {PENDING: "queued", DELIVERED: "delivered", DEAD: "dead-lettered", REJECTED: "dead-lettered",
          DISCARDED: "discarded"}


def flows() -> list[str]:
    """Every flow a document may be submitted as."""
    from mappings.flows import FLOWS

    return [*FLOWS, *RIV_FLOWS]


def check_format(data: bytes, media_type: str, flow: str) -> None:
    """Refuse (415/400) a body whose format is not what its Content-Type says, or not the URL's flow."""
    from mappings import formats, safexml

    allowed = FORMATS_BY_MEDIA_TYPE.get(media_type)
    if allowed is None:
        raise ApiError(415, f"Content-Type {media_type or '(none)'} not accepted; use one of "
                            + ", ".join(FORMATS_BY_MEDIA_TYPE))
    try:
        detected = formats.detect(data)
    except (formats.UnknownFormatError, safexml.UnsafeXmlError, ValueError) as exc:
        raise ApiError(400, f"unreadable document: {exc}", code="structure") from None
    except Exception as exc:  # noqa: BLE001 - malformed input must get a 4xx
        raise ApiError(400, f"unreadable document ({type(exc).__name__})", code="structure") from None
    if detected.format not in allowed:
        raise ApiError(415, f"the body is {detected.format}, not what Content-Type {media_type} carries")
    found = _flow_of(detected)
    if found != flow:
        raise ApiError(400, f"the document is a {found or 'document of no known flow'}; post it to /documents/{found}"
                       if found else "the document carries no carebridge flow", code="invalid")


def prepare_safely(data: bytes, receiver_huvudman: str) -> Any:
    """``adapter.outbox.intake.prepare`` (a transfer to ``receiver_huvudman``), with a crash in a reader
    or mapping answered 400 instead of 500."""
    from adapter.logs import get_logger
    from adapter.outbox.intake import prepare

    try:
        return prepare(data, receiver_huvudman=receiver_huvudman)
    except Exception as exc:  # noqa: BLE001 - malformed input must get a 4xx; the bug is logged
        get_logger("api").exception("document could not be converted")
        raise ApiError(400, f"the document cannot be converted ({type(exc).__name__})", code="structure") from None


def refused_bundle_parties(data: bytes) -> Parties | None:
    """The parties of a FHIR Bundle that could not be prepared, if it names a sender (else None: unattributable)."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
        return None
    parties = parties_of(value)
    return parties if parties.senders else None


def _flow_of(detected: Any) -> str | None:
    if detected.format in ("json", "xml", "riv"):
        return detected.detail or None
    from mappings.flows import UnknownFlowError, flow_of_bundle

    try:
        return flow_of_bundle(detected.payload).kind
    except UnknownFlowError:
        return None


def dead_letter_of(svc: Any, message_id: int) -> dict[str, Any] | None:
    """The newest dead letter of a message (resolved or not)."""
    from sqlalchemy import select

    from adapter.outbox.schema import dead_letters

    with svc.engine.connect() as conn:
        row = conn.execute(select(dead_letters).where(dead_letters.c.message_id == message_id)
                           .order_by(dead_letters.c.id.desc()).limit(1)).first()
    return dict(row._mapping) if row else None


def parties_for(message: Message, row: DocumentRow | None) -> tuple[Parties, str | None]:
    """The parties of a message (as recorded at submission, else read from its payload) and its submitter."""
    if row is not None:
        return row.parties, row.submitter
    try:
        return parties_of(message.payload), message.organisation
    except (ValueError, TypeError):
        return Parties(), message.organisation


def status_of(message: Message, row: DocumentRow | None, dead: dict[str, Any] | None,
              validation: dict[str, Any] | None) -> dict[str, Any]:
    """The DocumentStatus body of a message."""
    status = STATUS.get(message.status, message.status)
    history: list[dict[str, Any]] = [{"status": "accepted", "at": message.created_at}]
    if message.status == REJECTED or (dead and dead["stage"] == "validation"):
        history.append({"status": "dead-lettered", "at": message.created_at, "detail": "failed validation"})
    else:
        history += [{"status": "validated", "at": message.created_at}, {"status": "queued", "at": message.created_at}]
        if message.status == DELIVERED:
            history.append({"status": "delivered", "at": message.delivered_at})
        elif dead is not None and message.status in (DEAD, DISCARDED):
            history.append({"status": "dead-lettered", "at": dead["created_at"], "detail": dead["error"]})
    if message.status == DISCARDED:
        history.append({"status": "discarded", "at": None})
    if dead is not None and message.status in (DEAD, REJECTED, DISCARDED):
        outcome = json.loads(dead["outcome"]) if dead["outcome"] else outcome_of(dead["error"], "processing")
    else:
        outcome = validation or informational(f"document {status}")
    return {
        "message_id": message.id,
        "flow": row.flow if row else None,
        "status": status,
        "stage": dead["stage"] if dead is not None and message.status in (DEAD, REJECTED, DISCARDED) else None,
        "destination": message.destination,
        "person": message.person_label,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "result": json.loads(message.result) if message.result else None,
        "outcome": outcome,
        "history": history,
        "links": {"self": f"/documents/{message.id}"},
    }
