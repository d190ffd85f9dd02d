"""POST /documents/{flow} (submit) and GET /documents/{message_id} (status)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from adapter.api import principal as scopes
from adapter.api import store
from adapter.api.access import note
from adapter.api.auth import caller
from adapter.api.authorisation import require_reader, require_scope, require_submitter
from adapter.api.deps import body_bytes, media_type, services
from adapter.api.documents import check_format, dead_letter_of, parties_for, status_of
from adapter.api.errors import ApiError
from adapter.api.parties import Parties, parties_of
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS, outcome
from adapter.api.schemas import DocumentStatus
from adapter.api.services import Services

router = APIRouter(tags=["documents"])


@router.post(
    "/documents/{flow}",
    summary="Submit a document (canonical JSON, municipal XML, RIV XML or FHIR Bundle, by Content-Type)",
    status_code=202,
    response_model=DocumentStatus,
    responses={**ERRORS, 202: {"description": "validated and queued for delivery"},
               415: outcome("Content-Type not accepted or not matching the body"),
               422: {"model": DocumentStatus, "description": "failed validation; kept as a dead letter with its OperationOutcome"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/fhir+json": {"schema": {"type": "object"}},
        "application/xml": {"schema": {"type": "string"}},
    }}},
)
def submit(request: Request, flow: str = Path(description="the document's flow (or RIV-TA contract)"),
           data: bytes = Depends(body_bytes), principal: Principal = Depends(caller),
           svc: Services = Depends(services)) -> Any:
    """Convert, validate and queue a document for the regional server, as the caller's organisation."""
    from adapter.api.documents import flows, prepare_safely, refused_bundle_parties

    access = note(request)
    access.interaction, access.what = "create", f"submit {flow}"
    require_scope(request, principal, scopes.SUBMIT)
    if flow not in flows():
        raise ApiError(404, f"unknown flow {flow!r}; known: {', '.join(flows())}")
    if not svc.settings.server:
        raise ApiError(503, "no regional server is configured; nothing can be queued", code="transient")
    check_format(data, media_type(request), flow)
    prepared = prepare_safely(data, svc.settings.receiver_huvudman)
    parties = parties_of(prepared.payload) if prepared.payload is not None else refused_bundle_parties(data)
    if parties is None:
        raise ApiError(400, prepared.problem or "unreadable document", code="structure", outcome=prepared.outcome)
    access.person_keys = [svc.person_key(p) for p in sorted(parties.persons)]
    require_submitter(request, principal, parties)
    accepted = svc.outbox.enqueue_prepared(prepared, svc.settings.server, source=f"api {principal.actor}"[:500],
                                           actor=principal.actor)
    store.remember_document(svc.engine, accepted.message_id, flow=flow, submitter=principal.organisation,
                            submitted_by=principal.actor, parties=parties, outcome=prepared.outcome)
    access.message_id = accepted.message_id
    return status_response(svc, accepted.message_id, 202 if prepared.ok else 422)


@router.get("/documents/{message_id}", summary="A document's status with its OperationOutcome",
            response_model=DocumentStatus, responses={**ERRORS, 200: {"description": "the status"}})
def status(request: Request, message_id: int = Path(ge=1, le=2**62), principal: Principal = Depends(caller),
           svc: Services = Depends(services)) -> Any:
    """Accepted, validated, queued, delivered or dead-lettered, for a document the caller may read."""
    readable_document(request, principal, svc, message_id, "read", f"status of document {message_id}", scopes.READ)
    return status_response(svc, message_id, 200)


def readable_document(request: Request, principal: Principal, svc: Services, message_id: int,
                      interaction: str, what: str, scope: str) -> tuple[Any, Parties, str | None]:
    """The outbox message `message_id`, its parties and submitter, once the caller holds `scope` and may
    read it (404 if there is none); the access note names the interaction and every person concerned."""
    from adapter.outbox import NotReplayable

    access = note(request)
    access.interaction, access.what, access.message_id = interaction, what, message_id
    require_scope(request, principal, scope)
    try:
        message = svc.outbox.get(message_id)
    except NotReplayable:
        raise ApiError(404, f"no document {message_id}") from None
    access.person_keys = [key for key, _ in message.every_person]  # each person of a Bundle about several
    access.person_label = message.person_label if len(access.person_keys) == 1 else None
    parties, submitter = parties_for(message, store.document(svc.engine, message_id))
    require_reader(request, principal, parties, submitter)
    return message, parties, submitter


def status_response(svc: Services, message_id: int, code: int) -> JSONResponse:
    """The DocumentStatus of a message as a JSON answer with its Location."""
    message = svc.outbox.get(message_id)
    row = store.document(svc.engine, message_id)
    body = status_of(message, row, dead_letter_of(svc, message_id), row.outcome if row else None)
    payload = DocumentStatus.model_validate(body).model_dump(mode="json")
    return JSONResponse(payload, status_code=code, headers={"Location": f"/documents/{message_id}"})
