"""What GetCareServices and GetCarePlans share on the FHIR side: the document header, II, CV, result.

The header (PatientSummaryHeaderType) becomes:

- the document identifier (documentId, namespaced by sourceSystemHSAId) on the main resource,
- a `Patient` (personnummer / samordningsnummer, or `urn:oid:<type>`),
- a `Provenance` with the accountable professional as `author` agent (a `Practitioner` by HSA-id,
  the name as written in the document in `who.display`, role code in `agent.role`, the org unit as
  a contained `Organization` in `onBehalfOf`, care unit and care giver as identifier extensions)
  and the legal authenticator as `attester` agent plus a `signature`,
- extensions for what FHIR has no element for (approvedForPatient, nullified, documentTime, …).

`Carry` holds what no FHIR element can: RIV elements present but empty (FHIR strings cannot be
empty), values a FHIR datatype cannot hold (e.g. a code with spaces), and foreign-namespace XML.
Each is one path-tagged extension on the document's main resource, and comes back in place.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import quote, unquote

from mappings import fhir as f
from mappings import identifiers, systems
from mappings.riv import RivFormatError, RivWriteError, model, times
from mappings.riv.model import CV, II, Header, HealthcareProfessional, LegalAuthenticator, OrgUnit, PersonId, Result

Resource = dict[str, Any]

_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+\Z")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+\Z")
_FHIR_CODE = re.compile(r"^[^\s]+(\s[^\s]+)*\Z")
#: R4 string: `[ \r\n\t\S]+` (searched, as the reference model does): not empty, not only non-ASCII white space.
_FHIR_STRING = re.compile(r"[ \r\n\t\S]")
_ORG_UNIT_ID = "orgunit"
_NAMESPACE_URL = uuid.NAMESPACE_URL.bytes


def _unknown() -> dict:
    """An element whose value is unknown (data-absent-reason), for a required slot RIV left open."""
    return {"extension": [{"url": systems.EXT_DATA_ABSENT_REASON, "valueCode": "unknown"}]}


# ======================================================================================
# Carry: empty strings, raw values and foreign XML, by RIV path
# ======================================================================================


@dataclass
class Carry:
    """What a document keeps outside FHIR's elements, as (RIV path, value) pairs."""

    empty: list[str] = field(default_factory=list)
    raw: list[tuple[str, str]] = field(default_factory=list)
    foreign: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def take(cls, obj: model.RivType, skip: Iterable[str] = ()) -> "Carry":
        """Move empties and foreign XML out of `obj` (empties become None) and remember them.

        `skip` names child attributes not to descend into (a response's items have their own).
        """
        carry = cls()
        saved = {attr: getattr(obj, attr) for attr in skip}
        for attr in skip:
            setattr(obj, attr, [])
        try:
            carry._take(obj, ".")
        finally:
            for attr, value in saved.items():
                setattr(obj, attr, value)
        return carry

    def _take(self, part: model.RivType, path: str) -> bool:
        """`take` for `part` (at `path`) and every complex part below it, in one pass in document
        order: a part's own values first, then its parts. True if `part` holds nothing
        (`_holds_nothing`; text a FHIR string cannot hold counts as nothing, moved or not)."""
        marker = len(self.empty)  # where the part's own path goes if it holds nothing
        nothing = True
        prefix = "" if path == "." else path + "/"
        simple, complex_ = model.shape(type(part))
        for attr, tag in simple:
            value = getattr(part, attr)
            if value is None:
                continue
            # (fhir_string's first test inline: text that starts with a non-white-space character)
            if isinstance(value, str) and not (value and not value[0].isspace()) and not fhir_string(value):
                if value == "":
                    self.empty.append(prefix + tag)
                else:
                    self.raw.append((prefix + tag, value))
                setattr(part, attr, None)
            else:
                nothing = False
        other = getattr(part, "other", None)
        if other is not None:
            self.foreign += [(path, xml) for xml in other]
            part.other = []
        for attr, tag, many in complex_:
            value = getattr(part, attr)
            if many:
                for n, item in enumerate(value, start=1):
                    if item is not None and not self._take(item, f"{prefix}{tag}[{n}]"):
                        nothing = False
            elif value is not None and not self._take(value, prefix + tag):
                nothing = False
        if nothing and path != ".":
            self.empty.insert(marker, path)
        return nothing

    def mark_present(self, path: str) -> None:
        """The element at `path` is there although FHIR carries none of its values."""
        if path not in self.empty:
            self.empty.append(path)

    def put_raw(self, path: str, value: str) -> None:
        self.raw.append((path, value))

    def apply(self, obj: model.RivType) -> None:
        """Put empties, raw values and foreign XML back into `obj` (parents before children)."""
        for path in sorted(self.empty, key=lambda p: p.count("/")):
            model.ensure(obj, path, "")
        for path, value in self.raw:
            parent_path, _, last = path.rpartition("/")
            parent = model.resolve(obj, parent_path or ".")
            if parent is None:
                raise RivWriteError(f"kept value for {path}: its element is not there")
            model.ensure(parent, last, value)
        for path, xml in self.foreign:
            part = model.resolve(obj, path)
            if part is None or not hasattr(part, "other"):
                raise RivWriteError(f"kept foreign XML for {path}: that element is not there")
            part.other.append(xml)

    def extensions(self) -> list[dict]:
        out: list[dict] = [{"url": systems.EXT_RIV_EMPTY, "valueString": p} for p in self.empty]
        out += [_raw_extension(p, v) for p, v in self.raw]
        out += [_pair(systems.EXT_RIV_FOREIGN, p, "xml", x) for p, x in self.foreign]
        return out

    @classmethod
    def read(cls, extensions: Iterable[dict] | None) -> "Carry":
        carry = cls()
        for ext in extensions or ():
            url = ext.get("url")
            if url == systems.EXT_RIV_EMPTY:
                carry.empty.append(ext["valueString"])
            elif url == systems.EXT_RIV_RAW:
                carry.raw.append(_raw_value(ext))
            elif url == systems.EXT_RIV_FOREIGN:
                carry.foreign.append(_unpair(ext, "xml"))
        return carry


