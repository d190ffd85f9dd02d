"""Unit tests of the gateway's error paths and small parts (httpx.MockTransport stands in for a server here;
everything that talks to a real server is in the other modules of this folder)."""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import json
import logging
import time
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest

from adapter import logs
from adapter.gateway import CircuitOpen, Gateway, Permanent, Transient
from adapter.gateway import capability as cap
from adapter.gateway.auth import AuthError, algorithm_for, client_assertion, discover_token_url, tls_context
from adapter.gateway.errors import error_for, retry_after_seconds
from adapter.gateway.limits import CircuitBreaker, RateLimiter
from adapter.gateway.update import changes_of, conflicts, merged
from adapter.outbox import Outbox
from adapter.outbox import metrics
from adapter.outbox.subjects import person_key, subject_of
from tests.gateway.conftest import FAST

BASE = "http://127.0.0.1:9/fhir"
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=a|b"}}]}
OK = {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"response": {"status": "201 Created"}}]}


class Sleeps(list):
    """Records the waits tenacity asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def gateway(answers: list[Any], **changes: Any) -> tuple[Gateway, list[httpx.Request], Sleeps]:
    """A Gateway whose transport answers from ``answers`` (Responses, or exceptions to raise), in turn."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0) if queue else httpx.Response(200, json=OK)
        if isinstance(answer, Exception):
            raise answer
        return answer

    sleeps = Sleeps()
    gw = Gateway(BASE, replace(FAST, **changes), transport=httpx.MockTransport(handle), sleep=sleeps)
    return gw, seen, sleeps


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize("status,kind", [(408, Transient), (409, Transient), (429, Transient), (500, Transient),
                                         (502, Transient), (503, Transient), (504, Transient), (400, Permanent),
                                         (401, Permanent), (403, Permanent), (404, Permanent), (410, Permanent),
                                         (422, Permanent)])
def test_status_classification(status: int, kind: type) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": "nej"}]}
    error = error_for(httpx.Response(status, json=outcome), "POST")
    assert type(error) is kind and error.status == status
    assert error.outcome == outcome and "nej" in str(error)


def test_permanent_without_operation_outcome_keeps_the_body_as_one() -> None:
    error = error_for(httpx.Response(403, text="<html>Forbidden by firewall</html>"), "POST")
    assert isinstance(error, Permanent)
    assert "Forbidden by firewall" in error.outcome["issue"][0]["diagnostics"]


def test_retry_after_in_seconds_and_as_http_date() -> None:
    assert retry_after_seconds("7") == 7.0
    now = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    when = email.utils.format_datetime(now + dt.timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(when, now) == 30.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


# --- retries --------------------------------------------------------------------------------------


def test_transient_answers_are_retried_with_backoff_then_delivered() -> None:
    gw, seen, sleeps = gateway([httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(502)])
    delivered = gw.deliver("transaction", BUNDLE, "c")
    assert delivered.attempts == 4 and len(seen) == 4 and len(sleeps) == 3
    assert all(0 <= s <= FAST.backoff_max for s in sleeps)
    assert seen[0].headers["X-Request-ID"] == "c"


def test_retry_after_is_honoured() -> None:
    gw, _, sleeps = gateway([httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json=OK)])
    gw.limiter.acquire = lambda sleep=None: 0.0  # the pause is checked below; do not sleep it here
    gw.deliver("transaction", BUNDLE, "c")
    assert sleeps == [2.0]
    assert gw.limiter.paused_until > time.monotonic() + 1.0  # the whole destination waits too


def test_a_retry_after_beyond_the_cap_ends_the_round() -> None:
    gw, seen, sleeps = gateway([httpx.Response(503, headers={"Retry-After": "3600"})], retry_after_max=5.0)
    gw.limiter.acquire = lambda sleep=None: 0.0
    with pytest.raises(Transient) as info:
        gw.deliver("transaction", BUNDLE, "c")
    assert info.value.retry_after == 3600 and len(seen) == 1 and sleeps == []


def test_attempts_are_capped_per_round() -> None:
    gw, seen, _ = gateway([httpx.Response(503)] * 10, round_attempts=3)
    with pytest.raises(Transient):
        gw.deliver("transaction", BUNDLE, "c")
    assert len(seen) == 3


def test_round_time_is_capped() -> None:
    gw, seen, sleeps = gateway([httpx.Response(503)] * 10, round_seconds=0.0)
    with pytest.raises(Transient):
        gw.deliver("transaction", BUNDLE, "c")
    assert len(seen) == 1


