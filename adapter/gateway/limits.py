"""Per-destination protection: a circuit breaker and a token-bucket rate limit (with Retry-After pauses).

A ``Gateway`` (one per destination) owns one of each, shared by all the worker's threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from adapter.gateway.errors import CircuitOpen


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive transient failures; after ``cooldown`` s one probe may pass."""

    destination: str
    threshold: int = 5
    cooldown: float = 30.0
    failures: int = 0
    open_until: float = 0.0  # monotonic time; 0 = closed
    probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_open(self) -> bool:
        """True while requests are refused (open, or half-open with a probe under way)."""
        with self._lock:
            return self.open_until > 0 and (time.monotonic() < self.open_until or self.probing)

    def before_request(self) -> None:
        """Raise CircuitOpen unless a request may go out now (a half-open breaker lets one probe through)."""
        with self._lock:
            if self.open_until == 0:
                return
            now = time.monotonic()
            if now < self.open_until or self.probing:
                raise CircuitOpen(self.destination, max(self.open_until, now + 0.2))
            self.probing = True

    def on_success(self) -> None:
        """Close the breaker."""
        with self._lock:
            self.failures, self.open_until, self.probing = 0, 0.0, False

    def on_failure(self) -> None:
        """Count a transient failure; open (again) when the threshold is reached or a probe failed."""
        with self._lock:
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.open_until = time.monotonic() + self.cooldown
                self.probing = False

    def on_no_verdict(self) -> None:
        """A probe that ended without telling anything (e.g. a 4xx): let the next request probe."""
        with self._lock:
            self.probing = False


@dataclass
class RateLimiter:
    """A token bucket of ``rate`` requests per second (0 = unlimited) that a Retry-After can pause."""

    rate: float = 0.0
    burst: int = 10
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)
    paused_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def pause(self, seconds: float) -> None:
        """Hold every request to this destination for ``seconds`` (the server asked us to wait)."""
        with self._lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def delay(self) -> float:
        """Take a token; returns how long the caller must wait before sending (0 = now)."""
        with self._lock:
            now = time.monotonic()
            wait = max(0.0, self.paused_until - now)
            if self.rate <= 0:
                return wait
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= 1.0
            if self.tokens < 0:
                wait = max(wait, -self.tokens / self.rate)
            return wait

    def acquire(self, sleep=time.sleep) -> float:  # type: ignore[no-untyped-def]
        """Wait for permission to send; returns the seconds waited."""
        wait = self.delay()
        if wait > 0:
            sleep(wait)
        return wait
