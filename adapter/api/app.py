"""The app factory: routes, the security and limit middleware, error handlers, OpenAPI with fixture examples.

Middleware, outermost first: ``AccessLog`` (request id, masked log line, AuditEvent) ->
``Authenticate`` (401, rate limits) -> ``BodyLimit`` (413) -> ``TimeLimit`` (503) -> routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from adapter.api.services import Services
from adapter.api.settings import ApiSettings
from adapter.config import AuthSettings
from adapter.outbox import Outbox

DESCRIPTION = """\
carebridge between municipal social care and regional health care.

Every endpoint except `/healthz`, `/readyz` and the docs needs a bearer JWT from a configured
issuer or a registered client certificate, and acts for one organisation. Errors are FHIR
OperationOutcomes. See docs/security.md.
"""


def create_app(settings: ApiSettings, outbox: Outbox, *, regional_auth: AuthSettings | None = None,
               start_workers: bool | None = None) -> Any:
    """A FastAPI app on ``outbox``; delivery workers run in its lifespan when ``settings.workers``."""
    from fastapi import FastAPI

    from adapter.api import access, errors, metrics
    from adapter.api.auth import Authenticate
    from adapter.api.limits import BodyLimit, TimeLimit
    from adapter.api.routes import audit_log, dead_letters, documents, health, inbound, validate
    from adapter.outbox import metrics as outbox_metrics

    svc = Services(settings, outbox, regional_auth or AuthSettings())
    run_workers = settings.workers if start_workers is None else start_workers

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if run_workers:
            svc.start_workers()
        try:
            yield
        finally:
            svc.stop_workers()

    app = FastAPI(title="carebridge", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.services = svc
    outbox_metrics.watch(outbox)
    errors.install(app)
    for module in (health, documents, validate, inbound, dead_letters, audit_log):
        app.include_router(module.router)
    limits = settings.limits
    app.add_middleware(TimeLimit, seconds=limits.request_timeout)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(Authenticate, settings=settings)
    app.add_middleware(access.AccessLog, recorder=access.record_events(outbox.engine), on_done=metrics.observe)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: Any) -> dict[str, Any]:
    """The OpenAPI document with the security schemes and request examples from fixtures/."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    from adapter.api import examples
    from adapter.api.access import OPEN_PATHS

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "a JWT from a configured issuer: audience, expiry, organisation claim, scopes"},
        "mutualTLS": {"type": "mutualTLS", "description": "a registered client certificate (OpenAPI 3.1)"},
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path not in OPEN_PATHS:
                operation["security"] = [{"bearer": []}, {"mutualTLS": []}]
    from adapter.api.documents import flows

    for parameter in schema["paths"].get("/documents/{flow}", {}).get("post", {}).get("parameters", []):
        if parameter.get("name") == "flow":
            parameter["schema"]["enum"] = flows()
    examples.inject(schema)
    app.openapi_schema = schema
    return schema
