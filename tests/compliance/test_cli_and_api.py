"""`carebridge validate` (one JSON line per file, exit 0/1/2) and the Python API (fail closed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.cli import main
from adapter.compliance import ComplianceError, has_errors, require_valid, validate

GOOD = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Berg"}]}
BAD = {"resourceType": "Patient", "id": "p 1", "gender": "f"}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, content in (("good.json", json.dumps(GOOD)), ("bad.json", json.dumps(BAD)), ("broken.json", "{not json"), ("bom.json", "\ufeff" + json.dumps(GOOD))):
        (tmp_path / name).write_text(content, "utf-8")
        out[name] = str(tmp_path / name)
    out["missing.json"] = str(tmp_path / "missing.json")
    return out


def run(capsys, *argv: str) -> tuple[int, list[dict], str]:
    code = main(["validate", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_all_valid_exits_0(capsys, files):
    code, lines, err = run(capsys, files["good.json"], files["bom.json"])
    assert code == 0 and err == ""
    assert [(l["file"], l["valid"]) for l in lines] == [(files["good.json"], True), (files["bom.json"], True)]
    assert lines[0]["outcome"]["resourceType"] == "OperationOutcome"


def test_any_invalid_exits_1(capsys, files):
    code, lines, _ = run(capsys, files["good.json"], files["bad.json"])
    assert code == 1
    assert [l["valid"] for l in lines] == [True, False]
    exprs = {e for i in lines[1]["outcome"]["issue"] if i["severity"] == "error" for e in i["expression"]}
    assert {"Patient.id", "Patient.gender"} <= exprs


@pytest.mark.parametrize("name", ["broken.json", "missing.json"])
def test_unreadable_exits_2_with_a_line_and_a_stderr_message(capsys, files, name):
    code, lines, err = run(capsys, files["bad.json"], files[name])
    assert code == 2
    assert [l["file"] for l in lines] == [files["bad.json"], files[name]]
    assert lines[1]["valid"] is False and lines[1]["outcome"]["issue"][0]["severity"] == "fatal"
    assert len(err.strip().splitlines()) == 1 and name in err


def test_profile_option(capsys, files):
    code, lines, _ = run(capsys, "--profile", "http://carebridge.se/fhir/StructureDefinition/cb-goal", files["good.json"])
    assert code == 1 and not lines[0]["valid"]


def test_cli_start_does_not_load_the_engine():
    probe = "import sys; from adapter import cli; cli.build_parser(); print(any(m.startswith('adapter.compliance') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_require_valid_fails_closed():
    assert not has_errors(require_valid(GOOD))
    with pytest.raises(ComplianceError) as err:
        require_valid(BAD)
    assert has_errors(err.value.outcome)
    assert "Patient.id" in str(err.value)


def test_outcome_shape():
    outcome = validate(BAD)
    assert outcome["resourceType"] == "OperationOutcome"
    for i in outcome["issue"]:
        assert i["severity"] in ("fatal", "error", "warning", "information")
        assert isinstance(i["code"], str) and i["details"]["text"]
        assert all(isinstance(e, str) for e in i.get("expression", ()))
    assert validate(GOOD)["issue"][0]["severity"] == "information"


def test_not_an_object_is_fatal():
    assert validate([GOOD])["issue"][0]["severity"] == "fatal"
