"""Hypothesis strategies for the plan flows (genomförandeplan, rehabiliteringsplan), and a read-back helper.

Built on the shared strategies of tests/strategies.py. Every generated document is valid by
construction (the models' validators accept it), so a failing round trip is a mapping bug.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
from typing import Any

from hypothesis import strategies as st

from mappings import terminology
from mappings.models.common import SharingConsent
from mappings.models.implementation_plan import (
    DeliveryRecord,
    Frequency,
    GoalAcknowledgement,
    ImplementationPlan,
    InsatsRef,
    PlanGoal,
    PlannedActivity,
    TimeWindow,
)
from mappings.models.rehab_plan import (
    Assessment,
    Closure,
    Finding,
    FollowUp,
    LifecycleEvent,
    RehabAction,
    RehabGoal,
    RehabPlan,
    TrainingInstruction,
)
from tests import strategies as s

insats_id = st.text(alphabet=st.sampled_from("0123456789ABCDEFab-."), min_size=1, max_size=6).filter(lambda x: x[0].isalnum())
insats_refs = st.builds(InsatsRef, decision_id=s.business_id, insats_id=insats_id)
periods = st.sampled_from(["day", "week", "month"])
weekdays = st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), unique=True, max_size=7)
frequencies = st.builds(Frequency, times=st.integers(1, 100), per=periods, weekdays=weekdays)
clock = st.times().map(lambda t: t.replace(microsecond=0))
offsets = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))])
moments = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31), timezones=offsets)
minutes = st.integers(1, 1440)


def codes(table: str):
    return st.sampled_from(terminology.codes(table))


@st.composite
def time_windows(draw) -> TimeWindow:
    a, b = sorted(draw(st.lists(clock, min_size=2, max_size=2, unique=True)))
    return TimeWindow(start=a, end=b)


@st.composite
def staff_pool(draw, min_size: int = 1, max_size: int = 4) -> list:
    """Members of staff with pairwise distinct identifiers (one Practitioner each)."""
    pool = draw(st.lists(s.staff(), min_size=min_size, max_size=max_size))
    out, seen = [], set()
    for member in pool:
        keys = {k for k in ("hsa:" + (member.hsa_id or ""), "local:" + (member.local_id or "")) if not k.endswith(":")}
        if keys & seen:
            continue
        seen |= keys
        out.append(member)
    return out


@st.composite
def organisation_pool(draw, min_size: int = 1, max_size: int = 3) -> list:
    """Organisations with pairwise distinct identifiers (one Organization each)."""
    pool = draw(st.lists(s.organisations(), min_size=min_size, max_size=max_size))
    out, seen = [], set()
    for org in pool:
        keys = {k for k in (org.hsa_id, org.organisationsnummer) if k}
        if keys & seen:
            continue
        seen |= keys
        out.append(org)
    return out


@st.composite
def consents(draw, recipients: list) -> SharingConsent | None:
    """No consent, or the person's consent to share the plan with some of these organisations."""
    if not draw(st.booleans()):
        return None
    given = draw(s.dates)
    return SharingConsent(
        consent_id=draw(s.business_id),
        given_at=given,
        valid_to=draw(st.none() | st.integers(0, 900).map(lambda n: given + dt.timedelta(days=n))),
        recipients=draw(st.lists(st.sampled_from(recipients), min_size=1, max_size=len(recipients), unique_by=id)),
        purposes=draw(st.lists(codes("consent-purpose"), min_size=1, unique=True)),
    )


def _subset(draw, items: list) -> list:
    picks = draw(st.lists(st.integers(0, len(items) - 1), unique=True, max_size=len(items))) if items else []
    return [items[i] for i in picks]


# --- Genomförandeplan ----------------------------------------------------------------------


