"""From a changed regional resource to the municipal document that reports it.

One translator per resource type (the table ``TRANSLATORS``):

- ``Task`` (a provider assignment, code ``fulfill``): an ``assignment-status`` document: the
  decision and insats it assigns (from its focus ServiceRequest), its status and reason, the
  person, the utförare and the municipality;
- ``CarePlan`` (a new or changed plan of any flow with a mapping): the plan and what it
  references (and the follow-up Observations based on its activities) are read into a Bundle
  and decoded by the flow's own ``from_fhir``, giving the canonical plan document;
- ``Observation``, ``Goal``, ``ServiceRequest`` (plan follow-ups and plan parts): the plan they
  belong to, as above.

A resource of another type, or one that is not a carebridge document, yields a skipped Change
with the reason; nothing is delivered for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from adapter.api.parties import Parties, parties_of
from adapter.inbound.models import AssignmentStatus, Source
from adapter.inbound.regional import RegionalError, RegionalReader
from mappings import systems
from mappings import fhir as f

#: Resource types followed when a plan is read with what it references.
PLAN_PARTS = frozenset({"Patient", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson", "CareTeam",
                        "Goal", "ServiceRequest", "Task", "Consent", "Condition", "Observation", "Encounter",
                        "Procedure", "Provenance"})
#: How deep references are followed from a plan.
PLAN_DEPTH = 3


@dataclass
class Change:
    """A regional change and the municipal document it becomes (None when it is skipped)."""

    reference: str
    key: str
    document: BaseModel | None = None
    person: str | None = None
    organisation: str | None = None
    parties: Parties = field(default_factory=Parties)
    note: str = ""

    def filename(self, fmt: str) -> str:
        """The document's file name: its kind, the changed resource and its version, e.g. assignment-status-Task-12-v3.json."""
        from adapter.inbound.municipal import safe_filename

        kind = getattr(self.document, "kind", "change")
        _server, resource, version = self.key.rsplit("|", 2)
        return safe_filename(f"{kind}-{resource.replace('/', '-')}-v{version}") + f".{fmt}"


def version_key(reader: RegionalReader, resource: dict[str, Any]) -> str:
    """server|Type/id|version: one municipal delivery per resource version."""
    meta = resource.get("meta") or {}
    version = meta.get("versionId") or meta.get("lastUpdated") or "0"
    return f"{reader.base_url}|{resource.get('resourceType')}/{resource.get('id')}|{version}"


def _source(reader: RegionalReader, resource: dict[str, Any]) -> Source:
    meta = resource.get("meta") or {}
    ref = f"{resource['resourceType']}/{resource.get('id')}"
    if meta.get("versionId"):
        ref += f"/_history/{meta['versionId']}"
    return Source(server=reader.base_url, reference=ref, last_updated=meta.get("lastUpdated"))


def _read_ref(reader: RegionalReader, ref: Any) -> dict[str, Any] | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        return reader.read(ref["reference"])
    return None


def _organisation(reader: RegionalReader, ref: Any) -> tuple[Any, dict[str, Any] | None]:
    """The canonical Organisation a reference names (and the resource read), or (None, None)."""
    if not isinstance(ref, dict):
        return None, None
    if isinstance(ref.get("reference"), str) and "Organization/" in ref["reference"]:
        resource = reader.read(ref["reference"])
        return f.organisation_from(resource), resource
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        from mappings.models.common import Organisation

        key = "hsa_id" if ident.get("system") == systems.HSA_ID else "organisationsnummer"
        return Organisation(name=ref.get("display") or ident["value"], **{key: ident["value"]}), None
    return None, None


def _status_reason(task: dict[str, Any]) -> str | None:
    reason = task.get("statusReason") or {}
    if reason.get("text"):
        return str(reason["text"])
    coding = next(iter(reason.get("coding") or ()), {})
    return coding.get("display") or coding.get("code")


