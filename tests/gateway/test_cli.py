"""The `send`, `worker` and `outbox` commands as a user runs them, against the real Medplum server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapter.standin import RunningServer
from tests.gateway.payloads import bundles, conditional_keys, decisions, per_key_counts, write
from tests.gateway.test_crash import carebridge, child_env

pytestmark = pytest.mark.integration


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(carebridge(*args), cwd=cwd, env={**child_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=120)


def test_send_delivers_and_exits_zero(medplum_server: RunningServer, tag: str, tmp_path: Path) -> None:
    files = write(decisions(tag, 4, persons=2), tmp_path / "in")
    run = cli("send", *map(str, files), "--server", medplum_server.base_url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("delivered  #") == 4 and "4 of 4 documents delivered" in run.stdout
    assert (tmp_path / "carebridge.db").exists()  # the default outbox: a SQLite file in the current directory
    again = cli("send", *map(str, files), "--server", medplum_server.base_url, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("0 created") == 4  # a resend creates nothing
    assert "\r" not in again.stderr  # no progress bar when stderr is not a terminal


def test_send_reports_rejected_documents_and_replay_with_edit_delivers(medplum_server: RunningServer, tag: str,
                                                                       tmp_path: Path) -> None:
    good, bad = decisions(tag, 2, persons=2)
    broken = json.loads(bad)
    pnr = broken["person"]["personnummer"]
    broken["person"]["personnummer"] = pnr[:-1] + str((int(pnr[-1]) + 1) % 10)  # wrong check digit
    (tmp_path / "good.json").write_bytes(good)
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    db = str(tmp_path / "o.db")
    run = cli("send", "good.json", "bad.json", "--server", medplum_server.base_url, "--db", db, cwd=tmp_path)
    assert run.returncode == 1
    assert "delivered  #1 good.json" in run.stdout and "rejected   #2 bad.json" in run.stdout
    assert broken["person"]["personnummer"] not in run.stdout + run.stderr  # masked
    dead = cli("outbox", "dead", "--db", db, cwd=tmp_path)
    assert "validation" in dead.stdout and "bad.json" in dead.stdout
    (tmp_path / "fixed.json").write_bytes(bad)
    replay = cli("outbox", "replay", "2", "--edit", "fixed.json", "--reason", "rättat personnummer", "--actor", "maria",
                 "--db", db, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    worker = cli("worker", "--server", medplum_server.base_url, "--db", db, "--until-empty", cwd=tmp_path)
    assert worker.returncode == 0 and "delivered 1" in worker.stderr
    listing = cli("outbox", "list", "--db", db, "--json", cwd=tmp_path)
    assert [json.loads(line)["status"] for line in listing.stdout.splitlines()] == ["delivered", "delivered"]
    show = cli("outbox", "show", "2", "--db", db, cwd=tmp_path)
    assert "edit by maria: rättat personnummer" in show.stdout and "outcome 0: delivered" in show.stdout


def test_a_decision_without_consent_is_not_sent_to_a_region_but_is_to_a_kommun(medplum_server: RunningServer,
                                                                                tag: str, tmp_path: Path) -> None:
    doc = json.loads(decisions(tag, 1, persons=1)[0])
    del doc["samtycke"]  # a kommun's decision without the person's consent to share it
    (tmp_path / "d.json").write_text(json.dumps(doc, ensure_ascii=False))
    keys = {k for k in conditional_keys(bundles([json.dumps(doc).encode()])) if tag in k[1]}
    assert len(keys) >= 5
    db = str(tmp_path / "o.db")
    run = cli("send", "d.json", "--server", medplum_server.base_url, "--db", db, cwd=tmp_path)
    assert run.returncode == 1 and "rejected   #1 d.json" in run.stdout and "crosses huvudmän" in run.stdout
    dead = [json.loads(line) for line in cli("outbox", "dead", "--db", db, "--json", cwd=tmp_path).stdout.splitlines()]
    assert [(d["message_id"], d["stage"], d["message_status"]) for d in dead] == [(1, "validation", "rejected")]
    rules = {c["code"] for i in dead[0]["outcome"]["issue"] if i["severity"] == "error"
             for c in i["details"].get("coding", ())}
    assert rules == {"se-consent"}
    assert set(per_key_counts(medplum_server.base_url, keys).values()) == {0}  # nothing reached the server
    to_kommun = cli("send", "d.json", "--server", medplum_server.base_url, "--db", db, "--receiver-huvudman", "kommun",
                    cwd=tmp_path)
    assert to_kommun.returncode == 0, to_kommun.stdout + to_kommun.stderr
    assert "delivered  #2 d.json" in to_kommun.stdout
    assert set(per_key_counts(medplum_server.base_url, keys).values()) == {1}
    bad_env = cli("send", "d.json", "--server", medplum_server.base_url, "--db", db, cwd=tmp_path,
                  env={"CAREBRIDGE_RECEIVER_HUVUDMAN": "landsting"})
    assert bad_env.returncode == 2 and "landsting" in bad_env.stderr


def test_invalid_edit_is_refused(medplum_server: RunningServer, tag: str, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"kind": "decision"}')
    db = str(tmp_path / "o.db")
    assert cli("send", "bad.json", "--server", medplum_server.base_url, "--db", db, cwd=tmp_path).returncode == 1
    replay = cli("outbox", "replay", "1", "--edit", "bad.json", "--db", db, cwd=tmp_path)
    assert replay.returncode == 1 and "not valid, nothing changed" in replay.stderr


def _capability_server(statement: dict) -> ThreadingHTTPServer:
    body = json.dumps(statement).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_send_refuses_an_unsuitable_server_with_a_clear_message(tag: str, tmp_path: Path) -> None:
    stu3 = {"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "rest": [{"mode": "server", "resource": [
        {"type": "Patient", "conditionalCreate": False}], "interaction": [{"code": "batch"}]}]}
    server = _capability_server(stu3)
    try:
        (tmp_path / "d.json").write_bytes(decisions(tag, 1, 1)[0])
        run = cli("send", "d.json", "--server", f"http://127.0.0.1:{server.server_address[1]}/fhir", cwd=tmp_path)
    finally:
        server.shutdown()
    assert run.returncode == 2
    assert "refusing to deliver" in run.stderr and "3.0.2" in run.stderr and "transactions are not supported" in run.stderr
    assert "conditional create not supported for: Patient" in run.stderr
    assert not (tmp_path / "carebridge.db").exists()  # nothing was accepted


def test_no_deliver_then_worker(medplum_server: RunningServer, tag: str, tmp_path: Path) -> None:
    files = write(decisions(tag, 3, persons=3), tmp_path / "in")
    db = str(tmp_path / "o.db")
    run = cli("send", *map(str, files), "--server", medplum_server.base_url, "--db", db, "--no-deliver", cwd=tmp_path)
    assert run.returncode == 0 and "3 of 3 documents queued" in run.stdout
    worker = cli("worker", "--server", medplum_server.base_url, "--db", db, "--until-empty", "--log-level", "info",
                 cwd=tmp_path)
    assert worker.returncode == 0
    logs = [json.loads(line) for line in worker.stderr.splitlines() if line.startswith("{")]
    delivered = [r for r in logs if r["msg"] == "delivered"]
    assert len(delivered) == 3 and all(len(r["correlation_id"]) == 32 and r["message_id"] for r in delivered)
    pnrs = [json.loads(Path(f).read_text())["person"]["personnummer"] for f in files]
    assert not any(p in worker.stderr for p in pnrs)


#: Asks `send --help` and reports which heavy libraries it imported.
_PROBE = """
import sys
import adapter.cli
try:
    adapter.cli.main(["send", "--help"])
except SystemExit:
    pass
print(sorted(m for m in ("sqlalchemy", "httpx", "alembic", "prometheus_client", "tenacity") if m in sys.modules))
"""


def test_help_is_fast_and_lazy() -> None:
    run = subprocess.run(carebridge("--help"), env=child_env(), capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and all(c in run.stdout for c in ("send", "worker", "outbox", "bench"))
    probe = subprocess.run([sys.executable, "-c", _PROBE], env=child_env(), capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip().splitlines()[-1] == "[]"  # the gateway's libraries load only when it runs
