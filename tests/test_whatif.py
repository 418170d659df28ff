"""What-if: a month replayed under a candidate contract (POST /contracts/{id}/simulations), end to end
through `chalice.test.Client` + moto + time-machine, with the demo contract as the terms in force."""
import random
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import botocore.client
import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tally import SH, local, request, tally

from chalicelib import simulations
from chalicelib.aws.tables import RequestModel
from chalicelib.core.clock import (
    FIRST_RESPONSE,
    PROGRESS_UPDATE,
    RESOLUTION,
    Event,
    MetricState,
    Milestone,
    RequestFacts,
    SlaState,
    evaluate,
)
from chalicelib.core.policy import EXAMPLE_PRIORITIES, Penalties, parse_contract
from chalicelib.core.tally import DayTally, Evaluated, day_bounds, month_bounds, tally_day, tally_month
from conftest import DEMO_CONTRACT, demo_contract

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
SES = {"SendEmail", "SendRawEmail", "SendTemplatedEmail", "SendBulkTemplatedEmail"}


@pytest.fixture
def clock():
    """2 December 2026: November is over."""
    with time_machine.travel(local(2, 10, month=12), tick=False) as traveller:
        yield traveller




def simulate(caller, document, month="2026-11", **extra):
    return caller.post("/contracts/acme/simulations", {"contract": document, "month": month, **extra})


def replay(caller, document, month="2026-11", **extra):
    status, body = simulate(caller, document, month, **extra)
    assert status == 200, body
    return body


def late_high(agent, day=23):
    """A high request answered at 13:30 for a 12:00 deadline (2 business hours from 10:00): one breach,
    200 CNY. Resolved at 16:00, within its 8 hours and its 4-hour progress cycle."""
    return request(agent, "high", local(day, 10), [("respond", local(day, 13, 30)), ("resolve", local(day, 16))])


def test_a_looser_target_removes_a_breach_and_its_penalty(acme, clock):
    admin, agent, _ = acme
    late = late_high(agent)
    request(agent, "medium", local(24, 9), [("respond", local(24, 10)), ("resolve", local(24, 11))])
    body = replay(agent, demo_contract(**{"priorities.high.first_response": "4h"}))
    assert (body["month"], body["requests"], body["priorities"]) == ("2026-11", 2, None)
    assert body["evaluated_at"] == "2026-12-01T00:00:00+08:00"
    assert body["current"] == {"currency": "CNY",
                               "breaches": {"first_response": 1, "progress_update": 0, "resolution": 0},
                               "penalties": {"total": 200, "capped": False},
                               "on_time_rate": {"high": {"first_response": 0.0, "resolution": 1.0},
                                                "medium": {"first_response": 1.0, "resolution": 1.0}}}
    assert body["candidate"]["breaches"] == {"first_response": 0, "progress_update": 0, "resolution": 0}
    assert body["candidate"]["penalties"] == {"total": 0, "capped": False}
    assert body["candidate"]["on_time_rate"]["high"] == {"first_response": 1.0, "resolution": 1.0}
    assert body["changed"] == [{"request_id": late, "current": {"breached": ["first_response"], "penalty": 200},
                                "candidate": {"breached": [], "penalty": 0}}]
    assert body["changed_total"] == 1


def test_a_stricter_target_adds_a_breach_and_its_penalty(acme, clock):
    _, agent, _ = acme
    # Medium: 4 business hours from 09:00 is 14:00; answered 12:30. At 2 hours it is due 11:00.
    answered = request(agent, "medium", local(24, 9), [("respond", local(24, 12, 30)), ("resolve", local(24, 16))])
    late_high(agent, day=25)  # late under both terms: unchanged, not listed
    body = replay(agent, demo_contract(**{"priorities.medium.first_response": "2h"}))
    assert body["current"]["breaches"]["first_response"] == 1
    assert body["candidate"]["breaches"]["first_response"] == 2
    assert (body["current"]["penalties"]["total"], body["candidate"]["penalties"]["total"]) == (200, 400)
    assert body["changed"] == [{"request_id": answered, "current": {"breached": [], "penalty": 0},
                                "candidate": {"breached": ["first_response"], "penalty": 200}}]


