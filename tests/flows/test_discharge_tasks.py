"""The provider Task's pause at admission and resume at discharge: the pure state machine, then on real servers."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path

import httpx
import pytest

from adapter.compliance import validate
from adapter.gateway import Gateway
from adapter.messaging import task_state
from adapter.messaging.effects import TaskEffects, task_effect
from mappings import decision, systems
from mappings.identifiers import with_check_digit
from mappings.models.decision import CareDecision
from mappings.models.discharge import DischargeEvent

ROOT = Path(__file__).parents[2]
AT = dt.datetime(2026, 6, 2, 8, 45, tzinfo=dt.timezone.utc)
ADMITTED = dt.date(2026, 6, 2)
DISCHARGE = sorted(ROOT.joinpath("fixtures", "discharge").glob("*.json"))


def provider_task(status: str = "in-progress", **extra) -> dict:
    """The Task the decision flow writes for a granted insats (as a server returns it)."""
    d = CareDecision.model_validate_json(ROOT.joinpath("fixtures", "decision", "hemtjanst-timmar.json").read_text("utf-8"))
    task = next(e["resource"] for e in decision.to_fhir(d)["entry"] if e["resource"]["resourceType"] == "Task")
    task = {"id": "t1", **copy.deepcopy(task), "status": status, **extra}
    task["focus"] = {"reference": "ServiceRequest/s1"}
    task["for"] = {"reference": "Patient/p1"}
    task["requester"] = {"reference": "Organization/o1"}
    task["owner"] = {"reference": "Organization/o2"}
    return task


# --- the state machine -------------------------------------------------------------------------


@pytest.mark.parametrize("status", task_state.ACTIVE)
def test_every_active_status_pauses_and_resumes_to_itself(status: str) -> None:
    task = provider_task(status)
    paused = task_state.pause(task, at=AT, admitted=ADMITTED)
    assert paused is not None and paused["status"] == "on-hold"
    assert paused["statusReason"]["coding"][0] == {"system": systems.CS_STATUS_REASON, "code": "inskriven-slutenvard", "display": "Inskriven i slutenvård"}
    assert {"url": systems.EXT_TASK_PAUSED_FROM, "valueCode": status} in paused["extension"]
    assert paused["lastModified"] == AT.isoformat()
    assert task["status"] == status  # the input is not changed
    assert task_state.pause(paused, at=AT, admitted=ADMITTED) is None  # a second admission notice changes nothing
    resumed = task_state.resume(paused, at=AT + dt.timedelta(days=10))
    assert resumed is not None and resumed["status"] == status
    assert "statusReason" not in resumed and "extension" not in resumed
    assert task_state.resume(resumed, at=AT) is None


@pytest.mark.parametrize("status", ["draft", "completed", "cancelled", "failed", "rejected", "entered-in-error"])
def test_finished_or_unstarted_tasks_are_left_alone(status: str) -> None:
    assert task_state.pause(provider_task(status), at=AT, admitted=ADMITTED) is None
    assert task_state.resume(provider_task(status), at=AT) is None


def test_a_task_on_hold_for_another_reason_is_neither_paused_nor_resumed() -> None:
    other = provider_task("on-hold", statusReason={"text": "Semester hos utföraren"})
    assert task_state.pause(other, at=AT, admitted=ADMITTED) is None
    assert task_state.resume(other, at=AT) is None


def test_an_assignment_that_ended_before_the_admission_is_not_paused() -> None:
    task = provider_task()
    assert task["restriction"]["period"] == {"start": "2026-03-09", "end": "2026-09-30"}
    assert task_state.pause(task, at=AT, admitted=dt.date(2026, 10, 1)) is None
    assert task_state.pause(task, at=dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc), admitted=dt.date(2026, 9, 30)) is not None


def test_other_tasks_are_not_provider_tasks() -> None:
    task = provider_task()
    task["code"] = {"coding": [{"system": systems.CS_TASK_CODE, "code": "approve"}]}
    assert task_state.pause(task, at=AT, admitted=ADMITTED) is None


def test_resume_without_the_remembered_status_goes_to_in_progress_and_keeps_other_extensions() -> None:
    other_ext = {"url": systems.BASE + "/StructureDefinition/something-else", "valueString": "x"}
    paused = task_state.pause(provider_task("accepted", extension=[other_ext]), at=AT, admitted=ADMITTED)
    assert paused["extension"] == [other_ext, {"url": systems.EXT_TASK_PAUSED_FROM, "valueCode": "accepted"}]
    assert task_state.resume(paused, at=AT)["extension"] == [other_ext]
    legacy = copy.deepcopy(paused)
    legacy["extension"] = [other_ext]
    assert task_state.resume(legacy, at=AT)["status"] == "in-progress"


def test_paused_and_resumed_tasks_stay_valid_provider_tasks() -> None:
    task = provider_task("accepted")
    for version in (task_state.pause(task, at=AT, admitted=ADMITTED), task_state.resume(task_state.pause(task, at=AT, admitted=ADMITTED), at=AT)):
        outcome = validate(version, profile=systems.PROFILE_PROVIDER_TASK)
        assert [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")] == []


def test_which_events_pause_and_which_resume_is_table_data() -> None:
    effects = [task_effect(DischargeEvent.model_validate_json(p.read_text("utf-8"))) for p in DISCHARGE]
    assert effects == ["pause", None, None, None, None, "resume"]
    to_short_term = json.loads(DISCHARGE[-1].read_text("utf-8"))
    to_short_term["stay"]["discharge_destination"] = "korttidsboende"
    assert task_effect(DischargeEvent.model_validate(to_short_term)) is None


# --- on real servers -----------------------------------------------------------------------------


def fresh_person() -> str:
    """A valid personnummer no other test uses (the servers are shared by the session)."""
    n = uuid.uuid4().int
    born = dt.date(1930, 1, 1) + dt.timedelta(days=n % 9000)
    return with_check_digit(f"{born:%Y%m%d}{(n >> 20) % 1000:03d}")


def post_decision(base_url: str, personnummer: str) -> CareDecision:
    doc = json.loads(ROOT.joinpath("fixtures", "decision", "hemtjanst-timmar.json").read_text("utf-8"))
    doc["decision_id"] = f"T-{uuid.uuid4().hex[:10]}"
    doc["person"] = {"personnummer": personnummer, "given_name": "Test", "family_name": "Person"}
    d = CareDecision.model_validate(doc)
    response = httpx.post(base_url, json=decision.to_fhir(d), headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert response.status_code == 200, response.text[:300]
    return d


def event_for(personnummer: str, index: int) -> DischargeEvent:
    doc = json.loads(DISCHARGE[index].read_text("utf-8"))
    doc["person"]["personnummer"] = personnummer
    return DischargeEvent.model_validate(doc)


def server_tasks(base_url: str, personnummer: str) -> dict[str, dict]:
    with Gateway(base_url) as gw:
        return {t["identifier"][0]["value"]: t for t in TaskEffects(gw).provider_tasks(personnummer)}


@pytest.mark.integration
def test_admission_pauses_and_discharge_resumes_on_the_server(fhir_server) -> None:
    pnr = fresh_person()
    d = post_decision(fhir_server.base_url, pnr)
    before = server_tasks(fhir_server.base_url, pnr)
    assert sorted(before) == [f"{d.decision_id}/1", f"{d.decision_id}/2"]
    assert {t["status"] for t in before.values()} == {"requested"}
    with Gateway(fhir_server.base_url) as gw:
        effects = TaskEffects(gw)
        changes = effects.apply(event_for(pnr, 0), "pause", at=AT)
        assert sorted((c.before, c.after) for c in changes) == [("requested", "on-hold")] * 2
        paused = server_tasks(fhir_server.base_url, pnr)
        assert {t["status"] for t in paused.values()} == {"on-hold"}
        assert all(t["statusReason"]["coding"][0]["code"] == "inskriven-slutenvard" for t in paused.values())
        assert all(t["meta"]["versionId"] != before[k]["meta"]["versionId"] for k, t in paused.items())
        assert effects.apply(event_for(pnr, 0), "pause", at=AT) == []  # idempotent: no write at all
        assert {k: t["meta"]["versionId"] for k, t in server_tasks(fhir_server.base_url, pnr).items()} == {k: t["meta"]["versionId"] for k, t in paused.items()}
        changes = effects.apply(event_for(pnr, 5), "resume", at=AT + dt.timedelta(days=10))
        assert sorted((c.before, c.after) for c in changes) == [("on-hold", "requested")] * 2
    resumed = server_tasks(fhir_server.base_url, pnr)
    assert {t["status"] for t in resumed.values()} == {"requested"}
    assert not any("statusReason" in t for t in resumed.values())


@pytest.mark.integration
def test_a_concurrent_change_gets_412_and_the_transition_is_recomputed(fhir_server) -> None:
    """The utförare accepts the Task between our read and our write: If-Match fails, we re-read and pause from 'accepted'."""
    pnr = fresh_person()
    post_decision(fhir_server.base_url, pnr)
    stale = next(iter(server_tasks(fhir_server.base_url, pnr).values()))
    accepted = {**stale, "status": "accepted"}
    response = httpx.put(f"{fhir_server.base_url}/Task/{stale['id']}", json=accepted, timeout=30,
                         headers={"Content-Type": "application/fhir+json", "If-Match": f'W/"{stale["meta"]["versionId"]}"'})
    assert response.status_code == 200
    statuses: list[int] = []

    def record(response: httpx.Response) -> None:
        if response.request.method == "PUT":
            statuses.append(response.status_code)

    with Gateway(fhir_server.base_url) as gw:
        gw.client.event_hooks["response"].append(record)
        change = TaskEffects(gw)._transition(gw.new_round(), stale, lambda t: task_state.pause(t, at=AT, admitted=ADMITTED))
    assert statuses == [412, 200]
    assert change is not None and (change.before, change.after) == ("accepted", "on-hold")
    now = server_tasks(fhir_server.base_url, pnr)[stale["identifier"][0]["value"]]
    assert now["status"] == "on-hold"
    assert {"url": systems.EXT_TASK_PAUSED_FROM, "valueCode": "accepted"} in now["extension"]


@pytest.mark.integration
def test_tasks_of_other_people_are_not_touched(sekmet_server) -> None:
    mine, theirs = fresh_person(), fresh_person()
    post_decision(sekmet_server.base_url, mine)
    post_decision(sekmet_server.base_url, theirs)
    with Gateway(sekmet_server.base_url) as gw:
        TaskEffects(gw).apply(event_for(mine, 0), "pause", at=AT)
    assert {t["status"] for t in server_tasks(sekmet_server.base_url, mine).values()} == {"on-hold"}
    assert {t["status"] for t in server_tasks(sekmet_server.base_url, theirs).values()} == {"requested"}
