"""GetCareServices 2.0 (`urn:riv:clinicalprocess:logistics:logistics:GetCareServicesResponder:2`) ⇄ FHIR R4.

`to_fhir` reads a GetCareServicesResponse into a transaction Bundle: per careService one
`ServiceRequest` (intent `order`; category = RIV service type; `occurrenceTiming.repeat.boundsPeriod`
= timePeriod; `code.text` = input; performer = the unit's `Organization` and, if given, the
professional's `Practitioner`; subject = `Patient`) with a `Provenance` for who wrote and signed it.
Every entry is a conditional create on a business identifier, so a resend creates nothing.
`from_fhir` writes it back exactly (every element, see docs/riv.md), and also writes the
ServiceRequests of a carebridge decision Bundle (`mappings.decision.to_fhir`) as careServices.
"""

from __future__ import annotations

from typing import Any

from mappings import fhir as f
from mappings import systems, terminology
from mappings.riv import RivWriteError, common, times
from mappings.riv.common import Carry, Entries
from mappings.riv.model import II, CareService, CareServiceBody, CareServicesResponse, TimePeriod

Bundle = dict[str, Any]

FRAMEWORK_SCOPE = "Rambeslut: innehåll och tid bestäms av utföraren"
NO_SCOPE = "Ingen fast omfattning angiven"


class NoCareServiceError(RivWriteError):
    """A Bundle with nothing that can be written as a careService."""


# ======================================================================================
# RIV -> FHIR
# ======================================================================================


def to_fhir(xml: Any) -> Bundle:
    """Read a GetCareServicesResponse (any number of careService) into a FHIR transaction Bundle."""
    return common.response_to_fhir(xml, CareServicesResponse, "careService", _care_service, "riv-care-services")