def fhir_string(value: str) -> bool:
    """True if a FHIR string can hold the value (non-empty, not only non-ASCII white space).

    Mostly answered by the first character (text rarely starts with other white space); the
    pattern decides the rest."""
    if not value:
        return False
    first = value[0]
    return not first.isspace() or first in " \r\n\t" or _FHIR_STRING.search(value) is not None


def _holds_nothing(part: model.RivType) -> bool:
    """No simple value below `part` that a FHIR string can hold (foreign XML not counted)."""
    return all(
        value is None or (isinstance(value, str) and not fhir_string(value))
        for sub_path, sub in model.walk(part)
        for _, _, value in model.leaves(sub, sub_path)
    )


def _raw_extension(path: str, value: str) -> dict:
    if fhir_string(value):
        return _pair(systems.EXT_RIV_RAW, path, "value", value)
    encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
    return {"url": systems.EXT_RIV_RAW, "extension": [{"url": "path", "valueString": path}, {"url": "utf8", "valueBase64Binary": encoded}]}


def _raw_value(ext: dict) -> tuple[str, str]:
    parts = {e.get("url"): e for e in ext.get("extension", ())}
    path = (parts.get("path") or {}).get("valueString")
    if path is not None and "value" in parts:
        return path, parts["value"]["valueString"]
    if path is not None and "utf8" in parts:
        return path, base64.b64decode(parts["utf8"]["valueBase64Binary"]).decode("utf-8")
    raise RivWriteError(f"extension {systems.EXT_RIV_RAW} needs 'path' and 'value' or 'utf8'")


def _pair(url: str, path: str, key: str, value: str) -> dict:
    return {"url": url, "extension": [{"url": "path", "valueString": path}, {"url": key, "valueString": value}]}


def _unpair(ext: dict, key: str) -> tuple[str, str]:
    parts = {e.get("url"): e.get("valueString") for e in ext.get("extension", ())}
    if parts.get("path") is None or parts.get(key) is None:
        raise RivWriteError(f"extension {ext.get('url')} needs 'path' and '{key}'")
    return parts["path"], parts[key]


# ======================================================================================
# Bundle building
# ======================================================================================


class Entries:
    """Transaction entries in order, each fullUrl once (shared Patient, Practitioner, Organization)."""

    def __init__(self) -> None:
        self.list: list[dict] = []
        self._seen: set[str] = set()
        #: The fullUrl of what was already added, by what identifies it (a patientId, or a resource
        #: type with an identifier): a document names the same patient and staff again and again.
        self.known: dict[tuple[str, str, str], str] = {}

    def add(self, url: str, resource: Resource, if_none_exist: str | None) -> str:
        if url not in self._seen:
            self._seen.add(url)
            self.list.append(f.post_entry(url, resource, if_none_exist))
        return url


def document_identifier(source_hsa_id: str, document_id: str) -> dict:
    """documentId as an Identifier: system namespaced by the source system, which is also the assigner."""
    return {
        "system": document_system(source_hsa_id),
        "value": document_id,
        "assigner": {"identifier": f.identifier(systems.HSA_ID, source_hsa_id)},
    }


def document_system(source_hsa_id: str) -> str:
    return f"{systems.SID_RIV_DOCUMENT}/{_quoted(source_hsa_id)}"


#: Text quote(..., safe="") leaves as it is: ASCII letters, digits and "_.-~".
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-~]*").fullmatch


def _quoted(text: str) -> str:
    """`quote(text, safe="")`, without the call when there is nothing to escape."""
    return text if _UNRESERVED(text) is not None else quote(text, safe="")


