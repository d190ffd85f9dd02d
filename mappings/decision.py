"""Biståndsbeslut ⇄ FHIR R4: `to_fhir` (encoder) and `from_fhir` (decoder) side by side.

One decision becomes one transaction Bundle: Patient, Organizations, the handläggare's
Practitioner, one ServiceRequest per insats, a Goal per goal, a CarePlan for the decision,
a Task per granted insats assigning it to its utförare, and a Provenance. Every entry is a
conditional create on a business identifier, so a resend never duplicates.

Each ServiceRequest carries the whole decision context (decision id, date, kind, legal basis,
motivation, status reason) so an utförare that only sees its own insats sees the decision;
`from_fhir` reads the decision back from the ServiceRequests and the Patient, Organizations
and Practitioner they reference. The round trip is exact: nothing of the canonical model
is lost (see tests/property/test_decision_roundtrip.py).
"""

from __future__ import annotations

from typing import Any

from mappings import systems, terminology
from mappings import fhir as f
from mappings.models.common import SharingConsent
from mappings.models.decision import CareDecision, Goal, HoursVolume, Insats, VisitsVolume

Bundle = dict[str, Any]

_UCUM_TO_PER = {row["ucum"]: code for code, row in terminology.table("period-unit").items()}


# ======================================================================================
# Encoder
# ======================================================================================


def to_fhir(decision: CareDecision) -> Bundle:
    """Encode a CareDecision as a FHIR R4 transaction Bundle with conditional creates."""
    d = decision
    kind = terminology.row("decision-kind", d.decision_kind)
    entries: list[dict[str, Any]] = []

    patient, patient_cond = f.patient(d.person)
    patient_url = f.full_url("Patient", d.person.personnummer)
    entries.append(f.post_entry(patient_url, patient, patient_cond))

    org_urls: dict[str, str] = {}

    def org_ref(org) -> dict[str, str]:
        key = f.organisation_key(org)
        if key not in org_urls:
            res, cond = f.organization(org)
            org_urls[key] = f.full_url("Organization", key)
            entries.append(f.post_entry(org_urls[key], res, cond))
        return f.ref(org_urls[key], org.name)

    municipality = org_ref(d.municipality)
    practitioner, practitioner_cond = f.practitioner(d.handlaggare)
    practitioner_url = f.full_url("Practitioner", f.staff_key(d.handlaggare))
    entries.append(f.post_entry(practitioner_url, practitioner, practitioner_cond))
    handlaggare = f.ref(practitioner_url, d.handlaggare.name)

    consent_url = _consent_entry(d, entries, patient_url, municipality, org_ref) if d.samtycke else None
    request_urls, goal_urls, task_urls = [], [], []
    for insats in d.insatser:
        performer = org_ref(insats.performer) if insats.performer else None
        goals_here = []
        for n, goal in enumerate(insats.goals, start=1):
            url, entry = _goal_entry(d, insats, n, goal, kind["goal_status"], patient_url)
            entries.append(entry)
            goals_here.append(url)
        sr_url = f.full_url("ServiceRequest", d.decision_id, insats.insats_id)
        sr = _service_request(d, insats, kind, patient_url, handlaggare, performer, goals_here, consent_url)
        entries.append(f.post_entry(sr_url, sr, "identifier=" + f.search_token(systems.SID_INSATS, _insats_key(d, insats))))
        request_urls.append(sr_url)
        goal_urls.extend(goals_here)
        if kind["task_status"] and performer:
            task_url = f.full_url("Task", d.decision_id, insats.insats_id)
            task = _task(d, insats, kind["task_status"], sr_url, patient_url, municipality, performer)
            entries.append(f.post_entry(task_url, task, "identifier=" + f.search_token(systems.SID_TASK, _insats_key(d, insats))))
            task_urls.append(task_url)

    plan_url = f.full_url("CarePlan", d.decision_id)
    entries.append(
        f.post_entry(plan_url, _care_plan(d, kind, patient_url, municipality, request_urls, goal_urls, consent_url), "identifier=" + f.search_token(systems.SID_CAREPLAN, d.decision_id))
    )
    provenance_key = f"provenance/{d.decision_id}"
    provenance = {
        "resourceType": "Provenance",
        "meta": {"tag": [f.tag_key(provenance_key)]},
        "target": [f.ref(u) for u in [plan_url, *request_urls, *goal_urls, *task_urls, *([consent_url] if consent_url else [])]],
        "recorded": f"{d.decision_date.isoformat()}T00:00:00+00:00",
        "activity": {"coding": [{"system": systems.CS_PROVENANCE_ACTIVITY, "code": "CREATE"}]},
        "agent": [
            {
                "type": {"coding": [{"system": systems.CS_PROVENANCE_AGENT_TYPE, "code": "author"}]},
                "who": handlaggare,
                "onBehalfOf": municipality,
            }
        ],
    }
    entries.append(f.post_entry(f.full_url("Provenance", d.decision_id), provenance, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, provenance_key)))
    return f.transaction(entries, f"decision|{d.decision_id}")


