"""Requests and events end to end: `chalice.test.Client` + moto + time-machine (see docs/api.md)."""
import json
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from chalicelib import requests
from chalicelib.aws.tables import EventModel, RequestModel
from chalicelib.core.errors import ConflictError
from chalicelib.tokens import authenticate
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "description": "登录页报错 500", "requester": {"name": "张三", "email": "zhang@customer.example"}}
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)


@pytest.fixture
def at_monday_10():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def create(token, **changes):
    status, body = token.post("/requests", {**REQUEST, **changes})
    assert status == 201, body
    return body


def event(token, request_id, **body):
    return token.post(f"/requests/{request_id}/events", body)


def test_design_example_high_priority_request_from_friday_1630(acme):
    _, agent, _ = acme
    with time_machine.travel(datetime(2026, 2, 13, 16, 45, tzinfo=SH), tick=False):
        body = create(agent, received_at="2026-02-13T16:30:00+08:00")
    assert body["status"] == "open" and body["clock_started_at"] == "2026-02-13T16:30:00+08:00"
    fr = body["sla"]["first_response"]
    assert fr == {"due_at": "2026-02-14T10:30:00+08:00", "met_at": None, "breached": False, "remaining_minutes": 105,
                  "provisional": False}
    assert body["sla"]["progress_update"] == {"due_at": None, "met_at": None, "breached": False,
                                              "remaining_minutes": None, "provisional": False, "misses": 0}
    # 8 business hours: 30 min Friday, 7 h on make-up Saturday 14 Feb, then the Spring Festival until 24 Feb.
    assert body["sla"]["resolution"]["due_at"] == "2026-02-24T09:30:00+08:00"
    assert body["penalty"] == {"amount": 0, "currency": "CNY"}
    assert body["events"] == [{"seq": 1, "type": "received", "at": "2026-02-13T16:30:00+08:00",
                               "by": body["events"][0]["by"]}]


def test_created_request_reads_back_identically(acme, at_monday_10):
    _, agent, client = acme
    created = create(client)
    assert client.get(f"/requests/{created['request_id']}") == (200, created)
    status, seen_by_agent = agent.get(f"/requests/{created['request_id']}")
    agents_only = ("notifications", "notifications_next")
    assert status == 200 and {k: v for k, v in seen_by_agent.items() if k not in agents_only} == created
    assert created["received_at"] == "2026-11-23T10:00:00+08:00"
    assert created["description"] == "登录页报错 500"


def test_a_metric_the_contract_does_not_set_is_absent(acme, at_monday_10):
    _, agent, _ = acme
    body = create(agent, priority="medium")
    assert set(body["sla"]) == {"first_response", "resolution"}


def test_respond_meets_the_first_response_and_starts_the_progress_cycle(acme, at_monday_10):
    _, agent, _ = acme
    request_id = create(agent)["request_id"]
    at_monday_10.move_to(datetime(2026, 11, 23, 11, 0, tzinfo=SH))
    status, body = event(agent, request_id, type="respond", note="已收到，正在排查")
    assert status == 200
    assert body["sla"]["first_response"]["met_at"] == "2026-11-23T11:00:00+08:00"
    assert body["sla"]["first_response"]["remaining_minutes"] == 60
    assert body["sla"]["progress_update"]["due_at"] == "2026-11-23T16:00:00+08:00"
    assert body["events"][-1]["note"] == "已收到，正在排查" and body["events"][-1]["seq"] == 2


def test_every_event_type_through_the_api(acme, at_monday_10):
    admin, agent, client = acme
    request_id = create(agent)["request_id"]
    steps = [
        (agent, {"type": "respond"}, "open"),
        (agent, {"type": "progress", "note": "定位到数据库连接池"}, "open"),
        (agent, {"type": "await_customer", "note": "请提供报错截图"}, "awaiting_customer"),
        (client, {"type": "customer_reply"}, "open"),
        (agent, {"type": "reprioritize", "priority": "urgent"}, "open"),
        (agent, {"type": "resolve", "note": "已修复"}, "resolved"),
        (client, {"type": "rate", "score": 5}, "resolved"),
        (client, {"type": "reopen"}, "open"),
        (admin, {"type": "resolve"}, "resolved"),
    ]
    for minute, (token, body, status_after) in enumerate(steps, start=1):
        at_monday_10.move_to(datetime(2026, 11, 23, 10, minute, tzinfo=SH))
        status, answer = event(token, request_id, **body)
        assert status == 200, (body, answer)
        assert answer["status"] == status_after
    assert [e["type"] for e in answer["events"]] == ["received"] + [b["type"] for _, b, _ in steps]
    assert answer["priority"] == "urgent" and answer["rating"] == 5


