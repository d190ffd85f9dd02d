"""Rehabiliteringsplan ⇄ FHIR R4: `to_fhir` (encoder) and `from_fhir` (decoder) side by side.

One plan becomes one transaction Bundle of conditional creates (ClinicalImpression, Goal and
CareTeam on a `meta.tag` business key, the rest on business identifiers):

| Canonical | FHIR |
|---|---|
| the plan | `CarePlan` category RP (riv-care-plan-type) and huvudman; status from the lifecycle |
| rehab unit, planansvarig, contact phone | `Organization`, `Practitioner`, `CareTeam` (telecom) |
| assessment | `ClinicalImpression` (summary, assessor, the person's "Vad är viktigt för dig?" as a note) |
| each finding | `Observation` (category = ICF component, code = ICF + text, interpretation = resurs/hinder, method = instrument) |
| main goal and sub-goals | `Goal` (description = the person's words, expressedBy, ICF category, target.dueDate, achievementStatus; a main goal lists its sub-goals with `goal-relationship` type milestone) |
| action | `ServiceRequest` intent plan (category = vård/egenvård, legal domain, huvudman; code = KVÅ + text; occurrenceTiming; performer; pertainsToGoal) |
| follow-up occasion | `ServiceRequest` (code KVÅ AW024, occurrenceDateTime, reasonCode = trigger) |
| lifecycle event | `Procedure` with its KVÅ code (AW020, AW024, AW027, AW035), basedOn the CarePlan and the follow-up it carries out |
| closure | on the AW035 Procedure: `outcome` = reason, `followUp` = self-care advice and where to turn |
| training instruction to home care | `Task` (code = task type, focus = the action, owner = the utförare, basedOn = the granted insats, status) |
| samtycke (consent to share with another huvudman) | `Consent` (information `rehabiliteringsplan`, recipients as Organizations) in the CarePlan's `supportingInfo` |

`from_fhir` decodes the plan from the CarePlan and what it references, and the lifecycle from
every event Procedure of the plan in the Bundle, so a plan or follow-up arriving from the region,
or a Bundle read back from a server, becomes the canonical document. See docs/flows/rehab-plan.md.
"""

from __future__ import annotations

from typing import Any

from mappings import fhir as f
from mappings import systems, terminology
from mappings.implementation_plan import (
    Entries,
    basis_from,
    by_identifier,
    by_tag,
    consent_entry,
    consent_of,
    frequency_from,
    goal_ids,
    insats_key,
    logical,
    must,
    strip_prefix,
    the_plan,
    timing,
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
    lifecycle_event,
)

Bundle = dict[str, Any]

_GOAL_STATUS = {"draft": "proposed", "active": "active", "completed": "completed"}
_ACTION_STATUS_BY_FHIR = {row["request_status"]: code for code, row in terminology.table("rehab-action-status").items()}
_GOAL_PREFIX = "rehabplan/"


class NotARehabPlanError(ValueError):
    """A FHIR Bundle that carries no (or more than one) carebridge rehabiliteringsplan."""


def _kva(code: str) -> dict[str, str]:
    """A KVÅ Coding for a lifecycle code (display from the rehab-lifecycle table)."""
    return {"system": systems.CS_KVA, "code": code, "display": terminology.row("rehab-lifecycle", code)["display"]}


# ======================================================================================
# Encoder
# ======================================================================================


