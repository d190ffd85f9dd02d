"""The transactional outbox: accept, claim with a lease, record the outcome, dead-letter, replay.

Ordering rule (see docs/gateway.md): messages of one person to one destination are delivered in
``seq`` order. A message may be claimed only when no earlier message of its person is still
pending (queued, leased or waiting for a retry) and no earlier message of its person is a dead
letter inside its hold period. Different persons never wait for each other.

Every state change and its AuditEvent commit in one transaction. On PostgreSQL a claim locks the
chosen rows with ``FOR UPDATE SKIP LOCKED``, so any number of worker processes share one queue;
on SQLite every write transaction is ``BEGIN IMMEDIATE``, which serialises claims.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import Connection, Engine, Integer, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapter import audit
from adapter.config import DeliverySettings
from adapter.outbox.db import reader
from adapter.outbox.intake import UPDATE, Prepared, prepare
from adapter.outbox.schema import UtcDateTime, dead_letters, message_edits, messages, payloads, settings
from adapter.outbox.subjects import Subject, person_key, subject_of

PENDING, DELIVERED, DEAD, REJECTED, DISCARDED = "pending", "delivered", "dead", "rejected", "discarded"
#: Statuses that can be replayed.
REPLAYABLE = (DEAD, REJECTED, DELIVERED, DISCARDED)
#: Round outcomes that are not statuses.
RESCHEDULED, RELEASED = "rescheduled", "released"


def _statements() -> dict[str, Any]:
    """The hot statements, built once (building SQLAlchemy expressions costs more than running them)."""
    now = bindparam("now", type_=UtcDateTime())
    ids = bindparam("ids", expanding=True)
    earlier = messages.alias("earlier")
    blocked = exists().where(
        earlier.c.destination == messages.c.destination,
        earlier.c.person_key == messages.c.person_key,
        earlier.c.seq < messages.c.seq,
        or_(earlier.c.status == PENDING, and_(earlier.c.status == DEAD, earlier.c.hold_until > now)),
    )
    claimable = and_(
        messages.c.status == PENDING,
        messages.c.destination == bindparam("destination"),
        messages.c.next_attempt_at <= now,
        or_(messages.c.lease_expires_at.is_(None), messages.c.lease_expires_at < now),
        ~blocked,
    )
    claim = select(messages.c.id).where(claimable).order_by(messages.c.next_attempt_at, messages.c.id).limit(
        bindparam("limit", type_=Integer()))
    claim_only = claim.where(messages.c.id.in_(bindparam("only", expanding=True)))
    expires = bindparam("expires", type_=UtcDateTime())
    return {
        "claim": claim, "claim_only": claim_only,
        "claim_pg": claim.with_for_update(skip_locked=True, of=messages),
        "claim_only_pg": claim_only.with_for_update(skip_locked=True, of=messages),
        "lease": update(messages).where(messages.c.id.in_(ids)).values(
            lease_owner=bindparam("owner"), lease_expires_at=expires, attempts=messages.c.attempts + 1,
            updated_at=now).returning(*messages.c),
        "renew": update(messages).where(messages.c.id.in_(ids), messages.c.lease_owner == bindparam("owner"),
                                        messages.c.status == PENDING).values(lease_expires_at=expires),
        "payloads": select(payloads.c.message_id, payloads.c.payload).where(payloads.c.message_id.in_(ids)),
        "held": select(messages.c.id).where(messages.c.id.in_(ids), messages.c.lease_owner == bindparam("owner"),
                                            messages.c.status == PENDING),
        "delivered": update(messages).where(messages.c.id == bindparam("mid")).values(
            status=DELIVERED, delivered_at=now, last_error=None, result=bindparam("result"), lease_owner=None,
            lease_expires_at=None, updated_at=now),
    }


_SQL = _statements()
#: One writer lock per SQLite database in this process.
_SQLITE_WRITERS: dict[str, threading.Lock] = {}


def utcnow() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Message:
    """One outbox row as the worker and the CLI see it."""

    id: int
    destination: str
    kind: str
    person_key: str
    person_label: str | None
    persons: str | None  # JSON [[key, label], ...] of each person of a message about several
    seq: int
    organisation: str | None
    correlation_id: str
    source: str | None
    payload_text: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    lease_owner: str | None
    last_error: str | None
    result: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @property
    def payload(self) -> dict[str, Any]:
        """The FHIR JSON to deliver."""
        return json.loads(self.payload_text)

    @property
    def every_person(self) -> list[tuple[str, str | None]]:
        """(person key, masked label) of each person the message is about (several for a Bundle about more
        than one, whose ``person_key`` orders them together)."""
        if self.persons:
            return [(str(key), label) for key, label in json.loads(self.persons)]
        return [(self.person_key, self.person_label)]

    @classmethod
    def from_row(cls, row: Any, payload: str | None = None) -> Message:
        """A Message from an outbox_messages row (joined with its payload, or given it)."""
        m = row._mapping
        return cls(**{f: (m[f] if f != "payload_text" else (payload if payload is not None else m["payload"]))
                      for f in cls.__dataclass_fields__})


@dataclass
class Result:
    """The outcome of one delivery round, waiting to be recorded."""

    message: Message
    outcome: str  # delivered | rescheduled | dead | released
    http_status: int | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    delay: float = 0.0  # rescheduled: seconds until the next round
    stage: str | None = None  # dead: validation | delivery | conflict | exhausted
    outcome_resource: dict[str, Any] | None = None  # dead: the server's OperationOutcome


@dataclass
class Accepted:
    """What ``accept`` did with a document: its message id and status, and the validation outcome."""

    message_id: int
    status: str  # pending | rejected
    kind: str
    outcome: dict[str, Any]
    problem: str | None = None


class LeaseLost(RuntimeError):
    """The message's lease passed to another worker before this one recorded its outcome."""


