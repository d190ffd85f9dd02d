"""GetCarePlans 2.0 (`urn:riv:clinicalprocess:logistics:logistics:GetCarePlansResponder:2`) ⇄ FHIR R4.

`to_fhir` reads a GetCarePlansResponse into a transaction Bundle: per carePlan one `CarePlan`
(category = RIV plan type, title = documentTitle, created = authorTime, contributor = the
participating care units' `Organization`s) with the plan document(s) as one `DocumentReference`
(one `content.attachment` per RIV content, linked both ways: `CarePlan.supportingInfo` and
`DocumentReference.context.related`), a `Patient`, and a `Provenance` for who wrote and signed it.
`from_fhir` writes it back exactly, and also writes any CarePlan whose category has a RIV plan
type (the implementation plan GP, rehab plan RP, SIP/SPU flows): without a DocumentReference,
the plan itself is rendered as a text/plain document (see docs/riv.md).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from mappings import fhir as f
from mappings import systems, terminology
from mappings.riv import RivWriteError, common
from mappings.riv.common import Carry, Entries
from mappings.riv.model import II, CarePlan, CarePlanBody, CarePlansResponse, Multimedia

Bundle = dict[str, Any]

_FHIR_URL = re.compile(r"^\S+\Z")


class NoCarePlanError(RivWriteError):
    """A Bundle with nothing that can be written as a carePlan."""


# ======================================================================================
# RIV -> FHIR
# ======================================================================================


def to_fhir(xml: Any) -> Bundle:
    """Read a GetCarePlansResponse (any number of carePlan) into a FHIR transaction Bundle."""
    return common.response_to_fhir(xml, CarePlansResponse, "carePlan", _care_plan, "riv-care-plans")


def _care_plan(plan: CarePlan, where: str, entries: Entries, carry: Carry) -> str:
    h, body = plan.header, plan.body
    parts = common.header_to_fhir(h, "carePlanHeader", f"{where}/carePlanHeader", entries, title_extension=False)
    bwhere = f"{where}/carePlanBody"
    plan_url = f.full_url("CarePlan", "riv", parts.key)
    doc_url = f.full_url("DocumentReference", "riv", parts.key)
    prov_url, prov, prov_cond = common.provenance(parts, [plan_url] + ([doc_url] if body.content else []), entries, carry)
    category = [{"coding": [terminology.coding("riv-care-plan-type", body.type_of_care_plan)]}] if body.type_of_care_plan else None
    contributors = [common.unit_ref(entries, ii, f"{bwhere}/participatingCareUnitHSAId[{n}]") for n, ii in enumerate(body.participating_units, start=1)]
    attachments = [_attachment(m, f"carePlanBody/content[{n}]", carry) for n, m in enumerate(body.content, start=1)]

    extensions = list(parts.extensions)
    if parts.status_reason is not None:
        extensions.append({"url": systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept": parts.status_reason})
    extensions += carry.extensions()
    res: dict[str, Any] = {"resourceType": "CarePlan", "identifier": [parts.identifier], "extension": extensions}
    res["status"] = "entered-in-error" if parts.status_nullified else "active"
    res["intent"] = "plan"
    if category:
        res["category"] = category
    if h.document_title is not None:
        res["title"] = h.document_title
    res["subject"] = parts.subject
    if parts.encounter:
        res["encounter"] = parts.encounter
    res["created"] = parts.authored
    if common.requester(parts):
        res["author"] = common.requester(parts)
    if contributors:
        res["contributor"] = contributors
    if attachments:
        res["supportingInfo"] = [f.ref(doc_url)]
    entries.add(plan_url, res, parts.if_none_exist)

    if attachments:
        doc: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "masterIdentifier": {k: v for k, v in parts.identifier.items()},
            "status": "entered-in-error" if parts.status_nullified else "current",
        }
        if category:
            doc["type"] = category[0]
        doc["subject"] = parts.subject
        if parts.document_time:
            doc["date"] = parts.document_time
        if common.requester(parts):
            doc["author"] = [common.requester(parts)]
        if h.document_title is not None:
            doc["description"] = h.document_title
        doc["content"] = [{"attachment": a} for a in attachments]
        doc["context"] = {"related": [f.ref(plan_url)]}
        entries.add(doc_url, doc, parts.if_none_exist)
    entries.add(prov_url, prov, prov_cond)
    return parts.key


def _attachment(m: Multimedia, path: str, carry: Carry) -> dict:
    att: dict[str, Any] = {}
    if m.id is not None:
        att["extension"] = [{"url": systems.EXT_RIV_CONTENT_ID, "valueString": m.id}]
    att["contentType"] = m.media_type
    if m.value is not None:
        data = "".join(m.value.split())  # the bytes are kept; line breaks inside base64 are not
        if data:
            att["data"] = data
        else:
            carry.mark_present(f"{path}/value")
    if m.reference is not None:
        if _FHIR_URL.match(m.reference):
            att["url"] = m.reference
        else:
            carry.put_raw(f"{path}/reference", m.reference)
    return att


# ======================================================================================
# FHIR -> RIV
# ======================================================================================


def from_fhir(bundle: Bundle) -> bytes:
    """Write a Bundle's care plans as GetCarePlansResponse XML (valid against Inera's XSD).

    CarePlans made from RIV are written back exactly; any other CarePlan with a RIV plan type
    category (riv-care-plan-type) is written as described in docs/riv.md. NoCarePlanError if
    the Bundle has no such CarePlan.
    """
    index, result, response_carry = common.read_bundle(bundle)
    plans = index.resources("CarePlan")
    items = []
    for n, plan in enumerate(plans, start=1):
        where = f"CarePlan {_name(plan, n)}"
        if common.riv_document(plan):
            items.append(_plan_from(plan, index, where, exact=True))
        elif f.code_in(plan.get("category"), systems.CS_CARE_PLAN_TYPE):
            items.append(_plan_from(plan, index, where, exact=False))
    if result is None:
        if not items:
            raise NoCarePlanError(
                f"the Bundle has no CarePlan with a RIV plan type (category {systems.CS_CARE_PLAN_TYPE}); {len(plans)} CarePlan(s) found"
            )
        result = common.ok_result(bundle)
    return common.write_response(CarePlansResponse, items, result, response_carry)


def _name(plan: dict, n: int) -> str:
    made = common.riv_document(plan)
    if made:
        return made[1]
    return next((i.get("value") for i in plan.get("identifier", ()) if i.get("value")), None) or plan.get("id") or f"#{n}"


def _plan_from(plan: dict, index: f.BundleIndex, where: str, *, exact: bool) -> CarePlan:
    carry = Carry.read(plan.get("extension")) if exact else Carry()
    author = index.resolve(plan.get("author"))
    src = common.HeaderSource(
        time_field="created",
        author_refs=[plan.get("author"), *(plan.get("contributor") or ())],
        fallback_time=(plan.get("period") or {}).get("start"),
        title=plan.get("title") if exact else (plan.get("title") or _type_display(plan)),
        fallback_document_id=next((i.get("value") for i in plan.get("identifier", ()) if i.get("value")), None),
        source_orgs=[author] if author and author.get("resourceType") == "Organization" else [],
    )
    header = common.header_from_fhir(plan, index, src, where)
    documents = _documents(plan, index)
    content = [_multimedia(att, f"{where}: content", exact) for doc in documents for att in _attachments(doc)]
    if not exact and not documents:
        content = [rendered(plan, index)]
    body = CarePlanBody(
        content=content,
        participating_units=_participants(plan, index, exact),
        type_of_care_plan=f.code_in(plan.get("category"), systems.CS_CARE_PLAN_TYPE),
    )
    out = CarePlan(header=header, body=body)
    carry.apply(out)
    return out


def _documents(plan: dict, index: f.BundleIndex) -> list[dict]:
    """The plan's DocumentReferences: its supportingInfo, else those whose context.related is the plan."""
    docs = [d for d in (index.resolve(r) for r in plan.get("supportingInfo", ()) or ()) if d and d.get("resourceType") == "DocumentReference"]
    if docs:
        return docs
    return [
        d
        for d in index.resources("DocumentReference")
        if any(index.resolve(r) is plan for r in ((d.get("context") or {}).get("related") or ()))
    ]


