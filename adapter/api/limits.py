"""Request limits: body size, per-client rate (token buckets) and a time limit per request.

All three are plain ASGI middleware (no request body buffering by Starlette), so an oversized,
too-frequent or too-slow request is answered with an OperationOutcome before the route runs
or instead of its answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from typing import Any

from adapter.api.errors import ApiError, outcome_of, send_outcome

#: Buckets kept at most (least recently used dropped first).
MAX_BUCKETS = 50_000


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


    def peek(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` has a token again (0.0 if it has one now), without taking it."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


def refuse_rate(wait: float) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The 429 answer for a caller that must wait ``wait`` seconds."""
    seconds = max(1, int(wait + 0.999))
    return 429, outcome_of(f"too many requests; retry after {seconds} s", "throttled"), {"Retry-After": str(seconds)}


class TooLarge(ApiError):
    """The request body grew past the limit while it was read (answered 413 by the app's handlers)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes", code="too-costly")


class BodyLimit:
    """Refuse bodies larger than ``max_bytes`` (by Content-Length, or while streaming) with 413."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await send_outcome(send, 400, outcome_of("Content-Length is not a number"))
                return
            if too_big:
                await send_outcome(send, 413, self._outcome())
                return
        seen = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except TooLarge:
            if not started:
                await send_outcome(send, 413, self._outcome())

    def _outcome(self) -> dict[str, Any]:
        return outcome_of(f"request body larger than {self.max_bytes} bytes", "too-costly")


class TimeLimit:
    """Answer 503 when a request has not been answered within ``seconds``."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracking_send), self.seconds)
        except asyncio.TimeoutError:
            if not started:
                scope.setdefault("state", {})["timed_out"] = True
                await send_outcome(send, 503, outcome_of(f"request not answered within {self.seconds:g} s", "timeout"),
                                   {"Retry-After": "5"})
