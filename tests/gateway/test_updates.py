"""Versioned updates (If-Match) against the real servers: applied once, resends change nothing, a 412 is
re-read and re-applied, a real conflicting change is surfaced as a dead letter, replay applies ours."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapter.gateway import Gateway
from adapter.outbox import DEAD, DELIVERED, Outbox
from adapter.outbox.worker import Worker
from adapter.standin import RunningServer
from mappings import systems
from tests.gateway import faultproxy as fp
from tests.gateway.conftest import settings
from tests.gateway.payloads import decisions

pytestmark = pytest.mark.integration


def is_put(request: fp.Request) -> bool:
    return request.method == "PUT"


class Scenario:
    """A decision delivered to the server, and a Task status update for it, through a proxy."""

    def __init__(self, server: RunningServer, tag: str, db: str, plan: Any = None) -> None:
        self.server = server
        doc = json.loads(decisions(tag, 1, 1)[0])
        self.pnr = doc["person"]["personnummer"]
        self.task_key = f"{doc['decision_id']}/{doc['insatser'][0]['insats_id']}"
        self.proxy = fp.FaultProxy(server.base_url, plan).__enter__()
        self.outbox = Outbox.open(db, settings())
        self.gateway = Gateway(self.proxy.base_url, self.outbox.settings)
        self.deliver(json.dumps(doc).encode())

    def update(self, status: str, **extra: Any) -> bytes:
        """A Task update payload: identifier selects it, ``for`` names the person (and so the queue)."""
        return json.dumps({"resourceType": "Task", "identifier": [{"system": systems.SID_TASK, "value": self.task_key}],
                           "status": status, "intent": "order",
                           "for": {"identifier": {"system": systems.PERSONNUMMER, "value": self.pnr}}, **extra}).encode()

    def deliver(self, data: bytes) -> int:
        accepted = self.outbox.accept(data, self.proxy.base_url)
        assert accepted.status == "pending", accepted.problem
        Worker(self.outbox, self.gateway, concurrency=2, poll=0.05).run(only=[accepted.message_id])
        return accepted.message_id

    def task(self) -> dict[str, Any]:
        bundle = httpx.get(f"{self.server.base_url}/Task", params={"identifier": f"{systems.SID_TASK}|{self.task_key}"}).json()
        [entry] = bundle["entry"]
        return entry["resource"]

    def versions(self) -> int:
        task = self.task()
        history = httpx.get(f"{self.server.base_url}/Task/{task['id']}/_history").json()
        return len(history.get("entry", []))

    def close(self) -> None:
        self.gateway.close()
        self.outbox.close()
        self.proxy.close()


@pytest.fixture
def scenario(fhir_server: RunningServer, tag: str, sqlite_url: str):  # type: ignore[no-untyped-def]
    made: list[Scenario] = []

    def make(plan: Any = None) -> Scenario:
        made.append(Scenario(fhir_server, tag, sqlite_url, plan))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_update_is_applied_once_and_a_resend_changes_nothing(scenario) -> None:  # type: ignore[no-untyped-def]
    s = scenario()
    assert s.task()["status"] == "requested" and s.versions() == 1
    first = s.deliver(s.update("accepted"))
    assert s.outbox.get(first).status == DELIVERED
    assert s.task()["status"] == "accepted" and s.versions() == 2
    again = s.deliver(s.update("accepted"))
    assert json.loads(s.outbox.get(again).result or "{}")["updated"] is False
    assert s.versions() == 2


def test_injected_412_is_re_read_and_re_applied(scenario) -> None:  # type: ignore[no-untyped-def]
    s = scenario(fp.Script([fp.precondition_failed()], is_put))
    mid = s.deliver(s.update("accepted"))
    assert s.outbox.get(mid).status == DELIVERED
    assert s.proxy.actions["reply-412"] == 1
    assert s.task()["status"] == "accepted" and s.versions() == 2


def _rival(change: dict[str, Any]) -> fp.Concurrent:
    """Another writer that updates the target (by its own versioned update) just before our PUT arrives."""

    def act(client: httpx.Client, upstream: str, request: fp.Request) -> None:
        task_id = request.json()["id"]
        current = client.get(f"{upstream}/Task/{task_id}").json()
        response = client.put(f"{upstream}/Task/{task_id}", json={**current, **change},
                              headers={"If-Match": f'W/"{current["meta"]["versionId"]}"',
                                       "Content-Type": "application/fhir+json"})
        assert response.status_code == 200, response.text

    return fp.Concurrent(act)


def test_real_concurrent_change_of_another_element_is_merged(scenario) -> None:  # type: ignore[no-untyped-def]
    note = [{"text": "Utföraren har ringt brukaren."}]
    s = scenario(fp.Script([_rival({"note": note})], is_put))
    mid = s.deliver(s.update("accepted"))
    assert s.outbox.get(mid).status == DELIVERED
    task = s.task()
    assert task["status"] == "accepted" and task["note"] == note  # ours and theirs
    assert s.versions() == 3  # create, their note, our status
    statuses = [f.status for f in s.proxy.forwarded if f.method == "PUT"]
    assert statuses == [412, 200]  # a genuine 412 from the server, then the re-applied update


def test_conflicting_change_is_a_dead_letter_and_replay_applies_ours(scenario) -> None:  # type: ignore[no-untyped-def]
    s = scenario(fp.Script([_rival({"status": "cancelled"})], is_put))
    mid = s.deliver(s.update("accepted"))
    assert s.outbox.get(mid).status == DEAD
    [dead] = s.outbox.dead()
    assert dead["stage"] == "conflict" and dead["outcome"]["issue"][0]["code"] == "conflict"
    assert s.task()["status"] == "cancelled"  # theirs stands until an operator decides
    s.outbox.replay(mid, actor="ops", reason="the decision stands")
    Worker(s.outbox, s.gateway, poll=0.05).run(only=[mid])
    assert s.outbox.get(mid).status == DELIVERED and s.task()["status"] == "accepted"


def test_reset_after_the_server_applied_the_update_does_not_apply_it_twice(scenario) -> None:  # type: ignore[no-untyped-def]
    s = scenario(fp.Script([fp.RESET_AFTER], is_put))
    mid = s.deliver(s.update("accepted"))
    assert s.outbox.get(mid).status == DELIVERED
    assert s.proxy.actions[fp.RESET_AFTER] == 1
    assert s.task()["status"] == "accepted" and s.versions() == 2