class NotReplayable(ValueError):
    """A replay, edit or discard that does not apply to the message in its current state."""


class Outbox:
    """The outbox on one database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, settings_: DeliverySettings | None = None) -> None:
        self.engine = engine
        self.settings = settings_ or DeliverySettings()
        self._secret: str | None = None
        # SQLite has one writer at a time; threads of this process queue here rather than in SQLite's
        # busy handler (which sleeps in steps of milliseconds). PostgreSQL needs no such lock.
        self._writer = _SQLITE_WRITERS.setdefault(str(engine.url), threading.Lock()) \
            if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction (on SQLite: one writer thread of this process at a time)."""
        with self._writer, self.engine.begin() as conn:
            yield conn

    @classmethod
    def open(cls, url: str, settings_: DeliverySettings | None = None, *, migrate: bool = True,
             pool_size: int = 8) -> Outbox:
        """Open (and migrate to the newest schema) the outbox database at ``url``."""
        from adapter.outbox.db import make_engine
        from adapter.outbox.migrate import upgrade

        engine = make_engine(url, pool_size=pool_size)
        if migrate:
            upgrade(engine)
        return cls(engine, settings_)

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL (row locks with SKIP LOCKED)."""
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # --- the person key ---------------------------------------------------------------

    def secret(self) -> str:
        """The HMAC secret of person keys: $CAREBRIDGE_PERSON_KEY_SECRET, else the one in the database."""
        if self._secret is None:
            env = os.environ.get("CAREBRIDGE_PERSON_KEY_SECRET")
            if env:
                self._secret = env
            else:
                with reader(self.engine) as conn:
                    self._secret = conn.execute(
                        select(settings.c.value).where(settings.c.name == "person_key_secret")).scalar_one()
        return self._secret

    def key_of(self, subject: Subject) -> str:
        """The person key of a subject under this outbox's secret."""
        return person_key(self.secret(), subject)

    def persons_of(self, subject: Subject) -> list[tuple[str, str]]:
        """(person key, masked label) of each person of a subject about several; empty otherwise."""
        from mappings.identifiers import mask

        return [(self.key_of(Subject(p, None, "")), mask(p)) for p in subject.persons]

    def _persons_column(self, subject: Subject) -> str | None:
        persons = self.persons_of(subject)
        return json.dumps(persons) if persons else None

    # --- accepting documents ------------------------------------------------------------

    def accept(self, data: bytes, destination: str, *, source: str | None = None, actor: str = "carebridge",
               receiver_huvudman: str | None = None) -> Accepted:
        """Convert, validate (fail closed, as a transfer to the destination's huvudman) and enqueue one
        document; a rejected one is kept with its outcome."""
        return self.enqueue_prepared(prepare(data, receiver_huvudman=receiver_huvudman), destination,
                                     source=source, actor=actor)

    def enqueue_prepared(self, prepared: Prepared, destination: str, *, source: str | None = None,
                         actor: str = "carebridge", subject: Subject | None = None) -> Accepted:
        """Store a prepared document in one transaction: queued when valid, rejected (dead letter) otherwise.

        ``subject`` names the person (per-person order) and the responsible organisation; by default
        they are read from the FHIR payload (``subject_of``), which a payload of another kind (a
        municipal document) cannot offer.
        """
        if subject is None:
            subject = (subject_of(prepared.payload) if prepared.payload
                       else Subject(None, None, f"raw|{_sha256(prepared.raw)}"))
        key = self.key_of(subject)
        status = PENDING if prepared.ok else REJECTED
        for _attempt in range(20):  # a concurrent enqueue for the same person may take our seq: retry
            try:
                with self._tx() as conn:
                    message_id = self._insert(conn, prepared, destination, subject, key, status, source)
                    if not prepared.ok:
                        self._record_rejection(conn, message_id, prepared, destination, subject, key, actor)
                return Accepted(message_id, status, prepared.kind, prepared.outcome, prepared.problem)
            except IntegrityError:
                continue
        raise RuntimeError("could not assign a sequence number (too many concurrent enqueues for one person)")

    def enqueue_many(self, prepared: list[Prepared], destination: str, *, sources: list[str | None] | None = None,
                     actor: str = "carebridge") -> list[Accepted]:
        """Store many prepared documents in one transaction (a bulk load: all of them or none)."""
        sources = sources or [None] * len(prepared)
        subjects = [subject_of(p.payload) if p.payload else Subject(None, None, f"raw|{_sha256(p.raw)}") for p in prepared]
        keys = [self.key_of(s) for s in subjects]
        for _attempt in range(20):
            try:
                with self._tx() as conn:
                    last = dict(conn.execute(select(messages.c.person_key, func.max(messages.c.seq)).where(
                        messages.c.destination == destination, messages.c.person_key.in_(set(keys))).group_by(
                        messages.c.person_key)).all())
                    now = utcnow()
                    rows = []
                    for p, subject, key, source in zip(prepared, subjects, keys, sources):
                        last[key] = last.get(key, 0) + 1
                        rows.append(dict(
                            destination=destination, kind=p.kind, person_key=key, person_label=subject.label,
                            persons=self._persons_column(subject),
                            seq=last[key], organisation=subject.organisation, correlation_id=uuid.uuid4().hex,
                            source=source, payload_hash=_sha256(p.raw),
                            status=PENDING if p.ok else REJECTED, attempts=0, next_attempt_at=now,
                            last_error=p.problem, created_at=now, updated_at=now))
                    ids = [r[0] for r in conn.execute(
                        insert(messages).returning(messages.c.id, sort_by_parameter_order=True), rows)]
                    conn.execute(insert(payloads), [{"message_id": mid, "payload": p.raw}
                                                    for mid, p in zip(ids, prepared)])
                    for mid, p, subject, key in zip(ids, prepared, subjects, keys):
                        if not p.ok:
                            self._record_rejection(conn, mid, p, destination, subject, key, actor)
                return [Accepted(mid, PENDING if p.ok else REJECTED, p.kind, p.outcome, p.problem)
                        for mid, p in zip(ids, prepared)]
            except IntegrityError:
                continue
        raise RuntimeError("could not assign sequence numbers (too many concurrent enqueues for these persons)")

    def _insert(self, conn: Connection, prepared: Prepared, destination: str, subject: Subject, key: str,
                status: str, source: str | None) -> int:
        now = utcnow()
        seq = conn.execute(select(func.coalesce(func.max(messages.c.seq), 0)).where(
            messages.c.destination == destination, messages.c.person_key == key)).scalar_one() + 1
        message_id = int(conn.execute(insert(messages).values(
            destination=destination, kind=prepared.kind, person_key=key, person_label=subject.label, seq=seq,
            persons=self._persons_column(subject),
            organisation=subject.organisation, correlation_id=uuid.uuid4().hex, source=source,
            payload_hash=_sha256(prepared.raw), status=status, attempts=0,
            next_attempt_at=now, last_error=prepared.problem, created_at=now, updated_at=now,
        ).returning(messages.c.id)).scalar_one())
        conn.execute(insert(payloads).values(message_id=message_id, payload=prepared.raw))
        return message_id

    def _record_rejection(self, conn: Connection, message_id: int, prepared: Prepared, destination: str,
                          subject: Subject, key: str, actor: str) -> None:
        conn.execute(insert(dead_letters).values(
            message_id=message_id, stage="validation", http_status=None, outcome=json.dumps(prepared.outcome),
            error=prepared.problem or "invalid", payload=prepared.raw, created_at=utcnow()))
        row = conn.execute(select(messages.c.correlation_id).where(messages.c.id == message_id)).scalar_one()
        self._audit(conn, action="reject", outcome=audit.MINOR_FAILURE, text=f"not queued: {prepared.problem}",
                    interaction="create", destination=destination, key=key, label=subject.label,
                    persons=self.persons_of(subject), organisation=subject.organisation, message_id=message_id,
                    correlation_id=row, actor=actor)

    def _audit(self, conn: Connection, *, action: str, outcome: str, text: str, interaction: str,
               destination: str, key: str | None, label: str | None, organisation: str | None,
               message_id: int | None, correlation_id: str | None, actor: str = "carebridge",
               details: dict[str, str] | None = None, persons: list[tuple[str, str]] | None = None) -> None:
        from mappings.identifiers import mask_text

        event = audit.transfer_event(
            action=action, outcome=outcome, outcome_text=mask_text(text), interaction=interaction,
            destination=destination, person_key=key, person_label=label, organisation=organisation,
            message_id=message_id, correlation_id=correlation_id, actor=actor, details=details,
            persons=persons or ())
        audit.record(conn, event, action=action, person_key=key, organisation=organisation,
                     message_id=message_id, correlation_id=correlation_id,
                     person_keys=[k for k, _ in persons or ()])

    # --- claiming -----------------------------------------------------------------------

    def claim(self, owner: str, destination: str, *, limit: int = 1, only: Iterable[int] | None = None) -> list[Message]:
        """Lease up to ``limit`` claimable messages to ``owner`` (at most one per person); counts a round each."""
        with self._tx() as conn:
            return self._claim_in(conn, owner, destination, limit, only)

    def _claim_in(self, conn: Connection, owner: str, destination: str, limit: int,
                  only: Iterable[int] | None) -> list[Message]:
        now = utcnow()
        params: dict[str, Any] = {"now": now, "destination": destination, "limit": limit}
        name = "claim"
        if only is not None:
            name, params["only"] = "claim_only", list(only)
        ids = [row[0] for row in conn.execute(_SQL[name + ("_pg" if self.postgres else "")], params)]
        if not ids:
            return []
        lease = {"ids": ids, "owner": owner, "now": now,
                 "expires": now + dt.timedelta(seconds=self.settings.lease_seconds)}
        rows = conn.execute(_SQL["lease"], lease).all()
        texts = dict(conn.execute(_SQL["payloads"], {"ids": ids}).all())
        return sorted((Message.from_row(r, texts[r.id]) for r in rows), key=lambda m: m.id)

    def record_and_claim(self, owner: str, results: list[Result], destination: str, *, limit: int,
                         only: Iterable[int] | None = None) -> tuple[list[int], list[Message]]:
        """Record outcomes and lease the next messages in one transaction: (lost lease ids, claimed)."""
        with self._tx() as conn:
            lost = self._record_in(conn, owner, results) if results else []
            claimed = self._claim_in(conn, owner, destination, limit, only) if limit > 0 else []
        return lost, claimed

    def renew(self, owner: str, ids: Iterable[int]) -> int:
        """Extend the leases ``owner`` holds on these messages; returns how many it still holds."""
        ids = list(ids)
        if not ids:
            return 0
        expires = utcnow() + dt.timedelta(seconds=self.settings.lease_seconds)
        with self._tx() as conn:
            return conn.execute(_SQL["renew"], {"ids": ids, "owner": owner, "expires": expires}).rowcount

    # --- recording outcomes ---------------------------------------------------------------

    def record(self, owner: str, results: list[Result]) -> list[int]:
        """Record the outcomes of delivery rounds in one transaction (with their AuditEvents).

        Only messages ``owner`` still holds are recorded; returns the ids whose lease was lost.
        """
        if not results:
            return []
        with self._tx() as conn:
            return self._record_in(conn, owner, results)

    def _record_in(self, conn: Connection, owner: str, results: list[Result]) -> list[int]:
        now = utcnow()
        ids = [r.message.id for r in results]
        held_query = _SQL["held"].with_for_update() if self.postgres else _SQL["held"]
        held = {row[0] for row in conn.execute(held_query, {"ids": ids, "owner": owner})}
        delivered, events = [], []
        for r in results:
            m = r.message
            if m.id not in held:
                continue
            if r.outcome == DELIVERED:
                summary = json.dumps(r.summary or {})
                delivered.append({"mid": m.id, "now": now, "result": summary})
                events.append(self._event(m, action="transfer", outcome=audit.SUCCESS, actor=owner,
                                          text=f"delivered (HTTP {r.http_status})",
                                          details={"http-status": str(r.http_status), "summary": summary}))
            elif r.outcome == RESCHEDULED:
                conn.execute(update(messages).where(messages.c.id == m.id).values(
                    lease_owner=None, lease_expires_at=None, updated_at=now, last_error=r.error,
                    next_attempt_at=now + dt.timedelta(seconds=r.delay)))
                events.append(self._event(m, action="transfer", outcome=audit.MINOR_FAILURE, actor=owner,
                                          text=f"not delivered, retry in {r.delay:.0f} s: {r.error}",
                                          details={"http-status": str(r.http_status or "")}))
            elif r.outcome == DEAD:
                conn.execute(update(messages).where(messages.c.id == m.id).values(
                    lease_owner=None, lease_expires_at=None, updated_at=now, status=DEAD, last_error=r.error,
                    hold_until=now + dt.timedelta(seconds=self.settings.dead_letter_hold)))
                conn.execute(insert(dead_letters).values(
                    message_id=m.id, stage=r.stage or "delivery", http_status=r.http_status,
                    outcome=json.dumps(r.outcome_resource) if r.outcome_resource else None,
                    error=r.error or "", payload=m.payload_text, created_at=now))
                events.append(self._event(m, action="transfer", outcome=audit.SERIOUS_FAILURE, actor=owner,
                                          text=f"dead letter ({r.stage}): {r.error}",
                                          details={"http-status": str(r.http_status or "")}))
            elif r.outcome == RELEASED:
                conn.execute(update(messages).where(messages.c.id == m.id).values(
                    lease_owner=None, lease_expires_at=None, updated_at=now, attempts=messages.c.attempts - 1))
        if delivered:
            conn.execute(_SQL["delivered"], delivered)
        if events:
            audit.record_many(conn, events)
        return [i for i in ids if i not in held]

    def _event(self, message: Message, *, action: str, outcome: str, text: str, actor: str,
               details: dict[str, str] | None = None) -> dict[str, Any]:
        """The ``audit_events`` row of an AuditEvent about this message."""
        from mappings.identifiers import mask_text

        persons = message.every_person if message.persons else []
        event = audit.transfer_event(
            action=action, outcome=outcome, outcome_text=mask_text(text),
            interaction="update" if message.kind == UPDATE else "transaction", destination=message.destination,
            person_key=message.person_key, person_label=message.person_label, organisation=message.organisation,
            message_id=message.id, correlation_id=message.correlation_id, actor=actor, details=details,
            persons=persons)
        return audit.row(event, action=action, person_key=message.person_key, organisation=message.organisation,
                         message_id=message.id, correlation_id=message.correlation_id,
                         person_keys=[k for k, _ in persons])

    def _audit_message(self, conn: Connection, message: Message, *, action: str, outcome: str, text: str,
                       actor: str = "carebridge", details: dict[str, str] | None = None) -> None:
        audit.record_many(conn, [self._event(message, action=action, outcome=outcome, text=text, actor=actor,
                                             details=details)])

    def _one(self, owner: str, result: Result) -> None:
        if self.record(owner, [result]):
            raise LeaseLost(f"message {result.message.id}: lease lost before its outcome was recorded")

    def mark_delivered(self, message: Message, owner: str, *, http_status: int, summary: dict[str, Any]) -> None:
        """Record a delivery (and its AuditEvent); LeaseLost if another worker holds the message now."""
        self._one(owner, Result(message, DELIVERED, http_status=http_status, summary=summary))

    def reschedule(self, message: Message, owner: str, *, error: str, delay: float, http_status: int | None) -> None:
        """A transient failure: try again after ``delay`` seconds (AuditEvent: minor failure)."""
        self._one(owner, Result(message, RESCHEDULED, http_status=http_status, error=error, delay=delay))

    def release(self, message: Message, owner: str) -> None:
        """Give a claimed message back untried (circuit open, shutting down); the round is not counted."""
        self._one(owner, Result(message, RELEASED))

    def dead_letter(self, message: Message, owner: str, *, stage: str, error: str, http_status: int | None,
                    outcome: dict[str, Any] | None) -> None:
        """A permanent failure: keep the server's answer; hold the person's later messages for a while."""
        self._one(owner, Result(message, DEAD, http_status=http_status, error=error, stage=stage,
                                outcome_resource=outcome))

    # --- operators: replay, edit, discard -------------------------------------------------

    def replay(self, message_id: int, *, actor: str, new_data: bytes | None = None,
               reason: str | None = None, receiver_huvudman: str | None = None) -> Accepted:
        """Queue a message again at its place in its person's order, optionally with an edited payload.

        The original payload stays in the edit trail; an edited payload is converted and validated
        like a new document (a transfer to ``receiver_huvudman``, the huvudman of the message's
        destination) and refused (nothing changes) when it has errors.
        """
        prepared = prepare(new_data, receiver_huvudman=receiver_huvudman) if new_data is not None else None
        if prepared is not None and not prepared.ok:
            return Accepted(message_id, "refused", prepared.kind, prepared.outcome, prepared.problem)
        subject = subject_of(prepared.payload or {}) if prepared is not None else None
        key = self.key_of(subject) if subject is not None else None
        now = utcnow()
        for _attempt in range(20):
            try:
                with self._tx() as conn:
                    msg = self._get(conn, message_id, for_update=True)
                    if msg.status not in REPLAYABLE:
                        raise NotReplayable(f"message {message_id} is {msg.status}; only {', '.join(REPLAYABLE)} "
                                            "messages can be replayed")
                    values: dict[str, Any] = dict(status=PENDING, attempts=0, next_attempt_at=now, hold_until=None,
                                                  last_error=None, lease_owner=None, lease_expires_at=None,
                                                  delivered_at=None, result=None, updated_at=now)
                    kind = msg.kind
                    if prepared is not None and subject is not None and key is not None:
                        kind = prepared.kind
                        conn.execute(update(payloads).where(payloads.c.message_id == message_id).values(
                            payload=prepared.raw))
                        values.update(payload_hash=_sha256(prepared.raw), kind=prepared.kind,
                                      person_key=key, person_label=subject.label, organisation=subject.organisation,
                                      persons=self._persons_column(subject))
                        if key != msg.person_key:  # the edit names another person: join the end of their queue
                            values["seq"] = conn.execute(select(func.coalesce(func.max(messages.c.seq), 0)).where(
                                messages.c.destination == msg.destination, messages.c.person_key == key)).scalar_one() + 1
                    dead_id = self._resolve_dead_letters(conn, message_id, "replayed", now)
                    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))
                    action = "edit" if prepared is not None else "replay"
                    conn.execute(insert(message_edits).values(
                        message_id=message_id, dead_letter_id=dead_id, action=action, actor=actor, reason=reason,
                        old_payload=msg.payload_text, new_payload=prepared.raw if prepared else None, created_at=now))
                    after = self._get(conn, message_id)
                    self._audit_message(conn, after, action=action, outcome=audit.SUCCESS, actor=actor,
                                        text=f"{action} by {actor}" + (f": {reason}" if reason else ""),
                                        details={"previous-status": msg.status})
                return Accepted(message_id, PENDING, kind, prepared.outcome if prepared else {})
            except IntegrityError:
                continue
        raise RuntimeError("could not assign a sequence number for the edited message")

    def discard(self, message_id: int, *, actor: str, reason: str | None = None) -> None:
        """Give up on a dead or rejected message for good; releases its hold on the person's queue."""
        now = utcnow()
        with self._tx() as conn:
            msg = self._get(conn, message_id, for_update=True)
            if msg.status not in (DEAD, REJECTED):
                raise NotReplayable(f"message {message_id} is {msg.status}; only dead or rejected messages can be discarded")
            dead_id = self._resolve_dead_letters(conn, message_id, "discarded", now)
            conn.execute(update(messages).where(messages.c.id == message_id).values(
                status=DISCARDED, hold_until=None, updated_at=now))
            conn.execute(insert(message_edits).values(
                message_id=message_id, dead_letter_id=dead_id, action="discard", actor=actor, reason=reason,
                old_payload=msg.payload_text, new_payload=None, created_at=now))
            self._audit_message(conn, msg, action="discard", outcome=audit.SUCCESS, actor=actor,
                                text=f"discarded by {actor}" + (f": {reason}" if reason else ""))

    def _resolve_dead_letters(self, conn: Connection, message_id: int, resolution: str, now: dt.datetime) -> int | None:
        open_ids = [r[0] for r in conn.execute(select(dead_letters.c.id).where(
            dead_letters.c.message_id == message_id, dead_letters.c.resolved_at.is_(None)))]
        if open_ids:
            conn.execute(update(dead_letters).where(dead_letters.c.id.in_(open_ids)).values(
                resolved_at=now, resolution=resolution))
        return open_ids[-1] if open_ids else None

    def _get(self, conn: Connection, message_id: int, *, for_update: bool = False) -> Message:
        query = _with_payload().where(messages.c.id == message_id)
        if for_update and self.postgres:
            query = query.with_for_update(of=messages)
        row = conn.execute(query).first()
        if row is None:
            raise NotReplayable(f"no message {message_id}")
        return Message.from_row(row)

    # --- reading --------------------------------------------------------------------------

    def get(self, message_id: int) -> Message:
        """One message by id (NotReplayable if there is none)."""
        with reader(self.engine) as conn:
            return self._get(conn, message_id)

    def list(self, *, status: str | None = None, destination: str | None = None, ids: Iterable[int] | None = None,
             limit: int = 100) -> list[Message]:
        """Messages, oldest first, filtered by status, destination or ids."""
        query = _with_payload().order_by(messages.c.id).limit(limit)
        if status:
            query = query.where(messages.c.status == status)
        if destination:
            query = query.where(messages.c.destination == destination)
        if ids is not None:
            query = query.where(messages.c.id.in_(list(ids)))
        with reader(self.engine) as conn:
            return [Message.from_row(r) for r in conn.execute(query)]

    def dead(self, *, include_resolved: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters (newest first) with the server's or validator's answer."""
        query = select(dead_letters, messages.c.destination, messages.c.person_label, messages.c.source,
                       messages.c.status.label("message_status")).join(
            messages, messages.c.id == dead_letters.c.message_id).order_by(dead_letters.c.id.desc()).limit(limit)
        if not include_resolved:
            query = query.where(dead_letters.c.resolved_at.is_(None))
        with reader(self.engine) as conn:
            out = []
            for row in conn.execute(query):
                item = dict(row._mapping)
                item["outcome"] = json.loads(item["outcome"]) if item["outcome"] else None
                out.append(item)
            return out

    def edits(self, message_id: int) -> list[dict[str, Any]]:
        """The replay/edit/discard trail of one message, oldest first."""
        with reader(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(message_edits).where(message_edits.c.message_id == message_id).order_by(message_edits.c.id))]

    def waiting(self, destination: str, *, only: Iterable[int] | None = None) -> dict[str, int]:
        """Pending messages by what they wait for.

        ``held`` (behind a dead letter in its hold), ``blocked`` (behind an earlier pending message),
        ``later`` (backoff), ``leased`` (a worker has it) and ``due`` (claimable now).
        """
        now = utcnow()
        earlier = messages.alias("earlier")
        behind = and_(earlier.c.destination == messages.c.destination, earlier.c.person_key == messages.c.person_key,
                      earlier.c.seq < messages.c.seq)
        held = exists().where(behind, earlier.c.status == DEAD, earlier.c.hold_until > now)
        blocked = exists().where(behind, earlier.c.status == PENDING)
        leased = and_(messages.c.lease_expires_at.is_not(None), messages.c.lease_expires_at >= now)
        base = select(func.count()).select_from(messages).where(
            messages.c.status == PENDING, messages.c.destination == destination)
        if only is not None:
            base = base.where(messages.c.id.in_(list(only)))
        with reader(self.engine) as conn:
            counts = {
                "held": conn.execute(base.where(held)).scalar_one(),
                "blocked": conn.execute(base.where(~held, blocked)).scalar_one(),
                "leased": conn.execute(base.where(~held, ~blocked, leased)).scalar_one(),
                "later": conn.execute(base.where(~held, ~blocked, ~leased, messages.c.next_attempt_at > now)).scalar_one(),
            }
            counts["due"] = conn.execute(base).scalar_one() - sum(counts.values())
        return counts

    def depth(self) -> list[dict[str, Any]]:
        """Per destination and status: message count and the oldest message's creation time."""
        query = select(messages.c.destination, messages.c.status, func.count(), func.min(messages.c.created_at)).group_by(
            messages.c.destination, messages.c.status)
        with reader(self.engine) as conn:
            return [{"destination": d, "status": s, "count": n, "oldest": _parse_time(o)}
                    for d, s, n, o in conn.execute(query)]


def _with_payload():  # type: ignore[no-untyped-def]
    """SELECT of messages joined with their payloads."""
    return select(messages, payloads.c.payload).join(payloads, payloads.c.message_id == messages.c.id)


def _parse_time(value: Any) -> dt.datetime | None:
    """A UTC datetime from what an aggregate returned (SQLite gives strings)."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed

