"""The API's own rows in the outbox database: who submitted each document, and which regional changes were taken in.

Two small tables next to the outbox's, created by the outbox's migration 0005 (``Outbox.open``
runs it):

- ``api_documents``: per outbox message sent through the API, the submitting organisation and
  caller, the document's senders and parties, and whether its person is protected, so a read
  is authorised without decoding the payload again;
- ``inbound_changes``: every regional resource version turned into a municipal message, so a
  repeated notification is acknowledged without a second delivery.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, Engine, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError

from adapter.api.parties import Parties
from adapter.outbox.schema import Key, UtcDateTime

metadata = MetaData()

#: Same columns as migration 0005_api_tables.
api_documents = Table(
    "api_documents",
    metadata,
    Column("message_id", Key, primary_key=True),
    Column("flow", String(40), nullable=False),
    Column("submitter", String(100), nullable=False),  # the caller's organisation
    Column("submitted_by", String(300), nullable=False),  # the caller (client id or subject)
    Column("senders", Text, nullable=False),  # JSON list of organisation identifiers
    Column("parties", Text, nullable=False),  # JSON list of organisation identifiers
    Column("protected", Boolean, nullable=False),
    Column("outcome", Text),  # the validation OperationOutcome at submission (warnings included)
    Column("created_at", UtcDateTime, nullable=False),
)

inbound_changes = Table(
    "inbound_changes",
    metadata,
    Column("change_key", String(300), primary_key=True),  # server|Type/id|version
    Column("message_id", Key),
    Column("created_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class DocumentRow:
    """What the API remembers about a submitted document."""

    message_id: int
    flow: str
    submitter: str
    submitted_by: str
    parties: Parties
    outcome: dict[str, Any] | None


def remember_document(engine: Engine, message_id: int, *, flow: str, submitter: str, submitted_by: str,
                      parties: Parties, outcome: dict[str, Any] | None = None) -> None:
    """Record who submitted a document and whom it involves."""
    with engine.begin() as conn:
        conn.execute(insert(api_documents).values(
            message_id=message_id, flow=flow, submitter=submitter, submitted_by=submitted_by[:300],
            senders=json.dumps(sorted(parties.senders)), parties=json.dumps(sorted(parties.parties | {submitter})),
            protected=parties.protected, outcome=as_json(outcome) if outcome else None, created_at=dt.datetime.now(dt.timezone.utc)))


def document(engine: Engine, message_id: int) -> DocumentRow | None:
    """The API's record of a message, if it came through the API."""
    with engine.connect() as conn:
        row = conn.execute(select(api_documents).where(api_documents.c.message_id == message_id)).first()
    if row is None:
        return None
    m = row._mapping
    return DocumentRow(m["message_id"], m["flow"], m["submitter"], m["submitted_by"],
                       Parties(frozenset(json.loads(m["senders"])), frozenset(json.loads(m["parties"])),
                               frozenset(), bool(m["protected"])),
                       json.loads(m["outcome"]) if m["outcome"] else None)


def claim_change(engine: Engine, change_key: str) -> bool:
    """Mark a regional resource version as taken in; False if it already was."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(inbound_changes).values(change_key=change_key[:300], message_id=None,
                                                        created_at=dt.datetime.now(dt.timezone.utc)))
        return True
    except IntegrityError:
        return False


def attach_change(engine: Engine, change_key: str, message_id: int) -> None:
    """Link a taken-in change to the outbox message that delivers it."""
    from sqlalchemy import update

    with engine.begin() as conn:
        conn.execute(update(inbound_changes).where(inbound_changes.c.change_key == change_key[:300]).values(
            message_id=message_id))


def release_change(engine: Engine, change_key: str) -> None:
    """Forget a change whose delivery could not be queued, so the next notification tries again."""
    from sqlalchemy import delete

    with engine.begin() as conn:
        conn.execute(delete(inbound_changes).where(inbound_changes.c.change_key == change_key[:300]))


def as_json(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
