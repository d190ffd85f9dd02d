"""Message receipts: the receiver's dedupe of (Bundle.id, MessageHeader.id) and the acknowledgement sent.

Written by adapter/messaging (discharge-process messages, MedCom's four-case table): a duplicate
is answered with the stored acknowledgement, byte for byte.

Revision ID: 0002
Revises: 0001
Create Date: 2026-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapter.outbox.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_receipts",
        sa.Column("bundle_id", sa.String(64), primary_key=True),
        sa.Column("header_id", sa.String(64), primary_key=True),
        sa.Column("event", sa.String(60)),
        sa.Column("stay_key", sa.String(200)),
        sa.Column("sent_at", UtcDateTime),
        sa.Column("response_code", sa.String(20), nullable=False),
        sa.Column("acknowledgement", sa.Text, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_message_receipts_header_id", "message_receipts", ["header_id"])
    op.create_index("ix_message_receipts_stay_key", "message_receipts", ["stay_key"])


def downgrade() -> None:
    op.drop_table("message_receipts")
