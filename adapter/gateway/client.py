"""The retrying gateway to one regional FHIR server (httpx + tenacity).

One ``Gateway`` per destination, shared by all worker threads: a keep-alive connection pool of
bounded size, a circuit breaker and a rate limit. ``deliver(kind, payload, correlation_id)``
sends one outbox message as one *round*: every HTTP exchange in it is retried on transient
failures with exponential backoff and full jitter (or the server's ``Retry-After``), within
``round_attempts`` tries and ``round_seconds``. It returns the delivery summary or raises
``Transient`` (try again later), ``Permanent``/``Conflict`` (dead letter) or ``CircuitOpen``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from types import SimpleNamespace
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from adapter.config import AuthSettings, DeliverySettings
from adapter.gateway import capability as cap
from adapter.gateway.errors import (CircuitOpen, DeliveryError, Interrupted, Permanent, Transient, UnsuitableServer,
                                    error_for)
from adapter.gateway.limits import CircuitBreaker, RateLimiter
from adapter.logs import get_logger
from adapter.outbox import metrics

FHIR_JSON = "application/fhir+json"
log = get_logger("gateway")


@dataclass
class Round:
    """One delivery round: its deadline and how many HTTP attempts it made."""

    deadline: float
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)


@dataclass
class Delivered:
    """A successful delivery: the final HTTP status and a short summary of the server's answer."""

    http_status: int
    summary: dict[str, Any]
    attempts: int