def to_fhir(plan: RehabPlan) -> Bundle:
    """Encode a rehabiliteringsplan as a FHIR R4 transaction Bundle with conditional creates."""
    p = plan
    e = Entries()
    patient = e.patient(p.person)
    org = e.organisation(p.organisation)
    responsible = e.practitioner(p.responsible)
    consent = consent_entry(e, p.samtycke, patient, org, "rehabiliteringsplan") if p.samtycke else None
    plan_ref = f.ref(f.full_url("CarePlan", "rehabplan", p.plan_id))

    assessment = f.ref(_assessment(e, p, patient))
    goal_refs = {g.goal_id: f.ref(f.full_url("Goal", _goal_key(p, g.goal_id))) for g in p.goals}
    for goal in p.goals:
        _goal(e, p, goal, patient, goal_refs)

    activities: list[dict[str, Any]] = []
    action_refs: dict[str, dict[str, str]] = {}
    for action in p.actions:
        key = f"{p.plan_id}/{action.action_id}"
        url = e.add(f.full_url("ServiceRequest", "rehab-action", key), _action(e, p, action, patient, org, [goal_refs[g] for g in action.goal_ids]), by_identifier(systems.SID_REHAB_ACTION, key))
        action_refs[action.action_id] = f.ref(url)
        activities.append({"reference": action_refs[action.action_id]})

    done = {ev.followup_id for ev in p.events if ev.followup_id}
    followup_refs: dict[str, dict[str, str]] = {}
    for fu in p.followups:
        key = f"{p.plan_id}/{fu.followup_id}"
        status = "completed" if fu.followup_id in done else "revoked" if p.status == "completed" else "active"
        sr = _followup(p, fu, status, patient, org, responsible, list(goal_refs.values()))
        followup_refs[fu.followup_id] = f.ref(e.add(f.full_url("ServiceRequest", "rehab-follow-up", key), sr, by_identifier(systems.SID_REHAB_FOLLOW_UP, key)))
        activities.append({"reference": followup_refs[fu.followup_id]})

    for instruction in p.training_instructions:
        key = f"{p.plan_id}/{instruction.instruction_id}"
        task = _instruction(e, p, instruction, patient, org, action_refs[instruction.action_id])
        activities.append({"reference": f.ref(e.add(f.full_url("Task", "training", key), task, by_identifier(systems.SID_TRAINING_INSTRUCTION, key)))})

    for event in p.events:
        key = f"{p.plan_id}/{event.event_id}"
        based_on = [plan_ref] + ([followup_refs[event.followup_id]] if event.followup_id else [])
        e.add(f.full_url("Procedure", key), _event(e, p, event, patient, org, based_on), by_identifier(systems.SID_REHAB_EVENT, key))

    careteam = f.ref(_care_team(e, p, patient, org, responsible))
    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [systems.PROFILE_REHAB_CAREPLAN]},
        "identifier": [f.identifier(systems.SID_REHAB_PLAN, p.plan_id)],
        "status": p.status,
        "intent": "plan",
        "category": [{"coding": [terminology.coding("riv-care-plan-type", "RP")]}, {"coding": [terminology.coding("huvudman", p.huvudman)]}],
        "title": f"Rehabiliteringsplan {p.plan_id}",
        "subject": patient,
        "period": f.period(p.start, p.end),
        "author": org,
        "contributor": [responsible],
        "careTeam": [careteam],
        "supportingInfo": [assessment],
    }
    if p.referral_id:
        care_plan["supportingInfo"].append(logical("ServiceRequest", systems.SID_REHAB_REFERRAL, p.referral_id))
    if consent:
        care_plan["supportingInfo"].append(consent)
    care_plan["goal"] = [goal_refs[g.goal_id] for g in p.goals]
    if activities:
        care_plan["activity"] = activities
    e.add(plan_ref["reference"], care_plan, by_identifier(systems.SID_REHAB_PLAN, p.plan_id))
    return f.transaction(e.entries, f"rehab-plan|{p.plan_id}")


def _goal_key(p: RehabPlan, goal_id: str) -> str:
    return f"{_GOAL_PREFIX}{p.plan_id}/{goal_id}"


