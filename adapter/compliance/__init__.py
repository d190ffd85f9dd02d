"""The compliance engine: `validate(resource, profile=None) -> OperationOutcome`.

Three layers, each a module: base FHIR R4 (`base`), the project's profiles (`profiles`) and
Swedish rules (`swedish`). Rules are compiled once per process and cached. Heavy parts are
imported on first use so `import adapter.compliance` stays cheap.
"""

from __future__ import annotations

from typing import Any

from adapter.compliance.outcome import has_errors

__all__ = ["validate", "has_errors", "require_valid", "ComplianceError", "ValidationContext"]


class ComplianceError(ValueError):
    """A payload failed validation; `.outcome` is the OperationOutcome explaining why."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome
        errors = [i for i in outcome.get("issue", ()) if i.get("severity") in ("error", "fatal")]
        first = errors[0] if errors else {}
        where = ", ".join(first.get("expression", ()))
        text = (first.get("details") or {}).get("text", "")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"payload is not compliant: {where}: {text}{more}")


def validate(resource: Any, profile: str | None = None, *, context: Any = None) -> dict[str, Any]:
    """Validate a FHIR R4 resource (any type, Bundles included); returns an OperationOutcome dict."""
    global _engine_validate
    if _engine_validate is None:  # the engine is imported on first use
        from adapter.compliance.engine import validate as engine_validate

        _engine_validate = engine_validate
    return _engine_validate(resource, profile, context=context)


_engine_validate: Any = None


def require_valid(resource: Any, profile: str | None = None, *, context: Any = None) -> dict[str, Any]:
    """Fail closed: return the OperationOutcome if valid, else raise ComplianceError carrying it."""
    outcome = validate(resource, profile, context=context)
    if has_errors(outcome):
        raise ComplianceError(outcome)
    return outcome


def __getattr__(name: str) -> Any:
    if name == "ValidationContext":
        from adapter.compliance.context import ValidationContext

        return ValidationContext
    raise AttributeError(name)
