"""Delivery to regional FHIR servers: retries, circuit breaker, rate limit, auth, versioned updates.

    from adapter.gateway import Gateway
    with Gateway("https://region.example/fhir") as gw:
        gw.check_server()
        gw.deliver("transaction", bundle, correlation_id)

Names are imported on first use, so importing a submodule (e.g. ``options`` for the CLI) stays cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Delivered": "adapter.gateway.client", "Gateway": "adapter.gateway.client", "Round": "adapter.gateway.client",
    "CircuitOpen": "adapter.gateway.errors", "Conflict": "adapter.gateway.errors",
    "DeliveryError": "adapter.gateway.errors", "Permanent": "adapter.gateway.errors",
    "Transient": "adapter.gateway.errors", "UnsuitableServer": "adapter.gateway.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
