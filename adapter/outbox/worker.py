"""Workers: threads that claim messages, deliver them through the gateway and record the outcome.

Any number of worker processes (each with ``concurrency`` threads) may serve one outbox. A
message is leased while it is worked on; a heartbeat renews the leases, so a worker that dies
(even by SIGKILL) loses them after ``lease_seconds`` and another worker picks the message up.
"""

from __future__ import annotations

import datetime as dt
import os
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
from adapter.outbox.store import LeaseLost, Message, Outbox, utcnow

log = get_logger("worker")

#: What can happen to a message in one round.
DELIVERED, RESCHEDULED, DEAD, RELEASED, LOST = "delivered", "rescheduled", "dead", "released", "lease-lost"


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
    """Delivers one destination's messages from an outbox with ``concurrency`` threads."""

    def __init__(self, outbox: Outbox, gateway: Gateway, *, concurrency: int = 4, owner: str | None = None,
                 poll: float = 0.25, on_outcome: Callable[[Message, str], None] | None = None) -> None:
        self.outbox = outbox
        self.gateway = gateway
        self.destination = gateway.base_url
        self.concurrency = max(1, concurrency)
        self.owner = owner or worker_id()
        self.poll = poll
        self.on_outcome = on_outcome
        self.report = Report()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        metrics.watch(outbox)

    # --- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the rounds under way (without further retries) and return from ``run``."""
        self._stop.set()
        self.gateway.interrupt()

    def run(self, *, until_empty: bool = False, only: Iterable[int] | None = None) -> Report:
        """Deliver until stopped; ``until_empty``: until nothing is left but held messages;
        ``only``: just these messages, until each is final or waits for a later round."""
        only_ids = set(only) if only is not None else None
        threads = [threading.Thread(target=self._loop, args=(only_ids,), name=f"worker-{n}", daemon=True)
                   for n in range(self.concurrency)]
        heartbeat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        for t in [*threads, heartbeat]:
            t.start()
        try:
            while not self._stop.is_set():
                if (until_empty or only_ids is not None) and self._finished(only_ids):
                    break
                self._stop.wait(self.poll)
        finally:
            self._stop.set()
            for t in threads:
                t.join()
            heartbeat.join()
        return self.report

    def _finished(self, only: set[int] | None) -> bool:
        """Nothing in flight here, and nothing due or leased elsewhere (``only``: nothing that can move now)."""
        with self._lock:
            if self._in_flight:
                return False
        counts = self.outbox.waiting(self.destination, only=only)
        if only is not None:
            return counts["due"] == 0 and counts["leased"] == 0
        return counts["due"] + counts["leased"] + counts["later"] + counts["blocked"] == 0

    def _heartbeat(self) -> None:
        interval = max(0.2, self.outbox.settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                ids = list(self._in_flight)
            try:
                self.outbox.renew(self.owner, ids)
            except Exception:  # noqa: BLE001 - a failed renewal is retried next beat
                log.exception("lease renewal failed")

    # --- the loop -----------------------------------------------------------------------

    def _loop(self, only: set[int] | None) -> None:
        idle = self.poll
        while not self._stop.is_set():
            if self.gateway.breaker.is_open:
                self._stop.wait(min(1.0, max(0.05, self.gateway.breaker.open_until - time.monotonic())))
                continue
            try:
                claimed = self.outbox.claim(self.owner, self.destination, limit=1, only=only)
            except Exception:  # noqa: BLE001 - e.g. the database restarting: wait and try again
                log.exception("claim failed")
                self._stop.wait(1.0)
                continue
            if not claimed:
                self._stop.wait(idle * random.uniform(0.5, 1.0))
                idle = min(idle * 2, 2.0)
                continue
            idle = self.poll
            for message in claimed:
                with self._lock:
                    self._in_flight.add(message.id)
                try:
                    outcome = self.process(message)
                finally:
                    with self._lock:
                        self._in_flight.discard(message.id)
                with self._lock:
                    self.report.add(message.id, outcome)
                if self.on_outcome:
                    self.on_outcome(message, outcome)

    def _reschedule_delay(self, message: Message, retry_after: float | None) -> float:
        """Backoff between rounds: initial * 2^(round-1), capped, with equal jitter; at least Retry-After."""
        s = self.outbox.settings
        step = min(s.reschedule_max, s.reschedule_initial * 2 ** max(0, message.attempts - 1))
        return max(step / 2 + random.uniform(0, step / 2), retry_after or 0.0)

    def _exhausted(self, message: Message) -> bool:
        s = self.outbox.settings
        age = (utcnow() - message.created_at).total_seconds()
        return message.attempts >= s.max_rounds or age >= s.give_up_after

    def process(self, message: Message) -> str:
        """One delivery round for a claimed message; records and returns its outcome."""
        gw, box, dest = self.gateway, self.outbox, self.destination
        with correlation(message.correlation_id, message_id=message.id):
            rnd = gw.new_round()
            try:
                try:
                    delivered = gw.deliver(message.kind, message.payload, message.correlation_id, rnd)
                except (CircuitOpen, Interrupted) as exc:
                    if rnd.attempts == 0:
                        box.release(message, self.owner)
                        return RELEASED
                    delay = max(0.0, exc.until - time.monotonic()) if isinstance(exc, CircuitOpen) else 0.0
                    box.reschedule(message, self.owner, error=str(exc), delay=delay, http_status=None)
                    metrics.OUTCOMES.labels(dest, RESCHEDULED).inc()
                    return RESCHEDULED
                except Conflict as exc:
                    return self._dead(message, "conflict", exc)
                except Permanent as exc:
                    return self._dead(message, "delivery", exc)
                except Transient as exc:
                    if self._exhausted(message):
                        return self._dead(message, "exhausted", exc)
                    delay = self._reschedule_delay(message, exc.retry_after)
                    box.reschedule(message, self.owner, error=str(exc), delay=delay, http_status=exc.status)
                    metrics.OUTCOMES.labels(dest, RESCHEDULED).inc()
                    log.warning("not delivered, rescheduled", extra={"error": str(exc), "retry_in_s": round(delay, 1),
                                                                     "attempts": rnd.attempts})
                    return RESCHEDULED
                box.mark_delivered(message, self.owner, http_status=delivered.http_status, summary=delivered.summary)
                metrics.OUTCOMES.labels(dest, DELIVERED).inc()
                log.info("delivered", extra=fields(kind=message.kind, person=message.person_label,
                                                   http_status=delivered.http_status,
                                                   **{k: v for k, v in delivered.summary.items() if k != "status"}))
                return DELIVERED
            except LeaseLost as exc:
                log.warning(str(exc))
                return LOST
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker thread or lose the message
                log.exception("unexpected error in a delivery round")
                try:
                    box.reschedule(message, self.owner, error=f"internal error: {type(exc).__name__}: {exc}",
                                   delay=self._reschedule_delay(message, None), http_status=None)
                except Exception:  # noqa: BLE001 - the lease will expire and another round will follow
                    log.exception("could not reschedule after an internal error")
                return RESCHEDULED

    def _dead(self, message: Message, stage: str, exc: Permanent | Transient) -> str:
        self.outbox.dead_letter(message, self.owner, stage=stage, error=str(exc), http_status=exc.status,
                                outcome=exc.outcome)
        metrics.OUTCOMES.labels(self.destination, DEAD).inc()
        log.error("dead letter", extra={"stage": stage, "error": str(exc), "http_status": exc.status})
        return DEAD


def age_seconds(when: dt.datetime) -> float:
    """Seconds since ``when``."""
    return (utcnow() - when).total_seconds()
