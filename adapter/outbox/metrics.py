"""Prometheus metrics of the outbox and gateway, in a registry of their own.

The API mounts them with ``render()`` (body, content type) or by adding ``REGISTRY`` to its own
exposition. Queue depth and the oldest message's age are read from the database at scrape time
for every outbox passed to ``watch()``.

| Metric | Labels |
|---|---|
| carebridge_gateway_requests_total | destination, interaction, result |
| carebridge_gateway_request_seconds (histogram) | destination, interaction |
| carebridge_outbox_outcomes_total | destination, outcome |
| carebridge_gateway_circuit_open | destination |
| carebridge_outbox_messages | destination, status |
| carebridge_outbox_oldest_pending_age_seconds | destination |
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from adapter.outbox.store import Outbox

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("carebridge_gateway_requests", "HTTP requests to regional servers, by result",
                   ["destination", "interaction", "result"], registry=REGISTRY)
LATENCY = Histogram("carebridge_gateway_request_seconds", "Time to an answer from a regional server",
                    ["destination", "interaction"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
OUTCOMES = Counter("carebridge_outbox_outcomes", "Messages by what happened to them",
                   ["destination", "outcome"], registry=REGISTRY)
CIRCUIT_OPEN = Gauge("carebridge_gateway_circuit_open", "1 while the destination's circuit breaker is open",
                     ["destination"], registry=REGISTRY)


class QueueCollector:
    """Reads queue depth per status and the oldest pending message's age from watched outboxes."""

    def __init__(self) -> None:
        self._outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes.add(outbox)

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("carebridge_outbox_messages", "Messages in the outbox by status",
                                  labels=["destination", "status"])
        age = GaugeMetricFamily("carebridge_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending message", labels=["destination"])
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            outboxes = list(self._outboxes)
        for outbox in outboxes:
            try:
                rows = outbox.depth()
            except Exception:  # noqa: BLE001 - a scrape must not fail because one database is away
                continue
            for row in rows:
                depth.add_metric([row["destination"], row["status"]], row["count"])
                if row["status"] == "pending" and row["oldest"] is not None:
                    age.add_metric([row["destination"]], (now - row["oldest"]).total_seconds())
        yield depth
        yield age


_queue = QueueCollector()
REGISTRY.register(_queue)  # type: ignore[arg-type]


def watch(outbox: Outbox) -> None:
    """Report this outbox's queue depth and oldest age at every scrape."""
    _queue.watch(outbox)


def render() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
