"""Workers: claim messages, deliver them through the gateway, record the outcomes.

One worker process runs a small pipeline around the outbox:

- ``concurrency`` *senders* deliver claimed messages through the shared Gateway (one round each);
- a *bookkeeper* commits their outcomes in batches (each with its AuditEvent) and, in the same
  transaction, leases the next claimable messages (the head of each person's queue);
- a *heartbeat* renews the leases of everything claimed and not yet recorded.

Any number of worker processes may serve one outbox. A worker that dies (even by SIGKILL) loses
its leases after ``lease_seconds`` and another worker takes the messages over; since every write
is idempotent, a message whose outcome was not recorded is simply delivered again.
"""

from __future__ import annotations

import os
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from adapter.gateway.client import Gateway
from adapter.gateway.errors import CircuitOpen, Conflict, Interrupted, Permanent, Transient
from adapter.logs import correlation, fields, get_logger
from adapter.outbox import metrics
from adapter.outbox.store import DEAD, DELIVERED, RELEASED, RESCHEDULED, Message, Outbox, Result, utcnow

log = get_logger("worker")

#: A message whose lease was lost before its outcome could be recorded (another worker has it).
LOST = "lease-lost"
#: Seconds the recorder waits for more outcomes to commit together (it stops waiting once it has
#: half a claim window of them).
RECORD_LINGER = 0.05


