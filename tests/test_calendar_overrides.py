"""The pure side of published schedules: a country-year override in the calendar, each year's status,
provisional deadlines in the clock, and frozen outcomes (freeze / resolved_state)."""
import copy
import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib.core.calendar import BusinessCalendar
from chalicelib.core.clock import (
    FIRST_RESPONSE,
    PROGRESS_UPDATE,
    RESOLUTION,
    Event,
    RequestFacts,
    evaluate,
    freeze,
    replay,
    resolved_state,
)
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT, ILLUSTRATIVE_CN_2027

SH = ZoneInfo("Asia/Shanghai")
OVERRIDE_2027 = {2027: (frozenset(map(date.fromisoformat, ILLUSTRATIVE_CN_2027["holidays"])),
                        frozenset(map(date.fromisoformat, ILLUSTRATIVE_CN_2027["workdays"])))}


def at(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SH)


def calendar(config=None, overrides=None):
    return BusinessCalendar.from_config(config, timezone="Asia/Shanghai", overrides=overrides)


# --- the calendar ----------------------------------------------------------------------------------


def test_an_override_replaces_the_packaged_days_of_its_year_only():
    package, published = calendar(), calendar(overrides=OVERRIDE_2027)
    assert not package.is_working_day(date(2027, 2, 5)) and published.is_working_day(date(2027, 2, 5))
    assert package.is_working_day(date(2027, 2, 11)) and not published.is_working_day(date(2027, 2, 11))
    assert not package.is_working_day(date(2027, 2, 20)) and published.is_working_day(date(2027, 2, 20))
    assert published.is_working_day(date(2026, 2, 14))  # 2026 keeps the package's make-up Saturday
    assert package.add(at("2027-02-04 16:00"), 120) == at("2027-02-11 10:00")
    assert published.add(at("2027-02-04 16:00"), 120) == at("2027-02-05 10:00")


def test_the_contracts_own_extra_days_win_over_an_override():
    published = calendar({"extra_workdays": ["2027-02-08"], "extra_holidays": ["2027-02-20"]}, OVERRIDE_2027)
    assert published.is_working_day(date(2027, 2, 8)) and not published.is_working_day(date(2027, 2, 20))
    assert published.is_working_day(date(2027, 2, 5))


def test_without_a_country_overrides_do_not_apply():
    own = calendar({"holidays": None}, OVERRIDE_2027)
    assert own.is_working_day(date(2027, 2, 11)) and not own.is_working_day(date(2027, 2, 20))
    assert own is calendar({"holidays": None})
    assert own.year_status(2027) == "official"


def test_calendars_are_shared_by_equal_contents_and_never_by_different_ones():
    assert calendar(overrides=OVERRIDE_2027) is calendar(overrides=copy.deepcopy(OVERRIDE_2027))
    assert calendar(overrides=OVERRIDE_2027) is not calendar()
    changed = {2027: (OVERRIDE_2027[2027][0] - {date(2027, 2, 12)}, OVERRIDE_2027[2027][1])}
    assert calendar(overrides=changed) is not calendar(overrides=OVERRIDE_2027)
    assert calendar(overrides=changed).is_working_day(date(2027, 2, 12))


def test_each_year_is_official_when_published_or_carried_by_the_package_else_estimated():
    package, published = calendar(), calendar(overrides=OVERRIDE_2027)
    assert [package.year_status(y) for y in (2001, 2026, 2027, 2028)] == [
        "official", "official", "estimated", "estimated"]
    assert [published.year_status(y) for y in (2026, 2027, 2028)] == ["official", "official", "estimated"]
    assert package.touches_estimated_year(at("2026-12-31 16:00"), at("2027-01-04 10:00"))
    assert not package.touches_estimated_year(at("2026-01-05 10:00"), at("2026-12-31 16:00"))
    assert not published.touches_estimated_year(at("2026-12-31 16:00"), at("2027-12-31 10:00"))


