"""The outbox: messages, dead letters, edit/replay trail, AuditEvents, settings (with the person-key secret).

Revision ID: 0001
Revises:
Create Date: 2026-03-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from adapter.outbox.schema import Key, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("person_key", sa.String(64), nullable=False),
        sa.Column("person_label", sa.String(40)),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("organisation", sa.String(100)),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_expires_at", UtcDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("hold_until", UtcDateTime),
        sa.Column("delivered_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("destination", "person_key", "seq", name="uq_outbox_person_seq"),
    )
    op.create_index("ix_outbox_due", "outbox_messages", ["status", "destination", "next_attempt_at"])
    op.create_table(
        "outbox_dead_letters",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("message_id", Key, sa.ForeignKey("outbox_messages.id"), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("outcome", sa.Text),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("resolution", sa.String(20)),
    )
    op.create_index("ix_outbox_dead_letters_message_id", "outbox_dead_letters", ["message_id"])
    op.create_table(
        "outbox_message_edits",
        sa.Column("id", Key, primary_key=True, autoincrement=True),
        sa.Column("message_id", Key, sa.ForeignKey("outbox_messages.id"), nullable=False),
        sa.Column("dead_letter_id", Key, sa.ForeignKey("outbox_dead_letters.id")),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("old_payload", sa.Text, nullable=False),
        sa.Column("new_payload", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_outbox_message_edits_message_id", "outbox_message_edits", ["message_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("recorded", UtcDateTime, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("person_key", sa.String(64)),
        sa.Column("organisation", sa.String(100)),
        sa.Column("message_id", Key),
        sa.Column("correlation_id", sa.String(64)),
        sa.Column("resource", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_events_recorded", "audit_events", ["recorded"])
    op.create_index("ix_audit_events_person_key", "audit_events", ["person_key"])
    settings = op.create_table(
        "outbox_settings",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.bulk_insert(settings, [{"name": "person_key_secret", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    for table in ("outbox_settings", "audit_events", "outbox_message_edits", "outbox_dead_letters", "outbox_messages"):
        op.drop_table(table)
