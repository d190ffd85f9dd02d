"""API settings: trusted token issuers, mutual-TLS clients, the regional server, limits, municipal delivery.

Read from a TOML or JSON file (``--config`` or ``$CAREBRIDGE_API_CONFIG``); see docs/security.md
for every key. Nothing here trusts a caller: an issuer or a client certificate that is not
listed cannot authenticate, and an empty configuration lets nobody in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Signature algorithms accepted by default: asymmetric only (no ``none``, no HMAC key confusion).
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
#: Claims that may carry the caller's organisation (HSA-id or organisationsnummer), first found wins.
DEFAULT_ORGANISATION_CLAIMS = ("organisation", "hsa_id", "organisationsnummer")


class SettingsError(ValueError):
    """A configuration file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Issuer:
    """One trusted OAuth2 token issuer and how to read its tokens."""

    issuer: str
    jwks_uri: str | None = None
    jwks: dict[str, Any] | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    organisation_claims: tuple[str, ...] = DEFAULT_ORGANISATION_CLAIMS
    #: Seconds of clock skew tolerated on exp/nbf/iat.
    leeway: float = 30.0
    #: Seconds a fetched JWKS is trusted before it is fetched again.
    jwks_ttl: float = 300.0


@dataclass(frozen=True)
class CertificateClient:
    """A system client that authenticates with a client certificate (mutual TLS)."""

    subject: str
    organisation: str
    scopes: tuple[str, ...] = ()
    #: Optional pin: SHA-256 of the certificate (hex, colons allowed); when set it must match too.
    sha256: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Limits:
    """Request size, rate and time limits."""

    max_body_bytes: int = 2_000_000
    #: Requests per second per client (token bucket) and the burst allowed.
    rate_per_second: float = 20.0
    rate_burst: int = 100
    #: Unauthenticated requests per second per network address (protects token verification).
    anonymous_rate_per_second: float = 5.0
    anonymous_burst: int = 50
    #: Seconds a request may take before it is answered 503.
    request_timeout: float = 30.0
    #: Seconds to fetch one resource from the regional server or a JWKS.
    fetch_timeout: float = 10.0
    #: Resources fetched for one notification (plans pull in their references).
    max_fetches_per_notification: int = 200


@dataclass(frozen=True)
class MunicipalDelivery:
    """Where regional changes go: a municipal HTTP endpoint or an outgoing folder."""

    endpoint: str | None = None
    folder: str | None = None
    #: ``json`` (canonical JSON) or ``xml`` (municipal XML).
    format: str = "json"
    #: The municipality (HSA-id or organisationsnummer) the destination belongs to: only changes that
    #: name it are delivered there. Unset: every change read from the region is delivered.
    organisation: str | None = None
    #: The destination's huvudman: messages for it (``$process-message``) are validated as a
    #: transfer to it.
    huvudman: str = "kommun"

    @property
    def destination(self) -> str | None:
        """The outbox destination: the endpoint URL, or ``folder:<absolute path>``."""
        if self.endpoint:
            return self.endpoint
        if self.folder:
            return "folder:" + str(Path(self.folder).expanduser().resolve())
        return None


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API needs besides the database."""

    #: The audience every token must carry (unless an issuer overrides it).
    audience: str = "carebridge"
    issuers: tuple[Issuer, ...] = ()
    clients: tuple[CertificateClient, ...] = ()
    #: The regional FHIR server documents are delivered to and notifications are fetched from.
    server: str | None = None
    #: The regional server's huvudman: submissions (and ``$validate``) are validated as a transfer to
    #: it, so a document another huvudman authored needs the person's consent.
    receiver_huvudman: str = field(default_factory=lambda: _huvudman(None, "api.receiver_huvudman"))
    #: Organisations (HSA-id / organisationsnummer) allowed to post notifications and messages for the region.
    region_organisations: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    municipal: MunicipalDelivery = field(default_factory=MunicipalDelivery)
    #: Run the delivery workers (regional gateway, municipal deliverer) inside the API process.
    workers: bool = True

    def issuer(self, iss: str) -> Issuer | None:
        """The configured issuer with this ``iss``, if any."""
        return next((i for i in self.issuers if i.issuer == iss), None)


def _tuple(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SettingsError(f"{key} must be a list of strings")


def _huvudman(value: Any, key: str, default: str | None = None) -> str:
    """A huvudman code (kommun, region, annan); None: ``default``, else the environment's receiver huvudman."""
    from adapter.config import huvudman_codes, receiver_huvudman

    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{key} must be one of {', '.join(huvudman_codes())}")
    try:
        return receiver_huvudman(value or default)
    except ValueError as exc:
        raise SettingsError(f"{key}: {exc}") from None


