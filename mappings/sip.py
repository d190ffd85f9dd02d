"""SIP / SPU ⇄ FHIR R4: `to_fhir` (encoder) and `from_fhir` (decoder) side by side.

One plan becomes one transaction Bundle of conditional creates:

- `CarePlan` (category = RIV plan type SIP or SPU) with `careTeam`, `addresses` (needs),
  `supportingInfo` (the Consent), `goal` and one `activity` per intervention whose
  `outcomeReference` lists its follow-ups; `encounter` names the hospital stay of an SPU;
- `CareTeam`: the person, each organisation with its role and huvudman, contact persons,
  närstående and the ställföreträdare; `managingOrganization` = the lead huvudman's organisation;
- one `ServiceRequest` per intervention (performer = the responsible organisation, category =
  huvudman and legal domain, `basedOn` = the plan) with a `Goal` for its intended effect;
- one `Observation` per follow-up (delivered? intended effect?), `Condition` per need;
- `Consent` (scope patient-privacy, LOINC 59284-0, policyRule = the legal basis, provision with
  the organisations as actors, the information categories, the purposes, and a nested provision
  for närstående);
- `Provenance`: one for the plan (its author) and one per organisation for its contribution.

A plan for a person with a ställföreträdare carries the `workflow-flag` tag
`manuell-hantering-stallforetradare` on its CarePlan. The round trip is exact
(tests/flows/test_sip_roundtrip.py).
"""

from __future__ import annotations

from typing import Any

from mappings import fhir as f
from mappings import systems, terminology
from mappings.models.sip import (
    Consent,
    CoordinatedPlan,
    FollowUp,
    Guardian,
    Intervention,
    Need,
    Participant,
    PlanGoal,
    Relative,
)

Bundle = dict[str, Any]

MANUAL_HANDLING = "manuell-hantering-stallforetradare"


# ======================================================================================
# Encoder
# ======================================================================================


class _Builder:
    """Collects the entries of one plan's Bundle and the URLs they are known by."""

    def __init__(self, plan: CoordinatedPlan) -> None:
        self.plan = plan
        self.entries: list[dict[str, Any]] = []
        self.org_url: dict[str, str] = {}
        self.contact_url: dict[str, str] = {}
        self.relative_urls: list[str] = []
        self.guardian_url: str | None = None
        self.need_url: dict[str, str] = {}

    def add(self, url: str, resource: dict, if_none_exist: str) -> str:
        self.entries.append(f.post_entry(url, resource, if_none_exist))
        return url

    def key(self, *parts: str) -> str:
        return "/".join((self.plan.plan_id, *parts))


