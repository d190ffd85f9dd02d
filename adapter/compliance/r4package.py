"""Locate (or fetch with `npm pack`) the official `hl7.fhir.r4.examples@4.0.1` package.

Only build scripts, tests and benchmarks use this; validation itself never needs the network.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

PACKAGE = "hl7.fhir.r4.examples@4.0.1"
TARBALL = "hl7.fhir.r4.examples-4.0.1.tgz"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".cache" / "r4"


class PackageUnavailable(RuntimeError):
    """The examples package is neither cached nor fetchable (no npm or no registry)."""


def package_dir(cache: Path | None = None, *, fetch: bool = True) -> Path:
    """The unpacked `package/` folder, fetching it with `npm pack` into `cache` if absent."""
    cache = Path(cache or DEFAULT_CACHE)
    target = cache / "package"
    if (target / "Bundle-resources.json").is_file():
        return target
    if not fetch:
        raise PackageUnavailable(f"{PACKAGE} is not in {cache}")
    npm = shutil.which("npm")
    if npm is None:
        raise PackageUnavailable("npm is not installed, cannot fetch " + PACKAGE)
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / TARBALL
    if not tgz.is_file():
        done = subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=cache, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not tgz.is_file():
            raise PackageUnavailable(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-300:]}")
    with tarfile.open(tgz) as tar:
        tar.extractall(cache, filter="data")
    return target