def _insats_key(d: CareDecision, insats: Insats) -> str:
    return f"{d.decision_id}/{insats.insats_id}"


def _consent_entry(d: CareDecision, entries: list, patient_url: str, municipality: dict, org_ref) -> str:
    """The person's consent to share the decision with another huvudman."""
    assert d.samtycke is not None
    res, cond = f.consent(d.samtycke, patient_url, municipality, [org_ref(o) for o in d.samtycke.recipients], "bistandsbeslut")
    url = f.full_url("Consent", d.samtycke.consent_id)
    entries.append(f.post_entry(url, res, cond))
    return url


def _service_request(d: CareDecision, insats: Insats, kind: dict, patient_url: str, requester, performer, goal_urls: list[str], consent_url: str | None) -> dict:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "meta": {"profile": [systems.PROFILE_DECISION_SERVICE_REQUEST]},
        "identifier": [
            f.identifier(systems.SID_INSATS, _insats_key(d, insats)),
            f.identifier(systems.SID_DECISION, d.decision_id),
        ],
    }
    if d.case_number:
        sr["identifier"].append(f.identifier(systems.SID_CASE, d.case_number))
    extensions = [{"url": systems.EXT_PERTAINS_TO_GOAL, "valueReference": f.ref(u)} for u in goal_urls]
    if d.status_reason:
        extensions.append({"url": systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept": {"coding": [terminology.coding("status-reason", d.status_reason)]}})
    if d.rambeslut:
        extensions.append({"url": systems.EXT_FRAMEWORK_DECISION, "valueBoolean": True})
    if insats.fee_exempt:
        extensions.append({"url": systems.EXT_FEE_EXEMPT, "valueBoolean": True})
    if insats.time_strictness:
        extensions.append({"url": systems.EXT_TIME_STRICTNESS, "valueCoding": terminology.coding("time-strictness", insats.time_strictness)})
    if extensions:
        sr["extension"] = extensions
    if d.replaces:
        sr["replaces"] = [{"identifier": f.identifier(systems.SID_DECISION, d.replaces), "type": "ServiceRequest"}]
    insats_row = terminology.row("insats-type", insats.type)
    sr["status"] = kind["request_status"]
    sr["intent"] = kind["request_intent"]
    sr["category"] = [
        {"coding": [terminology.coding("legal-basis", d.legal_basis)]},
        {"coding": [terminology.coding("riv-care-service-type", insats_row["riv_service_type"])]},
        {"coding": [terminology.coding("decision-kind", d.decision_kind)]},
    ]
    code: dict[str, Any] = {"coding": [terminology.coding("insats-type", insats.type)]}
    if insats.local_code:
        code["coding"].append({"system": systems.CS_LOCAL_INSATS, "code": insats.local_code})
    if insats.description:
        code["text"] = insats.description
    sr["code"] = code
    sr["subject"] = f.ref(patient_url)
    timing: dict[str, Any] = {"repeat": {"boundsPeriod": f.period(insats.valid_from, insats.valid_to)}}
    volume = insats.granted_volume
    if isinstance(volume, VisitsVolume):
        repeat = timing["repeat"]
        repeat.update(frequency=volume.visits, period=1, periodUnit=_ucum(volume.per))
        if volume.minutes_per_visit is not None:
            repeat.update(duration=volume.minutes_per_visit, durationUnit="min")
    sr["occurrenceTiming"] = timing
    if isinstance(volume, HoursVolume):
        sr["quantityRatio"] = {
            "numerator": {"value": volume.granted_hours, "unit": "h", "system": systems.UCUM, "code": "h"},
            "denominator": {"value": 1, "unit": _ucum(volume.per), "system": systems.UCUM, "code": _ucum(volume.per)},
        }
    sr["authoredOn"] = d.decision_date.isoformat()
    sr["requester"] = requester
    if performer:
        sr["performer"] = [performer]
    if insats.purpose:
        sr["reasonCode"] = [{"text": insats.purpose}]
    if consent_url:
        sr["supportingInfo"] = [f.ref(consent_url)]
    if d.motivation:
        sr["note"] = [{"text": d.motivation}]
    return sr


def _goal_entry(d: CareDecision, insats: Insats, n: int, goal: Goal, status: str, patient_url: str) -> tuple[str, dict]:
    key = f"{_insats_key(d, insats)}/{n}"
    res: dict[str, Any] = {
        "resourceType": "Goal",
        "meta": {"profile": [systems.PROFILE_GOAL], "tag": [f.tag_key("goal/" + key)]},
        "identifier": [f.identifier(systems.SID_GOAL, key)],
        "lifecycleStatus": status,
    }
    if goal.life_area:
        res["category"] = [{"coding": [{"system": systems.CS_IBIC_LIFE_AREA, "code": goal.life_area}]}]
    res["description"] = {"text": goal.text}
    res["subject"] = f.ref(patient_url)
    res["expressedBy"] = f.ref(patient_url)
    url = f.full_url("Goal", key)
    return url, f.post_entry(url, res, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, "goal/" + key))


def _task(d: CareDecision, insats: Insats, status: str, sr_url: str, patient_url: str, requester, owner) -> dict:
    return {
        "resourceType": "Task",
        "meta": {"profile": [systems.PROFILE_PROVIDER_TASK]},
        "identifier": [f.identifier(systems.SID_TASK, _insats_key(d, insats))],
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": systems.CS_TASK_CODE, "code": "fulfill"}]},
        "focus": f.ref(sr_url),
        "for": f.ref(patient_url),
        "authoredOn": d.decision_date.isoformat(),
        "requester": requester,
        "owner": owner,
        "restriction": {"period": f.period(insats.valid_from, insats.valid_to)},
    }


def _care_plan(d: CareDecision, kind: dict, patient_url: str, author, request_urls: list[str], goal_urls: list[str], consent_url: str | None) -> dict:
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [systems.PROFILE_DECISION_CAREPLAN]},
        "identifier": [f.identifier(systems.SID_CAREPLAN, d.decision_id)],
        "status": kind["careplan_status"],
        "intent": kind["careplan_intent"],
        "category": [{"coding": [terminology.coding("decision-kind", d.decision_kind)]}],
        "title": f"Biståndsbeslut {d.decision_id}",
        "subject": f.ref(patient_url),
    }
    starts = [i.valid_from for i in d.insatser]
    ends = [i.valid_to for i in d.insatser]
    plan["period"] = f.period(min(starts), None if None in ends else max(ends))  # type: ignore[type-var]
    plan["created"] = d.decision_date.isoformat()
    plan["author"] = author
    if consent_url:
        plan["supportingInfo"] = [f.ref(consent_url)]
    if goal_urls:
        plan["goal"] = [f.ref(u) for u in goal_urls]
    plan["activity"] = [{"reference": f.ref(u)} for u in request_urls]
    return plan


