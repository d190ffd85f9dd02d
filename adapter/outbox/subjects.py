"""Who a payload is about and on whose behalf it is sent: the person key and the organisation.

The person key orders a person's messages and names the person in AuditEvents and metrics
without revealing the personnummer: an HMAC-SHA256 under a secret kept in the outbox database
(or ``$CAREBRIDGE_PERSON_KEY_SECRET``), so the small personnummer space cannot be brute-forced
from the key alone.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from mappings import systems
from mappings.identifiers import mask

#: Identifier systems that name a person.
PERSON_SYSTEMS = (systems.PERSONNUMMER, systems.SAMORDNINGSNUMMER, systems.PERSONNUMMER_INERA)
#: Identifier systems that name an organisation, most specific first.
ORGANISATION_SYSTEMS = (systems.HSA_ID, systems.ORGANISATIONSNUMMER)
#: Elements of a single resource that point at its person.
PERSON_ELEMENTS = ("for", "subject", "patient", "beneficiary")


@dataclass(frozen=True)
class Subject:
    """The person (plain number, only in memory) and organisation a payload concerns."""

    person: str | None
    organisation: str | None
    fallback_key: str  # what orders the payload when it names no person (its Bundle id or identifier)
    #: Each person of a payload about more than one (``person`` is then all of them joined, so they are
    #: ordered as one); empty for a payload about one person or none.
    persons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The person for operators' eyes: a masked personnummer (the first and how many more), or the fallback key."""
        if self.persons:
            return f"{mask(self.persons[0])} +{len(self.persons) - 1}"
        return mask(self.person) if self.person else f"({self.fallback_key[:30]})"


def person_key(secret: str, subject: Subject) -> str:
    """The HMAC-SHA256 person key (hex) that orders this subject's messages."""
    material = f"person|{subject.person}" if subject.person else f"other|{subject.fallback_key}"
    return hmac.new(secret.encode(), material.encode(), hashlib.sha256).hexdigest()


def _person_in(identifiers: Any) -> str | None:
    for ident in identifiers or ():
        if isinstance(ident, dict) and ident.get("system") in PERSON_SYSTEMS and ident.get("value"):
            return str(ident["value"])
    return None


def _organisation_in(resource: dict[str, Any]) -> str | None:
    idents = resource.get("identifier") or ()
    for system in ORGANISATION_SYSTEMS:
        for ident in idents:
            if ident.get("system") == system and ident.get("value"):
                return str(ident["value"])
    return None


def subject_of(payload: dict[str, Any]) -> Subject:
    """The person and organisation of a transaction Bundle or of a single resource."""
    if payload.get("resourceType") == "Bundle":
        return _bundle_subject(payload)
    person = None
    for element in PERSON_ELEMENTS:
        ref = payload.get(element)
        if isinstance(ref, dict) and isinstance(ref.get("identifier"), dict):
            person = person or _person_in([ref["identifier"]])
    if payload.get("resourceType") == "Patient":
        person = _person_in(payload.get("identifier"))
    organisation = None
    for element in ("requester", "owner", "author", "managingOrganization"):
        ref = payload.get(element)
        if isinstance(ref, dict) and isinstance(ref.get("identifier"), dict):
            organisation = organisation or _organisation_in({"identifier": [ref["identifier"]]})
    ident = (payload.get("identifier") or [{}])[0]
    fallback = f"{payload.get('resourceType')}|{ident.get('system')}|{ident.get('value')}"
    return Subject(person, organisation, fallback)


def _bundle_subject(bundle: dict[str, Any]) -> Subject:
    resources = [e.get("resource") or {} for e in bundle.get("entry", ()) or ()]
    persons = sorted({p for r in resources if r.get("resourceType") == "Patient"
                      for p in [_person_in(r.get("identifier"))] if p})
    by_url = {e.get("fullUrl"): e.get("resource") or {} for e in bundle.get("entry", ()) or ()}
    organisation = None
    for res in resources:  # the Provenance's onBehalfOf is the responsible organisation
        if res.get("resourceType") == "Provenance":
            for agent in res.get("agent", ()):
                target = by_url.get((agent.get("onBehalfOf") or {}).get("reference"))
                organisation = organisation or (target and _organisation_in(target))
    if organisation is None:
        organisation = next((o for r in resources if r.get("resourceType") == "Organization"
                             for o in [_organisation_in(r)] if o), None)
    # A Bundle about several persons is ordered as one "person" made of all of them; each of them is kept
    # too (its AuditEvents are found by any one of them).
    person = "+".join(persons) if persons else None
    return Subject(person, organisation, f"Bundle|{bundle.get('id')}", tuple(persons) if len(persons) > 1 else ())
