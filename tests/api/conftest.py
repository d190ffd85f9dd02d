"""Fixtures for the API tests: a local token issuer with a served JWKS, and API instances on temp databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapter.api import principal as scopes
from adapter.api.settings import ApiSettings, Issuer, Limits
from tests.api.issuer import JwksServer, LocalIssuer

#: Organisations of the fixtures: Haninge kommun (fixtures/decision/hemtjanst-timmar.json) and others.
HANINGE = "2120000134"
HANINGE_HSA = "SE2120000134-SN01"
SODERTALJE = "2321000164"  # fixtures/decision/dagverksamhet-skyddad.json (skyddad folkbokföring)
UTFORARE = "SE5566778899-HTJ1"  # Omsorgshuset Södertörn AB, the utförare in hemtjanst-timmar.json
REGION = "SE2321000016-SOS63"
STRANGER = "SE5560000000-X1"
ALL = list(scopes.ALL_SCOPES)
BASIC = [scopes.SUBMIT, scopes.READ, scopes.REPLAY]
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="session")
def issuer() -> LocalIssuer:
    """The test issuer (RSA and EC keys generated for this session)."""
    return LocalIssuer()


@pytest.fixture(scope="session")
def jwks_server(issuer: LocalIssuer) -> Iterator[JwksServer]:
    """The issuer's JWKS served on 127.0.0.1."""
    server = JwksServer(issuer.jwks())
    yield server
    server.stop()


@pytest.fixture
def api_settings(issuer: LocalIssuer, jwks_server: JwksServer) -> ApiSettings:
    """Settings trusting the test issuer (JWKS fetched over HTTP), workers off, generous limits."""
    return ApiSettings(
        audience=issuer.audience,
        issuers=(Issuer(issuer=issuer.issuer, jwks_uri=jwks_server.url, algorithms=("RS256", "ES256")),),
        server="http://127.0.0.1:9/fhir",
        region_organisations=(REGION,),
        limits=Limits(rate_per_second=1000, rate_burst=1000, anonymous_rate_per_second=1000, anonymous_burst=1000),
        workers=False,
    )


@pytest.fixture
def make_client(tmp_path: Path, api_settings: ApiSettings) -> Iterator[Callable[..., Any]]:
    """``make_client(**settings changes)``: a TestClient on a fresh outbox database."""
    from fastapi.testclient import TestClient

    from adapter.api.app import create_app
    from adapter.outbox import Outbox

    opened: list[Any] = []

    def make(**changes: Any) -> Any:
        outbox = Outbox.open(f"sqlite:///{tmp_path / f'api-{len(opened)}.db'}")
        app = create_app(replace(api_settings, **changes), outbox)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        client.outbox = outbox  # type: ignore[attr-defined]
        opened.append((client, outbox))
        return client

    yield make
    for client, outbox in opened:
        client.__exit__(None, None, None)
        outbox.close()


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    """A TestClient with the default test settings."""
    return make_client()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def fixture_bytes(kind: str, name: str) -> bytes:
    """A fixture document."""
    return (FIXTURES / kind / name).read_bytes()


def with_new_id(data: bytes, field: str = "decision_id") -> bytes:
    """A canonical JSON fixture with a fresh business id (the stand-in servers are shared)."""
    import json
    import uuid

    doc = json.loads(data)
    doc[field] = f"T-{uuid.uuid4().hex[:10].upper()}"
    return json.dumps(doc, ensure_ascii=False).encode()
