"""From an input document to a deliverable payload: convert, check idempotency, validate (fail closed).

Two kinds of payload are delivered:

- ``transaction``: a FHIR transaction Bundle (every document format converts to one). Each entry
  must be safe to send twice: a POST needs ``ifNoneExist``; PUT and DELETE are idempotent;
  PATCH is refused.
- ``update``: a single FHIR resource with a business identifier; the gateway sets its elements on
  the server's resource with that identifier by a versioned update (``If-Match``).

A payload whose OperationOutcome has an error is never queued: ``prepare`` returns it with the
outcome so the outbox keeps it as a rejected message.

Validation is that of a transfer to the destination's huvudman (``receiver_huvudman``: kommun,
region or annan; default ``$CAREBRIDGE_RECEIVER_HUVUDMAN``, else region): the consent rule reads
the sender from the payload, so a document another huvudman authored needs the person's consent
(or a legal basis) to be sent there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TRANSACTION, UPDATE = "transaction", "update"


@dataclass
class Prepared:
    """A document ready for the outbox, or the reason it cannot be queued (with its OperationOutcome)."""

    kind: str
    payload: dict[str, Any] | None  # None when the document could not even be read
    raw: str  # the payload as stored: FHIR JSON, or the input text when unreadable
    outcome: dict[str, Any]  # OperationOutcome from validation (or from the intake checks)
    problem: str | None = None  # one line; None means valid and deliverable

    @property
    def ok(self) -> bool:
        """True when the payload may be queued."""
        return self.problem is None


def outcome_of(text: str, code: str = "invalid", expression: str | None = None) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "details": {"text": text}}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def dump(payload: dict[str, Any]) -> str:
    """The stored text of a payload (compact JSON, UTF-8 characters kept)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def read_payload(data: bytes) -> tuple[str, dict[str, Any]]:
    """The kind and FHIR JSON of an input document (any format ``adapter.conversion`` reads)."""
    from adapter import conversion

    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict) and parsed.get("resourceType") not in (None, "Bundle"):
        return UPDATE, parsed
    bundle = conversion.bundle_of(conversion.read(data))
    return TRANSACTION, bundle


def idempotency_problems(kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """OperationOutcome issues for anything that could duplicate or clobber data when resent."""
    issues = []

    def problem(text: str, expression: str) -> None:
        issues.append({"severity": "error", "code": "business-rule", "details": {"text": text},
                       "expression": [expression]})

    if kind == UPDATE:
        if not any(i.get("system") and i.get("value") for i in payload.get("identifier") or ()):
            problem("an update needs a business identifier (system and value) to find its target",
                    f"{payload.get('resourceType')}.identifier")
        return issues
    if payload.get("resourceType") != "Bundle" or payload.get("type") != "transaction":
        problem("only transaction Bundles are delivered", "Bundle.type")
        return issues
    for n, entry in enumerate(payload.get("entry") or ()):
        method = str((entry.get("request") or {}).get("method", "")).upper()
        where = f"Bundle.entry[{n}].request"
        if method == "POST" and not (entry.get("request") or {}).get("ifNoneExist"):
            problem("a POST without ifNoneExist would create a second copy when resent", where)
        elif method == "PATCH":
            problem("PATCH entries are not delivered (not safe to resend)", where)
        elif method not in ("POST", "PUT", "DELETE", "GET", "HEAD"):
            problem(f"unknown request method {method!r}", where)
    return issues


def prepare(data: bytes, *, receiver_huvudman: str | None = None) -> Prepared:
    """Convert, check and validate one input document as a transfer to ``receiver_huvudman``
    (default: ``adapter.config.receiver_huvudman()``); never raises for a bad document."""
    from adapter import conversion
    from adapter.compliance import has_errors, validate
    from adapter.compliance.context import ValidationContext
    from adapter.config import receiver_huvudman as configured

    context = ValidationContext(receiver_huvudman=configured(receiver_huvudman))

    try:
        kind, payload = read_payload(data)
    except conversion.ConversionError as exc:  # unreadable, or a FHIR Bundle the compliance engine refused on arrival
        text = data.decode("utf-8", errors="replace")
        return Prepared("unknown", None, text, exc.outcome or outcome_of(str(exc), "structure"), str(exc))
    raw = dump(payload)
    issues = idempotency_problems(kind, payload)
    if issues:
        outcome = {"resourceType": "OperationOutcome", "issue": issues}
        return Prepared(kind, payload, raw, outcome, issues[0]["details"]["text"])
    outcome = validate(payload, context=context)
    if has_errors(outcome):
        first = next(i for i in outcome["issue"] if i.get("severity") in ("error", "fatal"))
        where = (first.get("expression") or [""])[0]
        text = (first.get("details") or {}).get("text") or first.get("diagnostics") or "invalid"
        errors = sum(i.get("severity") in ("error", "fatal") for i in outcome["issue"])
        more = f" (and {errors - 1} more)" if errors > 1 else ""
        return Prepared(kind, payload, raw, outcome, conversion.one_line(f"invalid {where}: {text}{more}"))
    return Prepared(kind, payload, raw, outcome)
