"""Auth to regional servers: SMART Backend Services (OAuth2 client credentials with a signed JWT
client assertion, RS384 or ES384) with a token cache, and mutual TLS with a client certificate.

    auth = SmartBackendAuth(token_url, client_id, key_pem, key_id="k1")
    httpx.Client(auth=auth, verify=tls_context(cert, key, ca))
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx

from adapter.config import AuthSettings

#: The client assertion type of RFC 7523 that SMART Backend Services uses.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds before a token's expiry at which it is renewed.
RENEW_MARGIN = 60.0
#: Lifetime of a client assertion (SMART: at most five minutes).
ASSERTION_LIFETIME = 300


class AuthError(RuntimeError):
    """The token endpoint refused the client, or the credentials could not be loaded."""


def algorithm_for(key: Any) -> str:
    """RS384 for an RSA key, ES384 for an EC key (the two SMART Backend Services requires servers to accept)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384"
    raise AuthError(f"unsupported client key type {type(key).__name__}: use RSA (RS384) or EC P-384 (ES384)")


def load_private_key(pem: bytes | str) -> Any:
    """A private key from PEM text or a PEM file path."""
    from cryptography.hazmat.primitives import serialization

    data = pem.encode() if isinstance(pem, str) and pem.lstrip().startswith("-----") else pem
    if isinstance(data, str):
        data = Path(data).read_bytes()
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuthError(f"cannot load the client key: {exc}") from None


def client_assertion(client_id: str, token_url: str, key: Any, key_id: str | None = None,
                     now: float | None = None) -> str:
    """A signed JWT client assertion: iss = sub = client id, aud = token URL, exp in five minutes, unique jti."""
    import jwt

    issued = int(now if now is not None else time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": issued,
              "exp": issued + ASSERTION_LIFETIME, "jti": uuid.uuid4().hex}
    headers = {"typ": "JWT", **({"kid": key_id} if key_id else {})}
    return jwt.encode(claims, key, algorithm=algorithm_for(key), headers=headers)


class SmartBackendAuth(httpx.Auth):
    """Bearer tokens from a SMART Backend Services token endpoint, cached until shortly before expiry."""

    requires_response_body = False

    def __init__(self, token_url: str, client_id: str, key: Any, *, key_id: str | None = None,
                 scope: str = "system/*.read system/*.write", token_client: httpx.Client | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.key = load_private_key(key) if isinstance(key, (str, bytes)) else key
        self.key_id = key_id
        self.scope = scope
        self._client = token_client or httpx.Client(timeout=30.0)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0  # monotonic
        self.fetches = 0  # tokens fetched (for tests and metrics)

    def token(self) -> str:
        """A valid access token (fetched only when none is cached or it is about to expire)."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires - RENEW_MARGIN:
                self._token, lifetime = self._fetch()
                self._expires = time.monotonic() + lifetime
            return self._token

    def invalidate(self) -> None:
        """Drop the cached token (the server answered 401)."""
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(self.client_id, self.token_url, self.key, self.key_id),
        }
        try:
            response = self._client.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthError(f"token endpoint {self.token_url} unreachable: {exc}") from None
        if response.status_code != 200:
            raise AuthError(f"token endpoint {self.token_url} answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        if body.get("token_type", "").lower() != "bearer" or not body.get("access_token"):
            raise AuthError(f"token endpoint {self.token_url} gave no bearer token")
        self.fetches += 1
        return str(body["access_token"]), float(body.get("expires_in", 300))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: one fresh token, one more try
            self.invalidate()
            request.headers["Authorization"] = f"Bearer {self.token()}"
            yield request


def discover_token_url(base_url: str, client: httpx.Client) -> str:
    """The token endpoint from ``{base}/.well-known/smart-configuration``."""
    response = client.get(f"{base_url.rstrip('/')}/.well-known/smart-configuration")
    if response.status_code != 200 or "token_endpoint" not in response.json():
        raise AuthError(f"{base_url} publishes no SMART configuration with a token_endpoint: "
                        "configure the token URL (--token-url or CAREBRIDGE_TOKEN_URL)")
    return str(response.json()["token_endpoint"])


def tls_context(cert: str | None = None, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """A client TLS context: verifies the server (system CAs or ``ca``) and presents ``cert`` when given."""
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if cert:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise AuthError(f"cannot load the client certificate {cert}: {exc}") from None
    return context


def build(settings: AuthSettings, base_url: str) -> tuple[httpx.Auth | None, ssl.SSLContext | bool]:
    """The httpx auth and TLS ``verify`` for these settings (None / default verification when unset)."""
    verify: ssl.SSLContext | bool = True
    if settings.tls_cert or settings.ca_bundle:
        verify = tls_context(settings.tls_cert, settings.tls_key, settings.ca_bundle)
    if not settings.uses_oauth:
        return None, verify
    token_client = httpx.Client(timeout=30.0, verify=verify)
    token_url = settings.token_url or discover_token_url(base_url, token_client)
    auth = SmartBackendAuth(token_url, settings.client_id or "", settings.client_key or "",
                            key_id=settings.key_id, scope=settings.scope, token_client=token_client)
    return auth, verify
