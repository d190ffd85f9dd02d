"""Inbound from the region against SEKMET: $process-message (discharge events) and plan notifications.

The API runs in-process with its delivery workers (lifespan), reading from and writing to the
session's SEKMET server; municipal documents go through the outbox into a temp folder.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.api import principal as scopes
from adapter.api.settings import MunicipalDelivery
from adapter.conversion import convert
from adapter.standin import RunningServer
from mappings.identifiers import luhn_ok
from tests.api.conftest import ALL, HANINGE, REGION, STRANGER, bearer, fixture_bytes
from tests.api.issuer import LocalIssuer

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}


def fresh_personnummer() -> str:
    """A valid personnummer nobody else in the session uses (so Task effects touch only this test's tasks)."""
    while True:
        candidate = f"1941{uuid.uuid4().int % 12 + 1:02d}{uuid.uuid4().int % 28 + 1:02d}{uuid.uuid4().int % 1000:03d}"
        for check in range(10):
            if luhn_ok(candidate[2:] + str(check)):
                return candidate + str(check)


def _wait_for(path: Path, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never arrived; folder has {sorted(p.name for p in path.parent.iterdir())}")
        time.sleep(0.1)
    return path


@pytest.fixture
def inbound_client(make_client: Any, sekmet_server: RunningServer, tmp_path: Path, api_settings: Any) -> Any:
    client = make_client(server=sekmet_server.base_url, workers=True,
                         municipal=MunicipalDelivery(folder=str(tmp_path / "outgoing")))
    client.folder = tmp_path / "outgoing"
    return client


def _discharge_message(personnummer: str) -> dict[str, Any]:
    event = json.loads(fixture_bytes("discharge", "01-inskrivning.json"))
    event["message_id"] = str(uuid.uuid4())
    event["person"]["personnummer"] = personnummer
    return json.loads(convert(json.dumps(event).encode(), "fhir"))


def test_process_message_acknowledges_dedupes_and_delivers(inbound_client: Any, issuer: LocalIssuer) -> None:
    message = _discharge_message(fresh_personnummer())
    region = {**FHIR, **bearer(issuer.token(REGION, [scopes.INBOUND]))}
    first = inbound_client.post("/fhir/$process-message", json=message, headers=region)
    assert first.status_code == 200, first.text
    ack = first.json()
    assert ack["type"] == "message"
    header = ack["entry"][0]["resource"]
    assert header["response"]["code"] == "ok", ack
    assert header["response"]["identifier"] == message["entry"][0]["resource"]["id"]
    # the same message again: the same acknowledgement, byte for byte; nothing delivered twice
    again = inbound_client.post("/fhir/$process-message", json=message, headers=region)
    assert again.content == first.content
    delivered = _wait_for(inbound_client.folder / f"discharge-{message['entry'][0]['resource']['id']}.json")
    event = json.loads(delivered.read_text())
    assert (event["kind"], event["event"]) == ("discharge", "inskrivning")
    assert len([p for p in inbound_client.folder.iterdir() if not p.name.startswith(".")]) == 1


def test_process_message_only_from_its_sender(inbound_client: Any, issuer: LocalIssuer) -> None:
    message = _discharge_message(fresh_personnummer())
    # a regional caller acting for another organisation than the message's sender
    other = replace(inbound_client.app.state.services.settings, region_organisations=(REGION, "SE2321000016-KS01"))
    inbound_client.app.state.services.settings = other
    refused = inbound_client.post("/fhir/$process-message", json=message,
                                  headers={**FHIR, **bearer(issuer.token("SE2321000016-KS01", ALL))})
    assert refused.status_code == 403
    assert inbound_client.post("/fhir/$process-message", json=message,
                               headers={**FHIR, **bearer(issuer.token(STRANGER, ALL))}).status_code == 403
    assert inbound_client.post("/fhir/$process-message", json=message,
                               headers={**FHIR, **bearer(issuer.token(HANINGE, ALL))}).status_code == 403


def test_a_protected_persons_municipal_delivery_needs_the_protected_scope(inbound_client: Any, issuer: LocalIssuer) -> None:
    """The municipal delivery of a message about a person with skyddad folkbokföring is recorded with its
    parties and the protected flag: its status is shown to the municipality only with protected-identity.read."""
    event = json.loads(fixture_bytes("discharge", "01-inskrivning.json"))
    event["message_id"] = str(uuid.uuid4())
    event["person"].update(personnummer=fresh_personnummer(), skyddad_folkbokforing=True)
    event["person"].pop("address", None)
    event["person"].pop("phone", None)
    message = json.loads(convert(json.dumps(event).encode(), "fhir"))
    region = {**FHIR, **bearer(issuer.token(REGION, [scopes.INBOUND]))}
    answer = inbound_client.post("/fhir/$process-message", json=message, headers=region)
    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["resource"]["response"]["code"] == "ok", answer.text
    [delivery] = [m for m in inbound_client.outbox.list() if m.payload.get("delivery") == "municipal"]
    without = [scopes.SUBMIT, scopes.READ, scopes.REPLAY]
    for organisation in (HANINGE, REGION):
        refused = inbound_client.get(f"/documents/{delivery.id}", headers=bearer(issuer.token(organisation, without)))
        assert refused.status_code == 403, refused.text
        shown = inbound_client.get(f"/documents/{delivery.id}",
                                   headers=bearer(issuer.token(organisation, [*without, scopes.PROTECTED])))
        assert shown.status_code == 200, shown.text
    assert inbound_client.get(f"/documents/{delivery.id}", headers=bearer(issuer.token(STRANGER, ALL))).status_code == 403


def _post_plan_to_sekmet(base_url: str) -> dict[str, Any]:
    """The region creates a SIP on its server (as a transaction); the CarePlan as stored."""
    plan = json.loads(fixture_bytes("sip", "sip-karin-holm-hemsjukvard-hemtjanst.json"))
    plan["plan_id"] = f"SIP-T-{uuid.uuid4().hex[:8].upper()}"
    bundle = json.loads(convert(json.dumps(plan).encode(), "fhir"))
    response = httpx.post(base_url, json=bundle, headers={**FHIR, "Accept": "application/fhir+json"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    plan_location = next(loc for loc in locations if "/CarePlan/" in loc or loc.startswith("CarePlan/"))
    plan_id = plan_location.split("CarePlan/")[1].split("/")[0]
    return {"canonical": plan, "id": plan_id,
            "observations": [loc.split("Observation/")[1].split("/")[0] for loc in locations if "Observation/" in loc]}


def _notify(client: Any, issuer: LocalIssuer, base_url: str, reference: str) -> Any:
    body = {"resourceType": "Bundle", "type": "history", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}",
         "resource": {"resourceType": "Parameters", "parameter": [  # the R4 backport form
             {"name": "subscription", "valueReference": {"reference": f"{base_url}/Subscription/plans"}},
             {"name": "type", "valueCode": "event-notification"},
             {"name": "notification-event", "part": [{"name": "event-number", "valueString": "1"},
                                                     {"name": "focus", "valueReference": {"reference": reference}}]}]}},
        {"fullUrl": f"{base_url}/{reference}"}]}
    return client.post("/fhir/subscription-notification", json=body,
                       headers={**FHIR, **bearer(issuer.token(REGION, [scopes.INBOUND]))})


def test_new_plan_and_follow_up_reach_the_municipality(inbound_client: Any, issuer: LocalIssuer,
                                                        sekmet_server: RunningServer) -> None:
    created = _post_plan_to_sekmet(sekmet_server.base_url)
    answer = _notify(inbound_client, issuer, sekmet_server.base_url, f"CarePlan/{created['id']}")
    assert answer.status_code == 200, answer.text
    change = answer.json()["changes"][0]
    assert change["result"] == "queued", change
    delivered = _wait_for(inbound_client.folder / f"sip-CarePlan-{created['id']}-v1.json")
    sip = json.loads(delivered.read_text())
    assert sip["kind"] == "sip"
    assert sip["plan_id"] == created["canonical"]["plan_id"]
    assert sip["person"]["personnummer"] == created["canonical"]["person"]["personnummer"]
    assert sip == json.loads(convert(json.dumps(created["canonical"]).encode(), "json"))  # nothing lost
    # a follow-up recorded by the region: the plan it belongs to, again
    follow_up = _notify(inbound_client, issuer, sekmet_server.base_url, f"Observation/{created['observations'][0]}")
    assert follow_up.json()["changes"][0]["result"] == "queued", follow_up.json()
    _wait_for(inbound_client.folder / f"sip-Observation-{created['observations'][0]}-v1.json")


def test_notifications_are_bounded_to_the_regional_server(inbound_client: Any, issuer: LocalIssuer) -> None:
    for reference in ("https://evil.example/fhir/Task/1", "http://127.0.0.1:1/fhir/Task/1", "Task/../../etc",
                      "Task/1?_format=xml"):
        answer = _notify(inbound_client, issuer, "https://irrelevant.example/fhir", reference)
        assert answer.status_code == 200
        assert answer.json()["changes"][0]["result"] == "failed", reference
    unknown = _notify(inbound_client, issuer, "", f"Task/{uuid.uuid4().hex}")
    assert unknown.json()["changes"][0]["result"] == "failed"
    assert "404" in unknown.json()["changes"][0]["detail"]


def test_municipal_filter(make_client: Any, sekmet_server: RunningServer, tmp_path: Path,
                          issuer: LocalIssuer) -> None:
    client = make_client(server=sekmet_server.base_url, municipal=MunicipalDelivery(
        folder=str(tmp_path / "other"), organisation="SE2321000164-DV02"))
    created = _post_plan_to_sekmet(sekmet_server.base_url)
    answer = _notify(client, issuer, sekmet_server.base_url, f"CarePlan/{created['id']}")
    assert answer.json()["changes"][0]["result"] == "skipped"
    assert "not for municipality" in answer.json()["changes"][0]["detail"]
