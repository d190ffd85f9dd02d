"""GET /dead-letters (the caller's) and POST /dead-letters/{message_id}/replay (optionally with an edited document)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from adapter.api import principal as scopes
from adapter.api import store
from adapter.api.access import note
from adapter.api.auth import caller
from adapter.api.authorisation import require_scope, require_submitter
from adapter.api.deps import body_bytes, services
from adapter.api.documents import parties_for, prepare_safely, refused_bundle_parties
from adapter.api.errors import ApiError
from adapter.api.parties import parties_of
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS, outcome
from adapter.api.routes.documents import readable_document, status_response
from adapter.api.schemas import DeadLetters, DocumentStatus
from adapter.api.services import Services

router = APIRouter(tags=["dead letters"])

#: Dead letters read from the database per page asked for (the rest are filtered by access).
SCAN_FACTOR = 5


@router.get("/dead-letters", summary="Dead letters of documents the caller may read", response_model=DeadLetters,
            responses={**ERRORS, 200: {"description": "newest first"}})
def list_dead_letters(request: Request, limit: int = Query(default=50, ge=1, le=500),
                      include_resolved: bool = Query(default=False),
                      principal: Principal = Depends(caller), svc: Services = Depends(services)) -> Any:
    """Undelivered documents (stage, HTTP status, OperationOutcome) the caller's organisation sent or is named in."""
    access = note(request)
    access.interaction, access.what = "search-type", "dead letters"
    require_scope(request, principal, scopes.READ)
    items = []
    for dead in svc.outbox.dead(include_resolved=include_resolved, limit=limit * SCAN_FACTOR):
        message = svc.outbox.get(dead["message_id"])
        parties, submitter = parties_for(message, store.document(svc.engine, message.id))
        if not (parties.involves(principal.organisation) or submitter == principal.organisation):
            continue
        if parties.protected and not principal.has(scopes.PROTECTED):
            continue
        access.person_keys.extend(key for key, _ in message.every_person)
        items.append({
            "dead_letter_id": dead["id"], "message_id": dead["message_id"], "stage": dead["stage"],
            "http_status": dead["http_status"], "error": dead["error"], "outcome": dead["outcome"],
            "destination": dead["destination"], "person": dead["person_label"], "created_at": dead["created_at"],
            "links": {"document": f"/documents/{dead['message_id']}",
                      "replay": f"/dead-letters/{dead['message_id']}/replay"},
        })
        if len(items) >= limit:
            break
    access.person_keys = sorted(set(access.person_keys))
    return JSONResponse(DeadLetters.model_validate({"total": len(items), "items": items}).model_dump(mode="json"))


@router.post(
    "/dead-letters/{message_id}/replay",
    summary="Queue a dead-lettered document again, optionally with an edited document (audited)",
    status_code=202,
    response_model=DocumentStatus,
    responses={**ERRORS, 202: {"description": "queued again"},
               409: outcome("the document is not dead-lettered"),
               422: outcome("the edited document failed validation; nothing changed")},
    openapi_extra={"requestBody": {"required": False, "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/fhir+json": {"schema": {"type": "object"}},
        "application/xml": {"schema": {"type": "string"}},
    }}},
)
def replay(request: Request, message_id: int = Path(ge=1, le=2**62),
           reason: str | None = Query(default=None, max_length=500, description="why, for the audit trail"),
           data: bytes = Depends(body_bytes), principal: Principal = Depends(caller),
           svc: Services = Depends(services)) -> Any:
    """Replay as the organisation that submitted (or sent) the document; an edit must be sent by it too."""
    from adapter.outbox import DEAD, REJECTED, NotReplayable

    message, parties, submitter = readable_document(request, principal, svc, message_id, "update",
                                                    f"replay document {message_id}", scopes.REPLAY)
    if submitter != principal.organisation:
        require_submitter(request, principal, parties)
    if message.status not in (DEAD, REJECTED):
        raise ApiError(409, f"document {message_id} is {message.status}; only dead letters are replayed", code="conflict")
    new_data = data if data.strip() else None
    if new_data is not None:
        if message.destination != svc.settings.server:
            raise ApiError(400, "only documents for the regional server can be replayed with an edited document")
        edited = prepare_safely(new_data, svc.settings.receiver_huvudman)
        edited_parties = parties_of(edited.payload) if edited.payload is not None else refused_bundle_parties(new_data)
        if edited_parties is None:
            raise ApiError(400, edited.problem or "unreadable document", code="structure", outcome=edited.outcome)
        require_submitter(request, principal, edited_parties)
        if not edited.ok:
            raise ApiError(422, f"the edited document failed validation: {edited.problem}", outcome=edited.outcome)
    try:
        accepted = svc.outbox.replay(message_id, actor=principal.actor, new_data=new_data, reason=reason,
                                     receiver_huvudman=svc.settings.receiver_huvudman)
    except NotReplayable as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    if accepted.status == "refused":
        raise ApiError(422, f"the edited document failed validation: {accepted.problem}", outcome=accepted.outcome)
    return status_response(svc, message_id, 202)
