"""Rehabiliteringsplan: the ICF-based rehabilitation plan (assessment, goals, actions, follow-up).

Structure from Socialstyrelsen, Hälso- och sjukvård i hemmet (seed 001 L5063-5115): an
assessment summary (impairments, activity limitations, environmental and personal factors as
resources or obstacles), the person's main goal and sub-goals in their own words, actions (what,
who is responsible, when, scope; care-performed or self-care), follow-up occasions and their
triggers, and the plan's lifecycle as KVÅ events AW020 (create), AW024 (follow up), AW027 (follow
up and revise) and AW035 (close). Training instructions handed to home-care staff
(vardagsrehabilitering) name the granted insats they rest on; closure carries the information
given to the person.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mappings import terminology
from mappings.models.common import BusinessId, Huvudman, LegalDomain, Model, NonEmpty, Organisation, Person, SharingConsent, Staff, table_code
from mappings.models.implementation_plan import (
    ActivityType,
    Frequency,
    InsatsRef,
    requires_insats,
    same_identifier_same_organisation,
    same_identifier_same_staff,
)

#: An ICF category code: component letter and 1-5 digits (b730, d450, e120, s75011).
IcfCode = Annotated[str, Field(pattern=r"^[bsde]\d{1,5}$")]
#: A KVÅ code (klassifikation av vårdåtgärder): two letters and three digits.
KvaCode = Annotated[str, Field(pattern=r"^[A-Z]{2}\d{3}$")]
IcfComponent = table_code("icf-component")
FactorRole = table_code("icf-factor-role")
ActionKind = table_code("rehab-action-kind")
ActionStatus = table_code("rehab-action-status")
FollowUpTrigger = table_code("rehab-followup-trigger")
LifecycleCode = table_code("rehab-lifecycle")
ClosureReason = table_code("rehab-closure-reason")
#: FHIR goal-achievement codes (http://terminology.hl7.org/CodeSystem/goal-achievement).
GoalAchievement = Literal[
    "in-progress", "improving", "worsening", "no-change", "achieved", "sustaining", "not-achieved", "no-progress", "not-attainable"
]
#: The Task statuses a training instruction passes through (FHIR task-status).
InstructionStatus = Literal["requested", "accepted", "rejected", "in-progress", "on-hold", "completed", "cancelled"]

_EVENT_ORDER = {"create": 0, "follow-up": 1, "follow-up-revise": 1, "close": 2}


class Finding(Model):
    """Bedömningsfynd: one result of the assessment, ICF-coded where possible."""

    finding_id: BusinessId
    component: IcfComponent
    icf_code: IcfCode | None = None
    text: NonEmpty
    factor_role: FactorRole | None = Field(default=None, description="resurs or hinder, for environmental and personal factors")
    instrument: NonEmpty | None = Field(default=None, description="bedömningsinstrument, e.g. SPPB, ADL-taxonomin, COPM")
    result: NonEmpty | None = Field(default=None, description="the instrument's result as recorded")

    @model_validator(mode="after")
    def _consistent(self) -> "Finding":
        prefix = terminology.row("icf-component", self.component)["icf_prefix"]
        if self.icf_code is not None and self.icf_code[0] != prefix:
            raise ValueError(f"finding {self.finding_id}: ICF code {self.icf_code} is not a {self.component} code ({prefix or 'uncoded'})")
        factor = self.component in ("omgivningsfaktor", "personfaktor")
        if factor != (self.factor_role is not None):
            raise ValueError(f"finding {self.finding_id}: environmental and personal factors (only) say whether they are a resurs or a hinder")
        return self


class Assessment(Model):
    """Bedömning: the summary of the investigation and assessment."""

    assessed_on: dt.date
    assessed_by: Staff
    summary: NonEmpty
    what_matters: NonEmpty | None = Field(default=None, description="the person's answer to 'Vad är viktigt för dig?'")
    findings: list[Finding] = Field(default_factory=list, json_schema_extra={"xml_item": "finding"})


class RehabGoal(Model):
    """Mål: a main goal (huvudmål) or, with a parent, a sub-goal (delmål), in the person's own words."""

    goal_id: BusinessId
    text: NonEmpty = Field(description="the goal as the person puts it")
    parent_goal_id: BusinessId | None = Field(default=None, description="the main goal of a sub-goal")
    icf_code: IcfCode | None = None
    target_date: dt.date | None = None
    achievement: GoalAchievement | None = None


