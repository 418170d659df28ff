"""The SLA clock as a pure function of (policy, request, events, now): the worked examples of docs/clock.md."""
import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chalicelib.core.clock import (
    FIRST_RESPONSE,
    PROGRESS_UPDATE,
    RESOLUTION,
    Event,
    RequestFacts,
    evaluate,
    replay,
)
from chalicelib.core.errors import ConflictError
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")


def at(text):
    """Local Shanghai time, '2026-02-13 16:30'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SH)


def policy(**changes):
    doc = copy.deepcopy(DEMO_CONTRACT)
    doc.update(changes)
    return parse_contract(doc, version=1)[1]


def run(priority, received, events=(), now=None, contract=None, designated=True):
    """Evaluate a request received at `received` with `events` [(type, time, extra)] at `now`."""
    received_at = at(received)
    timeline = [Event(1, "received", received_at)]
    for seq, (kind, when, *extra) in enumerate(events, start=2):
        timeline.append(Event(seq, kind, at(when), **(extra[0] if extra else {})))
    now = at(now) if now else timeline[-1].at
    facts = RequestFacts(priority=priority, designated=designated, received_at=received_at)
    return evaluate(contract or policy(), facts, timeline, now)


def due(state, metric):
    value = state.metrics[metric].due_at
    return value.astimezone(SH).strftime("%Y-%m-%d %H:%M") if value else None


# --- first response ------------------------------------------------------------------------------


def test_high_priority_request_received_friday_1630_is_due_on_makeup_saturday():
    state = run("high", "2026-02-13 16:30")
    assert due(state, FIRST_RESPONSE) == "2026-02-14 10:30"


def test_two_hours_from_ten_with_a_lunch_break_is_due_at_noon_not_one_pm():
    state = run("high", "2026-11-23 10:00")
    assert due(state, FIRST_RESPONSE) == "2026-11-23 12:00"


def test_request_received_in_the_lunch_break_is_not_off_hours_the_clock_just_waits():
    state = run("high", "2026-11-23 12:30")
    assert due(state, FIRST_RESPONSE) == "2026-11-23 15:00"


def test_request_received_before_opening_is_due_one_hour_after_opening():
    state = run("high", "2026-11-23 07:45")
    assert due(state, FIRST_RESPONSE) == "2026-11-23 10:00"


def test_request_received_after_closing_is_due_one_hour_into_the_next_working_day():
    state = run("low", "2026-11-23 19:00")
    assert due(state, FIRST_RESPONSE) == "2026-11-24 10:00"


def test_request_received_on_saturday_is_due_one_hour_after_monday_opening():
    state = run("medium", "2026-11-21 11:00")
    assert due(state, FIRST_RESPONSE) == "2026-11-23 10:00"


def test_off_hours_rule_keeps_a_target_shorter_than_the_allowance():
    contract = policy(off_hours_first_response="3h")
    state = run("high", "2026-11-21 11:00", contract=contract)
    assert due(state, FIRST_RESPONSE) == "2026-11-23 11:00"


def test_request_received_during_national_day_is_due_after_the_holiday_block():
    state = run("medium", "2026-10-03 09:30")
    assert due(state, FIRST_RESPONSE) == "2026-10-08 10:00"


def test_without_off_hours_rule_a_saturday_request_gets_the_full_target():
    doc = copy.deepcopy(DEMO_CONTRACT)
    del doc["off_hours_first_response"]
    state = run("high", "2026-11-21 11:00", contract=parse_contract(doc)[1])
    assert due(state, FIRST_RESPONSE) == "2026-11-23 11:00"


def test_urgent_24x7_clock_ignores_off_hours_and_counts_wall_time():
    state = run("urgent", "2026-11-21 03:00", now="2026-11-21 03:20")
    assert due(state, FIRST_RESPONSE) == "2026-11-21 03:30"
    assert state.metrics[FIRST_RESPONSE].remaining_minutes == pytest.approx(10)
    assert due(state, RESOLUTION) == "2026-11-21 11:00"


def test_met_first_response_freezes_remaining_time_and_is_not_breached():
    state = run("high", "2026-11-23 10:00", [("respond", "2026-11-23 11:15")], now="2026-11-25 10:00")
    fr = state.metrics[FIRST_RESPONSE]
    assert (fr.met_at, fr.breached, fr.remaining_minutes) == (at("2026-11-23 11:15"), False, 45)


def test_late_first_response_is_breached_with_negative_remaining_and_owes_the_penalty():
    state = run("high", "2026-11-23 10:00", [("respond", "2026-11-23 14:00")])
    fr = state.metrics[FIRST_RESPONSE]
    assert fr.breached and fr.remaining_minutes == pytest.approx(-60)
    assert state.penalty == 200


def test_unanswered_request_breaches_the_instant_after_its_deadline():
    assert not run("high", "2026-11-23 10:00", now="2026-11-23 12:00").metrics[FIRST_RESPONSE].breached
    in_lunch = run("high", "2026-11-23 10:00", now="2026-11-23 12:01").metrics[FIRST_RESPONSE]
    # Late, though no business minute has passed since the deadline: the document shows -1 (see documents).
    assert in_lunch.breached and in_lunch.remaining_minutes == pytest.approx(0)
    after_lunch = run("high", "2026-11-23 10:00", now="2026-11-23 13:01").metrics[FIRST_RESPONSE]
    assert after_lunch.remaining_minutes == pytest.approx(-1)


def test_breach_overnight_keeps_the_same_negative_business_minutes():
    state = run("high", "2026-11-23 14:00", now="2026-11-24 08:00")
    assert state.metrics[FIRST_RESPONSE].remaining_minutes == pytest.approx(-60)


# --- working-day durations ------------------------------------------------------------------------


def test_two_working_days_from_monday_ten_is_wednesday_ten():
    contract = policy(priorities={"low": {"first_response": "2wd"}})
    assert due(run("low", "2026-11-23 10:00", contract=contract), FIRST_RESPONSE) == "2026-11-25 10:00"


def test_two_working_days_from_monday_nine_ends_tuesday_at_five():
    contract = policy(priorities={"low": {"first_response": "2wd"}})
    assert due(run("low", "2026-11-23 09:00", contract=contract), FIRST_RESPONSE) == "2026-11-24 17:00"


def test_low_priority_resolution_in_five_working_days_skips_national_day():
    state = run("low", "2026-09-29 10:00")
    # 30 Sep is the 1st following working day; 1–7 Oct are holidays; 8, 9 Oct and make-up Sat 10 Oct follow.
    assert due(state, RESOLUTION) == "2026-10-12 10:00"


# --- channels and registration -------------------------------------------------------------------


def test_request_on_a_non_designated_channel_has_no_clock_until_registered():
    state = run("high", "2026-11-23 10:00", designated=False, now="2026-11-23 16:00")
    assert state.clock_started_at is None
    assert all(m.due_at is None and not m.breached for m in state.metrics.values())
    assert state.next_check_at is None


def test_register_starts_the_clock_when_recorded_on_a_designated_channel():
    state = run("high", "2026-11-23 10:00", [("register", "2026-11-23 15:30")], designated=False)
    assert state.clock_started_at == at("2026-11-23 15:30")
    assert due(state, FIRST_RESPONSE) == "2026-11-24 09:30"


def test_responding_before_registration_is_a_conflict():
    with pytest.raises(ConflictError, match="register"):
        run("high", "2026-11-23 10:00", [("respond", "2026-11-23 11:00")], designated=False)


def test_registering_a_request_already_on_a_designated_channel_is_a_conflict():
    with pytest.raises(ConflictError):
        run("high", "2026-11-23 10:00", [("register", "2026-11-23 11:00")])


# --- pauses --------------------------------------------------------------------------------------


def test_awaiting_customer_pauses_every_clock_and_reply_moves_deadlines_by_the_paused_business_time():
    events = [("await_customer", "2026-11-23 10:30"), ("customer_reply", "2026-11-23 14:30")]
    state = run("high", "2026-11-23 10:00", events)
    # 30 min ran before the pause; the remaining 90 min run from 14:30.
    assert due(state, FIRST_RESPONSE) == "2026-11-23 16:00"
    # Unpaused, 8 h from Mon 10:00 is Tue 11:00; the pause held 3 business hours (lunch excluded).
    assert due(state, RESOLUTION) == "2026-11-24 15:00"


def test_while_paused_deadlines_are_unknown_and_remaining_time_is_frozen():
    state = run("high", "2026-11-23 10:00", [("await_customer", "2026-11-23 10:30")], now="2026-11-30 10:00")
    fr = state.metrics[FIRST_RESPONSE]
    assert state.paused and state.status == "awaiting_customer"
    assert fr.due_at is None and not fr.breached and fr.remaining_minutes == pytest.approx(90)
    assert state.next_check_at is None


def test_pausing_a_paused_request_is_a_conflict():
    events = [("await_customer", "2026-11-23 10:30"), ("await_customer", "2026-11-23 10:40")]
    with pytest.raises(ConflictError, match="already awaiting"):
        run("high", "2026-11-23 10:00", events)


def test_a_breach_before_the_pause_stays_a_breach():
    state = run("high", "2026-11-23 10:00", [("await_customer", "2026-11-23 14:00")], now="2026-11-24 10:00")
    assert state.metrics[FIRST_RESPONSE].breached
    assert due(state, FIRST_RESPONSE) == "2026-11-23 12:00"


# --- reprioritize --------------------------------------------------------------------------------


def test_reprioritize_recomputes_every_deadline_from_the_clock_start():
    state = run("low", "2026-11-23 10:00", [("reprioritize", "2026-11-23 10:20", {"priority": "high"})])
    assert state.priority == "high"
    assert due(state, FIRST_RESPONSE) == "2026-11-23 12:00"
    assert due(state, RESOLUTION) == "2026-11-24 11:00"
    assert PROGRESS_UPDATE in state.metrics


def test_reprioritize_to_the_same_priority_is_a_conflict():
    with pytest.raises(ConflictError):
        run("low", "2026-11-23 10:00", [("reprioritize", "2026-11-23 10:20", {"priority": "low"})])


# --- progress cycles -----------------------------------------------------------------------------


def test_progress_cycle_starts_at_first_response_and_is_met_by_a_progress_update():
    events = [("respond", "2026-11-23 10:00"), ("progress", "2026-11-23 13:30")]
    state = run("high", "2026-11-23 09:30", events)
    progress = state.metrics[PROGRESS_UPDATE]
    assert progress.misses == 0 and not progress.breached
    assert progress.met_at == at("2026-11-23 13:30")
    assert due(state, PROGRESS_UPDATE) == "2026-11-24 09:30"


def test_lapsed_progress_cycle_counts_one_miss_and_the_next_runs_from_the_lapsed_deadline():
    state = run("high", "2026-11-23 09:30", [("respond", "2026-11-23 10:00")], now="2026-11-23 15:00")
    progress = state.metrics[PROGRESS_UPDATE]
    # Cycle 1: 10:00 + 4 business hours (lunch excluded) = 15:00, lapsed only after 15:00.
    assert progress.misses == 0 and due(state, PROGRESS_UPDATE) == "2026-11-23 15:00"
    state = run("high", "2026-11-23 09:30", [("respond", "2026-11-23 10:00")], now="2026-11-24 10:00")
    progress = state.metrics[PROGRESS_UPDATE]
    assert progress.misses == 1 and progress.breached
    assert due(state, PROGRESS_UPDATE) == "2026-11-24 11:00"
    assert state.penalty == 50


def test_progress_reminders_on_the_24x7_clock_lapse_every_hour_of_wall_time():
    state = run("urgent", "2026-11-21 01:00", [("respond", "2026-11-21 01:10")], now="2026-11-21 04:30")
    assert state.metrics[PROGRESS_UPDATE].misses == 3
    assert due(state, PROGRESS_UPDATE) == "2026-11-21 05:10"


def test_progress_before_first_response_is_a_conflict():
    with pytest.raises(ConflictError, match="first response"):
        run("high", "2026-11-23 09:30", [("progress", "2026-11-23 10:00")])


def test_progress_metric_waits_for_the_first_response():
    progress = run("high", "2026-11-23 09:30", now="2026-11-23 10:00").metrics[PROGRESS_UPDATE]
    assert progress.due_at is None and progress.misses == 0


# --- resolution ----------------------------------------------------------------------------------


def test_resolve_meets_resolution_and_counts_as_the_first_response_when_none_was_sent():
    state = run("high", "2026-11-23 10:00", [("resolve", "2026-11-23 11:00")], now="2026-11-30 10:00")
    assert state.status == "resolved"
    assert state.metrics[FIRST_RESPONSE].met_at == at("2026-11-23 11:00")
    assert state.metrics[RESOLUTION].met_at == at("2026-11-23 11:00")
    assert not state.breached and state.next_check_at is None


def test_resolving_a_resolved_request_is_a_conflict():
    with pytest.raises(ConflictError, match="resolved"):
        run("high", "2026-11-23 10:00", [("resolve", "2026-11-23 11:00"), ("resolve", "2026-11-23 11:30")])


def test_responding_twice_is_a_conflict():
    with pytest.raises(ConflictError, match="already"):
        run("high", "2026-11-23 10:00", [("respond", "2026-11-23 11:00"), ("respond", "2026-11-23 11:30")])


def test_reopen_runs_the_resolution_clock_again_from_its_paused_position():
    events = [("respond", "2026-11-23 10:00"), ("resolve", "2026-11-23 12:00"), ("reopen", "2026-11-24 09:00")]
    state = run("high", "2026-11-23 09:00", events)
    # 3 business hours used before resolving (09:00–12:00); 5 remain from Tue 09:00.
    assert state.status == "open" and state.metrics[RESOLUTION].met_at is None
    assert due(state, RESOLUTION) == "2026-11-24 15:00"


def test_resolution_from_first_response_has_no_deadline_until_the_first_response():
    contract = policy(resolution_from="first_response")
    assert due(run("high", "2026-11-23 09:00", contract=contract), RESOLUTION) is None
    state = run("high", "2026-11-23 09:00", [("respond", "2026-11-23 10:00")], contract=contract)
    assert due(state, RESOLUTION) == "2026-11-24 11:00"


NO_PROGRESS = {"urgent": {"first_response": "30m", "resolution": "8h", "clock": "24x7"}}


def test_a_request_25_hours_late_owes_two_days_of_resolution_penalty():
    contract = policy(priorities=NO_PROGRESS)
    state = run("urgent", "2026-11-21 00:00", [("respond", "2026-11-21 00:10")], now="2026-11-22 09:00",
                contract=contract)
    assert due(state, RESOLUTION) == "2026-11-21 08:00" and state.metrics[RESOLUTION].breached
    assert state.penalty == 2 * 500
    days = [m.at for m in state.milestones if m.kind == "penalty_day"]
    assert days == [at("2026-11-21 08:00"), at("2026-11-22 08:00"), at("2026-11-23 08:00")]  # the last is next
    assert state.next_check_at == at("2026-11-23 08:00")


def test_exactly_24_hours_late_owes_one_day():
    contract = policy(priorities=NO_PROGRESS)
    state = run("urgent", "2026-11-21 00:00", [("respond", "2026-11-21 00:10")], now="2026-11-22 08:00",
                contract=contract)
    assert state.penalty == 500


def test_resolution_penalty_days_stop_accruing_once_resolved():
    events = [("respond", "2026-11-21 00:10"), ("resolve", "2026-11-21 09:00")]
    state = run("urgent", "2026-11-21 00:00", events, now="2026-11-30 00:00", contract=policy(priorities=NO_PROGRESS))
    assert state.penalty == 500


def test_every_missed_progress_cycle_owes_its_penalty():
    state = run("urgent", "2026-11-21 00:00", [("respond", "2026-11-21 00:10")], now="2026-11-21 06:00")
    # Cycles lapse at 01:10, 02:10, … 05:10; the resolution (8 h) is not late yet.
    assert state.metrics[PROGRESS_UPDATE].misses == 5
    assert state.penalty == 5 * 50


def test_rate_needs_a_resolved_request_and_counts_once_per_resolution():
    with pytest.raises(ConflictError):
        run("high", "2026-11-23 09:00", [("rate", "2026-11-23 10:00", {"score": 5})])
    events = [("resolve", "2026-11-23 10:00"), ("rate", "2026-11-23 11:00", {"score": 4})]
    assert run("high", "2026-11-23 09:00", events).ratings == [(at("2026-11-23 11:00"), 4)]
    with pytest.raises(ConflictError, match="already rated"):
        run("high", "2026-11-23 09:00", events + [("rate", "2026-11-23 11:30", {"score": 5})])


# --- milestones and the next check ---------------------------------------------------------------


def test_warnings_fall_at_each_warn_at_fraction_of_business_time():
    state = run("high", "2026-11-23 10:00", now="2026-11-23 10:00")
    warns = [(m.metric, m.threshold, m.at.astimezone(SH).strftime("%H:%M")) for m in state.milestones
             if m.kind == "warn" and m.metric == FIRST_RESPONSE]
    # 2 h target: 50 % after one business hour, 80 % after 96 minutes.
    assert warns == [(FIRST_RESPONSE, 0.5, "11:00"), (FIRST_RESPONSE, 0.8, "11:36")]
    assert state.next_check_at == at("2026-11-23 11:00")


def test_next_check_moves_to_the_next_deadline_after_the_warnings_have_passed():
    state = run("high", "2026-11-23 10:00", now="2026-11-23 11:40")
    assert state.next_check_at == at("2026-11-23 12:00")


def test_a_contract_holiday_added_later_moves_a_running_deadline():
    before = run("medium", "2026-11-27 15:00")
    changed = policy(calendar={**DEMO_CONTRACT["calendar"], "extra_holidays": ["2026-11-30"]})
    after = run("medium", "2026-11-27 15:00", contract=changed)
    assert due(before, FIRST_RESPONSE) == "2026-11-30 11:00"
    assert due(after, FIRST_RESPONSE) == "2026-12-01 11:00"


def test_events_out_of_order_are_a_conflict():
    with pytest.raises(ConflictError, match="precedes"):
        run("high", "2026-11-23 10:00", [("respond", "2026-11-23 11:00"), ("progress", "2026-11-23 10:30")])


def test_replay_does_not_depend_on_the_contract():
    facts = RequestFacts("high", True, at("2026-11-23 10:00"))
    timeline = replay(facts, [Event(1, "received", facts.received_at)])
    assert timeline.clock_start == facts.received_at and timeline.status == "open"


def test_evaluation_is_pure_same_inputs_same_answer():
    a = run("high", "2026-11-23 10:00", now="2026-11-24 10:00")
    b = run("high", "2026-11-23 10:00", now="2026-11-24 10:00")
    assert a == b
    assert a.next_check_at is None or a.next_check_at > at("2026-11-24 10:00") - timedelta(0)


def test_a_met_deadline_stays_visible_through_a_later_pause_or_resolution():
    paused = run("high", "2026-11-23 10:00", [("respond", "2026-11-23 10:30"), ("await_customer", "2026-11-23 11:00")])
    assert due(paused, FIRST_RESPONSE) == "2026-11-23 12:00"
    resolved = run("high", "2026-11-23 10:00", [("resolve", "2026-11-23 10:00")], now="2026-11-30 10:00")
    assert due(resolved, FIRST_RESPONSE) == "2026-11-23 12:00"
    assert due(resolved, RESOLUTION) == "2026-11-24 11:00"
    assert not resolved.breached and resolved.penalty == 0


def test_deadlines_across_the_berlin_autumn_clock_change_count_real_elapsed_time():
    berlin = ZoneInfo("Europe/Berlin")
    contract = parse_contract({
        "name": "Berlin", "timezone": "Europe/Berlin",
        "calendar": {"holidays": None, "workdays": [1, 2, 3, 4, 5, 6, 7], "hours": [["00:00", "24:00"]]},
        "priorities": {"high": {"first_response": "2h", "progress_every": "30m"}},
    })[1]
    # 25 Oct 2026: 03:00 CEST falls back to 02:00 CET, so 02:00–03:00 happens twice.
    received = datetime(2026, 10, 25, 2, 10, tzinfo=berlin)  # first pass, CEST (00:10 UTC)
    facts = RequestFacts("high", True, received)
    timeline = [Event(1, "received", received), Event(2, "respond", datetime(2026, 10, 25, 2, 15, tzinfo=berlin))]
    now = datetime(2026, 10, 25, 2, 50, tzinfo=berlin, fold=1)  # second pass, CET (01:50 UTC)
    state = evaluate(contract, facts, timeline, now)
    due_at = state.metrics[FIRST_RESPONSE].due_at.astimezone(berlin)
    assert (due_at.hour, due_at.minute, due_at.utcoffset()) == (3, 10, timedelta(hours=1))
    # Progress cycles from 00:15 UTC lapse at 00:45, 01:15 and 01:45 UTC: three misses by 01:50 UTC,
    assert state.metrics[PROGRESS_UPDATE].misses == 3
    next_due = state.metrics[PROGRESS_UPDATE].due_at.astimezone(berlin)
    assert (next_due.hour, next_due.minute, next_due.utcoffset()) == (3, 15, timedelta(hours=1))


def test_a_request_evaluated_exactly_at_its_deadline_still_has_that_deadline_to_check():
    """Scanned at 12:00 sharp, the first response due at 12:00 has not breached yet: the next check
    must not vanish, or the breach would never be alerted."""
    policy = parse_contract(DEMO_CONTRACT)[1]
    received = datetime(2026, 11, 23, 10, tzinfo=SH)
    facts = RequestFacts(priority="high", designated=True, received_at=received)
    state = evaluate(policy, facts, [Event(1, "received", received)], datetime(2026, 11, 23, 12, tzinfo=SH))
    assert not state.breached and state.next_check_at == datetime(2026, 11, 23, 12, tzinfo=SH)
