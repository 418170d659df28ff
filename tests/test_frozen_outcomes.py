"""Stored items stay bounded: a request neglected for a year on a 10-minute progress cycle is resolved,
read, tallied, reported and replayed like any other, and its frozen outcome stays small (clock.freeze
keeps runs of milestones, not one per lapsed cycle)."""
import copy
import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import factories
import pytest
import time_machine
from chalice.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app
from chalicelib import evaluation
from chalicelib.aws import records
from chalicelib.aws.tables import NotificationModel, RequestModel, TallyModel
from chalicelib.core.clock import (
    PROGRESS_UPDATE,
    Event,
    Milestone,
    RequestFacts,
    evaluate,
    freeze,
    replay,
    resolved_state,
)
from chalicelib.core.errors import ConflictError
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT, contract_with_tokens, demo_contract

SH = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2025, 11, 23, 10, 0, tzinfo=SH)
RESPONDED = RECEIVED + timedelta(minutes=20)  # cycles lapse at every 10th minute from 10:30 on
RESOLVED = datetime(2026, 11, 23, 10, 25, tzinfo=SH)  # 365 days later
CYCLES_A_DAY = 144
MISSES = 365 * CYCLES_A_DAY  # 10:30 the first day to 10:20 the last, every 10 minutes
PENALTY_DAYS = 365  # resolution due 2025-11-23 18:00 (8 h, 24x7): resolved 364 days 16 h 25 min late
PENALTY = MISSES * 50 + PENALTY_DAYS * 500
TEN_MINUTES = demo_contract(**{"priorities.urgent.progress_every": "10m"})
ITEM_LIMIT = 400 * 1024


def scan(moment):
    with time_machine.travel(moment, tick=False), Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/scan_deadlines"], region="us-east-1")
        return lambda_client.lambda_.invoke("scan_deadlines", event).payload


def at(moment, call, *args):
    with time_machine.travel(moment, tick=False):
        return call(*args)


def tally(admin, day, moment):
    status, body = at(moment, admin.post, "/contracts/acme/tallies", {"date": day})
    assert status == 200, body
    return body


def simulation(admin, month, moment):
    status, body = at(moment, admin.post, "/contracts/acme/simulations", {"contract": TEN_MINUTES, "month": month})
    assert status == 200, body
    return body


def answered_urgent_request(admin):
    """acme with a 10-minute progress cycle on urgent, and an urgent request received on 2025-11-23
    10:00 and answered at 10:20: (agent, client, request_id)."""
    _, agent, client = at(RECEIVED - timedelta(days=1), contract_with_tokens, admin, TEN_MINUTES)
    status, created = at(RECEIVED, agent.post, "/requests", {
        "contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
        "requester": {"name": "张三", "email": "zhang@customer.example"}})
    assert status == 201, created
    request_id = created["request_id"]
    assert at(RESPONDED, agent.post, f"/requests/{request_id}/events", {"type": "respond"})[0] == 200
    return agent, client, request_id


@pytest.fixture
def neglected(admin, mailbox):
    """An urgent request of acme (24x7, progress every 10 minutes) answered on 2025-11-23 and never
    updated since; the scanner ran in its first hour, a month on, and not again."""
    agent, _, request_id = answered_urgent_request(admin)
    for moment in (RECEIVED + timedelta(hours=1), RECEIVED + timedelta(days=30)):
        assert scan(moment)["errors"] == 0
    return admin, agent, request_id