def _care_service(service: CareService, where: str, entries: Entries, carry: Carry) -> str:
    h, body = service.header, service.body
    parts = common.header_to_fhir(h, "careServiceHeader", f"{where}/careServiceHeader", entries, title_extension=True)
    bwhere = f"{where}/careServiceBody"
    url = f.full_url("ServiceRequest", "riv", parts.key)
    prov_url, prov, prov_cond = common.provenance(parts, [url], entries, carry)
    extensions = list(parts.extensions)
    if body.scope is not None:
        extensions.append({"url": systems.EXT_RIV_SCOPE, "valueString": body.scope})
    if body.housing is not None:
        extensions.append({"url": systems.EXT_RIV_HOUSING, "valueString": body.housing})
    if parts.status_reason is not None:
        extensions.append({"url": systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept": parts.status_reason})
    extensions += carry.extensions()
    sr: dict[str, Any] = {"resourceType": "ServiceRequest", "identifier": [parts.identifier], "extension": extensions}
    sr["status"] = "entered-in-error" if parts.status_nullified else "active"
    sr["intent"] = "order"
    sr["category"] = [{"coding": [terminology.coding("riv-care-service-type", body.type_of_care_service)]}]
    if body.input is not None:
        sr["code"] = {"text": body.input}
    sr["subject"] = parts.subject
    if parts.encounter:
        sr["encounter"] = parts.encounter
    period = {"start": times.to_fhir(body.time_period.start, f"{bwhere}/timePeriod/start")}
    if body.time_period.end is not None:
        period["end"] = times.to_fhir(body.time_period.end, f"{bwhere}/timePeriod/end")
    sr["occurrenceTiming"] = {"repeat": {"boundsPeriod": period}}
    sr["authoredOn"] = parts.authored
    if common.requester(parts):
        sr["requester"] = common.requester(parts)
    performers = [common.unit_ref(entries, body.performer_unit, f"{bwhere}/performerHealthCareUnit")]
    if body.performer_professional is not None:
        performers.append(common.unit_ref(entries, body.performer_professional, f"{bwhere}/performerHealthCareProfessional", "Practitioner"))
    sr["performer"] = performers
    entries.add(url, sr, parts.if_none_exist)
    entries.add(prov_url, prov, prov_cond)
    return parts.key


# ======================================================================================
# FHIR -> RIV
# ======================================================================================


def from_fhir(bundle: Bundle) -> bytes:
    """Write a Bundle's care services as GetCareServicesResponse XML (valid against Inera's XSD).

    ServiceRequests made from RIV are written back exactly. ServiceRequests of a carebridge
    decision (or any ServiceRequest with a RIV service type category or an insats-type code) are
    written as described in docs/riv.md; refused insatser (intent `proposal`) are not care
    services and are left out. NoCareServiceError if nothing can be written.
    """
    index, result, response_carry = common.read_bundle(bundle)
    requests = index.resources("ServiceRequest")
    items: list[CareService] = []
    refused = 0
    for n, sr in enumerate(requests, start=1):
        where = f"ServiceRequest {_name(sr, n)}"
        if common.riv_document(sr):
            items.append(_service_from(sr, index, where, exact=True))
        elif _is_care_service(sr):
            if sr.get("intent") == "proposal":
                refused += 1
                continue
            items.append(_service_from(sr, index, where, exact=False))
    if result is None:
        if not items and not requests:
            raise NoCareServiceError("the Bundle has no ServiceRequest to write as a careService")
        if not items and not refused:
            raise NoCareServiceError(
                f"none of the Bundle's {len(requests)} ServiceRequest(s) is a care service (no riv-care-service-type category or insats-type code)"
            )
        result = common.ok_result(bundle)
        if not items:
            result.result_code = "INFO"
            what = "1 avslagen insats redovisas" if refused == 1 else f"{refused} avslagna insatser redovisas"
            result.message = f"Inga beviljade insatser: {what} inte som careService"
    return common.write_response(CareServicesResponse, items, result, response_carry)


def _name(sr: dict, n: int) -> str:
    made = common.riv_document(sr)
    if made:
        return made[1]
    return f.first_identifier(sr, systems.SID_INSATS) or sr.get("id") or f"#{n}"


def _is_care_service(sr: dict) -> bool:
    return bool(f.code_in(sr.get("category"), systems.CS_CARE_SERVICE_TYPE) or f.code_in(sr.get("code"), systems.CS_INSATS_TYPE))


def _service_from(sr: dict, index: f.BundleIndex, where: str, *, exact: bool) -> CareService:
    carry = Carry.read(sr.get("extension")) if exact else Carry()
    src = common.HeaderSource(
        time_field="authoredOn",
        author_refs=[sr.get("requester")],
        title=f.extension_value(sr, systems.EXT_RIV_DOCUMENT_TITLE, "valueString") if exact else _plan_title(sr, index),
        fallback_document_id=f.first_identifier(sr, systems.SID_INSATS) or next((i.get("value") for i in sr.get("identifier", ()) if i.get("value")), None),
        source_orgs=[] if exact else _deciding_organisations(sr, index),
    )
    header = common.header_from_fhir(sr, index, src, where)
    body = CareServiceBody(
        performer_unit=_performer(sr, index, "Organization", where, exact),
        performer_professional=_performer(sr, index, "Practitioner", where, exact),
        type_of_care_service=_service_type(sr, where),
        time_period=_time_period(sr, where, exact),
        input=_input(sr, exact),
        scope=f.extension_value(sr, systems.EXT_RIV_SCOPE, "valueString") if exact else (f.extension_value(sr, systems.EXT_RIV_SCOPE, "valueString") or render_scope(sr)),
        housing=f.extension_value(sr, systems.EXT_RIV_HOUSING, "valueString"),
    )
    service = CareService(header=header, body=body)
    carry.apply(service)
    if body.performer_unit is None:
        raise RivWriteError(f"{where}: no performer Organization with an HSA-id or organisationsnummer (performerHealthCareUnit is required)")
    return service


def _plans_listing(sr: dict, index: f.BundleIndex) -> list[dict]:
    """The CarePlans whose activities reference the ServiceRequest (a decision's CarePlan)."""
    return [p for p in index.resources("CarePlan") if any(index.resolve(a.get("reference")) is sr for a in p.get("activity", ()) or ())]


def _deciding_organisations(sr: dict, index: f.BundleIndex) -> list[dict]:
    """The organisations responsible for a ServiceRequest: the author of a CarePlan that lists it."""
    orgs = (index.resolve(p.get("author")) for p in _plans_listing(sr, index))
    return [o for o in orgs if o and o.get("resourceType") == "Organization"]


def _plan_title(sr: dict, index: f.BundleIndex) -> str | None:
    return next((p["title"] for p in _plans_listing(sr, index) if p.get("title")), None)


def _performer(sr: dict, index: f.BundleIndex, kind: str, where: str, exact: bool) -> II | None:
    for ref in sr.get("performer", ()) or ():
        res = index.resolve(ref)
        if res is not None and res.get("resourceType") == kind:
            if exact:
                return common.ii_from_ref(index, ref)
            return common.ii_of(res, prefer=(systems.HSA_ID,) if kind == "Practitioner" else (systems.HSA_ID, systems.ORGANISATIONSNUMMER))
        if res is None and ref.get("identifier") and ref.get("type", kind) == kind and kind == "Organization":
            return common.identifier_to_ii(ref["identifier"])
    return None


def _service_type(sr: dict, where: str) -> str:
    code = f.code_in(sr.get("category"), systems.CS_CARE_SERVICE_TYPE)
    if code:
        return code
    insats = f.code_in(sr.get("code"), systems.CS_INSATS_TYPE)
    if insats:
        return terminology.row("insats-type", insats)["riv_service_type"]
    raise RivWriteError(f"{where}: no RIV service type (category riv-care-service-type or an insats-type code)")


def _time_period(sr: dict, where: str, exact: bool) -> TimePeriod:
    """timePeriod from the validity: a date starts at 000000 and ends at 235959 Stockholm time."""
    bounds = ((sr.get("occurrenceTiming") or {}).get("repeat") or {}).get("boundsPeriod") or sr.get("occurrencePeriod") or {}
    start = bounds.get("start") or sr.get("occurrenceDateTime")
    if not start:
        raise RivWriteError(f"{where}: no occurrence start (timePeriod/start is required)")
    end = bounds.get("end")
    return TimePeriod(
        start=times.from_fhir(start, f"{where}: timePeriod start"),
        end=times.from_fhir(end, f"{where}: timePeriod end", date_time="235959") if end else None,
    )


def _input(sr: dict, exact: bool) -> str | None:
    code = sr.get("code") or {}
    if exact or code.get("text"):
        return code.get("text")
    return next((c["display"] for c in code.get("coding", ()) if c.get("display")), None) or "Insats"


# --- scope: a readable Swedish rendering of the granted volume ---------------------------


def render_scope(sr: dict) -> str:
    """E.g. "28 timmar per månad", "3 besök à 30 minuter per dag", or the rambeslut wording."""
    if f.extension_value(sr, systems.EXT_FRAMEWORK_DECISION, "valueBoolean"):
        return FRAMEWORK_SCOPE
    parts = []
    ratio = sr.get("quantityRatio")
    if ratio:
        num, den = ratio.get("numerator") or {}, ratio.get("denominator") or {}
        if num.get("value") is not None:
            parts.append(f"{_amount(num['value'], num.get('code') or num.get('unit'))} {_per(den.get('value', 1), den.get('code') or den.get('unit'))}")
    quantity = sr.get("quantityQuantity")
    if quantity and quantity.get("value") is not None:
        parts.append(_amount(quantity["value"], quantity.get("code") or quantity.get("unit")))
    repeat = (sr.get("occurrenceTiming") or {}).get("repeat") or {}
    if repeat.get("frequency"):
        text = f"{_number(repeat['frequency'])} besök"
        if repeat.get("duration") is not None:
            text += f" à {_amount(repeat['duration'], repeat.get('durationUnit'))}"
        if repeat.get("periodUnit"):
            text += f" {_per(repeat.get('period', 1), repeat['periodUnit'])}"
        parts.append(text)
    return ", ".join(parts) or NO_SCOPE


def _number(value: float) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace(".", ",")


def _amount(value: float, unit: str | None) -> str:
    row = terminology.table("swedish-time-unit").get(unit or "")
    if row is None:
        return f"{_number(value)} {unit}" if unit else _number(value)
    return f"{_number(value)} {row['singular'] if value == 1 else row['plural']}"


def _per(value: float, unit: str | None) -> str:
    row = terminology.table("swedish-time-unit").get(unit or "")
    if row is None:
        return f"per {_number(value)} {unit}" if unit else ""
    if value in (1, None):
        return row["per"]
    return f"per {_number(value)} {row['plural']}"
