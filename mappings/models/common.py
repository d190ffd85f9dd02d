"""Building blocks shared by every canonical document: person, organisation, staff."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mappings import identifiers, terminology


def _personnummer(value: str) -> str:
    return identifiers.check_personnummer(value)


def _organisationsnummer(value: str) -> str:
    problem = identifiers.organisationsnummer_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def table_code(table_name: str):
    """An annotated str type whose value must be a code of the given terminology table."""

    def check(value: str) -> str:
        if value not in terminology.table(table_name):
            known = ", ".join(terminology.codes(table_name))
            raise ValueError(f"unknown {table_name} code {value!r} (known: {known})")
        return value

    return Annotated[str, AfterValidator(check)]


#: A personnummer or samordningsnummer (12 digits, real date, day + 60 for samordningsnummer, Luhn).
Personnummer = Annotated[str, AfterValidator(_personnummer)]
Organisationsnummer = Annotated[str, AfterValidator(_organisationsnummer)]
NonEmpty = Annotated[str, Field(min_length=1)]
#: A business identifier (decision id, insats id, ...): letters, digits and . _ : / -, at most 64.
BusinessId = Annotated[str, Field(pattern=r"^[\w.:/-]{1,64}$")]
PeriodUnit = Literal["day", "week", "month"]
Huvudman = table_code("huvudman")
LegalDomain = table_code("legal-domain")


class Model(BaseModel):
    """Base of canonical models: unknown fields are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class Address(Model):
    """A postal address (never leaves for a person with skyddad folkbokföring)."""

    line: NonEmpty
    postal_code: NonEmpty | None = None
    city: NonEmpty | None = None


class Person(Model):
    """Den enskilde: the person a document concerns."""

    personnummer: Personnummer
    given_name: NonEmpty | None = None
    family_name: NonEmpty | None = None
    skyddad_folkbokforing: bool = False
    address: Address | None = None
    phone: NonEmpty | None = None


class Organisation(Model):
    """An organisation: kommun, utförare (public or private provider) or regional unit."""

    name: NonEmpty
    hsa_id: NonEmpty | None = None
    organisationsnummer: Organisationsnummer | None = None
    kind: table_code("organisation-kind") | None = None

    @model_validator(mode="after")
    def _has_identifier(self) -> "Organisation":
        if not (self.hsa_id or self.organisationsnummer):
            raise ValueError(f"organisation {self.name!r} needs an hsa_id or an organisationsnummer")
        return self


class Staff(Model):
    """A named member of staff (handläggare, kontaktman) with an HSA-id or a local id."""

    name: NonEmpty
    hsa_id: NonEmpty | None = None
    local_id: NonEmpty | None = None
    title: NonEmpty | None = None

    @model_validator(mode="after")
    def _has_identifier(self) -> "Staff":
        if not (self.hsa_id or self.local_id):
            raise ValueError(f"staff member {self.name!r} needs an hsa_id or a local_id")
        return self


class SharingConsent(Model):
    """Samtycke: the person lets a document be shared with organisations of another huvudman."""

    consent_id: BusinessId
    given_at: dt.date
    valid_to: dt.date | None = None
    recipients: list[Organisation] = Field(min_length=1, description="who may receive the document", json_schema_extra={"xml_item": "organisation"})
    purposes: list[table_code("consent-purpose")] = Field(min_length=1, json_schema_extra={"xml_item": "purpose"})

    @model_validator(mode="after")
    def _consistent(self) -> "SharingConsent":
        if self.valid_to is not None and self.valid_to < self.given_at:
            raise ValueError(f"consent {self.consent_id}: valid_to is before given_at")
        if len(self.purposes) != len(set(self.purposes)):
            raise ValueError(f"consent {self.consent_id}: a purpose is listed twice")
        return self