def test_changed_lists_the_largest_penalty_difference_first(acme, clock):
    _, agent, _ = acme
    small = late_high(agent, day=23)
    # Never answered nor resolved: the first response (200) and 500 for each started day past the
    # resolution deadline (Tuesday 10:00) until the month ends, under both terms.
    never = request(agent, "high", local(23, 9))
    loose = demo_contract(**{"priorities.high.first_response": "4h", "penalties.late_resolution_per_day": 400})
    body = replay(agent, loose)
    assert [entry["request_id"] for entry in body["changed"]] == [never, small]
    current, after = body["changed"][0]["current"], body["changed"][0]["candidate"]
    assert current["breached"] == after["breached"] == ["first_response", "resolution"]
    assert current["penalty"] - after["penalty"] == 100 * 7  # 7 started days, 24 Nov 10:00 to 30 Nov 10:00


def test_the_cap_binds_in_the_candidate_but_not_in_the_current_terms(acme, clock):
    _, agent, _ = acme
    late = [late_high(agent, day) for day in (23, 24, 25)]
    body = replay(agent, demo_contract(**{"penalties.late_first_response": 1000, "penalties.monthly_cap": 1000}))
    assert body["current"]["penalties"] == {"total": 600, "capped": False}
    assert body["candidate"]["penalties"] == {"total": 1000, "capped": True}
    assert body["candidate"]["breaches"]["first_response"] == 3
    # The cap binds the month, not a request: each request's own penalty is before it.
    assert [(e["request_id"], e["candidate"]["penalty"]) for e in body["changed"]] == [(r, 1000) for r in late]


def test_a_candidate_calendar_with_an_extra_holiday_moves_deadlines(acme, clock):
    _, agent, _ = acme
    # Thursday 26 Nov 16:00 + 2 business hours: one on Thursday, one Friday morning, due Friday 10:00.
    # Answered Friday 11:00: late. With Friday a holiday the deadline moves to Monday 10:00: on time.
    moved = request(agent, "high", local(26, 16), [("respond", local(27, 11)), ("resolve", local(27, 11, 30))])
    holiday = demo_contract(**{"calendar.extra_holidays": ["2026-06-01", "2026-11-27"]})
    body = replay(agent, holiday)
    assert body["changed"] == [{"request_id": moved, "current": {"breached": ["first_response"], "penalty": 200},
                                "candidate": {"breached": [], "penalty": 0}}]


def test_only_the_requests_received_in_the_month_are_replayed(acme, clock):
    admin, agent, _ = acme
    request(agent, "high", local(31, 23, 59, month=10))
    request(agent, "high", local(1, 0))
    request(agent, "high", local(30, 23, 59))  # due on 1 December: nothing of it counts in November
    request(agent, "high", local(1, 0, month=12))
    body = replay(admin, DEMO_CONTRACT)
    assert body["requests"] == 2
    # Received on Saturday 31 October, the first is due on Monday 2 November like the second: not counted.
    assert body["current"]["breaches"] == {"first_response": 1, "progress_update": 0, "resolution": 1}


def test_the_running_month_is_evaluated_now(acme):
    _, agent, _ = acme
    with time_machine.travel(local(23, 12), tick=False):
        # Due 11:00 under the 2 hours in force; at 4 hours due 14:00, still ahead at noon.
        waiting = request(agent, "high", local(23, 9))
        body = replay(agent, demo_contract(**{"priorities.high.first_response": "4h"}))
    assert body["evaluated_at"] == "2026-11-23T12:00:00+08:00"
    assert body["changed"] == [{"request_id": waiting, "current": {"breached": ["first_response"], "penalty": 200},
                                "candidate": {"breached": [], "penalty": 0}}]


@pytest.mark.parametrize(("field", "value"), [
    ("priorities.high.first_response", "2x"),
    ("priorities.high.first_response", "401wd"),  # a limit a new document must meet
    ("calendar.hours", [["09:00", "12:00"], ["11:00", "17:00"]]),
    ("timezone", "Mars/Olympus"),
    ("penalties.monthly_cap", -1),
    ("colour", "blue"),
])
def test_a_bad_candidate_is_refused_as_a_put_refuses_it_naming_the_field_inside_contract(acme, clock, field, value):
    admin, agent, _ = acme
    document = demo_contract(**{field: value})
    put_status, refused = admin.put("/contracts/acme", document)
    status, body = simulate(agent, document)
    assert put_status == status == 400
    assert body == {"Code": "BadRequestError", "Message": f"contract.{refused['Message']}",
                    "Errors": [{"Field": f"contract.{e['Field']}", "Message": e["Message"]} for e in refused["Errors"]]}
    assert body["Message"].startswith(f"contract.{field}")


