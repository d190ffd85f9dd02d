"""Test-side auth: certificates made with `cryptography`, and a SMART Backend Services token endpoint
that checks the signed client assertion the way a regional authorisation server does."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapter.gateway.auth import ASSERTION_TYPE

# --- certificates -------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass
class Issued:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A throw-away CA that issues server and client certificates into ``folder``."""

    def __init__(self, folder: Path, name: str = "carebridge test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP384R1())
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .sign(self.key, hashes.SHA384()))
        self.path = folder / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP384R1())
        now = dt.datetime.now(dt.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA384())
        issued = Issued(self.folder / f"{cn}.crt", self.folder / f"{cn}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_pem_key(key))
        return issued


def server_tls_context(ca: CertificateAuthority, server: Issued):  # type: ignore[no-untyped-def]
    """A TLS server context that requires a client certificate from ``ca``."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca.path)
    return context


# --- client keys ----------------------------------------------------------------------------


def client_key(kind: str, folder: Path) -> tuple[Path, Any]:
    """A private key file (RSA for RS384, EC P-384 for ES384) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "RS384" \
        else ec.generate_private_key(ec.SECP384R1())
    path = folder / f"client-{kind}.pem"
    path.write_bytes(_pem_key(key))
    return path, key.public_key()


# --- the token endpoint ------------------------------------------------------------------------


@dataclass
class TokenEndpoint:
    """A SMART Backend Services token endpoint on 127.0.0.1 that checks each client assertion."""

    clients: dict[str, Any]  # client id -> registered public key
    expires_in: int = 300
    issued: set[str] = field(default_factory=set)
    seen_jti: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)  # what each request was, and the verdict

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                status, body = endpoint.grant(form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/auth/token"
        self._lock = threading.Lock()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Check the client-credentials request and its signed assertion; issue a token or refuse."""
        def refuse(why: str) -> tuple[int, dict[str, Any]]:
            self.requests.append({"ok": False, "why": why})
            return 401 if why.startswith("invalid_client") else 400, {"error": why.split(":")[0], "error_description": why}

        if form.get("grant_type") != "client_credentials":
            return refuse("unsupported_grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return refuse("invalid_request: client_assertion_type")
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            client_id = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            key = self.clients[client_id]
            claims = jwt.decode(assertion, key, algorithms=["RS384", "ES384"], audience=self.url,
                                options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except KeyError:
            return refuse("invalid_client: unknown client")
        except jwt.PyJWTError as exc:
            return refuse(f"invalid_client: {exc}")
        if claims["sub"] != client_id:
            return refuse("invalid_client: sub differs from iss")
        if claims["exp"] > time.time() + 300:
            return refuse("invalid_client: assertion lives longer than five minutes")
        with self._lock:
            if claims["jti"] in self.seen_jti:
                return refuse("invalid_client: jti replayed")
            self.seen_jti.add(claims["jti"])
            token = secrets.token_urlsafe(24)
            self.issued.add(token)
        self.requests.append({"ok": True, "alg": header["alg"], "kid": header.get("kid"), "scope": form.get("scope")})
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in,
                     "scope": form.get("scope", "")}

    def valid(self, token: str) -> bool:
        """True for a token this endpoint issued and has not revoked."""
        return token in self.issued

    def revoke_all(self) -> None:
        self.issued.clear()
