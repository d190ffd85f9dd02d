"""Who is calling: an authenticated client acting for exactly one organisation, with its scopes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from mappings import systems
from mappings.identifiers import organisationsnummer_problem

#: Scopes the API knows. A caller needs the scope of what it does; see docs/security.md.
SUBMIT = "documents.write"
READ = "documents.read"
REPLAY = "outbox.replay"
AUDIT = "audit.read"
INBOUND = "inbound.write"
PROTECTED = "protected-identity.read"
METRICS = "metrics.read"
ALL_SCOPES = (SUBMIT, READ, REPLAY, AUDIT, INBOUND, PROTECTED, METRICS)

#: An HSA-id: SE, an organisation number (10 digits, or 12 with the 16 prefix), optionally "-" and a local part.
_HSA_ID = re.compile(r"^SE(\d{2})?\d{10}(-[A-Za-z0-9]{1,40})?$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str  # the token's sub, or the certificate's subject DN
    issuer: str  # the token's iss, or "mtls"
    organisation: str  # HSA-id or organisationsnummer the caller acts for
    scopes: frozenset[str]
    method: Literal["jwt", "mtls"]
    client_id: str | None = None

    def has(self, scope: str) -> bool:
        """True if the caller was granted ``scope``."""
        return scope in self.scopes

    @property
    def key(self) -> str:
        """A stable key for rate limiting and logs."""
        return f"{self.method}|{self.issuer}|{self.subject}"

    @property
    def actor(self) -> str:
        """How operators see this caller in audit trails: client and organisation."""
        return f"{self.client_id or self.subject} ({self.organisation})"


def organisation_problem(value: object) -> str | None:
    """Why ``value`` is not an HSA-id or organisationsnummer, or None if it is one."""
    if not isinstance(value, str) or not value:
        return "the organisation must be a non-empty string"
    if _HSA_ID.match(value):
        return None
    if value.isdigit() and len(value) == 10:
        return organisationsnummer_problem(value)
    return "the organisation is neither an HSA-id (SE + 10 digits [-local]) nor an organisationsnummer"


def organisation_system(value: str) -> str:
    """The identifier system of an organisation value."""
    return systems.ORGANISATIONSNUMMER if value.isdigit() and len(value) == 10 else systems.HSA_ID

