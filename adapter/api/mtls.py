"""Mutual TLS for system clients: pass the verified client certificate to the app, map it to an organisation.

uvicorn verifies the client certificate against the configured CA (``ssl_cert_reqs`` and
``ssl_ca_certs``) but does not hand it to the application. ``TlsH11Protocol`` adds it to every
request's ASGI scope as the standard TLS extension (``scope["extensions"]["tls"]
["client_cert_chain"]``, PEM). Only the server sets that key, so a client cannot forge it.
A certificate authenticates only if its subject (and, when pinned, its SHA-256) is configured.
"""

from __future__ import annotations

import ssl
from typing import Any

from adapter.api.principal import Principal
from adapter.api.settings import ApiSettings, CertificateClient

try:  # uvicorn is only needed when serving
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError:  # pragma: no cover
    H11Protocol = object  # type: ignore[misc,assignment]


def _with_certificate(app: Any, pem: str | None) -> Any:
    """An ASGI app that adds the connection's client certificate to each scope."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem] if pem else [], "client_cert_name": None}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapped


class TlsH11Protocol(H11Protocol):  # type: ignore[misc,valid-type]
    """uvicorn's h11 protocol, plus the verified client certificate in the ASGI scope."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        pem = ssl.DER_cert_to_PEM_cert(der) if der else None
        self.app = _with_certificate(self.config.loaded_app, pem)


def client_certificate(scope: dict[str, Any]) -> str | None:
    """The PEM client certificate the TLS layer verified for this request, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0] if chain else None


def _normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


def principal_for_certificate(pem: str, settings: ApiSettings) -> Principal | None:
    """The configured client a certificate belongs to, or None when it is not configured."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(pem.encode())
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    for client in settings.clients:
        if _matches(client, cert.subject, fingerprint):
            return Principal(subject=cert.subject.rfc4514_string(), issuer="mtls", organisation=client.organisation,
                             scopes=frozenset(client.scopes), method="mtls", client_id=client.name)
    return None


def _matches(client: CertificateClient, subject: Any, fingerprint: str) -> bool:
    from cryptography import x509

    try:
        wanted = x509.Name.from_rfc4514_string(client.subject)
    except ValueError:
        return False
    if wanted != subject:
        return False
    return client.sha256 is None or _normalise_fingerprint(client.sha256) == fingerprint


def server_ssl_options(certfile: str, keyfile: str, ca_certs: str | None) -> dict[str, Any]:
    """uvicorn keyword arguments for TLS; with a CA, client certificates are requested and verified."""
    options: dict[str, Any] = {"ssl_certfile": certfile, "ssl_keyfile": keyfile}
    if ca_certs:
        # OPTIONAL: bearer-token clients connect without a certificate; a presented one must verify.
        options.update(ssl_ca_certs=ca_certs, ssl_cert_reqs=ssl.CERT_OPTIONAL, http=TlsH11Protocol)
    return options
