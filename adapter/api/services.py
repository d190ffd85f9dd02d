"""What the API's routes work with: settings, the outbox, the regional reader, and the delivery workers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from adapter.api.settings import ApiSettings
from adapter.config import AuthSettings
from adapter.logs import get_logger
from adapter.outbox import Outbox

log = get_logger("api")


@dataclass
class Services:
    """The API's collaborators, shared by all requests."""

    settings: ApiSettings
    outbox: Outbox
    #: Credentials for reading from the regional server (SMART Backend Services / mutual TLS).
    regional_auth: AuthSettings = field(default_factory=AuthSettings)
    workers: list[Any] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    _effects_gateway: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def engine(self) -> Any:
        """The outbox database engine (the API's tables live there too)."""
        return self.outbox.engine

    def person_key(self, personnummer: str) -> str:
        """The outbox's person key of a personnummer (how AuditEvents and messages name the person)."""
        from adapter.outbox.subjects import Subject

        return self.outbox.key_of(Subject(personnummer, None, ""))

    def effects_gateway(self) -> Any:
        """The gateway received messages use to pause and resume Tasks on the regional server (made on first use)."""
        from adapter.gateway import Gateway

        with self._lock:
            if self._effects_gateway is None:
                self._effects_gateway = Gateway(self.settings.server or "", self.outbox.settings, self.regional_auth)
            return self._effects_gateway

    def start_workers(self) -> None:
        """Deliver in background threads: documents to the regional server, changes to the municipality."""
        from adapter.gateway import Gateway
        from adapter.outbox.worker import Worker

        gateways: list[Any] = []
        if self.settings.server:
            gateways.append(Gateway(self.settings.server, self.outbox.settings, self.regional_auth))
        destination = self.settings.municipal.destination
        if destination:
            from adapter.inbound.municipal import MunicipalGateway

            gateways.append(MunicipalGateway(destination, self.outbox.settings))
        for gateway in gateways:
            worker = Worker(self.outbox, gateway, concurrency=2)
            thread = threading.Thread(target=worker.run, name=f"deliver {gateway.base_url}", daemon=True)
            self.workers.append(worker)
            self.threads.append(thread)
            thread.start()
            log.info("delivery worker started", extra={"destination": gateway.base_url})

    def stop_workers(self) -> None:
        """Stop the delivery workers (rounds under way finish without further retries)."""
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout=30)
        for worker in self.workers:
            worker.gateway.close()
        if self._effects_gateway is not None:
            self._effects_gateway.close()
            self._effects_gateway = None
        self.workers.clear()
        self.threads.clear()

    def workers_alive(self) -> bool:
        """True when every started worker thread still runs."""
        return all(t.is_alive() for t in self.threads)
