"""The claim index ends with id, so a claim walks it in ORDER BY order and stops at its LIMIT.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox_messages")
    op.create_index("ix_outbox_due", "outbox_messages", ["status", "destination", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox_messages")
    op.create_index("ix_outbox_due", "outbox_messages", ["status", "destination", "next_attempt_at"])
