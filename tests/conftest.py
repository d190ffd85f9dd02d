"""Session fixtures for the real stand-in regional FHIR servers (SEKMET, Medplum).

- ``sekmet_server`` / ``medplum_server``: one server each per test session (started on first use in a
  temp dir, stopped at the end); they yield an ``adapter.standin.RunningServer`` (``.base_url``, ...).
- ``fhir_server``: parametrised over both (ids ``sekmet``, ``medplum``) for suites that must pass on
  both; tests marked ``@pytest.mark.sekmet_only`` are deselected for the ``medplum`` run.
- ``server_factory``: starts private servers for one test (for tests that stop or restart them).
- ``count(base_url, type, params=None) -> int`` (from ``adapter.standin``): resources on a server.

The servers are shared by the whole session: use unique business keys per test and compare counts
before and after, never absolute counts. A missing server is a failure, not a skip: run ``make servers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.standin import INSTALL_HINT, RunningServer, StandinError, count, start_medplum, start_sekmet

__all__ = ["count"]

#: Server name -> start function.
STARTERS: dict[str, Callable[..., RunningServer]] = {"sekmet": start_sekmet, "medplum": start_medplum}


def _start_or_fail(name: str, workdir: Path) -> RunningServer:
    """Start a stand-in server; fail the test (never skip) with an actionable message if it cannot start."""
    return _start(name, workdir, None)


def _start(name: str, workdir: Path, port: int | None) -> RunningServer:
    """Start a server or fail with the reason and the fix (no exception chain in the report)."""
    try:
        return STARTERS[name](workdir, port=port)
    except StandinError as exc:
        reason = str(exc)
    pytest.fail(f"stand-in FHIR server {name!r} unavailable ({INSTALL_HINT}): {reason}", pytrace=False)


def server_fixtures(scope: str, label: str = "") -> tuple:
    """The three server fixtures (``sekmet_server``, ``medplum_server``, ``fhir_server``) at `scope`;
    assign them to those names in a conftest (a suite's own servers override the session's)."""

    def started(name: str, what: str):
        def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
            server = _start_or_fail(name, tmp_path_factory.mktemp(label + name))
            yield server
            server.stop()

        fixture.__doc__ = what
        return pytest.fixture(scope=scope, name=f"{name}_server")(fixture)

    def each(request: pytest.FixtureRequest) -> RunningServer:
        """Each stand-in server in turn (ids ``sekmet``, ``medplum``)."""
        return request.getfixturevalue(f"{request.param}_server")

    return (
        started("sekmet", f"A SEKMET server (simulator off, SQLite), {scope} scope."),
        started("medplum", f"A Medplum fhir-router (MemoryRepository) server, {scope} scope."),
        pytest.fixture(scope=scope, params=["sekmet", "medplum"], name="fhir_server")(each),
    )


sekmet_server, medplum_server, fhir_server = server_fixtures("session")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """``server_factory("sekmet" | "medplum", port=None)``: a private server, stopped after the test."""
    started: list[RunningServer] = []

    def start(name: str, *, port: int | None = None, workdir: Path | None = None) -> RunningServer:
        server = _start(name, workdir or tmp_path / f"{name}-{len(started)}", port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def count_resources() -> Callable[..., int]:
    """The ``count(base_url, type, params=None)`` helper as a fixture."""
    return count


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``medplum`` run of tests marked ``sekmet_only`` (deselected, not skipped)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("sekmet_only") and params.get("fhir_server") == "medplum":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
