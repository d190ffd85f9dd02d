"""Every discharge message against SEKMET's `$process-message`: acknowledged ok, stored, read back exactly.

SEKMET takes a message Bundle at `POST [base]/$process-message` (and at `POST [base]` when the
Bundle's type is `message`), stores each non-header resource with the sender's id, stores the
Bundle itself under an id of its own, and answers with an acknowledgement message whose
`response.identifier` is our MessageHeader.id. It does not dedupe: a resend is processed and
stored again (the receiver's dedupe is ours, see test_discharge_receiver.py).

Because SEKMET upserts the message's Patient and Organizations under the message's ids, a server
that also takes transactions ends up with two resources per identifier, and a later conditional
create on that identifier fails (412, multiple matches). These tests therefore use a private
SEKMET, never the session's shared one.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from adapter.messaging.sender import read_back_message, send_message
from adapter.standin import count
from mappings import discharge
from mappings.models.discharge import DischargeEvent

FIXTURES = sorted(Path(__file__).parents[2].joinpath("fixtures", "discharge").glob("*.json"))


@pytest.fixture(scope="module")
def sekmet(tmp_path_factory: pytest.TempPathFactory):
    """A private SEKMET for the messages (see the module docstring)."""
    from tests.conftest import _start_or_fail

    server = _start_or_fail("sekmet", tmp_path_factory.mktemp("sekmet-messages"))
    yield server
    server.stop()


@pytest.mark.integration
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_sekmet_acknowledges_the_message_and_reads_it_back_exactly(sekmet, path: Path) -> None:
    event = DischargeEvent.model_validate_json(path.read_text("utf-8"))
    bundle = discharge.to_fhir(event)
    with httpx.Client(base_url=sekmet.base_url, timeout=30) as client:
        bundles = count(sekmet.base_url, "Bundle")
        ack = send_message(client, bundle)
        assert ack == discharge.Acknowledgement(event.message_id, "ok")
        assert count(sekmet.base_url, "Bundle") == bundles + 1
        stored = read_back_message(client, bundle)
        assert stored["id"] != bundle["id"]  # SEKMET re-ids the stored Bundle; Bundle.identifier still finds it
        assert discharge.from_fhir(stored) == event
        encounter = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
        on_server = client.get(f"Encounter/{encounter['id']}").raise_for_status().json()
        assert on_server["identifier"] == encounter["identifier"]
        assert on_server["subject"]["reference"].startswith("Patient/")


@pytest.mark.integration
def test_a_transaction_after_a_message_meets_two_organisations_with_one_identifier(server_factory) -> None:
    """Why the messages get a private server: SEKMET's upsert of message resources duplicates identifiers."""
    from mappings import sip
    from mappings.models.sip import CoordinatedPlan

    server = server_factory("sekmet")
    plan = CoordinatedPlan.model_validate_json(Path(__file__).parents[2].joinpath("fixtures", "sip", "spu-astrid-berglund-utskrivning.json").read_text("utf-8"))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post("", json=sip.to_fhir(plan), headers={"Content-Type": "application/fhir+json"}).status_code == 200
        assert send_message(client, discharge.to_fhir(DischargeEvent.model_validate_json(FIXTURES[0].read_text("utf-8")))).ok
        again = client.post("", json=sip.to_fhir(plan), headers={"Content-Type": "application/fhir+json"})
    assert again.status_code == 412 and "matched 2 resources" in again.text


@pytest.mark.integration
def test_sekmet_takes_a_message_at_the_base_url_too(sekmet) -> None:
    bundle = discharge.to_fhir(DischargeEvent.model_validate_json(FIXTURES[0].read_text("utf-8")))
    response = httpx.post(sekmet.base_url, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert response.status_code == 200
    assert discharge.read_acknowledgement(response.json()).code == "ok"