def task_change(reader: RegionalReader, task: dict[str, Any]) -> Change:
    """An assignment-status document for a provider Task."""
    key = version_key(reader, task)
    ref = f"Task/{task.get('id')}"
    codes = {c.get("code") for c in (task.get("code") or {}).get("coding") or ()}
    if "fulfill" not in codes or not f.first_identifier(task, systems.SID_TASK):
        return Change(ref, key, note="skipped: not a carebridge provider assignment (Task code fulfill)")
    request = _read_ref(reader, task.get("focus"))
    if request is None or request.get("resourceType") != "ServiceRequest":
        return Change(ref, key, note="skipped: the Task's focus is not a ServiceRequest")
    decision_id = f.first_identifier(request, systems.SID_DECISION)
    insats_key = f.first_identifier(request, systems.SID_INSATS) or ""
    if not decision_id or not insats_key.startswith(decision_id + "/"):
        return Change(ref, key, note="skipped: the ServiceRequest carries no decision and insats identifier")
    patient = _read_ref(reader, task.get("for"))
    person = f.person_from(patient).personnummer if patient and patient.get("resourceType") == "Patient" else None
    if person is None:
        return Change(ref, key, note="skipped: the Task names no person")
    performer, performer_res = _organisation(reader, task.get("owner"))
    municipality, municipality_res = _organisation(reader, task.get("requester"))
    document = AssignmentStatus(
        decision_id=decision_id, insats_id=insats_key[len(decision_id) + 1:], status=task.get("status"),
        status_reason=_status_reason(task), business_status=(task.get("businessStatus") or {}).get("text"),
        personnummer=person, performer=performer, municipality=municipality, source=_source(reader, task))
    resources = [r for r in (task, request, patient, performer_res, municipality_res) if r]
    parties = parties_of({"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]})
    organisation = municipality.hsa_id or municipality.organisationsnummer if municipality else None
    return Change(ref, key, document, person, organisation, parties, f"assignment {document.status}")


def plan_bundle(reader: RegionalReader, plan: dict[str, Any]) -> dict[str, Any]:
    """A collection Bundle of a CarePlan, what it references (to PLAN_DEPTH), and follow-ups on its activities."""
    seen: dict[str, dict[str, Any]] = {f"CarePlan/{plan['id']}": plan}
    frontier = [plan]
    for _depth in range(PLAN_DEPTH):
        nxt = []
        for resource in frontier:
            for ref in _references(resource):
                try:
                    rtype, rid = reader.parse_reference(ref)
                except RegionalError:
                    continue
                if rtype not in PLAN_PARTS or f"{rtype}/{rid}" in seen:
                    continue
                found = reader.read(f"{rtype}/{rid}")
                seen[f"{rtype}/{rid}"] = found
                nxt.append(found)
        frontier = nxt
    requests = [k for k in seen if k.startswith("ServiceRequest/")]
    for request in requests:  # follow-ups point at the activity, not the other way round
        for obs in reader.search("Observation", {"based-on": request}):
            if any(r.get("reference", "").endswith(request) for r in obs.get("basedOn") or ()):
                seen.setdefault(f"Observation/{obs.get('id')}", obs)
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"{reader.base_url}/{k}", "resource": v} for k, v in seen.items()]}


def _references(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            out.append(value["reference"])
        for k, v in value.items():
            if k not in ("meta", "text", "contained"):
                out.extend(_references(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_references(v))
    return out


def plan_change(reader: RegionalReader, plan: dict[str, Any], key: str | None = None) -> Change:
    """The canonical plan document of a CarePlan, decoded by its flow's mapping."""
    from mappings.flows import UnknownFlowError, flow_of_bundle

    key = key or version_key(reader, plan)
    ref = f"CarePlan/{plan.get('id')}"
    bundle = plan_bundle(reader, plan)
    try:
        flow = flow_of_bundle(bundle)
    except UnknownFlowError:
        return Change(ref, key, note="skipped: the CarePlan is not a carebridge plan of a known flow")
    try:
        document = flow.mapping().from_fhir(bundle)
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        return Change(ref, key, note=f"skipped: the {flow.kind} cannot be decoded ({type(exc).__name__})")
    parties = parties_of(bundle)
    person = getattr(getattr(document, "person", None), "personnummer", None)
    organisation = next(iter(sorted(parties.senders)), None)
    return Change(ref, key, document, person, organisation, parties, f"{flow.kind} {plan.get('status', '')}".strip())


def part_change(reader: RegionalReader, resource: dict[str, Any]) -> Change:
    """The plan a follow-up Observation, Goal or ServiceRequest belongs to."""
    key = version_key(reader, resource)
    ref = f"{resource.get('resourceType')}/{resource.get('id')}"
    refs = _references({k: resource.get(k) for k in ("basedOn", "partOf", "focus")})
    plans = [r for r in refs if "CarePlan/" in r]
    for request in [r for r in refs if "ServiceRequest/" in r] + ([ref] if ref.startswith("ServiceRequest/") else []):
        local = "ServiceRequest/" + request.rsplit("ServiceRequest/", 1)[1]
        for plan in reader.search("CarePlan", {"activity-reference": local}):
            if any(a.get("reference", {}).get("reference", "").endswith(local) for a in plan.get("activity") or ()):
                plans.append(f"CarePlan/{plan['id']}")
    if ref.startswith("Goal/"):
        for plan in reader.search("CarePlan", {"goal": ref}):
            if any(g.get("reference", "").endswith(ref) for g in plan.get("goal") or ()):
                plans.append(f"CarePlan/{plan['id']}")
    if not plans:
        return Change(ref, key, note="skipped: belongs to no CarePlan found on the server")
    change = plan_change(reader, reader.read(plans[0]), key)
    change.reference = ref
    return change


def careplan_change(reader: RegionalReader, plan: dict[str, Any]) -> Change:
    """A new or changed CarePlan."""
    return plan_change(reader, plan)


TRANSLATORS: dict[str, Callable[[RegionalReader, dict[str, Any]], Change]] = {
    "Task": task_change,
    "CarePlan": careplan_change,
    "Observation": part_change,
    "Goal": part_change,
    "ServiceRequest": part_change,
}


def translate(reader: RegionalReader, reference: str) -> Change:
    """Read a changed resource and translate it; RegionalError when it cannot be read."""
    rtype, rid = reader.parse_reference(reference)
    if rtype not in TRANSLATORS:
        return Change(f"{rtype}/{rid}", f"{reader.base_url}|{rtype}/{rid}|-",
                      note=f"skipped: {rtype} changes are not sent to the municipality")
    resource = reader.read(f"{rtype}/{rid}")
    try:
        return TRANSLATORS[rtype](reader, resource)
    except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as exc:  # odd content on the server
        return Change(f"{rtype}/{rid}", version_key(reader, resource),
                      note=f"skipped: cannot be turned into a municipal document ({type(exc).__name__})")