def _attachments(doc: dict) -> list[dict]:
    return [c["attachment"] for c in doc.get("content", ()) or () if c.get("attachment")]


def _multimedia(att: dict, where: str, exact: bool) -> Multimedia:
    media_type = att.get("contentType")
    if media_type not in terminology.table("riv-media-type"):
        raise RivWriteError(f"{where}: contentType {media_type!r} is not a RIV MediaTypeEnum value")
    return Multimedia(
        id=f.extension_value(att, systems.EXT_RIV_CONTENT_ID, "valueString"),
        media_type=media_type,
        value=att.get("data"),
        reference=att.get("url"),
    )


def _participants(plan: dict, index: f.BundleIndex, exact: bool) -> list[II]:
    """participatingCareUnitHSAId: the contributor Organizations (and, for other plans, the care team's)."""
    out: list[II] = []
    for ref in plan.get("contributor", ()) or ():
        res = index.resolve(ref)
        if exact:
            ii = common.ii_from_ref(index, ref)
            if ii is None:
                raise RivWriteError(f"contributor {ref.get('reference')} has no RIV identifier")
            out.append(ii)
        elif res is not None and res.get("resourceType") == "Organization":
            ii = common.ii_of(res)
            if ii is not None:
                out.append(ii)
    if exact:
        return out
    for team_ref in plan.get("careTeam", ()) or ():
        team = index.resolve(team_ref) or {}
        for participant in team.get("participant", ()) or ():
            for ref in (participant.get("member"), participant.get("onBehalfOf")):
                res = index.resolve(ref)
                if res is not None and res.get("resourceType") == "Organization":
                    ii = common.ii_of(res)
                    if ii is not None:
                        out.append(ii)
    unique: dict[tuple, II] = {}
    for ii in out:
        unique.setdefault((ii.root, ii.extension), ii)
    return list(unique.values())