def test_a_request_neglected_for_a_year_on_a_ten_minute_cycle_resolves_and_stays_small(neglected):
    admin, agent, request_id = neglected
    before = at(RESOLVED, agent.get, f"/requests/{request_id}")[1]
    assert before["sla"]["progress_update"]["misses"] == MISSES and before["penalty"]["amount"] == PENALTY
    catch_up = scan(RESOLVED)  # after 11 months without a scan
    assert catch_up["errors"] == 0 and catch_up["created"] <= 4  # one alert per metric, not per cycle
    entries = list(NotificationModel.query(request_id))
    assert max(factories.item_bytes(entry) for entry in entries) < 8 * 1024

    status, resolved = at(RESOLVED, agent.post, f"/requests/{request_id}/events", {"type": "resolve"})
    assert status == 200, resolved
    assert resolved["status"] == "resolved"
    assert resolved["sla"]["progress_update"]["misses"] == MISSES
    assert resolved["penalty"] == {"amount": PENALTY, "currency": "CNY"}
    # The same outcome a year on, and the same document as just before the resolve but for the resolve.
    status, later = at(RESOLVED + timedelta(days=365), agent.get, f"/requests/{request_id}")
    assert status == 200 and later["sla"] == resolved["sla"] and later["penalty"] == resolved["penalty"]
    assert before["sla"]["first_response"] == later["sla"]["first_response"]
    assert before["sla"]["resolution"]["due_at"] == later["sla"]["resolution"]["due_at"]

    item = RequestModel.get(request_id)
    size = factories.item_bytes(item)
    assert size < 10 * 1024, size  # the frozen form was 6 MB at this age, 15x DynamoDB's limit
    assert len(json.dumps(item.frozen_state)) < 4 * 1024
    assert scan(RESOLVED + timedelta(hours=1))["errors"] == 0


def test_the_tally_report_and_what_if_count_a_frozen_year_of_misses_as_they_did_live(neglected):
    admin, agent, request_id = neglected
    reading = RESOLVED - timedelta(minutes=1)
    live_monday = tally(admin, "2026-11-22", reading)
    live_whatif = simulation(admin, "2025-11", reading)
    assert at(RESOLVED, agent.post, f"/requests/{request_id}/events", {"type": "resolve"})[0] == 200

    after = RESOLVED + timedelta(days=1)
    monday, tuesday = (tally(admin, day, after) for day in ("2026-11-22", "2026-11-23"))
    assert monday == live_monday
    assert monday["breaches"] == {"progress_update": {"urgent": CYCLES_A_DAY}}
    assert monday["penalties_raw"] == CYCLES_A_DAY * 50 + 500  # one more day late began at 18:00
    # The resolve day: cycles lapsed at 00:00 … 10:20 (63 of them), then the resolve at 10:25.
    assert tuesday["breaches"] == {"progress_update": {"urgent": 63}} and tuesday["resolved"] == 1
    assert tuesday["penalties_raw"] == 63 * 50
    assert max(factories.item_bytes(item) for item in TallyModel.query("acme")) < 4 * 1024
    # One line per request and reason a day, whatever the cycle: the stored tally stays small too.
    assert [(line["reason"], line["amount"], line["at"]) for line in tuesday["penalty_lines"]] == [
        (f"late_progress (63 cycles, {MISSES - 62}–{MISSES})", 63 * 50, "2026-11-23T00:00:00+08:00")]
    assert [line["reason"] for line in monday["penalty_lines"]] == [
        f"late_progress (144 cycles, {MISSES - 206}–{MISSES - 63})", "late_resolution_per_day (day 365)"]

    status, report = at(after, admin.get, "/contracts/acme/reports?month=2026-11")
    assert status == 200, report
    assert report["breaches"]["progress_update"] == CYCLES_A_DAY + 63
    assert report["penalties"] == {"total": 5000, "capped": True}  # the demo contract's monthly cap
    with Client(app) as raw, time_machine.travel(after, tick=False):
        response = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                headers={"Authorization": f"Bearer {admin.token}"})
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8"))))
    assert [(r["date"], r["breaches"], r["penalties"], r["penalties_before_cap"]) for r in rows] == [
        ("2026-11-22", str(CYCLES_A_DAY), "5000", str(CYCLES_A_DAY * 50 + 500)),
        ("2026-11-23", "63", "0", str(63 * 50))]

    # November 2025 replayed: lapses from 10:30 on the 23rd (81 that day) to the month's end.
    frozen_whatif = simulation(admin, "2025-11", after)
    assert frozen_whatif == live_whatif
    assert frozen_whatif["current"]["breaches"]["progress_update"] == 81 + 7 * CYCLES_A_DAY
    assert frozen_whatif["current"]["breaches"]["resolution"] == 1