def riv_document(resource: Resource) -> tuple[str, str] | None:
    """(sourceSystemHSAId, documentId) if the resource came from a RIV document, else None."""
    prefix = systems.SID_RIV_DOCUMENT + "/"
    for ident in resource.get("identifier", ()) or ():
        system = ident.get("system") or ""
        if system.startswith(prefix) and "value" in ident:
            assigner = ((ident.get("assigner") or {}).get("identifier") or {}).get("value")
            return assigner or unquote(system[len(prefix):]), ident["value"]
    return None


def document_key(source_hsa_id: str, document_id: str) -> str:
    return f"{source_hsa_id}|{document_id}"


def require(value: str | None, where: str) -> str:
    """An identifying value that must be there and non-empty."""
    if not value:
        raise RivFormatError(f"{where} is empty or blank; it cannot identify anything")
    return value


# --- II <-> Identifier ---------------------------------------------------------------


def ii_to_identifier(ii: II, where: str) -> dict:
    """An II as an Identifier: root alone is an HSA-id; root + extension is `urn:oid:<root>` | extension.

    A root that is no OID is kept in the system (`sid/riv-ii-root/<root>`). The one form the
    Identifier cannot tell apart, root = the HSA OID with the HSA-id in extension, is marked on
    the Reference (see `unit_ref`), so both spellings share one Organization / Practitioner.
    """
    root = require(ii.root, f"{where}/root")
    if ii.extension is None:
        return f.identifier(systems.HSA_ID, root)
    if _OID.match(root):
        return f.identifier(f"urn:oid:{root}", ii.extension)
    return f.identifier(f"{systems.SID_RIV_II_ROOT}/{_quoted(root)}", ii.extension)


def identifier_to_ii(ident: dict, reference: dict | None = None) -> II | None:
    """The II an Identifier stands for (given the Reference that pointed to it), or None."""
    value = ident.get("value")
    system = ident.get("system") or ""
    if value is None:
        return None
    root_ext = f.extension_value(reference or {}, systems.EXT_RIV_II_ROOT, "valueString")
    if root_ext:
        return II(root=root_ext, extension=value)
    if system == systems.HSA_ID:
        return II(root=value)
    if system.startswith("urn:oid:"):
        return II(root=system[len("urn:oid:"):], extension=value)
    prefix = systems.SID_RIV_II_ROOT + "/"
    if system.startswith(prefix):
        return II(root=unquote(system[len(prefix):]), extension=value)
    return None


def unit_ref(entries: Entries, ii: II, where: str, resource_type: str = "Organization") -> dict:
    """A Reference to the Organization (or Practitioner) entry an II identifies, naming the identifier too
    (so the reference still says who it is when the target is not included in a search result)."""
    ident = ii_to_identifier(ii, where)
    ref = {**identified_entry(entries, resource_type, ident), "identifier": ident}
    if ii.extension is not None and ii.root == systems.RIV_HSA_OID:
        ref = {"extension": [{"url": systems.EXT_RIV_II_ROOT, "valueString": ii.root}], **ref}
    return ref


def ii_from_ref(index: f.BundleIndex, reference: dict) -> II | None:
    """The II a Reference written by `unit_ref` stands for (its target's first identifier)."""
    target = index.resolve(reference)
    ident = ((target or {}).get("identifier") or [reference.get("identifier") or {}])[0]
    return identifier_to_ii(ident, reference)


def identified_entry(entries: Entries, resource_type: str, ident: dict, name: str | None = None) -> dict:
    """A Reference to the one entry of this type with this identifier (conditional create on it).

    The first mention names it (Practitioner.name.text / Organization.name); one fullUrl per
    identifier, so a transaction never holds two creates with the same condition.
    """
    key = (resource_type, ident["system"], ident["value"])
    url = entries.known.get(key)
    if url is None:
        url = entries.known[key] = f.full_url(*key)
        res: Resource = {"resourceType": resource_type, "identifier": [ident]}
        if name is not None:
            res["name"] = [{"text": name}] if resource_type == "Practitioner" else name
        entries.add(url, res, "identifier=" + f.search_token(ident["system"], ident["value"]))
    return f.ref(url)


def ii_of(resource: Resource | None, prefer: tuple[str, ...] = (systems.HSA_ID, systems.ORGANISATIONSNUMMER)) -> II | None:
    """The II for an Organization or Practitioner from elsewhere: HSA-id, else organisationsnummer, else any urn:oid."""
    if resource is None:
        return None
    idents = resource.get("identifier", ()) or ()
    for system in prefer:
        for ident in idents:
            if ident.get("system") == system and ident.get("value"):
                return identifier_to_ii(ident)
    for ident in idents:
        ii = identifier_to_ii(ident)
        if ii is not None:
            return ii
    return None


# --- CV <-> CodeableConcept ------------------------------------------------------------