@pytest.mark.parametrize(("body", "field"), [
    ({"month": "2026-11"}, "contract"),
    ({"contract": ["not", "an", "object"], "month": "2026-11"}, "contract"),
    ({"contract": DEMO_CONTRACT}, "month"),
    ({"contract": DEMO_CONTRACT, "month": "2026-13"}, "month"),
    ({"contract": DEMO_CONTRACT, "month": "２０２６-11"}, "month"),
    ({"contract": DEMO_CONTRACT, "month": "0000-01"}, "month"),
    ({"contract": DEMO_CONTRACT, "month": "2027-01"}, "month"),  # in the future
    ({"contract": DEMO_CONTRACT, "month": "2026-11", "priorities": []}, "priorities"),
    ({"contract": DEMO_CONTRACT, "month": "2026-11", "priorities": ["critical"]}, "priorities"),
    ({"contract": DEMO_CONTRACT, "month": "2026-11", "dry_run": False}, "dry_run"),
])
def test_a_bad_body_or_a_future_month_is_refused_naming_the_field(acme, clock, body, field):
    admin, _, _ = acme
    status, answer = admin.post("/contracts/acme/simulations", body)
    assert status == 400 and answer["Message"].startswith(f"{field}:"), answer


def test_december_is_refused_in_the_last_minute_of_november_and_replayed_from_its_first(acme):
    admin, _, _ = acme
    with time_machine.travel(local(30, 23, 59)):
        status, body = simulate(admin, DEMO_CONTRACT, "2026-12")
        assert status == 400 and body["Message"] == "month: must not lie in the future"
    with time_machine.travel(local(1, 0, 1, month=12)):
        assert replay(admin, DEMO_CONTRACT, "2026-12")["requests"] == 0


def test_client_tokens_are_refused_and_agents_see_their_own_contract_only(acme, clock):
    admin, agent, client = acme
    status, body = simulate(client, DEMO_CONTRACT)
    assert status == 403 and body["Code"] == "ForbiddenError"
    assert simulate(client.as_token(None), DEMO_CONTRACT)[0] == 401
    assert admin.put("/contracts/other", DEMO_CONTRACT)[0] == 201
    assert agent.post("/contracts/other/simulations", {"contract": DEMO_CONTRACT, "month": "2026-11"})[0] == 403
    assert admin.post("/contracts/missing/simulations", {"contract": DEMO_CONTRACT, "month": "2026-11"})[0] == 404
    assert simulate(agent, DEMO_CONTRACT)[0] == 200


def test_nothing_is_written_and_nothing_is_sent_and_the_month_is_read_once(acme, clock, mailbox, monkeypatch):
    admin, agent, _ = acme
    late_high(agent, 23)
    request(agent, "medium", local(24, 9))  # open: its breach is due for alerts, and nothing sends them
    tally(admin, "2026-11-23")
    sent = len(mailbox.messages())
    calls = []
    original = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        calls.append((operation, params.get("TableName"), params.get("IndexName")))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    body = replay(agent, demo_contract(**{"priorities.high.first_response": "4h"}))
    monkeypatch.undo()
    assert body["requests"] == 2 and body["changed_total"] == 1
    assert [c for c in calls if c[0] in WRITES or c[0] in SES] == []
    assert [c for c in calls if c[1] == RequestModel.Meta.table_name] == [
        ("Query", RequestModel.Meta.table_name, "by_contract")]
    assert len(mailbox.messages()) == sent


def test_a_month_over_the_limit_is_refused_with_how_to_narrow_it_and_priorities_narrow_it(acme, clock, monkeypatch):
    admin, agent, _ = acme
    monkeypatch.setattr(simulations, "MAX_REQUESTS", 2)
    high = [late_high(agent, day) for day in (23, 24)]
    request(agent, "medium", local(25, 9), [("respond", local(25, 10))])
    status, body = simulate(admin, DEMO_CONTRACT)
    assert status == 400
    assert body["Message"].startswith("month: 2026-11 has more than 2 requests to replay")
    assert '"priorities"' in body["Message"]
    narrowed = replay(admin, demo_contract(**{"priorities.high.first_response": "4h"}), priorities=["high"])
    assert (narrowed["requests"], narrowed["priorities"]) == (2, ["high"])
    assert [entry["request_id"] for entry in narrowed["changed"]] == high
    assert set(narrowed["current"]["on_time_rate"]) == {"high"}