def test_an_outcome_frozen_before_runs_still_reads_as_it_was_resolved(admin):
    """Items resolved before the compact form hold one entry per milestone, ratings and resolves."""
    policy = parse_contract(copy.deepcopy(TEN_MINUTES), version=1)[1]
    received = datetime(2026, 11, 23, 10, tzinfo=SH)
    events = [Event(1, "received", received), Event(2, "respond", received + timedelta(minutes=5)),
              Event(3, "resolve", received + timedelta(hours=30)), Event(4, "rate", received + timedelta(hours=31),
                                                                         score=5)]
    facts = RequestFacts("urgent", True, received)
    state = evaluate(policy, facts, events, received + timedelta(days=2))
    old = json.loads(json.dumps(_previous_freeze(state)))
    assert resolved_state(old, replay(facts, events)) == state


def test_a_request_resolved_before_runs_reads_the_same_and_is_rewritten_small_when_rated(admin, mailbox):
    agent, client, request_id = answered_urgent_request(admin)
    resolving = RECEIVED + timedelta(days=2, minutes=25)  # 288 misses: under 400 KB in the previous form
    status, resolved = at(resolving, agent.post, f"/requests/{request_id}/events", {"type": "resolve"})
    assert status == 200, resolved
    item = RequestModel.get(request_id)
    request = records.stored_request(item)
    state = resolved_state(item.frozen_state, replay(evaluation.facts_of(request), request.events))
    item.update(actions=[RequestModel.frozen_state.set(_previous_freeze(state))])
    assert "milestones" in RequestModel.get(request_id).frozen_state

    later = resolving + timedelta(days=3)
    status, document = at(later, agent.get, f"/requests/{request_id}")
    assert status == 200 and (document["sla"], document["penalty"]) == (resolved["sla"], resolved["penalty"])
    assert document["sla"]["progress_update"]["misses"] == 2 * CYCLES_A_DAY
    assert tally(admin, "2025-11-24", later)["breaches"] == {"progress_update": {"urgent": CYCLES_A_DAY}}
    assert at(later, client.post, f"/requests/{request_id}/events", {"type": "rate", "score": 4})[0] == 200
    stored = RequestModel.get(request_id).frozen_state
    assert "milestones" not in stored and len(json.dumps(stored)) < 4 * 1024
    status, rated = at(later, agent.get, f"/requests/{request_id}")
    assert (rated["sla"], rated["penalty"]) == (resolved["sla"], resolved["penalty"])


def _previous_freeze(state):
    """How `freeze` wrote an outcome before it kept runs: every milestone, ratings and resolves."""
    doc = freeze(state)
    del doc["milestone_runs"]
    doc["milestones"] = [{"kind": m.kind, "metric": m.metric, "cycle": m.cycle, "at": m.at.isoformat(),
                          "threshold": m.threshold} for m in state.milestones]
    doc["ratings"] = [[moment.isoformat(), score] for moment, score in state.ratings]
    doc["resolves"] = [moment.isoformat() for moment in state.resolves]
    return doc


# --- the pure clock ---------------------------------------------------------------------------------


def _frozen_round_trip(policy, facts, events, now):
    state = evaluate(policy, facts, events, now)
    stored = json.loads(json.dumps(freeze(state)))
    assert resolved_state(stored, replay(facts, events)) == state
    return state, stored


