"""The outbox on SQLite and PostgreSQL, without a FHIR server: intake, order, holds, leases, replay, audit."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import select, update

from adapter import audit
from adapter.outbox import DEAD, DELIVERED, PENDING, REJECTED, Outbox
from adapter.outbox.intake import Prepared, dump
from adapter.outbox.migrate import current_revision, head
from adapter.outbox.schema import audit_event_persons, messages
from tests.gateway.conftest import FAST
from tests.gateway.payloads import decisions

DEST = "http://127.0.0.1:9/fhir"


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path) -> Outbox:  # type: ignore[no-untyped-def]
    """A fresh outbox on each backend."""
    url = f"sqlite:///{tmp_path / 'o.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    box = Outbox.open(url, FAST)
    yield box
    box.close()


def _update(person: str, n: int) -> Prepared:
    """A small valid-looking update payload for one person (skips validation: ordering is the subject here)."""
    task = {"resourceType": "Task", "identifier": [{"system": "urn:x", "value": f"{person}-{n}"}], "status": "accepted",
            "intent": "order", "for": {"identifier": {"system": "http://electronichealth.se/identifier/personnummer",
                                                      "value": person}}}
    return Prepared("update", task, dump(task), {"resourceType": "OperationOutcome", "issue": []})


def _force(box: Outbox, message_id: int, **values: object) -> None:
    with box.engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def test_migrations_run_once_and_are_at_head(outbox: Outbox) -> None:
    with outbox.engine.connect() as conn:
        assert current_revision(conn) == head()
    from adapter.outbox.migrate import upgrade

    upgrade(outbox.engine)  # second run: no-op
    with outbox.engine.connect() as conn:
        assert current_revision(conn) == head()


def test_the_api_tables_are_made_by_the_migrations(outbox: Outbox) -> None:
    from sqlalchemy import inspect

    from adapter.api import store

    found = inspect(outbox.engine)
    for table in store.metadata.sorted_tables:
        assert {c["name"] for c in found.get_columns(table.name)} == set(table.c.keys())
        assert [c for c in found.get_pk_constraint(table.name)["constrained_columns"]] == \
            [c.name for c in table.primary_key.columns]


def _upgrade_to(engine, revision: str) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.config import Config

    from adapter.outbox.migrate import SCRIPT_LOCATION

    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPT_LOCATION))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_api_tables_an_older_api_created_itself_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapter.api import store
    from adapter.outbox.db import make_engine
    from adapter.outbox.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade_to(engine, "0004")
    store.metadata.create_all(engine)  # what the API did at start before migration 0005
    assert store.claim_change(engine, "server|Task/1|1")
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head()
    assert not store.claim_change(engine, "server|Task/1|1")  # the row survived
    engine.dispose()


def test_valid_document_is_queued_with_a_hashed_person_key(outbox: Outbox, tag: str) -> None:
    doc = decisions(tag, 1, 1)[0]
    pnr = json.loads(doc)["person"]["personnummer"]
    accepted = outbox.accept(doc, DEST, source="d.json")
    assert accepted.status == PENDING, accepted.problem
    m = outbox.get(accepted.message_id)
    assert m.kind == "transaction" and m.seq == 1 and m.status == PENDING
    assert pnr not in m.person_key and len(m.person_key) == 64
    assert m.person_label == pnr[:6] + "******"
    assert m.payload["type"] == "transaction"


def test_invalid_document_is_kept_rejected_with_its_outcome_and_audited(outbox: Outbox, tag: str) -> None:
    doc = json.loads(decisions(tag, 1, 1)[0])
    bad = json.dumps({**doc, "person": {**doc["person"], "personnummer": "193802142385"}}).encode()  # bad Luhn
    accepted = outbox.accept(bad, DEST, source="bad.json")
    assert accepted.status == REJECTED and accepted.problem
    assert outbox.get(accepted.message_id).status == REJECTED
    dead = outbox.dead()
    assert [d["stage"] for d in dead] == ["validation"] and dead[0]["outcome"]["resourceType"] == "OperationOutcome"
    with outbox.engine.connect() as conn:
        events = audit.events(conn, message_id=accepted.message_id)
    assert [e["outcome"] for e in events] == [audit.MINOR_FAILURE]
    assert "193802142385" not in json.dumps(events)


def _rules(outcome: dict) -> set[str]:
    return {c["code"] for i in outcome["issue"] if i["severity"] in ("error", "fatal")
            for c in (i.get("details") or {}).get("coding", ())}


def test_consent_is_checked_for_the_huvudman_of_the_destination(outbox: Outbox, tag: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(decisions(tag, 1, 1)[0])
    del doc["samtycke"]
    data = json.dumps(doc).encode()
    to_region = outbox.accept(data, DEST)  # the default destination: a region
    assert to_region.status == REJECTED and _rules(to_region.outcome) == {"se-consent"}
    assert "crosses huvudmän" in (to_region.problem or "")
    assert outbox.accept(data, DEST, receiver_huvudman="kommun").status == PENDING
    refused = outbox.replay(to_region.message_id, actor="x", new_data=data)  # an edit is checked the same way
    assert refused.status == "refused" and _rules(refused.outcome) == {"se-consent"}
    assert outbox.replay(to_region.message_id, actor="x", new_data=data, receiver_huvudman="kommun").status == PENDING
    monkeypatch.setenv("CAREBRIDGE_RECEIVER_HUVUDMAN", "kommun")
    assert outbox.accept(data, DEST + "/kommun").status == PENDING
    monkeypatch.setenv("CAREBRIDGE_RECEIVER_HUVUDMAN", "region")
    assert outbox.accept(data, DEST + "/kommun").status == REJECTED


def test_a_fhir_bundle_refused_on_arrival_keeps_the_compliance_engines_outcome(tag: str) -> None:
    from adapter.outbox.intake import prepare
    from tests.gateway.payloads import bundles

    bundle = bundles(decisions(tag, 1, 1))[0]
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["status"] = "bogus"
    prepared = prepare(json.dumps(bundle).encode())
    assert not prepared.ok and prepared.payload is None
    errors = [i for i in prepared.outcome["issue"] if i["severity"] == "error"]
    assert errors and all("bogus" in i["details"]["text"] for i in errors)
    assert all(i["expression"][0].startswith("Bundle.entry[") and i["expression"][0].endswith(".status") for i in errors)


def test_non_idempotent_transaction_is_refused(outbox: Outbox, tag: str) -> None:
    from adapter.outbox.intake import idempotency_problems

    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]}
    assert idempotency_problems("transaction", bundle)[0]["expression"] == ["Bundle.entry[0].request"]
    accepted = outbox.accept(json.dumps(bundle).encode(), DEST)
    assert accepted.status == REJECTED and "ifNoneExist" in (accepted.problem or "")


def test_unreadable_document_is_kept_as_rejected(outbox: Outbox) -> None:
    accepted = outbox.accept(b"this is not a document", DEST, source="junk.txt")
    assert accepted.status == REJECTED
    assert outbox.get(accepted.message_id).payload_text == "this is not a document"


def test_one_message_per_person_at_a_time_in_seq_order(outbox: Outbox) -> None:
    a = [outbox.enqueue_prepared(_update("191212121212", n), DEST).message_id for n in range(3)]
    b = [outbox.enqueue_prepared(_update("194005051234", n), DEST).message_id for n in range(2)]
    first = outbox.claim("w1", DEST, limit=10)
    assert sorted(m.id for m in first) == [a[0], b[0]]  # heads only
    assert outbox.claim("w2", DEST, limit=10) == []  # the rest wait behind a leased head
    by_id = {m.id: m for m in first}
    outbox.mark_delivered(by_id[a[0]], "w1", http_status=200, summary={})
    assert [m.id for m in outbox.claim("w2", DEST, limit=10)] == [a[1]]


def test_expired_lease_is_taken_over_and_the_old_owner_cannot_record(outbox: Outbox) -> None:
    mid = outbox.enqueue_prepared(_update("191212121212", 0), DEST).message_id
    [m] = outbox.claim("crashed", DEST)
    _force(outbox, mid, lease_expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
    [again] = outbox.claim("rescuer", DEST)
    assert again.id == mid and again.attempts == 2
    from adapter.outbox import LeaseLost

    with pytest.raises(LeaseLost):
        outbox.mark_delivered(m, "crashed", http_status=200, summary={})
    outbox.mark_delivered(again, "rescuer", http_status=200, summary={})
    assert outbox.get(mid).status == DELIVERED


def test_renewed_lease_keeps_the_message(outbox: Outbox) -> None:
    box = Outbox(outbox.engine, replace(FAST, lease_seconds=0.5))
    box.enqueue_prepared(_update("191212121212", 0), DEST)
    [m] = box.claim("w1", DEST)
    for _ in range(3):
        time.sleep(0.25)
        assert box.renew("w1", [m.id]) == 1
    assert box.claim("w2", DEST) == []


def test_dead_letter_holds_only_its_person_until_the_hold_ends(outbox: Outbox) -> None:
    box = Outbox(outbox.engine, replace(FAST, dead_letter_hold=0.6))
    a0, a1 = (box.enqueue_prepared(_update("191212121212", n), DEST).message_id for n in range(2))
    b0 = box.enqueue_prepared(_update("194005051234", 0), DEST).message_id
    claimed = {m.id: m for m in box.claim("w", DEST, limit=5)}
    box.dead_letter(claimed[a0], "w", stage="delivery", error="HTTP 422", http_status=422,
                    outcome={"resourceType": "OperationOutcome", "issue": []})
    box.mark_delivered(claimed[b0], "w", http_status=200, summary={})
    assert box.claim("w", DEST, limit=5) == []  # a1 is held behind the dead letter
    assert box.waiting(DEST)["held"] == 1
    time.sleep(0.7)
    assert [m.id for m in box.claim("w", DEST, limit=5)] == [a1]  # hold over: the queue moves on


def test_replay_with_edit_keeps_the_original_and_returns_to_its_place(outbox: Outbox, tag: str) -> None:
    docs = decisions(tag, 2, 1)
    first = outbox.accept(docs[0], DEST).message_id
    second = outbox.accept(docs[1], DEST).message_id
    [m] = outbox.claim("w", DEST)
    outbox.dead_letter(m, "w", stage="delivery", error="HTTP 422: bad", http_status=422, outcome=None)
    original = outbox.get(first).payload_text
    edited = json.loads(docs[0])
    edited["motivation"] = "Rättad motivering."
    result = outbox.replay(first, actor="handlaggare1", new_data=json.dumps(edited).encode(), reason="typo")
    assert result.status == PENDING
    trail = outbox.edits(first)
    assert [(e["action"], e["actor"], e["reason"]) for e in trail] == [("edit", "handlaggare1", "typo")]
    assert trail[0]["old_payload"] == original and "Rättad motivering." in trail[0]["new_payload"]
    assert outbox.dead() == [] and outbox.dead(include_resolved=True)[0]["resolution"] == "replayed"
    [again] = outbox.claim("w", DEST, limit=5)
    assert again.id == first and again.seq == 1  # before the second message, as originally
    assert outbox.get(second).status == PENDING
    with outbox.engine.connect() as conn:
        actions = [e["subtype"][0]["code"] for e in audit.events(conn, message_id=first)]
    assert len(actions) == 2  # dead letter + edit


def test_replay_refuses_an_invalid_edit_and_changes_nothing(outbox: Outbox, tag: str) -> None:
    mid = outbox.accept(decisions(tag, 1, 1)[0], DEST).message_id
    [m] = outbox.claim("w", DEST)
    outbox.dead_letter(m, "w", stage="delivery", error="HTTP 422", http_status=422, outcome=None)
    result = outbox.replay(mid, actor="x", new_data=b'{"kind": "decision"}')
    assert result.status == "refused"
    assert outbox.get(mid).status == DEAD and outbox.edits(mid) == []


def test_discard_releases_the_hold(outbox: Outbox) -> None:
    a0, a1 = (outbox.enqueue_prepared(_update("191212121212", n), DEST).message_id for n in range(2))
    [m] = outbox.claim("w", DEST)
    outbox.dead_letter(m, "w", stage="delivery", error="HTTP 422", http_status=422, outcome=None)
    assert outbox.claim("w", DEST) == []
    outbox.discard(a0, actor="ops", reason="duplicate of another decision")
    assert [x.id for x in outbox.claim("w", DEST)] == [a1]
    assert outbox.edits(a0)[0]["action"] == "discard"


def test_concurrent_enqueues_for_one_person_get_distinct_ordered_seqs(outbox: Outbox) -> None:
    errors: list[BaseException] = []

    def enqueue(n: int) -> None:
        try:
            for k in range(5):
                outbox.enqueue_prepared(_update("191212121212", n * 10 + k), DEST)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with outbox.engine.connect() as conn:
        seqs = sorted(r[0] for r in conn.execute(select(messages.c.seq)))
    assert seqs == list(range(1, 21))


def test_concurrent_claimers_never_share_a_message_or_overlap_a_person(outbox: Outbox, tag: str) -> None:
    persons = [f"19{n:02d}0101{n:03d}0" for n in range(10, 16)]
    for k in range(5):
        for p in persons:
            outbox.enqueue_prepared(_update(p, k), DEST)
    log: list[tuple[str, int, int, float, float]] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while True:
            claimed = outbox.claim(name, DEST, limit=2)
            if not claimed:
                if outbox.waiting(DEST)["due"] + outbox.waiting(DEST)["leased"] == 0:
                    return
                time.sleep(0.01)
                continue
            for m in claimed:
                start = time.monotonic()
                time.sleep(0.005)
                end = time.monotonic()
                outbox.mark_delivered(m, name, http_status=200, summary={})
                with lock:
                    log.append((m.person_key, m.seq, m.id, start, end))

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(x[2] for x in log) == sorted(m.id for m in outbox.list(limit=100))  # each exactly once
    by_person: dict[str, list[tuple[int, float, float]]] = {}
    for key, seq, _id, start, end in log:
        by_person.setdefault(key, []).append((seq, start, end))
    for runs in by_person.values():
        runs.sort(key=lambda r: r[1])
        assert [r[0] for r in runs] == sorted(r[0] for r in runs)  # in seq order
        assert all(a[2] <= b[1] for a, b in zip(runs, runs[1:]))  # never two at once


def test_transfer_audit_event_is_fhir_and_names_no_personnummer(outbox: Outbox, tag: str) -> None:
    doc = decisions(tag, 1, 1)[0]
    pnr = json.loads(doc)["person"]["personnummer"]
    mid = outbox.accept(doc, DEST).message_id
    [m] = outbox.claim("worker-a", DEST)
    outbox.mark_delivered(m, "worker-a", http_status=200, summary={"created": 11})
    with outbox.engine.connect() as conn:
        [event] = audit.events(conn, message_id=mid)
    from fhir.resources.R4B.auditevent import AuditEvent

    AuditEvent.model_validate(event)
    assert event["outcome"] == audit.SUCCESS and event["agent"][0]["who"]["display"] == "worker-a"
    assert pnr not in json.dumps(event)
    organisation = json.loads(doc)["municipality"]["hsa_id"]
    assert any(a["who"].get("identifier", {}).get("value") == organisation for a in event["agent"])


def _about_two_persons(first: str, second: str) -> dict:
    """A transaction Bundle about two persons (a Patient each)."""
    from mappings import systems

    def patient(pnr: str) -> dict:
        return {"fullUrl": f"urn:uuid:{pnr}", "request": {"method": "POST", "url": "Patient",
                                                            "ifNoneExist": f"identifier={systems.PERSONNUMMER}|{pnr}"},
                "resource": {"resourceType": "Patient", "identifier": [{"system": systems.PERSONNUMMER, "value": pnr}]}}

    return {"resourceType": "Bundle", "id": f"{first}-{second}", "type": "transaction",
            "entry": [patient(first), patient(second)]}


def test_audit_events_about_several_persons_are_found_by_each_of_them(outbox: Outbox) -> None:
    from adapter.outbox.subjects import Subject

    first, second, other = "191212121212", "194005051234", "193802142384"
    bundle = _about_two_persons(first, second)
    ok = Prepared("transaction", bundle, dump(bundle), {"resourceType": "OperationOutcome", "issue": []})
    refused = Prepared("transaction", bundle, dump(bundle), {"resourceType": "OperationOutcome", "issue": []},
                       problem="invalid Bundle: test")
    mid = outbox.enqueue_prepared(ok, DEST).message_id
    rid = outbox.enqueue_prepared(refused, DEST).message_id
    outbox.enqueue_prepared(_update(other, 0), DEST)
    m = outbox.get(mid)
    keys = [outbox.key_of(Subject(p, None, "")) for p in (first, second)]
    assert [k for k, _ in m.every_person] == keys and m.person_key not in keys  # ordered as one, named as two
    assert m.person_label == "191212****** +1"
    [claimed, _] = outbox.claim("w", DEST, limit=5)
    outbox.mark_delivered(claimed, "w", http_status=200, summary={"created": 2})
    with outbox.engine.connect() as conn:
        by_person = [[(e["subtype"][1]["code"], e["entity"][-1]["what"]["identifier"]["value"])
                      for e in audit.events(conn, person_key=k)] for k in keys]
        transfer = audit.events(conn, message_id=mid)[0]
        by_joined = audit.events(conn, person_key=m.person_key)
        by_other = audit.events(conn, person_key=outbox.key_of(Subject(other, None, "")))
    assert by_person[0] == by_person[1] == [("transfer", str(mid)), ("reject", str(rid))]
    assert len(by_joined) == 2  # the key that orders them still finds them
    assert by_other == []  # nobody else's
    named = [e["what"]["identifier"]["value"] for e in transfer["entity"] if e["type"]["code"] == "1"]
    assert named == keys and [e.get("name") for e in transfer["entity"][:2]] == ["191212******", "194005******"]
    assert first not in json.dumps(transfer) and second not in json.dumps(transfer)
    with outbox.engine.connect() as conn:  # one row per person of each such event, none for one person's events
        assert sorted(conn.execute(select(audit_event_persons.c.person_key)).scalars()) == sorted(keys * 2)


def test_migration_makes_older_audit_events_about_several_persons_findable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from adapter.outbox.db import make_engine
    from adapter.outbox.subjects import Subject, person_key

    first, second = "191212121212", "194005051234"
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade_to(engine, "0005")
    now = audit._now()
    with engine.begin() as conn:  # what revision 0005 stored: the joined key and label only
        secret = conn.execute(text("SELECT value FROM outbox_settings")).scalar_one()
        joined = person_key(secret, Subject(f"{first}+{second}", None, ""))
        conn.execute(text(
            "INSERT INTO outbox_messages (id, destination, kind, person_key, person_label, seq, correlation_id, "
            "payload_hash, status, attempts, next_attempt_at, created_at, updated_at) VALUES (1, :d, 'transaction', "
            ":k, '191212*******************', 1, 'c', 'h', 'delivered', 1, :now, :now, :now)"),
            {"d": DEST, "k": joined, "now": now.replace(tzinfo=None)})
        conn.execute(text("INSERT INTO outbox_payloads (message_id, payload) VALUES (1, :p)"),
                     {"p": json.dumps(_about_two_persons(first, second))})
        for action in ("transfer", "access"):
            event = audit.transfer_event(action=action, outcome=audit.SUCCESS, outcome_text="x", interaction="transaction",
                                         destination=DEST, person_key=joined, person_label=None, organisation=None,
                                         message_id=1, correlation_id="c")
            conn.execute(text("INSERT INTO audit_events (id, recorded, action, outcome, person_key, message_id, resource) "
                              "VALUES (:id, :r, :a, '0', :k, 1, :res)"),
                         {"id": event["id"], "r": now.replace(tzinfo=None), "a": action, "k": joined,
                          "res": json.dumps(event)})
    engine.dispose()
    box = Outbox.open(f"sqlite:///{tmp_path / 'old.db'}", FAST)
    try:
        m = box.get(1)
        assert [k for k, _ in m.every_person] == [box.key_of(Subject(p, None, "")) for p in (first, second)]
        assert m.person_label == "191212****** +1"
        with box.engine.connect() as conn:
            for pnr in (first, second):
                found = audit.events(conn, person_key=box.key_of(Subject(pnr, None, "")))
                assert sorted(e["subtype"][1]["code"] for e in found) == ["access", "transfer"]
    finally:
        box.close()


def test_bulk_enqueue_continues_each_persons_sequence(outbox: Outbox, tag: str) -> None:
    first = outbox.accept(decisions(tag, 1, 1)[0], DEST)
    from adapter.outbox.intake import prepare

    docs = decisions(tag, 4, 2)  # persons alternate; person 0 is the one above
    bad = prepare(b'{"kind": "decision"}')
    accepted = outbox.enqueue_many([prepare(d) for d in docs] + [bad], DEST, sources=[f"d{n}" for n in range(5)])
    assert [a.status for a in accepted] == [PENDING] * 4 + [REJECTED]
    seqs = [outbox.get(a.message_id).seq for a in accepted[:4]]
    assert seqs == [2, 1, 3, 2] and outbox.get(first.message_id).seq == 1
    assert outbox.dead()[0]["stage"] == "validation"