def test_permanent_answers_are_not_retried() -> None:
    gw, seen, _ = gateway([httpx.Response(422, json={"resourceType": "OperationOutcome", "issue": []})])
    with pytest.raises(Permanent):
        gw.deliver("transaction", BUNDLE, "c")
    assert len(seen) == 1


def test_an_incomplete_transaction_response_is_sent_again() -> None:
    gw, seen, _ = gateway([httpx.Response(200, text='{"resourceType": "Bund'), httpx.Response(200, json=OK)])
    assert gw.deliver("transaction", BUNDLE, "c").summary["created"] == 1
    assert len(seen) == 2


def test_a_failed_entry_is_permanent() -> None:
    failed = {"resourceType": "Bundle", "type": "transaction-response",
              "entry": [{"response": {"status": "400", "outcome": {"resourceType": "OperationOutcome", "issue": []}}}]}
    gw, _, _ = gateway([httpx.Response(200, json=failed)])
    with pytest.raises(Permanent, match="1 entries failed"):
        gw.deliver("transaction", BUNDLE, "c")


# --- circuit breaker and rate limit -----------------------------------------------------------------


def test_breaker_opens_half_opens_and_closes() -> None:
    breaker = CircuitBreaker("d", threshold=2, cooldown=0.2)
    breaker.on_failure()
    breaker.before_request()
    breaker.on_failure()
    with pytest.raises(CircuitOpen):
        breaker.before_request()
    time.sleep(0.25)
    breaker.before_request()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before_request()  # only one probe at a time
    breaker.on_failure()  # failed probe: open again
    with pytest.raises(CircuitOpen):
        breaker.before_request()
    time.sleep(0.25)
    breaker.before_request()
    breaker.on_success()
    breaker.before_request()
    assert not breaker.is_open


def test_open_breaker_sends_nothing() -> None:
    gw, seen, _ = gateway([httpx.Response(503)] * 10, breaker_failures=2, round_attempts=10)
    with pytest.raises(CircuitOpen):
        gw.deliver("transaction", BUNDLE, "c")
    assert len(seen) == 2
    with pytest.raises(CircuitOpen):
        gw.deliver("transaction", BUNDLE, "c")
    assert len(seen) == 2


def test_rate_limit_spaces_requests() -> None:
    limiter = RateLimiter(rate=20.0, burst=2)
    waits = [limiter.delay() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0] and waits[2] == pytest.approx(0.05, abs=0.01) and waits[3] > waits[2]
    paused = RateLimiter()
    paused.pause(1.0)
    assert 0.9 < paused.delay() <= 1.0


# --- the worker's caps ---------------------------------------------------------------------------------


def test_a_message_that_never_gets_through_ends_as_a_dead_letter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapter.outbox.intake import Prepared, dump
    from adapter.outbox.worker import Worker

    settings = replace(FAST, max_rounds=2, round_attempts=2, reschedule_initial=0.01, reschedule_max=0.01)
    box = Outbox.open(f"sqlite:///{tmp_path / 'o.db'}", settings)
    mid = box.enqueue_prepared(Prepared("transaction", BUNDLE, dump(BUNDLE), {}), BASE).message_id
    gw = Gateway(BASE, settings, transport=httpx.MockTransport(lambda r: httpx.Response(503)), sleep=lambda s: None)
    Worker(box, gw, poll=0.01).run(until_empty=True)
    assert box.get(mid).status == "dead" and box.get(mid).attempts == 2
    assert box.dead()[0]["stage"] == "exhausted"


# --- capability --------------------------------------------------------------------------------------


def statement(**changes: Any) -> dict[str, Any]:
    resources = [{"type": t, "conditionalCreate": True} for t in cap.WRITTEN_TYPES if t != "Goal"]
    base = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": resources, "interaction": [{"code": "transaction"}]}]}
    base.update(changes)
    return base


def test_capability_problems() -> None:
    assert cap.problems(statement()) == []
    assert cap.unlisted(statement()) == ["Goal"]
    assert "carebridge needs R4" in cap.problems(statement(fhirVersion="4.3.0"))[0]
    no_tx = statement()
    no_tx["rest"][0]["interaction"] = []
    assert cap.problems(no_tx) == ["transactions are not supported (rest.interaction transaction)"]
    no_cond = statement()
    no_cond["rest"][0]["resource"][0]["conditionalCreate"] = False
    assert "conditional create not supported for: Patient" in cap.problems(no_cond)[0]
    assert cap.problems({"resourceType": "OperationOutcome"}) == ["/metadata did not return a CapabilityStatement"]


