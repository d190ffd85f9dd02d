"""SIP (samordnad individuell plan) and SPU (samordnad plan vid utskrivning): one model, a plan type.

A SIP is drawn up when the person needs both health care and social services, the region or
municipality judges a plan is needed, and the person consents (HSL 16 kap. 4 §, SoL 2 kap. 7 §;
at discharge lag 2017:612 4 kap. 1 §). It states which interventions each huvudman is
responsible for, which someone else carries out, and which huvudman has overall responsibility.

Organisations are listed once, as participants; everything else refers to them by their key
(HSA-id or organisationsnummer), so one organisation can never appear with two spellings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mappings.models.common import (
    BusinessId,
    Huvudman,
    LegalDomain,
    Model,
    NonEmpty,
    Organisation,
    Person,
    Staff,
    table_code,
)

PlanType = table_code("sip-plan-type")
SipStatus = table_code("sip-status")
ParticipantRole = table_code("sip-role")
InterventionStatus = table_code("sip-intervention-status")
DeliveryStatus = table_code("delivery-status")
Effect = table_code("intervention-effect")
InformationCategory = table_code("consent-information")
ConsentPurpose = table_code("consent-purpose")
ConsentStatus = table_code("consent-status")
Relationship = table_code("relative-relationship")
GuardianKind = table_code("guardian-kind")
#: A participant organisation named by its key: its HSA-id, or its organisationsnummer if it has none.
OrgKey = Annotated[str, Field(min_length=1, max_length=64)]

#: Roles an organisation can have (the person, relatives and guardians have their own).
ORGANISATION_ROLES = ("sammankallande", "deltagare")


class Participant(Model):
    """Deltagande organisation: an organisation taking part, on behalf of one huvudman."""

    organisation: Organisation
    huvudman: Huvudman
    role: ParticipantRole = "deltagare"
    lead: bool = Field(default=False, description="huvudman med övergripande ansvar för planen")
    contact: Staff | None = Field(default=None, description="the organisation's contact person in the plan")

    @property
    def keys(self) -> set[str]:
        """Every identifier of the organisation (HSA-id and organisationsnummer)."""
        return {k for k in (self.organisation.hsa_id, self.organisation.organisationsnummer) if k}

    @property
    def key(self) -> str:
        """The preferred key (HSA-id, else organisationsnummer)."""
        return self.organisation.hsa_id or self.organisation.organisationsnummer or ""


class Relative(Model):
    """Närstående: takes part only if the person agrees."""

    name: NonEmpty
    relationship: Relationship
    phone: NonEmpty | None = None


class Guardian(Model):
    """Ställföreträdare (god man or förvaltare): the case is flagged for manual handling."""

    name: NonEmpty
    kind: GuardianKind
    phone: NonEmpty | None = None


class Need(Model):
    """Behov: a need the plan addresses, in plain words."""

    need_id: BusinessId
    text: NonEmpty
    life_area: NonEmpty | None = Field(default=None, description="IBIC livsområde, if known")


class PlanGoal(Model):
    """Mål: the person's own goal for the plan as a whole."""

    text: NonEmpty
    life_area: NonEmpty | None = None


class FollowUp(Model):
    """Uppföljning: was the intervention delivered, and did it have the intended effect?"""

    date: dt.date
    delivered: DeliveryStatus
    effect: Effect | None = None
    note: NonEmpty | None = None


class Intervention(Model):
    """Insats: what one huvudman (or someone else) has undertaken to do."""

    intervention_id: BusinessId
    description: NonEmpty
    huvudman: Huvudman = Field(description="kommun, region, or annan (an intervention by others)")
    legal_domain: LegalDomain | None = Field(default=None, description="HSL, SoL or LSS; none for interventions by others")
    responsible: OrgKey | None = Field(default=None, description="the participant organisation that carries it out")
    performed_by: NonEmpty | None = Field(default=None, description="who carries it out when not an organisation (e.g. a relative)")
    status: InterventionStatus = "planerad"
    need_ids: list[BusinessId] = Field(default_factory=list, json_schema_extra={"xml_item": "need_id"})
    intended_effect: NonEmpty | None = Field(default=None, description="avsedd effekt")
    start: dt.date | None = None
    end: dt.date | None = None
    follow_ups: list[FollowUp] = Field(default_factory=list, json_schema_extra={"xml_item": "follow_up"})

    @model_validator(mode="after")
    def _consistent(self) -> "Intervention":
        if self.huvudman in ("kommun", "region"):
            if not self.responsible:
                raise ValueError(f"intervention {self.intervention_id}: a {self.huvudman} intervention names its responsible organisation")
            if not self.legal_domain:
                raise ValueError(f"intervention {self.intervention_id}: a {self.huvudman} intervention names its legal domain (HSL, SoL, LSS)")
        elif not (self.responsible or self.performed_by):
            raise ValueError(f"intervention {self.intervention_id}: an intervention by others names who carries it out (responsible or performed_by)")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"intervention {self.intervention_id}: end {self.end} is before start {self.start}")
        dates = [f.date for f in self.follow_ups]
        if dates != sorted(dates) or len(dates) != len(set(dates)):
            raise ValueError(f"intervention {self.intervention_id}: follow-ups are listed once per date, oldest first")
        return self


