"""The negative corpus: deliberately broken payloads, each with the exact issue(s) expected.

Every file of `negative/` holds `title`, `layer` (base / profiles / swedish), the `resource`,
optionally `profile` and `context` (ValidationContext fields), and `expect`: issues given by
code, FHIRPath expression and rule. Each expected issue must be reported as an error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from adapter.compliance import ValidationContext, has_errors, validate
from adapter.compliance.outcome import rule_of
from tests.compliance.conftest import HERE, load

CASES = sorted((HERE / "negative").glob("*.json"))


def context_of(case: dict) -> ValidationContext | None:
    """The ValidationContext a case asks for."""
    raw = dict(case.get("context") or {})
    if not raw:
        return None
    if "today" in raw:
        raw["today"] = dt.date.fromisoformat(raw["today"])
    return ValidationContext(**raw)


def test_corpus_size_and_layers():
    layers = [load(p)["layer"] for p in CASES]
    assert len(CASES) >= 40
    assert {"base", "profiles", "swedish"} <= set(layers)
    assert all(layers.count(layer) >= 10 for layer in ("base", "profiles", "swedish"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_payload_reports_the_expected_issue(path: Path):
    case = load(path)
    outcome = validate(case["resource"], case.get("profile"), context=context_of(case))
    assert has_errors(outcome), f"{case['title']}: accepted"
    errors = [(i["code"], (i.get("expression") or [""])[0], rule_of(i)) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    for want in case["expect"]:
        assert (want["code"], want["expression"], want["rule"]) in errors, f"{case['title']}: expected {want}, got {errors}"
