"""Runs the three layers over one payload and assembles the OperationOutcome."""

from __future__ import annotations

from typing import Any

from adapter.compliance.base import Walker
from adapter.compliance.context import DEFAULT, ValidationContext
from adapter.compliance.outcome import issue, outcome


def validate(resource: Any, profile: str | None = None, *, context: ValidationContext | None = None) -> dict[str, Any]:
    """Validate a payload against base R4, carebridge profiles and Swedish rules."""
    ctx = context or DEFAULT
    if not isinstance(resource, dict):
        return outcome([issue("fatal", "structure", "", "the payload is not a JSON object", "json-shape")])
    root = resource.get("resourceType") if isinstance(resource.get("resourceType"), str) else "Resource"
    walker = Walker(ctx)
    walker.resource(resource, root)
    return outcome(walker.issues)
