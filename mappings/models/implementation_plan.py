"""Genomförandeplan: the utförare's implementation plan of granted insatser, and what was delivered.

The plan says how each granted insats is carried out (planned activities: what, how often, in
which time window, in which channel, by which known staff, with the person's preferences); the
delivery records say what happened to each planned contact (done, moved, declined, cancelled,
switched channel on the day) and which goals were acknowledged (kvittens) at the contact.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from mappings import terminology
from mappings.models.common import BusinessId, Huvudman, LegalDomain, Model, NonEmpty, Organisation, PeriodUnit, Person, SharingConsent, Staff, table_code


def _aware(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("a date-time needs a UTC offset (e.g. 2026-03-10T08:00:00+01:00)")
    if offset.total_seconds() % 60:
        raise ValueError("a UTC offset must be whole minutes")
    return value


def _clock(value: dt.time) -> dt.time:
    if value.tzinfo is not None:
        raise ValueError("a clock time in a time window carries no UTC offset")
    return value


#: A date-time with a UTC offset (FHIR dateTime with a time part needs one).
DateTime = Annotated[dt.datetime, AfterValidator(_aware)]
#: A local clock time (hh:mm[:ss]) without offset.
ClockTime = Annotated[dt.time, AfterValidator(_clock)]
#: An insats id as it appears after the decision id in `decision/insats` keys: no slash.
InsatsId = Annotated[str, Field(pattern=r"^[\w.:-]{1,64}$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

Channel = table_code("contact-channel")
ContactOutcome = table_code("contact-outcome")
DeclinedReason = table_code("declined-reason")
ChangeReason = table_code("contact-change-reason")
ActivityType = table_code("plan-activity-type")
GoalType = table_code("plan-goal-type")
PlanStatus = table_code("implementation-plan-status")


class InsatsRef(Model):
    """Grund: the granted insats (decision id + insats id) a planned activity or task rests on."""

    decision_id: BusinessId
    insats_id: InsatsId

    @property
    def key(self) -> tuple[str, str]:
        return (self.decision_id, self.insats_id)


class Frequency(Model):
    """Hur ofta: a number of contacts per period, optionally on given weekdays."""

    times: int = Field(gt=0, le=100)
    per: PeriodUnit
    weekdays: list[Weekday] = Field(default_factory=list, json_schema_extra={"xml_item": "weekday"})

    @field_validator("weekdays")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(value) != len(set(value)):
            raise ValueError("weekdays must not repeat")
        return value


class TimeWindow(Model):
    """Tidsfönster: the earliest start and latest end (local clock time) of a contact."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _ordered(self) -> "TimeWindow":
        if self.end <= self.start:
            raise ValueError(f"time window ends ({self.end}) before it starts ({self.start})")
        return self


class PlanGoal(Model):
    """Mål i genomförandeplanen: a goal in the person's own words, with its goal type (måltyp)."""

    goal_id: BusinessId
    text: NonEmpty = Field(description="the goal as the person puts it")
    goal_type: GoalType
    life_area: NonEmpty | None = Field(default=None, description="IBIC livsområde (need area), if known")


class PlannedActivity(Model):
    """Planerad aktivitet: one line of the plan, resting on a granted insats."""

    activity_id: BusinessId
    activity_type: ActivityType
    description: NonEmpty = Field(description="what is done and how")
    basis: InsatsRef | None = Field(default=None, description="the granted insats this activity rests on")
    legal_domain: LegalDomain = "SoL"
    huvudman: Huvudman = "kommun"
    channel: Channel
    frequency: Frequency
    time_window: TimeWindow | None = None
    minutes_per_contact: int | None = Field(default=None, gt=0, le=1440)
    valid_from: dt.date
    valid_to: dt.date | None = None
    goal_ids: list[BusinessId] = Field(default_factory=list, json_schema_extra={"xml_item": "goal_id"})
    known_staff: list[Staff] = Field(default_factory=list, json_schema_extra={"xml_item": "staff"})
    preferences: list[NonEmpty] = Field(default_factory=list, json_schema_extra={"xml_item": "preference"})

    @model_validator(mode="after")
    def _period_in_order(self) -> "PlannedActivity":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"activity {self.activity_id}: valid_to {self.valid_to} is before valid_from {self.valid_from}")
        if len(self.goal_ids) != len(set(self.goal_ids)):
            raise ValueError(f"activity {self.activity_id}: goal_ids must not repeat")
        return self


