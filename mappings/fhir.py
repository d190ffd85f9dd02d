"""Small helpers for building and reading FHIR R4 JSON (plain dicts) shared by every flow."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, TypeVar
from urllib.parse import quote

from mappings import identifiers, systems, terminology
from mappings.models.common import Address, Organisation, Person, SharingConsent, Staff

Resource = dict[str, Any]
T = TypeVar("T")

_NS = uuid.UUID("6f1c2a53-5c3e-4a51-9a43-7b1d2f0c9e11")


def full_url(*key: str) -> str:
    """A deterministic `urn:uuid:` for an entry, from its business key (same input, same uuid)."""
    return f"urn:uuid:{_uuid5('|'.join(key))}"


_NS_BYTES = _NS.bytes


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(_NS, name))`, without building the UUID object."""
    return uuid5_text(_NS_BYTES, name)


#: The RFC 4122 variant bits (10xx) set on the high nibble of byte 8, by its hex digit.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid5_text(namespace: bytes, name: str) -> str:
    """`str(uuid.uuid5(UUID(bytes=namespace), name))`: the SHA-1 of namespace and name as hex,
    with the version digit set to 5 and the variant bits to RFC 4122, spelt out directly."""
    h = hashlib.sha1(namespace + name.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def ref(url: str, display: str | None = None) -> dict[str, str]:
    """A Reference to another entry of the same Bundle."""
    out = {"reference": url}
    if display:
        out["display"] = display
    return out


def identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def period(start: dt.date, end: dt.date | None = None) -> dict[str, str]:
    """A Period from a date (or date-time) and an optional end."""
    out = {"start": start.isoformat()}
    if end is not None:
        out["end"] = end.isoformat()
    return out


def search_token(system: str, value: str) -> str:
    """`system|value` URL-encoded for a search or `ifNoneExist`."""
    token = f"{system}|{value}"
    if _TOKEN_SAFE(token) is not None:
        return token  # nothing to escape: what quote() would return
    return quote(token, safe=":/|")


#: Text quote(..., safe=":/|") leaves as it is: ASCII letters, digits, "_.-~" and the safe ones.
_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_.\-~:/|]*").fullmatch


def tag_key(key: str) -> dict[str, str]:
    """A meta.tag carrying a business key, for conditional create where no identifier is searchable."""
    return {"system": systems.TAG_BUSINESS_KEY, "code": key}


def first_identifier(resource: Resource, system: str) -> str | None:
    """The value of the first identifier with this system, if any."""
    for ident in resource.get("identifier", ()) or ():
        if ident.get("system") == system:
            return ident.get("value")
    return None


def tag_value(resource: Resource, system: str) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag", ()) or ():
        if tag.get("system") == system:
            return tag.get("code")
    return None


def extension_value(resource: Resource, url: str, key: str) -> Any:
    """The `value[x]` (named by `key`, e.g. 'valueBoolean') of the first extension with this url."""
    for ext in resource.get("extension", ()) or ():
        if ext.get("url") == url:
            return ext.get(key)
    return None


def codings(concepts: Iterable[dict] | dict | None) -> Iterator[dict]:
    """Every Coding of one CodeableConcept or a list of them."""
    if concepts is None:
        return
    if isinstance(concepts, dict):
        concepts = [concepts]
    for concept in concepts:
        yield from concept.get("coding", ()) or ()


def code_in(concepts: Iterable[dict] | dict | None, system: str) -> str | None:
    """The first code with this system among the codings of the concept(s)."""
    for c in codings(concepts):
        if c.get("system") == system:
            return c.get("code")
    return None


def only(found: list[T], what: str, error: type[ValueError]) -> T:
    """The one document a decoder found in a Bundle, or `error` saying how many there were."""
    if len(found) != 1:
        raise error(f"expected one {what} in the Bundle, found {len(found)}")
    return found[0]


def post_entry(url: str, resource: Resource, if_none_exist: str | None) -> dict[str, Any]:
    """A transaction entry creating `resource`, conditionally when `if_none_exist` is given."""
    request: dict[str, str] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": url, "resource": resource, "request": request}


def transaction(entries: list[dict[str, Any]], bundle_key: str) -> Resource:
    """A transaction Bundle with a deterministic id derived from `bundle_key`."""
    return {
        "resourceType": "Bundle",
        "id": _uuid5("bundle|" + bundle_key),
        "type": "transaction",
        "entry": entries,
    }


# --- The index readers use to follow references ---------------------------------------


