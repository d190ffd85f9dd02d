"""Genomförandeplan ⇄ FHIR R4: `to_fhir` (encoder) and `from_fhir` (decoder) side by side.

One plan becomes one transaction Bundle; every entry is a conditional create on a business
identifier (Goal and CareTeam on a `meta.tag` business key, as SEKMET cannot search them), so a
resend never duplicates:

| Canonical | FHIR |
|---|---|
| the plan | `CarePlan` category GP (riv-care-plan-type), `basedOn` the decisions' CarePlans (logical) |
| person, utförare, staff | `Patient`, `Organization`, `Practitioner` (shared builders in mappings/fhir.py) |
| fast omsorgskontakt, known staff | `CareTeam` (roles from plan-careteam-role) |
| goal (måltyp, the person's words) | `Goal` (category = goal type and IBIC life area, expressedBy = Patient) |
| planned activity | `ServiceRequest` intent `plan`, basedOn the decision's insats ServiceRequest (logical) |
| samtycke (consent to share with another huvudman) | `Consent` (information `genomforandeplan`, recipients as Organizations) in the CarePlan's `supportingInfo` |
| delivery record (one planned contact) | `Task` (businessStatus = outcome, statusReason, restriction = planned, executionPeriod = actual, outputs) |
| a contact that took place | `Encounter` class HH (home) or VR (virtual) |
| kvittens per goal | `Observation` (focus = Goal, valueBoolean) |

`from_fhir` reads the plan from the CarePlan and everything it references, and the delivery
records from every contact Task of the plan in the Bundle, so a Bundle read back from a server
(references `Type/id`, server meta) decodes exactly. See docs/flows/implementation-plan.md.
"""

from __future__ import annotations

from typing import Any, Callable

from mappings import fhir as f
from mappings import systems, terminology
from mappings.models.common import Organisation, Person, SharingConsent, Staff
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

Bundle = dict[str, Any]

_UCUM_TO_PER = {row["ucum"]: code for code, row in terminology.table("period-unit").items()}
_PLAN_STATUS_BY_FHIR = {row["careplan_status"]: code for code, row in terminology.table("implementation-plan-status").items()}
_GOAL_PREFIX = "genomforandeplan/"


class NotAnImplementationPlanError(ValueError):
    """A FHIR Bundle that carries no (or more than one) carebridge genomförandeplan."""


# ======================================================================================
# Shared by the plan flows: one entry per Patient, Organization and Practitioner
# ======================================================================================