def cv_to_concept(cv: CV, path: str, carry: Carry) -> dict | None:
    """A CV as a CodeableConcept; values a Coding cannot hold go to `carry` as raw values."""
    coding: dict[str, Any] = {}
    if cv.code_system is not None:
        if _OID.match(cv.code_system):
            coding["system"] = f"urn:oid:{cv.code_system}"
        elif _URI.match(cv.code_system) and not cv.code_system.startswith("urn:oid:"):
            coding["system"] = cv.code_system
        else:
            carry.put_raw(f"{path}/codeSystem", cv.code_system)
    if cv.code_system_version is not None:
        coding["version"] = cv.code_system_version
    if cv.code is not None:
        if _FHIR_CODE.match(cv.code):
            coding["code"] = cv.code
        else:
            carry.put_raw(f"{path}/code", cv.code)
    if cv.display_name is not None:
        coding["display"] = cv.display_name
    if cv.code_system_name is not None:
        coding["extension"] = [{"url": systems.EXT_RIV_CODE_SYSTEM_NAME, "valueString": cv.code_system_name}]
    concept: dict[str, Any] = {}
    if coding:
        concept["coding"] = [coding]
    if cv.original_text is not None:
        concept["text"] = cv.original_text
    if not concept:
        carry.mark_present(path)
    return concept or None


def concept_to_cv(concept: dict | None) -> CV | None:
    """The CV a CodeableConcept stands for (first coding, text as originalText)."""
    if not concept:
        return None
    coding = (concept.get("coding") or [{}])[0]
    system = coding.get("system")
    cv = CV(
        code=coding.get("code"),
        code_system=system[len("urn:oid:"):] if system and system.startswith("urn:oid:") else system,
        code_system_name=f.extension_value(coding, systems.EXT_RIV_CODE_SYSTEM_NAME, "valueString"),
        code_system_version=coding.get("version"),
        display_name=coding.get("display"),
        original_text=concept.get("text"),
    )
    return None if model.blank(cv) else cv


# ======================================================================================
# Header -> FHIR
# ======================================================================================


@dataclass
class HeaderFhir:
    """The FHIR pieces of one header, for the contract module to place on its main resource."""

    identifier: dict
    if_none_exist: str
    key: str
    subject: dict
    author: dict | None
    authored: str
    status_nullified: bool
    extensions: list[dict]
    status_reason: dict | None
    encounter: dict | None
    document_time: str | None
    header: Header
    where: str
    path: str


def header_to_fhir(h: Header, path: str, where: str, entries: Entries, *, title_extension: bool) -> HeaderFhir:
    """Map a header (empties already moved to a Carry) to FHIR pieces; adds Patient and Practitioner entries.

    `path` is the header's RIV path inside its document (careServiceHeader, carePlanHeader).
    """
    source = require(h.source_system_hsa_id, f"{where}/sourceSystemHSAId")
    document_id = require(h.document_id, f"{where}/documentId")
    identifier = document_identifier(source, document_id)
    acc = h.accountable
    authored = times.to_fhir(acc.author_time, f"{where}/accountableHealthcareProfessional/authorTime")
    document_time = times.to_fhir(h.document_time, f"{where}/documentTime") if h.document_time else None
    extensions: list[dict] = []
    if title_extension and h.document_title is not None:
        extensions.append({"url": systems.EXT_RIV_DOCUMENT_TITLE, "valueString": h.document_title})
    if document_time:
        extensions.append({"url": systems.EXT_RIV_DOCUMENT_TIME, "valueDateTime": document_time})
    extensions.append({"url": systems.EXT_RIV_APPROVED_FOR_PATIENT, "valueBoolean": h.approved_for_patient})
    if h.nullified is not None:
        extensions.append({"url": systems.EXT_RIV_NULLIFIED, "valueBoolean": h.nullified})
    return HeaderFhir(
        identifier=identifier,
        if_none_exist="identifier=" + f.search_token(identifier["system"], document_id),
        key=document_key(source, document_id),
        subject=patient_ref(h.patient_id, f"{where}/patientId", entries),
        author=agent_who(entries, acc.hsa_id, acc.name),
        authored=authored,
        status_nullified=bool(h.nullified),
        extensions=extensions,
        status_reason={"text": h.nullified_reason} if h.nullified_reason is not None else None,
        encounter={"identifier": f.identifier(systems.SID_RIV_CARE_CONTACT, h.care_contact_id)} if h.care_contact_id is not None else None,
        document_time=document_time,
        header=h,
        where=where,
        path=path,
    )


def requester(parts: HeaderFhir) -> dict | None:
    """The author as a plain Reference for the main resource (requester / author), if it names someone."""
    who = parts.author
    return who if who and ("reference" in who or "display" in who) else None


