"""A fault-injecting HTTP/1.1 proxy the tests put between the gateway and a real FHIR server.

For every request a *plan* decides what happens:

- ``PASS``: forward, answer with the server's answer;
- ``Reply(status, headers)``: answer without forwarding (503, 429 with Retry-After, 412, ...);
- ``RESET_BEFORE``: reset the connection (TCP RST) without forwarding;
- ``RESET_AFTER``: forward, let the server commit, then reset instead of answering;
- ``Slow(seconds)``: forward, then hold the answer back;
- ``Concurrent(change)``: before forwarding, change the target resource on the server itself
  (a genuine concurrent writer, so a versioned update meets a real 412).

Plans: ``Script([...])`` (one action per matching request, in order, then PASS) or
``Random(seed, [(action, rate), ...])``. The proxy records what it forwarded (``forwarded``), counts
what it did (``actions``), can demand a bearer token (``require_bearer``) and can serve TLS with
client-certificate checks (``ssl_context``). Loopback only.
"""

from __future__ import annotations

import json
import random
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "host", "accept-encoding", "content-encoding"}


@dataclass(frozen=True)
class Reply:
    """Answer with this status without forwarding."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Slow:
    """Forward, then wait ``seconds`` before answering."""

    seconds: float


@dataclass(frozen=True)
class Concurrent:
    """Before forwarding, run ``change(client, upstream_base_url, request)`` against the server (a rival writer)."""

    change: Callable[[httpx.Client, str, Request], None]


PASS, RESET_BEFORE, RESET_AFTER = "pass", "reset-before", "reset-after"
Action = Any  # PASS | RESET_BEFORE | RESET_AFTER | Reply | Slow | Concurrent


def unavailable(retry_after: int | None = None) -> Reply:
    """503 Service Unavailable (with Retry-After when given)."""
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Reply(503, headers, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "transient", "diagnostics": "injected 503"}]})


def too_many(retry_after: int = 1) -> Reply:
    """429 Too Many Requests with Retry-After."""
    return Reply(429, (("Retry-After", str(retry_after)),), {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "throttled", "diagnostics": "injected 429"}]})


def precondition_failed() -> Reply:
    """412 Precondition Failed (as if someone else had updated the resource)."""
    return Reply(412, (), {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "conflict", "diagnostics": "injected 412"}]})


@dataclass
class Request:
    """One request as the proxy read it."""

    method: str
    target: str  # path and query, e.g. /fhir/Task?identifier=...
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Script:
    """Actions for the requests that ``match`` (default: every request), in order; PASS afterwards."""

    def __init__(self, actions: list[Action], match: Callable[[Request], bool] | None = None) -> None:
        self.actions = list(actions)
        self.match = match or (lambda r: True)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Action:
        with self._lock:
            if self.actions and self.match(request):
                return self.actions.pop(0)
        return PASS


class Random:
    """Each matching request meets a fault with the given rates (seeded, so runs are reproducible)."""

    def __init__(self, seed: int, rates: list[tuple[Any, float]], match: Callable[[Request], bool] | None = None,
                 limit: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.rates = rates
        self.match = match or (lambda r: True)
        self.limit = limit  # stop injecting after this many faults
        self.injected = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Action:
        with self._lock:
            if not self.match(request) or (self.limit is not None and self.injected >= self.limit):
                return PASS
            roll = self.rng.random()
            for action, rate in self.rates:
                if roll < rate:
                    self.injected += 1
                    return action
                roll -= rate
        return PASS


@dataclass
class Forwarded:
    """A request the server received, when, and the status it answered."""

    at: float
    method: str
    target: str
    body: bytes
    status: int


class FaultProxy:
    """The proxy; use as a context manager. ``base_url`` mirrors the upstream's path (``.../fhir``)."""

    def __init__(self, upstream: str, plan: Callable[[Request], Action] | None = None, *,
                 ssl_context: ssl.SSLContext | None = None,
                 require_bearer: Callable[[str], bool] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan or (lambda r: PASS)
        self.ssl_context = ssl_context
        self.require_bearer = require_bearer
        self.forwarded: list[Forwarded] = []
        self.actions: Counter[str] = Counter()
        self.rejected_auth = 0
        self.client_subjects: list[str] = []  # common names of client certificates presented (TLS)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60.0, limits=httpx.Limits(max_connections=32))
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._serve_connection(self.connection, self.rfile)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):  # type: ignore[no-untyped-def]
                conn, addr = self.socket.accept()
                if proxy.ssl_context is not None:
                    conn.settimeout(10)
                    try:
                        conn = proxy.ssl_context.wrap_socket(conn, server_side=True)
                    except (ssl.SSLError, OSError):
                        conn.close()
                        raise
                    conn.settimeout(None)
                    peer = conn.getpeercert() or {}
                    for rdn in peer.get("subject", ()):
                        for key, value in rdn:
                            if key == "commonName":
                                proxy.client_subjects.append(value)
                return conn, addr

            def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
                pass  # resets and refused handshakes are part of the job

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        path = httpx.URL(self.upstream).path.rstrip("/")
        scheme = "https" if ssl_context else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def set_plan(self, plan: Callable[[Request], Action]) -> None:
        self.plan = plan

    # --- serving ----------------------------------------------------------------------

    def _serve_connection(self, conn: socket.socket, rfile: Any) -> None:
        while True:
            request = self._read(rfile)
            if request is None:
                return
            if not self._respond(conn, request):
                return

    @staticmethod
    def _read(rfile: Any) -> Request | None:
        try:
            line = rfile.readline(65537)
        except (OSError, ssl.SSLError):
            return None
        if not line or not line.strip():
            return None
        method, target, _version = line.decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            raw = rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = rfile.read(length) if length else b""
        return Request(method, target, headers, body)

    def _respond(self, conn: socket.socket, request: Request) -> bool:
        """Serve one request; False when the connection is gone."""
        if self.require_bearer is not None:
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not self.require_bearer(token):
                with self._lock:
                    self.rejected_auth += 1
                return self._write(conn, 401, [("WWW-Authenticate", 'Bearer error="invalid_token"')],
                                   json.dumps({"resourceType": "OperationOutcome", "issue": [
                                       {"severity": "error", "code": "login", "diagnostics": "bearer token required"}]}).encode())
        action = self.plan(request)
        name = action if isinstance(action, str) else type(action).__name__.lower()
        if isinstance(action, Reply):
            name = f"reply-{action.status}"
        with self._lock:
            self.actions[name] += 1
        if action == RESET_BEFORE:
            self._reset(conn)
            return False
        if isinstance(action, Reply):
            body = json.dumps(action.body).encode() if action.body else b""
            return self._write(conn, action.status, [("Content-Type", "application/fhir+json"), *action.headers], body)
        if isinstance(action, Concurrent):
            action.change(self._client, self.upstream, request)
        try:
            upstream = self._forward(request)
        except httpx.HTTPError:
            self._reset(conn)
            return False
        if action == RESET_AFTER:
            self._reset(conn)
            return False
        if isinstance(action, Slow):
            time.sleep(action.seconds)
        headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
        return self._write(conn, upstream.status_code, headers, upstream.content)

    def _forward(self, request: Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP and k != "authorization"}
        path = httpx.URL(self.upstream).path.rstrip("/")
        target = request.target[len(path):] if request.target.startswith(path) else request.target
        response = self._client.request(request.method, self.upstream + target, headers=headers,
                                        content=request.body or None)
        with self._lock:
            self.forwarded.append(Forwarded(time.monotonic(), request.method, request.target, request.body,
                                            response.status_code))
        return response

    @staticmethod
    def _write(conn: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes) -> bool:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"Content-Length: {len(body)}", "Connection: keep-alive", "", ""]
        try:
            conn.sendall("\r\n".join(lines).encode("latin-1") + body)
            return True
        except OSError:
            return False

    @staticmethod
    def _reset(conn: socket.socket) -> None:
        """Close with a TCP RST (SO_LINGER 0) so the client sees 'connection reset'."""
        try:
            raw = conn.unwrap() if isinstance(conn, ssl.SSLSocket) else conn
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        except OSError:
            pass

    # --- what happened -------------------------------------------------------------------

    def transactions(self) -> list[Forwarded]:
        """Forwarded transaction POSTs (to the base) that the server answered with 200."""
        path = httpx.URL(self.upstream).path.rstrip("/")
        return [f for f in self.forwarded if f.method == "POST" and f.target.rstrip("/") == path and f.status == 200]


_REASONS = {200: "OK", 201: "Created", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            412: "Precondition Failed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
