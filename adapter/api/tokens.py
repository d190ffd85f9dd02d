"""OAuth2 bearer tokens: JWTs verified against configured issuers and their JWKS.

A token is accepted only when its ``iss`` is configured, its header names an asymmetric
algorithm the issuer allows (never ``none``, never HMAC), its ``kid`` is a key in that issuer's
JWKS (fetched from ``jwks_uri`` and cached, or configured inline), the signature verifies, it
has not expired, its audience is ours, and it names exactly one organisation.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt

from adapter.api.principal import Principal, organisation_problem
from adapter.api.settings import ApiSettings, Issuer

#: Tokens longer than this are refused unread.
MAX_TOKEN_BYTES = 16_384
#: An unknown kid makes us fetch the issuer's JWKS again at most this often (seconds).
REFETCH_INTERVAL = 30.0


class AuthenticationError(Exception):
    """Credentials that do not authenticate anybody; the message says why (never echoes the token)."""


class JwksCache:
    """The signing keys of each issuer: inline, or fetched from its jwks_uri and kept for jwks_ttl seconds."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}  # issuer -> (fetched at, JWKS)
        self._last_try: dict[str, float] = {}

    def _fetch(self, issuer: Issuer) -> dict[str, Any]:
        import httpx

        if not issuer.jwks_uri or not issuer.jwks_uri.startswith(("https://", "http://")):
            raise AuthenticationError(f"issuer {issuer.issuer} has no usable jwks_uri")
        try:
            response = httpx.get(issuer.jwks_uri, timeout=self.timeout, follow_redirects=False)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthenticationError(f"the signing keys of issuer {issuer.issuer} cannot be fetched") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise AuthenticationError(f"issuer {issuer.issuer} serves no JWKS")
        return jwks

    def keys(self, issuer: Issuer, *, refresh: bool = False) -> dict[str, Any]:
        """The issuer's JWKS; ``refresh`` fetches again (rate-limited) when a kid was not found."""
        if issuer.jwks is not None:
            return issuer.jwks
        now = time.monotonic()
        with self._lock:
            cached = self._sets.get(issuer.issuer)
            if cached is not None:
                fresh = now - cached[0] < issuer.jwks_ttl
                too_soon = now - self._last_try.get(issuer.issuer, float("-inf")) < REFETCH_INTERVAL
                if (fresh and not refresh) or too_soon:
                    return cached[1]
            self._last_try[issuer.issuer] = now
            try:
                jwks = self._fetch(issuer)
            except AuthenticationError:
                if cached is None:
                    raise
                return cached[1]  # keep using the last keys while the issuer is unreachable
            self._sets[issuer.issuer] = (now, jwks)
            return jwks


def _find_key(jwks: dict[str, Any], kid: str | None, alg: str) -> Any | None:
    """The verification key for ``kid`` (or the only key when the token names none), as a PyJWK."""
    candidates = [k for k in jwks.get("keys", ()) if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
    elif len(candidates) != 1:
        return None
    if len(candidates) != 1:
        return None
    jwk = candidates[0]
    if jwk.get("alg") not in (None, alg):
        return None
    try:
        return jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        return None


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()


def _organisation(claims: dict[str, Any], issuer: Issuer) -> str:
    for name in issuer.organisation_claims:
        if name in claims:
            value = claims[name]
            if isinstance(value, list):
                if len(value) != 1:
                    raise AuthenticationError("the token must name exactly one organisation")
                value = value[0]
            problem = organisation_problem(value)
            if problem:
                raise AuthenticationError(f"claim {name}: {problem}")
            return str(value)
    raise AuthenticationError("the token names no organisation (claims: " + ", ".join(issuer.organisation_claims) + ")")


class TokenVerifier:
    """Verifies bearer tokens against the configured issuers."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.cache = JwksCache(settings.limits.fetch_timeout)

    def verify(self, token: str) -> Principal:
        """The caller a token proves, or AuthenticationError."""
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("token too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthenticationError("not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise AuthenticationError("unsigned tokens (alg none) are refused")
        iss = unverified.get("iss")
        issuer = self.settings.issuer(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthenticationError("token from an issuer that is not trusted")
        if alg not in issuer.algorithms:
            raise AuthenticationError(f"algorithm {alg} is not accepted from this issuer")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("malformed kid")
        key = _find_key(self.cache.keys(issuer), kid, alg) or _find_key(self.cache.keys(issuer, refresh=True), kid, alg)
        if key is None:
            raise AuthenticationError("token signed with a key the issuer does not publish")
        audience = issuer.audience or self.settings.audience
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=audience, issuer=issuer.issuer,
                                leeway=issuer.leeway, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token not meant for this service (audience)") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("token not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"token lacks the {exc.claim} claim") from None
        except jwt.InvalidIssuedAtError:
            raise AuthenticationError("token issued in the future") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"token refused: {type(exc).__name__}") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthenticationError("token has no subject")
        client_id = claims.get("client_id") or claims.get("azp")
        return Principal(subject=claims["sub"], issuer=issuer.issuer, organisation=_organisation(claims, issuer),
                         scopes=_scopes(claims), method="jwt",
                         client_id=client_id if isinstance(client_id, str) else None)
