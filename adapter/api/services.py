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
    #: Destination -> "ok" once its worker delivers, else why not (e.g. the CapabilityStatement check failed).
    destinations: dict[str, str] = field(default_factory=dict)
    _effects_gateway: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

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

        self._stopping.clear()
        if self.settings.server:
            gateway = Gateway(self.settings.server, self.outbox.settings, self.regional_auth)
            self._start(Worker(self.outbox, gateway, concurrency=2), check_server=True)
        destination = self.settings.municipal.destination
        if destination:
            from adapter.inbound.municipal import MunicipalGateway

            self._start(Worker(self.outbox, MunicipalGateway(destination, self.outbox.settings), concurrency=2),
                        check_server=False)

    def _start(self, worker: Any, *, check_server: bool) -> None:
        thread = threading.Thread(target=self._deliver, args=(worker, check_server), daemon=True,
                                  name=f"deliver {worker.gateway.base_url}")
        self.workers.append(worker)
        self.threads.append(thread)
        thread.start()

    def _deliver(self, worker: Any, check_server: bool) -> None:
        """Read the server's CapabilityStatement (until it passes, or we stop), then deliver until stopped."""
        from adapter.gateway import UnsuitableServer

        destination = worker.gateway.base_url
        while check_server and not self._stopping.is_set():
            try:
                worker.gateway.check_server()
                break
            except UnsuitableServer as exc:
                self.destinations[destination] = str(exc)
                log.error("regional server not usable; checking again in 10 s", extra={"error": str(exc)})
                self._stopping.wait(10.0)
        if self._stopping.is_set():
            return
        self.destinations[destination] = "ok"
        log.info("delivery worker started", extra={"destination": destination})
        worker.run()

    def stop_workers(self) -> None:
        """Stop the delivery workers (rounds under way finish without further retries)."""
        self._stopping.set()
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
        """True when every started worker thread still runs and delivers."""
        return all(t.is_alive() for t in self.threads) and all(
            self.destinations.get(w.gateway.base_url) == "ok" for w in self.workers)