@dataclass
class BundleIndex:
    """Resolves references inside a Bundle: `urn:uuid:` fullUrls, `Type/id` and absolute URLs."""

    bundle: Resource
    _by_url: dict[str, Resource] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.bundle.get("entry", ()) or ():
            res = entry.get("resource")
            if not isinstance(res, dict):
                continue
            if entry.get("fullUrl"):
                self._by_url[entry["fullUrl"]] = res
            if res.get("id") and res.get("resourceType"):
                self._by_url[f"{res['resourceType']}/{res['id']}"] = res

    def resources(self, resource_type: str) -> list[Resource]:
        return [
            e["resource"]
            for e in self.bundle.get("entry", ()) or ()
            if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == resource_type
        ]

    def resolve(self, reference: dict | None) -> Resource | None:
        """The resource a Reference points to, or None if it is not in the Bundle."""
        if not reference or "reference" not in reference:
            return None
        target = reference["reference"]
        if target in self._by_url:
            return self._by_url[target]
        parts = target.rstrip("/").split("/")
        if len(parts) >= 2:
            # absolute URL or Type/id/_history/n
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            return self._by_url.get("/".join(parts[-2:]))
        return None


# --- Person, organisation and staff: shared by every flow ------------------------------


def patient(person: Person) -> tuple[Resource, str]:
    """A Patient for the person, and its ifNoneExist.

    For a person with skyddad folkbokföring no address or contact data leaves: the Patient
    carries the security label and the name only (the one deliberate loss of the round trip).
    """
    res, cond = patient_of(person.personnummer)
    if person.skyddad_folkbokforing:
        res["meta"] = {"security": [{"system": systems.CS_SECURITY_LABEL_SE, "code": systems.SECURITY_SKYDDAD_FOLKBOKFORING}]}
        person = person.model_copy(update={"address": None, "phone": None})
    name: dict[str, Any] = {}
    if person.family_name:
        name["family"] = person.family_name
    if person.given_name:
        name["given"] = [person.given_name]
    if name:
        res["name"] = [name]
    if person.phone:
        res["telecom"] = [{"system": "phone", "value": person.phone}]
    if person.address:
        addr: dict[str, Any] = {"line": [person.address.line]}
        if person.address.postal_code:
            addr["postalCode"] = person.address.postal_code
        if person.address.city:
            addr["city"] = person.address.city
        res["address"] = [addr]
    return res, cond


def patient_of(personnummer: str) -> tuple[Resource, str]:
    """A Patient naming only the person's (already checked) personnummer or samordningsnummer,
    and its ifNoneExist: what `patient` gives for a Person with nothing else set."""
    system = identifiers.person_identifier_system(personnummer)
    return {"resourceType": "Patient", "identifier": [identifier(system, personnummer)]}, "identifier=" + search_token(system, personnummer)


def person_from(resource: Resource) -> Person:
    """The Person a Patient describes (personnummer in either national URI spelling)."""
    pnr = (
        first_identifier(resource, systems.PERSONNUMMER)
        or first_identifier(resource, systems.SAMORDNINGSNUMMER)
        or first_identifier(resource, systems.PERSONNUMMER_INERA)
    )
    if pnr is None:
        raise ValueError("Patient has no personnummer or samordningsnummer identifier")
    problem = identifiers.personnummer_problem(pnr)
    if problem:
        raise ValueError(f"Patient.identifier: invalid personnummer: {problem}")
    name = (resource.get("name") or [{}])[0]
    telecom = next((t["value"] for t in resource.get("telecom", ()) if t.get("system") == "phone"), None)
    addr = (resource.get("address") or [None])[0]
    security = (resource.get("meta") or {}).get("security", ())
    return Person(
        personnummer=pnr,
        given_name=(name.get("given") or [None])[0],
        family_name=name.get("family"),
        skyddad_folkbokforing=any(s.get("code") == systems.SECURITY_SKYDDAD_FOLKBOKFORING for s in security),
        phone=telecom,
        address=Address(line=addr["line"][0], postal_code=addr.get("postalCode"), city=addr.get("city")) if addr else None,
    )