class Entries:
    """The entries of one transaction; Patient, Organization and Practitioner once per business key."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._refs: dict[str, dict[str, str]] = {}

    def add(self, url: str, resource: dict[str, Any], if_none_exist: str) -> str:
        self.entries.append(f.post_entry(url, resource, if_none_exist))
        return url

    def patient(self, person: Person) -> dict[str, str]:
        key = "Patient|" + person.personnummer
        if key not in self._refs:
            res, cond = f.patient(person)
            self._refs[key] = f.ref(self.add(f.full_url("Patient", person.personnummer), res, cond))
        return self._refs[key]

    def organisation(self, org: Organisation) -> dict[str, str]:
        key = "Organization|" + f.organisation_key(org)
        if key not in self._refs:
            res, cond = f.organization(org)
            self._refs[key] = f.ref(self.add(f.full_url("Organization", f.organisation_key(org)), res, cond), org.name)
        return self._refs[key]

    def practitioner(self, staff: Staff) -> dict[str, str]:
        key = "Practitioner|" + f.staff_key(staff)
        if key not in self._refs:
            res, cond = f.practitioner(staff)
            self._refs[key] = f.ref(self.add(f.full_url("Practitioner", f.staff_key(staff)), res, cond), staff.name)
        return self._refs[key]


def consent_entry(e: Entries, c: SharingConsent, patient: dict, custodian: dict, information: str) -> dict[str, str]:
    """The person's consent to share the plan with another huvudman (OSL 12:2): a Consent
    (`mappings.fhir.consent`) whose recipients are Organization entries; its Reference."""
    res, cond = f.consent(c, patient["reference"], custodian, [e.organisation(o) for o in c.recipients], information)
    return f.ref(e.add(f.full_url("Consent", c.consent_id), res, cond))


def consent_of(res: dict, index: f.BundleIndex, where: str, error: type[ValueError] = ValueError) -> SharingConsent:
    """The SharingConsent a Consent of the plan carries, its recipients resolved inside the Bundle."""
    return f.consent_from(res, lambda ref: f.organisation_from(must(index, ref, f"{where}: Consent.provision.actor", error)))


def by_identifier(system: str, value: str) -> str:
    return "identifier=" + f.search_token(system, value)


def by_tag(key: str) -> str:
    return "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, key)


def logical(resource_type: str, system: str, value: str) -> dict[str, Any]:
    """A logical Reference (by business identifier) to a resource outside this Bundle."""
    return {"type": resource_type, "identifier": f.identifier(system, value)}


def insats_key(basis: InsatsRef) -> str:
    return f"{basis.decision_id}/{basis.insats_id}"


def basis_from(value: str | None) -> InsatsRef | None:
    """An InsatsRef from a `decision/insats` key (insats ids hold no slash)."""
    if value is None:
        return None
    decision_id, insats_id = value.rsplit("/", 1)
    return InsatsRef(decision_id=decision_id, insats_id=insats_id)


def timing(start, end, frequency: Frequency | None, minutes: int | None) -> dict[str, Any]:
    """`Timing` for an activity: bounds, how often, on which weekdays, minutes per occasion."""
    repeat: dict[str, Any] = {"boundsPeriod": f.period(start, end)}
    if frequency is not None:
        repeat.update(frequency=frequency.times, period=1, periodUnit=terminology.row("period-unit", frequency.per)["ucum"])
        if frequency.weekdays:
            repeat["dayOfWeek"] = list(frequency.weekdays)
    if minutes is not None:
        repeat.update(duration=minutes, durationUnit="min")
    return {"repeat": repeat}


def frequency_from(repeat: dict[str, Any], where: str) -> Frequency | None:
    if "frequency" not in repeat:
        return None
    if repeat.get("period", 1) != 1 or repeat.get("periodUnit") not in _UCUM_TO_PER:
        raise ValueError(f"{where}: only 'n times per 1 day, week or month' is supported (got period {repeat.get('period')} {repeat.get('periodUnit')})")
    return Frequency(times=repeat["frequency"], per=_UCUM_TO_PER[repeat["periodUnit"]], weekdays=repeat.get("dayOfWeek", []))


def must(index: f.BundleIndex, reference: dict | None, what: str, error: type[ValueError] = ValueError) -> dict:
    """The resource a reference points to inside the Bundle, or a clear error."""
    res = index.resolve(reference)
    if res is None:
        raise error(f"{what} does not resolve inside the Bundle ({(reference or {}).get('reference')})")
    return res


def strip_prefix(value: str | None, prefix: str, what: str) -> str:
    if value is None or not value.startswith(prefix):
        raise ValueError(f"{what}: identifier {value!r} does not start with {prefix!r}")
    return value[len(prefix):]


def the_plan(index: f.BundleIndex, system: str, what: str, error: type[ValueError]) -> tuple[dict, str]:
    """The one CarePlan of the Bundle with an identifier of `system` (a `what`), and that identifier."""
    cp = f.only([cp for cp in index.resources("CarePlan") if f.first_identifier(cp, system)], f"{what} CarePlan", error)
    return cp, f.first_identifier(cp, system)  # type: ignore[return-value]


def goal_ids(prefix: str) -> Callable[[dict], str]:
    """Reads the plan-local id of a Goal: its business identifier without `prefix` (flow and plan id)."""
    return lambda goal: strip_prefix(f.first_identifier(goal, systems.SID_GOAL), prefix, "Goal")


def output_of(task: dict, code: str) -> list[dict]:
    """The Task.output entries of one contact-detail type."""
    return [o for o in task.get("output", ()) or () if f.code_in(o.get("type"), systems.CS_CONTACT_DETAIL) == code]


# ======================================================================================
# Encoder
# ======================================================================================


def to_fhir(plan: ImplementationPlan) -> Bundle:
    """Encode a genomförandeplan as a FHIR R4 transaction Bundle with conditional creates."""
    p = plan
    status = terminology.row("implementation-plan-status", p.status)
    e = Entries()
    patient = e.patient(p.person)
    utforare = e.organisation(p.utforare)
    consent = consent_entry(e, p.samtycke, patient, utforare, "genomforandeplan") if p.samtycke else None

    goal_refs: dict[str, dict[str, str]] = {}
    for goal in p.goals:
        goal_refs[goal.goal_id] = f.ref(_goal(e, p, goal, status["goal_status"], patient))

    careteam = f.ref(_care_team(e, p, status["careteam_status"], patient, utforare))

    sr_refs: dict[str, dict[str, str]] = {}
    for activity in p.activities:
        key = f"{p.plan_id}/{activity.activity_id}"
        sr = _service_request(e, p, activity, status["activity_status"], patient, utforare, [goal_refs[g] for g in activity.goal_ids])
        sr_refs[activity.activity_id] = f.ref(e.add(f.full_url("ServiceRequest", "plan-activity", key), sr, by_identifier(systems.SID_PLAN_ACTIVITY, key)))

    outcomes: dict[str, list[dict[str, str]]] = {a.activity_id: [] for a in p.activities}
    for record in p.deliveries:
        outcomes[record.activity_id].extend(_contact(e, p, record, patient, utforare, sr_refs[record.activity_id], goal_refs))

    decisions = list(dict.fromkeys(a.basis.decision_id for a in p.activities if a.basis))
    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [systems.PROFILE_IMPLEMENTATION_PLAN_CAREPLAN]},
        "identifier": [f.identifier(systems.SID_IMPLEMENTATION_PLAN, p.plan_id)],
    }
    if decisions:
        care_plan["basedOn"] = [logical("CarePlan", systems.SID_CAREPLAN, d) for d in decisions]
    care_plan.update(
        status=status["careplan_status"],
        intent="plan",
        category=[{"coding": [terminology.coding("riv-care-plan-type", "GP")]}],
        title=f"Genomförandeplan {p.plan_id}",
    )
    if p.narrative:
        care_plan["description"] = p.narrative
    care_plan.update(subject=patient, period=f.period(p.valid_from, p.valid_to), created=p.established.isoformat(), author=utforare)
    if p.author:
        care_plan["contributor"] = [e.practitioner(p.author)]
    care_plan["careTeam"] = [careteam]
    if consent:
        care_plan["supportingInfo"] = [consent]
    if p.goals:
        care_plan["goal"] = [goal_refs[g.goal_id] for g in p.goals]
    care_plan["activity"] = []
    for activity in p.activities:
        line: dict[str, Any] = {"reference": sr_refs[activity.activity_id]}
        if outcomes[activity.activity_id]:
            line["outcomeReference"] = outcomes[activity.activity_id]
        care_plan["activity"].append(line)
    if p.preferences:
        care_plan["note"] = [{"authorReference": patient, "text": text} for text in p.preferences]
    e.add(f.full_url("CarePlan", "genomforandeplan", p.plan_id), care_plan, by_identifier(systems.SID_IMPLEMENTATION_PLAN, p.plan_id))
    return f.transaction(e.entries, f"implementation-plan|{p.plan_id}")


def _goal(e: Entries, p: ImplementationPlan, goal: PlanGoal, status: str, patient: dict) -> str:
    key = f"{_GOAL_PREFIX}{p.plan_id}/{goal.goal_id}"
    res: dict[str, Any] = {
        "resourceType": "Goal",
        "meta": {"profile": [systems.PROFILE_PLAN_GOAL], "tag": [f.tag_key("goal/" + key)]},
        "identifier": [f.identifier(systems.SID_GOAL, key)],
        "lifecycleStatus": status,
        "category": [{"coding": [terminology.coding("plan-goal-type", goal.goal_type)]}],
    }
    if goal.life_area:
        res["category"].append({"coding": [{"system": systems.CS_IBIC_LIFE_AREA, "code": goal.life_area}]})
    res.update(description={"text": goal.text}, subject=patient, expressedBy=patient)
    return e.add(f.full_url("Goal", key), res, by_tag("goal/" + key))


def _care_team(e: Entries, p: ImplementationPlan, status: str, patient: dict, utforare: dict) -> str:
    key = f"careteam/genomforandeplan/{p.plan_id}"

    def role(code: str) -> list[dict]:
        return [{"coding": [terminology.coding("plan-careteam-role", code)]}]

    participants = [{"role": role("utforare"), "member": utforare}]
    if p.fast_omsorgskontakt:
        participants.append({"role": role("fast-omsorgskontakt"), "member": e.practitioner(p.fast_omsorgskontakt), "onBehalfOf": utforare})
    known: list[Staff] = []
    for activity in p.activities:
        known += [s for s in activity.known_staff if s != p.fast_omsorgskontakt and s not in known]
    participants += [{"role": role("kand-personal"), "member": e.practitioner(s), "onBehalfOf": utforare} for s in known]
    res = {
        "resourceType": "CareTeam",
        "meta": {"profile": [systems.PROFILE_IMPLEMENTATION_PLAN_CARETEAM], "tag": [f.tag_key(key)]},
        "identifier": [f.identifier(systems.SID_IMPLEMENTATION_PLAN, p.plan_id)],
        "status": status,
        "name": f"Genomförandeplan {p.plan_id}",
        "subject": patient,
        "participant": participants,
        "managingOrganization": [utforare],
    }
    return e.add(f.full_url("CareTeam", key), res, by_tag(key))


def _service_request(e: Entries, p: ImplementationPlan, a: PlannedActivity, status: str, patient: dict, utforare: dict, goals: list[dict]) -> dict:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [systems.PROFILE_PLAN_ACTIVITY]},
        "identifier": [f.identifier(systems.SID_PLAN_ACTIVITY, f"{p.plan_id}/{a.activity_id}")],
    }
    extensions: list[dict[str, Any]] = [{"url": systems.EXT_PERTAINS_TO_GOAL, "valueReference": g} for g in goals]
    if a.time_window:
        extensions.append(
            {
                "url": systems.EXT_TIME_WINDOW,
                "extension": [{"url": "start", "valueTime": a.time_window.start.isoformat()}, {"url": "end", "valueTime": a.time_window.end.isoformat()}],
            }
        )
    if extensions:
        sr["extension"] = extensions
    if a.basis:
        sr["basedOn"] = [logical("ServiceRequest", systems.SID_INSATS, insats_key(a.basis))]
    sr.update(
        status=status,
        intent="plan",
        category=[
            {"coding": [terminology.coding("contact-channel", a.channel)]},
            {"coding": [terminology.coding("legal-domain", a.legal_domain)]},
            {"coding": [terminology.coding("huvudman", a.huvudman)]},
        ],
        code={"coding": [terminology.coding("plan-activity-type", a.activity_type)], "text": a.description},
        subject=patient,
        occurrenceTiming=timing(a.valid_from, a.valid_to, a.frequency, a.minutes_per_contact),
        authoredOn=p.established.isoformat(),
        requester=utforare,
        performer=[utforare, *(e.practitioner(s) for s in a.known_staff)],
    )
    if a.preferences:
        sr["note"] = [{"authorReference": patient, "text": text} for text in a.preferences]
    return sr


def _contact(e: Entries, p: ImplementationPlan, r: DeliveryRecord, patient: dict, utforare: dict, sr: dict, goal_refs: dict) -> list[dict]:
    """The Task (and, for a contact that took place, Encounter and kvittens Observations) of one record."""
    activity = p.activity(r.activity_id)
    key = f"{p.plan_id}/{r.record_id}"
    performer = e.practitioner(r.performed_by) if r.performed_by else None
    outputs: list[dict[str, Any]] = []

    def detail(code: str) -> dict:
        return {"coding": [terminology.coding("contact-detail", code)]}

    encounter = None
    if r.outcome == "utford":
        channel = terminology.row("contact-channel", r.switched_to or activity.channel)
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "meta": {"profile": [systems.PROFILE_CONTACT_ENCOUNTER]},
            "identifier": [f.identifier(systems.SID_CONTACT, key)],
            "status": "finished",
            "class": {"system": systems.CS_ENCOUNTER_CLASS, "code": channel["encounter_class"], "display": channel["encounter_class_display"]},
            "type": [{"coding": [terminology.coding("plan-activity-type", activity.activity_type)]}],
            "subject": patient,
            "basedOn": [sr],
        }
        if performer:
            enc["participant"] = [{"individual": performer}]
        enc.update(period=f.period(r.actual_start, r.actual_end), serviceProvider=utforare)
        encounter = f.ref(e.add(f.full_url("Encounter", key), enc, by_identifier(systems.SID_CONTACT, key)))
        outputs.append({"type": detail("besok"), "valueReference": encounter})
        for ack in r.acknowledgements:
            outputs.append({"type": detail("kvittens"), "valueReference": f.ref(_acknowledgement(e, p, r, ack, patient, sr, goal_refs, encounter, performer))})
    if r.moved_to:
        outputs.append({"type": detail("flyttad-till"), "valueDateTime": r.moved_to.isoformat()})
    if r.risk_note:
        outputs.append({"type": detail("riskanteckning"), "valueString": r.risk_note})
    if r.switched_to:
        outputs.append({"type": detail("kanalbyte-till"), "valueCodeableConcept": {"coding": [terminology.coding("contact-channel", r.switched_to)]}})
        outputs.append({"type": detail("kanalbyte-orsak"), "valueCodeableConcept": {"coding": [terminology.coding("contact-change-reason", r.switch_reason)]}})

    outcome = terminology.row("contact-outcome", r.outcome)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [systems.PROFILE_CONTACT_TASK]},
        "identifier": [f.identifier(systems.SID_CONTACT, key)],
    }
    if r.moved_from:
        task["extension"] = [{"url": systems.EXT_TASK_REPLACES, "valueReference": f.ref(f.full_url("Task", f"{p.plan_id}/{r.moved_from}"))}]
    task["basedOn"] = [sr]
    if activity.basis:
        task["partOf"] = [logical("Task", systems.SID_TASK, insats_key(activity.basis))]
    task["status"] = outcome["task_status"]
    if r.declined_reason:
        task["statusReason"] = {"coding": [terminology.coding("declined-reason", r.declined_reason)]}
    elif r.change_reason:
        task["statusReason"] = {"coding": [terminology.coding("contact-change-reason", r.change_reason)]}
    task.update(
        businessStatus={"coding": [terminology.coding("contact-outcome", r.outcome)]},
        intent="order",
        code={"coding": [{"system": systems.CS_TASK_CODE, "code": "fulfill"}]},
        focus=sr,
        **{"for": patient},
    )
    if r.actual_start:
        task["executionPeriod"] = f.period(r.actual_start, r.actual_end)
    task["owner"] = performer or utforare
    task["restriction"] = {"period": {"start": r.planned_start.isoformat()}}
    if r.narrative:
        task["note"] = [{"text": r.narrative}]
    if outputs:
        task["output"] = outputs
    task_ref = f.ref(e.add(f.full_url("Task", key), task, by_identifier(systems.SID_CONTACT, key)))
    return [task_ref, encounter] if encounter else [task_ref]


def _acknowledgement(e: Entries, p: ImplementationPlan, r: DeliveryRecord, ack: GoalAcknowledgement, patient: dict, sr: dict, goal_refs: dict, encounter: dict, performer: dict | None) -> str:
    key = f"{p.plan_id}/{r.record_id}/{ack.goal_id}"
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [systems.PROFILE_ACKNOWLEDGEMENT]},
        "identifier": [f.identifier(systems.SID_ACKNOWLEDGEMENT, key)],
        "basedOn": [sr],
        "status": "final",
        "code": {"coding": [terminology.coding("contact-detail", "kvittens")]},
        "subject": patient,
        "focus": [goal_refs[ack.goal_id]],
        "encounter": encounter,
        "effectiveDateTime": r.actual_start.isoformat(),  # type: ignore[union-attr]
    }
    if performer:
        obs["performer"] = [performer]
    obs["valueBoolean"] = ack.acknowledged
    if ack.note:
        obs["note"] = [{"text": ack.note}]
    return e.add(f.full_url("Observation", key), obs, by_identifier(systems.SID_ACKNOWLEDGEMENT, key))


# ======================================================================================
# Decoder
# ======================================================================================


def from_fhir(bundle: Bundle) -> ImplementationPlan:
    """Decode the one genomförandeplan a Bundle carries (transaction, collection, searchset, ...)."""
    index = f.BundleIndex(bundle)
    cp, plan_id = the_plan(index, systems.SID_IMPLEMENTATION_PLAN, "genomförandeplan", NotAnImplementationPlanError)
    where = f"CarePlan {plan_id}"

    def resolve(reference: dict | None, what: str) -> dict:
        return must(index, reference, f"{where}: {what}", NotAnImplementationPlanError)

    if cp.get("status") not in _PLAN_STATUS_BY_FHIR:
        raise NotAnImplementationPlanError(f"{where}: status {cp.get('status')!r} is not a genomförandeplan status")
    author = (cp.get("contributor") or [None])[0]
    fast = None
    for team_ref in cp.get("careTeam", ()):
        for part in resolve(team_ref, "careTeam").get("participant", ()):
            if f.code_in(part.get("role"), systems.CS_PLAN_CARETEAM_ROLE) == "fast-omsorgskontakt":
                fast = f.staff_from(resolve(part.get("member"), "fast omsorgskontakt"))
    goal_id = goal_ids(f"{_GOAL_PREFIX}{plan_id}/")
    goals = []
    for ref in cp.get("goal", ()):
        goal = resolve(ref, "goal")
        goals.append(
            PlanGoal(
                goal_id=goal_id(goal),
                text=goal["description"]["text"],
                goal_type=f.code_in(goal.get("category"), systems.CS_PLAN_GOAL_TYPE),
                life_area=f.code_in(goal.get("category"), systems.CS_IBIC_LIFE_AREA),
            )
        )
    activity_prefix = f"{plan_id}/"
    activities = [_activity(resolve(line.get("reference"), "activity"), activity_prefix, index, goal_id) for line in cp.get("activity", ())]

    contact_prefix = f"{plan_id}/"
    tasks = [t for t in index.resources("Task") if (f.first_identifier(t, systems.SID_CONTACT) or "").startswith(contact_prefix)]
    deliveries = [_record(t, contact_prefix, index, goal_id) for t in tasks]
    consent = None
    for info in cp.get("supportingInfo", ()):
        res = resolve(info, "supportingInfo") if "reference" in info else None
        if res is not None and res.get("resourceType") == "Consent":
            consent = consent_of(res, index, where, NotAnImplementationPlanError)
    period_ = cp.get("period") or {}
    return ImplementationPlan(
        plan_id=plan_id,
        status=_PLAN_STATUS_BY_FHIR[cp["status"]],
        established=cp["created"][:10],
        valid_from=period_.get("start"),
        valid_to=period_.get("end"),
        person=f.person_from(resolve(cp.get("subject"), "subject")),
        utforare=f.organisation_from(resolve(cp.get("author"), "author")),
        author=f.staff_from(resolve(author, "contributor")) if author else None,
        fast_omsorgskontakt=fast,
        narrative=cp.get("description"),
        preferences=[n["text"] for n in cp.get("note", ())],
        goals=goals,
        activities=activities,
        deliveries=deliveries,
        samtycke=consent,
    )


def _activity(sr: dict, prefix: str, index: f.BundleIndex, goal_id) -> PlannedActivity:
    activity_id = strip_prefix(f.first_identifier(sr, systems.SID_PLAN_ACTIVITY), prefix, "ServiceRequest")
    where = f"ServiceRequest {activity_id}"
    repeat = (sr.get("occurrenceTiming") or {}).get("repeat", {})
    bounds = repeat.get("boundsPeriod", {})
    window = None
    goal_ids = []
    for ext in sr.get("extension", ()):
        if ext.get("url") == systems.EXT_PERTAINS_TO_GOAL:
            goal_ids.append(goal_id(must(index, ext.get("valueReference"), f"{where}: goal", NotAnImplementationPlanError)))
        elif ext.get("url") == systems.EXT_TIME_WINDOW:
            parts = {x["url"]: x["valueTime"] for x in ext.get("extension", ())}
            window = TimeWindow(start=parts["start"], end=parts["end"])
    basis = next((b["identifier"]["value"] for b in sr.get("basedOn", ()) if b.get("identifier", {}).get("system") == systems.SID_INSATS), None)
    staff = []
    for performer in sr.get("performer", ()):
        res = must(index, performer, f"{where}: performer", NotAnImplementationPlanError)
        if res.get("resourceType") == "Practitioner":
            staff.append(f.staff_from(res))
    frequency = frequency_from(repeat, where)
    if frequency is None:
        raise NotAnImplementationPlanError(f"{where}: occurrenceTiming.repeat has no frequency")
    return PlannedActivity(
        activity_id=activity_id,
        activity_type=f.code_in(sr.get("code"), systems.CS_PLAN_ACTIVITY_TYPE),
        description=(sr.get("code") or {}).get("text"),
        basis=basis_from(basis),
        legal_domain=f.code_in(sr.get("category"), systems.CS_LEGAL_DOMAIN),
        huvudman=f.code_in(sr.get("category"), systems.CS_HUVUDMAN),
        channel=f.code_in(sr.get("category"), systems.CS_CONTACT_CHANNEL),
        frequency=frequency,
        time_window=window,
        minutes_per_contact=repeat.get("duration"),
        valid_from=bounds.get("start"),
        valid_to=bounds.get("end"),
        goal_ids=goal_ids,
        known_staff=staff,
        preferences=[n["text"] for n in sr.get("note", ())],
    )


def _record(task: dict, prefix: str, index: f.BundleIndex, goal_id) -> DeliveryRecord:
    record_id = strip_prefix(f.first_identifier(task, systems.SID_CONTACT), prefix, "Task")
    where = f"Task {record_id}"

    def resolve(reference: dict | None, what: str) -> dict:
        return must(index, reference, f"{where}: {what}", NotAnImplementationPlanError)

    activity = resolve(task.get("focus"), "focus")
    owner = index.resolve(task.get("owner"))
    moved_from = None
    for ext in task.get("extension", ()):
        if ext.get("url") == systems.EXT_TASK_REPLACES:
            moved_from = strip_prefix(f.first_identifier(resolve(ext.get("valueReference"), "replaces"), systems.SID_CONTACT), prefix, "Task")
    acks = []
    for out in output_of(task, "kvittens"):
        obs = resolve(out.get("valueReference"), "kvittens")
        acks.append(
            GoalAcknowledgement(
                goal_id=goal_id(resolve((obs.get("focus") or [None])[0], "kvittens focus")),
                acknowledged=obs["valueBoolean"],
                note=(obs.get("note") or [{}])[0].get("text"),
            )
        )
    execution = task.get("executionPeriod") or {}
    switched = output_of(task, "kanalbyte-till")
    switch_reason = output_of(task, "kanalbyte-orsak")
    moved_to = output_of(task, "flyttad-till")
    risk = output_of(task, "riskanteckning")
    return DeliveryRecord(
        record_id=record_id,
        activity_id=strip_prefix(f.first_identifier(activity, systems.SID_PLAN_ACTIVITY), prefix, "ServiceRequest"),
        planned_start=task["restriction"]["period"]["start"],
        outcome=f.code_in(task.get("businessStatus"), systems.CS_CONTACT_OUTCOME),
        actual_start=execution.get("start"),
        actual_end=execution.get("end"),
        performed_by=f.staff_from(owner) if owner and owner.get("resourceType") == "Practitioner" else None,
        switched_to=f.code_in(switched[0]["valueCodeableConcept"], systems.CS_CONTACT_CHANNEL) if switched else None,
        switch_reason=f.code_in(switch_reason[0]["valueCodeableConcept"], systems.CS_CONTACT_CHANGE_REASON) if switch_reason else None,
        declined_reason=f.code_in(task.get("statusReason"), systems.CS_DECLINED_REASON),
        risk_note=risk[0]["valueString"] if risk else None,
        change_reason=f.code_in(task.get("statusReason"), systems.CS_CONTACT_CHANGE_REASON),
        moved_to=moved_to[0]["valueDateTime"] if moved_to else None,
        moved_from=moved_from,
        acknowledgements=acks,
        narrative=(task.get("note") or [{}])[0].get("text"),
    )
