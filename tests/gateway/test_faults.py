"""Fault tests against the real servers: whatever the network does, the server ends with exactly the
resources a fault-free run creates (zero lost, zero duplicated, counted on the server), and each
person's documents reach it in order.

A fault-injecting proxy (tests/gateway/faultproxy.py) sits between the gateway and SEKMET or
Medplum's router.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from adapter.gateway import Gateway
from adapter.outbox import DEAD, DELIVERED, Outbox
from adapter.outbox.worker import Worker
from adapter.standin import RunningServer
from tests.gateway import faultproxy as fp
from tests.gateway.conftest import settings
from tests.gateway.payloads import (bundles, conditional_keys, decisions, expected_by_type, expected_new, order_by_person,
                                    per_key_counts, snapshot, types_of)

pytestmark = pytest.mark.integration


def is_transaction(request: fp.Request) -> bool:
    """A transaction POST to the FHIR base."""
    return request.method == "POST" and request.target.rstrip("/").endswith("/fhir")


#: name -> (plan factory, settings changes). Every plan hits transaction POSTs only.
FAULTS: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "503": (lambda: fp.Script([fp.unavailable()] * 6, is_transaction), {}),
    "503-retry-after": (lambda: fp.Script([fp.unavailable(retry_after=1)] * 2, is_transaction), {}),
    "429-retry-after": (lambda: fp.Script([fp.too_many(retry_after=1)] * 2, is_transaction), {}),
    "reset-before": (lambda: fp.Script([fp.RESET_BEFORE] * 6, is_transaction), {}),
    "reset-after": (lambda: fp.Script([fp.RESET_AFTER] * 6, is_transaction), {}),
    "slow": (lambda: fp.Script([fp.Slow(0.4)] * 6, is_transaction), {}),
    "slow-timeout": (lambda: fp.Script([fp.Slow(1.5)] * 3, is_transaction), {"read_timeout": 1.0}),
    "mixed": (lambda: fp.Random(7, [(fp.RESET_AFTER, 0.15), (fp.RESET_BEFORE, 0.1), (fp.unavailable(), 0.1),
                                    (fp.too_many(retry_after=0), 0.05), (fp.Slow(0.2), 0.05)], is_transaction), {}),
}


def run_through_proxy(server: RunningServer, docs: list[bytes], url: str, plan: Any,
                      changes: dict[str, Any] | None = None, concurrency: int = 4) -> tuple[Outbox, fp.FaultProxy]:
    """Accept the documents, deliver them through a proxy with ``plan`` until nothing is left."""
    with fp.FaultProxy(server.base_url, plan) as proxy:
        outbox = Outbox.open(url, settings(**(changes or {})))
        for doc in docs:
            assert outbox.accept(doc, proxy.base_url).status == "pending"
        with Gateway(proxy.base_url, outbox.settings, pool_size=concurrency) as gateway:
            gateway.check_server()
            Worker(outbox, gateway, concurrency=concurrency, poll=0.05).run(until_empty=True)
    return outbox, proxy


def assert_in_order_per_person(proxy: fp.FaultProxy, sent: list[dict[str, Any]]) -> None:
    """Every forward of a person's Bundle k happened before any forward of their Bundle k+1."""
    times: dict[str, list[float]] = {}
    import json

    for f in proxy.forwarded:
        if f.method == "POST" and f.body:
            times.setdefault(json.loads(f.body)["id"], []).append(f.at)
    for person, ids in order_by_person(sent).items():
        for earlier, later in zip(ids, ids[1:]):
            assert max(times[earlier]) < min(times[later]), f"person {person[:6]}…: {later} overtook {earlier}"


