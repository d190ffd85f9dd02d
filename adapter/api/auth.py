"""Authentication for every request outside health and docs: a bearer JWT or a configured client certificate.

``Authenticate`` is ASGI middleware, so a request without valid credentials is answered 401
before routing, body parsing or anything else runs. It also applies the rate limits: per
network address before a token is verified (verification costs CPU), per client after.
Routes get the caller with the ``caller`` dependency.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from adapter.api.access import OPEN_PATHS
from adapter.api.errors import ApiError, outcome_of, send_outcome
from adapter.api.limits import TokenBuckets, refuse_rate
from adapter.api.mtls import client_certificate, principal_for_certificate
from adapter.api.principal import Principal
from adapter.api.settings import ApiSettings
from adapter.api.tokens import AuthenticationError, TokenVerifier

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="carebridge"'}


class Authenticate:
    """Put the authenticated Principal in ``scope["state"]["principal"]``, or answer 401 / 429."""

    def __init__(self, app: Any, settings: ApiSettings, verifier: TokenVerifier | None = None) -> None:
        self.app = app
        self.settings = settings
        self.verifier = verifier or TokenVerifier(settings)
        limits = settings.limits
        self.per_client = TokenBuckets(limits.rate_per_second, limits.rate_burst)
        self.per_address = TokenBuckets(limits.anonymous_rate_per_second, limits.anonymous_burst)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        import anyio

        headers = dict(scope.get("headers") or ())
        authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
        pem = client_certificate(scope)
        if not authorization and not pem:
            await send_outcome(send, 401, outcome_of("credentials required: a bearer token or a client certificate",
                                                     "login"), CHALLENGE)
            return
        address = (scope.get("client") or ("unknown",))[0]
        wait = self.per_address.peek(address)
        if wait:  # this address keeps failing: refuse before spending CPU on another token
            status, outcome, extra = refuse_rate(wait)
            await send_outcome(send, status, outcome, extra)
            return
        try:
            if authorization:
                scheme, _, token = authorization.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
                principal = await anyio.to_thread.run_sync(self.verifier.verify, token.strip())
            else:
                principal = principal_for_certificate(pem, self.settings)  # type: ignore[arg-type]
                if principal is None:
                    raise AuthenticationError("client certificate not registered for any organisation")
        except AuthenticationError as exc:
            wait = self.per_address.take(address)
            if wait:
                status, outcome, extra = refuse_rate(wait)
                await send_outcome(send, status, outcome, extra)
                return
            await send_outcome(send, 401, outcome_of(f"not authenticated: {exc}", "login"), CHALLENGE)
            return
        wait = self.per_client.take(principal.key)
        if wait:
            status, outcome, extra = refuse_rate(wait)
            await send_outcome(send, status, outcome, extra)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def caller(request: Request) -> Principal:
    """The authenticated caller of a request (FastAPI dependency)."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # only reachable if the middleware was not installed
        raise ApiError(401, "not authenticated", code="login", headers=CHALLENGE)
    return principal