def organization(org: Organisation) -> tuple[Resource, str]:
    """An Organization and its ifNoneExist (on HSA-id if it has one, else organisationsnummer)."""
    ids = []
    if org.hsa_id:
        ids.append(identifier(systems.HSA_ID, org.hsa_id))
    if org.organisationsnummer:
        ids.append(identifier(systems.ORGANISATIONSNUMMER, org.organisationsnummer))
    res: Resource = {"resourceType": "Organization", "identifier": ids, "name": org.name}
    if org.kind:
        res["type"] = [{"coding": [terminology.coding("organisation-kind", org.kind)]}]
    return res, "identifier=" + search_token(ids[0]["system"], ids[0]["value"])


def organisation_key(org: Organisation) -> str:
    return org.hsa_id or org.organisationsnummer or org.name


def organisation_from(resource: Resource) -> Organisation:
    return Organisation(
        name=resource.get("name", ""),
        hsa_id=first_identifier(resource, systems.HSA_ID),
        organisationsnummer=first_identifier(resource, systems.ORGANISATIONSNUMMER),
        kind=code_in(resource.get("type"), systems.CS_ORGANISATION_KIND),
    )


def practitioner(staff: Staff) -> tuple[Resource, str]:
    """A Practitioner for a staff member and its ifNoneExist."""
    ids = []
    if staff.hsa_id:
        ids.append(identifier(systems.HSA_ID, staff.hsa_id))
    if staff.local_id:
        ids.append(identifier(systems.SID_LOCAL_STAFF, staff.local_id))
    res: Resource = {"resourceType": "Practitioner", "identifier": ids, "name": [{"text": staff.name}]}
    if staff.title:
        res["qualification"] = [{"code": {"text": staff.title}}]
    return res, "identifier=" + search_token(ids[0]["system"], ids[0]["value"])


def staff_key(staff: Staff) -> str:
    return staff.hsa_id or staff.local_id or staff.name


def staff_from(resource: Resource) -> Staff:
    qual = (resource.get("qualification") or [None])[0]
    return Staff(
        name=(resource.get("name") or [{}])[0].get("text", ""),
        hsa_id=first_identifier(resource, systems.HSA_ID),
        local_id=first_identifier(resource, systems.SID_LOCAL_STAFF),
        title=qual["code"].get("text") if qual else None,
    )


# --- Consent to share a document with another huvudman ---------------------------------


def consent(c: SharingConsent, patient_url: str, custodian: dict, recipients: list[dict], information: str, policy: str = "osl-12-2") -> tuple[Resource, str]:
    """A Consent (profile cb-consent) letting `recipients` receive `information`, and its ifNoneExist."""
    ircp = {"coding": [{"system": systems.CS_V3_PARTICIPATION_TYPE, "code": "IRCP", "display": "information recipient"}]}
    purposes = [terminology.row("consent-purpose", p) for p in c.purposes]
    res: Resource = {
        "resourceType": "Consent",
        "meta": {"profile": [systems.PROFILE_CONSENT]},
        "identifier": [identifier(systems.SID_CONSENT, c.consent_id)],
        "status": "active",
        "scope": {"coding": [{"system": systems.CS_CONSENT_SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": systems.LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": ref(patient_url),
        "dateTime": c.given_at.isoformat(),
        "performer": [ref(patient_url)],
        "organization": [custodian],
        "policyRule": {"coding": [terminology.coding("consent-policy", policy)]},
        "provision": {
            "type": "permit",
            "period": period(c.given_at, c.valid_to),
            "actor": [{"role": ircp, "reference": r} for r in recipients],
            "action": [{"coding": [{"system": systems.CS_CONSENT_ACTION, "code": "disclose", "display": "Disclose"}]}],
            "purpose": [{"system": systems.CS_V3_ACT_REASON, "code": p["v3"], "display": p["display"]} for p in purposes],
            "code": [{"coding": [terminology.coding("consent-information", information)]}],
        },
    }
    return res, "identifier=" + search_token(systems.SID_CONSENT, c.consent_id)


def consent_from(res: Resource, organisation_of) -> SharingConsent:
    """The SharingConsent a Consent carries; `organisation_of(reference)` resolves each recipient."""
    provision = res.get("provision") or {}
    by_v3 = {row["v3"]: code for code, row in terminology.table("consent-purpose").items()}
    period = provision.get("period") or {}
    return SharingConsent(
        consent_id=first_identifier(res, systems.SID_CONSENT),
        given_at=res["dateTime"][:10],
        valid_to=period.get("end"),
        recipients=[organisation_of(a.get("reference")) for a in provision.get("actor", ())],
        purposes=[by_v3[p["code"]] for p in provision.get("purpose", ()) if p.get("system") == systems.CS_V3_ACT_REASON],
    )
