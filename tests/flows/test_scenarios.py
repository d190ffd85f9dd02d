"""Whole scenarios against a real regional server (SEKMET), through the real receiver, outbox and gateway.

(a) Astrid Berglund has hemtjänst (decision HAN-2026-0412, sent first). She is admitted to
    Södersjukhuset: her provider Tasks go on hold. Planning information and utskrivningsklar
    (recalled once, then given again) arrive; an SPU is agreed with her consent and delivered;
    she is discharged home and the Tasks resume. Kommunal rehab makes a rehab plan at discharge,
    follows it up on day 5 and closes it.
(b) A SIP without consent is refused before it leaves: nothing reaches the server.
(c) A duplicate discharge message gets the same acknowledgement and changes nothing on the server.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import httpx
import pytest

from adapter import conversion
from tests.readback import read_back_created as read_back
from adapter.compliance import validate
from adapter.compliance.outcome import rule_of
from adapter.gateway import Gateway
from adapter.messaging import DirectoryInbox, Receiver, SqlReceiptStore, TaskEffects
from adapter.outbox import DELIVERED, REJECTED, Outbox, Worker
from adapter.standin import count
from mappings import discharge, rehab_plan, sip, systems
from mappings.models.discharge import DischargeEvent
from mappings.models.rehab_plan import RehabPlan
from mappings.models.sip import CoordinatedPlan
from tests.flows.test_discharge_tasks import event_for, fresh_person, post_decision

ROOT = Path(__file__).parents[2]
DISCHARGE = sorted(ROOT.joinpath("fixtures", "discharge").glob("*.json"))
ASTRID = "193802142384"
HAMTJANST_TASKS = ("HAN-2026-0412/1", "HAN-2026-0412/2")
ALL_TYPES = ("Patient", "Organization", "Practitioner", "RelatedPerson", "Condition", "Goal", "ServiceRequest", "Observation",
             "Consent", "CareTeam", "CarePlan", "Provenance", "Task", "Encounter", "Communication", "Bundle")
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def task(client: httpx.Client, business_id: str) -> dict:
    found = client.get("Task", params={"identifier": f"{systems.SID_TASK}|{business_id}"}).raise_for_status().json()
    matches = [e["resource"] for e in found.get("entry", ()) if (e.get("search") or {}).get("mode", "match") == "match"]
    assert len(matches) == 1, business_id
    return matches[0]


def set_status(client: httpx.Client, resource: dict, status: str) -> dict:
    """The utförare's own versioned update of its Task (If-Match)."""
    response = client.put(f"Task/{resource['id']}", json={**resource, "status": status},
                          headers={**FHIR_JSON, "If-Match": f'W/"{resource["meta"]["versionId"]}"'})
    assert response.status_code == 200, response.text[:300]
    return response.json()


def counts(base_url: str) -> dict[str, int]:
    return {t: count(base_url, t) for t in ALL_TYPES}


