"""Every error the API answers is a FHIR OperationOutcome with the right 4xx (or 5xx) status."""

from __future__ import annotations

import json
from typing import Any

from mappings.identifiers import mask_text

FHIR_JSON = "application/fhir+json"

#: HTTP status -> OperationOutcome issue code used when the raiser gives none.
ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
              406: "not-supported", 408: "timeout", 409: "conflict", 410: "deleted", 413: "too-costly",
              415: "not-supported", 422: "processing", 429: "throttled", 500: "exception", 502: "transient",
              503: "transient", 504: "timeout"}


class ApiError(Exception):
    """An error answered as an OperationOutcome with ``status``."""

    def __init__(self, status: int, text: str, *, code: str | None = None, expression: str | None = None,
                 outcome: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.outcome = outcome or outcome_of(text, code or ISSUE_CODE.get(status, "processing"), expression)
        self.headers = headers or {}


def outcome_of(text: str, code: str = "invalid", expression: str | None = None,
               severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue (personnummer masked)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": mask_text(text)}}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def informational(text: str) -> dict[str, Any]:
    """An OperationOutcome saying all is well."""
    return outcome_of(text, "informational", severity="information")


def body(outcome: dict[str, Any]) -> bytes:
    """The JSON bytes of an OperationOutcome."""
    return json.dumps(outcome, ensure_ascii=False).encode("utf-8")


def response(status: int, outcome: dict[str, Any], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A Starlette response carrying an OperationOutcome."""
    from starlette.responses import Response

    return Response(body(outcome), status_code=status, media_type=FHIR_JSON, headers=headers)


async def send_outcome(send: Any, status: int, outcome: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Answer straight from ASGI middleware (before the app ran) with an OperationOutcome."""
    data = body(outcome)
    raw = [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def install(app: Any) -> None:
    """Register handlers so no error leaves the app as anything but an OperationOutcome."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from adapter.logs import get_logger

    log = get_logger("api")

    async def api_error(_request: Any, exc: ApiError):  # type: ignore[no-untyped-def]
        return response(exc.status, exc.outcome, exc.headers)

    async def http_error(_request: Any, exc: HTTPException):  # type: ignore[no-untyped-def]
        text = exc.detail if isinstance(exc.detail, str) else "request refused"
        return response(exc.status_code, outcome_of(text, ISSUE_CODE.get(exc.status_code, "processing")),
                        dict(exc.headers or {}))

    async def validation_error(_request: Any, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        issues = []
        for err in exc.errors()[:20]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            issues.append({"severity": "error", "code": "invalid",
                           "details": {"text": mask_text(f"{where}: {err.get('msg', 'invalid')}")}})
        return response(400, {"resourceType": "OperationOutcome", "issue": issues or outcome_of("invalid request")["issue"]})

    async def unexpected(_request: Any, exc: Exception):  # type: ignore[no-untyped-def]
        log.error("unexpected error", exc_info=exc)
        return response(500, outcome_of("internal error; the incident is logged", "exception"))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