@pytest.mark.parametrize("fault", list(FAULTS))
def test_zero_lost_zero_duplicated_under_fault(fhir_server: RunningServer, fault: str, tag: str, sqlite_url: str) -> None:
    plan, changes = FAULTS[fault]
    docs = decisions(tag, 18, persons=6)
    sent = bundles(docs)
    keys = conditional_keys(sent)
    types, expected = types_of(keys), expected_new(fhir_server.base_url, keys, tag)
    before = snapshot(fhir_server.base_url, types)
    outbox, proxy = run_through_proxy(fhir_server, docs, sqlite_url, plan(), changes)
    statuses = Counter(m.status for m in outbox.list(limit=1000))
    assert statuses == {DELIVERED: len(docs)}, [m.last_error for m in outbox.list(limit=1000) if m.status != DELIVERED]
    assert sum(n for a, n in proxy.actions.items() if a != fp.PASS) > 0, "the fault was never injected"
    assert snapshot(fhir_server.base_url, types) - before == expected
    assert_in_order_per_person(proxy, sent)
    outbox.close()


@pytest.mark.slow
def test_every_business_key_exactly_once_after_mixed_faults(fhir_server: RunningServer, tag: str, sqlite_url: str) -> None:
    """Per conditional key, not just per type: the server holds exactly one resource for each."""
    docs = decisions(tag, 18, persons=6, seed=1)
    keys = conditional_keys(bundles(docs))
    plan = fp.Random(11, [(fp.RESET_AFTER, 0.25), (fp.RESET_BEFORE, 0.1), (fp.unavailable(), 0.1)], is_transaction)
    outbox, proxy = run_through_proxy(fhir_server, docs, sqlite_url, plan)
    assert {m.status for m in outbox.list(limit=1000)} == {DELIVERED}
    assert proxy.actions[fp.RESET_AFTER] >= 3
    counts = per_key_counts(fhir_server.base_url, keys)
    assert {k: n for k, n in counts.items() if n != 1} == {}
    outbox.close()


@pytest.mark.slow
def test_faulty_run_equals_fault_free_run_on_fresh_servers(server_factory: Callable[..., RunningServer], tag: str,
                                                           tmp_path: Any) -> None:
    """Two fresh Medplum servers, same documents: one fault-free, one through heavy faults; same resources."""
    docs = decisions(tag, 18, persons=6, seed=2)
    clean, faulty = server_factory("medplum"), server_factory("medplum")
    run_through_proxy(clean, docs, f"sqlite:///{tmp_path / 'clean.db'}", lambda r: fp.PASS)
    plan = fp.Random(3, [(fp.RESET_AFTER, 0.3), (fp.RESET_BEFORE, 0.1), (fp.unavailable(), 0.1), (fp.Slow(0.2), 0.1)],
                     is_transaction)
    run_through_proxy(faulty, docs, f"sqlite:///{tmp_path / 'faulty.db'}", plan)
    keys = conditional_keys(bundles(docs))
    reference = snapshot(clean.base_url, types_of(keys))
    assert reference == expected_by_type(keys)
    assert snapshot(faulty.base_url, types_of(keys)) == reference


def test_resend_of_unchanged_documents_changes_nothing(fhir_server: RunningServer, tag: str, sqlite_url: str) -> None:
    docs = decisions(tag, 9, persons=3)
    first, _ = run_through_proxy(fhir_server, docs, sqlite_url, lambda r: fp.PASS)
    types = types_of(conditional_keys(bundles(docs)))
    after_first = snapshot(fhir_server.base_url, types)
    second, _ = run_through_proxy(fhir_server, docs, sqlite_url, lambda r: fp.PASS)
    assert snapshot(fhir_server.base_url, types) == after_first
    import json

    resent = [json.loads(m.result or "{}") for m in second.list(limit=1000)][len(docs):]
    assert [r["created"] for r in resent] == [0] * len(docs)
    first.close()
    second.close()