def test_current_agrees_with_the_monthly_report_and_the_same_terms_change_nothing(acme, clock):
    admin, agent, _ = acme
    capped = demo_contract(**{"penalties.monthly_cap": 9000})  # binds on the 30th: every day counts
    assert admin.put("/contracts/acme", capped)[0] == 200
    late_high(agent, 2)
    request(agent, "high", local(3, 9, 30), [("respond", local(3, 10)), ("resolve", local(5, 9, 30))])  # misses
    request(agent, "urgent", local(7, 23), [("respond", local(8, 0, 10)), ("resolve", local(9, 9))])  # days late
    request(agent, "medium", local(10, 16), [("respond", local(11, 9, 30)), ("await_customer", local(11, 10)),
                                             ("customer_reply", local(16, 9)), ("resolve", local(16, 15))])
    request(agent, "low", local(12, 9), [("respond", local(13, 9)), ("resolve", local(13, 10)),
                                         ("reopen", local(18, 9)), ("resolve", local(19, 9))])
    request(agent, "medium", local(20, 9), [("respond", local(20, 15))])  # open: late, never resolved
    request(agent, "high", local(26, 10), [("reprioritize", local(26, 10, 5), {"priority": "urgent"})])
    request(agent, "high", local(27, 9, 10), [("respond", local(27, 9, 20)), ("resolve", local(27, 9, 40))])
    for day in range(1, 31):
        tally(admin, f"2026-11-{day:02d}")
    status, report = admin.get("/contracts/acme/reports?month=2026-11")
    assert status == 200
    assert report["penalties"]["capped"] is True  # the cap takes part in the comparison

    body = replay(agent, capped)
    assert body["requests"] == report["requests"]["received"] == 8
    assert body["current"] == {key: report[key] for key in ("currency", "breaches", "penalties", "on_time_rate")}
    assert body["candidate"] == body["current"]
    assert (body["changed"], body["changed_total"]) == ([], 0)


def test_a_report_month_beyond_the_calendar_is_refused_naming_month(acme, clock):
    admin, _, _ = acme
    for month in ("0000-01", "9999-12"):
        status, body = admin.get(f"/contracts/acme/reports?month={month}")
        assert status == 400 and body["Message"].startswith("month:"), body


def random_request(rng, policy, number, now):
    """A request received at a random instant of November 2026 with a random valid timeline."""
    received = local(1, 0) + timedelta(minutes=rng.randrange(30 * 24 * 60))
    events, at, status, responded, rated = [Event(1, "received", received)], received, "open", False, False
    for seq in range(2, 2 + rng.randrange(8)):
        at += timedelta(minutes=rng.randrange(1, 3000))
        if status == "resolved":
            kind = rng.choice(["reopen"] + ([] if rated else ["rate"]))
        elif status == "awaiting":
            kind = "customer_reply"
        else:
            kind = rng.choice(["progress", "await_customer", "resolve"] if responded else ["respond", "resolve"])
        events.append(Event(seq, kind, at, score=rng.randint(1, 5) if kind == "rate" else None))
        responded = responded or kind in ("respond", "resolve")
        rated = (rated or kind == "rate") and kind != "reopen"
        status = {"resolve": "resolved", "reopen": "open", "await_customer": "awaiting",
                  "customer_reply": "open"}.get(kind, status)
    facts = RequestFacts(priority=rng.choice(EXAMPLE_PRIORITIES), designated=True, received_at=received)
    return Evaluated(f"req_{number}", received, evaluate(policy, facts, events, now), policy.penalties)


def test_tally_month_gives_each_day_the_tally_of_every_request():
    _, policy = parse_contract(DEMO_CONTRACT)
    rng, now = random.Random(15), local(20, 12, month=12)
    requests = [random_request(rng, policy, n, now) for n in range(300)]
    days = [local(1, 0).date() + timedelta(days=n) for n in range(30)]
    everything = [tally_day(day, SH, requests) for day in days]
    quiet = {day.date: DayTally(date=day.date).as_dict() for day in everything}
    expected = {day.date: day.as_dict() for day in everything if day.as_dict() != quiet[day.date]}
    assert len(expected) == 30
    assert {day.date: day.as_dict() for day in tally_month((2026, 11), SH, requests)} == expected


