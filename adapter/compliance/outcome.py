"""OperationOutcome building blocks: issues with severity, code, rule, text and FHIRPath expression."""

from __future__ import annotations

from typing import Any, Iterable

from mappings import systems

#: Issue severities in the order a reader cares about them.
SEVERITIES = ("fatal", "error", "warning", "information")


def issue(severity: str, code: str, expression: str, text: str, rule: str | None = None) -> dict[str, Any]:
    """One OperationOutcome.issue; `rule` names the check (invariant key or carebridge rule id)."""
    details: dict[str, Any] = {"text": text}
    if rule:
        details["coding"] = [{"system": systems.CS_COMPLIANCE_RULE, "code": rule}]
    out = {"severity": severity, "code": code, "details": details}
    if expression:
        out["expression"] = [expression]
    return out


#: What a check raises when an element has a shape it did not expect (a list where an object
#: belongs, an impossible date): caught per layer or rule, so a malformed payload gets an error.
MALFORMED = (TypeError, AttributeError, ValueError, KeyError, IndexError)


def unchecked(expression: str, what: str, exc: BaseException) -> dict[str, Any]:
    """The error for a payload that `what` (a layer or rule) could not check to the end: fail closed.

    Names the exception's type only: its text may quote the payload's data."""
    return issue("error", "structure", expression,
                 f"{what}: the payload could not be checked completely, an element has an unexpected shape ({type(exc).__name__})",
                 "malformed")


#: Severity -> its place in SEVERITIES (the sort key of issues).
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


def _rank(i: dict[str, Any]) -> int:
    return _RANK[i["severity"]]


def outcome(issues: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome; with no issues it carries the single 'all ok' information issue R4 requires."""
    items = sorted(issues, key=_rank)
    if not items:
        items = [{"severity": "information", "code": "informational", "details": {"text": "No issues found"}}]
    return {"resourceType": "OperationOutcome", "issue": items}


def has_errors(outcome_: dict[str, Any]) -> bool:
    """True if the OperationOutcome has an issue of severity error or fatal."""
    return any(i.get("severity") in ("error", "fatal") for i in outcome_.get("issue", ()))


def rule_of(issue_: dict[str, Any]) -> str | None:
    """The carebridge rule id of an issue, if it has one."""
    for c in (issue_.get("details") or {}).get("coding", ()):
        if c.get("system") == systems.CS_COMPLIANCE_RULE:
            return c.get("code")
    return None