def patient_ref(pid: PersonId, where: str, entries: Entries) -> dict:
    """A Reference to the Patient entry for a RIV patientId (personnummer checked)."""
    value = require(pid.id, f"{where}/id")
    kind = require(pid.type, f"{where}/type")
    known = entries.known.get(("patientId", kind, value))  # (checked when first met)
    if known is not None:
        return f.ref(known)
    if kind in (systems.RIV_PERSONNUMMER_OID, systems.RIV_SAMORDNINGSNUMMER_OID):
        problem = identifiers.personnummer_problem(value)
        if problem:
            raise RivFormatError(f"{where}/id: {problem}")
        is_samordning = identifiers.is_samordningsnummer(value)
        if is_samordning != (kind == systems.RIV_SAMORDNINGSNUMMER_OID):
            said = "samordningsnummer" if kind == systems.RIV_SAMORDNINGSNUMMER_OID else "personnummer"
            raise RivFormatError(f"{where}: type says {said} but id {identifiers.mask(value)} is not one")
        res, cond = f.patient_of(value)  # (checked above, as the Person model would)
        system = res["identifier"][0]["system"]
    elif _OID.match(kind):
        system = f"urn:oid:{kind}"
        res = {"resourceType": "Patient", "identifier": [f.identifier(system, value)]}
        cond = "identifier=" + f.search_token(system, value)
    else:
        raise RivFormatError(f"{where}/type: {kind!r} is not an OID")
    url = entries.known["patientId", kind, value] = entries.add(f.full_url("Patient", system, value), res, cond)
    return f.ref(url)


def agent_who(entries: Entries, hsa_id: str | None, name: str | None) -> dict:
    """Provenance agent `who`: the Practitioner by HSA-id, the name as written, or 'unknown'."""
    who: dict[str, Any] = {}
    if hsa_id is not None:
        who["reference"] = identified_entry(entries, "Practitioner", f.identifier(systems.HSA_ID, hsa_id), name)["reference"]
    if name is not None:
        who["display"] = name
    return who or _unknown()


def provenance(parts: HeaderFhir, targets: list[str], entries: Entries, carry: Carry) -> tuple[str, Resource, str]:
    """The Provenance of one document (fullUrl, resource, ifNoneExist): author agent, optional
    attester agent and signature. Adds the attester's Practitioner entry; raw role-code values go to `carry`."""
    h, where = parts.header, parts.where
    acc = h.accountable
    agent: dict[str, Any] = {"type": _agent_type("author")}
    ext = []
    if acc.care_unit_hsa_id is not None:
        ext.append({"url": systems.EXT_RIV_CARE_UNIT, "valueIdentifier": f.identifier(systems.HSA_ID, acc.care_unit_hsa_id)})
    if acc.care_giver_hsa_id is not None:
        ext.append({"url": systems.EXT_RIV_CARE_GIVER, "valueIdentifier": f.identifier(systems.HSA_ID, acc.care_giver_hsa_id)})
    if ext:
        agent = {"extension": ext, **agent}
    if acc.role_code is not None:
        role = cv_to_concept(acc.role_code, f"{parts.path}/accountableHealthcareProfessional/healthcareProfessionalRoleCode", carry)
        if role:
            agent["role"] = [role]
    agent["who"] = parts.author
    prov: Resource = {"resourceType": "Provenance"}
    key = "riv/" + f.uuid5_text(_NAMESPACE_URL, parts.key)
    prov["meta"] = {"tag": [f.tag_key(key)]}
    org = _org_unit_resource(acc.org_unit)
    if org is not None:
        prov["contained"] = [org]
        agent["onBehalfOf"] = {"reference": f"#{_ORG_UNIT_ID}"}
    prov["target"] = [f.ref(u) for u in targets]
    prov["occurredDateTime"] = parts.authored
    prov["recorded"] = parts.document_time or parts.authored
    prov["activity"] = {"coding": [{"system": systems.CS_PROVENANCE_ACTIVITY, "code": "CREATE"}]}
    prov["agent"] = [agent]
    la = h.legal_authenticator
    if la is not None:
        who = agent_who(entries, la.hsa_id, la.name)
        prov["agent"].append({"type": _agent_type("attester"), "who": who})
        prov["signature"] = [
            {
                "type": [{"system": systems.CS_SIGNATURE_TYPE, "code": systems.SIGNATURE_VERIFICATION, "display": "Verification Signature"}],
                "when": times.to_fhir(la.signature_time, f"{where}/legalAuthenticator/signatureTime"),
                "who": who,
            }
        ]
    return f.full_url("Provenance", "riv", parts.key), prov, "_tag=" + f.search_token(systems.TAG_BUSINESS_KEY, key)


def _agent_type(code: str) -> dict:
    return {"coding": [{"system": systems.CS_PROVENANCE_AGENT_TYPE, "code": code}]}


def _org_unit_resource(unit: OrgUnit | None) -> Resource | None:
    if unit is None or model.blank(unit):
        return None
    org: Resource = {"resourceType": "Organization", "id": _ORG_UNIT_ID}
    if unit.hsa_id is not None:
        org["identifier"] = [f.identifier(systems.HSA_ID, unit.hsa_id)]
    if unit.name is not None:
        org["name"] = unit.name
    elif unit.hsa_id is None:
        org["_name"] = _unknown()  # org-1: an Organization needs a name or an identifier
    telecom = []
    if unit.telecom is not None:
        telecom.append({"system": "phone", "value": unit.telecom})
    if unit.email is not None:
        telecom.append({"system": "email", "value": unit.email})
    if telecom:
        org["telecom"] = telecom
    address = {}
    if unit.address is not None:
        address["text"] = unit.address
    if unit.location is not None:
        address["city"] = unit.location
    if address:
        org["address"] = [address]
    return org


