"""Validation settings: which layers run, which extension domains are trusted, transfer facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from mappings import systems

#: URL prefixes whose extensions are accepted without a definition (the HL7 validator's
#: "allowed extension domains"): the project's own base, HL7 Sweden, example domains.
DEFAULT_EXTENSION_DOMAINS: tuple[str, ...] = (
    systems.BASE + "/",
    "http://hl7.se/fhir/",
    "https://hl7.se/fhir/",
    "http://electronichealth.se/",
    "https://terminology.hl7.se/",
    "http://example.org/",
    "https://example.org/",
    "http://example.com/",
    "https://example.com/",
    "http://www.example.org/",
    "http://acme.com/",
    "http://acme.org/",
    "http://nema.org/",
)


@dataclass(frozen=True)
class ValidationContext:
    """Settings for one validation run; the defaults are the production settings."""

    #: Layers to run: "base" (R4), "profiles" (carebridge StructureDefinitions), "swedish".
    layers: frozenset[str] = frozenset({"base", "profiles", "swedish"})
    #: Extension URL prefixes accepted without a definition.
    extension_domains: tuple[str, ...] = DEFAULT_EXTENSION_DOMAINS
    #: Report `url`-typed values pointing at example.org / acme.com (the HL7 validator's rule).
    forbid_example_urls: bool = True
    #: Huvudman sending and receiving the payload ("kommun", "region", "annan"); a transfer is
    #: cross-huvudman when both are known and differ. None: read them from the payload.
    sender_huvudman: str | None = None
    receiver_huvudman: str | None = None
    #: Message purpose for data minimisation (a key of the allow-list table); None: derive it
    #: from MessageHeader.eventCoding.
    message_type: str | None = None
    #: Names of Swedish rules to leave out (e.g. for a payload received from outside).
    skip_rules: frozenset[str] = field(default_factory=frozenset)
    #: The day the transfer happens (consent validity); None: today.
    today: date | None = None


DEFAULT = ValidationContext()