@st.composite
def activities(draw, idx: int, goal_ids: list[str], staff: list) -> PlannedActivity:
    start = draw(s.dates)
    return PlannedActivity(
        activity_id=f"a{idx}",
        activity_type=draw(codes("plan-activity-type")),
        description=draw(s.text),
        basis=draw(st.none() | insats_refs),
        legal_domain=draw(codes("legal-domain")),
        huvudman=draw(codes("huvudman")),
        channel=draw(codes("contact-channel")),
        frequency=draw(frequencies),
        time_window=draw(st.none() | time_windows()),
        minutes_per_contact=draw(st.none() | minutes),
        valid_from=start,
        valid_to=draw(st.none() | st.integers(0, 400).map(lambda n: start + dt.timedelta(days=n))),
        goal_ids=_subset(draw, goal_ids),
        known_staff=_subset(draw, staff),
        preferences=draw(st.lists(s.text, max_size=2)),
    )


@st.composite
def deliveries(draw, idx: int, activity: PlannedActivity, staff: list, moved: list[str]) -> DeliveryRecord:
    outcome = draw(codes("contact-outcome"))
    planned = draw(moments)
    fields: dict[str, Any] = {}
    if outcome == "utford":
        start = planned + dt.timedelta(minutes=draw(st.integers(-60, 600)))
        fields.update(
            actual_start=start,
            actual_end=start + dt.timedelta(seconds=draw(st.integers(0, 10_000))),
            acknowledgements=[
                GoalAcknowledgement(goal_id=g, acknowledged=draw(st.booleans()), note=draw(s.optional_text)) for g in _subset(draw, activity.goal_ids)
            ],
        )
    elif outcome == "avbojd":
        fields.update(declined_reason=draw(codes("declined-reason")), risk_note=draw(s.optional_text))
    elif outcome == "flyttad":
        fields.update(moved_to=draw(moments), change_reason=draw(st.none() | codes("contact-change-reason")))
    else:
        fields.update(change_reason=draw(codes("contact-change-reason")))
    if draw(st.booleans()):
        others = [c for c in terminology.codes("contact-channel") if c != activity.channel]
        fields.update(switched_to=draw(st.sampled_from(others)), switch_reason=draw(codes("contact-change-reason")))
    if moved and draw(st.booleans()):
        fields["moved_from"] = moved.pop(0)
    return DeliveryRecord(
        record_id=f"r{idx}",
        activity_id=activity.activity_id,
        planned_start=planned,
        outcome=outcome,
        performed_by=draw(st.none() | st.sampled_from(staff)) if staff else None,
        narrative=draw(s.optional_text),
        **fields,
    )


@st.composite
def implementation_plans(draw) -> ImplementationPlan:
    staff = draw(staff_pool())
    goals = [
        PlanGoal(goal_id=f"g{i}", text=draw(s.text), goal_type=draw(codes("plan-goal-type")), life_area=draw(st.none() | s.business_id))
        for i in range(draw(st.integers(0, 4)))
    ]
    goal_ids = [g.goal_id for g in goals]
    acts = [draw(activities(i, goal_ids, staff)) for i in range(draw(st.integers(1, 3)))]
    records: list[DeliveryRecord] = []
    moved: dict[str, list[str]] = {a.activity_id: [] for a in acts}
    for i in range(draw(st.integers(0, 6))):
        activity = draw(st.sampled_from(acts))
        record = draw(deliveries(i, activity, staff, moved[activity.activity_id]))
        records.append(record)
        if record.outcome == "flyttad":
            moved[activity.activity_id].append(record.record_id)
    start = draw(s.dates)
    named = draw(st.lists(st.sampled_from(staff), max_size=2)) if staff else []
    orgs = draw(organisation_pool())
    return ImplementationPlan(
        plan_id=draw(s.business_id),
        status=draw(codes("implementation-plan-status")),
        established=draw(s.dates),
        valid_from=start,
        valid_to=draw(st.none() | st.integers(0, 400).map(lambda n: start + dt.timedelta(days=n))),
        person=draw(s.persons),
        utforare=orgs[0],
        author=named[0] if named else None,
        fast_omsorgskontakt=named[-1] if len(named) > 1 else None,
        narrative=draw(s.optional_text),
        preferences=draw(st.lists(s.text, max_size=3)),
        goals=goals,
        activities=acts,
        deliveries=records,
        samtycke=draw(consents(orgs)),
    )


