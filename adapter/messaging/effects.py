"""Side effects of a discharge event on the regional FHIR server: the person's provider Tasks pause or resume.

Each Task goes through `task_state.pause` / `task_state.resume` and is written with a versioned
update through the gateway (retries, circuit breaker, auth): `PUT Task/<id>` with
`If-Match: W/"<versionId>"`. On 412 the Task is read again and the transition recomputed on the
fresh version (someone, e.g. the utförare, changed it meanwhile), at most `REAPPLY_LIMIT` times;
a transition that no longer applies writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from adapter.gateway import Conflict, Gateway, Permanent
from adapter.gateway.errors import error_for
from adapter.messaging import task_state
from mappings import identifiers, systems, terminology
from mappings.models.discharge import DischargeEvent

#: How many times a 412 leads to re-read and recompute before it is a conflict.
REAPPLY_LIMIT = 3
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class TaskChange:
    """One Task moved by an event: from which status to which, and the version written."""

    task_id: str
    before: str
    after: str
    version: str


def task_effect(event: DischargeEvent) -> str | None:
    """"pause", "resume" or None: what an event does to the person's provider Tasks (from the tables)."""
    effect = terminology.row("discharge-event", event.event)["task_effect"]
    if effect == "resume":
        destination = event.stay.discharge_destination
        if destination is None or not terminology.row("discharge-destination", destination)["resumes_services"]:
            return None
    return effect


class TaskEffects:
    """Applies an event's effect to the provider Tasks of its person on one regional server."""

    def __init__(self, gateway: Gateway, correlation: str = "carebridge-receiver") -> None:
        self.gateway = gateway
        self.headers = {"X-Correlation-ID": correlation}

    def apply(self, event: DischargeEvent, effect: str | None, *, at: dt.datetime) -> list[TaskChange]:
        """Pause or resume every provider Task of the event's person; the changes made."""
        if effect is None:
            return []
        transition: Callable[[dict], dict | None] = {
            "pause": lambda t: task_state.pause(t, at=at, admitted=event.stay.admitted_at.date()),
            "resume": lambda t: task_state.resume(t, at=at),
        }[effect]
        rnd = self.gateway.new_round()
        changes = []
        for task in self.provider_tasks(event.person.personnummer, rnd):
            change = self._transition(rnd, task, transition)
            if change:
                changes.append(change)
        return changes

    def provider_tasks(self, personnummer: str, rnd: Any = None) -> list[dict]:
        """Every `fulfill` Task for the person (all Patient resources carrying the personnummer)."""
        rnd = rnd or self.gateway.new_round()
        system = identifiers.person_identifier_system(personnummer)
        patients = self._search(rnd, f"/Patient?identifier={quote(f'{system}|{personnummer}', safe=':/|')}&_elements=id")
        tasks: dict[str, dict] = {}
        code = quote(f"{systems.CS_TASK_CODE}|fulfill", safe=":/|")
        for patient in patients:
            for task in self._search(rnd, f"/Task?patient=Patient/{patient['id']}&code={code}&_count=100"):
                if task_state.is_provider_task(task):
                    tasks[task["id"]] = task
        return [tasks[k] for k in sorted(tasks)]

    def _search(self, rnd: Any, url: str) -> list[dict]:
        found: list[dict] = []
        next_url: str | None = url
        while next_url:
            response = self.gateway.request(rnd, "GET", next_url, "search", headers=self.headers)
            if response.status_code != 200:
                raise error_for(response, f"GET {url.split('?')[0]}")
            bundle = response.json()
            found += [e["resource"] for e in bundle.get("entry", ()) if (e.get("search") or {}).get("mode", "match") == "match" and e.get("resource")]
            next_url = next((link["url"] for link in bundle.get("link", ()) if link.get("relation") == "next"), None)
        return found

    def _transition(self, rnd: Any, task: dict, transition: Callable[[dict], dict | None]) -> TaskChange | None:
        current = task
        for _ in range(REAPPLY_LIMIT + 1):
            new = transition(current)
            if new is None:
                return None
            version = (current.get("meta") or {}).get("versionId")
            if not version:
                raise Permanent(f"Task/{current['id']} has no meta.versionId: the server does not support versioned updates")
            response = self.gateway.request(
                rnd, "PUT", f"/Task/{current['id']}", "update", json=new,
                headers={**self.headers, "Content-Type": FHIR_JSON, "If-Match": f'W/"{version}"'},
            )
            if 200 <= response.status_code < 300:
                written = (response.headers.get("ETag") or "").removeprefix("W/").strip('"')
                return TaskChange(current["id"], current["status"], new["status"], written)
            if response.status_code != 412:
                raise error_for(response, f"PUT Task/{current['id']}")
            fresh = self.gateway.request(rnd, "GET", f"/Task/{current['id']}", "read", headers=self.headers)
            if fresh.status_code != 200:
                raise error_for(fresh, f"GET Task/{current['id']}")
            current = fresh.json()
        raise Conflict(f"Task/{task['id']}: still 412 after {REAPPLY_LIMIT} re-reads", status=412)

