"""The API's tables: who submitted each document (``api_documents``) and which regional resource
versions were taken in (``inbound_changes``); see ``adapter.api.store``.

Earlier versions of the API created these tables itself (``create_all``) when it started; a
database that has them already keeps them as they are.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapter.outbox.schema import Key, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("api_documents"):
        op.create_table(
            "api_documents",
            sa.Column("message_id", Key, primary_key=True),
            sa.Column("flow", sa.String(40), nullable=False),
            sa.Column("submitter", sa.String(100), nullable=False),
            sa.Column("submitted_by", sa.String(300), nullable=False),
            sa.Column("senders", sa.Text, nullable=False),
            sa.Column("parties", sa.Text, nullable=False),
            sa.Column("protected", sa.Boolean, nullable=False),
            sa.Column("outcome", sa.Text),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
    if _missing("inbound_changes"):
        op.create_table(
            "inbound_changes",
            sa.Column("change_key", sa.String(300), primary_key=True),
            sa.Column("message_id", Key),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("inbound_changes")
    op.drop_table("api_documents")
