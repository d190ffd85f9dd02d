"""A plain install of the repository validates and converts with no network and no repository beside it.

The wheel is built from the working tree (offline: no build isolation), unpacked as pip would
install it, and used from a fresh interpreter that sees only the unpacked wheel and the installed
dependencies (``-S``: no site hooks, so the development checkout's editable install is out of
reach) with every outgoing connection refused.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Data a running carebridge reads from its own package.
PACKAGE_DATA = (
    "adapter/compliance/data/r4-rules.json",
    "adapter/compliance/swedish_rules.json",
    "adapter/compliance/profiles/StructureDefinition-cb-decision-servicerequest.json",
    "mappings/terminology/tables/insats-type.json",
    "mappings/schemas/decision.xsd",
    "adapter/outbox/migrations/env.py",
)

PROGRAM = r'''
import json, socket, sys
from pathlib import Path

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.create_connection = refuse

import adapter, mappings
assert adapter.__file__.startswith(sys.argv[1]), adapter.__file__
from adapter.compliance import validate
from adapter.conversion import convert

bundle = json.loads(convert(Path(sys.argv[2]).read_bytes(), "fhir"))
good = validate(bundle)
assert not [i for i in good["issue"] if i["severity"] in ("error", "fatal")], good
for entry in bundle["entry"]:
    if entry["resource"]["resourceType"] == "Task":
        entry["resource"]["status"] = "not-a-status"
bad = validate(bundle)
assert any(i["code"] == "code-invalid" and "status" in i["expression"][0] for i in bad["issue"]), bad
print("ok")
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's wheel, built from what the Dockerfile copies, unpacked as an install would lay it out."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in ("adapter", "mappings"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = out.glob("carebridge-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_carries_its_data(installed: Path) -> None:
    missing = [name for name in PACKAGE_DATA if not (installed / name).is_file()]
    assert not missing
    assert not (installed / "tests").exists() and not (installed / "fixtures").exists()


def test_the_installed_package_validates_offline(installed: Path, tmp_path: Path) -> None:
    fixture = REPO / "fixtures" / "decision" / "hemtjanst-timmar.json"
    dependencies = sysconfig.get_paths()["purelib"]
    run = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(installed)!r}, {dependencies!r}]\n" + PROGRAM,
         str(installed), str(fixture)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