# --- Rehabiliteringsplan -------------------------------------------------------------------

_ICF_PREFIX = {code: row["icf_prefix"] for code, row in terminology.table("icf-component").items()}
icf_codes = st.builds(lambda p, n: f"{p}{n}", st.sampled_from("bsde"), st.integers(1, 99999))


@st.composite
def findings(draw, idx: int) -> Finding:
    component = draw(codes("icf-component"))
    prefix = _ICF_PREFIX[component]
    factor = component in ("omgivningsfaktor", "personfaktor")
    return Finding(
        finding_id=f"f{idx}",
        component=component,
        icf_code=draw(st.none() | st.integers(1, 99999).map(lambda n: f"{prefix}{n}")) if prefix else None,
        text=draw(s.text),
        factor_role=draw(codes("icf-factor-role")) if factor else None,
        instrument=draw(s.optional_text),
        result=draw(s.optional_text),
    )


@st.composite
def rehab_goals(draw) -> list[RehabGoal]:
    goals: list[RehabGoal] = []
    for i in range(draw(st.integers(1, 4))):
        mains = [g.goal_id for g in goals if g.parent_goal_id is None]
        parent = draw(st.none() | st.sampled_from(mains)) if mains else None
        goals.append(
            RehabGoal(
                goal_id=f"g{i}",
                text=draw(s.text),
                parent_goal_id=parent,
                icf_code=draw(st.none() | icf_codes),
                target_date=draw(st.none() | s.dates),
                achievement=draw(st.none() | st.sampled_from(["in-progress", "improving", "worsening", "no-change", "achieved", "sustaining", "not-achieved", "no-progress", "not-attainable"])),
            )
        )
    return goals


@st.composite
def rehab_actions(draw, idx: int, goal_ids: list[str], staff: list, orgs: list) -> RehabAction:
    kind = draw(codes("rehab-action-kind"))
    who_staff = draw(st.none() | st.sampled_from(staff))
    who_org = draw(st.none() | st.sampled_from(orgs))
    if kind == "vard" and who_staff is None and who_org is None:
        who_staff = staff[0]
    start = draw(s.dates)
    return RehabAction(
        action_id=f"a{idx}",
        what=draw(s.text),
        kind=kind,
        status=draw(codes("rehab-action-status")),
        kva_code=draw(st.none() | st.from_regex(r"\A[A-Z]{2}[0-9]{3}\Z")),
        legal_domain=draw(codes("legal-domain")),
        huvudman=draw(codes("huvudman")),
        responsible_staff=who_staff,
        responsible_organisation=who_org,
        start=start,
        end=draw(st.none() | st.integers(0, 400).map(lambda n: start + dt.timedelta(days=n))),
        frequency=draw(st.none() | frequencies),
        minutes_per_session=draw(st.none() | minutes),
        scope=draw(s.optional_text),
        goal_ids=_subset(draw, goal_ids),
    )


@st.composite
def lifecycles(draw, staff: list, followup_ids: list[str]) -> list[LifecycleEvent]:
    """A valid lifecycle: nothing, or AW020, follow-ups (AW024/AW027), and perhaps AW035, in date order."""
    if draw(st.booleans()):
        return []
    steps = ["AW020", *draw(st.lists(st.sampled_from(["AW024", "AW027"]), max_size=3))]
    if draw(st.booleans()):
        steps.append("AW035")
    day = draw(s.dates)
    events = []
    for n, code in enumerate(steps):
        day = day + dt.timedelta(days=draw(st.integers(0, 30)))
        events.append(
            LifecycleEvent(
                event_id=f"e{n}",
                code=code,
                date=day,
                performed_by=draw(st.sampled_from(staff)),
                followup_id=draw(st.none() | st.sampled_from(followup_ids)) if followup_ids and code != "AW020" else None,
                note=draw(s.optional_text),
            )
        )
    return events


