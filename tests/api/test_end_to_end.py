"""End to end through a real `carebridge serve` process and a real SEKMET server.

1. A municipal decision (fixtures/decision/hemtjanst-timmar.json, fresh id) posted to the API is
   delivered to SEKMET by the API's worker; counted on the server.
2. The utförare's Task for it is accepted on SEKMET (the test makes the change as the regional
   side would); SEKMET has no subscriptions, so the test posts the id-only rest-hook notification
   the way a regional server would. The API reads the Task (and its ServiceRequest, Patient and
   Organizations) from SEKMET and the same outbox delivers canonical JSON to the municipal
   outgoing folder.
3. The notification sent again delivers nothing new; the audit log, searched by personnummer,
   shows the transfers and every API access.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.api import principal as scopes
from adapter.standin import RunningServer, count
from mappings import systems
from tests.api.conftest import HANINGE, REGION, UTFORARE, fixture_bytes, with_new_id
from tests.api.issuer import LocalIssuer
from tests.api.serving import serving

pytestmark = pytest.mark.integration

PNR = "193802142384"
FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _config(issuer: LocalIssuer, folder: Path) -> dict[str, Any]:
    return {
        "api": {"audience": issuer.audience, "region_organisations": [REGION]},
        "issuers": [{"issuer": issuer.issuer, "jwks": issuer.jwks(), "algorithms": ["RS256", "ES256"]}],
        "municipal": {"folder": str(folder), "format": "json", "organisation": HANINGE},
        "limits": {"rate_per_second": 200, "rate_burst": 200},
    }


def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _notification(base_url: str, task_id: str, event_number: int) -> dict[str, Any]:
    """An id-only R4B rest-hook notification, as a regional server sends it."""
    return {
        "resourceType": "Bundle", "type": "history",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c2c1e-0d4b-4b7e-9a43-3f2d8e1c5b10",
             "resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                          "eventsSinceSubscriptionStart": str(event_number),
                          "notificationEvent": [{"eventNumber": str(event_number),
                                                 "focus": {"reference": f"{base_url}/Task/{task_id}"}}],
                          "subscription": {"reference": f"{base_url}/Subscription/haninge-task-status"},
                          "topic": "http://carebridge.se/fhir/SubscriptionTopic/task-status"}},
            {"fullUrl": f"{base_url}/Task/{task_id}", "request": {"method": "PUT", "url": f"Task/{task_id}"},
             "response": {"status": "200"}},
        ],
    }


def test_decision_to_sekmet_and_task_status_back_to_the_municipal_folder(
        sekmet_server: RunningServer, tmp_path: Path, issuer: LocalIssuer) -> None:
    fhir_base = sekmet_server.base_url
    folder = tmp_path / "outgoing"
    document = with_new_id(fixture_bytes("decision", "hemtjanst-timmar.json"))
    decision_id = json.loads(document)["decision_id"]
    municipality = {"Authorization": f"Bearer {issuer.token(HANINGE, [scopes.SUBMIT, scopes.READ, scopes.AUDIT])}"}
    region = {"Authorization": f"Bearer {issuer.token(REGION, [scopes.INBOUND])}"}
    insats = f"{systems.SID_INSATS}|{decision_id}/1"
    plans_before = count(fhir_base, "CarePlan")

    with serving(tmp_path / "api", _config(issuer, folder), "--server", fhir_base) as api:
        # 1. the decision reaches SEKMET
        submitted = httpx.post(f"{api}/documents/decision", content=document,
                               headers={**municipality, "Content-Type": "application/json"})
        assert submitted.status_code == 202, submitted.text
        status_url = f"{api}{submitted.headers['Location']}"
        delivered = _wait(lambda: (r := httpx.get(status_url, headers=municipality).json())["status"] == "delivered"
                          and r, what="delivery to SEKMET")
        assert [h["status"] for h in delivered["history"]] == ["accepted", "validated", "queued", "delivered"]
        assert count(fhir_base, "ServiceRequest", {"identifier": insats}) == 1
        assert count(fhir_base, "CarePlan") == plans_before + 1

        # 2. the utförare accepts the assignment on SEKMET ...
        tasks = httpx.get(f"{fhir_base}/Task", params={"identifier": f"{systems.SID_TASK}|{decision_id}/1"},
                          headers=FHIR).json()
        task = tasks["entry"][0]["resource"]
        assert task["status"] == "requested"
        task["status"] = "accepted"
        task["businessStatus"] = {"text": "Första besök bokat 9 mars"}
        updated = httpx.put(f"{fhir_base}/Task/{task['id']}", json=task, headers=FHIR)
        assert updated.status_code == 200, updated.text
        version = updated.json()["meta"]["versionId"]
        # ... and the regional server notifies (id only)
        notified = httpx.post(f"{api}/fhir/subscription-notification", json=_notification(fhir_base, task["id"], 1),
                              headers={**region, "Content-Type": "application/fhir+json"})
        assert notified.status_code == 200, notified.text
        change = notified.json()["changes"][0]
        assert change["result"] == "queued", change
        expected = folder / f"assignment-status-Task-{task['id']}-v{version}.json"
        _wait(expected.exists, what=f"{expected.name} in the outgoing folder")
        status = json.loads(expected.read_text())
        assert status == {
            "kind": "assignment-status", "decision_id": decision_id, "insats_id": "1", "status": "accepted",
            "business_status": "Första besök bokat 9 mars", "personnummer": PNR,
            "performer": {"name": "Omsorgshuset Södertörn AB", "hsa_id": UTFORARE, "organisationsnummer": "5566778899",
                          "kind": "privat"},
            "municipality": {"name": "Haninge kommun, socialnämnden", "hsa_id": "SE2120000134-SN01",
                             "organisationsnummer": HANINGE, "kind": "kommunal"},
            "source": status["source"],
        }
        assert status["source"]["reference"] == f"Task/{task['id']}/_history/{version}"
        from adapter.inbound.models import AssignmentStatus

        AssignmentStatus.model_validate(status)

        # 3. the same notification again: acknowledged, nothing delivered twice
        again = httpx.post(f"{api}/fhir/subscription-notification", json=_notification(fhir_base, task["id"], 2),
                           headers={**region, "Content-Type": "application/fhir+json"})
        assert again.json()["changes"][0]["result"] == "duplicate"
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [expected.name]

        # the audit log follows the person: the transfers and every access
        audit = httpx.get(f"{api}/audit/AuditEvent", params={"person": PNR, "limit": 200}, headers=municipality)
        assert audit.status_code == 200
        events = [e["resource"] for e in audit.json()["entry"]]
        transfers = [e for e in events if e["type"]["code"] == "110106" and e["outcome"] == "0"]
        destinations = {a["who"]["display"] for e in transfers for a in e["agent"] if a.get("network")}
        assert fhir_base in destinations
        assert f"folder:{folder.resolve()}" in destinations
        accesses = {e["outcomeDesc"].split(" -> ")[0] for e in events if e["type"]["code"] == "rest"}
        assert {"POST /documents/decision", f"GET {submitted.headers['Location']}",
                "POST /fhir/subscription-notification"} <= accesses
        assert PNR not in audit.text
    # the service's own log (JSON lines on stderr) never has the personnummer in plain text
    log = (tmp_path / "api" / "serve.log").read_text()
    assert '"msg": "request"' in log and "delivered" in log
    assert PNR not in log