def _assessment(e: Entries, p: RehabPlan, patient: dict) -> str:
    a = p.assessment
    assessor = e.practitioner(a.assessed_by)
    findings = []
    for finding in a.findings:
        key = f"{p.plan_id}/{finding.finding_id}"
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "meta": {"profile": [systems.PROFILE_REHAB_FINDING]},
            "identifier": [f.identifier(systems.SID_REHAB_FINDING, key)],
            "status": "final",
            "category": [{"coding": [terminology.coding("icf-component", finding.component)]}],
            "code": {"coding": [{"system": systems.CS_ICF, "code": finding.icf_code}]} if finding.icf_code else {},
            "subject": patient,
            "effectiveDateTime": a.assessed_on.isoformat(),
            "performer": [assessor],
        }
        obs["code"]["text"] = finding.text
        if finding.result:
            obs["valueString"] = finding.result
        if finding.factor_role:
            obs["interpretation"] = [{"coding": [terminology.coding("icf-factor-role", finding.factor_role)]}]
        if finding.instrument:
            obs["method"] = {"text": finding.instrument}
        findings.append({"itemReference": f.ref(e.add(f.full_url("Observation", "rehab-finding", key), obs, by_identifier(systems.SID_REHAB_FINDING, key)))})
    tag = f"assessment/rehabplan/{p.plan_id}"
    impression: dict[str, Any] = {
        "resourceType": "ClinicalImpression",
        "meta": {"profile": [systems.PROFILE_REHAB_ASSESSMENT], "tag": [f.tag_key(tag)]},
        "identifier": [f.identifier(systems.SID_REHAB_PLAN, p.plan_id)],
        "status": "completed",
        "subject": patient,
        "effectiveDateTime": a.assessed_on.isoformat(),
        "assessor": assessor,
        "summary": a.summary,
    }
    if findings:
        impression["finding"] = findings
    if a.what_matters:
        impression["note"] = [{"authorReference": patient, "text": a.what_matters}]
    return e.add(f.full_url("ClinicalImpression", tag), impression, by_tag(tag))


def _goal(e: Entries, p: RehabPlan, goal: RehabGoal, patient: dict, goal_refs: dict) -> str:
    key = _goal_key(p, goal.goal_id)
    res: dict[str, Any] = {
        "resourceType": "Goal",
        "meta": {"profile": [systems.PROFILE_REHAB_GOAL], "tag": [f.tag_key("goal/" + key)]},
        "identifier": [f.identifier(systems.SID_GOAL, key)],
    }
    milestone = {"system": systems.CS_GOAL_RELATIONSHIP_TYPE, "code": "milestone", "display": "Milestone"}
    subs = [g for g in p.goals if g.parent_goal_id == goal.goal_id]
    if subs:
        res["extension"] = [
            {"url": systems.EXT_GOAL_RELATIONSHIP, "extension": [{"url": "type", "valueCodeableConcept": {"coding": [milestone]}}, {"url": "target", "valueReference": goal_refs[s.goal_id]}]}
            for s in subs
        ]
    res["lifecycleStatus"] = _GOAL_STATUS[p.status]
    if goal.achievement:
        res["achievementStatus"] = {"coding": [{"system": systems.CS_GOAL_ACHIEVEMENT, "code": goal.achievement}]}
    if goal.icf_code:
        res["category"] = [{"coding": [{"system": systems.CS_ICF, "code": goal.icf_code}]}]
    res.update(description={"text": goal.text}, subject=patient, expressedBy=patient)
    if goal.target_date:
        res["target"] = [{"dueDate": goal.target_date.isoformat()}]
    return e.add(goal_refs[goal.goal_id]["reference"], res, by_tag("goal/" + key))