class RehabAction(Model):
    """Åtgärd: what is done, who is responsible, when and how much; by the care team or as self-care."""

    action_id: BusinessId
    what: NonEmpty
    kind: ActionKind
    status: ActionStatus
    kva_code: KvaCode | None = None
    legal_domain: LegalDomain = "HSL"
    huvudman: Huvudman = Field(description="the public body responsible for the action")
    responsible_staff: Staff | None = None
    responsible_organisation: Organisation | None = None
    start: dt.date
    end: dt.date | None = None
    frequency: Frequency | None = None
    minutes_per_session: int | None = Field(default=None, gt=0, le=1440)
    scope: NonEmpty | None = Field(default=None, description="omfattning in words")
    goal_ids: list[BusinessId] = Field(default_factory=list, json_schema_extra={"xml_item": "goal_id"})

    @model_validator(mode="after")
    def _consistent(self) -> "RehabAction":
        if self.kind == "vard" and not (self.responsible_staff or self.responsible_organisation):
            raise ValueError(f"action {self.action_id}: a care action names who is responsible")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"action {self.action_id}: end {self.end} is before start {self.start}")
        if len(self.goal_ids) != len(set(self.goal_ids)):
            raise ValueError(f"action {self.action_id}: goal_ids must not repeat")
        return self


class FollowUp(Model):
    """Uppföljningstillfälle: a planned or extra occasion to follow the plan up, and what occasions it."""

    followup_id: BusinessId
    planned_on: dt.date
    trigger: FollowUpTrigger
    note: NonEmpty | None = None


class LifecycleEvent(Model):
    """Händelse i planens livscykel, KVÅ-coded: AW020 upprättad, AW024 uppföljd, AW027 uppföljd och reviderad, AW035 avslutad."""

    event_id: BusinessId
    code: LifecycleCode
    date: dt.date
    performed_by: Staff
    followup_id: BusinessId | None = Field(default=None, description="the follow-up occasion this event carries out")
    note: NonEmpty | None = Field(default=None, description="evaluation of actions and goals")


class TrainingInstruction(Model):
    """Träningsinstruktion: an action handed to home-care staff (vardagsrehabilitering, egenvård support)."""

    instruction_id: BusinessId
    action_id: BusinessId
    task_type: ActivityType
    recipient: Organisation = Field(description="the home-care utförare that carries it out")
    instruction: NonEmpty
    basis: InsatsRef | None = Field(default=None, description="the granted insats the task rests on")
    issued_on: dt.date
    status: InstructionStatus
    status_reason: NonEmpty | None = None

    @model_validator(mode="after")
    def _delegable(self) -> "TrainingInstruction":
        if not requires_insats(self.task_type):
            raise ValueError(f"training instruction {self.instruction_id}: task_type {self.task_type} is not a task handed to home care on a granted insats")
        return self


class Closure(Model):
    """Avslut: why the plan closed and what the person was told."""

    reason: ClosureReason
    self_care_advice: NonEmpty = Field(description="what the person can do to keep and develop functions")
    contact_info: NonEmpty = Field(description="where to turn with questions or new needs")


