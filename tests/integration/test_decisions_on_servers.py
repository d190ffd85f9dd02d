"""Every decision fixture against real regional servers: accepted, resend creates nothing, reads back exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapter import conversion
from tests.readback import read_back_created as read_back
from adapter.standin import count

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "decision").glob("*.json"))
TYPES = ("Patient", "Organization", "Practitioner", "ServiceRequest", "Goal", "CarePlan", "Task", "Provenance")


def _post(client: httpx.Client, bundle: dict) -> dict:
    response = client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:500]
    return response.json()


def _status(entry: dict) -> int:
    return int(entry["response"]["status"].split()[0])


@pytest.mark.integration
def test_fixtures_are_accepted_resend_creates_nothing_and_read_back_exactly(fhir_server) -> None:
    with httpx.Client(base_url=fhir_server.base_url, timeout=30) as client:
        for path in FIXTURES:
            doc = conversion.read(path.read_bytes())
            bundle = conversion.bundle_of(doc)
            first = _post(client, bundle)
            assert all(_status(e) in (200, 201) for e in first["entry"]), path.name
            before = {t: count(fhir_server.base_url, t) for t in TYPES}
            second = _post(client, bundle)
            assert all(_status(e) == 200 for e in second["entry"]), f"{path.name}: the resend created something"
            assert {t: count(fhir_server.base_url, t) for t in TYPES} == before, path.name
            # both sends resolve to the same resources
            assert [e["response"]["location"].split("/_history")[0].split("/fhir/")[-1] for e in first["entry"]] == [
                e["response"]["location"].split("/_history")[0].split("/fhir/")[-1] for e in second["entry"]
            ]
            back = read_back(client, first)
            assert conversion.model_of(conversion.Document("fhir", bundle=back)) == doc.model, path.name
