"""Every genomförandeplan fixture against real regional servers: accepted, a resend creates nothing, read back exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapter import conversion
from tests.readback import read_back_created as read_back
from adapter.standin import count

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "implementation-plan").glob("*.json"))
DECISIONS = sorted(Path(__file__).parents[2].joinpath("fixtures", "decision").glob("*.json"))

pytestmark = pytest.mark.integration

# --- Steps shared with test_rehab_plan_servers.py ------------------------------------------


def post(client: httpx.Client, bundle: dict) -> dict:
    response = client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:500]
    return response.json()


def status(entry: dict) -> int:
    return int(str(entry["response"]["status"]).split()[0])


def send_twice(base_url: str, path: Path) -> tuple[conversion.Document, dict, dict]:
    """POST a fixture's transaction, then the same again: the resend must create nothing."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        doc = conversion.read(path.read_bytes())
        bundle = conversion.bundle_of(doc)
        first = post(client, bundle)
        assert all(status(e) in (200, 201) for e in first["entry"]), path.name
        types = sorted({e["resource"]["resourceType"] for e in bundle["entry"]})
        before = {t: count(base_url, t) for t in types}
        second = post(client, bundle)
        assert all(status(e) == 200 for e in second["entry"]), f"{path.name}: the resend created something"
        assert {t: count(base_url, t) for t in types} == before, path.name
        locations = [[e["response"]["location"].split("/_history")[0].split("/fhir/")[-1] for e in r["entry"]] for r in (first, second)]
        assert locations[0] == locations[1], path.name
        return doc, first, second


def read_back_model(base_url: str, response: dict):
    """The canonical model decoded from the resources the transaction created, read from the server."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        return conversion.model_of(conversion.Document("fhir", bundle=read_back(client, response)))


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


def test_a_resend_with_new_contacts_creates_only_the_new_contacts(fhir_server) -> None:
    """Short-horizon updates: the plan is sent again with two more delivery records."""
    import uuid

    from mappings import implementation_plan
    from mappings.models.implementation_plan import ImplementationPlan

    full = ImplementationPlan.model_validate_json(FIXTURES[0].read_text("utf-8")).model_copy(update={"plan_id": f"GP-{uuid.uuid4().hex[:10]}"})
    full = ImplementationPlan.model_validate(full.model_dump())
    assert [r.outcome for r in full.deliveries[-2:]] == ["avbojd", "installd"]
    earlier = ImplementationPlan.model_validate({**full.model_dump(), "deliveries": full.model_dump()["deliveries"][:-2]})
    base = fhir_server.base_url
    with httpx.Client(base_url=base, timeout=60) as client:
        post(client, implementation_plan.to_fhir(earlier))
        before = {t: count(base, t) for t in ("Task", "Encounter", "Observation", "ServiceRequest", "Goal", "CarePlan", "CareTeam")}
        response = post(client, implementation_plan.to_fhir(full))
        created = [e for e in response["entry"] if status(e) == 201]
        assert [e["response"]["location"].split("/_history")[0].split("/")[-2] for e in created] == ["Task", "Task"]
        after = {t: count(base, t) for t in before}
        assert after == {**before, "Task": before["Task"] + 2}
        back = conversion.model_of(conversion.Document("fhir", bundle=read_back(client, response)))
    assert back.deliveries == full.deliveries
