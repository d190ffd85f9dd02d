"""AuditEvents for API access: one per request (per person concerned), stored with the outbox's transfer events.

Routes say what they touched with ``note(request)`` (interaction, person keys, message id, why
access was refused); the ``AccessLog`` middleware stores the AuditEvent (who, which
organisation, which person, what, outcome) when the answer starts, before any of it is sent,
and writes one masked JSON log line. Health, docs and rate-limited requests are logged but not
audited; successful /metrics scrapes are not audited either.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from adapter import audit
from adapter.api.errors import outcome_of, send_outcome
from adapter.api.principal import Principal, organisation_system
from mappings import systems
from mappings.identifiers import mask_text

#: AuditEvent.action per RESTful interaction.
ACTION = {"create": "C", "read": "R", "vread": "R", "search-type": "R", "search-system": "R", "update": "U",
          "delete": "D", "operation": "E"}
#: Paths that are neither authenticated nor audited.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


@dataclass
class AccessNote:
    """What a request touched, filled in by the route for its AuditEvent."""

    interaction: str = "read"
    what: str = ""
    person_keys: list[str] = field(default_factory=list)
    person_label: str | None = None
    message_id: int | None = None
    refusal: str | None = None


def note(request: Any) -> AccessNote:
    """The request's AccessNote (created on first use)."""
    state = request.scope.setdefault("state", {})
    if "access" not in state:
        state["access"] = AccessNote()
    return state["access"]


def outcome_code(status: int) -> str:
    """AuditEvent.outcome for an HTTP status: success, minor failure (4xx) or serious failure (5xx)."""
    if status < 400:
        return audit.SUCCESS
    return audit.MINOR_FAILURE if status < 500 else audit.SERIOUS_FAILURE


def access_event(*, principal: Principal | None, method: str, path: str, status: int, note_: AccessNote,
                 address: str | None, request_id: str, person_key: str | None,
                 recorded: dt.datetime | None = None) -> dict[str, Any]:
    """The AuditEvent for one API request about (at most) one person."""
    caller: dict[str, Any] = {
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153",
                             "display": "Source Role ID"}]},
        "requestor": True,
    }
    if principal is None:
        caller["who"] = {"display": "unauthenticated caller"}
    else:
        system = systems.SID_CLIENT_CERTIFICATE if principal.method == "mtls" else principal.issuer
        caller["who"] = {"identifier": {"system": system, "value": principal.subject[:500]},
                         "display": (principal.client_id or principal.subject)[:200]}
    if address:
        caller["network"] = {"address": address, "type": "2"}
    agents = [caller]
    if principal is not None:
        agents.append({"who": {"identifier": {"system": organisation_system(principal.organisation),
                                              "value": principal.organisation}},
                       "requestor": False, "role": [{"text": "organisation the caller acts for"}]})
    entities: list[dict[str, Any]] = [{
        "what": {"identifier": {"system": systems.SID_API_REQUEST, "value": request_id}},
        "type": {"system": systems.CS_AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"},
        "description": mask_text(f"{method} {path}")[:500],
    }]
    if person_key:
        entities.append(audit.person_entity(person_key, note_.person_label))
    if note_.message_id is not None:
        entities.append({
            "what": {"identifier": {"system": systems.SID_OUTBOX_MESSAGE, "value": str(note_.message_id)}},
            "type": {"system": systems.CS_AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": systems.CS_OBJECT_ROLE, "code": "3", "display": "Report"},
        })
    text = f"{method} {path} -> {status}" + (f": {note_.what}" if note_.what else "")
    if note_.refusal:
        text += f"; refused: {note_.refusal}"
    return {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": systems.CS_AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": systems.CS_RESTFUL_INTERACTION, "code": note_.interaction}],
        "action": ACTION.get(note_.interaction, "E"),
        "recorded": (recorded or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="milliseconds"),
        "outcome": outcome_code(status),
        "outcomeDesc": mask_text(text)[:1000],
        "agent": agents,
        "source": {"observer": {"display": "carebridge api"},
                   "type": [{"system": systems.CS_SECURITY_SOURCE_TYPE, "code": "3", "display": "Web Server"}]},
        "entity": entities,
    }


class AccessLog:
    """Request ids, one masked log line per request, and an AuditEvent for every audited request.

    The AuditEvent is stored when the answer starts, before any of it reaches the caller: if it
    cannot be stored, the caller gets 503 instead of the data (access is never unaudited).
    """

    def __init__(self, app: Any, recorder: Callable[[list[tuple[dict[str, Any], str | None, str | None, int | None, str]]], None],
                 on_done: Callable[[str, str, int, float], None] | None = None) -> None:
        self.app = app
        self.recorder = recorder
        self.on_done = on_done

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from adapter.logs import get_logger

        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        recorded = False
        swallowed = False
        started = time.monotonic()

        async def capturing_send(message: dict[str, Any]) -> None:
            nonlocal status, recorded, swallowed
            if swallowed:
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
                recorded = True
                if not await self._audit(scope, status, request_id):
                    swallowed = True
                    status = 503
                    await send_outcome(send, 503, outcome_of("the access could not be audited; try again later",
                                                             "transient"), {"x-request-id": request_id})
                    return
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, capturing_send)
        finally:
            if not recorded:
                await self._audit(scope, status, request_id)
            elapsed = time.monotonic() - started
            principal: Principal | None = state.get("principal")
            get_logger("api").info("request", extra={
                "method": scope.get("method"), "path": mask_text(scope.get("path", "")), "status": status,
                "ms": round(elapsed * 1000, 1), "request_id": request_id,
                "caller": principal.actor if principal else None})
            if self.on_done:
                self.on_done(scope.get("method", ""), getattr(scope.get("route"), "path", "unmatched"), status, elapsed)

    async def _audit(self, scope: dict[str, Any], status: int, request_id: str) -> bool:
        """Store the request's AuditEvents (if it is audited); False when they could not be stored."""
        import anyio

        from adapter.logs import get_logger

        path = scope.get("path", "")
        if path in OPEN_PATHS or status == 429 or (path == "/metrics" and status < 400):
            return True
        state = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        note_: AccessNote = state.get("access") or AccessNote(interaction=_interaction(scope.get("method", "")))
        address = (scope.get("client") or (None,))[0]
        events = []
        for key in note_.person_keys or [None]:
            event = access_event(principal=principal, method=scope.get("method", ""), path=path, status=status,
                                 note_=note_, address=address, request_id=request_id, person_key=key)
            events.append((event, key, principal.organisation if principal else None, note_.message_id, request_id))
        try:
            await anyio.to_thread.run_sync(self.recorder, events)
            return True
        except Exception as exc:  # noqa: BLE001 - an audit failure must be visible, and must withhold the answer
            get_logger("api").error("audit event not stored", exc_info=exc)
            return False


def _interaction(method: str) -> str:
    return {"GET": "read", "POST": "operation", "PUT": "update", "DELETE": "delete"}.get(method, "operation")


def record_events(engine: Any) -> Callable[[list[tuple[dict[str, Any], str | None, str | None, int | None, str]]], None]:
    """A recorder that stores AuditEvents in the outbox database (one transaction per request)."""

    def store(events: list[tuple[dict[str, Any], str | None, str | None, int | None, str]]) -> None:
        with engine.begin() as conn:
            for event, key, organisation, message_id, request_id in events:
                audit.record(conn, event, action="access", person_key=key, organisation=organisation,
                             message_id=message_id, correlation_id=request_id)

    return store
