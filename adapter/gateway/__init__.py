"""Delivery to regional FHIR servers: retries, circuit breaker, rate limit, auth, versioned updates.

    from adapter.gateway import Gateway
    with Gateway("https://region.example/fhir") as gw:
        gw.check_server()
        gw.deliver("transaction", bundle, correlation_id)
"""

from adapter.gateway.client import Delivered, Gateway, Round
from adapter.gateway.errors import CircuitOpen, Conflict, DeliveryError, Permanent, Transient, UnsuitableServer

__all__ = ["CircuitOpen", "Conflict", "Delivered", "DeliveryError", "Gateway", "Permanent", "Round", "Transient",
           "UnsuitableServer"]