def to_fhir(plan: CoordinatedPlan) -> Bundle:
    """Encode a SIP/SPU as a FHIR R4 transaction Bundle with conditional creates."""
    b = _Builder(plan)
    p = plan
    patient, patient_cond = f.patient(p.person)
    patient_url = b.add(f.full_url("Patient", p.person.personnummer), patient, patient_cond)
    plan_url = f.full_url("CarePlan", "sip", p.plan_id)

    for part in p.participants:
        org, cond = f.organization(part.organisation)
        b.org_url[part.key] = b.add(f.full_url("Organization", f.organisation_key(part.organisation)), org, cond)
        if part.contact:
            res, cond = f.practitioner(part.contact)
            url = f.full_url("Practitioner", f.staff_key(part.contact))
            if url not in b.contact_url.values():
                b.add(url, res, cond)
            b.contact_url[part.key] = url
    for n, relative in enumerate(p.relatives, start=1):
        b.relative_urls.append(_related_person(b, patient_url, b.key("narstaende", str(n)), relative))
    if p.guardian:
        b.guardian_url = _related_person(b, patient_url, b.key("stallforetradare"), p.guardian)
    for need in p.needs:
        b.need_url[need.need_id] = _condition(b, patient_url, need)

    plan_goal_status = terminology.row("sip-status", p.status)["goal_status"]
    plan_goals = [_goal(b, patient_url, f"sip/{b.key('mal', str(n))}", g.text, g.life_area, plan_goal_status, None, True) for n, g in enumerate(p.goals, start=1)]

    activities: list[dict[str, Any]] = []
    intervention_goals: list[str] = []
    contributions: dict[str, list[str]] = {}
    unowned: list[str] = []
    for i in p.interventions:
        goal_url = None
        if i.intended_effect:
            status = terminology.row("sip-intervention-status", i.status)["goal_status"]
            achievement = terminology.row("intervention-effect", i.follow_ups[-1].effect)["goal_achievement"] if i.follow_ups and i.follow_ups[-1].effect else None
            goal_url = _goal(b, patient_url, f"sip/{b.key('insats', i.intervention_id)}", i.intended_effect, None, status, achievement, False)
            intervention_goals.append(goal_url)
        sr_url = f.full_url("ServiceRequest", "sip", p.plan_id, i.intervention_id)
        b.add(sr_url, _service_request(b, i, patient_url, plan_url, goal_url), "identifier=" + f.search_token(systems.SID_SIP_INTERVENTION, b.key(i.intervention_id)))
        performer = b.org_url[i.responsible] if i.responsible else b.org_url[p.lead.key]
        outcomes = [_follow_up(b, i, fu, patient_url, sr_url, performer) for fu in i.follow_ups]
        activity: dict[str, Any] = {"reference": f.ref(sr_url)}
        if outcomes:
            activity["outcomeReference"] = [f.ref(u) for u in outcomes]
        activities.append(activity)
        owned = [sr_url, *([goal_url] if goal_url else []), *outcomes]
        if i.responsible:
            contributions.setdefault(i.responsible, []).extend(owned)
        else:
            unowned.extend(owned)

    consent_url = _consent(b, p.consent, patient_url) if p.consent else None
    team_url = _care_team(b, patient_url)
    plan_res = _care_plan(b, patient_url, team_url, consent_url, [*plan_goals, *intervention_goals], activities)
    b.add(plan_url, plan_res, "identifier=" + f.search_token(systems.SID_SIP, p.plan_id))

    plan_targets = [plan_url, team_url, *([consent_url] if consent_url else []), *b.need_url.values(), *plan_goals, *b.relative_urls, *([b.guardian_url] if b.guardian_url else []), *unowned]
    _provenance(b, "", plan_targets, p.author)
    for key, targets in contributions.items():
        _provenance(b, key, targets, key)
    return f.transaction(b.entries, f"sip|{p.plan_id}")


def _related_person(b: _Builder, patient_url: str, key: str, who: Relative | Guardian) -> str:
    if isinstance(who, Guardian):
        relationship = {"coding": [{"system": systems.CS_V3_ROLE_CODE, "code": "GUARD", "display": "guardian"}, terminology.coding("guardian-kind", who.kind)]}
    else:
        row = terminology.row("relative-relationship", who.relationship)
        relationship = {"coding": [{"system": systems.CS_V3_ROLE_CODE, "code": row["v3"], "display": row["display"]}]}
    res: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "identifier": [f.identifier(systems.SID_RELATED_PERSON, key)],
        "patient": f.ref(patient_url),
        "relationship": [relationship],
        "name": [{"text": who.name}],
    }
    if who.phone:
        res["telecom"] = [{"system": "phone", "value": who.phone}]
    return b.add(f.full_url("RelatedPerson", key), res, "identifier=" + f.search_token(systems.SID_RELATED_PERSON, key))


def _condition(b: _Builder, patient_url: str, need: Need) -> str:
    key = b.key(need.need_id)
    category = [{"coding": [terminology.coding("need-category", "behov")]}]
    if need.life_area:
        category.append({"coding": [{"system": systems.CS_IBIC_LIFE_AREA, "code": need.life_area}]})
    res = {
        "resourceType": "Condition",
        "identifier": [f.identifier(systems.SID_SIP_NEED, key)],
        "clinicalStatus": {"coding": [{"system": systems.CS_CONDITION_CLINICAL, "code": "active"}]},
        "category": category,
        "code": {"text": need.text},
        "subject": f.ref(patient_url),
    }
    return b.add(f.full_url("Condition", "sip", key), res, "identifier=" + f.search_token(systems.SID_SIP_NEED, key))


