"""Liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from adapter.api import principal as scopes
from adapter.api.auth import caller
from adapter.api.authorisation import require_scope
from adapter.api.deps import services
from adapter.api.principal import Principal
from adapter.api.responses import ERRORS
from adapter.api.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", responses={200: {"description": "alive"}})
def healthz() -> dict[str, str]:
    """Always 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable, delivery workers running",
            responses={200: {"description": "ready"}, 503: {"description": "not ready"}})
def readyz(svc: Services = Depends(services)) -> Any:
    """200 when the outbox database answers and every delivery worker runs; 503 otherwise."""
    from sqlalchemy import text

    checks: dict[str, str] = {}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["workers"] = "ok" if svc.workers_alive() else "not delivering"
    for destination, state in svc.destinations.items():
        checks[f"destination {destination}"] = state
    ready = checks["database"] == "ok" and checks["workers"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics (API, outbox, gateway)",
            responses={**ERRORS, 200: {"description": "Prometheus text format", "content": {"text/plain": {}}}})
def metrics(request: Request, principal: Principal = Depends(caller)) -> Response:
    """Every carebridge metric in Prometheus text format (scope metrics.read)."""
    from adapter.api.metrics import render

    require_scope(request, principal, scopes.METRICS)
    body, content_type = render()
    return Response(body, media_type=content_type)