def test_permanent_failure_is_dead_lettered_and_blocks_no_one_else(fhir_server: RunningServer, tag: str,
                                                                    sqlite_url: str) -> None:
    """A 422 for one person's first document: it becomes a dead letter with the server's answer; every other
    person is delivered; that person's later documents wait during the hold and move on after a discard."""
    docs = decisions(tag, 12, persons=4)
    sent = bundles(docs)
    poison = sent[0]["id"]  # person 0, first document
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "business-rule",
                                                              "diagnostics": "Beslutet saknar handläggare"}]}
    plan = fp.Script([fp.Reply(422, (), outcome)], lambda r: is_transaction(r) and poison.encode() in r.body)
    with fp.FaultProxy(fhir_server.base_url, plan) as proxy:
        outbox = Outbox.open(sqlite_url, settings(dead_letter_hold=60.0))
        ids = [outbox.accept(doc, proxy.base_url).message_id for doc in docs]
        with Gateway(proxy.base_url, outbox.settings) as gateway:
            Worker(outbox, gateway, poll=0.05).run(until_empty=True)
            by_status = Counter(m.status for m in outbox.list(limit=100))
            assert by_status == {DELIVERED: 9, DEAD: 1, "pending": 2}
            [dead] = outbox.dead()
            assert dead["http_status"] == 422 and dead["outcome"] == outcome and dead["stage"] == "delivery"
            assert dead["message_id"] == ids[0]
            held = sorted(m.id for m in outbox.list(status="pending"))
            assert held == [ids[4], ids[8]]  # person 0's later documents, and nobody else's
            assert outbox.waiting(proxy.base_url)["held"] == 2
            outbox.discard(ids[0], actor="test", reason="sent by mistake")
            Worker(outbox, gateway, poll=0.05).run(until_empty=True)
        assert Counter(m.status for m in outbox.list(limit=100)) == {DELIVERED: 11, "discarded": 1}
        assert_in_order_per_person(proxy, sent[1:])
    outbox.close()


def test_replayed_dead_letter_is_delivered(fhir_server: RunningServer, tag: str, sqlite_url: str) -> None:
    """After the server's problem is fixed, a replay delivers the dead letter and its held successors, in order."""
    docs = decisions(tag, 6, persons=2)
    sent = bundles(docs)
    plan = fp.Script([fp.Reply(422, (), None)], lambda r: is_transaction(r) and sent[0]["id"].encode() in r.body)
    with fp.FaultProxy(fhir_server.base_url, plan) as proxy:
        outbox = Outbox.open(sqlite_url, settings())
        ids = [outbox.accept(doc, proxy.base_url).message_id for doc in docs]
        with Gateway(proxy.base_url, outbox.settings) as gateway:
            Worker(outbox, gateway, poll=0.05).run(until_empty=True)
            assert outbox.get(ids[0]).status == DEAD
            assert outbox.dead()[0]["outcome"]["issue"][0]["code"] == "exception"  # no OperationOutcome: kept as text
            outbox.replay(ids[0], actor="test", reason="server fixed")
            Worker(outbox, gateway, poll=0.05).run(until_empty=True)
        assert {m.status for m in outbox.list(limit=100)} == {DELIVERED}
        assert_in_order_per_person(proxy, sent)
    outbox.close()


def test_circuit_breaker_opens_and_the_queue_recovers(medplum_server: RunningServer, tag: str, sqlite_url: str) -> None:
    """Repeated 503s open the destination's breaker (requests stop); after the cooldown a probe closes it."""
    docs = decisions(tag, 6, persons=6)
    plan = fp.Script([fp.unavailable()] * 8, is_transaction)
    outbox, proxy = run_through_proxy(medplum_server, docs, sqlite_url, plan,
                                      {"breaker_failures": 3, "breaker_cooldown": 0.5}, concurrency=2)
    assert {m.status for m in outbox.list(limit=100)} == {DELIVERED}
    from adapter import audit

    with outbox.engine.connect() as conn:
        texts = [e["outcomeDesc"] for e in audit.events(conn, limit=1000)]
    assert any("circuit open" in t for t in texts), texts
    assert proxy.actions["reply-503"] == 8
    outbox.close()
