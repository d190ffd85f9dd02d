"""FastAPI dependencies: the shared Services and the request body within its limit."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from adapter.api.errors import ApiError
from adapter.api.services import Services


def services(request: Request) -> Services:
    """The app's Services."""
    return request.app.state.services


async def body_bytes(request: Request) -> bytes:
    """The raw request body (the size limit is enforced while it is read)."""
    return await request.body()


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-case ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json_object(data: bytes, what: str = "the body") -> dict[str, Any]:
    """Parse ``data`` as a JSON object, or 400."""
    import json

    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, f"{what} is not valid JSON", code="structure") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"{what} must be a JSON object", code="structure")
    return value