class GoalAcknowledgement(Model):
    """Kvittens: whether a goal of the activity was confirmed at the contact."""

    goal_id: BusinessId
    acknowledged: bool
    note: NonEmpty | None = None


class DeliveryRecord(Model):
    """Besöksregistrering: what happened to one planned contact."""

    record_id: BusinessId
    activity_id: BusinessId
    planned_start: DateTime
    outcome: ContactOutcome
    actual_start: DateTime | None = None
    actual_end: DateTime | None = None
    performed_by: Staff | None = None
    switched_to: Channel | None = Field(default=None, description="channel the contact switched to on the day")
    switch_reason: ChangeReason | None = None
    declined_reason: DeclinedReason | None = None
    risk_note: NonEmpty | None = Field(default=None, description="risk judgement when a contact is declined")
    change_reason: ChangeReason | None = Field(default=None, description="why a contact was moved or cancelled")
    moved_to: DateTime | None = Field(default=None, description="the new time of a moved contact")
    moved_from: BusinessId | None = Field(default=None, description="record id of the moved contact this one replaces")
    acknowledgements: list[GoalAcknowledgement] = Field(default_factory=list, json_schema_extra={"xml_item": "acknowledgement"})
    narrative: NonEmpty | None = Field(default=None, description="free text beside the structured record")

    @model_validator(mode="after")
    def _consistent(self) -> "DeliveryRecord":
        rid, done = self.record_id, self.outcome == "utford"
        if done != (self.actual_start is not None and self.actual_end is not None):
            raise ValueError(f"record {rid}: a done contact (utford) has actual_start and actual_end, other outcomes have neither")
        if done and self.actual_end < self.actual_start:  # type: ignore[operator]
            raise ValueError(f"record {rid}: actual_end is before actual_start")
        if not done and (self.acknowledgements or self.actual_start or self.actual_end):
            raise ValueError(f"record {rid}: only a done contact has actual times and acknowledgements")
        if (self.outcome == "avbojd") != (self.declined_reason is not None):
            raise ValueError(f"record {rid}: a declined contact (avbojd) needs declined_reason; other outcomes have none")
        if self.risk_note and self.outcome != "avbojd":
            raise ValueError(f"record {rid}: risk_note belongs to a declined contact")
        if self.outcome == "installd" and self.change_reason is None:
            raise ValueError(f"record {rid}: a cancelled contact (installd) needs change_reason")
        if self.change_reason and self.outcome not in ("flyttad", "installd"):
            raise ValueError(f"record {rid}: change_reason belongs to a moved or cancelled contact")
        if (self.outcome == "flyttad") != (self.moved_to is not None):
            raise ValueError(f"record {rid}: a moved contact (flyttad) needs moved_to; other outcomes have none")
        if (self.switched_to is None) != (self.switch_reason is None):
            raise ValueError(f"record {rid}: a channel switch needs both switched_to and switch_reason")
        if self.moved_from == rid:
            raise ValueError(f"record {rid}: a record cannot replace itself")
        goals = [a.goal_id for a in self.acknowledgements]
        if len(goals) != len(set(goals)):
            raise ValueError(f"record {rid}: one acknowledgement per goal")
        return self