# ======================================================================================
# FHIR -> header
# ======================================================================================


def provenances_for(index: f.BundleIndex, resource: Resource) -> list[Resource]:
    """Every Provenance in the Bundle with the resource among its targets."""
    return [p for p in index.resources("Provenance") if any(index.resolve(t) is resource for t in p.get("target", ()) or ())]


def agent_of(provenances: list[Resource], code: str) -> tuple[Resource, dict] | None:
    """The first (Provenance, agent) whose agent type is `code` (author, attester)."""
    for prov in provenances:
        for agent in prov.get("agent", ()) or ():
            if f.code_in(agent.get("type"), systems.CS_PROVENANCE_AGENT_TYPE) == code:
                return prov, agent
    return None


def contained(resource: Resource, reference: dict | None) -> Resource | None:
    target = (reference or {}).get("reference", "")
    if target.startswith("#"):
        for res in resource.get("contained", ()) or ():
            if res.get("id") == target[1:]:
                return res
    return None


def resolve_any(index: f.BundleIndex, container: Resource, reference: dict | None) -> Resource | None:
    return contained(container, reference) or index.resolve(reference)


def person_of(index: f.BundleIndex, container: Resource, reference: dict | None) -> tuple[Resource | None, Resource | None]:
    """(Practitioner, Organization) behind a reference: a Practitioner, a PractitionerRole, or an Organization."""
    res = resolve_any(index, container, reference)
    if res is None:
        return None, None
    kind = res.get("resourceType")
    if kind == "Practitioner":
        return res, None
    if kind == "PractitionerRole":
        return index.resolve(res.get("practitioner")), index.resolve(res.get("organization"))
    if kind == "Organization":
        return None, res
    return None, None


def practitioner_name(res: Resource | None) -> str | None:
    if not res:
        return None
    name = (res.get("name") or [{}])[0]
    if name.get("text"):
        return name["text"]
    parts = [*name.get("given", ()), name.get("family")]
    joined = " ".join(p for p in parts if p)
    return joined or None


def hsa_of(res: Resource | None) -> str | None:
    return f.first_identifier(res, systems.HSA_ID) if res else None


def org_unit_from(res: Resource | None) -> OrgUnit | None:
    """An OrgUnit from an Organization (contained snapshot or Bundle entry)."""
    if res is None:
        return None
    telecom = res.get("telecom", ()) or ()
    address = (res.get("address") or [{}])[0]
    unit = OrgUnit(
        hsa_id=hsa_of(res),
        name=res.get("name"),
        telecom=next((t.get("value") for t in telecom if t.get("system") == "phone"), None),
        email=next((t.get("value") for t in telecom if t.get("system") == "email"), None),
        address=address.get("text"),
        location=address.get("city"),
    )
    return None if model.blank(unit) else unit


def patient_id_from(index: f.BundleIndex, resource: Resource, where: str) -> PersonId:
    patient = index.resolve(resource.get("subject"))
    if patient is None or patient.get("resourceType") != "Patient":
        raise RivWriteError(f"{where}: subject is not a Patient in the Bundle")
    for ident in patient.get("identifier", ()) or ():
        system, value = ident.get("system") or "", ident.get("value")
        if not value:
            continue
        if system == systems.PERSONNUMMER:
            return PersonId(id=value, type=systems.RIV_PERSONNUMMER_OID)
        if system == systems.SAMORDNINGSNUMMER:
            return PersonId(id=value, type=systems.RIV_SAMORDNINGSNUMMER_OID)
        if system == systems.PERSONNUMMER_INERA:
            samordning = len(value) == 12 and value.isdigit() and identifiers.is_samordningsnummer(value)
            return PersonId(id=value, type=systems.RIV_SAMORDNINGSNUMMER_OID if samordning else systems.RIV_PERSONNUMMER_OID)
        if system.startswith("urn:oid:"):
            return PersonId(id=value, type=system[len("urn:oid:"):])
    raise RivWriteError(f"{where}: the Patient has no personnummer, samordningsnummer or urn:oid identifier")


@dataclass
class HeaderSource:
    """Where a main resource keeps header facts that differ between ServiceRequest and CarePlan."""

    time_field: str  # authoredOn | created
    author_refs: list[dict]  # where to look for the professional and the unit without a Provenance, in order
    title: str | None
    fallback_document_id: str | None
    source_orgs: list[Resource]
    fallback_time: str | None = None  # e.g. CarePlan.period.start, when nothing records the authoring