def test_register_starts_the_clock_of_a_request_from_another_channel(acme, at_monday_10):
    _, agent, _ = acme
    body = create(agent, channel="wechat")
    assert body["clock_started_at"] is None
    assert all(metric["due_at"] is None for metric in body["sla"].values())
    at_monday_10.move_to(datetime(2026, 11, 23, 14, 0, tzinfo=SH))
    status, body = event(agent, body["request_id"], type="register", channel="portal")
    assert status == 200
    assert body["clock_started_at"] == "2026-11-23T14:00:00+08:00"
    assert body["sla"]["first_response"]["due_at"] == "2026-11-23T16:00:00+08:00"
    assert body["events"][-1]["channel"] == "portal"


def test_register_needs_a_designated_target_channel(acme, at_monday_10):
    _, agent, _ = acme
    request_id = create(agent, channel="wechat")["request_id"]
    status, body = event(agent, request_id, type="register", channel="fax")
    assert status == 400 and "channel" in body["Message"]


def test_impossible_transitions_are_409_and_change_nothing(acme, at_monday_10):
    _, agent, _ = acme
    request_id = create(agent)["request_id"]
    assert event(agent, request_id, type="respond")[0] == 200
    before = agent.get(f"/requests/{request_id}")[1]
    for body in ({"type": "respond"}, {"type": "customer_reply"}, {"type": "reopen"},
                 {"type": "register"}, {"type": "reprioritize", "priority": "high"}):
        status, answer = event(agent, request_id, **body)
        assert status == 409 and answer["Code"] == "ConflictError", body
    assert event(agent, request_id, type="await_customer")[0] == 200
    assert event(agent, request_id, type="await_customer")[0] == 409
    assert event(agent, request_id, type="resolve")[0] == 200
    assert event(agent, request_id, type="resolve")[0] == 409
    after = agent.get(f"/requests/{request_id}")[1]
    assert len(after["events"]) == len(before["events"]) + 2
    assert len(list(EventModel.query(request_id))) == len(after["events"])


def test_event_times_may_not_precede_the_previous_event_nor_lie_in_the_future(acme, at_monday_10):
    _, agent, _ = acme
    request_id = create(agent)["request_id"]
    status, body = event(agent, request_id, type="respond", at="2026-11-23T09:00:00+08:00")
    assert status == 400 and "at" in body["Message"]
    status, body = event(agent, request_id, type="respond", at="2026-11-23T11:00:00+08:00")
    assert status == 400 and "future" in body["Message"]
    status, body = event(agent, request_id, type="respond", at="2026-11-23T10:00:00+08:00")
    assert status == 200


def test_backdating_is_for_agents_and_admins_only(acme, at_monday_10):
    _, agent, client = acme
    status, body = client.post("/requests", {**REQUEST, "received_at": "2026-11-23T09:00:00+08:00"})
    assert status == 400 and "received_at" in body["Message"]
    status, body = agent.post("/requests", {**REQUEST, "received_at": "2026-11-24T09:00:00+08:00"})
    assert status == 400 and "future" in body["Message"]
    request_id = create(client)["request_id"]
    status, body = event(client, request_id, type="customer_reply", at="2026-11-23T10:00:00+08:00")
    assert status in (400, 409)


def test_clients_may_reply_reopen_and_rate_but_not_run_the_request(acme, at_monday_10):
    _, agent, client = acme
    request_id = create(client)["request_id"]
    for kind in ("respond", "progress", "resolve", "await_customer", "register"):
        status, body = event(client, request_id, type=kind)
        assert status == 403, kind
    event(agent, request_id, type="resolve")
    assert event(agent, request_id, type="rate", score=5)[0] == 403
    assert event(client, request_id, type="rate", score=4)[0] == 200


@pytest.mark.parametrize("body, field", [
    ({}, "type"),
    ({"type": "escalate"}, "type"),
    ({"type": "received"}, "type"),
    ({"type": "respond", "note": 42}, "note"),
    ({"type": "respond", "note": "x" * 4001}, "note"),
    ({"type": "respond", "at": "yesterday"}, "at"),
    ({"type": "respond", "at": "2026-11-23T09:30:00"}, "at"),
    ({"type": "respond", "score": 5}, "score"),
    ({"type": "respond", "priority": "low"}, "priority"),
    ({"type": "respond", "extra": 1}, "extra"),
    ({"type": "reprioritize"}, "priority"),
    ({"type": "reprioritize", "priority": "critical"}, "priority"),
    ({"type": "rate", "score": 6}, "score"),
    ({"type": "rate", "score": "5"}, "score"),
    ({"type": "rate", "score": True}, "score"),
    ({"type": "register", "channel": ""}, "channel"),
])
def test_bad_event_fields_are_400_naming_the_field(acme, at_monday_10, body, field):
    admin, _, _ = acme
    request_id = create(admin)["request_id"]
    status, answer = event(admin, request_id, **body)
    assert status == 400 and answer["Message"].startswith(field), answer


