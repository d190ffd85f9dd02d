"""The receiver's durable memory: which (Bundle.id, MessageHeader.id) it has answered, and how.

MedCom's four cases (docs/flows/discharge.md) need three questions answered: was this exact pair
seen (then resend the stored acknowledgement, byte for byte), was the MessageHeader.id seen in
another Bundle, was the Bundle.id seen with another MessageHeader.id. `ReceiptStore` is that small
interface; `SqlReceiptStore` keeps the receipts in the outbox database (table `message_receipts`,
Alembic revision 0002 in adapter/outbox/migrations), SQLite by default, PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Column, Engine, Index, MetaData, String, Table, Text, select
from sqlalchemy.exc import IntegrityError

from adapter.outbox.schema import UtcDateTime

metadata = MetaData()

#: Same columns as migration 0002_message_receipts.
receipts = Table(
    "message_receipts",
    metadata,
    Column("bundle_id", String(64), primary_key=True),
    Column("header_id", String(64), primary_key=True),
    Column("event", String(60)),
    Column("stay_key", String(200)),
    Column("sent_at", UtcDateTime),
    Column("response_code", String(20), nullable=False),
    Column("acknowledgement", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_message_receipts_header_id", "header_id"),
    Index("ix_message_receipts_stay_key", "stay_key"),
)


@dataclass(frozen=True)
class Receipt:
    """One answered message: its keys, what it was, and the acknowledgement bytes sent back."""

    bundle_id: str
    header_id: str
    response_code: str
    acknowledgement: bytes
    received_at: dt.datetime
    event: str | None = None
    stay_key: str | None = None
    sent_at: dt.datetime | None = None


@dataclass(frozen=True)
class Seen:
    """What the store knows about an incoming pair of ids."""

    same: Receipt | None  # this exact (Bundle.id, MessageHeader.id) was answered before
    header_elsewhere: bool  # the MessageHeader.id came before in another Bundle
    bundle_elsewhere: bool  # the Bundle.id came before with another MessageHeader.id


class ReceiptStore(Protocol):
    """Where the receiver keeps its receipts."""

    def seen(self, bundle_id: str, header_id: str) -> Seen:
        """What is known about this pair."""
        ...

    def record(self, receipt: Receipt) -> Receipt:
        """Keep a receipt; if the pair was recorded meanwhile (a concurrent duplicate), return that one."""
        ...

    def stay_events(self, stay_key: str) -> list[Receipt]:
        """The accepted (ok) receipts of one hospital stay, oldest message first."""
        ...


class SqlReceiptStore:
    """Receipts in a SQLAlchemy database: the outbox database by default."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> SqlReceiptStore:
        """The receipt store in the database at `url`, migrated to the newest schema."""
        from adapter.outbox.db import make_engine

        engine = make_engine(url, pool_size=4)
        ensure_schema(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def seen(self, bundle_id: str, header_id: str) -> Seen:
        with self.engine.connect() as conn:
            same = conn.execute(select(receipts).where(receipts.c.bundle_id == bundle_id, receipts.c.header_id == header_id)).first()
            header = conn.execute(select(receipts.c.bundle_id).where(receipts.c.header_id == header_id, receipts.c.bundle_id != bundle_id).limit(1)).first()
            bundle = conn.execute(select(receipts.c.header_id).where(receipts.c.bundle_id == bundle_id, receipts.c.header_id != header_id).limit(1)).first()
        return Seen(_receipt(same) if same else None, header is not None, bundle is not None)

    def record(self, receipt: Receipt) -> Receipt:
        row = {
            "bundle_id": receipt.bundle_id,
            "header_id": receipt.header_id,
            "event": receipt.event,
            "stay_key": receipt.stay_key,
            "sent_at": receipt.sent_at,
            "response_code": receipt.response_code,
            "acknowledgement": receipt.acknowledgement.decode("utf-8"),
            "received_at": receipt.received_at,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(receipts.insert().values(**row))
        except IntegrityError:
            earlier = self.seen(receipt.bundle_id, receipt.header_id).same
            if earlier is None:
                raise
            return earlier
        return receipt

    def stay_events(self, stay_key: str) -> list[Receipt]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(receipts).where(receipts.c.stay_key == stay_key, receipts.c.response_code == "ok").order_by(receipts.c.sent_at)
            ).all()
        return [_receipt(r) for r in rows]


def _receipt(row) -> Receipt:  # type: ignore[no-untyped-def]
    return Receipt(
        bundle_id=row.bundle_id,
        header_id=row.header_id,
        response_code=row.response_code,
        acknowledgement=row.acknowledgement.encode("utf-8"),
        received_at=row.received_at,
        event=row.event,
        stay_key=row.stay_key,
        sent_at=row.sent_at,
    )


def ensure_schema(engine: Engine) -> None:
    """Migrate the database with the outbox's migrations (the receipts table is revision 0002)."""
    from adapter.outbox import migrate

    migrate.upgrade(engine)
