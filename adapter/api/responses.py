"""OpenAPI descriptions of the API's answers: every error is an OperationOutcome as application/fhir+json."""

from __future__ import annotations

from typing import Any

from adapter.api.schemas import OperationOutcome

FHIR_JSON = "application/fhir+json"


def outcome(description: str) -> dict[str, Any]:
    """An answer carrying an OperationOutcome."""
    return {"model": OperationOutcome, "description": description,
            "content": {FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}}


def fhir(description: str) -> dict[str, Any]:
    """An answer carrying some FHIR resource as application/fhir+json."""
    return {"description": description, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}


#: What any authenticated endpoint may answer besides its own results.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: outcome("malformed request"),
    401: outcome("no valid credentials"),
    403: outcome("not allowed for the caller's organisation or scopes"),
    404: outcome("no such document"),
    413: outcome("body too large"),
    429: outcome("rate limit; see Retry-After"),
    503: outcome("not answered in time, or not configured"),
}