def _goal(b: _Builder, patient_url: str, key: str, text: str, life_area: str | None, status: str, achievement: str | None, the_persons: bool) -> str:
    res: dict[str, Any] = {
        "resourceType": "Goal",
        "meta": {"profile": [systems.PROFILE_GOAL], "tag": [f.tag_key("goal/" + key)]},
        "identifier": [f.identifier(systems.SID_GOAL, key)],
        "lifecycleStatus": status,
    }
    if achievement:
        res["achievementStatus"] = {"coding": [{"system": systems.CS_GOAL_ACHIEVEMENT, "code": achievement}]}
    if life_area:
        res["category"] = [{"coding": [{"system": systems.CS_IBIC_LIFE_AREA, "code": life_area}]}]
    res["description"] = {"text": text}
    res["subject"] = f.ref(patient_url)
    if the_persons:
        res["expressedBy"] = f.ref(patient_url)
    return b.add(f.full_url("Goal", key), res, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, "goal/" + key))


def _service_request(b: _Builder, i: Intervention, patient_url: str, plan_url: str, goal_url: str | None) -> dict:
    row = terminology.row("sip-intervention-status", i.status)
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [systems.PROFILE_SIP_SERVICE_REQUEST]},
        "identifier": [f.identifier(systems.SID_SIP_INTERVENTION, b.key(i.intervention_id)), f.identifier(systems.SID_SIP, b.plan.plan_id)],
    }
    if goal_url:
        sr["extension"] = [{"url": systems.EXT_PERTAINS_TO_GOAL, "valueReference": f.ref(goal_url)}]
    sr["basedOn"] = [f.ref(plan_url)]
    sr["status"] = row["request_status"]
    sr["intent"] = row["request_intent"]
    category = [{"coding": [terminology.coding("huvudman", i.huvudman)]}]
    if i.legal_domain:
        category.append({"coding": [terminology.coding("legal-domain", i.legal_domain)]})
    category.append({"coding": [terminology.coding("riv-care-plan-type", b.plan.plan_type)]})
    sr["category"] = category
    sr["code"] = {"text": i.description}
    sr["subject"] = f.ref(patient_url)
    if i.start or i.end:
        sr["occurrencePeriod"] = {k: v.isoformat() for k, v in (("start", i.start), ("end", i.end)) if v}
    performers = []
    if i.responsible:
        performers.append(f.ref(b.org_url[i.responsible], b.plan.participant(i.responsible).organisation.name))
    if i.performed_by:
        performers.append({"display": i.performed_by})
    sr["performer"] = performers
    if i.need_ids:
        sr["reasonReference"] = [f.ref(b.need_url[n]) for n in i.need_ids]
    return sr


def _follow_up(b: _Builder, i: Intervention, fu: FollowUp, patient_url: str, sr_url: str, performer_url: str) -> str:
    key = b.key(i.intervention_id, fu.date.isoformat())
    components = [{"code": {"coding": [terminology.coding("sip-follow-up", "levererad")]}, "valueCodeableConcept": {"coding": [terminology.coding("delivery-status", fu.delivered)]}}]
    if fu.effect:
        components.append({"code": {"coding": [terminology.coding("sip-follow-up", "effekt")]}, "valueCodeableConcept": {"coding": [terminology.coding("intervention-effect", fu.effect)]}})
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [systems.PROFILE_SIP_FOLLOW_UP]},
        "identifier": [f.identifier(systems.SID_SIP_FOLLOW_UP, key)],
        "basedOn": [f.ref(sr_url)],
        "status": "final",
        "code": {"coding": [terminology.coding("sip-follow-up", "uppfoljning")]},
        "subject": f.ref(patient_url),
        "effectiveDateTime": fu.date.isoformat(),
        "performer": [f.ref(performer_url)],
    }
    if fu.note:
        res["note"] = [{"text": fu.note}]
    res["component"] = components
    return b.add(f.full_url("Observation", "sip", key), res, "identifier=" + f.search_token(systems.SID_SIP_FOLLOW_UP, key))