@dataclass
class Report:
    """What one ``run`` did: outcome counts and, per message, its last outcome."""

    counts: dict[str, int] = field(default_factory=dict)
    last: dict[int, str] = field(default_factory=dict)

    def add(self, message_id: int, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        self.last[message_id] = outcome


def worker_id() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Delivers one destination's messages from an outbox.

    ``gateway`` is a ``Gateway`` or anything with its interface: ``base_url``, ``breaker``,
    ``new_round()``, ``deliver(kind, payload, correlation_id, rnd)`` and ``interrupt()``.
    """

    def __init__(self, outbox: Outbox, gateway: Gateway, *, concurrency: int = 4, owner: str | None = None,
                 poll: float = 0.25, batch: int | None = None,
                 on_outcome: Callable[[Message, str], None] | None = None) -> None:
        self.outbox = outbox
        self.gateway = gateway
        self.destination = gateway.base_url
        self.concurrency = max(1, concurrency)
        self.owner = owner or worker_id()
        self.poll = poll
        self.batch = batch or max(16, 8 * self.concurrency)  # claimed and not yet recorded, at most
        self.on_outcome = on_outcome
        self.report = Report()
        self._stop = threading.Event()
        self._idle = threading.Event()  # the claimer found nothing to take with nothing claimed
        self._lock = threading.Lock()
        self._claimed: set[int] = set()
        self._work: queue.Queue[Message] = queue.Queue()
        self._results: queue.Queue[Result] = queue.Queue()
        metrics.watch(outbox)

    # --- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the rounds under way (without further retries), record them and return from ``run``."""
        self._stop.set()
        self.gateway.interrupt()

    def run(self, *, until_empty: bool = False, only: Iterable[int] | None = None) -> Report:
        """Deliver until stopped; ``until_empty``: until nothing is left but held messages;
        ``only``: just these messages, until each is final or waits for a later round."""
        only_ids = set(only) if only is not None else None
        senders = [threading.Thread(target=self._send_loop, name=f"sender-{n}", daemon=True)
                   for n in range(self.concurrency)]
        bookkeeper = threading.Thread(target=self._book_loop, args=(only_ids, senders), name="bookkeeper",
                                      daemon=True)
        heartbeat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        for t in [*senders, bookkeeper, heartbeat]:
            t.start()
        try:
            while not self._stop.is_set():
                if (until_empty or only_ids is not None) and self._finished(only_ids):
                    break
                self._stop.wait(self.poll)
        finally:
            self._stop.set()
            self._release_unstarted()
            for t in senders:
                t.join()
            bookkeeper.join()
            heartbeat.join()
        return self.report

    def _finished(self, only: set[int] | None) -> bool:
        """Nothing claimed here, and nothing due or leased elsewhere (``only``: nothing that can move now)."""
        if not self._idle.is_set():  # the bookkeeper is busy: no need to ask the database
            return False
        with self._lock:
            if self._claimed:
                return False
        counts = self.outbox.waiting(self.destination, only=only)
        if only is not None:
            return counts["due"] == 0 and counts["leased"] == 0
        return counts["due"] + counts["leased"] + counts["later"] + counts["blocked"] == 0

    # --- the pipeline -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            try:
                message = self._work.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self._results.put(self.attempt(message))

    def _book_loop(self, only: set[int] | None, senders: list[threading.Thread]) -> None:
        """Record outcomes and claim the next messages, together, until stopped and everything is recorded."""
        idle, dry = self.poll, False  # dry: the last claim found nothing claimable
        half = max(1, self.batch // 2)
        while True:
            stopping = self._stop.is_set()
            with self._lock:
                claimed = len(self._claimed)
            if stopping and claimed == 0:
                return
            hungry = not stopping and not dry and self._work.qsize() < self.concurrency
            batch = self._collect(claimed, hungry)
            room = 0 if stopping or self.gateway.breaker.is_open else self.batch - (claimed - len(batch))
            # Claim when the senders need work, in chunks otherwise, and after outcomes that may have
            # made a person's next message claimable.
            limit = room if room > 0 and (hungry or room >= half or (dry and batch)) else 0
            if not batch and limit == 0:
                if stopping and not any(t.is_alive() for t in senders) and self._results.empty():
                    return  # nothing more will come back
                if self.gateway.breaker.is_open:
                    self._stop.wait(min(1.0, max(0.05, self.gateway.breaker.open_until - time.monotonic())))
                continue
            try:
                lost, new = self.outbox.record_and_claim(self.owner, batch, self.destination, limit=limit, only=only)
            except Exception:  # noqa: BLE001 - e.g. the database restarting: keep the outcomes, try again
                log.exception("could not record outcomes or claim messages")
                for r in batch:
                    self._results.put(r)
                self._stop.wait(1.0)
                continue
            self._recorded(batch, set(lost))
            if new:
                dry, idle = False, self.poll
                self._idle.clear()
                with self._lock:
                    self._claimed.update(m.id for m in new)
                for m in new:
                    self._work.put(m)
            elif limit > 0:
                dry = True
                if claimed - len(batch) <= 0:  # nothing under way and nothing to take: poll, backing off
                    self._idle.set()
                    self._stop.wait(idle * random.uniform(0.5, 1.0))
                    idle = min(idle * 2, 2.0)

    def _collect(self, claimed: int, hungry: bool) -> list[Result]:
        """Outcomes to record now: wait for the first (unless senders need work or nothing is under way),
        linger briefly for more while other messages are under way, then take whatever else is ready."""
        batch: list[Result] = []
        if claimed > 0 and not hungry:
            try:
                batch.append(self._results.get(timeout=0.1))
            except queue.Empty:
                return batch
            deadline = time.monotonic() + RECORD_LINGER
            while len(batch) < max(1, self.batch // 2):
                wait = deadline - time.monotonic()
                if claimed - len(batch) - self._results.qsize() <= 0 or wait <= 0:
                    break
                try:
                    batch.append(self._results.get(timeout=min(wait, 0.005)))
                except queue.Empty:
                    continue
        while len(batch) < 500:
            try:
                batch.append(self._results.get_nowait())
            except queue.Empty:
                break
        return batch

    def _recorded(self, batch: list[Result], lost: set[int]) -> None:
        """Book-keeping after outcomes were committed: counts, callbacks, metrics, the claimed set."""
        for r in batch:
            outcome = LOST if r.message.id in lost else r.outcome
            if outcome == LOST:
                log.warning("lease lost before the outcome was recorded", extra={"message_id": r.message.id})
            elif outcome != RELEASED:
                metrics.OUTCOMES.labels(self.destination, outcome).inc()
            with self._lock:
                self._claimed.discard(r.message.id)
                self.report.add(r.message.id, outcome)
            if self.on_outcome:
                self.on_outcome(r.message, outcome)

    def _record(self, batch: list[Result]) -> None:
        """Record outcomes now (outside ``run``)."""
        self._recorded(batch, set(self.outbox.record(self.owner, batch)))

    def _release_unstarted(self) -> None:
        """Give back messages claimed but not yet started (shutting down)."""
        while True:
            try:
                message = self._work.get_nowait()
            except queue.Empty:
                return
            self._results.put(Result(message, RELEASED))

    def _heartbeat(self) -> None:
        interval = max(0.2, self.outbox.settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                ids = list(self._claimed)
            try:
                self.outbox.renew(self.owner, ids)
            except Exception:  # noqa: BLE001 - a failed renewal is retried next beat
                log.exception("lease renewal failed")

    # --- one round ----------------------------------------------------------------------------

    def _reschedule_delay(self, message: Message, retry_after: float | None) -> float:
        """Backoff between rounds: initial * 2^(round-1), capped, with equal jitter; at least Retry-After."""
        s = self.outbox.settings
        step = min(s.reschedule_max, s.reschedule_initial * 2 ** max(0, message.attempts - 1))
        return max(step / 2 + random.uniform(0, step / 2), retry_after or 0.0)

    def _exhausted(self, message: Message) -> bool:
        s = self.outbox.settings
        age = (utcnow() - message.created_at).total_seconds()
        return message.attempts >= s.max_rounds or age >= s.give_up_after

    def attempt(self, message: Message) -> Result:
        """One delivery round for a claimed message; returns its outcome, not yet recorded."""
        with correlation(message.correlation_id, message_id=message.id):
            rnd = self.gateway.new_round()
            try:
                if isinstance(self.gateway, Gateway):  # sends the stored JSON text as it is, unparsed
                    delivered = self.gateway.deliver(message.kind, None, message.correlation_id, rnd,
                                                     raw=message.payload_text)
                else:  # any object with the same deliver() (e.g. adapter.inbound.municipal.MunicipalGateway)
                    delivered = self.gateway.deliver(message.kind, message.payload, message.correlation_id, rnd)
            except (CircuitOpen, Interrupted) as exc:
                if rnd.attempts == 0:
                    return Result(message, RELEASED)
                delay = max(0.0, exc.until - time.monotonic()) if isinstance(exc, CircuitOpen) else 0.0
                return Result(message, RESCHEDULED, error=str(exc), delay=delay)
            except Conflict as exc:
                return self._dead(message, "conflict", exc)
            except Permanent as exc:
                return self._dead(message, "delivery", exc)
            except Transient as exc:
                if self._exhausted(message):
                    return self._dead(message, "exhausted", exc)
                delay = self._reschedule_delay(message, exc.retry_after)
                log.warning("not delivered, rescheduled", extra=fields(error=str(exc), retry_in_s=round(delay, 1),
                                                                       attempts=rnd.attempts))
                return Result(message, RESCHEDULED, http_status=exc.status, error=str(exc), delay=delay)
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the sender or lose the message
                log.exception("unexpected error in a delivery round")
                return Result(message, RESCHEDULED, error=f"internal error: {type(exc).__name__}: {exc}",
                              delay=self._reschedule_delay(message, None))
            log.info("delivered", extra=fields(kind=message.kind, person=message.person_label,
                                               http_status=delivered.http_status,
                                               **{k: v for k, v in delivered.summary.items() if k != "status"}))
            return Result(message, DELIVERED, http_status=delivered.http_status, summary=delivered.summary)

    def _dead(self, message: Message, stage: str, exc: Permanent | Transient) -> Result:
        log.error("dead letter", extra=fields(stage=stage, error=str(exc), http_status=exc.status))
        return Result(message, DEAD, http_status=exc.status, error=str(exc), stage=stage, outcome_resource=exc.outcome)

    def process(self, message: Message) -> str:
        """Deliver one claimed message and record its outcome now (outside ``run``)."""
        self._record([self.attempt(message)])
        return self.report.last[message.id]
