"""Delivery of regional changes to the municipality, through the same outbox as everything else.

A change becomes an outbox message of kind ``municipal`` whose destination is the municipal
endpoint URL or ``folder:<path>``. Its payload is an envelope: the document text (canonical JSON
or municipal XML), its media type and file name. The person (per-person order) and the
organisation are given to the outbox as the message's ``Subject``. ``MunicipalGateway`` is what
the outbox ``Worker`` delivers those messages with: it writes the file atomically into the
folder, or POSTs it to the endpoint with retries classified like the regional gateway's.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from adapter.config import DeliverySettings
from adapter.gateway.client import Delivered, Round
from adapter.gateway.errors import (RETRYABLE_STATUS, CircuitOpen, Interrupted, Permanent, Transient,
                                    operation_outcome, retry_after_seconds)
from adapter.gateway.limits import CircuitBreaker
from adapter.outbox.subjects import Subject

KIND = "municipal"
MEDIA_TYPES = {"json": "application/json", "xml": "application/xml"}


def render(document: BaseModel, fmt: str) -> str:
    """A canonical document as canonical JSON or municipal XML text."""
    if fmt == "xml":
        from mappings import municipal_xml

        return municipal_xml.to_xml(document).decode("utf-8")
    return json.dumps(document.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2) + "\n"


def envelope(document: BaseModel, fmt: str, filename: str) -> dict[str, Any]:
    """The outbox payload for one municipal document."""
    return {
        "delivery": KIND,
        "filename": filename,
        "media_type": MEDIA_TYPES[fmt],
        "content": render(document, fmt),
    }


def subject(filename: str, *, person: str | None, organisation: str | None) -> Subject:
    """Whom a municipal document is about (its person's messages are delivered in order) and for."""
    return Subject(person, organisation, f"{KIND}|{filename}")


def enqueue(outbox: Any, document: BaseModel, *, destination: str, fmt: str, filename: str, person: str | None,
            organisation: str | None, source: str, actor: str) -> int:
    """Queue a municipal document in the outbox; returns the message id."""
    from adapter.outbox.intake import Prepared, dump

    payload = envelope(document, fmt, filename)
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "information", "code": "informational",
                          "details": {"text": f"{document.kind} for the municipality"}}]}  # type: ignore[attr-defined]
    prepared = Prepared(KIND, payload, dump(payload), outcome)
    return outbox.enqueue_prepared(prepared, destination, source=source[:500], actor=actor,
                                   subject=subject(filename, person=person, organisation=organisation)).message_id


def safe_filename(name: str) -> str:
    """A file name of letters, digits and ._- only (never a path)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200].lstrip(".")
    return cleaned or "document"


class MunicipalGateway:
    """Delivers ``municipal`` outbox messages to a folder or an HTTP endpoint (the Worker's gateway interface)."""

    def __init__(self, destination: str, settings: DeliverySettings | None = None) -> None:
        self.base_url = destination
        self.settings = settings or DeliverySettings()
        s = self.settings
        self.breaker = CircuitBreaker(destination, s.breaker_failures, s.breaker_cooldown)
        self._stop = threading.Event()
        self._client: Any = None
        if destination.startswith("folder:"):
            self.folder: Path | None = Path(destination[len("folder:"):])
            self.folder.mkdir(parents=True, exist_ok=True)
        elif destination.startswith(("http://", "https://")):
            self.folder = None
        else:
            raise ValueError(f"municipal destination must be an http(s) URL or folder:<path>, not {destination!r}")

    def new_round(self) -> Round:
        """A delivery round with its deadline."""
        return Round(deadline=time.monotonic() + self.settings.round_seconds)

    def interrupt(self) -> None:
        """Send nothing more (shutdown)."""
        self._stop.set()

    def close(self) -> None:
        """Stop and close the HTTP client."""
        self._stop.set()
        if self._client is not None:
            self._client.close()

    def deliver(self, kind: str, payload: dict[str, Any], correlation_id: str, rnd: Round | None = None) -> Delivered:
        """Write or POST one municipal document."""
        if self._stop.is_set():
            raise Interrupted()
        if kind != KIND or not isinstance(payload.get("content"), str):
            raise Permanent(f"not a municipal document (kind {kind})")
        self.breaker.before_request()
        if rnd is not None:
            rnd.attempts += 1
        try:
            result = self._write(payload) if self.folder is not None else self._post(payload, correlation_id)
        except Transient:
            self.breaker.on_failure()
            raise
        except CircuitOpen:
            raise
        except Permanent:
            self.breaker.on_no_verdict()
            raise
        self.breaker.on_success()
        return result

    def _write(self, payload: dict[str, Any]) -> Delivered:
        assert self.folder is not None
        name = safe_filename(str(payload.get("filename") or "document"))
        target = self.folder / name
        try:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.folder, prefix=".incoming-",
                                             delete=False) as handle:
                handle.write(payload["content"])
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, target)  # atomic: readers never see a half-written file
        except OSError as exc:
            raise Transient(f"cannot write {name}: {exc.strerror or exc}") from None
        return Delivered(201, {"file": name}, 1)

    def _post(self, payload: dict[str, Any], correlation_id: str) -> Delivered:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.settings.read_timeout,
                                                              connect=self.settings.connect_timeout))
        headers = {"Content-Type": payload.get("media_type", "application/json"),
                   "X-Correlation-ID": correlation_id, "Idempotency-Key": str(payload.get("filename", ""))}
        try:
            response = self._client.post(self.base_url, content=payload["content"].encode("utf-8"), headers=headers)
        except httpx.HTTPError as exc:
            raise Transient(f"municipal endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code < 300:
            return Delivered(response.status_code, {"endpoint_status": response.status_code}, 1)
        outcome = operation_outcome(response)
        if response.status_code in RETRYABLE_STATUS:
            raise Transient(f"municipal endpoint answered HTTP {response.status_code}", status=response.status_code,
                            outcome=outcome, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        raise Permanent(f"municipal endpoint answered HTTP {response.status_code}", status=response.status_code,
                        outcome=outcome)