def _action(e: Entries, p: RehabPlan, a: RehabAction, patient: dict, org: dict, goals: list[dict]) -> dict:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [systems.PROFILE_REHAB_ACTION]},
        "identifier": [f.identifier(systems.SID_REHAB_ACTION, f"{p.plan_id}/{a.action_id}")],
    }
    if goals:
        sr["extension"] = [{"url": systems.EXT_PERTAINS_TO_GOAL, "valueReference": g} for g in goals]
    code: dict[str, Any] = {"coding": [{"system": systems.CS_KVA, "code": a.kva_code}]} if a.kva_code else {}
    code["text"] = a.what
    occurrence = timing(a.start, a.end, a.frequency, a.minutes_per_session)
    if a.scope:
        occurrence["code"] = {"text": a.scope}
    performers = [patient] if a.kind == "egenvard" else []
    if a.responsible_organisation:
        performers.append(e.organisation(a.responsible_organisation))
    if a.responsible_staff:
        performers.append(e.practitioner(a.responsible_staff))
    sr.update(
        status=terminology.row("rehab-action-status", a.status)["request_status"],
        intent="plan",
        category=[
            {"coding": [terminology.coding("rehab-action-kind", a.kind)]},
            {"coding": [terminology.coding("legal-domain", a.legal_domain)]},
            {"coding": [terminology.coding("huvudman", a.huvudman)]},
        ],
        code=code,
        subject=patient,
        occurrenceTiming=occurrence,
        requester=org,
        performer=performers,
    )
    return sr


def _followup(p: RehabPlan, fu: FollowUp, status: str, patient: dict, org: dict, responsible: dict, goals: list[dict]) -> dict:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [systems.PROFILE_REHAB_FOLLOW_UP]},
        "identifier": [f.identifier(systems.SID_REHAB_FOLLOW_UP, f"{p.plan_id}/{fu.followup_id}")],
        "extension": [{"url": systems.EXT_PERTAINS_TO_GOAL, "valueReference": g} for g in goals],
        "status": status,
        "intent": "plan",
        "category": [{"coding": [terminology.coding("legal-domain", "HSL")]}, {"coding": [terminology.coding("huvudman", p.huvudman)]}],
        "code": {"coding": [_kva("AW024")], "text": "Uppföljning av rehabiliteringsplan"},
        "subject": patient,
        "occurrenceDateTime": fu.planned_on.isoformat(),
        "requester": org,
        "performer": [responsible],
        "reasonCode": [{"coding": [terminology.coding("rehab-followup-trigger", fu.trigger)]}],
    }
    if fu.note:
        sr["note"] = [{"text": fu.note}]
    return sr


def _instruction(e: Entries, p: RehabPlan, t: TrainingInstruction, patient: dict, org: dict, action: dict) -> dict:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [systems.PROFILE_TRAINING_INSTRUCTION]},
        "identifier": [f.identifier(systems.SID_TRAINING_INSTRUCTION, f"{p.plan_id}/{t.instruction_id}")],
    }
    if t.basis:
        task["basedOn"] = [logical("ServiceRequest", systems.SID_INSATS, insats_key(t.basis))]
    task["status"] = t.status
    if t.status_reason:
        task["statusReason"] = {"text": t.status_reason}
    task.update(
        intent="order",
        code={"coding": [terminology.coding("plan-activity-type", t.task_type)]},
        description=t.instruction,
        focus=action,
        **{"for": patient},
        authoredOn=t.issued_on.isoformat(),
        requester=org,
        owner=e.organisation(t.recipient),
    )
    return task


def _event(e: Entries, p: RehabPlan, ev: LifecycleEvent, patient: dict, org: dict, based_on: list[dict]) -> dict:
    proc: dict[str, Any] = {
        "resourceType": "Procedure",
        "meta": {"profile": [systems.PROFILE_REHAB_EVENT]},
        "identifier": [f.identifier(systems.SID_REHAB_EVENT, f"{p.plan_id}/{ev.event_id}")],
        "basedOn": based_on,
        "status": "completed",
        "code": {"coding": [_kva(ev.code)]},
        "subject": patient,
        "performedDateTime": ev.date.isoformat(),
        "performer": [{"actor": e.practitioner(ev.performed_by), "onBehalfOf": org}],
    }
    if lifecycle_event(ev.code) == "close" and p.closure:
        proc["outcome"] = {"coding": [terminology.coding("rehab-closure-reason", p.closure.reason)]}
    if ev.note:
        proc["note"] = [{"text": ev.note}]
    if lifecycle_event(ev.code) == "close" and p.closure:
        proc["followUp"] = [
            {"coding": [terminology.coding("rehab-closure-information", "egenvard")], "text": p.closure.self_care_advice},
            {"coding": [terminology.coding("rehab-closure-information", "kontaktvag")], "text": p.closure.contact_info},
        ]
    return proc