BERLIN = ZoneInfo("Europe/Berlin")  # October 2026 has a 25-hour day (the 25th)
OCTOBER = (2026, 10)
OCTOBER_PENALTIES = Penalties(late_first_response=200, late_progress=50, late_resolution_per_day=0.1)


@st.composite
def instants(draw):
    """An instant around October 2026 in Berlin, often exactly on a local midnight or just before one."""
    day = date(2026, 10, 1) + timedelta(days=draw(st.integers(-2, 32)))
    midnight = day_bounds(day, BERLIN)[0].astimezone(UTC)
    offset = draw(st.sampled_from([timedelta(0), -timedelta(microseconds=1), None]))
    return midnight + (offset if offset is not None else timedelta(seconds=draw(st.integers(0, 86_399))))


@st.composite
def evaluated_requests(draw, number):
    """A request as the tally reads it, with a random set of milestones of every kind (penalty days too)
    and random moments: received, first response, resolves, ratings."""
    maybe = st.none() | instants()
    milestones = [Milestone(kind, metric, draw(st.integers(0, 3)), draw(instants()))
                  for kind, metric in draw(st.lists(st.sampled_from(
                      [("breach", FIRST_RESPONSE), ("breach", PROGRESS_UPDATE), ("breach", RESOLUTION),
                       ("penalty_day", RESOLUTION), ("warn", RESOLUTION)]), max_size=8))]
    first_response_at, resolves = draw(maybe), draw(st.lists(instants(), max_size=3))
    metrics = {FIRST_RESPONSE: MetricState(None, first_response_at, draw(st.booleans()), None),
               RESOLUTION: MetricState(None, resolves[-1] if resolves else None, draw(st.booleans()), None)}
    state = SlaState(status="open", priority=draw(st.sampled_from(EXAMPLE_PRIORITIES)), clock_started_at=None,
                     paused=False, metrics=metrics, penalty=0, milestones=sorted(milestones, key=lambda m: m.at),
                     next_check_at=None, contract_version=1, first_response_at=first_response_at, resolves=resolves,
                     ratings=[(at, draw(st.integers(1, 5))) for at in draw(st.lists(instants(), max_size=2))])
    return Evaluated(f"req_{number}", draw(instants()), state, OCTOBER_PENALTIES,
                     draw(st.sampled_from([None, "complaint"])))


@given(st.lists(st.integers(), max_size=12).flatmap(
    lambda numbers: st.tuples(*(evaluated_requests(n) for n in range(len(numbers))))))
@settings(max_examples=150)
def test_the_month_in_one_pass_gives_every_day_its_own_tally_and_counts_each_milestone_once(requests):
    start, end = (bound.astimezone(UTC) for bound in month_bounds(OCTOBER, BERLIN))
    month = {day.date: day.as_dict() for day in tally_month(OCTOBER, BERLIN, requests)}
    days = [date(2026, 10, 1) + timedelta(days=n) for n in range(31)]
    for day in days:
        alone = tally_day(day, BERLIN, requests).as_dict()
        assert month.get(day.isoformat(), DayTally(date=day.isoformat()).as_dict()) == alone
    inside = [(request, m) for request in requests for m in request.state.milestones if start <= m.at < end]
    assert sum(day["penalties_raw"] for day in month.values()) == pytest.approx(sum(
        {"breach": {FIRST_RESPONSE: 200, PROGRESS_UPDATE: 50}, "penalty_day": {RESOLUTION: 0.1}}
        .get(m.kind, {}).get(m.metric, 0) for _, m in inside))
    assert sum(sum(sum(by_priority.values()) for by_priority in day["breaches"].values())
               for day in month.values()) == sum(m.kind == "breach" for _, m in inside)


def categorized(agent, category, priority, received, events):
    """A request of `category` received at `received` (local), with backdated events [(type, at)]."""
    body = {"contract_id": "acme", "priority": priority, "category": category, "channel": "portal",
            "subject": "投诉", "requester": {"email": "zhang@customer.example"}, "received_at": received.isoformat()}
    status, created = agent.post("/requests", body)
    assert status == 201, created
    for kind, at in events:
        status, answer = agent.post(f"/requests/{created['request_id']}/events", {"type": kind, "at": at.isoformat()})
        assert status == 200, answer
    return created["request_id"]


