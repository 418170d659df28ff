"""Durations in seconds ("30s"): exact to the microsecond on the business clock and the 24x7 clock."""
import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from chalicelib.core.calendar import BusinessCalendar
from chalicelib.core.clock import FIRST_RESPONSE, PROGRESS_UPDATE, Event, RequestFacts, evaluate
from chalicelib.core.durations import Duration, parse_duration
from chalicelib.core.errors import ValidationError
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 23, tzinfo=SH)


def seconds_policy(**priorities):
    doc = copy.deepcopy(DEMO_CONTRACT)
    doc["priorities"] = priorities
    return parse_contract(doc, version=1)[1]


def first_response_due(policy, priority, received_at, now=None):
    facts = RequestFacts(priority=priority, designated=True, received_at=received_at)
    state = evaluate(policy, facts, [Event(1, "received", received_at)], now or received_at)
    return state.metrics[FIRST_RESPONSE].due_at.astimezone(SH)


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("7s", 7), ("2m", 120), ("1h", 3600),
                                           ("9999999s", 9_999_999)])
def test_seconds_parse_next_to_minutes_and_hours_with_their_exact_length(text, seconds):
    duration = parse_duration(text, "x")
    assert duration.seconds == seconds and duration.microseconds == seconds * 1_000_000
    assert str(duration) == text


@pytest.mark.parametrize("text", ["0s", "30 s", "1.5s", "30S", "30sec", "-5s", "10000000s"])
def test_malformed_seconds_are_refused_naming_the_field(text):
    with pytest.raises(ValidationError) as caught:
        parse_duration(text, "priorities.high.first_response")
    assert caught.value.field == "priorities.high.first_response"


def test_a_working_day_duration_has_no_length_in_seconds():
    with pytest.raises(ValueError):
        Duration(2, "wd").seconds  # noqa: B018


def test_45_seconds_on_the_business_clock_skip_the_lunch_break_exactly():
    policy = seconds_policy(high={"first_response": "45s"})
    received = MONDAY.replace(hour=11, minute=59, second=30, microsecond=250_000)
    assert first_response_due(policy, "high", received) == MONDAY.replace(hour=13, second=15, microsecond=250_000)


def test_seconds_on_the_business_clock_ending_at_the_close_stay_in_the_day():
    policy = seconds_policy(high={"first_response": "30s"})
    received = MONDAY.replace(hour=16, minute=59, second=30)
    assert first_response_due(policy, "high", received) == MONDAY.replace(hour=17)


def test_seconds_received_off_hours_run_from_the_next_opening():
    policy = seconds_policy(high={"first_response": "60s"})
    sunday_night = MONDAY - timedelta(hours=2)
    assert first_response_due(policy, "high", sunday_night) == MONDAY.replace(hour=9, minute=1)


def test_seven_seconds_on_the_24x7_clock_are_seven_seconds_to_the_microsecond():
    policy = seconds_policy(urgent={"first_response": "7s", "clock": "24x7"})
    received = MONDAY.replace(hour=12, minute=30, second=1, microsecond=123_457)
    assert first_response_due(policy, "urgent", received) == received + timedelta(seconds=7)


@pytest.mark.parametrize("clock", ["business", "24x7"])
def test_a_thousand_seven_second_progress_cycles_land_on_exact_multiples(clock):
    """Sums of running time are whole microseconds: no drift however many cycles lapse."""
    policy = seconds_policy(high={"first_response": "1h", "progress_every": "7s", "clock": clock})
    received = MONDAY.replace(hour=9, minute=0, second=0, microsecond=1)
    responded = received + timedelta(minutes=1)
    now = responded + timedelta(seconds=7 * 1000 + 3)  # 1000 cycles fit before lunch (09:01 + 1 h 57 min)
    facts = RequestFacts(priority="high", designated=True, received_at=received)
    state = evaluate(policy, facts, [Event(1, "received", received), Event(2, "respond", responded)], now)
    breaches = [m.at for m in state.milestones if m.kind == "breach" and m.metric == PROGRESS_UPDATE]
    assert len(breaches) == 1000 == state.metrics[PROGRESS_UPDATE].misses
    assert breaches == [responded + timedelta(seconds=7 * k) for k in range(1, 1001)]
    assert state.metrics[PROGRESS_UPDATE].remaining_minutes == pytest.approx(4 / 60)


def test_the_calendar_adds_and_measures_whole_microseconds_exactly():
    calendar = BusinessCalendar.from_config(None)
    start = MONDAY.replace(hour=11, minute=59, second=59, microsecond=999_999)
    end = calendar.add_microseconds(start, 2)
    assert end == MONDAY.replace(hour=13, microsecond=1)
    assert calendar.between_microseconds(start, end) == 2
    assert calendar.between_microseconds(end, start) == -2
    with pytest.raises(ValueError):
        calendar.add_microseconds(start, 0.5)


def test_the_working_day_limit_counts_seconds_against_the_calendars_working_day():
    """One working hour a day: 400 working days are 1,440,000 seconds."""
    doc = copy.deepcopy(DEMO_CONTRACT)
    doc["calendar"] = {"hours": [["09:00", "10:00"]]}
    doc["priorities"] = {"high": {"first_response": "1440000s"}}
    parse_contract(doc, admitted_at=MONDAY)
    doc["priorities"] = {"high": {"first_response": "1440001s"}}
    with pytest.raises(ValidationError) as caught:
        parse_contract(doc, admitted_at=MONDAY)
    assert caught.value.field == "priorities.high.first_response"


def test_a_contract_in_seconds_shows_deadlines_to_the_second(admin):
    doc = copy.deepcopy(DEMO_CONTRACT)
    doc["priorities"] = {"urgent": {"first_response": "30s", "clock": "24x7"}, "high": {"first_response": "90s"}}
    assert admin.put("/contracts/secs", doc)[0] == 201
    request = {"contract_id": "secs", "channel": "portal", "subject": "在线咨询",
               "requester": {"email": "li@customer.example"}}
    with time_machine.travel(MONDAY.replace(hour=11, minute=59), tick=False):
        status, chat = admin.post("/requests", {**request, "priority": "urgent"})
        assert status == 201, chat
        status, phone = admin.post("/requests", {**request, "priority": "high"})
    assert chat["sla"]["first_response"]["due_at"] == "2026-11-23T11:59:30+08:00"
    assert phone["sla"]["first_response"]["due_at"] == "2026-11-23T13:00:30+08:00"
    assert phone["sla"]["first_response"]["remaining_minutes"] == 1
    status, stored = admin.get("/contracts/secs")
    assert stored["priorities"]["urgent"]["first_response"] == "30s"