@pytest.mark.parametrize("changes, field", [
    ({"contract_id": None}, "contract_id"),
    ({"priority": "critical"}, "priority"),
    ({"priority": None}, "priority"),
    ({"channel": ""}, "channel"),
    ({"channel": "c" * 65}, "channel"),
    ({"channel": 7}, "channel"),
    ({"subject": ""}, "subject"),
    ({"subject": "s" * 201}, "subject"),
    ({"subject": ["list"]}, "subject"),
    ({"description": 5}, "description"),
    ({"requester": "zhang@customer.example"}, "requester"),
    ({"requester": {"name": "张三"}}, "requester.email"),
    ({"requester": {"email": "not-an-email"}}, "requester.email"),
    ({"requester": {"email": "a@b.example", "phone": "110"}}, "requester.phone"),
    ({"requester": {"email": "a@b.example", "name": ""}}, "requester.name"),
    ({"received_at": "2026-13-01T00:00:00+08:00"}, "received_at"),
    ({"received_at": "1999-12-31T00:00:00+08:00"}, "received_at"),
    ({"urgent": True}, "urgent"),
])
def test_bad_request_fields_are_400_naming_the_field_and_nothing_is_stored(acme, at_monday_10, changes, field):
    admin, _, _ = acme
    body = {**REQUEST, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    status, answer = admin.post("/requests", body)
    assert status == 400 and answer["Message"].startswith(field), answer
    assert RequestModel.count() == 0


def test_a_request_for_another_contract_is_refused(acme, at_monday_10):
    admin, agent, _ = acme
    admin.put("/contracts/other", DEMO_CONTRACT)
    status, _ = agent.post("/requests", {**REQUEST, "contract_id": "other"})
    assert status == 403
    assert admin.post("/requests", {**REQUEST, "contract_id": "ghost"})[0] == 404


def test_another_contracts_request_looks_missing(acme, at_monday_10):
    admin, agent, _ = acme
    admin.put("/contracts/other", DEMO_CONTRACT)
    outsider = admin.as_token(admin.post("/tokens", {"role": "agent", "contract_id": "other"})[1]["token"])
    request_id = create(agent)["request_id"]
    status, body = outsider.get(f"/requests/{request_id}")
    assert status == 404 and "subject" not in body
    assert event(outsider, request_id, type="respond")[0] == 404
    assert outsider.get("/requests")[1]["items"] == []


def test_idempotency_key_returns_the_first_answer_and_creates_nothing_new(acme, at_monday_10):
    _, agent, client = acme
    headers = {"Idempotency-Key": "ticket-4711"}
    first = agent.post("/requests", REQUEST, headers=headers)
    at_monday_10.move_to(datetime(2026, 11, 23, 11, 0, tzinfo=SH))
    again = agent.post("/requests", REQUEST, headers=headers)
    assert first == again and first[0] == 201
    assert RequestModel.count() == 1
    other_token = client.post("/requests", REQUEST, headers=headers)
    assert other_token[0] == 201 and other_token[1]["request_id"] != first[1]["request_id"]
    reordered = agent.post("/requests", raw=json.dumps(dict(reversed(REQUEST.items())), indent=2), headers=headers)
    assert reordered == first
    status, body = agent.post("/requests", {**REQUEST, "subject": "另一个"}, headers=headers)
    assert status == 409 and "Idempotency-Key" in body["Message"]


def test_idempotency_key_expires_after_24_hours(acme, at_monday_10):
    _, agent, _ = acme
    headers = {"Idempotency-Key": "ticket-4711"}
    first = agent.post("/requests", REQUEST, headers=headers)[1]
    at_monday_10.move_to(datetime(2026, 11, 24, 10, 1, tzinfo=SH))
    later = agent.post("/requests", REQUEST, headers=headers)[1]
    assert later["request_id"] != first["request_id"]


def test_a_failed_first_attempt_does_not_burn_the_idempotency_key(acme, at_monday_10):
    _, agent, _ = acme
    headers = {"Idempotency-Key": "k1"}
    assert agent.post("/requests", {**REQUEST, "priority": "nope"}, headers=headers)[0] == 400
    assert agent.post("/requests", REQUEST, headers=headers)[0] == 201


def test_concurrent_event_posts_never_lose_an_event(acme, at_monday_10):
    # Lambda runs one request per process, but `app.current_request` is shared by threads in one
    # process, so concurrent writers are driven through the service layer the routes call.
    _, agent, _ = acme
    request_id = create(agent)["request_id"]
    event(agent, request_id, type="respond")
    principal = authenticate(f"Bearer {agent.token}")
    outcomes = {}

    def post_progress(n):
        try:
            body = requests.post_event(principal, request_id, {"type": "progress", "note": f"update {n}"}, MONDAY_10)
            outcomes[n] = [e["seq"] for e in body["events"] if e.get("note") == f"update {n}"]
        except ConflictError as exc:  # told to retry: allowed, but then nothing of it may be stored
            outcomes[n] = exc

    threads = [threading.Thread(target=post_progress, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    body = agent.get(f"/requests/{request_id}")[1]
    stored = {e["note"]: e["seq"] for e in body["events"] if e["type"] == "progress"}
    accepted = {f"update {n}": seqs for n, seqs in outcomes.items() if isinstance(seqs, list)}
    # Each lost race means another writer committed, so six writers lose at most five times each.
    assert len(accepted) == 6, outcomes
    assert {note: [seq] for note, seq in stored.items()} == accepted
    assert [e["seq"] for e in body["events"]] == list(range(1, len(body["events"]) + 1))


def test_listing_is_newest_first_with_a_cursor(acme, at_monday_10):
    _, agent, client = acme
    ids = []
    for minute in range(5):
        at_monday_10.move_to(datetime(2026, 11, 23, 10, minute, tzinfo=SH))
        ids.append(create(agent, subject=f"第{minute}号")["request_id"])
    status, page = client.get("/requests?limit=2")
    assert status == 200 and [r["request_id"] for r in page["items"]] == ids[::-1][:2]
    assert "events" not in page["items"][0]
    seen = [r["request_id"] for r in page["items"]]
    while page["next"]:
        page = client.get(f"/requests?limit=2&next={page['next']}")[1]
        seen += [r["request_id"] for r in page["items"]]
    assert seen == ids[::-1]


def test_listing_filters_by_status_and_breach(acme, at_monday_10):
    admin, agent, _ = acme
    late = create(agent, received_at="2026-11-23T09:00:00+08:00", priority="urgent")["request_id"]
    resolved = create(agent)["request_id"]
    event(agent, resolved, type="resolve")
    fresh = create(agent)["request_id"]
    only = lambda query: [r["request_id"] for r in agent.get(f"/requests?{query}")[1]["items"]]  # noqa: E731
    assert only("status=resolved") == [resolved]
    assert set(only("status=open")) == {late, fresh}
    assert only("breached=true") == [late]
    assert set(only("breached=false")) == {resolved, fresh}
    assert only("contract_id=acme&status=open&breached=true&limit=1") == [late]
    assert admin.get("/requests?contract_id=acme")[0] == 200


@pytest.mark.parametrize("query, field", [
    ("status=closed", "status"), ("breached=yes", "breached"), ("limit=0", "limit"), ("limit=101", "limit"),
    ("limit=abc", "limit"), ("next=%%%", "next"), ("next=eyJ4IjoxfQ", "next"), ("sort=asc", "sort"),
    ("contract_id=other", None),
])
def test_bad_listing_parameters_are_400_naming_them(acme, at_monday_10, query, field):
    _, agent, _ = acme
    status, body = agent.get(f"/requests?{query}")
    if field is None:
        assert status == 403
    else:
        assert status == 400 and body["Message"].startswith(field), body


def test_admins_must_name_the_contract_to_list(acme):
    admin, _, _ = acme
    status, body = admin.get("/requests")
    assert status == 400 and "contract_id" in body["Message"]


def test_unknown_request_is_404(acme):
    _, agent, _ = acme
    assert agent.get("/requests/req_missing")[0] == 404
    assert event(agent, "req_missing", type="respond")[0] == 404


def test_a_breach_shows_negative_remaining_minutes_and_the_penalty(acme, at_monday_10):
    _, agent, _ = acme
    request_id = create(agent)["request_id"]
    at_monday_10.move_to(datetime(2026, 11, 23, 14, 30, tzinfo=SH))
    body = agent.get(f"/requests/{request_id}")[1]
    assert body["sla"]["first_response"]["breached"] is True
    assert body["sla"]["first_response"]["remaining_minutes"] == -90
    assert body["breached"] is True and body["penalty"]["amount"] == 200


def test_timestamps_are_rendered_in_the_contract_timezone(acme, at_monday_10):
    _, agent, _ = acme
    body = create(agent, received_at="2026-11-23T01:30:00Z")
    assert body["received_at"] == "2026-11-23T09:30:00+08:00"
