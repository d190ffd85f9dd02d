"""The API configuration file: what it accepts and what it refuses at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.api.settings import SettingsError, from_dict, load

GOOD = """
[api]
audience = "carebridge"
server = "http://127.0.0.1:8103/fhir"
region_organisations = ["SE2321000016-A1B2"]

[[issuers]]
issuer = "https://idp.example/realms/care"
jwks_uri = "https://idp.example/realms/care/certs"
algorithms = ["RS256"]

[[clients]]
subject = "CN=sync.region.example,O=Region Stockholm,C=SE"
organisation = "SE2321000016-A1B2"
scopes = ["inbound.write"]

[municipal]
folder = "/tmp/outgoing"
format = "xml"
organisation = "2120000134"

[limits]
max_body_bytes = 1000
"""


def test_toml_configuration(tmp_path: Path) -> None:
    path = tmp_path / "api.toml"
    path.write_text(GOOD)
    settings = load(path)
    assert settings.issuers[0].algorithms == ("RS256",)
    assert settings.clients[0].scopes == ("inbound.write",)
    assert settings.municipal.destination == "folder:/tmp/outgoing"
    assert settings.limits.max_body_bytes == 1000
    assert settings.region_organisations == ("SE2321000016-A1B2",)


def test_empty_configuration_lets_nobody_in() -> None:
    settings = from_dict({})
    assert settings.issuers == () and settings.clients == ()


@pytest.mark.parametrize(("raw", "message"), [
    ({"issuers": [{"issuer": "x", "jwks_uri": "https://x/certs", "algorithms": ["none"]}]}, "not allowed"),
    ({"issuers": [{"issuer": "x", "jwks_uri": "https://x/certs", "algorithms": ["HS256"]}]}, "not allowed"),
    ({"issuers": [{"issuer": "x"}]}, "needs jwks_uri"),
    ({"issuers": [{"issuer": "x", "jwks_uri": "http://idp.example/certs"}]}, "must be https"),
    ({"issuers": [{"jwks_uri": "https://x/certs"}]}, "issuer is required"),
    ({"clients": [{"subject": "CN=x"}]}, "organisation is required"),
    ({"municipal": {"format": "pdf"}}, "json or xml"),
    ({"municipal": {"endpoint": "ftp://x"}}, "must be an http"),
])
def test_refused_configurations(raw: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_dict(raw)
