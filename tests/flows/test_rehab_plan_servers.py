"""Every rehabiliteringsplan fixture against real regional servers: accepted, a resend creates nothing, read back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.test_implementation_plan_servers import read_back_model, send_twice

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "rehab-plan").glob("*.json"))
DECISIONS = sorted(Path(__file__).parents[2].joinpath("fixtures", "decision").glob("*.json"))

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_is_accepted_and_a_resend_creates_nothing(fhir_server, path: Path) -> None:
    send_twice(fhir_server.base_url, path)


@pytest.mark.parametrize("name", ["sekmet", "medplum"])
def test_fixtures_read_back_exactly_after_their_decisions(server_factory, name: str) -> None:
    """On a server of its own (the shared one holds other suites' person data): the decisions, then the plans."""
    server = server_factory(name)
    for path in DECISIONS:
        send_twice(server.base_url, path)
    for path in FIXTURES:
        doc, first, _ = send_twice(server.base_url, path)
        back = read_back_model(server.base_url, first)
        assert back.model_dump_json() == doc.model.model_dump_json(), path.name
