"""Follow-up figures of a genomförandeplan, and the granted-insats check, as pure functions.

Figures (seed 003 L73, seed 000 L463, L700-704; definitions also in docs/flows/implementation-plan.md):

- `same_day_completion`: of the planned contacts, the share done on their planned day, physical
  and digital together (a contact moved within its day and done counts; a switched contact counts
  in the channel it was done in).
- `acknowledgement_rates`: per goal type (måltyp), of the goals due at done contacts, the share
  acknowledged (kvittens). A goal of the activity with no acknowledgement recorded counts as not
  acknowledged.
- `granted_versus_delivered`: per granted insats, the time granted over a period (pro rata per
  day, week or calendar month, within the insats' validity) against the time of the done contacts
  resting on it.

The check `unsupported_home_care_tasks` finds rehab and self-care tasks handed to home care
(vardagsrehabilitering, stöd till egenvård) that rest on no granted insats of a fitting type, for
the handläggare (seed 000 L509-514, requirement 21). Nothing here does I/O: the granted insatser
come in as arguments (see `granted_insatser`).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from mappings import terminology
from mappings.models.decision import CareDecision, HoursVolume, VisitsVolume
from mappings.models.implementation_plan import DeliveryRecord, ImplementationPlan, requires_insats
from mappings.models.rehab_plan import RehabPlan

GRANTING_KINDS = ("beviljande", "andringsbeslut")


def _rate(part: int, whole: int) -> Fraction | None:
    return Fraction(part, whole) if whole else None


def _within(day: dt.date, start: dt.date | None, end: dt.date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)


def _local_date(moment: dt.datetime, like: dt.datetime) -> dt.date:
    """The calendar day of `moment` in the UTC offset of `like` (the planned time)."""
    return moment.astimezone(like.tzinfo).date()


# --- Same-day completion ----------------------------------------------------------------


@dataclass(frozen=True)
class SameDayCompletion:
    """Andel kontakter genomförda samma dag (fysiskt + digitalt), with its parts."""

    contacts: int  # planned contacts in the period (a record replacing a moved one is the same contact)
    done_same_day: int
    physical: int  # of done_same_day: done in a physical channel
    digital: int  # of done_same_day: done in a digital channel
    switched: int  # of done_same_day: done in another channel than planned
    declined: int  # contacts the person declined

    @property
    def rate(self) -> Fraction | None:
        return _rate(self.done_same_day, self.contacts)

    @property
    def rate_excluding_declined(self) -> Fraction | None:
        """The rate over the contacts the person did not decline."""
        return _rate(self.done_same_day, self.contacts - self.declined)


def same_day_completion(plan: ImplementationPlan, start: dt.date | None = None, end: dt.date | None = None) -> SameDayCompletion:
    """Same-day completion over the contacts planned for days in [start, end] (open bounds: all)."""
    replacement = {r.moved_from: r for r in plan.deliveries if r.moved_from}
    contacts = done = physical = digital = switched = declined = 0
    for original in plan.deliveries:
        if original.moved_from is not None or not _within(original.planned_start.date(), start, end):
            continue
        contacts += 1
        declined += original.outcome == "avbojd"
        final = original
        while final.outcome == "flyttad" and final.record_id in replacement:
            final = replacement[final.record_id]
        if final.outcome != "utford" or _local_date(final.actual_start, original.planned_start) != original.planned_start.date():  # type: ignore[arg-type]
            continue
        done += 1
        channel = _channel_used(plan, final)
        if terminology.row("contact-channel", channel)["digital"]:
            digital += 1
        else:
            physical += 1
        switched += channel != plan.activity(original.activity_id).channel
    return SameDayCompletion(contacts, done, physical, digital, switched, declined)


def _channel_used(plan: ImplementationPlan, record: DeliveryRecord) -> str:
    return record.switched_to or plan.activity(record.activity_id).channel


# --- Acknowledgement rate per goal type ---------------------------------------------------


@dataclass(frozen=True)
class AcknowledgementRate:
    """Kvittensgrad för en måltyp: acknowledged goals of the goals due at done contacts."""

    goal_type: str
    due: int
    acknowledged: int

    @property
    def rate(self) -> Fraction | None:
        return _rate(self.acknowledged, self.due)


def acknowledgement_rates(plan: ImplementationPlan, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, AcknowledgementRate]:
    """Acknowledgement rate per goal type over the contacts done on days in [start, end], in table order."""
    due: dict[str, int] = {}
    acked: dict[str, int] = {}
    for record in plan.deliveries:
        if record.outcome != "utford" or not _within(_local_date(record.actual_start, record.planned_start), start, end):  # type: ignore[arg-type]
            continue
        yes = {a.goal_id for a in record.acknowledgements if a.acknowledged}
        for goal_id in plan.activity(record.activity_id).goal_ids:
            goal_type = plan.goal(goal_id).goal_type
            due[goal_type] = due.get(goal_type, 0) + 1
            acked[goal_type] = acked.get(goal_type, 0) + (goal_id in yes)
    return {t: AcknowledgementRate(t, due[t], acked[t]) for t in terminology.codes("plan-goal-type") if t in due}


# --- Granted versus delivered time ----------------------------------------------------------


@dataclass(frozen=True)
class GrantedInsats:
    """Beviljad insats: what a decision granted, as the figures and the check need it."""

    decision_id: str
    insats_id: str
    type: str
    valid_from: dt.date
    valid_to: dt.date | None
    volume: HoursVolume | VisitsVolume | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.decision_id, self.insats_id)


def granted_insatser(decisions: Iterable[CareDecision]) -> list[GrantedInsats]:
    """The insatser granted by these decisions (beviljande, ändringsbeslut).

    A decision replaced by another one of the set (ändringsbeslut or avslut) stops the day before
    the replacing decision's first insats starts (avslut: on its insatser's last day).
    """
    decisions = list(decisions)
    cutoff: dict[str, dt.date] = {}
    for d in decisions:
        if d.replaces is None:
            continue
        if d.decision_kind == "avslut":
            last = min(i.valid_to or i.valid_from for i in d.insatser)
        elif d.decision_kind == "andringsbeslut":
            last = min(i.valid_from for i in d.insatser) - dt.timedelta(days=1)
        else:
            continue
        cutoff[d.replaces] = min(last, cutoff.get(d.replaces, last))
    out = []
    for d in decisions:
        if d.decision_kind not in GRANTING_KINDS:
            continue
        for i in d.insatser:
            end = i.valid_to
            if d.decision_id in cutoff:
                end = cutoff[d.decision_id] if end is None else min(end, cutoff[d.decision_id])
            if end is not None and end < i.valid_from:
                continue
            out.append(GrantedInsats(d.decision_id, i.insats_id, i.type, i.valid_from, end, i.granted_volume))
    return out


@dataclass(frozen=True)
class TimeBalance:
    """Beviljad mot utförd tid för en insats over a period (minutes; contacts for visit volumes)."""

    decision_id: str
    insats_id: str
    granted_minutes: Fraction | None  # None: the decision grants no time (rambeslut, visits without minutes)
    delivered_minutes: Fraction
    granted_contacts: Fraction | None  # visit volumes only
    delivered_contacts: int

    @property
    def delivered_share(self) -> Fraction | None:
        """Delivered time as a share of granted time."""
        return self.delivered_minutes / self.granted_minutes if self.granted_minutes else None


def periods_in(start: dt.date, end: dt.date, per: str) -> Fraction:
    """How many days, weeks or calendar months [start, end] (inclusive) spans, pro rata."""
    if end < start:
        return Fraction(0)
    days = (end - start).days + 1
    if per == "day":
        return Fraction(days)
    if per == "week":
        return Fraction(days, 7)
    total = Fraction(0)
    cursor = start
    while cursor <= end:
        month_days = calendar.monthrange(cursor.year, cursor.month)[1]
        month_end = cursor.replace(day=month_days)
        last = min(end, month_end)
        total += Fraction((last - cursor).days + 1, month_days)
        cursor = last + dt.timedelta(days=1)
    return total


def granted_versus_delivered(
    plan: ImplementationPlan, granted: Iterable[GrantedInsats], start: dt.date, end: dt.date
) -> list[TimeBalance]:
    """Granted against delivered time per insats over [start, end], for the insatser the plan rests on.

    Granted time counts only the days the insats is valid; delivered time is the length of the done
    contacts (actual start to end) on days in the period whose activity rests on the insats.
    """
    by_key: Mapping[tuple[str, str], GrantedInsats] = {g.key: g for g in granted}
    keys: list[tuple[str, str]] = []
    for activity in plan.activities:
        if activity.basis is not None and activity.basis.key not in keys:
            keys.append(activity.basis.key)
    out = []
    for key in keys:
        minutes, contacts = Fraction(0), 0
        for record in plan.deliveries:
            activity = plan.activity(record.activity_id)
            if record.outcome != "utford" or activity.basis is None or activity.basis.key != key:
                continue
            if not _within(_local_date(record.actual_start, record.planned_start), start, end):  # type: ignore[arg-type]
                continue
            minutes += Fraction((record.actual_end - record.actual_start) // dt.timedelta(microseconds=1), 60_000_000)  # type: ignore[operator]
            contacts += 1
        g = by_key.get(key)
        granted_minutes = granted_contacts = None
        if g is not None and g.volume is not None:
            lo, hi = max(start, g.valid_from), end if g.valid_to is None else min(end, g.valid_to)
            units = periods_in(lo, hi, g.volume.per)
            if isinstance(g.volume, HoursVolume):
                granted_minutes = Fraction(str(g.volume.granted_hours)) * 60 * units
            else:
                granted_contacts = g.volume.visits * units
                if g.volume.minutes_per_visit is not None:
                    granted_minutes = granted_contacts * g.volume.minutes_per_visit
        out.append(TimeBalance(key[0], key[1], granted_minutes, minutes, granted_contacts, contacts))
    return out


# --- The granted-insats check ----------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A home-care task without a fitting granted insats, for the handläggare to act on."""

    rule: str  # saknar-beviljad-insats | fel-insatstyp | utanfor-giltighet
    item: str  # "activity:<id>" or "training-instruction:<id>"
    message: str
    recipient: str = "handlaggare"


