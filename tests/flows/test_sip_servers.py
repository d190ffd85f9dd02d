"""Every SIP/SPU fixture against real regional servers: accepted, a resend creates nothing, read back exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapter import conversion
from tests.readback import read_back_created as read_back
from adapter.standin import count

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "sip").glob("*.json"))
TYPES = ("Patient", "Organization", "Practitioner", "RelatedPerson", "Condition", "Goal", "ServiceRequest", "Observation", "Consent", "CareTeam", "CarePlan", "Provenance")


def _post(client: httpx.Client, bundle: dict) -> dict:
    response = client.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:500]
    return response.json()


def _status(entry: dict) -> int:
    return int(entry["response"]["status"].split()[0])


@pytest.mark.integration
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_is_accepted_resend_creates_nothing_and_reads_back_exactly(fhir_server, path: Path) -> None:
    with httpx.Client(base_url=fhir_server.base_url, timeout=30) as client:
        doc = conversion.read(path.read_bytes())
        bundle = conversion.bundle_of(doc)
        first = _post(client, bundle)
        assert all(_status(e) in (200, 201) for e in first["entry"])
        before = {t: count(fhir_server.base_url, t) for t in TYPES}
        second = _post(client, bundle)
        assert all(_status(e) == 200 for e in second["entry"]), "the resend created something"
        assert {t: count(fhir_server.base_url, t) for t in TYPES} == before
        locations = [[e["response"]["location"].split("/_history")[0].split("/fhir/")[-1] for e in r["entry"]] for r in (first, second)]
        assert locations[0] == locations[1]
        back = read_back(client, first)
        assert conversion.model_of(conversion.Document("fhir", bundle=back)) == doc.model
