"""`carebridge send` killed with SIGKILL in the middle of a run; `carebridge worker` picks up its
leased and queued messages. The server ends with exactly the fault-free resources, in per-person order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from adapter.outbox import DELIVERED, Outbox
from adapter.standin import REPO_ROOT, RunningServer
from tests.gateway import faultproxy as fp
from tests.gateway.payloads import bundles, conditional_keys, decisions, expected_new, snapshot, types_of, write
from tests.gateway.test_faults import assert_in_order_per_person, is_transaction

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Short leases and backoffs for the child processes.
CHILD_ENV = {"CAREBRIDGE_LEASE_SECONDS": "2", "CAREBRIDGE_BACKOFF_INITIAL": "0.05", "CAREBRIDGE_BACKOFF_MAX": "0.3",
             "CAREBRIDGE_RESCHEDULE_INITIAL": "0.2", "CAREBRIDGE_RESCHEDULE_MAX": "0.5", "CAREBRIDGE_LOG_LEVEL": "WARNING"}


def carebridge(*args: str) -> list[str]:
    """The command line of a carebridge subcommand run by this interpreter."""
    return [sys.executable, "-m", "adapter.cli", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, **CHILD_ENV, "PYTHONPATH": str(REPO_ROOT)}


def test_sender_killed_mid_run_and_a_worker_resumes(fhir_server: RunningServer, tag: str, tmp_path: Path) -> None:
    docs = decisions(tag, 30, persons=10)
    files = write(docs, tmp_path / "in")
    sent = bundles(docs)
    keys = conditional_keys(sent)
    types, expected = types_of(keys), expected_new(fhir_server.base_url, keys, tag)
    before = snapshot(fhir_server.base_url, types)
    db = tmp_path / "outbox.db"
    slow = fp.Slow(0.3)
    with fp.FaultProxy(fhir_server.base_url, lambda r: slow if is_transaction(r) else fp.PASS) as proxy:
        sender = subprocess.Popen(carebridge("send", *map(str, files), "--server", proxy.base_url, "--db", str(db),
                                             "--concurrency", "2"),
                                  cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        outbox = _wait_for_file(db)
        deadline = time.monotonic() + 60
        while sum(m.status == DELIVERED for m in outbox.list(limit=100)) < 8:
            assert sender.poll() is None, sender.communicate()
            assert time.monotonic() < deadline, "the sender made no progress"
            time.sleep(0.05)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait()
        at_kill = outbox.list(limit=100)
        assert len(at_kill) == len(docs)  # everything had been accepted before delivery began
        assert sum(m.status == DELIVERED for m in at_kill) < len(docs)
        in_flight = [m for m in at_kill if m.status == "pending" and m.lease_owner]
        assert in_flight, "nothing was in flight when the sender was killed"
        proxy.set_plan(fp.Random(5, [(fp.RESET_AFTER, 0.2)], is_transaction))
        worker = subprocess.run(carebridge("worker", "--server", proxy.base_url, "--db", str(db), "--until-empty",
                                           "--concurrency", "3"),
                                cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
    final = outbox.list(limit=100)
    assert Counter(m.status for m in final) == {DELIVERED: len(docs)}
    rescued = [m for m in final if m.id in {x.id for x in in_flight}]
    assert all(m.attempts >= 2 for m in rescued)  # the killed sender's leased messages were taken over
    assert snapshot(fhir_server.base_url, types) - before == expected
    assert_in_order_per_person(proxy, sent)
    outbox.close()


def _wait_for_file(db: Path) -> Outbox:
    deadline = time.monotonic() + 30
    while not db.exists():
        assert time.monotonic() < deadline, "the sender never created its outbox"
        time.sleep(0.05)
    time.sleep(0.3)  # let the sender finish migrating
    return Outbox.open(f"sqlite:///{db}", migrate=True)