def unsupported_home_care_tasks(document: ImplementationPlan | RehabPlan, granted: Iterable[GrantedInsats]) -> list[Finding]:
    """Rehab and self-care tasks handed to home care that rest on no fitting granted insats.

    A task of a type whose `requires_insats` (table plan-activity-type) is set must name a granted
    insats (its basis) of one of those types, valid over the task's dates.
    """
    by_key = {g.key: g for g in granted}
    tasks: list[tuple[str, str, object, dt.date, dt.date | None]] = []
    if isinstance(document, ImplementationPlan):
        tasks = [(f"activity:{a.activity_id}", a.activity_type, a.basis, a.valid_from, a.valid_to) for a in document.activities]
    else:
        tasks = [(f"training-instruction:{t.instruction_id}", t.task_type, t.basis, t.issued_on, t.issued_on) for t in document.training_instructions]
    findings = []
    for item, task_type, basis, first, last in tasks:
        needed = requires_insats(task_type)
        if not needed:
            continue
        label = terminology.row("plan-activity-type", task_type)["display"]
        wanted = " or ".join(needed)
        g = by_key.get(basis.key) if basis is not None else None  # type: ignore[attr-defined]
        if g is None:
            named = f" (it names {basis.decision_id}/{basis.insats_id}, which is not granted)" if basis is not None else ""  # type: ignore[attr-defined]
            findings.append(Finding("saknar-beviljad-insats", item, f"{label} is handed to home care without a granted insats of type {wanted}{named}"))
        elif g.type not in needed:
            findings.append(Finding("fel-insatstyp", item, f"{label} rests on {g.decision_id}/{g.insats_id}, a granted {g.type}; it needs a granted {wanted}"))
        elif first < g.valid_from or (g.valid_to is not None and (last is None or last > g.valid_to)):
            findings.append(Finding("utanfor-giltighet", item, f"{label} runs outside the validity of {g.decision_id}/{g.insats_id} ({g.valid_from} to {g.valid_to or 'open'})"))
    return findings