def _ucum(per: str) -> str:
    return terminology.row("period-unit", per)["ucum"]


# ======================================================================================
# Decoder
# ======================================================================================


class NotADecisionError(ValueError):
    """A FHIR Bundle that carries no (or more than one) carebridge decision."""


def from_fhir(bundle: Bundle) -> CareDecision:
    """Decode the one decision a Bundle carries (transaction, batch, collection or searchset)."""
    return f.only(from_fhir_all(bundle), "decision", NotADecisionError)


def from_fhir_all(bundle: Bundle) -> list[CareDecision]:
    """Decode every decision in a Bundle, grouping ServiceRequests by decision id, in order."""
    index = f.BundleIndex(bundle)
    groups: dict[str, list[dict]] = {}
    for sr in index.resources("ServiceRequest"):
        decision_id = f.first_identifier(sr, systems.SID_DECISION)
        if decision_id is not None:
            groups.setdefault(decision_id, []).append(sr)
    return [_decision(decision_id, requests, index) for decision_id, requests in groups.items()]


def _decision(decision_id: str, requests: list[dict], index: f.BundleIndex) -> CareDecision:
    first = requests[0]
    patient = _must(index, first.get("subject"), f"ServiceRequest of decision {decision_id}: subject")
    handlaggare = _must(index, first.get("requester"), f"ServiceRequest of decision {decision_id}: requester")
    municipality = _municipality(decision_id, index)
    replaces = (first.get("replaces") or [{}])[0].get("identifier", {}).get("value")
    return CareDecision(
        decision_id=decision_id,
        case_number=f.first_identifier(first, systems.SID_CASE),
        decision_date=first["authoredOn"][:10],
        decision_kind=f.code_in(first.get("category"), systems.CS_DECISION_KIND),
        replaces=replaces,
        legal_basis=f.code_in(first.get("category"), systems.CS_LEGAL_BASIS),
        rambeslut=bool(f.extension_value(first, systems.EXT_FRAMEWORK_DECISION, "valueBoolean")),
        status_reason=f.code_in(f.extension_value(first, systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept"), systems.CS_STATUS_REASON),
        motivation=(first.get("note") or [{}])[0].get("text"),
        municipality=f.organisation_from(municipality),
        handlaggare=f.staff_from(handlaggare),
        person=f.person_from(patient),
        insatser=[_insats(decision_id, sr, index) for sr in requests],
        samtycke=_consent_from(index.resolve((first.get("supportingInfo") or [None])[0]), index),
    )


def _consent_from(consent: dict | None, index: f.BundleIndex) -> SharingConsent | None:
    if consent is None or consent.get("resourceType") != "Consent":
        return None
    return f.consent_from(consent, lambda ref: f.organisation_from(_must(index, ref, "Consent.provision.actor")))


def _municipality(decision_id: str, index: f.BundleIndex) -> dict:
    """The deciding municipality: the decision CarePlan's author, else the Provenance's onBehalfOf."""
    for plan in index.resources("CarePlan"):
        if f.first_identifier(plan, systems.SID_CAREPLAN) == decision_id:
            return _must(index, plan.get("author"), f"CarePlan of decision {decision_id}: author")
    for prov in index.resources("Provenance"):
        if f.tag_value(prov, systems.TAG_BUSINESS_KEY) == f"provenance/{decision_id}":
            return _must(index, prov["agent"][0].get("onBehalfOf"), f"Provenance of decision {decision_id}: onBehalfOf")
    raise NotADecisionError(f"decision {decision_id}: no CarePlan or Provenance names the municipality")


def _insats(decision_id: str, sr: dict, index: f.BundleIndex) -> Insats:
    key = f.first_identifier(sr, systems.SID_INSATS) or ""
    prefix = decision_id + "/"
    insats_id = key[len(prefix):] if key.startswith(prefix) else key
    repeat = (sr.get("occurrenceTiming") or {}).get("repeat", {})
    bounds = repeat.get("boundsPeriod", {})
    volume: HoursVolume | VisitsVolume | None = None
    if "quantityRatio" in sr:
        ratio = sr["quantityRatio"]
        volume = HoursVolume(granted_hours=ratio["numerator"]["value"], per=_UCUM_TO_PER[ratio["denominator"]["code"]])
    elif "frequency" in repeat:
        volume = VisitsVolume(visits=repeat["frequency"], per=_UCUM_TO_PER[repeat["periodUnit"]], minutes_per_visit=repeat.get("duration"))
    goals = []
    for ext in sr.get("extension", ()):
        if ext.get("url") == systems.EXT_PERTAINS_TO_GOAL:
            goal = _must(index, ext.get("valueReference"), f"ServiceRequest {key}: goal")
            goals.append(Goal(text=goal["description"]["text"], life_area=f.code_in(goal.get("category"), systems.CS_IBIC_LIFE_AREA)))
    performer = index.resolve((sr.get("performer") or [None])[0])
    strictness = f.extension_value(sr, systems.EXT_TIME_STRICTNESS, "valueCoding")
    return Insats(
        insats_id=insats_id,
        type=f.code_in(sr.get("code"), systems.CS_INSATS_TYPE),
        local_code=f.code_in(sr.get("code"), systems.CS_LOCAL_INSATS),
        description=(sr.get("code") or {}).get("text"),
        purpose=(sr.get("reasonCode") or [{}])[0].get("text"),
        goals=goals,
        granted_volume=volume,
        time_strictness=strictness.get("code") if strictness else None,
        valid_from=bounds.get("start"),
        valid_to=bounds.get("end"),
        performer=f.organisation_from(performer) if performer else None,
        fee_exempt=bool(f.extension_value(sr, systems.EXT_FEE_EXEMPT, "valueBoolean")),
    )


def _must(index: f.BundleIndex, reference: dict | None, what: str) -> dict:
    res = index.resolve(reference)
    if res is None:
        raise NotADecisionError(f"{what} does not resolve inside the Bundle ({(reference or {}).get('reference')})")
    return res
