"""Biståndsbeslut: the municipal care decision and its insatser."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mappings.models.common import (
    BusinessId,
    Model,
    NonEmpty,
    Organisation,
    PeriodUnit,
    Person,
    SharingConsent,
    Staff,
    table_code,
)

InsatsType = table_code("insats-type")
LegalBasis = table_code("legal-basis")
DecisionKind = Literal["beviljande", "avslag", "andringsbeslut", "avslut"]
StatusReason = table_code("status-reason")
TimeStrictness = table_code("time-strictness")


class HoursVolume(Model):
    """Granted time as hours per period, e.g. 40 hours per month."""

    kind: Literal["hours"] = "hours"
    granted_hours: float = Field(gt=0, le=744)
    per: PeriodUnit


class VisitsVolume(Model):
    """Granted visits per period with minutes per visit, e.g. 2 visits × 30 min per day."""

    kind: Literal["visits"] = "visits"
    visits: int = Field(gt=0, le=1000)
    per: PeriodUnit
    minutes_per_visit: int | None = Field(default=None, gt=0, le=1440)


GrantedVolume = Annotated[HoursVolume | VisitsVolume, Field(discriminator="kind")]


class Goal(Model):
    """Mål: a goal of an insats, in the person's own words."""

    text: NonEmpty
    life_area: NonEmpty | None = Field(default=None, description="IBIC livsområde (need area), if known")


class Insats(Model):
    """Insats: one service granted (or refused) by a decision."""

    insats_id: BusinessId
    type: InsatsType
    local_code: NonEmpty | None = Field(default=None, description="the municipality's own insats code")
    description: NonEmpty | None = None
    purpose: NonEmpty | None = Field(default=None, description="syfte: why the insats is granted")
    goals: list[Goal] = Field(default_factory=list, json_schema_extra={"xml_item": "goal"})
    granted_volume: GrantedVolume | None = None
    time_strictness: TimeStrictness | None = None
    valid_from: dt.date
    valid_to: dt.date | None = None
    performer: Organisation | None = Field(default=None, description="utförare")
    fee_exempt: bool = Field(default=False, description="avgiftsfri")

    @model_validator(mode="after")
    def _period_in_order(self) -> "Insats":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"insats {self.insats_id}: valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class CareDecision(Model):
    """Biståndsbeslut: a municipal decision on one or more insatser for one person."""

    kind: Literal["decision"] = "decision"
    decision_id: BusinessId
    case_number: BusinessId | None = Field(default=None, description="ärendenummer")
    decision_date: dt.date
    decision_kind: DecisionKind
    replaces: BusinessId | None = Field(default=None, description="decision id of the earlier decision this one replaces")
    legal_basis: LegalBasis
    rambeslut: bool = Field(default=False, description="framework decision: content and time set by the utförare")
    status_reason: StatusReason | None = None
    motivation: NonEmpty | None = Field(default=None, description="beslutsmotivering")
    municipality: Organisation
    handlaggare: Staff
    person: Person
    insatser: list[Insats] = Field(min_length=1, json_schema_extra={"xml_item": "insats"})
    samtycke: SharingConsent | None = Field(default=None, description="consent to share the decision with another huvudman")

    @model_validator(mode="after")
    def _consistent(self) -> "CareDecision":  # noqa: C901 - a list of independent checks
        if self.decision_kind == "andringsbeslut" and not self.replaces:
            raise ValueError("an ändringsbeslut must name the decision it replaces (replaces)")
        if self.replaces == self.decision_id:
            raise ValueError("a decision cannot replace itself")
        ids = [i.insats_id for i in self.insatser]
        if len(ids) != len(set(ids)):
            raise ValueError("insats_id must be unique within a decision")
        if self.rambeslut and any(i.granted_volume for i in self.insatser):
            raise ValueError("a rambeslut grants no fixed volume: remove granted_volume")
        recipients = self.samtycke.recipients if self.samtycke else []
        _same_identifier_same_organisation([self.municipality, *(i.performer for i in self.insatser if i.performer), *recipients])
        if self.decision_kind in ("beviljande", "andringsbeslut"):
            missing = [i.insats_id for i in self.insatser if i.performer is None]
            if missing:
                raise ValueError(f"granted insatser need a performer (utförare): {', '.join(missing)}")
        return self


def _same_identifier_same_organisation(orgs: list[Organisation]) -> None:
    """Two organisations with the same identity (HSA-id, else organisationsnummer) must be identical.

    Units of one legal entity share an organisationsnummer and are told apart by their HSA-ids.
    """
    seen: dict[str, Organisation] = {}
    for org in orgs:
        key = org.hsa_id or org.organisationsnummer
        other = seen.setdefault(key, org)
        if other is not org and other != org:  # (an organisation met first is itself)
            raise ValueError(
                f"organisations {other.name!r} and {org.name!r} share identifier {key} but differ; "
                "give each unit its own HSA-id"
            )
