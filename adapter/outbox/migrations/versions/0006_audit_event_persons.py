"""AuditEvents about several persons are found by each of them.

A Bundle about several persons is ordered as one (its person key is made of all of them), and its
AuditEvents were stored under that joined key only, so a search by one personnummer missed them.
Now a message keeps each person's key and masked label (``outbox_messages.persons``), and an
AuditEvent about several persons has one ``audit_event_persons`` row per person.

Existing messages about several persons and their AuditEvents (transfers and API accesses stored
under the joined key) are filled in here: each person's key is the HMAC under the outbox's secret
(``$CAREBRIDGE_PERSON_KEY_SECRET`` if set, as the outbox itself uses it, else the stored one).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import json
import os

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox_messages", sa.Column("persons", sa.Text))
    op.create_table(
        "audit_event_persons",
        sa.Column("event_id", sa.String(36), sa.ForeignKey("audit_events.id"), primary_key=True),
        sa.Column("person_key", sa.String(64), primary_key=True),
    )
    op.create_index("ix_audit_event_persons_person_key", "audit_event_persons", ["person_key"])
    _fill_in(op.get_bind())


def _fill_in(bind: sa.Connection) -> None:
    """Each person of the messages about several, and one row per person for their AuditEvents."""
    from adapter.outbox.subjects import Subject, person_key, subject_of
    from mappings.identifiers import mask

    # Such a message's label was the masked joined numbers: longer than one personnummer.
    candidates = bind.execute(sa.text(
        "SELECT m.id, m.person_key, p.payload FROM outbox_messages m JOIN outbox_payloads p ON p.message_id = m.id "
        "WHERE length(m.person_label) > 12 AND m.person_label NOT LIKE '(%'")).all()
    if not candidates:
        return
    secret = os.environ.get("CAREBRIDGE_PERSON_KEY_SECRET") or bind.execute(sa.text(
        "SELECT value FROM outbox_settings WHERE name = 'person_key_secret'")).scalar_one()
    done: set[str] = set()
    for message_id, joined_key, payload in candidates:
        try:
            subject = subject_of(json.loads(payload))
        except (ValueError, TypeError, AttributeError):
            continue
        if not subject.persons:
            continue
        persons = [(person_key(secret, Subject(p, None, "")), mask(p)) for p in subject.persons]
        bind.execute(sa.text("UPDATE outbox_messages SET persons = :persons, person_label = :label WHERE id = :id"),
                     {"persons": json.dumps(persons), "label": subject.label, "id": message_id})
        if joined_key in done:
            continue
        done.add(joined_key)
        events = [row[0] for row in bind.execute(
            sa.text("SELECT id FROM audit_events WHERE person_key = :key"), {"key": joined_key})]
        links = [{"event_id": e, "person_key": k} for e in events for k in dict.fromkeys(k for k, _ in persons)]
        if links:
            bind.execute(sa.text("INSERT INTO audit_event_persons (event_id, person_key) VALUES (:event_id, :person_key)"),
                         links)


def downgrade() -> None:
    op.drop_index("ix_audit_event_persons_person_key", table_name="audit_event_persons")
    op.drop_table("audit_event_persons")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("persons")
