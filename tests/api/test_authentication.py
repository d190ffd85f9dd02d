"""Authentication: tokens from the local test issuer (valid, expired, wrong audience, wrong key, alg none, ...)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from adapter.api.settings import Issuer
from adapter.outbox.schema import audit_events
from tests.api.conftest import ALL, HANINGE, bearer
from tests.api.issuer import LocalIssuer, unsigned

#: One request per authenticated endpoint (method, path, body).
PROTECTED_ENDPOINTS = [
    ("GET", "/documents/1", None),
    ("POST", "/documents/decision", b"{}"),
    ("POST", "/fhir/$validate", b"{}"),
    ("POST", "/fhir/$process-message", b"{}"),
    ("POST", "/fhir/subscription-notification", b"{}"),
    ("GET", "/dead-letters", None),
    ("POST", "/dead-letters/1/replay", None),
    ("GET", "/audit/AuditEvent?person=193802142384", None),
    ("POST", "/audit/AuditEvent/_search", b"person=193802142384"),
    ("GET", "/metrics", None),
    ("GET", "/no/such/path", None),
]


def _is_outcome(response: Any, code: str) -> bool:
    body = response.json()
    return body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == code


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED_ENDPOINTS)
def test_every_endpoint_needs_credentials(client: Any, method: str, path: str, body: bytes | None) -> None:
    response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert _is_outcome(response, "login")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"])
def test_health_and_docs_are_open(client: Any, path: str) -> None:
    assert client.get(path).status_code == 200


def test_valid_rsa_and_ec_tokens(client: Any, issuer: LocalIssuer) -> None:
    for alg in ("RS256", "ES256"):
        response = client.get("/dead-letters", headers=bearer(issuer.token(HANINGE, ALL, alg=alg)))
        assert response.status_code == 200, response.text


def _refused(client: Any, token: str) -> str:
    response = client.get("/dead-letters", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert _is_outcome(response, "login")
    return response.json()["issue"][0]["details"]["text"]


def test_expired_token(client: Any, issuer: LocalIssuer) -> None:
    now = int(time.time())
    assert "expired" in _refused(client, issuer.token(HANINGE, ALL, iat=now - 3600, nbf=now - 3600, exp=now - 120))


def test_expiry_within_leeway_is_accepted(client: Any, issuer: LocalIssuer) -> None:
    token = issuer.token(HANINGE, ALL, exp=int(time.time()) - 5)
    assert client.get("/dead-letters", headers=bearer(token)).status_code == 200


def test_token_without_expiry(client: Any, issuer: LocalIssuer) -> None:
    claims = issuer.claims(HANINGE, ALL)
    del claims["exp"]
    token = jwt.encode(claims, issuer.rsa_key, algorithm="RS256", headers={"kid": issuer.rsa_kid})
    assert "exp" in _refused(client, token)


def test_token_not_yet_valid(client: Any, issuer: LocalIssuer) -> None:
    assert "not yet valid" in _refused(client, issuer.token(HANINGE, ALL, nbf=int(time.time()) + 600))


def test_wrong_audience(client: Any, issuer: LocalIssuer) -> None:
    assert "audience" in _refused(client, issuer.token(HANINGE, ALL, aud="some-other-service"))


def test_wrong_key_with_the_issuers_kid(client: Any, issuer: LocalIssuer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "signature" in _refused(client, issuer.token(HANINGE, ALL, key=forger))


def test_unknown_key_id(client: Any, issuer: LocalIssuer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "key" in _refused(client, issuer.token(HANINGE, ALL, key=forger, kid="attacker-key"))


def test_unknown_kid_refetches_jwks_at_most_once_per_interval(client: Any, issuer: LocalIssuer, jwks_server: Any) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client.get("/dead-letters", headers=bearer(issuer.token(HANINGE, ALL)))
    before = jwks_server.fetches
    for _ in range(5):
        _refused(client, issuer.token(HANINGE, ALL, key=forger, kid="rotating"))
    assert jwks_server.fetches - before <= 1


def test_alg_none(client: Any, issuer: LocalIssuer) -> None:
    assert "alg none" in _refused(client, unsigned(issuer.claims(HANINGE, ALL)))
    # also with a signature-looking third part and the issuer's kid
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": issuer.rsa_kid}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(issuer.claims(HANINGE, ALL)).encode()).rstrip(b"=")
    _refused(client, f"{header.decode()}.{body.decode()}.c2lnbmF0dXJl")


def test_hmac_with_the_public_key_as_secret(client: Any, issuer: LocalIssuer) -> None:
    """The classic key-confusion attack: HS256 'signed' with the published RSA public key."""
    from cryptography.hazmat.primitives import serialization

    public_pem = issuer.rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    segments = [base64.urlsafe_b64encode(json.dumps(v).encode()).rstrip(b"=")
                for v in ({"alg": "HS256", "typ": "JWT", "kid": issuer.rsa_kid}, issuer.claims(HANINGE, ALL))]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    assert "algorithm" in _refused(client, (signing_input + b"." + signature).decode())


def test_algorithm_not_matching_the_key(client: Any, issuer: LocalIssuer) -> None:
    token = issuer.token(HANINGE, ALL, alg="ES256", key=issuer.ec_key, kid=issuer.rsa_kid)
    _refused(client, token)


def test_untrusted_issuer(client: Any) -> None:
    stranger = LocalIssuer(issuer="https://evil.example/realms/care")
    assert "issuer" in _refused(client, stranger.token(HANINGE, ALL))


def test_token_must_name_exactly_one_valid_organisation(client: Any, issuer: LocalIssuer) -> None:
    assert "organisation" in _refused(client, issuer.token(None, ALL))
    assert "exactly one" in _refused(client, issuer.token(None, ALL, hsa_id=[HANINGE, "SE2321000016-SOS63"]))
    assert "organisationsnummer" in _refused(client, issuer.token("2120000135", ALL))  # bad check digit
    _refused(client, issuer.token("Haninge", ALL))


def test_malformed_authorization_headers(client: Any, issuer: LocalIssuer) -> None:
    token = issuer.token(HANINGE, ALL)
    for header in (f"Basic {token}", "Bearer", "Bearer not.a.jwt", "Bearer " + "a" * 20_000, token):
        response = client.get("/dead-letters", headers={"Authorization": header})
        assert response.status_code == 401, header[:30]


def test_inline_jwks_configuration(make_client: Any, issuer: LocalIssuer) -> None:
    client = make_client(issuers=(Issuer(issuer=issuer.issuer, jwks=issuer.jwks()),))
    assert client.get("/dead-letters", headers=bearer(issuer.token(HANINGE, ALL))).status_code == 200
    assert client.get("/dead-letters", headers=bearer(issuer.token(HANINGE, ALL, aud="x"))).status_code == 401


def test_refusals_are_audited(client: Any, issuer: LocalIssuer) -> None:
    _refused(client, issuer.token(HANINGE, ALL, aud="some-other-service"))
    with client.outbox.engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.resource).where(audit_events.c.outcome == "4")).all()
    events = [json.loads(r[0]) for r in rows]
    assert any("401" in e["outcomeDesc"] and e["agent"][0]["who"]["display"] == "unauthenticated caller"
               for e in events)


def test_rate_limit_per_client(make_client: Any, issuer: LocalIssuer, api_settings: Any) -> None:
    from dataclasses import replace

    client = make_client(limits=replace(api_settings.limits, rate_per_second=0.5, rate_burst=3))
    headers = bearer(issuer.token(HANINGE, ALL))
    codes = [client.get("/dead-letters", headers=headers).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    limited = client.get("/dead-letters", headers=headers)
    assert int(limited.headers["Retry-After"]) >= 1
    # another client is not affected
    other = bearer(issuer.token("SE2321000016-SOS63", ALL))
    assert client.get("/dead-letters", headers=other).status_code == 200


def test_failing_addresses_are_throttled_before_verification(make_client: Any, issuer: LocalIssuer,
                                                             api_settings: Any) -> None:
    from dataclasses import replace

    client = make_client(limits=replace(api_settings.limits, anonymous_rate_per_second=0.1, anonymous_burst=2))
    bad = bearer(issuer.token(HANINGE, ALL, aud="x"))
    codes = [client.get("/dead-letters", headers=bad).status_code for _ in range(4)]
    assert codes[:2] == [401, 401]
    assert set(codes[2:]) == {429}
