"""Limits: body size, time, malformed requests answered 4xx with an OperationOutcome (never 500)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapter.api.limits import TimeLimit, TokenBuckets
from tests.api.conftest import ALL, HANINGE, bearer
from tests.api.issuer import LocalIssuer


def test_body_larger_than_the_limit_by_content_length(make_client: Any, issuer: LocalIssuer, api_settings: Any) -> None:
    from dataclasses import replace

    client = make_client(limits=replace(api_settings.limits, max_body_bytes=1000))
    response = client.post("/fhir/$validate", content=b"{" + b" " * 5000 + b"}",
                           headers={**bearer(issuer.token(HANINGE, ALL)), "Content-Type": "application/fhir+json"})
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_body_larger_than_the_limit_while_streaming(make_client: Any, issuer: LocalIssuer, api_settings: Any) -> None:
    from dataclasses import replace

    client = make_client(limits=replace(api_settings.limits, max_body_bytes=1000))

    def chunks() -> Any:  # no Content-Length: chunked transfer
        for _ in range(10):
            yield b" " * 500

    response = client.post("/fhir/$validate", content=chunks(),
                           headers={**bearer(issuer.token(HANINGE, ALL)), "Content-Type": "application/fhir+json"})
    assert response.status_code == 413


def test_time_limit_answers_503_with_an_outcome() -> None:
    sent: list[dict[str, Any]] = []

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await TimeLimit(slow_app, 0.1)({"type": "http", "path": "/x"}, None, send)

    asyncio.run(run())
    assert sent[0]["status"] == 503
    assert b"not answered within" in sent[1]["body"]


def test_token_buckets() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b", now=0.0) == 0.0
    assert buckets.take("a", now=1.5) == 0.0
    assert buckets.peek("a", now=1.5) == pytest.approx(0.5)


MALFORMED = [
    ("POST", "/documents/decision", "application/json", b"{not json"),
    ("POST", "/documents/decision", "application/json", b"[]"),
    ("POST", "/documents/decision", "application/json", b'{"kind": "sip"}'),
    ("POST", "/documents/decision", "application/json", b'{"kind": "decision"}'),
    ("POST", "/documents/decision", "application/xml", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>"),
    ("POST", "/documents/decision", "application/xml", b"<decision xmlns='urn:carebridge:municipal:1'><oops/></decision>"),
    ("POST", "/documents/decision", "text/plain", b"hello"),
    ("POST", "/documents/decision", "application/fhir+json", b'{"resourceType": "Bundle", "type": "transaction"}'),
    ("POST", "/documents/decision", "application/fhir+json", b'{"resourceType": "Patient"}'),
    ("POST", "/documents/decision", "application/json", b"\xff\xfe\x00"),
    ("POST", "/documents/nonsense", "application/json", b"{}"),
    ("GET", "/documents/0", None, None),
    ("GET", "/documents/abc", None, None),
    ("GET", "/documents/99999999999999999999999", None, None),
    ("POST", "/fhir/$validate", "application/fhir+json", b"null"),
    ("POST", "/fhir/$validate", "application/fhir+json", b'{"resourceType": "Parameters"}'),
    ("POST", "/fhir/$validate", "application/fhir+json", b'{"resourceType": 5}'),
    ("POST", "/fhir/subscription-notification", "application/fhir+json", b'{"resourceType": "Bundle", "type": "history", "entry": [{}]}'),
    ("POST", "/fhir/$process-message", "application/fhir+json", b'{"resourceType": "Bundle"}'),
    ("GET", "/dead-letters?limit=-1", None, None),
    ("POST", "/dead-letters/1/replay", "application/json", b"{}"),
    ("GET", "/audit/AuditEvent?person=x", None, None),
    ("GET", "/audit/AuditEvent?message_id=x", None, None),
    ("POST", "/audit/AuditEvent/_search", "application/x-www-form-urlencoded", b"limit=abc"),
    ("POST", "/audit/AuditEvent/_search", "application/x-www-form-urlencoded", b"\xff\xff"),
    ("DELETE", "/documents/1", None, None),
]


@pytest.mark.parametrize(("method", "path", "content_type", "body"), MALFORMED)
def test_malformed_requests_get_a_4xx_outcome(client: Any, issuer: LocalIssuer, method: str, path: str,
                                              content_type: str | None, body: bytes | None) -> None:
    headers = bearer(issuer.token("SE2321000016-SOS63", ALL))
    if content_type:
        headers["Content-Type"] = content_type
    response = client.request(method, path, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_validate_answers_the_outcome_of_an_invalid_resource(client: Any, issuer: LocalIssuer) -> None:
    """$validate of a well-formed request about an invalid resource: 200 with the errors (FHIR semantics)."""
    response = client.post("/fhir/$validate", content=b'{"resourceType": "Bundle", "entry": [1, "x", null]}',
                           headers={**bearer(issuer.token(HANINGE, ALL)), "Content-Type": "application/fhir+json"})
    assert response.status_code == 200
    assert any(i["severity"] == "error" for i in response.json()["issue"])


def test_an_access_that_cannot_be_audited_is_not_answered() -> None:
    """Unit test of the error path: the audit store fails, so the data never leaves (503 instead)."""
    from adapter.api.access import AccessLog

    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"secret document"})

    def failing_recorder(events: Any) -> None:
        raise OSError("disk full")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/documents/1", "headers": [], "client": ("127.0.0.1", 1)}
    asyncio.run(AccessLog(app, failing_recorder)(scope, None, send))
    assert sent[0]["status"] == 503
    assert b"secret" not in b"".join(m.get("body", b"") for m in sent)
