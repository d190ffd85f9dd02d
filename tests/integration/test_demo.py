"""`carebridge demo` (what `make run` runs) succeeds end to end on a fresh stand-in server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_every_fixture_green() -> None:
    fixtures = sorted(ROOT.glob("fixtures/*/*.json"))
    result = subprocess.run([sys.executable, "-m", "adapter.cli", "demo"], capture_output=True, cwd=ROOT, timeout=900)
    out = result.stdout.decode()
    assert result.returncode == 0, out[-3000:] + result.stderr.decode()[-2000:]
    assert f"{len(fixtures)} of {len(fixtures)} fixtures ok" in out
    assert "task(s) paused" in out and "task(s) resumed" in out
    for path in fixtures:
        assert f"{path.parent.name}/{path.name}" in out