def _care_team(e: Entries, p: RehabPlan, patient: dict, org: dict, responsible: dict) -> str:
    key = f"careteam/rehabplan/{p.plan_id}"

    def role(code: str) -> list[dict]:
        return [{"coding": [terminology.coding("plan-careteam-role", code)]}]

    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "meta": {"profile": [systems.PROFILE_REHAB_CARETEAM], "tag": [f.tag_key(key)]},
        "identifier": [f.identifier(systems.SID_REHAB_PLAN, p.plan_id)],
        "status": "inactive" if p.status == "completed" else "active" if p.status == "active" else "proposed",
        "name": f"Rehabiliteringsplan {p.plan_id}",
        "subject": patient,
        "participant": [{"role": role("planansvarig"), "member": responsible, "onBehalfOf": org}, {"role": role("ansvarig-enhet"), "member": org}],
        "managingOrganization": [org],
    }
    if p.contact_phone:
        team["telecom"] = [{"system": "phone", "value": p.contact_phone}]
    return e.add(f.full_url("CareTeam", key), team, by_tag(key))


# ======================================================================================
# Decoder
# ======================================================================================


def from_fhir(bundle: Bundle) -> RehabPlan:
    """Decode the one rehabiliteringsplan a Bundle carries (transaction, collection, searchset, ...)."""
    index = f.BundleIndex(bundle)
    cp, plan_id = the_plan(index, systems.SID_REHAB_PLAN, "rehabiliteringsplan", NotARehabPlanError)
    prefix = f"{plan_id}/"

    def resolve(reference: dict | None, what: str) -> dict:
        return must(index, reference, f"CarePlan {plan_id}: {what}", NotARehabPlanError)

    goal_id = goal_ids(f"{_GOAL_PREFIX}{plan_id}/")
    goal_resources = [resolve(ref, "goal") for ref in cp.get("goal", ())]
    parents: dict[str, str] = {}
    for goal in goal_resources:
        for ext in goal.get("extension", ()):
            if ext.get("url") != systems.EXT_GOAL_RELATIONSHIP:
                continue
            parts = {x["url"]: x for x in ext.get("extension", ())}
            if f.code_in(parts["type"].get("valueCodeableConcept"), systems.CS_GOAL_RELATIONSHIP_TYPE) == "milestone":
                parents[goal_id(resolve(parts["target"].get("valueReference"), "sub-goal"))] = goal_id(goal)
    goals = [
        RehabGoal(
            goal_id=goal_id(g),
            text=g["description"]["text"],
            parent_goal_id=parents.get(goal_id(g)),
            icf_code=f.code_in(g.get("category"), systems.CS_ICF),
            target_date=(g.get("target") or [{}])[0].get("dueDate"),
            achievement=f.code_in(g.get("achievementStatus"), systems.CS_GOAL_ACHIEVEMENT),
        )
        for g in goal_resources
    ]

    impression = referral = consent = None
    for info in cp.get("supportingInfo", ()):
        if info.get("identifier", {}).get("system") == systems.SID_REHAB_REFERRAL:
            referral = info["identifier"]["value"]
        else:
            res = resolve(info, "supportingInfo")
            if res.get("resourceType") == "ClinicalImpression":
                impression = res
            elif res.get("resourceType") == "Consent":
                consent = consent_of(res, index, f"CarePlan {plan_id}", NotARehabPlanError)
    if impression is None:
        raise NotARehabPlanError(f"CarePlan {plan_id}: no assessment (ClinicalImpression in supportingInfo)")

    actions, followups, instructions = [], [], []
    for line in cp.get("activity", ()):
        res = resolve(line.get("reference"), "activity")
        if f.first_identifier(res, systems.SID_REHAB_ACTION):
            actions.append(_action_from(res, prefix, index, goal_id))
        elif f.first_identifier(res, systems.SID_REHAB_FOLLOW_UP):
            followups.append(_followup_from(res, prefix))
        elif f.first_identifier(res, systems.SID_TRAINING_INSTRUCTION):
            instructions.append(_instruction_from(res, prefix, index))

    events, closure = [], None
    for proc in index.resources("Procedure"):
        key = f.first_identifier(proc, systems.SID_REHAB_EVENT) or ""
        if not key.startswith(prefix):
            continue
        event, closed = _event_from(proc, prefix, index)
        events.append(event)
        closure = closure or closed

    phone = None
    for team_ref in cp.get("careTeam", ()):
        phone = next((t["value"] for t in resolve(team_ref, "careTeam").get("telecom", ()) if t.get("system") == "phone"), phone)
    period_ = cp.get("period") or {}
    return RehabPlan(
        plan_id=plan_id,
        person=f.person_from(resolve(cp.get("subject"), "subject")),
        organisation=f.organisation_from(resolve(cp.get("author"), "author")),
        huvudman=f.code_in(cp.get("category"), systems.CS_HUVUDMAN),
        responsible=f.staff_from(resolve((cp.get("contributor") or [None])[0], "contributor")),
        contact_phone=phone,
        referral_id=referral,
        start=period_.get("start"),
        end=period_.get("end"),
        assessment=_assessment_from(impression, prefix, index),
        goals=goals,
        actions=actions,
        followups=followups,
        events=events,
        training_instructions=instructions,
        closure=closure,
        samtycke=consent,
    )


