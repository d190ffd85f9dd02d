"""`carebridge convert` as a user runs it: the installed command in a subprocess."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mappings.models.decision import CareDecision

ROOT = Path(__file__).parents[2]
FIXTURES = sorted((ROOT / "fixtures" / "decision").glob("*.json"))
CAREBRIDGE = [sys.executable, "-m", "adapter.cli"]


def carebridge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CAREBRIDGE, *args], capture_output=True, cwd=cwd or ROOT, timeout=60)


def test_json_to_every_format_and_back_is_exact(tmp_path: Path) -> None:
    source = FIXTURES[0]
    original = CareDecision.model_validate_json(source.read_bytes())
    current = source
    for step, target in enumerate(["xml", "fhir", "json", "fhir", "xml", "json"]):
        out = tmp_path / f"{step}.{target}"
        result = carebridge("convert", str(current), "--to", target, "-o", str(out))
        assert result.returncode == 0, result.stderr.decode()
        current = out
    assert CareDecision.model_validate_json(current.read_bytes()) == original


def test_stdout_is_the_default_output() -> None:
    result = carebridge("convert", str(FIXTURES[0]))
    assert result.returncode == 0
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"


def test_batch_mode_writes_one_file_per_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = carebridge("convert", *map(str, FIXTURES), "--to", "xml", "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".xml" for p in FIXTURES)


def test_bad_personnummer_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    raw = json.loads(FIXTURES[0].read_text("utf-8"))
    raw["person"]["personnummer"] = raw["person"]["personnummer"][:-1] + str((int(raw["person"]["personnummer"][-1]) + 1) % 10)
    bad = tmp_path / "bad-pnr.json"
    bad.write_text(json.dumps(raw), "utf-8")
    result = carebridge("convert", str(bad))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "personnummer" in lines[0] and "person.personnummer" in lines[0]
    assert raw["person"]["personnummer"] not in lines[0], "the personnummer itself must not be echoed"
    assert result.stdout == b""


def test_one_bad_file_in_a_batch_does_not_stop_the_others(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", "utf-8")
    out = tmp_path / "out"
    result = carebridge("convert", str(FIXTURES[0]), str(bad), str(FIXTURES[1]), "-o", str(out))
    assert result.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".fhir.json" for p in (FIXTURES[0], FIXTURES[1]))
    assert "broken.json" in result.stderr.decode()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not XML and not valid JSON"),
        (b'{"kind": "horoscope"}', "unknown canonical document kind"),
        (b'{"resourceType": "Patient"}', "Bundle"),
        (b"<html/>", "neither municipal XML nor a RIV-TA"),
    ],
)
def test_unknown_input_is_named(tmp_path: Path, content: bytes, expected: str) -> None:
    f = tmp_path / "input"
    f.write_bytes(content)
    result = carebridge("convert", str(f))
    assert result.returncode == 2
    assert expected in result.stderr.decode()


def test_missing_file() -> None:
    result = carebridge("convert", "no/such/file.json")
    assert result.returncode == 2 and "no/such/file.json" in result.stderr.decode()


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY leak "LEAKED">')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorder():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.hits = []
    yield server.server_address[1]
    server.shutdown()


HOSTILE = {
    "xxe-file": '<!DOCTYPE decision [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<decision xmlns="urn:carebridge:municipal:1"><decision_id>&x;</decision_id></decision>',
    "xxe-http": '<!DOCTYPE decision [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>\n<decision xmlns="urn:carebridge:municipal:1"><decision_id>&x;</decision_id></decision>',
    "external-dtd": '<!DOCTYPE decision SYSTEM "http://127.0.0.1:{port}/evil.dtd">\n<decision xmlns="urn:carebridge:municipal:1"/>',
    "parameter-entity": '<!DOCTYPE decision [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p"> %p;]>\n<decision xmlns="urn:carebridge:municipal:1"/>',
    "bomb": '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>\n<decision xmlns="urn:carebridge:municipal:1"><decision_id>&d;</decision_id></decision>',
    "xinclude": '<decision xmlns="urn:carebridge:municipal:1" xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd" parse="text"/></decision>',
    "riv-xxe": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<GetCareServicesResponse xmlns="urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2">&x;</GetCareServicesResponse>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("target", ["json", "fhir"])
def test_hostile_xml_is_refused_and_nothing_is_resolved(tmp_path: Path, recorder: int, name: str, target: str) -> None:
    f = tmp_path / f"{name}.xml"
    f.write_text('<?xml version="1.0"?>\n' + HOSTILE[name].replace("{port}", str(recorder)), "utf-8")
    out = tmp_path / "out.json"
    result = carebridge("convert", str(f), "--to", target, "-o", str(out))
    assert result.returncode == 2
    assert not out.exists()
    assert _Recorder.hits == [], "the converter fetched something over the network"
    assert b"root:" not in result.stderr and b"LEAKED" not in result.stderr
    assert len(result.stderr.decode().strip().splitlines()) == 1


def test_help_is_fast() -> None:
    import time

    start = time.perf_counter()
    result = carebridge("--help")
    assert result.returncode == 0
    assert time.perf_counter() - start < 5
    modules = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "adapter.cli", "--help"], capture_output=True, cwd=ROOT, timeout=60
    ).stderr.decode()
    for heavy in ("fhir.resources", "fastapi", "sqlalchemy", "lxml", "pydantic"):
        assert f" {heavy}\n" not in modules and f"| {heavy}" not in modules, f"{heavy} imported at CLI start"


def test_invalid_fhir_is_refused_fail_closed_and_its_outcome_kept(tmp_path: Path) -> None:
    bundle = json.loads(carebridge("convert", str(FIXTURES[0])).stdout)
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["gender"] = "bogus"
    src = tmp_path / "bad.fhir.json"
    src.write_text(json.dumps(bundle), "utf-8")
    out = tmp_path / "out.xml"
    result = carebridge("convert", str(src), "--to", "xml", "-o", str(out))
    assert result.returncode == 2 and not out.exists()
    line = result.stderr.decode().strip()
    assert len(line.splitlines()) == 1 and "gender" in line and "not compliant" in line
    kept = json.loads((tmp_path / "bad.fhir.json.outcome.json").read_text("utf-8"))
    assert kept["resourceType"] == "OperationOutcome"
    assert any("gender" in e for i in kept["issue"] for e in i.get("expression", ()))


RIV = ROOT / "fixtures" / "riv"


@pytest.mark.parametrize("plan_type", ["SIP", "SPU", "RP", "GP"])
def test_riv_care_plans_of_every_type_convert(tmp_path: Path, plan_type: str) -> None:
    """A SIP arriving as a RIV document has no structured roles: the structured-SIP rule must not refuse it."""
    source = next(RIV.glob("GetCarePlansResponse-*.xml")).read_text("utf-8")
    import re

    retagged = re.sub(r"typeOfCarePlanEnum>[A-Z]+<", f"typeOfCarePlanEnum>{plan_type}<", source)
    f = tmp_path / "plans.xml"
    f.write_text(retagged, "utf-8")
    out = tmp_path / "plans.riv.xml"
    result = carebridge("convert", str(f), "--to", "riv", "-o", str(out))
    assert result.returncode == 0, result.stderr.decode()
    assert f"typeOfCarePlanEnum>{plan_type}<" in out.read_text("utf-8")


def test_decision_to_riv_and_riv_to_fhir(tmp_path: Path) -> None:
    out = tmp_path / "d.riv.xml"
    assert carebridge("convert", str(FIXTURES[0]), "--to", "riv", "-o", str(out)).returncode == 0
    assert b"GetCareServicesResponse" in out.read_bytes()
    result = carebridge("convert", str(out), "--to", "fhir")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["resourceType"] == "Bundle"


def test_a_flow_without_riv_contract_says_so() -> None:
    source = sorted((ROOT / "fixtures" / "discharge").glob("*.json"))[0]
    result = carebridge("convert", str(source), "--to", "riv")
    assert result.returncode == 2 and "no RIV-TA contract" in result.stderr.decode()
