"""Payloads move to a table of their own, so the frequent status and lease updates of a message
rewrite a small row instead of a row carrying a whole Bundle (SQLite rewrites the full row).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapter.outbox.schema import Key

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_payloads",
        sa.Column("message_id", Key, sa.ForeignKey("outbox_messages.id"), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.execute("INSERT INTO outbox_payloads (message_id, payload) SELECT id, payload FROM outbox_messages")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("payload")


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("payload", sa.Text, nullable=True))
    op.execute("UPDATE outbox_messages SET payload = (SELECT payload FROM outbox_payloads "
               "WHERE outbox_payloads.message_id = outbox_messages.id)")
    op.drop_table("outbox_payloads")