def _consent(b: _Builder, c: Consent, patient_url: str) -> str:
    p = b.plan
    ircp = {"coding": [{"system": systems.CS_V3_PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}]}
    relatives: dict[str, Any] = {"type": "permit" if c.relatives_may_take_part else "deny"}
    if c.relatives_may_take_part and b.relative_urls:
        relatives["actor"] = [{"role": ircp, "reference": f.ref(u)} for u in b.relative_urls]
    relatives["code"] = [{"coding": [terminology.coding("sip-role", "narstaende")]}]
    purposes = []
    for code in c.purposes:
        row = terminology.row("consent-purpose", code)
        purposes.append({"system": systems.CS_V3_ACT_REASON, "code": row["v3"], "display": row["display"]})
    res: dict[str, Any] = {
        "resourceType": "Consent",
        "meta": {"profile": [systems.PROFILE_CONSENT]},
        "identifier": [f.identifier(systems.SID_CONSENT, c.consent_id)],
        "status": terminology.row("consent-status", c.status)["fhir_status"],
        "scope": {"coding": [{"system": systems.CS_CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": systems.LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": f.ref(patient_url),
        "dateTime": c.given_at.isoformat(),
        "performer": [f.ref(b.guardian_url if c.given_by == "stallforetradare" else patient_url)],  # type: ignore[arg-type]
        "organization": [f.ref(b.org_url[p.author])],
        "policyRule": {"coding": [terminology.coding("consent-policy", code) for code in terminology.row("sip-plan-type", p.plan_type)["consent_policy"]]},
        "provision": {
            "type": "permit",
            "period": f.period(c.given_at, c.valid_to),
            "actor": [{"role": ircp, "reference": f.ref(b.org_url[k])} for k in c.share_between],
            "action": [{"coding": [{"system": systems.CS_CONSENT_ACTION, "code": "disclose", "display": "Disclose"}]}],
            "purpose": purposes,
            "code": [{"coding": [terminology.coding("consent-information", code)]} for code in c.information],
            "provision": [relatives],
        },
    }
    return b.add(f.full_url("Consent", c.consent_id), res, "identifier=" + f.search_token(systems.SID_CONSENT, c.consent_id))


def _care_team(b: _Builder, patient_url: str) -> str:
    p = b.plan
    key = f"careteam/sip/{p.plan_id}"

    def role(*codes: tuple[str, str]) -> list[dict]:
        return [{"coding": [terminology.coding(table, code)]} for table, code in codes]

    participants: list[dict[str, Any]] = [{"role": role(("sip-role", "den-enskilde")), "member": f.ref(patient_url)}]
    for part in p.participants:
        codes = [("sip-role", part.role), ("huvudman", part.huvudman)]
        if part.lead:
            codes.append(("sip-role", "overgripande-ansvar"))
        org = f.ref(b.org_url[part.key], part.organisation.name)
        participants.append({"role": role(*codes), "member": org})
        if part.contact:
            participants.append({"role": role(("sip-role", "kontaktperson")), "member": f.ref(b.contact_url[part.key], part.contact.name), "onBehalfOf": org})
    participants += [{"role": role(("sip-role", "narstaende")), "member": f.ref(u)} for u in b.relative_urls]
    if b.guardian_url:
        participants.append({"role": role(("sip-role", "stallforetradare")), "member": f.ref(b.guardian_url)})
    res = {
        "resourceType": "CareTeam",
        "meta": {"profile": [systems.PROFILE_SIP_CARETEAM], "tag": [f.tag_key(key)]},
        "identifier": [f.identifier(systems.SID_SIP, p.plan_id)],
        "status": terminology.row("sip-status", p.status)["careteam_status"],
        "subject": f.ref(patient_url),
        "participant": participants,
        "managingOrganization": [f.ref(b.org_url[p.lead.key], p.lead.organisation.name)],
    }
    return b.add(f.full_url("CareTeam", "sip", p.plan_id), res, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, key))


def _care_plan(b: _Builder, patient_url: str, team_url: str, consent_url: str | None, goal_urls: list[str], activities: list[dict]) -> dict:
    p = b.plan
    meta: dict[str, Any] = {"profile": [systems.PROFILE_SIP_CAREPLAN]}
    if p.needs_manual_handling:
        meta["tag"] = [terminology.coding("workflow-flag", MANUAL_HANDLING)]
    res: dict[str, Any] = {"resourceType": "CarePlan", "meta": meta, "identifier": [f.identifier(systems.SID_SIP, p.plan_id)]}
    if p.next_follow_up:
        res["extension"] = [{"url": systems.EXT_NEXT_FOLLOW_UP, "valueDate": p.next_follow_up.isoformat()}]
    res["status"] = terminology.row("sip-status", p.status)["careplan_status"]
    res["intent"] = "plan"
    res["category"] = [{"coding": [terminology.coding("riv-care-plan-type", p.plan_type)]}]
    if p.title:
        res["title"] = p.title
    res["subject"] = f.ref(patient_url)
    if p.encounter_id:
        res["encounter"] = {"identifier": f.identifier(systems.SID_ENCOUNTER, p.encounter_id)}
    res["period"] = {"start": p.meeting_date.isoformat()}
    res["created"] = p.meeting_date.isoformat()
    res["author"] = f.ref(b.org_url[p.author], p.participant(p.author).organisation.name)
    res["contributor"] = [f.ref(b.org_url[part.key], part.organisation.name) for part in p.participants]
    res["careTeam"] = [f.ref(team_url)]
    if b.need_url:
        res["addresses"] = [f.ref(u) for u in b.need_url.values()]
    if consent_url:
        res["supportingInfo"] = [f.ref(consent_url)]
    if goal_urls:
        res["goal"] = [f.ref(u) for u in goal_urls]
    res["activity"] = activities
    return res


def _provenance(b: _Builder, org_key: str, targets: list[str], agent_key: str) -> None:
    p = b.plan
    key = f"provenance/sip/{p.plan_id}" + (f"/{org_key}" if org_key else "")
    org = f.ref(b.org_url[agent_key])
    agent: dict[str, Any] = {"type": {"coding": [{"system": systems.CS_PROVENANCE_AGENT_TYPE, "code": "author"}]}}
    if agent_key in b.contact_url:
        agent["who"] = f.ref(b.contact_url[agent_key])
        agent["onBehalfOf"] = org
    else:
        agent["who"] = org
    res = {
        "resourceType": "Provenance",
        "meta": {"tag": [f.tag_key(key)]},
        "target": [f.ref(u) for u in targets],
        "recorded": f"{p.meeting_date.isoformat()}T00:00:00+00:00",
        "activity": {"coding": [{"system": systems.CS_PROVENANCE_ACTIVITY, "code": "CREATE"}]},
        "agent": [agent],
    }
    b.add(f.full_url("Provenance", key), res, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, key))


# ======================================================================================
# Decoder
# ======================================================================================


class NotASipError(ValueError):
    """A FHIR Bundle that carries no (or more than one) SIP/SPU."""


def from_fhir(bundle: Bundle) -> CoordinatedPlan:
    """Decode the one SIP/SPU a Bundle carries (transaction, batch, collection or searchset)."""
    return f.only(from_fhir_all(bundle), "SIP/SPU", NotASipError)


def from_fhir_all(bundle: Bundle) -> list[CoordinatedPlan]:
    """Decode every SIP/SPU CarePlan in a Bundle, in order."""
    index = f.BundleIndex(bundle)
    return [_plan(cp, index) for cp in index.resources("CarePlan") if f.first_identifier(cp, systems.SID_SIP) is not None]


def _reverse(table: str, column: str) -> dict[Any, str]:
    return {row[column]: code for code, row in terminology.table(table).items()}


def _plan(cp: dict, index: f.BundleIndex) -> CoordinatedPlan:
    plan_id = f.first_identifier(cp, systems.SID_SIP) or ""
    prefix = plan_id + "/"

    def strip(value: str | None) -> str:
        value = value or ""
        return value[len(prefix):] if value.startswith(prefix) else value

    patient = _must(index, cp.get("subject"), f"CarePlan {plan_id}: subject")
    team = _must(index, (cp.get("careTeam") or [None])[0], f"CarePlan {plan_id}: careTeam")
    participants, relatives, guardian, member_key = _team(plan_id, team, index)
    author = _must(index, cp.get("author"), f"CarePlan {plan_id}: author")
    needs = []
    need_by_url: dict[str, str] = {}
    for ref in cp.get("addresses", ()):
        cond = _must(index, ref, f"CarePlan {plan_id}: addresses")
        need_id = strip(f.first_identifier(cond, systems.SID_SIP_NEED))
        need_by_url[_identity(index, ref)] = need_id
        areas = [c for c in f.codings(cond.get("category")) if c.get("system") == systems.CS_IBIC_LIFE_AREA]
        needs.append(Need(need_id=need_id, text=cond["code"]["text"], life_area=areas[0]["code"] if areas else None))
    goals = []
    for ref in cp.get("goal", ()):
        goal = _must(index, ref, f"CarePlan {plan_id}: goal")
        if (f.first_identifier(goal, systems.SID_GOAL) or "").startswith(f"sip/{plan_id}/mal/"):
            goals.append(PlanGoal(text=goal["description"]["text"], life_area=f.code_in(goal.get("category"), systems.CS_IBIC_LIFE_AREA)))
    consent = None
    for ref in cp.get("supportingInfo", ()):
        res = _must(index, ref, f"CarePlan {plan_id}: supportingInfo")
        if res.get("resourceType") == "Consent":
            consent = _consent_from(res, index, member_key)
    interventions = [_intervention(plan_id, activity, index, member_key, need_by_url) for activity in cp.get("activity", ())]
    next_follow_up = f.extension_value(cp, systems.EXT_NEXT_FOLLOW_UP, "valueDate")
    return CoordinatedPlan(
        plan_id=plan_id,
        plan_type=f.code_in(cp.get("category"), systems.CS_CARE_PLAN_TYPE),
        status=_reverse("sip-status", "careplan_status")[cp["status"]],
        title=cp.get("title"),
        meeting_date=(cp.get("period") or {}).get("start") or cp.get("created"),
        next_follow_up=next_follow_up,
        encounter_id=((cp.get("encounter") or {}).get("identifier") or {}).get("value"),
        author=member_key[_identity(index, cp["author"])] if _identity(index, cp["author"]) in member_key else _org_key(author),
        person=f.person_from(patient),
        participants=participants,
        relatives=relatives,
        guardian=guardian,
        consent=consent,
        needs=needs,
        goals=goals,
        interventions=interventions,
    )


def _identity(index: f.BundleIndex, reference: dict | None) -> str:
    """A stable identity for a reference target: the resolved resource's type/id or its fullUrl."""
    res = index.resolve(reference)
    if res is None:
        return (reference or {}).get("reference", "")
    return f"{res['resourceType']}/{id(res)}"


def _org_key(org: dict) -> str:
    return f.first_identifier(org, systems.HSA_ID) or f.first_identifier(org, systems.ORGANISATIONSNUMMER) or ""


def _team(plan_id: str, team: dict, index: f.BundleIndex) -> tuple[list[Participant], list[Relative], Guardian | None, dict[str, str]]:
    """Participants, relatives and guardian from the CareTeam; and member identity -> OrgKey."""
    organisations: list[dict[str, Any]] = []
    by_org: dict[str, dict[str, Any]] = {}
    contacts: list[tuple[str, dict]] = []
    relatives: list[Relative] = []
    guardian: Guardian | None = None
    rel_v3 = _reverse("relative-relationship", "v3")
    for part in team.get("participant", ()):
        roles = {c.get("code") for c in f.codings(part.get("role")) if c.get("system") == systems.CS_SIP_ROLE}
        member = _must(index, part.get("member"), f"CareTeam of {plan_id}: participant.member")
        rtype = member.get("resourceType")
        if rtype == "Organization":
            entry = {
                "organisation": f.organisation_from(member),
                "huvudman": f.code_in(part.get("role"), systems.CS_HUVUDMAN),
                "role": next(r for r in roles if r not in ("overgripande-ansvar",)),
                "lead": "overgripande-ansvar" in roles,
            }
            organisations.append(entry)
            by_org[_identity(index, part["member"])] = entry
        elif rtype == "Practitioner" and "kontaktperson" in roles:
            contacts.append((_identity(index, part.get("onBehalfOf")), member))
        elif rtype == "RelatedPerson" and "stallforetradare" in roles:
            guardian = Guardian(name=member["name"][0]["text"], kind=f.code_in(member.get("relationship"), systems.CS_GUARDIAN_KIND), phone=_phone(member))
        elif rtype == "RelatedPerson" and "narstaende" in roles:
            v3 = next(c["code"] for c in f.codings(member.get("relationship")) if c.get("system") == systems.CS_V3_ROLE_CODE)
            relatives.append(Relative(name=member["name"][0]["text"], relationship=rel_v3[v3], phone=_phone(member)))
    for org_identity, practitioner in contacts:
        by_org[org_identity]["contact"] = f.staff_from(practitioner)
    participants = [Participant(**entry) for entry in organisations]
    member_key = {identity: Participant(**entry).key for identity, entry in by_org.items()}
    return participants, relatives, guardian, member_key


def _phone(resource: dict) -> str | None:
    return next((t["value"] for t in resource.get("telecom", ()) if t.get("system") == "phone"), None)


def _consent_from(res: dict, index: f.BundleIndex, member_key: dict[str, str]) -> Consent:
    provision = res.get("provision") or {}
    performer = index.resolve((res.get("performer") or [None])[0]) or {}
    purpose_by_v3 = _reverse("consent-purpose", "v3")
    nested = next((n for n in provision.get("provision", ()) if f.code_in(n.get("code"), systems.CS_SIP_ROLE) == "narstaende"), None)
    period = provision.get("period") or {}
    return Consent(
        consent_id=f.first_identifier(res, systems.SID_CONSENT),
        status=_reverse("consent-status", "fhir_status")[res["status"]],
        given_at=res["dateTime"][:10],
        given_by="stallforetradare" if performer.get("resourceType") == "RelatedPerson" else "den-enskilde",
        valid_to=period.get("end"),
        share_between=[member_key[_identity(index, a.get("reference"))] for a in provision.get("actor", ())],
        information=[f.code_in(c, systems.CS_CONSENT_INFORMATION) for c in provision.get("code", ())],
        purposes=[purpose_by_v3[c["code"]] for c in provision.get("purpose", ()) if c.get("system") == systems.CS_V3_ACT_REASON],
        relatives_may_take_part=bool(nested and nested.get("type") == "permit"),
    )


def _intervention(plan_id: str, activity: dict, index: f.BundleIndex, member_key: dict[str, str], need_by_url: dict[str, str]) -> Intervention:
    sr = _must(index, activity.get("reference"), f"CarePlan {plan_id}: activity.reference")
    key = f.first_identifier(sr, systems.SID_SIP_INTERVENTION) or ""
    intervention_id = key[len(plan_id) + 1:] if key.startswith(plan_id + "/") else key
    status = {(row["request_status"], row["request_intent"]): code for code, row in terminology.table("sip-intervention-status").items()}
    responsible = performed_by = None
    for perf in sr.get("performer", ()):
        if "reference" in perf:
            responsible = member_key[_identity(index, perf)]
        else:
            performed_by = perf.get("display")
    goal_ref = f.extension_value(sr, systems.EXT_PERTAINS_TO_GOAL, "valueReference")
    goal = _must(index, goal_ref, f"ServiceRequest {key}: goal") if goal_ref else None
    period = sr.get("occurrencePeriod") or {}
    follow_ups = [_follow_up_from(_must(index, ref, f"ServiceRequest {key}: follow-up")) for ref in activity.get("outcomeReference", ())]
    return Intervention(
        intervention_id=intervention_id,
        description=sr["code"]["text"],
        huvudman=f.code_in(sr.get("category"), systems.CS_HUVUDMAN),
        legal_domain=f.code_in(sr.get("category"), systems.CS_LEGAL_DOMAIN),
        responsible=responsible,
        performed_by=performed_by,
        status=status[(sr["status"], sr["intent"])],
        need_ids=[need_by_url[_identity(index, ref)] for ref in sr.get("reasonReference", ())],
        intended_effect=goal["description"]["text"] if goal else None,
        start=period.get("start"),
        end=period.get("end"),
        follow_ups=follow_ups,
    )


def _follow_up_from(obs: dict) -> FollowUp:
    values: dict[str, str | None] = {}
    for comp in obs.get("component", ()):
        which = f.code_in(comp.get("code"), systems.CS_SIP_FOLLOW_UP)
        values[which or ""] = (f.code_in(comp.get("valueCodeableConcept"), systems.CS_DELIVERY_STATUS) or f.code_in(comp.get("valueCodeableConcept"), systems.CS_INTERVENTION_EFFECT))
    return FollowUp(
        date=obs["effectiveDateTime"][:10],
        delivered=values.get("levererad"),
        effect=values.get("effekt"),
        note=(obs.get("note") or [{}])[0].get("text"),
    )


def _must(index: f.BundleIndex, reference: dict | None, what: str) -> dict:
    res = index.resolve(reference)
    if res is None:
        raise NotASipError(f"{what} does not resolve inside the Bundle ({(reference or {}).get('reference')})")
    return res
