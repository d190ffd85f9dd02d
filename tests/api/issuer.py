"""A local OAuth2 token issuer for the tests: keys generated here, JWKS served on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.test.carebridge.example/realms/care"
AUDIENCE = "carebridge"


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


@dataclass
class LocalIssuer:
    """Signs tokens with its own RSA and EC keys and publishes them as a JWKS."""

    issuer: str = ISSUER
    audience: str = AUDIENCE
    rsa_key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rsa_kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    ec_kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def jwks(self) -> dict[str, Any]:
        """The public keys."""
        return {"keys": [_jwk(self.rsa_key, self.rsa_kid, "RS256"), _jwk(self.ec_key, self.ec_kid, "ES256")]}

    def claims(self, organisation: str | None, scopes: list[str], **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "aud": self.audience, "sub": f"client-{organisation}",
                                  "client_id": f"system-{organisation}", "iat": now, "nbf": now - 5,
                                  "exp": now + 300, "scope": " ".join(scopes), "jti": uuid.uuid4().hex}
        if organisation is not None:
            claims["organisation"] = organisation
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, organisation: str | None, scopes: list[str], *, alg: str = "RS256", key: Any = None,
              kid: str | None = None, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        """A signed token (RS256 with the issuer's key unless told otherwise)."""
        if key is None:
            key = self.rsa_key if alg.startswith(("RS", "PS")) else self.ec_key
        if kid is None:
            kid = self.rsa_kid if alg.startswith(("RS", "PS")) else self.ec_kid
        return jwt.encode(self.claims(organisation, scopes, **overrides), key, algorithm=alg,
                          headers={"kid": kid, **(headers or {})})


class JwksServer:
    """Serves a JWKS at http://127.0.0.1:PORT/jwks.json from a thread; counts fetches."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                outer.fetches += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def unsigned(claims: dict[str, Any]) -> str:
    """A token with alg none (no signature)."""
    import base64

    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
