"""The durable outbox: documents accepted in one transaction, delivered in per-person order by workers.

    from adapter.outbox import Outbox, Worker
    outbox = Outbox.open(database_url())
    outbox.accept(data, destination)                 # convert, validate, enqueue (or keep as rejected)
    Worker(outbox, gateway).run(until_empty=True)    # deliver
"""

from adapter.outbox.store import (DEAD, DELIVERED, DISCARDED, PENDING, REJECTED, Accepted, LeaseLost, Message,
                                  NotReplayable, Outbox)

__all__ = ["DEAD", "DELIVERED", "DISCARDED", "PENDING", "REJECTED", "Accepted", "LeaseLost", "Message",
           "NotReplayable", "Outbox", "Worker"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """``Worker`` is imported on first use (it pulls in the gateway and httpx)."""
    if name == "Worker":
        from adapter.outbox.worker import Worker

        return Worker
    raise AttributeError(name)
