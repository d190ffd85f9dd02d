"""Mutual TLS for system clients, through a real `carebridge serve` process with a throw-away CA."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes

from adapter.api import principal as scopes
from tests.api.certs import Authority
from tests.api.conftest import ALL, HANINGE, REGION, bearer
from tests.api.issuer import LocalIssuer
from tests.api.serving import serving

pytestmark = pytest.mark.integration


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = Authority(tmp_path / "pki")
    rogue = Authority(tmp_path / "rogue", "rogue CA")
    server = ca.issue("server", "localhost", "carebridge", server=True)
    region = ca.issue("region", "sync.region.example", "Region Stockholm")
    pinned = ca.issue("pinned", "pinned.region.example", "Region Stockholm")
    unregistered = ca.issue("unregistered", "someone.example", "Someone")
    forged = rogue.issue("forged", "sync.region.example", "Region Stockholm")  # same subject, wrong CA
    return {"ca": ca, "server": server, "region": region, "pinned": pinned, "unregistered": unregistered,
            "forged": forged}


def _config(pki: dict[str, Any], issuer: LocalIssuer) -> dict[str, Any]:
    return {
        "api": {"audience": issuer.audience, "region_organisations": [REGION]},
        "issuers": [{"issuer": issuer.issuer, "jwks": issuer.jwks()}],
        "clients": [
            {"subject": pki["region"][2].subject.rfc4514_string(), "organisation": REGION, "name": "region-sync",
             "scopes": [scopes.READ, scopes.INBOUND]},
            {"subject": pki["pinned"][2].subject.rfc4514_string(), "organisation": REGION,
             "sha256": "00" * 32, "scopes": [scopes.READ]},
        ],
    }


def _client(pki: dict[str, Any], which: str | None) -> httpx.Client:
    cert = (str(pki[which][0]), str(pki[which][1])) if which else None
    context = ssl.create_default_context(cafile=str(pki["ca"].cert_path))
    if cert:
        context.load_cert_chain(*cert)
    return httpx.Client(verify=context, timeout=10)


def test_client_certificates(pki: dict[str, Any], issuer: LocalIssuer, tmp_path: Path) -> None:
    server_cert, server_key, _ = pki["server"]
    with serving(tmp_path / "api", _config(pki, issuer), "--no-workers", "--server", "http://127.0.0.1:9/fhir",
                 "--tls-cert", str(server_cert), "--tls-key", str(server_key),
                 "--tls-client-ca", str(pki["ca"].cert_path), scheme="https",
                 verify=str(pki["ca"].cert_path)) as api:
        # a registered certificate authenticates as its organisation, with its scopes
        with _client(pki, "region") as region:
            assert region.get(f"{api}/dead-letters").status_code == 200
            assert region.get(f"{api}/audit/AuditEvent", params={"person": "193802142384"}).status_code == 403
        # no certificate and no token: 401; a bearer token still works without a certificate
        with _client(pki, None) as anonymous:
            assert anonymous.get(f"{api}/dead-letters").status_code == 401
            assert anonymous.get(f"{api}/healthz").status_code == 200
            assert anonymous.get(f"{api}/dead-letters", headers=bearer(issuer.token(HANINGE, ALL))).status_code == 200
        # a certificate from our CA that is not registered, or registered with another pin: 401
        with _client(pki, "unregistered") as unregistered:
            assert unregistered.get(f"{api}/dead-letters").status_code == 401
        with _client(pki, "pinned") as pinned:
            assert pinned.get(f"{api}/dead-letters").status_code == 401
        # a certificate with the registered subject from another CA: the handshake fails
        with _client(pki, "forged") as forged, pytest.raises(httpx.HTTPError):
            forged.get(f"{api}/dead-letters")


def test_pinned_fingerprint(pki: dict[str, Any], issuer: LocalIssuer, tmp_path: Path) -> None:
    config = _config(pki, issuer)
    config["clients"][1]["sha256"] = pki["pinned"][2].fingerprint(hashes.SHA256()).hex(":")
    server_cert, server_key, _ = pki["server"]
    with serving(tmp_path / "api", config, "--no-workers", "--tls-cert", str(server_cert), "--tls-key",
                 str(server_key), "--tls-client-ca", str(pki["ca"].cert_path), scheme="https",
                 verify=str(pki["ca"].cert_path)) as api, _client(pki, "pinned") as pinned:
        assert pinned.get(f"{api}/dead-letters").status_code == 200