def test_the_same_terms_with_categories_change_nothing_and_agree_with_the_tally(acme, clock):
    """A complaint answered after its priority's 2 hours but within its category's 4: on time as it
    happened, and on time again when replayed under the very same contract."""
    admin, agent, _ = acme
    terms = demo_contract(categories={"complaint": {"first_response": "4h", "resolution": "2wd"}})
    assert admin.put("/contracts/acme", terms)[0] == 200
    on_time = categorized(agent, "complaint", "high", local(23, 10),
                          [("respond", local(23, 13, 30)), ("resolve", local(24, 16))])  # resolved: frozen
    running = categorized(agent, "complaint", "high", local(26, 10), [("respond", local(26, 13, 30))])  # open
    late_high(agent, 27)  # no category: late under either reading
    for day in range(23, 31):
        tally(admin, f"2026-11-{day:02d}")
    report = admin.get("/contracts/acme/reports?month=2026-11")[1]
    assert agent.get(f"/requests/{on_time}")[1]["sla"]["first_response"]["breached"] is False
    assert agent.get(f"/requests/{running}")[1]["sla"]["first_response"]["breached"] is False

    body = replay(agent, terms)
    assert (body["changed"], body["changed_total"]) == ([], 0)
    assert body["candidate"] == body["current"]
    assert body["current"] == {key: report[key] for key in ("currency", "breaches", "penalties", "on_time_rate")}
    assert body["current"]["breaches"]["first_response"] == 1  # the request without a category only


def test_a_candidate_without_the_category_shows_what_the_category_saved(acme, clock):
    admin, agent, _ = acme
    terms = demo_contract(categories={"complaint": {"first_response": "4h"}})
    assert admin.put("/contracts/acme", terms)[0] == 200
    saved = categorized(agent, "complaint", "high", local(23, 10),
                        [("respond", local(23, 13, 30)), ("resolve", local(23, 16))])
    body = replay(agent, demo_contract(categories={"complaint": {"first_response": "2h"}}))
    assert body["changed"] == [{"request_id": saved, "current": {"breached": [], "penalty": 0},
                                "candidate": {"breached": ["first_response"], "penalty": 200}}]


def test_a_request_read_with_the_month_query_projection_evaluates_like_the_whole_item(acme, clock):
    """The month's query returns only store.EVALUATION_ATTRIBUTES: a request read that way must
    evaluate exactly like the whole item (an attribute the evaluation needs beyond them would read as
    null there, and the what-if would evaluate another request: a category's or kept targets lost)."""
    from chalicelib import evaluation
    from chalicelib.aws import records, store

    admin, agent, _ = acme
    terms = demo_contract(categories={"complaint": {"first_response": "4h"}})
    with_vip = demo_contract(categories=terms["categories"],
                             priorities={**terms["priorities"], "vip": {"first_response": "1h", "resolution": "4h"}})
    assert admin.put("/contracts/acme", with_vip)[0] == 200
    histories = {23: [("respond", local(23, 11))],  # open
                 24: [("respond", local(24, 11)), ("resolve", local(24, 12))],  # resolved: frozen
                 25: [("resolve", local(25, 12)), ("reopen", local(25, 13))]}  # reopened
    ids = [categorized(agent, "complaint", "high", local(day, 10), events) for day, events in histories.items()]
    kept = categorized(agent, None, "vip", local(26, 10), [("resolve", local(26, 12))])
    assert admin.put("/contracts/acme", terms)[0] == 200
    assert agent.post(f"/requests/{kept}/events", {"type": "reopen"})[0] == 200  # keeps vip's targets
    latest = evaluation.policy_of(store.latest_record("acme"))
    for request_id in [*ids, kept]:
        whole = store.get_request(request_id)
        projected = records.stored_request(RequestModel.get(request_id, attributes_to_get=store.EVALUATION_ATTRIBUTES))
        assert projected.subject is None and whole.subject is not None  # the projection leaves the rest out
        states = []
        for stored in (whole, projected):
            policy = latest if stored.status != "resolved" else evaluation.resolved_policy(stored, {}, latest)
            states.append(evaluation.state_of(stored, policy, local(30, 12)))
        assert states[0] == states[1], request_id