def _assessment_from(ci: dict, prefix: str, index: f.BundleIndex) -> Assessment:
    findings = []
    for item in ci.get("finding", ()):
        obs = must(index, item.get("itemReference"), "ClinicalImpression: finding", NotARehabPlanError)
        findings.append(
            Finding(
                finding_id=strip_prefix(f.first_identifier(obs, systems.SID_REHAB_FINDING), prefix, "Observation"),
                component=f.code_in(obs.get("category"), systems.CS_ICF_COMPONENT),
                icf_code=f.code_in(obs.get("code"), systems.CS_ICF),
                text=obs["code"]["text"],
                factor_role=f.code_in(obs.get("interpretation"), systems.CS_ICF_FACTOR_ROLE),
                instrument=(obs.get("method") or {}).get("text"),
                result=obs.get("valueString"),
            )
        )
    return Assessment(
        assessed_on=ci["effectiveDateTime"][:10],
        assessed_by=f.staff_from(must(index, ci.get("assessor"), "ClinicalImpression: assessor", NotARehabPlanError)),
        summary=ci["summary"],
        what_matters=(ci.get("note") or [{}])[0].get("text"),
        findings=findings,
    )


def _action_from(sr: dict, prefix: str, index: f.BundleIndex, goal_id) -> RehabAction:
    action_id = strip_prefix(f.first_identifier(sr, systems.SID_REHAB_ACTION), prefix, "ServiceRequest")
    where = f"ServiceRequest {action_id}"
    timing_ = sr.get("occurrenceTiming") or {}
    repeat = timing_.get("repeat", {})
    bounds = repeat.get("boundsPeriod", {})
    staff = org = None
    for performer in sr.get("performer", ()):
        res = must(index, performer, f"{where}: performer", NotARehabPlanError)
        if res.get("resourceType") == "Practitioner":
            staff = f.staff_from(res)
        elif res.get("resourceType") == "Organization":
            org = f.organisation_from(res)
    goals = [
        goal_id(must(index, ext.get("valueReference"), f"{where}: goal", NotARehabPlanError))
        for ext in sr.get("extension", ())
        if ext.get("url") == systems.EXT_PERTAINS_TO_GOAL
    ]
    if sr.get("status") not in _ACTION_STATUS_BY_FHIR:
        raise NotARehabPlanError(f"{where}: status {sr.get('status')!r} is not a rehab action status")
    return RehabAction(
        action_id=action_id,
        what=sr["code"]["text"],
        kind=f.code_in(sr.get("category"), systems.CS_REHAB_ACTION_KIND),
        status=_ACTION_STATUS_BY_FHIR[sr["status"]],
        kva_code=f.code_in(sr.get("code"), systems.CS_KVA),
        legal_domain=f.code_in(sr.get("category"), systems.CS_LEGAL_DOMAIN),
        huvudman=f.code_in(sr.get("category"), systems.CS_HUVUDMAN),
        responsible_staff=staff,
        responsible_organisation=org,
        start=bounds.get("start"),
        end=bounds.get("end"),
        frequency=frequency_from(repeat, where),
        minutes_per_session=repeat.get("duration"),
        scope=(timing_.get("code") or {}).get("text"),
        goal_ids=goals,
    )