# --- a CarePlan without a document: the plan rendered as text/plain ----------------------


def rendered(plan: dict, index: f.BundleIndex) -> Multimedia:
    """The plan as a short UTF-8 text document (title, type, status, period, goals, activities, notes)."""
    lines = [plan.get("title") or _type_display(plan) or "Plan"]
    kind = f.code_in(plan.get("category"), systems.CS_CARE_PLAN_TYPE)
    if kind:
        lines.append(f"Typ: {_type_display(plan)} ({kind})")
    lines.append(f"Status: {plan.get('status', 'okänd')}")
    period = plan.get("period") or {}
    if period:
        lines.append(f"Period: {period.get('start', '')} – {period.get('end', '')}".rstrip(" –"))
    if plan.get("description"):
        lines.append(f"Beskrivning: {plan['description']}")
    goals = [g for g in (index.resolve(r) for r in plan.get("goal", ()) or ()) if g]
    if goals:
        lines.append("Mål:")
        lines += [f"- {(g.get('description') or {}).get('text', '')}" for g in goals]
    activities = [_activity_text(a, index) for a in plan.get("activity", ()) or ()]
    activities = [a for a in activities if a]
    if activities:
        lines.append("Aktiviteter:")
        lines += [f"- {a}" for a in activities]
    for note in plan.get("note", ()) or ():
        if note.get("text"):
            lines.append(f"Anteckning: {note['text']}")
    text = "\n".join(lines) + "\n"
    return Multimedia(media_type="text/plain", value=base64.b64encode(text.encode("utf-8")).decode("ascii"))


def _type_display(plan: dict) -> str | None:
    kind = f.code_in(plan.get("category"), systems.CS_CARE_PLAN_TYPE)
    return terminology.row("riv-care-plan-type", kind)["display"] if kind else None


def _activity_text(activity: dict, index: f.BundleIndex) -> str | None:
    detail = activity.get("detail") or {}
    if detail.get("description"):
        return detail["description"]
    if (detail.get("code") or {}).get("text"):
        return detail["code"]["text"]
    ref = activity.get("reference")
    target = index.resolve(ref)
    if target:
        code = target.get("code") or {}
        text = code.get("text") or next((c.get("display") for c in code.get("coding", ()) if c.get("display")), None)
        if text:
            return text
    return (ref or {}).get("display")