def header_from_fhir(resource: Resource, index: f.BundleIndex, src: HeaderSource, where: str) -> Header:
    """Read a header from a main resource, its Provenance and the Bundle.

    A resource made from RIV is read exactly from the places `header_to_fhir` wrote; any other
    resource is read with fallbacks (see docs/riv.md, "FHIR from elsewhere").
    """
    made = riv_document(resource)
    exact = made is not None
    provs = provenances_for(index, resource)
    author = agent_of(provs, "author")
    attester = agent_of(provs, "attester")

    if made:
        source, document_id = made
    else:
        document_id = src.fallback_document_id
        if not document_id:
            raise RivWriteError(f"{where}: no identifier to use as documentId")
        source = _source_system(src.source_orgs, author, index, where)

    time_value = resource.get(src.time_field)
    if time_value is None and not exact:
        time_value = (author[0].get("recorded") if author else None) or src.fallback_time
    if time_value is None:
        raise RivWriteError(f"{where}: no {src.time_field} (or Provenance.recorded) to use as authorTime")
    acc = HealthcareProfessional(author_time=times.from_fhir(time_value, f"{where}.{src.time_field}"))

    if author:
        prov, agent = author
        practitioner, org = person_of(index, prov, agent.get("who"))
        who = agent.get("who") or {}
        acc.hsa_id = hsa_of(practitioner)
        acc.name = who.get("display") if exact else (who.get("display") or practitioner_name(practitioner))
        acc.role_code = concept_to_cv((agent.get("role") or [None])[0])
        unit_res = resolve_any(index, prov, agent.get("onBehalfOf")) or (None if exact else org)
        acc.org_unit = org_unit_from(unit_res)
        acc.care_unit_hsa_id = (f.extension_value(agent, systems.EXT_RIV_CARE_UNIT, "valueIdentifier") or {}).get("value")
        acc.care_giver_hsa_id = (f.extension_value(agent, systems.EXT_RIV_CARE_GIVER, "valueIdentifier") or {}).get("value")
        if not exact and acc.role_code is None and practitioner:
            acc.role_code = concept_to_cv(((practitioner.get("qualification") or [{}])[0]).get("code"))
    elif not exact:
        practitioner, org = _first_person_and_unit(index, resource, src.author_refs)
        acc.hsa_id = hsa_of(practitioner)
        acc.name = practitioner_name(practitioner)
        acc.org_unit = org_unit_from(org)
        if practitioner:
            acc.role_code = concept_to_cv(((practitioner.get("qualification") or [{}])[0]).get("code"))

    header = Header(
        document_id=document_id,
        source_system_hsa_id=source,
        document_title=src.title,
        document_time=_opt_time(f.extension_value(resource, systems.EXT_RIV_DOCUMENT_TIME, "valueDateTime"), f"{where}: documentTime"),
        patient_id=patient_id_from(index, resource, where),
        accountable=acc,
        legal_authenticator=_legal_authenticator(index, attester, exact, where),
        approved_for_patient=_approved(resource),
        nullified=_nullified(resource, exact),
        nullified_reason=_status_reason_text(resource) if exact or resource.get("status") == "entered-in-error" else None,
        care_contact_id=_care_contact(resource),
    )
    return header


def _first_person_and_unit(index: f.BundleIndex, resource: Resource, refs: list[dict]) -> tuple[Resource | None, Resource | None]:
    practitioner = org = None
    for ref in refs:
        person, unit = person_of(index, resource, ref)
        practitioner, org = practitioner or person, org or unit
    return practitioner, org


def _source_system(orgs: list[Resource], author: tuple[Resource, dict] | None, index: f.BundleIndex, where: str) -> str:
    """sourceSystemHSAId for FHIR from elsewhere: the responsible organisation's HSA-id, else its organisationsnummer."""
    candidates = list(orgs)
    if author:
        prov, agent = author
        candidates.append(resolve_any(index, prov, agent.get("onBehalfOf")))
        candidates.append(person_of(index, prov, agent.get("who"))[1])
    candidates = [c for c in candidates if c]
    for system in (systems.HSA_ID, systems.ORGANISATIONSNUMMER):
        for org in candidates:
            value = f.first_identifier(org, system)
            if value:
                return value
    raise RivWriteError(f"{where}: no organisation with an HSA-id or organisationsnummer to name as sourceSystemHSAId")


def _legal_authenticator(index: f.BundleIndex, attester: tuple[Resource, dict] | None, exact: bool, where: str) -> LegalAuthenticator | None:
    if attester is None:
        return None
    prov, agent = attester
    signature = next(
        (s for s in prov.get("signature", ()) or () if any(c.get("code") == systems.SIGNATURE_VERIFICATION for c in s.get("type", ()) or ())),
        None,
    )
    if signature is None or not signature.get("when"):
        return None
    practitioner, _ = person_of(index, prov, agent.get("who"))
    who = agent.get("who") or {}
    return LegalAuthenticator(
        signature_time=times.from_fhir(signature["when"], f"{where}: signature.when"),
        hsa_id=hsa_of(practitioner),
        name=who.get("display") if exact else (who.get("display") or practitioner_name(practitioner)),
    )


