"""Consent on the way out: submissions, edits and $validate are checked as a transfer to the regional server's huvudman."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapter.api.settings import SettingsError, from_dict
from tests.api.conftest import BASIC, HANINGE, bearer, fixture_bytes, with_new_id
from tests.api.issuer import LocalIssuer

JSON = {"Content-Type": "application/json"}


def _without_consent() -> bytes:
    doc = json.loads(with_new_id(fixture_bytes("decision", "hemtjanst-timmar.json")))
    del doc["samtycke"]
    return json.dumps(doc, ensure_ascii=False).encode()


def _rules(outcome: dict[str, Any]) -> set[str]:
    return {c["code"] for i in outcome["issue"] if i["severity"] in ("error", "fatal")
            for c in (i.get("details") or {}).get("coding", ())}


def test_a_decision_without_consent_is_kept_as_a_dead_letter_for_a_region(make_client: Any, issuer: LocalIssuer) -> None:
    headers = {**JSON, **bearer(issuer.token(HANINGE, BASIC))}
    to_region = make_client()
    response = to_region.post("/documents/decision", content=_without_consent(), headers=headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["status"], body["stage"]) == ("dead-lettered", "validation")
    assert _rules(body["outcome"]) == {"se-consent"}
    # an edit without consent is refused the same way; nothing changes
    path = f"/dead-letters/{body['message_id']}/replay"
    edit = to_region.post(path, content=_without_consent(), headers=headers)
    assert edit.status_code == 422 and _rules(edit.json()) == {"se-consent"}
    assert to_region.outbox.edits(body["message_id"]) == []
    fixed = to_region.post(path, content=with_new_id(fixture_bytes("decision", "hemtjanst-timmar.json")), headers=headers)
    assert fixed.status_code == 202, fixed.text
    # a server of the municipality's own huvudman needs no consent
    to_kommun = make_client(receiver_huvudman="kommun")
    accepted = to_kommun.post("/documents/decision", content=_without_consent(), headers=headers)
    assert accepted.status_code == 202, accepted.text


def test_validate_checks_a_transfer_to_the_regional_server_unless_told_otherwise(client: Any,
                                                                                 issuer: LocalIssuer) -> None:
    from adapter.conversion import bundle_of, read

    bundle = json.dumps(bundle_of(read(_without_consent()))).encode()
    headers = {"Content-Type": "application/fhir+json", **bearer(issuer.token(HANINGE, BASIC))}
    outcome = client.post("/fhir/$validate", content=bundle, headers=headers)
    assert outcome.status_code == 200 and _rules(outcome.json()) == {"se-consent"}
    to_kommun = client.post("/fhir/$validate", params={"receiver_huvudman": "kommun"}, content=bundle, headers=headers)
    assert to_kommun.status_code == 200 and _rules(to_kommun.json()) == set()
    bad = client.post("/fhir/$validate", params={"receiver_huvudman": "landsting"}, content=bundle, headers=headers)
    assert bad.status_code == 400


def test_huvudman_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREBRIDGE_RECEIVER_HUVUDMAN", raising=False)
    default = from_dict({})
    assert (default.receiver_huvudman, default.municipal.huvudman) == ("region", "kommun")
    configured = from_dict({"api": {"receiver_huvudman": "annan"}, "municipal": {"huvudman": "region"}})
    assert (configured.receiver_huvudman, configured.municipal.huvudman) == ("annan", "region")
    monkeypatch.setenv("CAREBRIDGE_RECEIVER_HUVUDMAN", "kommun")
    assert from_dict({}).receiver_huvudman == "kommun" and from_dict({}).municipal.huvudman == "kommun"
    for bad in ({"api": {"receiver_huvudman": "landsting"}}, {"municipal": {"huvudman": 3}}):
        with pytest.raises(SettingsError):
            from_dict(bad)


def test_serve_takes_the_regional_servers_huvudman_from_the_command_line(tmp_path: Any, issuer: LocalIssuer) -> None:
    import httpx

    from tests.api.serving import serving

    config = {"api": {"audience": issuer.audience},
              "issuers": [{"issuer": issuer.issuer, "jwks": issuer.jwks(), "algorithms": ["RS256"]}]}
    headers = {**JSON, "Authorization": f"Bearer {issuer.token(HANINGE, BASIC)}"}
    with serving(tmp_path / "kommun", config, "--no-workers", "--server", "http://127.0.0.1:9/fhir",
                 "--receiver-huvudman", "kommun") as base:
        accepted = httpx.post(f"{base}/documents/decision", content=_without_consent(), headers=headers, timeout=30)
    assert accepted.status_code == 202, accepted.text
    with serving(tmp_path / "region", config, "--no-workers", "--server", "http://127.0.0.1:9/fhir") as base:
        refused = httpx.post(f"{base}/documents/decision", content=_without_consent(), headers=headers, timeout=30)
    assert refused.status_code == 422 and _rules(refused.json()["outcome"]) == {"se-consent"}