class RehabPlan(Model):
    """Rehabiliteringsplan: one person's ICF-based plan for rehabilitation in the home."""

    kind: Literal["rehab-plan"] = "rehab-plan"
    plan_id: BusinessId
    person: Person
    organisation: Organisation = Field(description="the rehab unit that owns the plan (kommunal rehab or region)")
    huvudman: Huvudman = Field(description="the huvudman responsible for the plan (kommun or region)")
    responsible: Staff = Field(description="planansvarig")
    contact_phone: NonEmpty | None = Field(default=None, description="where the person reaches the team")
    referral_id: BusinessId | None = Field(default=None, description="vårdbegäran or remiss the plan answers")
    start: dt.date
    end: dt.date | None = None
    assessment: Assessment
    goals: list[RehabGoal] = Field(min_length=1, json_schema_extra={"xml_item": "goal"})
    actions: list[RehabAction] = Field(default_factory=list, json_schema_extra={"xml_item": "action"})
    followups: list[FollowUp] = Field(default_factory=list, json_schema_extra={"xml_item": "followup"})
    events: list[LifecycleEvent] = Field(default_factory=list, json_schema_extra={"xml_item": "event"})
    training_instructions: list[TrainingInstruction] = Field(default_factory=list, json_schema_extra={"xml_item": "instruction"})
    closure: Closure | None = None
    samtycke: SharingConsent | None = Field(default=None, description="consent to share the plan with another huvudman")

    @field_validator("events")
    @classmethod
    def _chronological(cls, value: list[LifecycleEvent]) -> list[LifecycleEvent]:
        """Events are kept in date order (create first, close last on a shared day), then by id."""
        return sorted(value, key=lambda e: (e.date, _EVENT_ORDER[lifecycle_event(e.code)], e.event_id))

    @model_validator(mode="after")
    def _consistent(self) -> "RehabPlan":
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        goals = {g.goal_id: g for g in self.goals}
        _unique("goal_id", [g.goal_id for g in self.goals])
        for g in self.goals:
            if g.parent_goal_id is not None:
                parent = goals.get(g.parent_goal_id)
                if parent is None or parent.parent_goal_id is not None:
                    raise ValueError(f"goal {g.goal_id}: parent_goal_id {g.parent_goal_id} is not a main goal of the plan")
        if all(g.parent_goal_id for g in self.goals):
            raise ValueError("a rehab plan has a main goal (a goal without parent_goal_id)")
        actions = _unique("action_id", [a.action_id for a in self.actions])
        for a in self.actions:
            unknown = [g for g in a.goal_ids if g not in goals]
            if unknown:
                raise ValueError(f"action {a.action_id}: unknown goal_ids {', '.join(unknown)}")
        _unique("finding_id", [f.finding_id for f in self.assessment.findings])
        followups = _unique("followup_id", [f.followup_id for f in self.followups])
        _unique("event_id", [e.event_id for e in self.events])
        _unique("instruction_id", [t.instruction_id for t in self.training_instructions])
        for t in self.training_instructions:
            if t.action_id not in actions:
                raise ValueError(f"training instruction {t.instruction_id}: unknown action_id {t.action_id}")
        kinds = [lifecycle_event(e.code) for e in self.events]
        if kinds and kinds[0] != "create" or kinds.count("create") > 1:
            raise ValueError("the plan's lifecycle starts with one AW020 (upprättande)")
        if "close" in kinds and (kinds.count("close") > 1 or kinds[-1] != "close"):
            raise ValueError("AW035 (avslutande) is the plan's last event, and happens once")
        if ("close" in kinds) != (self.closure is not None):
            raise ValueError("a closed plan (AW035) carries closure information, and only a closed plan does")
        for e in self.events:
            if e.followup_id is not None and e.followup_id not in followups:
                raise ValueError(f"event {e.event_id}: unknown followup_id {e.followup_id}")
        same_identifier_same_staff(self.staff())
        same_identifier_same_organisation(self.organisations())
        return self

    @property
    def status(self) -> Literal["draft", "active", "completed"]:
        """The plan's state from its lifecycle: draft before AW020, completed after AW035."""
        kinds = [lifecycle_event(e.code) for e in self.events]
        return "completed" if "close" in kinds else "active" if kinds else "draft"

    def staff(self) -> list[Staff]:
        out = [self.responsible, self.assessment.assessed_by]
        out += [a.responsible_staff for a in self.actions if a.responsible_staff]
        out += [e.performed_by for e in self.events]
        return out

    def organisations(self) -> list[Organisation]:
        out = [self.organisation]
        out += [a.responsible_organisation for a in self.actions if a.responsible_organisation]
        out += [t.recipient for t in self.training_instructions]
        out += self.samtycke.recipients if self.samtycke else []
        return out


def lifecycle_event(code: str) -> str:
    """The lifecycle step of a KVÅ code: create, follow-up, follow-up-revise or close."""
    return terminology.row("rehab-lifecycle", code)["event"]


def _unique(what: str, values: list[str]) -> set[str]:
    if len(values) != len(set(values)):
        raise ValueError(f"{what} must be unique within the plan")
    return set(values)
