"""Authorisation per organisation: submit as the sender only, read what you sent or are named in, protected persons."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from adapter.api import principal as scopes
from adapter.outbox.schema import audit_events
from tests.api.conftest import (ALL, BASIC, HANINGE, HANINGE_HSA, REGION, SODERTALJE, STRANGER, UTFORARE, bearer,
                                fixture_bytes, with_new_id)
from tests.api.issuer import LocalIssuer

JSON = {"Content-Type": "application/json"}


def _submit(client: Any, issuer: LocalIssuer, organisation: str, data: bytes, scopes_: list[str] = BASIC) -> Any:
    return client.post("/documents/decision", content=data,
                       headers={**JSON, **bearer(issuer.token(organisation, scopes_))})


def _decision() -> bytes:
    return with_new_id(fixture_bytes("decision", "hemtjanst-timmar.json"))


def _protected() -> bytes:
    return with_new_id(fixture_bytes("decision", "dagverksamhet-skyddad.json"))


def test_municipality_submits_its_decision_by_either_identifier(client: Any, issuer: LocalIssuer) -> None:
    for organisation in (HANINGE, HANINGE_HSA):
        response = _submit(client, issuer, organisation, _decision())
        assert response.status_code in (202, 422), response.text
        assert response.json()["status"] in ("queued", "dead-lettered")
        assert response.headers["Location"] == f"/documents/{response.json()['message_id']}"


def test_other_organisation_may_not_submit_as_the_municipality(client: Any, issuer: LocalIssuer) -> None:
    for organisation in (STRANGER, UTFORARE, REGION):
        response = _submit(client, issuer, organisation, _decision())
        assert response.status_code == 403, response.text
        assert response.json()["issue"][0]["code"] == "forbidden"
    assert client.outbox.list() == []  # nothing stored


def test_submit_needs_the_scope(client: Any, issuer: LocalIssuer) -> None:
    response = _submit(client, issuer, HANINGE, _decision(), [scopes.READ])
    assert response.status_code == 403
    assert "documents.write" in response.json()["issue"][0]["details"]["text"]


def test_reading_a_document(client: Any, issuer: LocalIssuer) -> None:
    message_id = _submit(client, issuer, HANINGE, _decision()).json()["message_id"]
    path = f"/documents/{message_id}"
    # the submitter and the utförare named in the decision may read it
    for organisation in (HANINGE, HANINGE_HSA, UTFORARE):
        response = client.get(path, headers=bearer(issuer.token(organisation, BASIC)))
        assert response.status_code == 200, (organisation, response.text)
        assert response.json()["person"] == "193802******"
    # another organisation's document: 403
    for organisation in (STRANGER, REGION):
        response = client.get(path, headers=bearer(issuer.token(organisation, BASIC)))
        assert response.status_code == 403, organisation
    # no such document: 404
    assert client.get("/documents/999999", headers=bearer(issuer.token(HANINGE, BASIC))).status_code == 404


def test_refusal_is_audited_with_the_person_and_the_reason(client: Any, issuer: LocalIssuer) -> None:
    message_id = _submit(client, issuer, HANINGE, _decision()).json()["message_id"]
    assert client.get(f"/documents/{message_id}", headers=bearer(issuer.token(STRANGER, BASIC))).status_code == 403
    auditor = bearer(issuer.token(HANINGE, [scopes.AUDIT]))
    bundle = client.get("/audit/AuditEvent", params={"person": "193802142384"}, headers=auditor).json()
    refusals = [e["resource"] for e in bundle["entry"] if e["resource"]["outcome"] == "4"]
    assert len(refusals) == 1
    event = refusals[0]
    assert "neither sent nor is named" in event["outcomeDesc"]
    assert event["agent"][1]["who"]["identifier"]["value"] == STRANGER
    assert any(e.get("name") == "193802******" for e in event["entity"])
    assert "193802142384" not in json.dumps(bundle)  # never the plain personnummer


def test_protected_person_needs_the_explicit_scope(client: Any, issuer: LocalIssuer) -> None:
    response = _submit(client, issuer, SODERTALJE, _protected())
    assert response.status_code in (202, 422), response.text
    path = f"/documents/{response.json()['message_id']}"
    refused = client.get(path, headers=bearer(issuer.token(SODERTALJE, BASIC)))
    assert refused.status_code == 403
    assert "skyddad folkbokföring" in refused.json()["issue"][0]["details"]["text"]
    allowed = client.get(path, headers=bearer(issuer.token(SODERTALJE, [*BASIC, scopes.PROTECTED])))
    assert allowed.status_code == 200
    # the scope does not open other organisations' documents
    other = client.get(path, headers=bearer(issuer.token(STRANGER, [*BASIC, scopes.PROTECTED])))
    assert other.status_code == 403


def invalid_bundle() -> bytes:
    """The FHIR form of a decision with a status outside its required value set (fails validation)."""
    from adapter.conversion import convert

    bundle = json.loads(convert(_decision(), "fhir"))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["status"] = "bogus"
    return json.dumps(bundle).encode()


def test_invalid_document_is_kept_as_a_dead_letter_with_its_outcome(client: Any, issuer: LocalIssuer) -> None:
    response = client.post("/documents/decision", content=invalid_bundle(),
                           headers={"Content-Type": "application/fhir+json", **bearer(issuer.token(HANINGE, BASIC))})
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["status"], body["stage"]) == ("dead-lettered", "validation")
    assert any("bogus" in i["details"]["text"] for i in body["outcome"]["issue"] if i["severity"] == "error")


def test_dead_letters_are_listed_per_organisation(client: Any, issuer: LocalIssuer) -> None:
    fhir = {"Content-Type": "application/fhir+json"}
    invalid = client.post("/documents/decision", content=invalid_bundle(),
                          headers={**fhir, **bearer(issuer.token(HANINGE, BASIC))})
    garbage = _submit(client, issuer, HANINGE, b'{"kind": "decision", "decision_id": "X"}')
    assert garbage.status_code == 400  # unreadable: not stored, not attributable
    own = client.get("/dead-letters", headers=bearer(issuer.token(HANINGE, BASIC))).json()
    named = client.get("/dead-letters", headers=bearer(issuer.token(UTFORARE, BASIC))).json()
    other = client.get("/dead-letters", headers=bearer(issuer.token(STRANGER, BASIC))).json()
    assert [i["message_id"] for i in own["items"]] == [invalid.json()["message_id"]]
    assert [i["message_id"] for i in named["items"]] == [invalid.json()["message_id"]]
    assert other["items"] == []


def test_replay_only_by_the_submitter(client: Any, issuer: LocalIssuer) -> None:
    fhir = {"Content-Type": "application/fhir+json"}
    message_id = client.post("/documents/decision", content=invalid_bundle(),
                             headers={**fhir, **bearer(issuer.token(HANINGE, BASIC))}).json()["message_id"]
    path = f"/dead-letters/{message_id}/replay"
    assert client.post(path, headers=bearer(issuer.token(UTFORARE, BASIC))).status_code == 403
    assert client.post(path, headers=bearer(issuer.token(HANINGE, [scopes.READ]))).status_code == 403
    # an edited document that still fails: 422, nothing changes
    still_bad = client.post(path, content=invalid_bundle(), headers={**fhir, **bearer(issuer.token(HANINGE, BASIC))})
    assert still_bad.status_code == 422
    # the fixed document: queued again, the edit is in the trail with the caller
    fixed = client.post(path, params={"reason": "status corrected"}, content=_decision(),
                        headers={**JSON, **bearer(issuer.token(HANINGE, BASIC))})
    assert fixed.status_code == 202, fixed.text
    assert fixed.json()["status"] == "queued"
    edits = client.outbox.edits(message_id)
    assert [e["action"] for e in edits] == ["edit"]
    assert HANINGE in edits[0]["actor"] and edits[0]["reason"] == "status corrected"
    assert client.post(path, headers=bearer(issuer.token(HANINGE, BASIC))).status_code == 409


def test_audit_log_needs_its_scope_and_a_valid_personnummer(client: Any, issuer: LocalIssuer) -> None:
    headers = bearer(issuer.token(HANINGE, BASIC))
    assert client.get("/audit/AuditEvent", params={"person": "193802142384"}, headers=headers).status_code == 403
    auditor = bearer(issuer.token(HANINGE, ALL))
    assert client.get("/audit/AuditEvent", params={"person": "193802142385"}, headers=auditor).status_code == 400
    assert client.get("/audit/AuditEvent", headers=auditor).status_code == 400


def test_audit_search_by_form_post_keeps_the_personnummer_out_of_the_url(client: Any, issuer: LocalIssuer) -> None:
    _submit(client, issuer, HANINGE, _decision())
    response = client.post("/audit/AuditEvent/_search", content=b"person=193802142384&limit=10",
                           headers={**bearer(issuer.token(HANINGE, ALL)),
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert response.json()["total"] >= 1
    with client.outbox.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(select(audit_events.c.resource))]
    assert not any("193802142384" in s for s in stored)


def test_inbound_endpoints_only_for_the_region(client: Any, issuer: LocalIssuer) -> None:
    from adapter.api.examples import notification_example

    body = json.dumps(notification_example()).encode()
    for organisation in (HANINGE, STRANGER):
        response = client.post("/fhir/subscription-notification", content=body,
                               headers={**JSON, **bearer(issuer.token(organisation, ALL))})
        assert response.status_code == 403
    no_scope = client.post("/fhir/subscription-notification", content=body,
                           headers={**JSON, **bearer(issuer.token(REGION, BASIC))})
    assert no_scope.status_code == 403


def test_riv_documents_are_submitted_as_their_contract_by_their_source_unit(client: Any, issuer: LocalIssuer) -> None:
    riv = fixture_bytes("riv", "GetCareServicesResponse-haninge-sigvard-ek.xml")
    xml = {"Content-Type": "application/xml"}
    unit = bearer(issuer.token("SE2120000134-SN01", BASIC))  # bistandsenheten, the source of the documents
    accepted = client.post("/documents/care-services", content=riv, headers={**xml, **unit})
    assert accepted.status_code in (202, 422), accepted.text
    assert client.post("/documents/care-services", content=riv,
                       headers={**xml, **bearer(issuer.token(STRANGER, BASIC))}).status_code == 403
    assert client.post("/documents/decision", content=riv, headers={**xml, **unit}).status_code == 400
    assert client.post("/documents/care-services", content=riv,
                       headers={"Content-Type": "application/json", **unit}).status_code == 415
