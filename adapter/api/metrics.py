"""Prometheus metrics of the API itself, served at /metrics together with the outbox and gateway registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("carebridge_api_requests", "API requests by route template and status",
                   ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("carebridge_api_request_seconds", "Time to answer an API request", ["method", "route"],
                    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
INBOUND = Counter("carebridge_inbound_changes", "Regional changes received by notification, by result",
                  ["resource_type", "result"], registry=REGISTRY)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def render() -> tuple[bytes, str]:
    """Every carebridge metric (API, outbox, gateway) in Prometheus text format, and its content type."""
    from adapter.outbox import metrics as outbox_metrics

    body, content_type = outbox_metrics.render()
    return generate_latest(REGISTRY) + body, content_type
