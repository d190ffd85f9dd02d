"""The provider Task's pause and resume around a hospital stay: a pure state machine on Task JSON.

    requested | received | accepted | ready | in-progress
        ──inskrivning──▶ on-hold   statusReason = status-reason#inskriven-slutenvard,
                                   extension task-paused-from-status = the status it had
    on-hold (inskriven-slutenvard)
        ──utskrivning to a destination that resumes services──▶ the status it had
                                   (statusReason and the extension removed)

Everything else is left alone: a Task on hold for another reason, a finished one (completed,
cancelled, failed, rejected, entered-in-error, draft), one whose assignment period ended before
the admission, and a second admission notice for a Task already paused (idempotent). A Task paused
before this extension existed resumes to `in-progress`.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from mappings import systems, terminology

Task = dict[str, Any]

#: Statuses of a Task whose insats is being delivered (or about to be): these pause.
ACTIVE = ("requested", "received", "accepted", "ready", "in-progress")
#: The status-reason code an admission puts on a paused Task.
REASON = "inskriven-slutenvard"
#: Where a Task goes back to when the status it had is unknown.
RESUME_DEFAULT = "in-progress"


def is_provider_task(task: Task) -> bool:
    """A Task assigning an insats to its utförare (code fulfill)."""
    codes = {(c.get("system"), c.get("code")) for c in (task.get("code") or {}).get("coding", ())}
    return (systems.CS_TASK_CODE, "fulfill") in codes


def paused_by_admission(task: Task) -> bool:
    """True when the Task is on hold because the person is admitted to hospital."""
    reasons = {(c.get("system"), c.get("code")) for c in (task.get("statusReason") or {}).get("coding", ())}
    return task.get("status") == "on-hold" and (systems.CS_STATUS_REASON, REASON) in reasons


def _period_over(task: Task, on: dt.date) -> bool:
    end = ((task.get("restriction") or {}).get("period") or {}).get("end")
    return bool(end) and str(end)[:10] < on.isoformat()


def pause(task: Task, *, at: dt.datetime, admitted: dt.date | None = None) -> Task | None:
    """The Task put on hold (changed at `at`) for an admission on `admitted`, or None if nothing changes."""
    if not is_provider_task(task) or task.get("status") not in ACTIVE or _period_over(task, admitted or at.date()):
        return None
    new = copy.deepcopy(task)
    previous = new["status"]
    new["status"] = "on-hold"
    new["statusReason"] = {"coding": [terminology.coding("status-reason", REASON)], "text": terminology.row("status-reason", REASON)["display"]}
    extensions = [e for e in new.get("extension", ()) if e.get("url") != systems.EXT_TASK_PAUSED_FROM]
    extensions.append({"url": systems.EXT_TASK_PAUSED_FROM, "valueCode": previous})
    new["extension"] = extensions
    new["lastModified"] = at.isoformat()
    return _ordered(new)


def resume(task: Task, *, at: dt.datetime) -> Task | None:
    """The Task back to the status it had before the admission, or None if it was not paused by one."""
    if not is_provider_task(task) or not paused_by_admission(task):
        return None
    new = copy.deepcopy(task)
    previous = next((e.get("valueCode") for e in new.get("extension", ()) if e.get("url") == systems.EXT_TASK_PAUSED_FROM), None)
    new["status"] = previous if previous in ACTIVE else RESUME_DEFAULT
    new.pop("statusReason", None)
    extensions = [e for e in new.get("extension", ()) if e.get("url") != systems.EXT_TASK_PAUSED_FROM]
    if extensions:
        new["extension"] = extensions
    else:
        new.pop("extension", None)
    new["lastModified"] = at.isoformat()
    return _ordered(new)


#: R4 element order of Task (JSON order is free; keeping it makes diffs and stored versions readable).
_ORDER = (
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
    "identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "groupIdentifier", "partOf", "status",
    "statusReason", "businessStatus", "intent", "priority", "code", "description", "focus", "for", "encounter",
    "executionPeriod", "authoredOn", "lastModified", "requester", "performerType", "owner", "location", "reasonCode",
    "reasonReference", "insurance", "note", "relevantHistory", "restriction", "input", "output",
)


def _ordered(task: Task) -> Task:
    known = {k: task[k] for k in _ORDER if k in task}
    return {**known, **{k: v for k, v in task.items() if k not in known}}
