"""Auth end to end: SMART Backend Services (signed JWT client assertion, RS384 and ES384, token cache,
401 renewal) against a local token endpoint, and mutual TLS against a local TLS server that requires a
client certificate. Both front the real Medplum server."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from adapter.config import AuthSettings
from adapter.gateway import Gateway, UnsuitableServer
from adapter.gateway.auth import AuthError
from adapter.outbox import DELIVERED, Outbox
from adapter.outbox.worker import Worker
from adapter.standin import RunningServer
from tests.gateway import faultproxy as fp
from tests.gateway.authservers import CertificateAuthority, TokenEndpoint, client_key, server_tls_context
from tests.gateway.conftest import settings
from tests.gateway.payloads import decisions
from tests.gateway.test_crash import carebridge, child_env

pytestmark = pytest.mark.integration

CLIENT_ID = "haninge-kommun-carebridge"


def deliver(base_url: str, auth: AuthSettings, docs: list[bytes], db: str) -> Outbox:
    outbox = Outbox.open(db, settings())
    ids = [outbox.accept(d, base_url).message_id for d in docs]
    with Gateway(base_url, outbox.settings, auth) as gateway:
        gateway.check_server()
        Worker(outbox, gateway, concurrency=3, poll=0.05).run(only=ids)
    return outbox


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_client_assertion_is_checked_and_the_token_cached(medplum_server: RunningServer, alg: str, tag: str,
                                                          tmp_path: Path, sqlite_url: str) -> None:
    key_path, public = client_key(alg, tmp_path)
    endpoint = TokenEndpoint({CLIENT_ID: public})
    try:
        with fp.FaultProxy(medplum_server.base_url, require_bearer=endpoint.valid) as proxy:
            auth = AuthSettings(token_url=endpoint.url, client_id=CLIENT_ID, client_key=str(key_path), key_id="k1",
                                scope="system/*.write")
            outbox = deliver(proxy.base_url, auth, decisions(tag, 6, persons=3), sqlite_url)
        assert {m.status for m in outbox.list()} == {DELIVERED}
        assert endpoint.requests == [{"ok": True, "alg": alg, "kid": "k1", "scope": "system/*.write"}]  # one token
        assert proxy.rejected_auth == 0 and len(proxy.forwarded) >= 6
    finally:
        endpoint.close()


def test_token_is_renewed_before_expiry_and_after_a_401(medplum_server: RunningServer, tag: str, tmp_path: Path,
                                                          sqlite_url: str) -> None:
    key_path, public = client_key("ES384", tmp_path)
    endpoint = TokenEndpoint({CLIENT_ID: public}, expires_in=61)  # renewed 60 s early: lives 1 s here
    docs = decisions(tag, 3, persons=3)
    try:
        with fp.FaultProxy(medplum_server.base_url, require_bearer=endpoint.valid) as proxy:
            auth = AuthSettings(token_url=endpoint.url, client_id=CLIENT_ID, client_key=str(key_path))
            outbox = Outbox.open(sqlite_url, settings())
            with Gateway(proxy.base_url, outbox.settings, auth) as gateway:
                gateway.check_server()
                gateway.deliver("transaction", _bundle(docs[0]), "c1")
                assert gateway.auth.fetches == 1
                time.sleep(1.2)
                gateway.deliver("transaction", _bundle(docs[1]), "c2")
                assert gateway.auth.fetches == 2  # expired: a fresh assertion and token
                gateway.deliver("transaction", _bundle(docs[1]), "c3")
                assert gateway.auth.fetches == 2  # still valid: cached
                endpoint.revoke_all()  # e.g. the authorisation server restarted: the cached token is refused
                gateway.deliver("transaction", _bundle(docs[2]), "c4")
                assert proxy.rejected_auth == 1 and gateway.auth.fetches == 3
        assert all(r["ok"] for r in endpoint.requests)
    finally:
        endpoint.close()


def _bundle(doc: bytes) -> dict:
    from adapter import conversion

    return conversion.bundle_of(conversion.read(doc))


def test_an_unregistered_key_is_refused_and_send_does_not_start(medplum_server: RunningServer, tag: str,
                                                               tmp_path: Path) -> None:
    registered, public = client_key("RS384", tmp_path)
    (tmp_path / "other").mkdir()
    stranger, _ = client_key("RS384", tmp_path / "other")
    endpoint = TokenEndpoint({CLIENT_ID: public})
    try:
        with fp.FaultProxy(medplum_server.base_url, require_bearer=endpoint.valid) as proxy:
            with pytest.raises(AuthError, match="answered 401"):
                Gateway(proxy.base_url, settings(), AuthSettings(token_url=endpoint.url, client_id=CLIENT_ID,
                                                                 client_key=str(stranger))).check_server()
            doc = tmp_path / "d.json"
            doc.write_bytes(decisions(tag, 1, 1)[0])
            run = subprocess.run(carebridge("send", str(doc), "--server", proxy.base_url, "--db", str(tmp_path / "o.db"),
                                            "--client-id", CLIENT_ID, "--client-key", str(stranger),
                                            "--token-url", endpoint.url),
                                 cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
        assert run.returncode == 2
        assert "token endpoint" in run.stderr and "401" in run.stderr
        assert proxy.forwarded == []
        assert [r["ok"] for r in endpoint.requests] == [False, False]
    finally:
        endpoint.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder / "ca")
    other = CertificateAuthority(folder / "other", "someone else's CA")
    return {"ca": ca, "server": ca.issue("region-fhir", server=True), "client": ca.issue("haninge-kommun", server=False),
            "stranger": other.issue("not-a-municipality", server=False), "other_ca": other}


def test_mutual_tls_with_a_configured_client_certificate(medplum_server: RunningServer, pki, tag: str,  # type: ignore[no-untyped-def]
                                                         sqlite_url: str) -> None:
    context = server_tls_context(pki["ca"], pki["server"])
    with fp.FaultProxy(medplum_server.base_url, ssl_context=context) as proxy:
        assert proxy.base_url.startswith("https://127.0.0.1:")
        auth = AuthSettings(tls_cert=str(pki["client"].cert), tls_key=str(pki["client"].key), ca_bundle=str(pki["ca"].path))
        outbox = deliver(proxy.base_url, auth, decisions(tag, 4, persons=2), sqlite_url)
    assert {m.status for m in outbox.list()} == {DELIVERED}
    assert set(proxy.client_subjects) == {"haninge-kommun"}
    assert Counter(f.method for f in proxy.forwarded)["POST"] == 4


@pytest.mark.parametrize("who", ["no certificate", "untrusted certificate", "unverified server"])
def test_mutual_tls_refuses_what_it_should(medplum_server: RunningServer, pki, who: str) -> None:  # type: ignore[no-untyped-def]
    context = server_tls_context(pki["ca"], pki["server"])
    ca = str(pki["ca"].path)
    auth = {
        "no certificate": AuthSettings(ca_bundle=ca),
        "untrusted certificate": AuthSettings(tls_cert=str(pki["stranger"].cert), tls_key=str(pki["stranger"].key),
                                              ca_bundle=ca),
        "unverified server": AuthSettings(tls_cert=str(pki["client"].cert), tls_key=str(pki["client"].key),
                                          ca_bundle=str(pki["other_ca"].path)),
    }[who]
    with fp.FaultProxy(medplum_server.base_url, ssl_context=context) as proxy:
        with Gateway(proxy.base_url, replace(settings(), connect_timeout=3.0), auth) as gateway:
            with pytest.raises(UnsuitableServer, match="unreachable"):
                gateway.check_server()
        assert proxy.forwarded == []