class ImplementationPlan(Model):
    """Genomförandeplan: how the utförare carries out one person's granted insatser, and what was delivered."""

    kind: Literal["implementation-plan"] = "implementation-plan"
    plan_id: BusinessId
    status: PlanStatus
    established: dt.date = Field(description="upprättad: the date the plan was drawn up with the person")
    valid_from: dt.date
    valid_to: dt.date | None = None
    person: Person
    utforare: Organisation
    author: Staff | None = Field(default=None, description="who drew up the plan with the person")
    fast_omsorgskontakt: Staff | None = None
    narrative: NonEmpty | None = Field(default=None, description="free-text description of the plan")
    preferences: list[NonEmpty] = Field(default_factory=list, json_schema_extra={"xml_item": "preference"})
    goals: list[PlanGoal] = Field(default_factory=list, json_schema_extra={"xml_item": "goal"})
    activities: list[PlannedActivity] = Field(min_length=1, json_schema_extra={"xml_item": "activity"})
    deliveries: list[DeliveryRecord] = Field(default_factory=list, json_schema_extra={"xml_item": "delivery"})
    samtycke: SharingConsent | None = Field(default=None, description="consent to share the plan with another huvudman")

    @field_validator("deliveries")
    @classmethod
    def _chronological(cls, value: list[DeliveryRecord]) -> list[DeliveryRecord]:
        """Delivery records are kept in order of planned start, then record id (the canonical order)."""
        return sorted(value, key=lambda r: (r.planned_start, r.record_id))

    @model_validator(mode="after")
    def _consistent(self) -> "ImplementationPlan":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        goals = _unique("goal_id", [g.goal_id for g in self.goals])
        activities = {a.activity_id: a for a in self.activities}
        _unique("activity_id", [a.activity_id for a in self.activities])
        for a in self.activities:
            unknown = [g for g in a.goal_ids if g not in goals]
            if unknown:
                raise ValueError(f"activity {a.activity_id}: unknown goal_ids {', '.join(unknown)}")
        records = {r.record_id: r for r in self.deliveries}
        _unique("record_id", [r.record_id for r in self.deliveries])
        replaced: set[str] = set()
        for r in self.deliveries:
            activity = activities.get(r.activity_id)
            if activity is None:
                raise ValueError(f"record {r.record_id}: unknown activity_id {r.activity_id}")
            if r.switched_to == activity.channel:
                raise ValueError(f"record {r.record_id}: switched_to equals the planned channel {activity.channel}")
            stray = [a.goal_id for a in r.acknowledgements if a.goal_id not in activity.goal_ids]
            if stray:
                raise ValueError(f"record {r.record_id}: acknowledged goals {', '.join(stray)} are not goals of activity {activity.activity_id}")
            if r.moved_from is not None:
                original = records.get(r.moved_from)
                if original is None or original.outcome != "flyttad":
                    raise ValueError(f"record {r.record_id}: moved_from {r.moved_from} is not a moved (flyttad) record")
                if original.activity_id != r.activity_id or r.moved_from in replaced:
                    raise ValueError(f"record {r.record_id}: moved_from {r.moved_from} is replaced twice or by another activity")
                replaced.add(r.moved_from)
        same_identifier_same_staff(self.staff())
        same_identifier_same_organisation([self.utforare, *(self.samtycke.recipients if self.samtycke else [])])
        return self

    def staff(self) -> list[Staff]:
        """Every named member of staff in the plan, in document order."""
        out = [s for s in (self.author, self.fast_omsorgskontakt) if s]
        out += [s for a in self.activities for s in a.known_staff]
        out += [r.performed_by for r in self.deliveries if r.performed_by]
        return out

    def activity(self, activity_id: str) -> PlannedActivity:
        return next(a for a in self.activities if a.activity_id == activity_id)

    def goal(self, goal_id: str) -> PlanGoal:
        return next(g for g in self.goals if g.goal_id == goal_id)


def _unique(what: str, values: list[str]) -> set[str]:
    if len(values) != len(set(values)):
        raise ValueError(f"{what} must be unique within the plan")
    return set(values)


def same_identifier_same_staff(people: list[Staff]) -> None:
    """Two staff entries that share an HSA-id or local id must be identical (one Practitioner each)."""
    seen: dict[str, Staff] = {}
    for person in people:
        for key in filter(None, (person.hsa_id and "hsa:" + person.hsa_id, person.local_id and "local:" + person.local_id)):
            other = seen.setdefault(key, person)
            if other != person:
                raise ValueError(f"staff {other.name!r} and {person.name!r} share identifier {key.split(':', 1)[1]} but differ")


def requires_insats(activity_type: str) -> tuple[str, ...]:
    """The insats types of which one must be granted before home care may carry out this activity type."""
    return tuple(terminology.row("plan-activity-type", activity_type)["requires_insats"] or ())


def same_identifier_same_organisation(orgs: list[Organisation]) -> None:
    """Two organisations that share an HSA-id or organisationsnummer must be identical (one Organization each)."""
    seen: dict[str, Organisation] = {}
    for org in orgs:
        for key in filter(None, (org.hsa_id, org.organisationsnummer)):
            other = seen.setdefault(key, org)
            if other != org:
                raise ValueError(f"organisations {other.name!r} and {org.name!r} share identifier {key} but differ")