def no_errors(outcome: dict) -> list[tuple]:
    return [(rule_of(i), i.get("expression"), i["details"]["text"]) for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def rehab_plan_for_astrid(stage: str) -> RehabPlan:
    """Kommunal rehab's plan from the day Astrid comes home: 'created', 'day5' (followed up) or 'closed'."""
    pt = {"name": "Jonas Berg", "hsa_id": "SE2120000134-FT07", "title": "Fysioterapeut"}
    doc = {
        "kind": "rehab-plan", "plan_id": "HAN-RP-2026-0117",
        "person": {"personnummer": ASTRID, "given_name": "Astrid", "family_name": "Berglund"},
        "organisation": {"name": "Haninge kommun, kommunal rehabilitering", "hsa_id": "SE2120000134-REH1", "kind": "kommunal"},
        "huvudman": "kommun", "responsible": pt, "start": "2026-06-12",
        "assessment": {"assessed_on": "2026-06-12", "assessed_by": pt,
                       "summary": "Astrid, 88 år, hemkommen efter höftnära fraktur. Går med rollator inomhus med tillsyn; osäker vid vändning.",
                       "what_matters": "Att kunna gå till köket själv.",
                       "findings": [{"finding_id": "f1", "component": "aktivitet-delaktighet", "icf_code": "d450", "text": "Går kortare sträckor inomhus med rollator och tillsyn"}]},
        "goals": [{"goal_id": "m1", "text": "Jag vill kunna gå till köket själv."},
                  {"goal_id": "d1", "text": "Jag vill resa mig ur sängen utan hjälp.", "parent_goal_id": "m1", "icf_code": "d410"}],
        "actions": [{"action_id": "a1", "what": "Gång- och balansträning i hemmet (SPU-insats K2)", "kind": "vard", "status": "pagaende", "huvudman": "kommun",
                     "responsible_staff": pt, "start": "2026-06-15", "frequency": {"times": 3, "per": "week"}, "minutes_per_session": 30, "goal_ids": ["m1", "d1"]}],
        "followups": [{"followup_id": "u1", "planned_on": "2026-06-17", "trigger": "planerad", "note": "Uppföljning dag 5 efter hemkomst"}],
        "events": [{"event_id": "h1", "code": "AW020", "date": "2026-06-12", "performed_by": pt}],
    }
    if stage in ("day5", "closed"):
        doc["events"].append({"event_id": "h2", "code": "AW024", "date": "2026-06-17", "performed_by": pt, "followup_id": "u1",
                              "note": "Dag 5: reser sig själv ur sängen och går till köket med rollator."})
    if stage == "closed":
        doc["events"].append({"event_id": "h3", "code": "AW035", "date": "2026-07-31", "performed_by": pt, "note": "Målen uppnådda."})
        doc["closure"] = {"reason": "mal-uppnadda", "self_care_advice": "Fortsätt med gångövningarna varje dag.",
                          "contact_info": "Ring kommunens rehabenhet vardagar 8-16, eller din vårdcentral vid nya besvär."}
    return RehabPlan.model_validate(doc)


# --- (a) ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_admission_pauses_services_spu_with_consent_discharge_resumes_rehab_followed_up_and_closed(sekmet_server, tmp_path: Path) -> None:
    base = sekmet_server.base_url
    client = httpx.Client(base_url=base, timeout=30)
    # The decision is sent first; the utförare has accepted and started both insatser.
    decision_doc = conversion.read(ROOT.joinpath("fixtures", "decision", "hemtjanst-timmar.json").read_bytes())
    assert client.post("", json=conversion.bundle_of(decision_doc), headers=FHIR_JSON).status_code == 200
    for key in HAMTJANST_TASKS:
        current = task(client, key)
        if current["status"] != "in-progress":
            set_status(client, current, "in-progress")
    before = {key: task(client, key) for key in HAMTJANST_TASKS}
    assert {t["status"] for t in before.values()} == {"in-progress"}

    store = SqlReceiptStore.open(f"sqlite:///{tmp_path}/carebridge.db")
    gateway = Gateway(base)
    receiver = Receiver(store, effects=TaskEffects(gateway), inbox=DirectoryInbox(tmp_path / "inbox"), serves={"SE2120000134-SN01"})
    events = [DischargeEvent.model_validate_json(p.read_text("utf-8")) for p in DISCHARGE]

    def deliver(event: DischargeEvent) -> discharge.Acknowledgement:
        ack = json.loads(receiver.receive(json.dumps(discharge.to_fhir(event)).encode()))
        assert no_errors(validate(ack)) == []
        return discharge.read_acknowledgement(ack)

    # Inskrivningsmeddelande: the services pause, on the server.
    assert deliver(events[0]) == discharge.Acknowledgement(events[0].message_id, "ok")
    for key in HAMTJANST_TASKS:
        paused = task(client, key)
        assert paused["status"] == "on-hold"
        assert paused["statusReason"]["coding"][0]["code"] == "inskriven-slutenvard"
        assert {"url": systems.EXT_TASK_PAUSED_FROM, "valueCode": "in-progress"} in paused["extension"]
        assert int(paused["meta"]["versionId"]) == int(before[key]["meta"]["versionId"]) + 1
        assert no_errors(validate(paused, profile=systems.PROFILE_PROVIDER_TASK)) == []

    # Planning information, utskrivningsklar, its recall and a new utskrivningsklar: acknowledged, Tasks untouched.
    for event in events[1:5]:
        assert deliver(event).ok
    assert {task(client, key)["status"] for key in HAMTJANST_TASKS} == {"on-hold"}
    planning = DischargeEvent.model_validate_json((tmp_path / "inbox" / f"{events[1].message_id}.json").read_bytes())
    assert planning.planning is not None and planning.planning.spu_needed

    # The SPU is agreed with Astrid's consent and delivered through the outbox and gateway.
    spu_source = ROOT.joinpath("fixtures", "sip", "spu-astrid-berglund-utskrivning.json").read_bytes()
    spu = CoordinatedPlan.model_validate_json(spu_source)
    assert spu.consent is not None and spu.encounter_id == events[0].stay.encounter_id
    outbox = Outbox.open(f"sqlite:///{tmp_path}/carebridge.db")
    accepted = outbox.accept(spu_source, base, source="spu-astrid-berglund-utskrivning.json")
    assert accepted.status != REJECTED, accepted.problem
    Worker(outbox, gateway, concurrency=1).run(until_empty=True)
    assert outbox.get(accepted.message_id).status == DELIVERED
    plans = client.get("CarePlan", params={"identifier": f"{systems.SID_SIP}|{spu.plan_id}"}).json()["entry"]
    assert len(plans) == 1
    on_server = plans[0]["resource"]
    consent = client.get(on_server["supportingInfo"][0]["reference"]).raise_for_status().json()
    assert consent["resourceType"] == "Consent" and consent["status"] == "active"
    first = client.post("", json=sip.to_fhir(spu), headers=FHIR_JSON).json()  # a resend: everything already there
    assert all(e["response"]["status"].startswith("200") for e in first["entry"])
    assert sip.from_fhir(read_back(client, first)) == spu

    # Utskrivning to her home: the services resume where they were.
    assert deliver(events[5]).ok
    for key in HAMTJANST_TASKS:
        resumed = task(client, key)
        assert resumed["status"] == "in-progress"
        assert "statusReason" not in resumed and systems.EXT_TASK_PAUSED_FROM not in json.dumps(resumed)
        assert int(resumed["meta"]["versionId"]) == int(before[key]["meta"]["versionId"]) + 2
    delivered = sorted(p.name for p in (tmp_path / "inbox").glob("*.json"))
    assert delivered == sorted(f"{e.message_id}.json" for e in events)

    # Kommunal rehab: a plan at discharge, followed up on day 5, closed.
    discharged_on = events[5].stay.discharged_at.date()
    for stage in ("created", "day5", "closed"):
        plan = rehab_plan_for_astrid(stage)
        bundle = rehab_plan.to_fhir(plan)
        assert no_errors(validate(bundle)) == []
        response = client.post("", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 200
        back = rehab_plan.from_fhir(read_back(client, response.json()))
        assert back.events == plan.events and back.status == plan.status
    follow_up = next(e for e in back.events if e.code == "AW024")
    assert follow_up.date - discharged_on == dt.timedelta(days=5)
    assert back.status == "completed" and back.closure == rehab_plan_for_astrid("closed").closure
    gateway.close()
    store.close()
    outbox.close()


# --- (b) ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_b_a_sip_without_consent_is_refused_before_it_leaves(sekmet_server, tmp_path: Path) -> None:
    base = sekmet_server.base_url
    doc = json.loads(ROOT.joinpath("fixtures", "sip", "spu-astrid-berglund-utskrivning.json").read_text("utf-8"))
    doc["plan_id"] = f"SPU-{uuid.uuid4().hex[:12]}"
    doc.pop("consent")
    doc.pop("relatives")
    source = json.dumps(doc, ensure_ascii=False).encode()
    plan = CoordinatedPlan.model_validate_json(source)
    rules = {rule for rule, _, _ in no_errors(validate(sip.to_fhir(plan)))}
    assert "se-consent" in rules

    with pytest.raises(conversion.ConversionError, match="carries no Consent"):  # `carebridge convert` fails closed
        conversion.convert(source, "fhir")

    before = counts(base)
    outbox = Outbox.open(f"sqlite:///{tmp_path}/carebridge.db")
    accepted = outbox.accept(source, base, source="sip-without-consent.json")
    assert accepted.status == REJECTED
    assert "se-consent" in {rule_of(i) for i in accepted.outcome["issue"]}
    with Gateway(base) as gateway:
        report = Worker(outbox, gateway, concurrency=1).run(until_empty=True)
    assert not report.counts.get("delivered")
    assert outbox.get(accepted.message_id).status == REJECTED
    assert counts(base) == before
    assert count(base, "CarePlan", {"identifier": f"{systems.SID_SIP}|{plan.plan_id}"}) == 0
    outbox.close()


# --- (c) ----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_c_a_duplicate_discharge_message_gets_the_same_acknowledgement_and_changes_nothing(sekmet_server, tmp_path: Path) -> None:
    base = sekmet_server.base_url
    pnr = fresh_person()
    post_decision(base, pnr)
    url = f"sqlite:///{tmp_path}/carebridge.db"
    admission = json.dumps(discharge.to_fhir(event_for(pnr, 0))).encode()
    with Gateway(base) as gateway:
        store = SqlReceiptStore.open(url)
        first = Receiver(store, effects=TaskEffects(gateway)).receive(admission)
        store.close()
        assert discharge.read_acknowledgement(json.loads(first)).ok
        tasks = TaskEffects(gateway).provider_tasks(pnr)
        assert {t["status"] for t in tasks} == {"on-hold"}
        versions = {t["id"]: t["meta"]["versionId"] for t in tasks}
        before = counts(base)

        # The hospital resends 30 minutes later (MedCom: same Bundle.id, same MessageHeader.id); the receiver was restarted.
        store = SqlReceiptStore.open(url)
        later = Receiver(store, effects=TaskEffects(gateway), clock=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30))
        again = later.receive(admission)
        assert again == first
        assert {t["id"]: t["meta"]["versionId"] for t in TaskEffects(gateway).provider_tasks(pnr)} == versions
        assert counts(base) == before

        # The same for the discharge message, which resumed the Tasks the first time.
        leaving = json.dumps(discharge.to_fhir(event_for(pnr, 5))).encode()
        ok = later.receive(leaving)
        resumed = {t["id"]: t["meta"]["versionId"] for t in TaskEffects(gateway).provider_tasks(pnr)}
        assert {t["status"] for t in TaskEffects(gateway).provider_tasks(pnr)} == {"requested"}
        after_discharge = counts(base)
        assert later.receive(leaving) == ok
        assert {t["id"]: t["meta"]["versionId"] for t in TaskEffects(gateway).provider_tasks(pnr)} == resumed
        assert counts(base) == after_discharge
        store.close()