class Gateway:
    """Delivers outbox payloads to one FHIR base URL."""

    def __init__(self, base_url: str, settings: DeliverySettings | None = None, auth: AuthSettings | None = None,
                 *, pool_size: int = 8, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], Any] | None = None) -> None:
        from adapter.gateway import auth as auth_mod

        self.base_url = base_url.rstrip("/")
        self.settings = settings or DeliverySettings()
        s = self.settings
        http_auth, verify = auth_mod.build(auth or AuthSettings(), self.base_url)
        self.auth = http_auth
        self.client = httpx.Client(
            base_url=self.base_url, auth=http_auth, verify=verify, transport=transport,
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size, keepalive_expiry=30),
            headers={"Accept": FHIR_JSON, "User-Agent": "carebridge-gateway"},
        )
        self.breaker = CircuitBreaker(self.base_url, s.breaker_failures, s.breaker_cooldown)
        self.limiter = RateLimiter(s.rate_limit, s.rate_burst)
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._latency: dict[str, Any] = {}  # interaction -> histogram child (label lookups cost)
        self._requests: dict[tuple[str, str], Any] = {}
        self._open_reported = False
        self.capability: dict[str, Any] | None = None

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def interrupt(self) -> None:
        """Cut retry sleeps short and send no further requests (shutdown)."""
        self._stop.set()

    def close(self) -> None:
        """Stop retrying and close the connection pool."""
        self._stop.set()
        self.client.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- start-up check -------------------------------------------------------------

    def check_server(self) -> dict[str, Any]:
        """Read the CapabilityStatement; raise UnsuitableServer (with every reason) if it cannot take our writes."""
        try:
            response = self.client.get("/metadata", timeout=self.settings.read_timeout)
        except httpx.HTTPError as exc:
            raise UnsuitableServer(f"{self.base_url} is unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise UnsuitableServer(f"{self.base_url}/metadata answered HTTP {response.status_code}")
        try:
            statement = response.json()
        except ValueError:
            raise UnsuitableServer(f"{self.base_url}/metadata did not answer JSON") from None
        found = cap.problems(statement)
        if found:
            raise UnsuitableServer(f"refusing to deliver to {self.base_url}: " + "; ".join(found))
        missing = cap.unlisted(statement)
        if missing:
            log.warning("resource types not listed in the CapabilityStatement; relying on the server to accept them",
                        extra={"destination": self.base_url, "types": missing})
        self.capability = statement
        return statement

    # --- one HTTP exchange, retried ---------------------------------------------------

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Retry-After when the server gave one, else exponential backoff with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            return exc.retry_after
        return tenacity.wait_random_exponential(multiplier=self.settings.backoff_initial,
                                                max=self.settings.backoff_max)(state)

    def _stop_round(self, rnd: Round) -> Callable[[Any], bool]:
        def stop(state: Any) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, DeliveryError) and (exc.retry_after or 0) > self.settings.retry_after_max:
                return True
            upcoming = state.upcoming_sleep or 0.0
            return rnd.attempts >= self.settings.round_attempts or time.monotonic() + upcoming > rnd.deadline
        return stop

    def request(self, rnd: Round, method: str, url: str, interaction: str,
                check: Callable[[httpx.Response], Any] | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request, retrying transient failures within the round; non-2xx answers are returned.

        ``check`` may raise Transient for a 2xx answer that is unusable (e.g. truncated): it is retried too.
        """
        if rnd.attempts == 0:  # the common case: the first try of the round succeeds, no retry machinery needed
            try:
                return self._once(rnd, method, url, interaction, check, **kwargs)
            except Transient as first:
                if self._stop_round(rnd)(_failed_state(first, self._first_wait(first))):
                    raise
                self._sleep(self._first_wait(first))
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Transient), wait=self._wait, stop=self._stop_round(rnd),
            sleep=self._sleep, reraise=True)
        return retrying(self._once, rnd, method, url, interaction, check, **kwargs)

    def _first_wait(self, exc: DeliveryError) -> float:
        """The wait after a round's first failure: its Retry-After, else the first backoff step."""
        if exc.retry_after is not None:
            return exc.retry_after
        return random.uniform(0, min(self.settings.backoff_max, self.settings.backoff_initial * 2))

    def _once(self, rnd: Round, method: str, url: str, interaction: str,
              check: Callable[[httpx.Response], Any] | None, **kwargs: Any) -> httpx.Response:
        if self._stop.is_set():
            raise Interrupted(f"{method} {url or '/'} not sent: shutting down")
        self.breaker.before_request()
        self.limiter.acquire(self._sleep)
        rnd.attempts += 1
        started = time.monotonic()
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:  # connect errors, resets, timeouts, protocol errors
            self._failed(interaction, "network")
            raise Transient(f"{method} {url or '/'}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        finally:
            latency = self._latency.get(interaction) or self._latency.setdefault(
                interaction, metrics.LATENCY.labels(self.base_url, interaction))
            latency.observe(time.monotonic() - started)
        rnd.statuses.append(response.status_code)
        if response.status_code < 400 or response.status_code == 412:
            self.breaker.on_success()
            if self._open_reported:
                self._circuit(False)
            self._count(interaction, str(response.status_code))
            if check is not None and response.status_code < 300:
                check(response)
            return response
        error = error_for(response, f"{method} {url or '/'}")
        self._count(interaction, str(response.status_code))
        if isinstance(error, Transient):
            if error.retry_after is not None:
                self.limiter.pause(min(error.retry_after, self.settings.retry_after_max))
            if response.status_code >= 500:
                self._failed(interaction, None)
            else:
                self.breaker.on_no_verdict()
            raise error
        self.breaker.on_no_verdict()
        return response

    def _count(self, interaction: str, result: str) -> None:
        counter = self._requests.get((interaction, result))
        if counter is None:
            counter = self._requests.setdefault((interaction, result),
                                                metrics.REQUESTS.labels(self.base_url, interaction, result))
        counter.inc()

    def _circuit(self, open_: bool) -> None:
        self._open_reported = open_
        metrics.CIRCUIT_OPEN.labels(self.base_url).set(1 if open_ else 0)

    def _failed(self, interaction: str, result: str | None) -> None:
        if result:
            self._count(interaction, result)
        self.breaker.on_failure()
        if self.breaker.is_open:
            self._circuit(True)
            log.warning("circuit opened", extra={"destination": self.base_url,
                                                 "cooldown_s": self.settings.breaker_cooldown})

    def new_round(self) -> Round:
        """A fresh round with the configured time budget."""
        return Round(deadline=time.monotonic() + self.settings.round_seconds)

    # --- deliveries -------------------------------------------------------------------

    def deliver(self, kind: str, payload: dict[str, Any] | None, correlation_id: str, rnd: Round | None = None,
                raw: str | None = None) -> Delivered:
        """Deliver one payload (``transaction`` Bundle or ``update`` resource) in one round.

        ``raw``: the payload's JSON text as stored, sent as it is (a transaction then needs no ``payload``).
        """
        rnd = rnd or self.new_round()
        headers = {"X-Request-ID": correlation_id, "X-Correlation-ID": correlation_id}
        if kind == "transaction":
            return self._transaction(rnd, payload, headers, raw)
        if kind == "update":
            from adapter.gateway.update import apply_update

            return apply_update(self, rnd, payload if payload is not None else json.loads(raw or "{}"), headers)
        raise Permanent(f"unknown payload kind {kind!r}")

    def _transaction(self, rnd: Round, bundle: dict[str, Any] | None, headers: dict[str, str],
                     raw: str | None) -> Delivered:
        expected = len(bundle.get("entry") or []) if bundle is not None else None
        body = raw.encode() if raw is not None else json.dumps(bundle, ensure_ascii=False).encode()
        parsed: list[dict[str, Any]] = []  # the checked answer, parsed once
        response = self.request(rnd, "POST", "", "transaction",
                                check=lambda r: parsed.append(_transaction_response(r, expected)),
                                content=body, headers={**headers, "Content-Type": FHIR_JSON})
        if response.status_code >= 300:
            raise error_for(response, "POST transaction")
        entries = parsed[-1]["entry"]
        statuses = [_entry_status(e) for e in entries]
        failed = [s for s in statuses if not 200 <= s < 300]
        if failed:
            raise Permanent(f"POST transaction: {len(failed)} entries failed (HTTP {failed[0]})",
                            status=failed[0], outcome=(entries[statuses.index(failed[0])].get("response") or {}).get("outcome"))
        summary = {"status": response.status_code, "entries": len(entries),
                   "created": sum(s == 201 for s in statuses), "existing": sum(s == 200 for s in statuses),
                   "attempts": rnd.attempts}
        return Delivered(response.status_code, summary, rnd.attempts)


def _failed_state(exc: BaseException, upcoming_sleep: float) -> Any:
    """Just enough of a tenacity RetryCallState for the round's stop rule, after a first failure."""
    return SimpleNamespace(outcome=SimpleNamespace(exception=lambda: exc), upcoming_sleep=upcoming_sleep)


def _entry_status(entry: dict[str, Any]) -> int:
    """The HTTP status of a transaction-response entry ("201 Created" or "201")."""
    try:
        return int(str((entry.get("response") or {}).get("status", "0")).split()[0])
    except (ValueError, IndexError):
        return 0


def _transaction_response(response: httpx.Response, expected: int | None) -> dict[str, Any]:
    """The parsed transaction-response; Transient unless complete (safe to send again: all conditional).

    ``expected``: the number of entries sent, when known.
    """
    try:
        answer = json.loads(response.content)
    except ValueError:
        raise Transient("POST transaction: the answer is not JSON (truncated?)", status=response.status_code) from None
    entries = answer.get("entry") if isinstance(answer, dict) else None
    if not isinstance(entries, list) or answer.get("type") != "transaction-response" \
            or (expected is not None and len(entries) != expected) \
            or not all(isinstance(e, dict) and (e.get("response") or {}).get("status") for e in entries):
        raise Transient("POST transaction: the answer is not a complete transaction-response",
                        status=response.status_code)
    return answer


__all__ = ["CircuitOpen", "Delivered", "Gateway", "Permanent", "Round", "Transient", "UnsuitableServer"]
