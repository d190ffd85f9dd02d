"""Who a FHIR document involves: its sending organisation, every named organisation, its persons.

Authorisation is decided on the FHIR form every input converts to, so one reading serves all
formats and flows:

- **senders**: the organisations the document speaks for: ``Provenance.agent.onBehalfOf``
  (and an organisational ``agent.who``), ``CarePlan.author``, ``MessageHeader.sender`` and
  ``responsible``, and the ``requester`` of a ServiceRequest or Task;
- **parties**: every organisation the document names (its Organization resources, contained ones
  included, and logical references by HSA-id or organisationsnummer): senders, recipients,
  performers, care-team members;
- **protected**: a Patient labelled skyddad folkbokföring or sekretessmarkering (HL7 Sweden labels).

An organisation is its set of identifier values; a caller matches it when the caller's
organisation is one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from mappings import systems

ORGANISATION_SYSTEMS = (systems.HSA_ID, systems.ORGANISATIONSNUMMER)
PERSON_SYSTEMS = (systems.PERSONNUMMER, systems.SAMORDNINGSNUMMER, systems.PERSONNUMMER_INERA)
PROTECTED_LABELS = frozenset({systems.SECURITY_SKYDDAD_FOLKBOKFORING, systems.SECURITY_SEKRETESSMARKERING})
#: (resource type, element) pairs whose Organization speaks for the document.
SENDER_ELEMENTS = (("CarePlan", "author"), ("MessageHeader", "sender"), ("MessageHeader", "responsible"),
                   ("ServiceRequest", "requester"), ("Task", "requester"), ("Provenance", "agent.onBehalfOf"),
                   ("Provenance", "agent.who"))


@dataclass(frozen=True)
class Parties:
    """The organisations and persons of one document."""

    senders: frozenset[str] = field(default_factory=frozenset)
    parties: frozenset[str] = field(default_factory=frozenset)
    persons: frozenset[str] = field(default_factory=frozenset)
    protected: bool = False

    def sent_by(self, organisation: str) -> bool:
        """True if ``organisation`` is one of the document's senders."""
        return organisation in self.senders

    def involves(self, organisation: str) -> bool:
        """True if ``organisation`` sent the document or is named in it."""
        return organisation in self.parties or organisation in self.senders


def _resources(document: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    if document.get("resourceType") != "Bundle":
        return [(None, document)]
    out = []
    for entry in document.get("entry") or ():
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            out.append((entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None, entry["resource"]))
    return out


def _org_ids(resource: dict[str, Any]) -> set[str]:
    return {str(i["value"]) for i in resource.get("identifier") or () if isinstance(i, dict)
            and i.get("system") in ORGANISATION_SYSTEMS and isinstance(i.get("value"), str) and i["value"]}


def _references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped dict inside a value."""
    if isinstance(value, dict):
        if "reference" in value or isinstance(value.get("identifier"), dict):
            yield value
        for v in value.values():
            yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def _path(resource: dict[str, Any], path: str) -> Iterator[Any]:
    values: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for v in values:
            got = v.get(step) if isinstance(v, dict) else None
            nxt.extend(got if isinstance(got, list) else [got] if got is not None else [])
        values = nxt
    yield from values


class _Index:
    """Organizations of a document by every way a reference can name them."""

    def __init__(self, resources: list[tuple[str | None, dict[str, Any]]]) -> None:
        self.by_ref: dict[str, set[str]] = {}
        for url, res in resources:
            if res.get("resourceType") != "Organization":
                continue
            ids = _org_ids(res)
            keys = [url] if url else []
            if isinstance(res.get("id"), str):
                keys.append(f"Organization/{res['id']}")
            for key in keys:
                self.by_ref.setdefault(key, set()).update(ids)

    def resolve(self, ref: Any, contained: dict[str, set[str]] | None = None) -> set[str]:
        if not isinstance(ref, dict):
            return set()
        found: set[str] = set()
        target = ref.get("reference")
        if isinstance(target, str) and target.startswith("#"):
            found |= (contained or {}).get(target, set())
        elif isinstance(target, str):
            found |= self.by_ref.get(target, set())
            if "/Organization/" in target:  # an absolute URL to an Organization we hold
                found |= self.by_ref.get("Organization/" + target.rsplit("/Organization/", 1)[1].split("/")[0], set())
        ident = ref.get("identifier")
        if isinstance(ident, dict) and ident.get("system") in ORGANISATION_SYSTEMS and isinstance(ident.get("value"), str):
            found.add(ident["value"])
        return found


def parties_of(document: dict[str, Any]) -> Parties:
    """The senders, parties, persons and protection of a FHIR Bundle or resource."""
    resources = _resources(document)
    index = _Index(resources)
    senders: set[str] = set()
    parties: set[str] = set()
    persons: set[str] = set()
    protected = False
    for _url, res in resources:
        rtype = res.get("resourceType")
        if rtype == "Organization":
            parties |= _org_ids(res)
        if rtype == "Patient":
            persons |= {str(i["value"]) for i in res.get("identifier") or () if isinstance(i, dict)
                        and i.get("system") in PERSON_SYSTEMS and isinstance(i.get("value"), str)}
            labels = (res.get("meta") or {}).get("security") or ()
            protected = protected or any(isinstance(s, dict) and s.get("code") in PROTECTED_LABELS for s in labels)
        contained = {f"#{c['id']}": _org_ids(c) for c in res.get("contained") or () if isinstance(c, dict)
                     and c.get("resourceType") == "Organization" and isinstance(c.get("id"), str)}
        for ids in contained.values():
            parties |= ids
        for ref in _references({k: v for k, v in res.items() if k not in ("meta", "identifier", "contained")}):
            parties |= index.resolve(ref, contained)
            ident = ref.get("identifier")
            if isinstance(ident, dict) and ident.get("system") in PERSON_SYSTEMS and isinstance(ident.get("value"), str):
                persons.add(ident["value"])
        for type_, path in SENDER_ELEMENTS:
            if rtype == type_:
                for ref in _path(res, path):
                    senders |= index.resolve(ref, contained)
    return Parties(frozenset(senders), frozenset(parties | senders), frozenset(persons), protected)
