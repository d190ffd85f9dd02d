"""How a regional server's answer is classified: delivered, try again (transient), or never (permanent).

| Answer | Class |
|---|---|
| 2xx | delivered |
| network error, timeout, 408, 409, 425, 429, 5xx | transient (retried; `Retry-After` honoured) |
| 412 on a versioned update | re-read and re-apply, or a conflict (permanent) |
| any other 4xx | permanent: dead letter with the server's OperationOutcome |
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from typing import Any

import httpx

#: Statuses worth another try: timeouts, conflicts of concurrent writes, rate limits, server trouble.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class DeliveryError(Exception):
    """A delivery that did not succeed, with what the server said (if it said anything)."""

    def __init__(self, message: str, *, status: int | None = None, outcome: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.retry_after = retry_after


class Transient(DeliveryError):
    """Worth trying again later: network trouble, timeouts, 408/409/425/429/5xx."""


class Permanent(DeliveryError):
    """Will fail the same way every time (4xx): goes to the dead letters with the server's answer."""


class Conflict(Permanent):
    """A versioned update whose elements someone else changed differently since it was read."""


class CircuitOpen(Exception):
    """The destination's circuit breaker is open: no request was sent."""

    def __init__(self, destination: str, until: float) -> None:
        super().__init__(f"circuit open for {destination}")
        self.destination = destination
        self.until = until  # time.monotonic() when a probe is allowed again


class Interrupted(Exception):
    """The gateway is shutting down: the request was not sent."""


class UnsuitableServer(Exception):
    """The server's CapabilityStatement shows it cannot take carebridge's writes safely."""


def retry_after_seconds(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds())


def operation_outcome(response: httpx.Response) -> dict[str, Any] | None:
    """The OperationOutcome in a response body, if there is one."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def outcome_text(outcome: dict[str, Any] | None) -> str:
    """The first issue of an OperationOutcome as one line."""
    for issue in (outcome or {}).get("issue", ()):
        text = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or issue.get("code")
        if text:
            return " ".join(str(text).split())[:500]
    return ""


def error_for(response: httpx.Response, what: str) -> DeliveryError:
    """The Transient or Permanent error a non-2xx answer means."""
    outcome = operation_outcome(response)
    detail = outcome_text(outcome) or response.reason_phrase or ""
    message = f"{what}: HTTP {response.status_code}" + (f": {detail}" if detail else "")
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        return Transient(message, status=response.status_code, outcome=outcome,
                         retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if outcome is None:  # e.g. a proxy's HTML page: keep what it said as an OperationOutcome
        outcome = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "exception",
            "diagnostics": f"HTTP {response.status_code} without an OperationOutcome: {response.text[:500]}"}]}
    return Permanent(message, status=response.status_code, outcome=outcome)