@st.composite
def rehab_plans(draw) -> RehabPlan:
    staff = draw(staff_pool())
    orgs = draw(organisation_pool())
    goals = draw(rehab_goals())
    goal_ids = [g.goal_id for g in goals]
    actions = [draw(rehab_actions(i, goal_ids, staff, orgs)) for i in range(draw(st.integers(0, 3)))]
    followups = [
        FollowUp(followup_id=f"u{i}", planned_on=draw(s.dates), trigger=draw(codes("rehab-followup-trigger")), note=draw(s.optional_text))
        for i in range(draw(st.integers(0, 3)))
    ]
    events = draw(lifecycles(staff, [f.followup_id for f in followups]))
    delegable = [c for c, row in terminology.table("plan-activity-type").items() if row["requires_insats"]]
    instructions = [
        TrainingInstruction(
            instruction_id=f"t{i}",
            action_id=draw(st.sampled_from(actions)).action_id,
            task_type=draw(st.sampled_from(delegable)),
            recipient=draw(st.sampled_from(orgs)),
            instruction=draw(s.text),
            basis=draw(st.none() | insats_refs),
            issued_on=draw(s.dates),
            status=draw(st.sampled_from(["requested", "accepted", "rejected", "in-progress", "on-hold", "completed", "cancelled"])),
            status_reason=draw(s.optional_text),
        )
        for i in range(draw(st.integers(0, 2)) if actions else 0)
    ]
    closed = any(e.code == "AW035" for e in events)
    start = draw(s.dates)
    return RehabPlan(
        plan_id=draw(s.business_id),
        person=draw(s.persons),
        organisation=orgs[0],
        huvudman=draw(codes("huvudman")),
        responsible=draw(st.sampled_from(staff)),
        contact_phone=draw(st.none() | st.from_regex(r"\A\+46[1-9]\d{6,8}\Z")),
        referral_id=draw(st.none() | s.business_id),
        start=start,
        end=draw(st.none() | st.integers(0, 400).map(lambda n: start + dt.timedelta(days=n))),
        assessment=Assessment(
            assessed_on=draw(s.dates),
            assessed_by=draw(st.sampled_from(staff)),
            summary=draw(s.text),
            what_matters=draw(s.optional_text),
            findings=[draw(findings(i)) for i in range(draw(st.integers(0, 4)))],
        ),
        goals=goals,
        actions=actions,
        followups=followups,
        events=events,
        training_instructions=instructions,
        closure=Closure(reason=draw(codes("rehab-closure-reason")), self_care_advice=draw(s.text), contact_info=draw(s.text)) if closed else None,
        samtycke=draw(consents(orgs)),
    )


# --- What comes back ---------------------------------------------------------------------------


def without_protected_contact_data(document):
    """The document as it comes back from FHIR: a person with skyddad folkbokföring has no address or phone there."""
    if not document.person.skyddad_folkbokforing:
        return document
    return document.model_copy(update={"person": document.person.model_copy(update={"address": None, "phone": None})})


# --- A Bundle as a server gives it back ------------------------------------------------------


def as_read_back(bundle: dict[str, Any], seed: int = 0, base: str = "https://region.example.se/fhir") -> dict[str, Any]:
    """The transaction's resources as a server returns them: `Type/id` references, server meta,
    absolute fullUrls, no request, in a shuffled order (a search gives no order guarantee)."""
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{n + 101}" for n, e in enumerate(bundle["entry"])}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else rewrite(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [rewrite(x) for x in node]
        return node

    entries = []
    for e in bundle["entry"]:
        resource = rewrite(copy.deepcopy(e["resource"]))
        rtype, rid = ids[e["fullUrl"]].split("/")
        resource["id"] = rid
        resource.setdefault("meta", {}).update(versionId="1", lastUpdated="2026-11-23T12:00:00.000+00:00", source="#carebridge")
        entries.append({"fullUrl": f"{base}/{rtype}/{rid}", "resource": resource, "search": {"mode": "match"}})
    random.Random(seed).shuffle(entries)
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
