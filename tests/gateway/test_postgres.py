"""PostgreSQL scale-out: three worker processes drain one queue (FOR UPDATE SKIP LOCKED); every message
is delivered exactly once and each person's documents reach the server in order."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from adapter.outbox import DELIVERED, Outbox
from adapter.outbox.schema import audit_events
from adapter.standin import RunningServer
from tests.gateway import faultproxy as fp
from tests.gateway.conftest import settings
from tests.gateway.payloads import bundles, conditional_keys, decisions, expected_new, snapshot, types_of
from tests.gateway.test_crash import carebridge, child_env
from tests.gateway.test_faults import assert_in_order_per_person, is_transaction

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_three_worker_processes_share_one_postgres_queue(medplum_server: RunningServer, pg_url: str, tag: str,
                                                         tmp_path: Path) -> None:
    docs = decisions(tag, 120, persons=40)  # three documents per person; more heads than one worker's window
    sent = bundles(docs)
    keys = conditional_keys(sent)
    types, expected = types_of(keys), expected_new(medplum_server.base_url, keys, tag)
    before = snapshot(medplum_server.base_url, types)
    slow = fp.Slow(0.05)
    with fp.FaultProxy(medplum_server.base_url, lambda r: slow if is_transaction(r) else fp.PASS) as proxy:
        outbox = Outbox.open(pg_url, settings())
        ids = [outbox.accept(doc, proxy.base_url).message_id for doc in docs]
        workers = [subprocess.Popen(carebridge("worker", "--server", proxy.base_url, "--db", pg_url, "--until-empty",
                                               "--concurrency", "3"),
                                    cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for _ in range(3)]
        results = [w.communicate(timeout=180) for w in workers]
        assert [w.returncode for w in workers] == [0, 0, 0], [r[1][-1500:] for r in results]
    assert Counter(m.status for m in outbox.list(limit=1000)) == {DELIVERED: len(docs)}
    # Delivered once: one successful transfer AuditEvent per message, one forward per Bundle.
    with outbox.engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.message_id, audit_events.c.resource).where(
            audit_events.c.outcome == "0")).all()
    assert sorted(r[0] for r in rows) == sorted(ids)
    deliverers = Counter(json.loads(r[1])["agent"][0]["who"]["display"].split(":")[1] for r in rows)
    print(f"messages delivered per worker process: {sorted(deliverers.values())}")
    assert len(deliverers) == 3, f"not every worker process delivered: {deliverers}"
    forwards = Counter(json.loads(f.body)["id"] for f in proxy.forwarded if f.method == "POST")
    assert set(forwards.values()) == {1} and len(forwards) == len(docs)
    assert_in_order_per_person(proxy, sent)
    assert snapshot(medplum_server.base_url, types) - before == expected
    outbox.close()