def _approved(resource: Resource) -> bool:
    value = f.extension_value(resource, systems.EXT_RIV_APPROVED_FOR_PATIENT, "valueBoolean")
    return True if value is None else bool(value)


def _nullified(resource: Resource, exact: bool) -> bool | None:
    value = f.extension_value(resource, systems.EXT_RIV_NULLIFIED, "valueBoolean")
    if value is not None:
        return bool(value)
    if resource.get("status") == "entered-in-error":
        return True
    return None


def _status_reason_text(resource: Resource) -> str | None:
    concept = f.extension_value(resource, systems.EXT_REQUEST_STATUS_REASON, "valueCodeableConcept")
    return (concept or {}).get("text")


def _care_contact(resource: Resource) -> str | None:
    ident = (resource.get("encounter") or {}).get("identifier") or {}
    return ident.get("value") if ident.get("system") == systems.SID_RIV_CARE_CONTACT else None


def _opt_time(value: str | None, where: str) -> str | None:
    return times.from_fhir(value, where) if value else None


# ======================================================================================
# Result (response level) on Bundle.meta
# ======================================================================================

_RESULT_PARTS = (("resultCode", "result_code", "valueCode"), ("errorCode", "error_code", "valueCode"), ("logId", "log_id", "valueString"), ("subCode", "sub_code", "valueString"), ("message", "message", "valueString"))


def result_extension(result: Result) -> dict:
    parts = [{"url": url, key: getattr(result, attr)} for url, attr, key in _RESULT_PARTS if getattr(result, attr) is not None]
    return {"url": systems.EXT_RIV_RESULT, "extension": parts}


def result_from(bundle: Resource) -> tuple[Result | None, Carry]:
    """The response's result and response-level carry kept on Bundle.meta, if the Bundle came from RIV."""
    exts = (bundle.get("meta") or {}).get("extension", ()) or ()
    carry = Carry.read(exts)
    for ext in exts:
        if ext.get("url") == systems.EXT_RIV_RESULT:
            parts = {e.get("url"): e for e in ext.get("extension", ())}
            values = {attr: (parts[url].get(key) if url in parts else None) for url, attr, key in _RESULT_PARTS}
            return Result(**values), carry
    return None, carry


def with_meta(bundle: Resource, result: Result, carry: Carry) -> Resource:
    """The Bundle with the response's result and response-level carry on `meta`."""
    meta = {"extension": [result_extension(result), *carry.extensions()]}
    return {"resourceType": "Bundle", "id": bundle["id"], "meta": meta, **{k: v for k, v in bundle.items() if k not in ("resourceType", "id")}}


# ======================================================================================
# A whole response: its items one by one, the result and carry on the Bundle
# ======================================================================================


def response_to_fhir(
    xml: Any, cls: type[model.RivType], item_tag: str, read_item: Callable[[Any, str, Entries, Carry], str], bundle_kind: str
) -> Resource:
    """Read a response of type `cls` into one transaction Bundle: `read_item(item, where, entries,
    carry)` adds each item's entries (the item's empties and foreign XML already moved to `carry`)
    and returns its document key (unique in the response)."""
    reading = model.Reading()
    response = model.parse_response(xml, cls, reading)
    response_carry = _carry_of(reading, response, skip=("items",))
    entries = Entries()
    keys: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(response.items, start=1):
        key = read_item(item, f"{item_tag}[{n}]", entries, _carry_of(reading, item))
        if key in seen:
            raise RivFormatError(f"{item_tag}[{n}]: documentId occurs twice from the same sourceSystemHSAId")
        seen.add(key)
        keys.append(key)
    bundle = f.transaction(entries.list, f"{bundle_kind}|" + "|".join(keys) + "|" + (response.result.log_id or ""))
    return with_meta(bundle, response.result, response_carry)


def _carry_of(reading: model.Reading, part: model.RivType, skip: Iterable[str] = ()) -> Carry:
    """`Carry.take(part, skip)`, without the walk when the reader met nothing to carry in `part`."""
    return Carry.take(part, skip) if reading.carries(part) else Carry()


def read_bundle(bundle: Resource) -> tuple[f.BundleIndex, Result | None, Carry]:
    """The Bundle's index, and the result and response-level carry it keeps (if it came from RIV)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise RivWriteError("not a FHIR Bundle")
    return (f.BundleIndex(bundle), *result_from(bundle))


def ok_result(bundle: Resource) -> Result:
    """resultCode OK, with the Bundle's id as logId."""
    return Result(result_code="OK", log_id=bundle.get("id") or "N/A")


def write_response(cls: type[model.RivType], items: list, result: Result, carry: Carry) -> bytes:
    """The response XML of `cls` with these items and result, the kept response-level carry put back."""
    response = cls(items=items, result=result)  # type: ignore[call-arg]
    carry.apply(response)
    return model.write_response(response)