def test_token_url_from_capability_and_smart_configuration() -> None:
    smart = statement()
    smart["rest"][0]["security"] = {"extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                                   "extension": [{"url": "token", "valueUri": "https://as/token"}]}]}
    assert cap.token_url(smart) == "https://as/token"
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"token_endpoint": "https://as/t"})))
    assert discover_token_url(BASE, client) == "https://as/t"
    missing = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    with pytest.raises(AuthError, match="token URL"):
        discover_token_url(BASE, missing)


# --- versioned update merge ----------------------------------------------------------------------------


def test_update_merge_and_conflicts() -> None:
    ours = {"resourceType": "Task", "id": "x", "identifier": [{"system": "s", "value": "v"}], "status": "accepted",
            "intent": "order", "for": {"identifier": {"system": "p", "value": "1"}}}
    assert changes_of(ours) == {"status": "accepted", "intent": "order"}
    base = {"resourceType": "Task", "id": "9", "status": "requested", "intent": "order", "for": {"reference": "Patient/1"}}
    assert merged(base, changes_of(ours))["for"] == {"reference": "Patient/1"}
    assert conflicts(base, {**base, "note": [{"text": "x"}]}, changes_of(ours)) == []
    assert conflicts(base, {**base, "status": "cancelled"}, changes_of(ours)) == ["status"]
    assert conflicts(base, {**base, "status": "accepted"}, changes_of(ours)) == []  # ours already applied


# --- subjects ------------------------------------------------------------------------------------------


def test_person_key_is_an_hmac_of_the_personnummer() -> None:
    task = {"resourceType": "Task", "identifier": [{"system": "s", "value": "v"}],
            "for": {"identifier": {"system": "http://electronichealth.se/identifier/personnummer", "value": "193802142384"}},
            "owner": {"identifier": {"system": "urn:oid:1.2.752.29.4.19", "value": "SE5566778899-HTJ1"}}}
    subject = subject_of(task)
    assert subject.person == "193802142384" and subject.organisation == "SE5566778899-HTJ1"
    assert subject.label == "193802******"
    key = person_key("secret", subject)
    assert key == person_key("secret", subject) != person_key("other", subject) and "1938" not in key


# --- logs and metrics ------------------------------------------------------------------------------------


def test_json_logs_mask_personnummer_everywhere() -> None:
    stream = io.StringIO()
    handler = logs.configure("INFO", stream)
    try:
        with logs.correlation("abc", message_id=7):
            logs.get_logger("test").info("sent for 193802142384 (%s)", "19380214-2384",
                                         extra=logs.fields(person="193802142384", created=3))
        record = json.loads(stream.getvalue())
    finally:
        logging.getLogger(logs.ROOT).removeHandler(handler)
    text = json.dumps(record)
    assert "193802142384" not in text and "2384" not in text.replace("created", "")
    assert record["correlation_id"] == "abc" and record["message_id"] == 7 and record["created_"] == 3
    assert record["msg"].startswith("sent for 193802")


def test_metrics_are_exposed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw, _, _ = gateway([httpx.Response(503), httpx.Response(200, json=OK)])
    gw.deliver("transaction", BUNDLE, "c")
    box = Outbox.open(f"sqlite:///{tmp_path / 'o.db'}", FAST)
    from adapter.outbox.intake import Prepared, dump

    box.enqueue_prepared(Prepared("transaction", BUNDLE, dump(BUNDLE), {}), BASE)
    metrics.watch(box)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert f'carebridge_gateway_requests_total{{destination="{BASE}",interaction="transaction",result="503"}}' in text
    assert f'carebridge_gateway_request_seconds_count{{destination="{BASE}",interaction="transaction"}}' in text
    assert f'carebridge_outbox_messages{{destination="{BASE}",status="pending"}} 1.0' in text
    assert "carebridge_outbox_oldest_pending_age_seconds" in text


# --- auth pieces -----------------------------------------------------------------------------------------


def test_client_assertion_claims() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key, alg in ((rsa.generate_private_key(65537, 2048), "RS384"), (ec.generate_private_key(ec.SECP384R1()), "ES384")):
        assert algorithm_for(key) == alg
        token = client_assertion("kommun", "https://as/token", key, "k1", now=1_700_000_000)
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, key.public_key(), algorithms=[alg], audience="https://as/token",
                            options={"verify_exp": False})
        assert header["kid"] == "k1" and header["alg"] == alg
        assert claims["iss"] == claims["sub"] == "kommun" and claims["exp"] - claims["iat"] == 300 and claims["jti"]


def test_unusable_client_certificate_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(AuthError, match="cannot load the client certificate"):
        tls_context(str(tmp_path / "c.pem"), str(tmp_path / "c.pem"))