def _followup_from(sr: dict, prefix: str) -> FollowUp:
    return FollowUp(
        followup_id=strip_prefix(f.first_identifier(sr, systems.SID_REHAB_FOLLOW_UP), prefix, "ServiceRequest"),
        planned_on=sr["occurrenceDateTime"][:10],
        trigger=f.code_in(sr.get("reasonCode"), systems.CS_REHAB_FOLLOWUP_TRIGGER),
        note=(sr.get("note") or [{}])[0].get("text"),
    )


def _instruction_from(task: dict, prefix: str, index: f.BundleIndex) -> TrainingInstruction:
    instruction_id = strip_prefix(f.first_identifier(task, systems.SID_TRAINING_INSTRUCTION), prefix, "Task")
    where = f"Task {instruction_id}"
    action = must(index, task.get("focus"), f"{where}: focus", NotARehabPlanError)
    basis = next((b["identifier"]["value"] for b in task.get("basedOn", ()) if b.get("identifier", {}).get("system") == systems.SID_INSATS), None)
    return TrainingInstruction(
        instruction_id=instruction_id,
        action_id=strip_prefix(f.first_identifier(action, systems.SID_REHAB_ACTION), prefix, "ServiceRequest"),
        task_type=f.code_in(task.get("code"), systems.CS_PLAN_ACTIVITY_TYPE),
        recipient=f.organisation_from(must(index, task.get("owner"), f"{where}: owner", NotARehabPlanError)),
        instruction=task["description"],
        basis=basis_from(basis),
        issued_on=task["authoredOn"][:10],
        status=task["status"],
        status_reason=(task.get("statusReason") or {}).get("text"),
    )


def _event_from(proc: dict, prefix: str, index: f.BundleIndex) -> tuple[LifecycleEvent, Closure | None]:
    event_id = strip_prefix(f.first_identifier(proc, systems.SID_REHAB_EVENT), prefix, "Procedure")
    where = f"Procedure {event_id}"
    followup_id = None
    for ref in proc.get("basedOn", ()):
        res = must(index, ref, f"{where}: basedOn", NotARehabPlanError)
        key = f.first_identifier(res, systems.SID_REHAB_FOLLOW_UP)
        if key:
            followup_id = strip_prefix(key, prefix, "ServiceRequest")
    performer = (proc.get("performer") or [{}])[0]
    code = f.code_in(proc.get("code"), systems.CS_KVA)
    closure = None
    if "outcome" in proc or "followUp" in proc:
        texts = {f.code_in(c, systems.CS_REHAB_CLOSURE_INFORMATION): c.get("text") for c in proc.get("followUp", ())}
        closure = Closure(
            reason=f.code_in(proc.get("outcome"), systems.CS_REHAB_CLOSURE_REASON),
            self_care_advice=texts.get("egenvard"),
            contact_info=texts.get("kontaktvag"),
        )
    event = LifecycleEvent(
        event_id=event_id,
        code=code,
        date=proc["performedDateTime"][:10],
        performed_by=f.staff_from(must(index, performer.get("actor"), f"{where}: performer", NotARehabPlanError)),
        followup_id=followup_id,
        note=(proc.get("note") or [{}])[0].get("text"),
    )
    return event, closure
