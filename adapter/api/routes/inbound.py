"""Inbound from the region: POST /fhir/subscription-notification (rest-hook) and POST /fhir/$process-message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from adapter.api import principal as scopes
from adapter.api.access import note
from adapter.api.auth import caller
from adapter.api.authorisation import forbid, require_scope
from adapter.api.deps import body_bytes, require_json_object, services
from adapter.api.errors import ApiError
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS, fhir, outcome
from adapter.api.schemas import NotificationResult
from adapter.api.services import Services

router = APIRouter(tags=["inbound"])


def require_region(request: Request, principal: Principal, svc: Services) -> None:
    """Refuse callers that do not act for a configured regional organisation."""
    require_scope(request, principal, scopes.INBOUND)
    if principal.organisation not in svc.settings.region_organisations:
        raise forbid(request, f"organisation {principal.organisation} is not a configured regional sender")


@router.post(
    "/fhir/subscription-notification",
    summary="Subscription rest-hook: id-only notifications of regional changes (Task status, plans, follow-ups)",
    response_model=NotificationResult,
    responses={**ERRORS, 200: {"description": "taken in; per change what was queued for the municipality"},
               502: outcome("the regional server could not be read; send again")},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/fhir+json": {"schema": {"type": "object"}},
        "application/json": {"schema": {"type": "object"}},
    }}},
)
def subscription_notification(request: Request, data: bytes = Depends(body_bytes),
                              principal: Principal = Depends(caller), svc: Services = Depends(services)) -> Any:
    """Read each changed resource from the regional server and queue its municipal document (once per version)."""
    from adapter.api.inbound import take_in
    from adapter.inbound.notification import NotificationError, parse

    access = note(request)
    access.interaction, access.what = "operation", "subscription notification"
    require_region(request, principal, svc)
    try:
        notification = parse(require_json_object(data))
    except NotificationError as exc:
        raise ApiError(400, f"not a subscription notification: {exc}", code="structure") from None
    result = take_in(svc, notification, principal)
    access.person_keys = sorted(set(result.pop("_person_keys")))
    status = result.pop("_status")
    return JSONResponse(NotificationResult.model_validate(result).model_dump(mode="json"), status_code=status)


@router.post(
    "/fhir/$process-message",
    summary="Receive a FHIR message (discharge events): validated, deduplicated, acknowledged",
    responses={**ERRORS, 200: fhir("the acknowledgement message (Bundle type message)")},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/fhir+json": {"schema": {"type": "object"}},
        "application/json": {"schema": {"type": "object"}},
    }}},
)
def process_message(request: Request, data: bytes = Depends(body_bytes), principal: Principal = Depends(caller),
                    svc: Services = Depends(services)) -> Response:
    """Hand a message Bundle to the discharge-event receiver and answer its acknowledgement."""
    from adapter.api.inbound import process_message as receive

    access = note(request)
    access.interaction, access.what = "operation", "$process-message"
    require_region(request, principal, svc)
    return receive(request, svc, principal, require_json_object(data))
