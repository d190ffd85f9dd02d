"""The receiver: MedCom's four dedupe cases, identical acknowledgements, what is stored, errors, durability."""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from adapter.compliance import validate
from adapter.config import DeliverySettings
from adapter.gateway import Gateway
from adapter.messaging import DirectoryInbox, NotAMessageError, Receiver, SqlReceiptStore, TaskEffects
from adapter.messaging.receipts import receipts
from mappings import discharge, municipal_xml, systems
from mappings.models.discharge import DischargeEvent
from tests.flows.test_discharge_tasks import event_for, fresh_person, post_decision, server_tasks

ROOT = Path(__file__).parents[2]
FIXTURES = sorted(ROOT.joinpath("fixtures", "discharge").glob("*.json"))
NOW = dt.datetime(2026, 6, 2, 6, 41, 3, tzinfo=dt.timezone.utc)
FAST = DeliverySettings(round_attempts=2, round_seconds=2.0, backoff_initial=0.01, backoff_max=0.02, breaker_failures=100)


class ListInbox:
    """The municipal system's side as a list (a real Inbox, no mock)."""

    def __init__(self) -> None:
        self.events: list[DischargeEvent] = []

    def deliver(self, event: DischargeEvent) -> None:
        self.events.append(event)


def message(index: int = 0) -> dict:
    return discharge.to_fhir(DischargeEvent.model_validate_json(FIXTURES[index].read_text("utf-8")))


@pytest.fixture
def store(tmp_path: Path):
    s = SqlReceiptStore.open(f"sqlite:///{tmp_path}/carebridge.db")
    yield s
    s.close()


def receiver(store, **kw) -> Receiver:
    return Receiver(store, clock=lambda: NOW, **kw)


