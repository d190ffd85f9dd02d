"""GET /audit/AuditEvent (and POST /audit/AuditEvent/_search): the audit log by person, document or action.

A search by personnummer finds every transfer of, and every API access to, that person's data
(the person is stored as its HMAC person key, never in plain text). POST ``_search`` with a form
body keeps the personnummer out of URLs and proxy logs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from adapter.api import principal as scopes
from adapter.api.access import note
from adapter.api.auth import caller
from adapter.api.authorisation import require_scope
from adapter.api.deps import body_bytes, services
from adapter.api.errors import FHIR_JSON, ApiError, body
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS, fhir
from adapter.api.services import Services

router = APIRouter(tags=["audit"])

ACTIONS = ("transfer", "reject", "replay", "edit", "discard", "access")
SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS, 200: fhir("a FHIR searchset Bundle of AuditEvents, newest first")}


def _search(request: Request, principal: Principal, svc: Services, *, person: str | None, message_id: int | None,
            action: str | None, limit: int) -> Response:
    from adapter import audit
    from mappings.identifiers import mask, personnummer_problem

    access = note(request)
    access.interaction, access.what = "search-type", "audit log"
    require_scope(request, principal, scopes.AUDIT)
    if person is None and message_id is None:
        raise ApiError(400, "search by person (personnummer) or message_id")
    key = None
    if person is not None:
        problem = personnummer_problem(person)
        if problem:
            raise ApiError(400, f"person: {problem}", expression="person")
        key = svc.person_key(person)
        access.person_keys, access.person_label = [key], mask(person)
    if action is not None and action not in ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(ACTIONS)}", expression="action")
    with svc.engine.connect() as conn:
        events = audit.events(conn, person_key=key, message_id=message_id, action=action, limit=limit)
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(events),
              "entry": [{"fullUrl": f"urn:uuid:{e['id']}", "resource": e, "search": {"mode": "match"}} for e in events]}
    return Response(body(bundle), media_type=FHIR_JSON)


@router.get("/audit/AuditEvent", summary="Search the audit log by person, document or action",
            responses=SEARCH_RESPONSES)
def search(request: Request,
           person: str | None = Query(default=None, max_length=12, description="personnummer or samordningsnummer"),
           message_id: int | None = Query(default=None, ge=1, le=2**62, description="an outbox message (document) id"),
           action: str | None = Query(default=None, max_length=20, description="transfer, reject, replay, edit, discard or access"),
           limit: int = Query(default=100, ge=1, le=1000),
           principal: Principal = Depends(caller), svc: Services = Depends(services)) -> Response:
    """AuditEvents, newest first (scope audit.read); the search itself is audited."""
    return _search(request, principal, svc, person=person, message_id=message_id, action=action, limit=limit)


@router.post("/audit/AuditEvent/_search", summary="The same search with a form body (keeps personnummer out of URLs)",
             responses=SEARCH_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "properties": {
                     "person": {"type": "string"}, "message_id": {"type": "integer"},
                     "action": {"type": "string"}, "limit": {"type": "integer"}}}}}}})
def search_post(request: Request, data: bytes = Depends(body_bytes), principal: Principal = Depends(caller),
                svc: Services = Depends(services)) -> Response:
    """AuditEvents by form parameters person, message_id, action, limit."""
    try:
        form = {k: v[-1] for k, v in parse_qs(data.decode("utf-8"), strict_parsing=False).items()}
    except UnicodeDecodeError:
        raise ApiError(400, "the form body is not UTF-8") from None
    try:
        message_id = int(form["message_id"]) if form.get("message_id") else None
        limit = int(form.get("limit") or 100)
    except ValueError:
        raise ApiError(400, "message_id and limit must be integers") from None
    if not 1 <= limit <= 1000 or (message_id is not None and not 1 <= message_id <= 2**62):
        raise ApiError(400, "limit must be 1..1000 and message_id positive")
    return _search(request, principal, svc, person=form.get("person"), message_id=message_id,
                   action=form.get("action"), limit=limit)
