"""Follow-up figures and the granted-insats check, on hand-computed cases (figures worked out in the comments)."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest

from mappings import followup
from mappings.models.decision import CareDecision, HoursVolume, VisitsVolume
from mappings.models.implementation_plan import ImplementationPlan
from mappings.models.rehab_plan import RehabPlan

REPO = Path(__file__).resolve().parents[2]
D = dt.date


def plan(name: str) -> ImplementationPlan:
    return ImplementationPlan.model_validate_json((REPO / "fixtures" / "implementation-plan" / name).read_text("utf-8"))


def rehab(name: str) -> RehabPlan:
    return RehabPlan.model_validate_json((REPO / "fixtures" / "rehab-plan" / name).read_text("utf-8"))


def decisions() -> list[CareDecision]:
    return [CareDecision.model_validate_json(p.read_text("utf-8")) for p in sorted((REPO / "fixtures" / "decision").glob("*.json"))]


# --- Same-day completion ---------------------------------------------------------------------


def test_same_day_completion_astrid_week() -> None:
    # 15 records, r11 replaces the moved r08, so 14 planned contacts. Done on the planned day:
    # Mon r01 r02 r03, Tue r04 r05 r06, Wed r07 r09, Thu r10 r12 r13 = 11 (r08 was done on Thursday).
    # Physical: r01 r02 r04 r05 r07 r10 r12 = 7; digital (video): r03 r06 r09 r13 = 4. Declined: r14.
    figure = followup.same_day_completion(plan("astrid-hemtjanst-vecka.json"))
    assert figure == followup.SameDayCompletion(contacts=14, done_same_day=11, physical=7, digital=4, switched=0, declined=1)
    assert figure.rate == Fraction(11, 14)
    assert figure.rate_excluding_declined == Fraction(11, 13)


def test_same_day_completion_counts_a_switched_contact_in_its_new_channel() -> None:
    # 9 contacts; k01-k08 done on their day, k09 declined. k05 (planned physical) was done by video.
    figure = followup.same_day_completion(plan("elsa-trygg-hemgang.json"))
    assert figure == followup.SameDayCompletion(contacts=9, done_same_day=8, physical=5, digital=3, switched=1, declined=1)
    assert figure.rate == Fraction(8, 9)


def test_same_day_completion_a_contact_moved_to_another_day_is_not_same_day() -> None:
    # d01..d05 are the 5 planned deliveries (d06 replaces the moved d04). Same day: d01, d05.
    # d04 (Thursday, a public holiday) was delivered on Friday by d06: not the same day.
    figure = followup.same_day_completion(plan("mikael-matdistribution.json"))
    assert (figure.contacts, figure.done_same_day, figure.declined) == (5, 2, 2)
    assert figure.rate == Fraction(2, 5) and figure.rate_excluding_declined == Fraction(2, 3)


def test_same_day_completion_a_contact_moved_within_its_day_and_done_counts() -> None:
    p = plan("mikael-matdistribution.json")
    data = p.model_dump()
    moved = next(r for r in data["deliveries"] if r["record_id"] == "d04")
    moved["moved_to"] = dt.datetime(2026, 5, 14, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    replacement = next(r for r in data["deliveries"] if r["record_id"] == "d06")
    tz = dt.timezone(dt.timedelta(hours=2))
    replacement.update(planned_start=dt.datetime(2026, 5, 14, 15, 0, tzinfo=tz), actual_start=dt.datetime(2026, 5, 14, 15, 5, tzinfo=tz), actual_end=dt.datetime(2026, 5, 14, 15, 9, tzinfo=tz))
    figure = followup.same_day_completion(ImplementationPlan.model_validate(data))
    assert (figure.contacts, figure.done_same_day) == (5, 3)


def test_same_day_completion_period_bounds_and_empty() -> None:
    p = plan("astrid-hemtjanst-vecka.json")
    # Tuesday 17 March only: r04 r05 r06, all done.
    assert followup.same_day_completion(p, D(2026, 3, 17), D(2026, 3, 17)) == followup.SameDayCompletion(3, 3, 2, 1, 0, 0)
    empty = followup.same_day_completion(p, D(2026, 4, 1), D(2026, 4, 30))
    assert empty.contacts == 0 and empty.rate is None


def test_same_day_uses_the_planned_offset_for_the_day() -> None:
    # A contact planned 23:30+01:00 and done 00:10+01:00 the next day is not same-day, even though
    # in UTC both are on the same date (22:30Z and 23:10Z).
    p = plan("mikael-matdistribution.json").model_dump()
    tz = dt.timezone(dt.timedelta(hours=1))
    p["deliveries"] = [
        {"record_id": "x", "activity_id": "a1", "planned_start": dt.datetime(2026, 5, 11, 23, 30, tzinfo=tz), "outcome": "utford",
         "actual_start": dt.datetime(2026, 5, 12, 0, 10, tzinfo=tz), "actual_end": dt.datetime(2026, 5, 12, 0, 15, tzinfo=tz)}
    ]
    assert followup.same_day_completion(ImplementationPlan.model_validate(p)).done_same_day == 0


# --- Acknowledgement rate per goal type ----------------------------------------------------------


def test_acknowledgement_rates_astrid_week() -> None:
    # Goals due at done contacts, per goal type:
    #   fallprevention   (g2 at a1): r01 r04 r07 r10 -> 4 of 4
    #   fysisk-aktivitet (g6 at a5): r02 r11 -> 2 of 2
    #   social-samvaro   (g3 at a3): r03 r06 r09 r13 -> 4 of 4
    #   lakemedel        (g4 at a3): r03 yes, r06 no, r09 yes, r13 not recorded -> 2 of 4
    #   personlig-hygien (g1 at a2): r05 -> 1 of 1; hemmets-skotsel (g5 at a4): r12 -> 1 of 1
    rates = followup.acknowledgement_rates(plan("astrid-hemtjanst-vecka.json"))
    assert {t: (r.due, r.acknowledged) for t, r in rates.items()} == {
        "lakemedel": (4, 2),
        "personlig-hygien": (1, 1),
        "fysisk-aktivitet": (2, 2),
        "fallprevention": (4, 4),
        "social-samvaro": (4, 4),
        "hemmets-skotsel": (1, 1),
    }
    assert list(rates) == ["lakemedel", "personlig-hygien", "fysisk-aktivitet", "fallprevention", "social-samvaro", "hemmets-skotsel"]
    assert rates["lakemedel"].rate == Fraction(1, 2)


def test_acknowledgement_rates_elsa_and_mikael() -> None:
    # Elsa: trygghet (g1, at every done contact k01-k08) 8/8; maltid (g2 at a1: k01 no, k04, k07) 2/3;
    # lakemedel (g3 at a1) 3/3; lageskoll (g4 at a3: k03, k06; k09 declined, not due) 2/2.
    rates = followup.acknowledgement_rates(plan("elsa-trygg-hemgang.json"))
    assert {t: (r.due, r.acknowledged) for t, r in rates.items()} == {"lakemedel": (3, 3), "maltid": (3, 2), "lageskoll": (2, 2), "trygghet": (8, 8)}
    # Mikael: maltid at d01 (yes), d05 (yes), d06 (no) -> 2/3
    assert followup.acknowledgement_rates(plan("mikael-matdistribution.json"))["maltid"].rate == Fraction(2, 3)
    # only Tuesday 2 June: k01 (g2 no), k02, k03
    tuesday = followup.acknowledgement_rates(plan("elsa-trygg-hemgang.json"), D(2026, 6, 2), D(2026, 6, 2))
    assert {t: (r.due, r.acknowledged) for t, r in tuesday.items()} == {"lakemedel": (1, 1), "maltid": (1, 0), "lageskoll": (1, 1), "trygghet": (3, 3)}


# --- Granted versus delivered time ------------------------------------------------------------


def test_periods_in_pro_rata() -> None:
    assert followup.periods_in(D(2026, 3, 1), D(2026, 3, 31), "month") == 1
    assert followup.periods_in(D(2026, 1, 30), D(2026, 2, 2), "month") == Fraction(2, 31) + Fraction(2, 28)
    assert followup.periods_in(D(2026, 3, 16), D(2026, 3, 22), "week") == 1
    assert followup.periods_in(D(2026, 3, 16), D(2026, 3, 19), "week") == Fraction(4, 7)
    assert followup.periods_in(D(2026, 3, 16), D(2026, 3, 19), "day") == 4
    assert followup.periods_in(D(2026, 3, 19), D(2026, 3, 16), "day") == 0


def test_granted_insatser_from_decisions_cut_by_later_decisions() -> None:
    granted = {g.key: g for g in followup.granted_insatser(decisions())}
    # HAN-2026-0412 (valid to 30 Sep) is replaced by the ändringsbeslut HAN-2026-0901 from 13 July
    assert granted[("HAN-2026-0412", "1")].valid_to == D(2026, 7, 12)
    assert granted[("HAN-2026-0901", "1")].valid_from == D(2026, 7, 13)
    # the trygghetslarm HAN-2026-0519 (open-ended) is ended by the avslut HAN-2026-1010 on 5 Oct
    assert granted[("HAN-2026-0519", "1")].valid_to == D(2026, 10, 5)
    # refusals and terminations grant nothing
    assert ("HAN-2026-0955", "1") not in granted and ("HAN-2026-1010", "1") not in granted
    assert granted[("SDT-2026-2315", "1")].volume is None  # rambeslut


def test_granted_versus_delivered_astrid_week() -> None:
    # 16-20 March = 5 of March's 31 days.
    # Insats 1, 28 h/month: 28 * 60 * 5/31 = 8400/31 min (≈ 271). Delivered on a1, a2, a3, a5:
    #   r01 32 + r02 22 + r03 17 + r04 32 + r05 32 + r06 18 + r07 34 + r09 16 + r10 31 + r11 22 + r13 16 = 272 min, 11 contacts.
    # Insats 2, 12 h/month: 12 * 60 * 5/31 = 3600/31 min (≈ 116). Delivered: r12 96 min.
    balances = followup.granted_versus_delivered(plan("astrid-hemtjanst-vecka.json"), followup.granted_insatser(decisions()), D(2026, 3, 16), D(2026, 3, 20))
    one, two = balances
    assert (one.decision_id, one.insats_id, one.granted_minutes, one.delivered_minutes, one.delivered_contacts) == ("HAN-2026-0412", "1", Fraction(8400, 31), 272, 11)
    assert one.granted_contacts is None
    assert (two.insats_id, two.granted_minutes, two.delivered_minutes, two.delivered_contacts) == ("2", Fraction(3600, 31), 96, 1)
    assert two.delivered_share == Fraction(96 * 31, 3600)


def test_granted_versus_delivered_visits_and_framework_decisions() -> None:
    # Mikael: 5 deliveries per week granted, no minutes per visit; the week 11-17 May grants 5 contacts.
    # Delivered: d01 4 min, d05 5 min, d06 5 min = 14 min, 3 contacts.
    (mat,) = followup.granted_versus_delivered(plan("mikael-matdistribution.json"), followup.granted_insatser(decisions()), D(2026, 5, 11), D(2026, 5, 17))
    assert (mat.granted_contacts, mat.granted_minutes, mat.delivered_minutes, mat.delivered_contacts) == (5, None, 14, 3)
    assert mat.delivered_share is None
    # Elsa: Trygg hemgång is a rambeslut (no granted time). Delivered 2-4 June: 48+20+14+45+12+12+39+18 = 208 min.
    (tsh,) = followup.granted_versus_delivered(plan("elsa-trygg-hemgang.json"), followup.granted_insatser(decisions()), D(2026, 6, 2), D(2026, 6, 4))
    assert (tsh.granted_minutes, tsh.granted_contacts, tsh.delivered_minutes, tsh.delivered_contacts) == (None, None, 208, 8)


def test_granted_versus_delivered_counts_only_valid_days_and_known_minutes() -> None:
    # 2 visits × 30 min per day, valid only from 10 March: over 1-11 March, 2 valid days -> 4 visits, 120 min.
    granted = [followup.GrantedInsats("HAN-2026-0412", "1", "hemtjanst-omvardnad", D(2026, 3, 10), None, VisitsVolume(visits=2, per="day", minutes_per_visit=30))]
    (one, two) = followup.granted_versus_delivered(plan("astrid-hemtjanst-vecka.json"), granted, D(2026, 3, 1), D(2026, 3, 11))
    assert (one.granted_contacts, one.granted_minutes, one.delivered_minutes) == (4, 120, 0)
    assert two.granted_minutes is None  # insats 2 not among the granted ones given
    hours = [followup.GrantedInsats("HAN-2026-0412", "1", "hemtjanst-omvardnad", D(2026, 3, 1), D(2026, 3, 31), HoursVolume(granted_hours=7.5, per="week"))]
    (one, _) = followup.granted_versus_delivered(plan("astrid-hemtjanst-vecka.json"), hours, D(2026, 3, 16), D(2026, 3, 22))
    assert one.granted_minutes == 450


# --- Rehab and self-care tasks must rest on a granted insats ---------------------------------------


def test_vardagsrehabilitering_on_an_omvardnad_insats_is_flagged_to_the_handlaggare() -> None:
    findings = followup.unsupported_home_care_tasks(plan("astrid-hemtjanst-vecka.json"), followup.granted_insatser(decisions()))
    assert [(f.rule, f.item, f.recipient) for f in findings] == [("fel-insatstyp", "activity:a5", "handlaggare")]
    assert "HAN-2026-0412/1" in findings[0].message and "vardagsrehabilitering" in findings[0].message
    assert "193802142384" not in findings[0].message


def test_training_instruction_without_a_granted_insats_is_flagged() -> None:
    findings = followup.unsupported_home_care_tasks(rehab("astrid-primarvardsrehab-hoft.json"), followup.granted_insatser(decisions()))
    assert [(f.rule, f.item) for f in findings] == [("saknar-beviljad-insats", "training-instruction:t1")]


def test_tasks_resting_on_a_fitting_granted_insats_pass() -> None:
    granted = followup.granted_insatser(decisions())
    assert followup.unsupported_home_care_tasks(rehab("elsa-trygg-hemgang-rehab.json"), granted) == []  # Trygg hemgång covers it
    for name in ("elsa-trygg-hemgang.json", "mikael-matdistribution.json"):
        assert followup.unsupported_home_care_tasks(plan(name), granted) == []
    assert followup.unsupported_home_care_tasks(rehab("gustav-fallprevention.json"), granted) == []


@pytest.mark.parametrize(
    ("granted", "rule"),
    [
        ([], "saknar-beviljad-insats"),
        ([followup.GrantedInsats("HAN-2026-0412", "1", "vardagsrehabilitering", D(2026, 3, 1), D(2026, 4, 30), None)], "utanfor-giltighet"),
        ([followup.GrantedInsats("HAN-2026-0412", "1", "vardagsrehabilitering", D(2026, 3, 20), None, None)], "utanfor-giltighet"),
        ([followup.GrantedInsats("HAN-2026-0412", "1", "vardagsrehabilitering", D(2026, 3, 1), None, None)], None),
        ([followup.GrantedInsats("HAN-2026-0412", "1", "egenvard-stod", D(2026, 3, 1), None, None)], "fel-insatstyp"),
    ],
)
def test_granted_insats_check_rules(granted, rule) -> None:
    # activity a5 (vardagsrehabilitering) runs 16 March - 31 May on HAN-2026-0412/1
    findings = followup.unsupported_home_care_tasks(plan("astrid-hemtjanst-vecka.json"), granted)
    assert [f.rule for f in findings] == ([rule] if rule else [])