def codes(processed) -> list[str]:
    outcome = next((e["resource"] for e in processed.ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome"), {"issue": []})
    return [c["code"] for i in outcome["issue"] for c in (i.get("details") or {}).get("coding", ()) if c["system"] == systems.CS_ACK_ERROR]


def stored_rows(store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(receipts.select()).all())


# --- the four cases ------------------------------------------------------------------------------


def test_both_new_is_processed_acknowledged_ok_and_stored(store) -> None:
    inbox = ListInbox()
    bundle = message(0)
    out = receiver(store, inbox=inbox).process(bundle)
    assert out.code == "ok" and not out.duplicate
    header = out.ack["entry"][0]["resource"]
    assert header["response"] == {"identifier": bundle["entry"][0]["resource"]["id"], "code": "ok"}
    assert inbox.events == [discharge.from_fhir(bundle)]
    assert store.seen(bundle["id"], bundle["entry"][0]["resource"]["id"]).same.acknowledgement == out.acknowledgement
    assert [i for i in validate(out.ack)["issue"] if i["severity"] in ("error", "fatal")] == []


def test_both_seen_gets_the_same_acknowledgement_byte_for_byte_and_nothing_happens(store) -> None:
    inbox = ListInbox()
    bundle = message(1)
    first = receiver(store, inbox=inbox).process(bundle)
    later = Receiver(store, inbox=inbox, clock=lambda: NOW + dt.timedelta(minutes=31))
    again = later.process(copy.deepcopy(bundle))
    assert again.duplicate and again.code == "ok"
    assert again.acknowledgement == first.acknowledgement
    assert later.receive(json.dumps(bundle).encode()) == first.acknowledgement
    assert len(inbox.events) == 1 and stored_rows(store) == 1


def test_header_seen_in_a_new_bundle_is_rejected_and_not_processed_twice(store) -> None:
    inbox = ListInbox()
    bundle = message(0)
    receiver(store, inbox=inbox).process(bundle)
    resubmitted = copy.deepcopy(bundle)
    resubmitted["id"] = str(uuid.uuid4())
    resubmitted["identifier"] = discharge.bundle_identifier(resubmitted["id"])
    out = receiver(store, inbox=inbox).process(resubmitted)
    assert out.code == "fatal-error" and codes(out) == ["dubblett-meddelandehuvud"]
    assert len(inbox.events) == 1
    assert receiver(store, inbox=inbox).process(resubmitted).acknowledgement == out.acknowledgement
    assert [i for i in validate(out.ack)["issue"] if i["severity"] in ("error", "fatal")] == []


def test_a_reused_bundle_id_is_an_error(store) -> None:
    inbox = ListInbox()
    first, second = message(0), message(1)
    receiver(store, inbox=inbox).process(first)
    second["id"] = first["id"]
    second["identifier"] = first["identifier"]
    out = receiver(store, inbox=inbox).process(second)
    assert out.code == "fatal-error" and codes(out) == ["bundle-id-ateranvant"]
    assert len(inbox.events) == 1


def test_receipts_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/carebridge.db"
    bundle = message(2)
    one = SqlReceiptStore.open(url)
    first = receiver(one).process(bundle)
    one.close()
    two = SqlReceiptStore.open(url)
    try:
        again = receiver(two).process(bundle)
    finally:
        two.close()
    assert again.duplicate and again.acknowledgement == first.acknowledgement


def test_a_concurrent_duplicate_gets_the_same_acknowledgement(store) -> None:
    bundle = message(3)
    results: list[bytes] = []
    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        r = Receiver(store, clock=lambda: NOW + dt.timedelta(seconds=n))
        barrier.wait()
        results.append(r.process(copy.deepcopy(bundle)).acknowledgement)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert stored_rows(store) == 1


# --- what is refused ------------------------------------------------------------------------------


def test_an_event_this_receiver_does_not_take(store) -> None:
    bundle = message(0)
    bundle["entry"][0]["resource"]["eventCoding"] = {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messageEvents", "code": "hospital-notification-message"}
    out = receiver(store).process(bundle)
    assert out.code == "fatal-error" and codes(out) == ["meddelandetyp-stods-ej"]


def test_a_message_for_another_organisation(store) -> None:
    out = receiver(store, serves={"SE2321000164-SN01"}).process(message(0))
    assert out.code == "fatal-error" and codes(out) == ["okand-mottagare"]
    assert receiver(store, serves={"2120000134"}).process(message(1)).code == "ok"


def test_a_message_that_carries_more_than_its_purpose_is_refused_with_the_rule_issues(store) -> None:
    inbox = ListInbox()
    bundle = message(0)
    next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")["telecom"] = [{"system": "phone", "value": "+46701234567"}]
    out = receiver(store, inbox=inbox).process(bundle)
    assert out.code == "fatal-error" and codes(out) == ["ogiltigt-meddelande"]
    outcome = next(e["resource"] for e in out.ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    assert "Patient.telecom" in outcome["issue"][1]["details"]["text"]
    assert outcome["issue"][1]["expression"] == ["Bundle.entry[2].resource.telecom"]
    assert "193802142384" not in out.acknowledgement.decode()
    assert inbox.events == []
    assert receiver(store).process(bundle).acknowledgement == out.acknowledgement  # stored: a resend gets the same answer


def test_a_message_the_model_cannot_read(store) -> None:
    bundle = message(1)
    com = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication")
    com.pop("note")
    out = Receiver(store, validator=None, clock=lambda: NOW).process(bundle)
    assert out.code == "fatal-error" and codes(out) == ["ogiltigt-meddelande"]
    assert "planning.summary" in out.ack["entry"][-2]["resource"]["issue"][0]["details"]["text"]


def test_input_that_is_not_a_message_cannot_be_acknowledged(store) -> None:
    r = receiver(store)
    with pytest.raises(NotAMessageError):
        r.receive(b"<Bundle/>")
    with pytest.raises(NotAMessageError):
        r.process({"resourceType": "Bundle", "type": "transaction", "entry": []})
    with pytest.raises(NotAMessageError):
        r.process({"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "Patient"}}]})


def test_a_message_without_bundle_id_is_refused_and_not_stored(store) -> None:
    bundle = message(0)
    bundle.pop("id")
    out = receiver(store).process(bundle)
    assert out.code == "fatal-error" and stored_rows(store) == 0


# --- error paths of the side effects (mock transports) -----------------------------------------


def _gateway(handler) -> Gateway:
    return Gateway("http://region.invalid/fhir", FAST, transport=httpx.MockTransport(handler), sleep=lambda s: None)


def test_a_server_that_is_down_gives_transient_error_and_nothing_is_stored(store) -> None:
    inbox = ListInbox()
    bundle = message(0)
    with _gateway(lambda request: httpx.Response(503, json={"resourceType": "OperationOutcome", "issue": []})) as gw:
        out = receiver(store, effects=TaskEffects(gw), inbox=inbox).process(bundle)
    assert out.code == "transient-error" and codes(out) == ["tillfalligt-fel"]
    assert out.ack["entry"][0]["resource"]["response"]["code"] == "transient-error"
    assert stored_rows(store) == 0 and inbox.events == []
    assert [i for i in validate(out.ack)["issue"] if i["severity"] in ("error", "fatal")] == []
    # the sender's resend is processed afresh once the server is back
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    with _gateway(lambda request: httpx.Response(200, json=empty)) as gw:
        again = receiver(store, effects=TaskEffects(gw), inbox=inbox).process(bundle)
    assert again.code == "ok" and not again.duplicate and len(inbox.events) == 1


def test_a_server_that_refuses_gives_fatal_error_for_manual_handling(store) -> None:
    refusal = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no access"}]}
    with _gateway(lambda request: httpx.Response(403, json=refusal)) as gw:
        out = receiver(store, effects=TaskEffects(gw)).process(message(0))
    assert out.code == "fatal-error" and codes(out) == ["bearbetning-misslyckades"]
    assert stored_rows(store) == 1


# --- the municipal system's copy ------------------------------------------------------------------


def test_directory_inbox_writes_canonical_json_and_xml(store, tmp_path: Path) -> None:
    bundle = message(1)
    receiver(store, inbox=DirectoryInbox(tmp_path / "in")).process(bundle)
    event = discharge.from_fhir(bundle)
    assert DischargeEvent.model_validate_json((tmp_path / "in" / f"{event.message_id}.json").read_bytes()) == event
    assert municipal_xml.from_xml((tmp_path / "in" / f"{event.message_id}.xml").read_bytes()) == event
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [f"{event.message_id}.json", f"{event.message_id}.xml"]


# --- with the regional server ----------------------------------------------------------------------


@pytest.mark.integration
def test_an_admission_arriving_after_the_discharge_does_not_pause(store, sekmet_server) -> None:
    pnr = fresh_person()
    post_decision(sekmet_server.base_url, pnr)
    with Gateway(sekmet_server.base_url) as gw:
        r = receiver(store, effects=TaskEffects(gw))
        assert r.process(discharge.to_fhir(event_for(pnr, 5))).changes == []
        late = r.process(discharge.to_fhir(event_for(pnr, 0)))
    assert late.code == "ok" and late.changes == []
    assert {t["status"] for t in server_tasks(sekmet_server.base_url, pnr).values()} == {"requested"}
