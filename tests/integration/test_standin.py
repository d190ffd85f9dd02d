"""The stand-in regional FHIR servers start and behave as the rest of carebridge relies on.

Everything here talks to the real servers started by tests/conftest.py; nothing is mocked. The
servers are shared by the session, so each test uses its own random business keys and compares
counts before and after.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.standin import RunningServer, StandinError, count, start_sekmet

pytestmark = pytest.mark.integration

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
TAG = "http://carebridge.se/fhir/CodeSystem/business-key"
PNR = "http://electronichealth.se/identifier/personnummer"
SID_INSATS = "http://carebridge.se/fhir/sid/insats"
SID_PLAN = "http://carebridge.se/fhir/sid/plan"
PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"
TYPES = ("Patient", "Goal", "ServiceRequest", "CarePlan", "Provenance")


def key() -> str:
    """A fresh business key."""
    return uuid.uuid4().hex[:12]


def status_code(entry: dict[str, Any]) -> int:
    """The HTTP status of a transaction-response entry ("201 Created" on SEKMET, "201" on Medplum)."""
    return int(str(entry["response"]["status"]).split()[0])


def entry_ref(entry: dict[str, Any]) -> str:
    """``Type/id`` of a transaction-response entry, from its location."""
    location = entry["response"]["location"].split("/_history")[0]
    return "/".join(location.split("/")[-2:])


def decision_bundle(person: str, decision: str) -> dict[str, Any]:
    """A decision-shaped transaction: every entry a conditional create, linked by urn:uuid references."""
    patient, goal, request, plan = (f"urn:uuid:{uuid.uuid4()}" for _ in range(4))
    subject = {"reference": patient}

    def entry(full_url: str | None, resource: dict[str, Any], if_none_exist: str) -> dict[str, Any]:
        out = {"resource": resource,
               "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": if_none_exist}}
        return {"fullUrl": full_url, **out} if full_url else out

    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        entry(patient, {"resourceType": "Patient", "identifier": [{"system": PNR, "value": person}]},
              f"identifier={PNR}|{person}"),
        entry(goal, {"resourceType": "Goal", "meta": {"tag": [{"system": TAG, "code": f"goal-{decision}"}]},
                     "lifecycleStatus": "active", "description": {"text": "Klara att handla själv"},
                     "subject": subject}, f"_tag={TAG}|goal-{decision}"),
        entry(request, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                        "identifier": [{"system": SID_INSATS, "value": decision}], "subject": subject,
                        "extension": [{"url": PERTAINS_TO_GOAL, "valueReference": {"reference": goal}}]},
              f"identifier={SID_INSATS}|{decision}"),
        entry(plan, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                     "identifier": [{"system": SID_PLAN, "value": decision}], "subject": subject,
                     "goal": [{"reference": goal}], "activity": [{"reference": {"reference": request}}]},
              f"identifier={SID_PLAN}|{decision}"),
        entry(None, {"resourceType": "Provenance", "meta": {"tag": [{"system": TAG, "code": f"prov-{decision}"}]},
                     "target": [{"reference": request}, {"reference": plan}], "recorded": "2025-01-15T10:00:00+01:00",
                     "agent": [{"who": {"display": "Handläggare"}}]}, f"_tag={TAG}|prov-{decision}"),
    ]}


def counts(server: RunningServer) -> dict[str, int]:
    """Resources per type of TYPES on the server."""
    return {t: count(server.base_url, t) for t in TYPES}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """An HTTP client speaking FHIR JSON."""
    with httpx.Client(headers=FHIR_JSON, timeout=30.0) as c:
        yield c


def test_metadata_is_r4_with_conditional_create(fhir_server: RunningServer, client: httpx.Client) -> None:
    """GET /metadata: an R4 4.0.1 CapabilityStatement declaring conditional create."""
    response = client.get(f"{fhir_server.base_url}/metadata")
    assert response.status_code == 200
    cap = response.json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in cap["rest"][0]["resource"]}
    for rtype in ("Patient", "ServiceRequest", "CarePlan", "Task", "Provenance"):
        assert resources[rtype]["conditionalCreate"] is True


def test_transaction_of_conditional_creates_is_idempotent(fhir_server: RunningServer, client: httpx.Client) -> None:
    """A resent decision transaction creates nothing new and answers 200 for every entry."""
    bundle = decision_bundle(key(), key())
    before = counts(fhir_server)
    first = client.post(fhir_server.base_url, json=bundle)
    assert first.status_code == 200, first.text
    assert first.json()["type"] == "transaction-response"
    assert [status_code(e) for e in first.json()["entry"]] == [201] * 5
    after_first = counts(fhir_server)
    assert after_first == {t: n + 1 for t, n in before.items()}

    again = client.post(fhir_server.base_url, json=decision_bundle(*_keys_of(bundle)))
    assert again.status_code == 200, again.text
    assert [status_code(e) for e in again.json()["entry"]] == [200] * 5
    assert [entry_ref(e) for e in again.json()["entry"]] == [entry_ref(e) for e in first.json()["entry"]]
    assert counts(fhir_server) == after_first


def _keys_of(bundle: dict[str, Any]) -> tuple[str, str]:
    """(person, decision) keys a decision_bundle was built from."""
    person = bundle["entry"][0]["resource"]["identifier"][0]["value"]
    decision = bundle["entry"][2]["resource"]["identifier"][0]["value"]
    return person, decision


def test_urn_uuid_resolves_to_the_matched_resource(fhir_server: RunningServer, client: httpx.Client) -> None:
    """When a conditional create matches, references to its urn:uuid point at the existing resource."""
    person = key()
    first = client.post(fhir_server.base_url, json=decision_bundle(person, key())).json()
    patient_ref = entry_ref(first["entry"][0])
    second = client.post(fhir_server.base_url, json=decision_bundle(person, key()))
    assert second.status_code == 200, second.text
    entries = second.json()["entry"]
    assert status_code(entries[0]) == 200 and entry_ref(entries[0]) == patient_ref
    request = client.get(f"{fhir_server.base_url}/{entry_ref(entries[2])}").json()
    assert request["subject"]["reference"] == patient_ref
    assert request["extension"][0]["valueReference"]["reference"] == entry_ref(entries[1])
    plan = client.get(f"{fhir_server.base_url}/{entry_ref(entries[3])}").json()
    assert plan["activity"][0]["reference"]["reference"] == entry_ref(entries[2])


def test_if_none_exist_on_tag(fhir_server: RunningServer, client: httpx.Client) -> None:
    """``If-None-Exist: _tag=system|code`` finds the tagged resource (Goal, Provenance idempotency)."""
    code = key()
    goal = {"resourceType": "Goal", "meta": {"tag": [{"system": TAG, "code": code}]}, "lifecycleStatus": "active",
            "description": {"text": "x"}, "subject": {"display": "x"}}
    headers = {"If-None-Exist": f"_tag={TAG}|{code}"}
    created = client.post(f"{fhir_server.base_url}/Goal", json=goal, headers=headers)
    assert created.status_code == 201, created.text
    again = client.post(f"{fhir_server.base_url}/Goal", json=goal, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert count(fhir_server.base_url, "Goal", {"_tag": f"{TAG}|{code}"}) == 1


def test_if_match_stale_version_is_412(fhir_server: RunningServer, client: httpx.Client) -> None:
    """PUT with the current ETag succeeds; with a stale one it is 412 with an OperationOutcome."""
    created = client.post(f"{fhir_server.base_url}/Patient", json={"resourceType": "Patient", "active": True})
    assert created.status_code == 201
    patient, etag = created.json(), created.headers["ETag"]
    assert etag.startswith('W/"')
    url = f"{fhir_server.base_url}/Patient/{patient['id']}"
    updated = client.put(url, json={**patient, "active": False}, headers={"If-Match": etag})
    assert updated.status_code == 200 and updated.headers["ETag"] != etag
    stale = client.put(url, json={**patient, "active": True}, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert client.get(url).json()["active"] is False


def test_conditional_create_with_two_matches_is_412(fhir_server: RunningServer, client: httpx.Client) -> None:
    """If-None-Exist matching more than one resource is 412, alone and inside a transaction."""
    value = key()
    patient = {"resourceType": "Patient", "identifier": [{"system": PNR, "value": value}]}
    for _ in range(2):
        assert client.post(f"{fhir_server.base_url}/Patient", json=patient).status_code == 201
    alone = client.post(f"{fhir_server.base_url}/Patient", json=patient,
                        headers={"If-None-Exist": f"identifier={PNR}|{value}"})
    assert alone.status_code == 412 and alone.json()["issue"][0]["code"] == "multiple-matches"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": patient, "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={PNR}|{value}"}}]}
    in_transaction = client.post(fhir_server.base_url, json=bundle)
    assert in_transaction.status_code == 412
    assert count(fhir_server.base_url, "Patient", {"identifier": f"{PNR}|{value}"}) == 2


def test_vread_and_instance_history(fhir_server: RunningServer, client: httpx.Client) -> None:
    """Every version stays readable and _history lists them newest first."""
    created = client.post(f"{fhir_server.base_url}/Patient", json={"resourceType": "Patient", "active": True}).json()
    url = f"{fhir_server.base_url}/Patient/{created['id']}"
    client.put(url, json={**created, "active": False})
    old = client.get(f"{url}/_history/{created['meta']['versionId']}")
    assert old.status_code == 200 and old.json()["active"] is True
    history = client.get(f"{url}/_history").json()
    assert history["type"] == "history"
    assert [e["resource"]["active"] for e in history["entry"]] == [False, True]


def test_concurrent_identical_transactions_create_one_of_each(fhir_server: RunningServer) -> None:
    """Eight clients sending the same decision at once end with exactly one of each resource."""
    keys = (key(), key())
    before = counts(fhir_server)
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(headers=FHIR_JSON, timeout=60.0) as c:
            statuses.append(c.post(fhir_server.base_url, json=decision_bundle(*keys)).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    assert counts(fhir_server) == {t: n + 1 for t, n in before.items()}


def test_fifty_entry_transaction(fhir_server: RunningServer, client: httpx.Client) -> None:
    """A 50-entry transaction of conditional creates is accepted (Medplum's 8-entry limit is lifted)."""
    prefix = key()
    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {"resourceType": "Patient", "identifier": [{"system": PNR, "value": f"{prefix}-{i}"}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={PNR}|{prefix}-{i}"}}
               for i in range(50)]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    before = count(fhir_server.base_url, "Patient")
    for expected in (201, 200):
        response = client.post(fhir_server.base_url, json=bundle)
        assert response.status_code == 200, response.text
        assert {status_code(e) for e in response.json()["entry"]} == {expected}
    assert count(fhir_server.base_url, "Patient") == before + 50


def test_search_paging_and_count_agree(fhir_server: RunningServer, client: httpx.Client) -> None:
    """count() equals the matches found by following `next` links with a small page size."""
    code = key()
    for _ in range(7):
        client.post(f"{fhir_server.base_url}/Goal", json={
            "resourceType": "Goal", "meta": {"tag": [{"system": TAG, "code": code}]}, "lifecycleStatus": "active",
            "description": {"text": "x"}, "subject": {"display": "x"}})
    ids: list[str] = []
    url: str | None = f"{fhir_server.base_url}/Goal?_tag={TAG}|{code}&_count=3"
    while url:
        page = client.get(url).json()
        ids += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
    assert len(ids) == len(set(ids)) == 7
    assert count(fhir_server.base_url, "Goal", {"_tag": f"{TAG}|{code}"}) == 7


@pytest.mark.sekmet_only
def test_failed_transaction_is_rolled_back(fhir_server: RunningServer, client: httpx.Client) -> None:
    """SEKMET: a transaction with a failing entry leaves nothing behind (Medplum keeps earlier writes)."""
    value, dup = key(), key()
    for _ in range(2):
        client.post(f"{fhir_server.base_url}/Patient", json={"resourceType": "Patient",
                                                               "identifier": [{"system": PNR, "value": dup}]})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "identifier": [{"system": PNR, "value": value}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={PNR}|{dup}"}}]}
    assert client.post(fhir_server.base_url, json=bundle).status_code == 412
    assert count(fhir_server.base_url, "Patient", {"identifier": f"{PNR}|{value}"}) == 0


def test_medplum_failed_transaction_keeps_earlier_writes(medplum_server: RunningServer, client: httpx.Client) -> None:
    """Medplum (MemoryRepository): a failed transaction answers 4xx but is not rolled back."""
    value, dup = key(), key()
    for _ in range(2):
        client.post(f"{medplum_server.base_url}/Patient", json={"resourceType": "Patient",
                                                                 "identifier": [{"system": PNR, "value": dup}]})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "identifier": [{"system": PNR, "value": value}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={PNR}|{dup}"}}]}
    assert client.post(medplum_server.base_url, json=bundle).status_code == 412
    assert count(medplum_server.base_url, "Patient", {"identifier": f"{PNR}|{value}"}) == 1


def test_medplum_answers_like_sekmet_for_create_and_read(sekmet_server: RunningServer, medplum_server: RunningServer,
                                                          client: httpx.Client) -> None:
    """The same create and read give the same statuses, headers and resource content on both servers."""
    patient = {"resourceType": "Patient", "identifier": [{"system": PNR, "value": key()}], "active": True,
               "name": [{"family": "Andersson", "given": ["Anna"]}], "gender": "female", "birthDate": "1941-03-02"}
    answers = {}
    for server in (sekmet_server, medplum_server):
        created = client.post(f"{server.base_url}/Patient", json=patient)
        assert created.status_code == 201, created.text
        body = created.json()
        location = created.headers["Location"]
        assert location.startswith(f"{server.base_url}/Patient/{body['id']}/_history/")
        assert created.headers["ETag"] == f'W/"{body["meta"]["versionId"]}"'
        assert created.headers["Content-Type"].startswith("application/fhir+json")
        read = client.get(f"{server.base_url}/Patient/{body['id']}")
        assert read.status_code == 200 and read.headers["ETag"] == created.headers["ETag"]
        assert read.json() == body
        answers[server.name] = {k: v for k, v in body.items() if k not in ("id", "meta")}
        missing = client.get(f"{server.base_url}/Patient/{uuid.uuid4()}")
        assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert answers["sekmet"] == answers["medplum"] == patient


def test_sekmet_ignores_unknown_search_parameters(sekmet_server: RunningServer, client: httpx.Client) -> None:
    """SEKMET: Goal?identifier= is ignored in a search (returns everything) and refused in If-None-Exist."""
    client.post(f"{sekmet_server.base_url}/Goal", json={"resourceType": "Goal", "lifecycleStatus": "active",
                                                         "description": {"text": "x"}, "subject": {"display": "x"}})
    search = client.get(f"{sekmet_server.base_url}/Goal", params={"identifier": f"urn:x|{key()}"})
    assert search.status_code == 200 and search.json()["total"] == count(sekmet_server.base_url, "Goal") > 0
    conditional = client.post(f"{sekmet_server.base_url}/Goal", headers={"If-None-Exist": "identifier=urn:x|1"},
                              json={"resourceType": "Goal", "lifecycleStatus": "active",
                                    "description": {"text": "x"}, "subject": {"display": "x"}})
    assert conditional.status_code == 400


def test_sekmet_restart_keeps_data_and_stop_ends_the_process(server_factory: Callable[..., RunningServer],
                                                             tmp_path: Path) -> None:
    """Stopping SEKMET ends its process; starting it again on the same directory and port keeps the data."""
    server = server_factory("sekmet", workdir=tmp_path / "s")
    created = httpx.post(f"{server.base_url}/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON).json()
    port, base_url = server.port, server.base_url
    server.stop()
    assert not server.alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/metadata")
    again = server_factory("sekmet", workdir=tmp_path / "s", port=port)
    assert again.base_url == base_url and again.pid != server.pid
    assert httpx.get(f"{base_url}/Patient/{created['id']}").status_code == 200


def test_missing_sekmet_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bad CAREBRIDGE_SEKMET names the problem instead of hanging or starting something else."""
    monkeypatch.setenv("CAREBRIDGE_SEKMET", str(tmp_path / "no-such-sekmet"))
    with pytest.raises(StandinError, match="CAREBRIDGE_SEKMET"):
        start_sekmet(tmp_path)


def test_medplum_shim_index_gives_the_same_answers_as_a_full_scan(server_factory: Callable[..., RunningServer],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim's identifier/_tag index only narrows candidates: answers equal Medplum's full scan."""
    indexed = server_factory("medplum")
    monkeypatch.setenv("MEDPLUM_SHIM_INDEX", "0")
    scanning = server_factory("medplum")
    sys_a, sys_b = "urn:sys:a", "urn:sys:b"

    def load(server: RunningServer) -> None:
        with httpx.Client(headers=FHIR_JSON) as c:
            for n, (system, value, tag) in enumerate([(sys_a, "V1", "k1"), (sys_b, "V1", "K1"), (sys_a, "v2", "k2"),
                                                       (sys_a, "gone", "k3"), (sys_a, "old", "k4")]):
                base = {"meta": {"tag": [{"system": TAG, "code": tag}]}, "identifier": [{"system": system, "value": value}]}
                c.post(f"{server.base_url}/Patient", json={"resourceType": "Patient", "birthDate": f"190{n}", **base})
                c.post(f"{server.base_url}/Goal", json={"resourceType": "Goal", "lifecycleStatus": "active",
                                                        "description": {"text": f"{n}"}, "subject": {"display": "x"},
                                                        **base})
                c.post(f"{server.base_url}/DocumentReference", json={
                    "resourceType": "DocumentReference", "status": "current", "description": f"{n}",
                    "masterIdentifier": {"system": system, "value": value}, "content": [{"attachment": {}}]})
            gone = c.get(f"{server.base_url}/Patient", params={"identifier": f"{sys_a}|gone"}).json()["entry"][0]
            c.delete(f"{server.base_url}/Patient/{gone['resource']['id']}")
            old = c.get(f"{server.base_url}/Patient", params={"identifier": f"{sys_a}|old"}).json()["entry"][0]
            c.put(f"{server.base_url}/Patient/{old['resource']['id']}",
                  json={**old["resource"], "identifier": [{"system": sys_a, "value": "new"}]})

    def answers(server: RunningServer) -> list[list[str]]:
        out = []
        with httpx.Client(headers=FHIR_JSON) as c:
            for rtype, query in queries:
                bundle = c.get(f"{server.base_url}/{rtype}", params=query).json()
                out.append(sorted(str(e["resource"].get("birthDate") or e["resource"].get("description"))
                                  for e in bundle.get("entry", [])))
        return out

    queries = [(t, {p: v}) for t in ("Patient", "Goal", "DocumentReference") for p, v in [
        ("identifier", f"{sys_a}|V1"), ("identifier", "V1"), ("identifier", "v1"), ("identifier", f"{sys_a}|v1"),
        ("identifier", "|V1"), ("identifier", f"{sys_b}|V1"), ("identifier", f"{sys_a}|"), ("identifier", "V1,v2"),
        ("identifier", f"{sys_a}|gone"), ("identifier", f"{sys_a}|old"), ("identifier", f"{sys_a}|new"),
        ("_tag", f"{TAG}|k1"), ("_tag", "K1"), ("_tag", f"{TAG}|K1"), ("_tag", "urn:other|k1"), ("_tag", "k4")]]
    for server in (indexed, scanning):
        load(server)
    expected = answers(scanning)
    assert answers(indexed) == expected
    assert expected[queries.index(("Patient", {"identifier": f"{sys_a}|V1"}))] == ["1900"]
    assert expected[queries.index(("Patient", {"identifier": f"{sys_a}|new"}))] == ["1904"]
