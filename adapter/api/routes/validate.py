"""POST /fhir/$validate: check a FHIR resource (base R4, carebridge profiles, Swedish rules)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from adapter.api.access import note
from adapter.api.auth import caller
from adapter.api.deps import body_bytes, require_json_object, services
from adapter.api.errors import FHIR_JSON, ApiError, body
from adapter.api.parties import parties_of
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS, outcome
from adapter.api.services import Services

router = APIRouter(tags=["fhir"])


def resource_of(value: dict[str, Any]) -> dict[str, Any]:
    """The resource to validate: the body itself, or the ``resource`` parameter of a Parameters body."""
    if value.get("resourceType") == "Parameters":
        for param in value.get("parameter") or ():
            if isinstance(param, dict) and param.get("name") == "resource" and isinstance(param.get("resource"), dict):
                return param["resource"]
        raise ApiError(400, "a Parameters body needs a 'resource' parameter", expression="Parameters.parameter")
    if not isinstance(value.get("resourceType"), str):
        raise ApiError(400, "the body is not a FHIR resource (no resourceType)", expression="resourceType")
    return value


@router.post(
    "/fhir/$validate",
    summary="Validate a FHIR resource; the answer is its OperationOutcome",
    responses={**ERRORS, 200: outcome("the OperationOutcome (valid or not)")},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/fhir+json": {"schema": {"type": "object"}},
        "application/json": {"schema": {"type": "object"}},
    }}},
)
def validate(request: Request, data: bytes = Depends(body_bytes),
             profile: str | None = Query(default=None, max_length=500, description="a profile URL to validate against"),
             receiver_huvudman: str | None = Query(
                 default=None, pattern="^(kommun|region|annan)$",
                 description="validate as a transfer to this huvudman (default: the regional server's, where "
                             "submitted documents go)"),
             principal: Principal = Depends(caller), svc: Services = Depends(services)) -> Response:
    """Base R4 structure and invariants, the carebridge profiles and the Swedish rules, as one OperationOutcome.

    Validated as a submission is: a transfer to the regional server's huvudman (or
    ``receiver_huvudman``), so a document another huvudman authored needs the person's consent.
    """
    from adapter.compliance import validate as check
    from adapter.compliance.context import ValidationContext
    from adapter.logs import get_logger

    access = note(request)
    access.interaction, access.what = "operation", "$validate"
    resource = resource_of(require_json_object(data))
    try:
        access.person_keys = [svc.person_key(p) for p in sorted(parties_of(resource).persons)]
    except (TypeError, ValueError):
        pass
    try:
        context = ValidationContext(receiver_huvudman=receiver_huvudman or svc.settings.receiver_huvudman)
        outcome = check(resource, profile, context=context)
    except Exception as exc:  # noqa: BLE001 - a validator crash on odd input is a 400, and logged
        get_logger("api").exception("validator failed")
        raise ApiError(400, f"the resource could not be validated ({type(exc).__name__})", code="structure") from None
    return Response(body(outcome), media_type=FHIR_JSON)