@pytest.mark.parametrize("day, kind", [
    ("2026-11-23", "workday"), ("2026-11-28", "weekend"), ("2026-10-01", "holiday"), ("2026-10-03", "holiday"),
    ("2026-02-14", "makeup_workday"), ("2026-06-01", "holiday"),
])
def test_every_day_has_a_kind(day, kind):
    assert calendar({"extra_holidays": ["2026-06-01"]}).day_kind(date.fromisoformat(day)) == kind


# --- provisional deadlines -------------------------------------------------------------------------


def run(priority, received, overrides=None, **contract):
    policy = parse_contract({**copy.deepcopy(DEMO_CONTRACT), **contract}, version=1, overrides=overrides)[1]
    facts = RequestFacts(priority=priority, designated=True, received_at=at(received))
    return evaluate(policy, facts, [Event(1, "received", at(received))], at(received))


def test_a_deadline_computed_over_an_estimated_year_is_provisional_until_the_year_is_published():
    state = run("low", "2026-12-30 10:00")  # 8 business hours, then 5 working days into 2027
    assert not state.metrics[FIRST_RESPONSE].provisional and state.metrics[RESOLUTION].provisional
    published = run("low", "2026-12-30 10:00", OVERRIDE_2027)
    assert not published.metrics[RESOLUTION].provisional


def test_a_wall_clock_target_does_not_depend_on_holidays_but_working_days_do():
    priorities = {"urgent": {"first_response": "30m", "resolution": "2wd", "progress_every": "1h", "clock": "24x7"}}
    state = run("urgent", "2026-12-31 23:50", priorities=priorities)
    assert state.metrics[FIRST_RESPONSE].due_at == at("2027-01-01 00:20")
    assert not state.metrics[FIRST_RESPONSE].provisional
    assert state.metrics[RESOLUTION].provisional


# --- frozen outcomes -------------------------------------------------------------------------------


def test_a_state_survives_freezing_through_json_exactly():
    policy = parse_contract(copy.deepcopy(DEMO_CONTRACT), version=3)[1]
    received = at("2026-11-23 10:00")
    events = [Event(1, "received", received), Event(2, "respond", at("2026-11-23 13:00")),
              Event(3, "await_customer", at("2026-11-24 10:00")), Event(4, "customer_reply", at("2026-11-25 10:00")),
              Event(5, "resolve", at("2026-11-30 10:00")), Event(6, "rate", at("2026-11-30 11:00"), score=4)]
    facts = RequestFacts(priority="high", designated=True, received_at=received)
    state = evaluate(policy, facts, events, at("2026-12-01 10:00"))
    assert state.metrics[PROGRESS_UPDATE].misses and state.penalty and state.milestones and state.ratings
    stored = json.loads(json.dumps(freeze(state)))
    timeline = replay(facts, events)
    assert resolved_state(stored, timeline) == state
    assert freeze(resolved_state(stored, timeline)) == stored


def test_a_resolved_state_keeps_its_outcome_and_takes_later_ratings_from_the_timeline():
    policy = parse_contract(copy.deepcopy(DEMO_CONTRACT), version=1)[1]
    received = at("2026-11-23 10:00")
    events = [Event(1, "received", received), Event(2, "resolve", at("2026-11-24 10:00"))]
    facts = RequestFacts(priority="high", designated=True, received_at=received)
    frozen = freeze(evaluate(policy, facts, events, at("2026-11-24 10:00")))
    rated = resolved_state(frozen, replay(facts, events + [Event(3, "rate", at("2026-11-25 10:00"), score=5)]))
    assert rated.ratings == [(at("2026-11-25 10:00"), 5)] and rated.last_event_at == at("2026-11-25 10:00")
    unrated = resolved_state(frozen, replay(facts, events))
    assert rated.metrics == unrated.metrics and rated.penalty == unrated.penalty