class Consent(Model):
    """Samtycke: the person's consent to the plan, and who may share what with whom."""

    consent_id: BusinessId
    status: ConsentStatus = "givet"
    given_at: dt.date
    given_by: Literal["den-enskilde", "stallforetradare"] = "den-enskilde"
    valid_to: dt.date | None = None
    share_between: list[OrgKey] = Field(min_length=1, description="organisations that may share information with each other", json_schema_extra={"xml_item": "organisation"})
    information: list[InformationCategory] = Field(min_length=1, json_schema_extra={"xml_item": "category"})
    purposes: list[ConsentPurpose] = Field(min_length=1, json_schema_extra={"xml_item": "purpose"})
    relatives_may_take_part: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "Consent":
        if self.valid_to and self.valid_to < self.given_at:
            raise ValueError(f"consent {self.consent_id}: valid_to is before given_at")
        for name in ("share_between", "information", "purposes"):
            values = getattr(self, name)
            if len(values) != len(set(values)):
                raise ValueError(f"consent {self.consent_id}: {name} lists a value twice")
        return self


class CoordinatedPlan(Model):
    """Samordnad individuell plan (SIP), or samordnad plan vid utskrivning (SPU)."""

    kind: Literal["sip"] = "sip"
    plan_id: BusinessId
    plan_type: PlanType
    status: SipStatus = "faststalld"
    title: NonEmpty | None = None
    meeting_date: dt.date = Field(description="the SIP meeting where the plan was agreed")
    next_follow_up: dt.date | None = None
    encounter_id: BusinessId | None = Field(default=None, description="the hospital stay (vårdtillfälle) an SPU belongs to")
    author: OrgKey = Field(description="the participant organisation that documents and sends the plan")
    person: Person
    participants: list[Participant] = Field(min_length=2, json_schema_extra={"xml_item": "participant"})
    relatives: list[Relative] = Field(default_factory=list, json_schema_extra={"xml_item": "relative"})
    guardian: Guardian | None = None
    consent: Consent | None = None
    needs: list[Need] = Field(default_factory=list, json_schema_extra={"xml_item": "need"})
    goals: list[PlanGoal] = Field(default_factory=list, json_schema_extra={"xml_item": "goal"})
    interventions: list[Intervention] = Field(min_length=1, json_schema_extra={"xml_item": "intervention"})

    @property
    def lead(self) -> Participant:
        """The participant whose huvudman has overall responsibility for the plan."""
        return next(p for p in self.participants if p.lead)

    @property
    def needs_manual_handling(self) -> bool:
        """A person with a ställföreträdare: consent and sharing are decided by a person, not the adapter."""
        return self.guardian is not None

    def participant(self, key: str) -> Participant:
        """The participant an OrgKey names."""
        for p in self.participants:
            if key == p.key:
                return p
        raise KeyError(key)

    @model_validator(mode="after")
    def _consistent(self) -> "CoordinatedPlan":
        keys: dict[str, Participant] = {}
        seen: set[str] = set()
        for p in self.participants:
            if p.role not in ORGANISATION_ROLES:
                raise ValueError(f"participant {p.organisation.name!r}: role {p.role!r} is not an organisation role ({', '.join(ORGANISATION_ROLES)})")
            if p.keys & seen:
                raise ValueError(f"organisation {p.key} is listed twice among the participants")
            seen |= p.keys
            keys[p.key] = p

        def check_key(key: str, where: str) -> None:
            if key not in keys:
                other = next((p.key for p in self.participants if key in p.keys), None)
                hint = f"; name it by its HSA-id {other}" if other else ""
                raise ValueError(f"{where} {key} is not a participant's key{hint}")

        contacts: dict[str, Staff] = {}
        for p in self.participants:
            for k in filter(None, (p.contact.hsa_id, p.contact.local_id) if p.contact else ()):
                if contacts.setdefault(k, p.contact) != p.contact:  # type: ignore[arg-type]
                    raise ValueError(f"contact persons {contacts[k].name!r} and {p.contact.name!r} share identifier {k} but differ")  # type: ignore[union-attr]
        leads = [p for p in self.participants if p.lead]
        if len(leads) != 1:
            raise ValueError(f"a plan has exactly one huvudman with overall responsibility (lead); found {len(leads)}")
        if leads[0].huvudman not in ("kommun", "region"):
            raise ValueError("the huvudman with overall responsibility is the kommun or the region")
        huvudman = {p.huvudman for p in self.participants}
        if not {"kommun", "region"} <= huvudman:
            raise ValueError("a coordinated plan involves both the kommun and the region as participants")
        check_key(self.author, "author")
        if self.plan_type == "SPU" and not self.encounter_id:
            raise ValueError("an SPU names the hospital stay it belongs to (encounter_id)")
        if self.next_follow_up and self.next_follow_up < self.meeting_date:
            raise ValueError("next_follow_up is before the meeting date")
        need_ids = [n.need_id for n in self.needs]
        if len(need_ids) != len(set(need_ids)):
            raise ValueError("need_id must be unique within a plan")
        ids = [i.intervention_id for i in self.interventions]
        if len(ids) != len(set(ids)):
            raise ValueError("intervention_id must be unique within a plan")
        for i in self.interventions:
            if i.responsible is not None:
                check_key(i.responsible, f"intervention {i.intervention_id}: responsible")
                if i.huvudman != keys[i.responsible].huvudman:
                    raise ValueError(f"intervention {i.intervention_id}: a {i.huvudman} intervention is carried out by a participant acting for that huvudman")
            unknown = [n for n in i.need_ids if n not in need_ids]
            if unknown:
                raise ValueError(f"intervention {i.intervention_id}: unknown need_ids {', '.join(unknown)}")
        if self.consent is not None:
            for k in self.consent.share_between:
                check_key(k, "consent: share_between")
            if self.consent.given_by == "stallforetradare" and self.guardian is None:
                raise ValueError("consent given by a ställföreträdare needs the guardian to be named")
        if self.relatives and not (self.consent and self.consent.status == "givet" and self.consent.relatives_may_take_part):
            raise ValueError("närstående take part only if the person has consented to it (consent.relatives_may_take_part)")
        return self