def test_a_year_of_lapsed_ten_minute_cycles_freezes_to_a_few_runs_and_thaws_exactly():
    policy = parse_contract(copy.deepcopy(TEN_MINUTES), version=1)[1]
    facts = RequestFacts("urgent", True, RECEIVED)
    events = [Event(1, "received", RECEIVED), Event(2, "respond", RESPONDED),
              Event(3, "await_customer", RECEIVED + timedelta(days=100, seconds=7)),
              Event(4, "customer_reply", RECEIVED + timedelta(days=101, hours=3)),
              Event(5, "reprioritize", RECEIVED + timedelta(days=200), priority="high"),
              Event(6, "reprioritize", RECEIVED + timedelta(days=250), priority="urgent"),
              Event(7, "resolve", RESOLVED)]
    state, stored = _frozen_round_trip(policy, facts, events, RESOLVED)
    assert len(state.milestones) > 40_000
    assert len(json.dumps(stored)) < 4 * 1024
    breaches = [m for m in state.milestones if m.kind == "breach" and m.metric == PROGRESS_UPDATE]
    assert [m.cycle for m in breaches] == list(range(1, len(breaches) + 1))


def test_business_hours_freeze_to_at_most_a_run_per_opening_of_the_calendar():
    policy = parse_contract(copy.deepcopy(demo_contract(**{"priorities.high.progress_every": "10m"})),
                            version=1)[1]
    received = datetime(2026, 1, 5, 9, tzinfo=SH)
    facts = RequestFacts("high", True, received)
    events = [Event(1, "received", received), Event(2, "respond", received + timedelta(minutes=7)),
              Event(3, "resolve", received + timedelta(days=365))]
    state, stored = _frozen_round_trip(policy, facts, events, received + timedelta(days=365))
    runs = sum(len(series["runs"]) for series in stored["milestone_runs"])
    assert len(state.milestones) > 10_000 and runs <= 2 * 260 + 10  # two openings a working day
    assert len(json.dumps(stored)) < 40 * 1024


KINDS = ["respond", "progress", "await_customer", "customer_reply", "reprioritize", "resolve", "reopen", "rate"]
PRIORITIES = st.sampled_from(list(DEMO_CONTRACT["priorities"]))


@settings(max_examples=60, deadline=None)
@given(priority=PRIORITIES, later=st.integers(0, 10 * 24 * 60),
       steps=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3 * 24 * 60 * 60), PRIORITIES), max_size=12))
def test_any_outcome_survives_freezing_through_json_exactly(priority, steps, later):
    policy = parse_contract(copy.deepcopy(DEMO_CONTRACT), version=1)[1]
    received = datetime(2026, 9, 28, 8, 13, tzinfo=SH)
    facts = RequestFacts(priority, True, received)
    events, moment = [Event(1, "received", received)], received
    for kind, seconds, new_priority in steps:
        moment += timedelta(seconds=seconds, microseconds=seconds)
        event = Event(len(events) + 1, kind, moment, priority=new_priority, score=4 if kind == "rate" else None)
        try:
            replay(facts, events + [event])
        except ConflictError:
            continue
        events.append(event)
    _frozen_round_trip(policy, facts, events, moment + timedelta(minutes=later))


def test_milestones_of_a_series_that_are_not_evenly_spaced_are_runs_of_their_own():
    state = evaluate(parse_contract(copy.deepcopy(DEMO_CONTRACT), version=1)[1],
                     RequestFacts("urgent", True, RECEIVED), [Event(1, "received", RECEIVED)], RECEIVED)
    uneven = [Milestone("breach", PROGRESS_UPDATE, cycle, RECEIVED + timedelta(minutes=minutes))
              for cycle, minutes in ((1, 10), (2, 20), (3, 35), (5, 45), (6, 55))]
    stored = freeze(type(state)(**{**vars(state), "milestones": uneven}))
    assert stored["milestone_runs"][0]["runs"] == [
        [1, "2025-11-23T02:10:00+00:00", 600_000_000, 2], [3, "2025-11-23T02:35:00+00:00", 0, 1],
        [5, "2025-11-23T02:45:00+00:00", 600_000_000, 2]]
    assert resolved_state(stored, replay(RequestFacts("urgent", True, RECEIVED),
                                         [Event(1, "received", RECEIVED)])).milestones == uneven
