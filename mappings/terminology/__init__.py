"""Code tables as data: one JSON file per table under `tables/`, read once.

A table has `columns` (the first is always `code`) and `rows`. Adding an insats type or a
legal basis is adding one row; no code changes. Each table also becomes a FHIR CodeSystem
(`code_system(name)`) under the project's canonical base, so the compliance engine and the
regional server see exactly the same codes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from mappings import systems

#: table name -> CodeSystem canonical URL (tables without one are internal lookups).
CODE_SYSTEM_URLS: dict[str, str] = {
    "insats-type": systems.CS_INSATS_TYPE,
    "legal-basis": systems.CS_LEGAL_BASIS,
    "decision-kind": systems.CS_DECISION_KIND,
    "status-reason": systems.CS_STATUS_REASON,
    "riv-care-service-type": systems.CS_CARE_SERVICE_TYPE,
    "riv-care-plan-type": systems.CS_CARE_PLAN_TYPE,
    "legal-domain": systems.CS_LEGAL_DOMAIN,
    "huvudman": systems.CS_HUVUDMAN,
    "time-strictness": systems.CS_TIME_STRICTNESS,
    "organisation-kind": systems.CS_ORGANISATION_KIND,
    "contact-channel": systems.CS_CONTACT_CHANNEL,
    "contact-outcome": systems.CS_CONTACT_OUTCOME,
    "declined-reason": systems.CS_DECLINED_REASON,
    "contact-change-reason": systems.CS_CONTACT_CHANGE_REASON,
    "contact-detail": systems.CS_CONTACT_DETAIL,
    "plan-activity-type": systems.CS_PLAN_ACTIVITY_TYPE,
    "plan-goal-type": systems.CS_PLAN_GOAL_TYPE,
    "plan-careteam-role": systems.CS_PLAN_CARETEAM_ROLE,
    "implementation-plan-status": systems.CS_IMPLEMENTATION_PLAN_STATUS,
    "icf-component": systems.CS_ICF_COMPONENT,
    "icf-factor-role": systems.CS_ICF_FACTOR_ROLE,
    "rehab-action-kind": systems.CS_REHAB_ACTION_KIND,
    "rehab-action-status": systems.CS_REHAB_ACTION_STATUS,
    "rehab-followup-trigger": systems.CS_REHAB_FOLLOWUP_TRIGGER,
    "rehab-closure-reason": systems.CS_REHAB_CLOSURE_REASON,
    "rehab-closure-information": systems.CS_REHAB_CLOSURE_INFORMATION,
    "sip-role": systems.CS_SIP_ROLE,
    "sip-follow-up": systems.CS_SIP_FOLLOW_UP,
    "delivery-status": systems.CS_DELIVERY_STATUS,
    "intervention-effect": systems.CS_INTERVENTION_EFFECT,
    "consent-information": systems.CS_CONSENT_INFORMATION,
    "consent-policy": systems.CS_CONSENT_POLICY,
    "guardian-kind": systems.CS_GUARDIAN_KIND,
    "workflow-flag": systems.CS_WORKFLOW_FLAG,
    "discharge-event": systems.CS_DISCHARGE_EVENT,
    "discharge-destination": systems.CS_DISCHARGE_DESTINATION,
    "message-activity": systems.CS_MESSAGE_ACTIVITY,
    "acknowledgement-error": systems.CS_ACK_ERROR,
    "need-category": systems.CS_NEED_CATEGORY,
}


class UnknownCodeError(ValueError):
    """A code that is not in its table."""


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("tables", f"{name}.json").read_text("utf-8")
    return json.loads(text)


@cache
def table(name: str) -> dict[str, dict[str, Any]]:
    """The table `name` as {code: row-as-dict}."""
    raw = _load(name)
    cols = raw["columns"]
    return {row[0]: dict(zip(cols, row)) for row in raw["rows"]}


def codes(name: str) -> tuple[str, ...]:
    """All codes of a table, in table order."""
    return tuple(table(name))


def row(name: str, code: str) -> dict[str, Any]:
    """One row of a table; UnknownCodeError if the code is not there."""
    try:
        return table(name)[code]
    except KeyError:
        raise UnknownCodeError(f"unknown {name} code {code!r}") from None


def coding(name: str, code: str) -> dict[str, str]:
    """A FHIR Coding for `code` in the table's CodeSystem."""
    return {"system": CODE_SYSTEM_URLS[name], "code": code, "display": row(name, code)["display"]}


def by_system(system: str) -> str | None:
    """The table name whose CodeSystem has this URL, if any."""
    for name, url in CODE_SYSTEM_URLS.items():
        if url == system:
            return name
    return None


def code_system(name: str) -> dict[str, Any]:
    """The table as a FHIR R4 CodeSystem resource (complete content)."""
    raw = _load(name)
    return {
        "resourceType": "CodeSystem",
        "id": f"cb-{name}",
        "url": CODE_SYSTEM_URLS[name],
        "version": raw["version"],
        "name": "".join(part.capitalize() for part in name.split("-")),
        "title": raw["title"],
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "count": len(raw["rows"]),
        "concept": [{"code": r[0], "display": r[1]} for r in raw["rows"]],
    }
