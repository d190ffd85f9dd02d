"""The outbox tables (SQLAlchemy Core): messages, dead letters, the edit/replay trail, AuditEvents (and their
persons), settings.

Times are stored as UTC. The Alembic migrations under ``migrations/versions`` create exactly these
tables; a change here is a new migration there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

#: An auto-incrementing 64-bit key (plain INTEGER on SQLite, where only that auto-increments).
Key = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


#: One row per document to deliver. status: pending | delivered | dead | rejected.
messages = Table(
    "outbox_messages",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("destination", String(500), nullable=False),
    Column("kind", String(20), nullable=False),  # transaction | update
    Column("person_key", String(64), nullable=False),  # HMAC-SHA256 of the personnummer, never the number
    Column("person_label", String(40)),  # masked personnummer for operators, e.g. 193802******
    # A payload about several persons is ordered as one (person_key over all of them); this is JSON
    # [[person key, masked personnummer], ...] of each of them (NULL for one person), so its
    # AuditEvents can be found by any of them.
    Column("persons", Text),
    Column("seq", Integer, nullable=False),  # order within (destination, person_key), from 1
    Column("organisation", String(100)),  # HSA-id or organisationsnummer of the responsible organisation
    Column("correlation_id", String(64), nullable=False),
    Column("source", String(500)),  # where the document came from (file name, API request)
    Column("payload_hash", String(64), nullable=False),  # SHA-256 of the payload (in outbox_payloads)
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UtcDateTime),
    Column("last_error", Text),
    Column("result", Text),  # short JSON summary of the server's answer on success
    Column("hold_until", UtcDateTime),  # a dead letter holds its person's later messages until then
    Column("delivered_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("destination", "person_key", "seq", name="uq_outbox_person_seq"),
    Index("ix_outbox_due", "status", "destination", "next_attempt_at", "id"),
)

#: The payload of each message (FHIR JSON, or the input text of an unreadable document), kept apart so
#: status and lease updates rewrite small rows.
payloads = Table(
    "outbox_payloads",
    metadata,
    Column("message_id", Key, ForeignKey("outbox_messages.id"), primary_key=True),
    Column("payload", Text, nullable=False),
)

#: The server's (or the validator's) answer for every message that could not be delivered.
dead_letters = Table(
    "outbox_dead_letters",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_id", Key, ForeignKey("outbox_messages.id"), nullable=False, index=True),
    Column("stage", String(20), nullable=False),  # validation | delivery | conflict | exhausted
    Column("http_status", Integer),
    Column("outcome", Text),  # OperationOutcome JSON
    Column("error", Text, nullable=False),
    Column("payload", Text, nullable=False),  # the payload that failed, as it was
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("resolution", String(20)),  # replayed | discarded
)

#: Every replay, edit and discard of a message: who, when, the payload before and after.
message_edits = Table(
    "outbox_message_edits",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_id", Key, ForeignKey("outbox_messages.id"), nullable=False, index=True),
    Column("dead_letter_id", Key, ForeignKey("outbox_dead_letters.id")),
    Column("action", String(20), nullable=False),  # replay | edit | discard
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("old_payload", Text, nullable=False),
    Column("new_payload", Text),
    Column("created_at", UtcDateTime, nullable=False),
)

#: FHIR AuditEvent JSON, one row per transfer, rejection, replay (and, later, API access).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("recorded", UtcDateTime, nullable=False, index=True),
    Column("action", String(20), nullable=False),  # transfer | reject | replay | edit | discard | access
    Column("outcome", String(2), nullable=False),  # AuditEvent.outcome: 0 | 4 | 8 | 12
    Column("person_key", String(64), index=True),
    Column("organisation", String(100)),
    Column("message_id", Key),
    Column("correlation_id", String(64)),
    Column("resource", Text, nullable=False),  # the AuditEvent as FHIR R4 JSON
)

#: One row per person of an AuditEvent about several persons (a Bundle about more than one), so a
#: search by any one of them finds it; an event about one person has its key in audit_events.person_key.
audit_event_persons = Table(
    "audit_event_persons",
    metadata,
    Column("event_id", String(36), ForeignKey("audit_events.id"), primary_key=True),
    Column("person_key", String(64), primary_key=True, index=True),
)

#: Small key/value settings kept with the data (e.g. the person-key secret).
settings = Table(
    "outbox_settings",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)