def _trusted_url(url: str) -> bool:
    """https anywhere, http only to the loopback interface."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def _issuer(raw: dict[str, Any], n: int) -> Issuer:
    where = f"issuers[{n}]"
    if not isinstance(raw.get("issuer"), str):
        raise SettingsError(f"{where}.issuer is required")
    jwks = raw.get("jwks")
    if raw.get("jwks_file"):
        jwks = json.loads(Path(raw["jwks_file"]).read_text())
    if not (raw.get("jwks_uri") or jwks):
        raise SettingsError(f"{where} needs jwks_uri, jwks_file or jwks")
    if raw.get("jwks_uri") and not _trusted_url(str(raw["jwks_uri"])):
        raise SettingsError(f"{where}.jwks_uri must be https (plain http only on the loopback interface)")
    algorithms = _tuple(raw.get("algorithms"), f"{where}.algorithms") or DEFAULT_ALGORITHMS
    bad = [a for a in algorithms if a.lower() == "none" or a.startswith("HS")]
    if bad:
        raise SettingsError(f"{where}.algorithms: {', '.join(bad)} not allowed (asymmetric algorithms only)")
    return Issuer(
        issuer=raw["issuer"], jwks_uri=raw.get("jwks_uri"), jwks=jwks, audience=raw.get("audience"),
        algorithms=algorithms,
        organisation_claims=_tuple(raw.get("organisation_claims"), f"{where}.organisation_claims")
        or DEFAULT_ORGANISATION_CLAIMS,
        leeway=float(raw.get("leeway", 30.0)), jwks_ttl=float(raw.get("jwks_ttl", 300.0)))


def _client(raw: dict[str, Any], n: int) -> CertificateClient:
    where = f"clients[{n}]"
    for key in ("subject", "organisation"):
        if not isinstance(raw.get(key), str):
            raise SettingsError(f"{where}.{key} is required")
    return CertificateClient(subject=raw["subject"], organisation=raw["organisation"],
                             scopes=_tuple(raw.get("scopes"), f"{where}.scopes"),
                             sha256=raw.get("sha256"), name=raw.get("name"))


def _municipal(raw: dict[str, Any]) -> MunicipalDelivery:
    fmt = raw.get("format", "json")
    if fmt not in ("json", "xml"):
        raise SettingsError("municipal.format must be json or xml")
    endpoint = raw.get("endpoint")
    if endpoint and not str(endpoint).startswith(("http://", "https://")):
        raise SettingsError("municipal.endpoint must be an http(s) URL")
    return MunicipalDelivery(endpoint=endpoint, folder=raw.get("folder"), format=fmt,
                             organisation=raw.get("organisation"),
                             huvudman=_huvudman(raw.get("huvudman"), "municipal.huvudman", "kommun"))


def from_dict(raw: dict[str, Any]) -> ApiSettings:
    """Settings from a parsed configuration file."""
    api = raw.get("api", {})
    limits = Limits(**{k: v for k, v in raw.get("limits", {}).items() if k in Limits.__dataclass_fields__})
    municipal = raw.get("municipal", {})
    return ApiSettings(
        audience=api.get("audience", "carebridge"),
        issuers=tuple(_issuer(i, n) for n, i in enumerate(raw.get("issuers", []))),
        clients=tuple(_client(c, n) for n, c in enumerate(raw.get("clients", []))),
        server=api.get("server"),
        receiver_huvudman=_huvudman(api.get("receiver_huvudman"), "api.receiver_huvudman"),
        region_organisations=_tuple(api.get("region_organisations"), "api.region_organisations"),
        limits=limits,
        municipal=_municipal(municipal),
        workers=bool(api.get("workers", True)),
    )


def load(path: str | os.PathLike[str] | None = None) -> ApiSettings:
    """Settings from ``path`` (TOML or JSON), else ``$CAREBRIDGE_API_CONFIG``, else empty (nobody gets in)."""
    path = path or os.environ.get("CAREBRIDGE_API_CONFIG")
    if not path:
        return ApiSettings()
    text = Path(path).read_text(encoding="utf-8")
    if str(path).endswith(".json"):
        return from_dict(json.loads(text))
    import tomllib

    return from_dict(tomllib.loads(text))
