"""Fixtures of the compliance tests: the oracles in ../shared and the official R4 examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.compliance.r4package import DEFAULT_CACHE, PackageUnavailable, package_dir

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def shared() -> Path:
    """`../shared` (the reference material CI provides); the test is skipped without it."""
    if not (SHARED / "fhir-test-cases" / "manifest.json").is_file():
        pytest.skip(f"{SHARED} is absent: the HL7 validator oracle is not available")
    return SHARED


@pytest.fixture(scope="session")
def r4_package() -> Path:
    """The unpacked hl7.fhir.r4.examples@4.0.1 package, fetched with `npm pack` into .cache/ when absent."""
    try:
        return package_dir(DEFAULT_CACHE)
    except PackageUnavailable as exc:
        pytest.skip(f"official R4 examples unavailable: {exc}")


def load(path: Path) -> dict:
    """A JSON file (BOM tolerated)."""
    return json.loads(path.read_text("utf-8-sig"))
