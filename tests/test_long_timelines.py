"""A request can live long: 10,000 events and more, posts that cost the same at any length, and the
timeline read newest page first with a cursor to the older events."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import factories
import pytest
import time_machine
from botocore.client import BaseClient

from chalicelib import evaluation, requests
from chalicelib.aws import store
from chalicelib.aws.tables import EventModel, RequestModel
from chalicelib.aws.timeline_codec import pack, unpack
from chalicelib.core.facts import Event
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


@pytest.fixture
def at_monday_10():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def long_request(size):
    """A request of acme with `size` events, the last a minute before Monday 10:00."""
    policy = evaluation.policy_of(store.latest_contract("acme"))
    return factories.long_request(policy, "acme", size, MONDAY_10 - timedelta(minutes=1)).request_id


def all_pages(token, request_id, listing="events", field="seq", **params):
    """Every page of GET /requests/{id}/<listing> from the newest on: [(each item's `field`, next)]."""
    pages, query = [], dict(params)
    while True:
        path = f"/requests/{request_id}/{listing}?" + "&".join(f"{k}={v}" for k, v in query.items())
        status, body = token.get(path)
        assert status == 200, body
        pages.append(([item[field] for item in body["items"]], body["next"]))
        if body["next"] is None:
            return pages
        query["next"] = body["next"]


def test_ten_thousand_events_then_posts_and_a_resolve_through_the_api(acme, at_monday_10):
    _, agent, _ = acme
    request_id = long_request(10_000)
    # The JSON timeline was 800 KB at this length; DynamoDB's limit is 400 KB.
    assert factories.item_bytes(RequestModel.get(request_id)) < 100_000
    for body in ({"type": "progress", "note": "仍在处理"}, {"type": "progress"}, {"type": "resolve", "note": "已修复"}):
        status, document = agent.post(f"/requests/{request_id}/events", body)
        assert status == 200, document
    assert document["status"] == "resolved"
    assert document["sla"]["resolution"]["met_at"] == "2026-11-23T10:00:00+08:00"
    assert [e["seq"] for e in document["events"]] == list(range(9_904, 10_004))
    assert document["events"][-1] == {"seq": 10_003, "type": "resolve", "at": "2026-11-23T10:00:00+08:00",
                                      "by": document["events"][-1]["by"], "note": "已修复"}

    status, read = agent.get(f"/requests/{request_id}")
    assert status == 200 and read["events"] == document["events"]
    status, older = agent.get(f"/requests/{request_id}/events?next={read['events_next']}")
    assert [e["seq"] for e in older["items"]] == list(range(9_804, 9_904)) and older["next"]


def test_paging_from_the_request_document_reads_every_event_exactly_once(acme, at_monday_10):
    _, agent, _ = acme
    request_id = long_request(1_050)
    document = agent.get(f"/requests/{request_id}")[1]
    pages = all_pages(agent, request_id, next=document["events_next"])
    assert [len(seqs) for seqs, _ in pages] == [100] * 9 + [50]
    seqs = [seq for page, _ in reversed(pages) for seq in page] + [e["seq"] for e in document["events"]]
    assert seqs == list(range(1, 1_051))
    big_pages = all_pages(agent, request_id, limit=1000)
    assert [seqs for seqs, _ in big_pages] == [list(range(51, 1_051)), list(range(1, 51))]


def test_a_request_shows_its_newest_100_events_oldest_first_and_a_cursor_to_the_rest(acme, at_monday_10):
    _, agent, client = acme
    request_id = long_request(150)
    status, document = client.get(f"/requests/{request_id}")
    assert status == 200
    assert [e["seq"] for e in document["events"]] == list(range(51, 151))
    assert document["events"][0] == {"seq": 51, "type": document["events"][0]["type"],
                                     "at": document["events"][0]["at"], "by": "factory", "note": "note 51"}
    status, older = client.get(f"/requests/{request_id}/events?next={document['events_next']}")
    assert status == 200 and [e["seq"] for e in older["items"]] == list(range(1, 51)) and older["next"] is None
    pages = all_pages(agent, request_id, limit=60)
    assert [seqs for seqs, _ in pages] == [list(range(91, 151)), list(range(31, 91)), list(range(1, 31))]
    assert [cursor is None for _, cursor in pages] == [False, False, True]


def test_a_new_request_has_no_older_events(acme, at_monday_10):
    _, agent, _ = acme
    status, created = agent.post("/requests", REQUEST)
    assert status == 201 and created["events_next"] is None and len(created["events"]) == 1
    assert agent.get(f"/requests/{created['request_id']}/events") == (200, {"items": created["events"], "next": None})


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"),
    ("limit=%D9%A1%D9%A0", "limit"),  # Arabic-Indic digits: str.isdigit() says yes, int() would take them
    ("limit=%C2%B2", "limit"),  # superscript two: isdigit() but not a number int() reads
    ("next=not-a-cursor", "next"), ("next=", "next"), ("next=e30", "next"),  # e30 = base64 of {}
    ("page=2", "page"),
])
def test_bad_paging_parameters_are_a_400_naming_the_parameter(acme, at_monday_10, query, field):
    _, agent, _ = acme
    request_id = long_request(5)
    status, body = agent.get(f"/requests/{request_id}/events?{query}")
    assert status == 400 and body["Message"].startswith(f"{field}:"), body


def test_a_cursor_of_another_request_is_refused(acme, at_monday_10):
    _, agent, _ = acme
    first, second = long_request(120), long_request(120)
    cursor = agent.get(f"/requests/{first}")[1]["events_next"]
    status, body = agent.get(f"/requests/{second}/events?next={cursor}")
    assert status == 400 and body["Message"] == "next: belongs to another request"


def test_events_of_another_contracts_request_answer_like_a_missing_one(acme, admin, at_monday_10):
    _, agent, _ = acme
    request_id = long_request(5)
    admin.put("/contracts/other", DEMO_CONTRACT)
    outsider = admin.as_token(admin.post("/tokens", {"role": "agent", "contract_id": "other"})[1]["token"])
    assert outsider.get(f"/requests/{request_id}/events")[0] == 404
    assert outsider.get("/requests/req_missing/events")[0] == 404
    assert agent.get(f"/requests/{request_id}/events")[0] == 200


class Calls:
    """DynamoDB calls and the items their answers carry, counted at botocore."""

    def __init__(self, monkeypatch):
        self.calls, self.items = 0, 0
        original = BaseClient._make_api_call

        def counting(client, operation, params):
            answer = original(client, operation, params)
            if client.meta.service_model.service_name == "dynamodb":
                self.calls += 1
                self.items += len(answer.get("Items", [])) + ("Item" in answer)
            return answer

        monkeypatch.setattr(BaseClient, "_make_api_call", counting)


def test_a_post_makes_the_same_dynamodb_calls_and_reads_at_150_and_1000_events(acme, at_monday_10, monkeypatch):
    _, agent, _ = acme
    short, long = long_request(150), long_request(1_000)
    assert agent.get(f"/requests/{short}/events?limit=1")[0] == 200  # the token's use is stamped here, once a minute
    calls = Calls(monkeypatch)
    costs = []
    for request_id in (short, long):
        before = (calls.calls, calls.items)
        assert agent.post(f"/requests/{request_id}/events", {"type": "progress"})[0] == 200
        costs.append((calls.calls - before[0], calls.items - before[1]))
    assert costs[0] == costs[1]


def test_past_the_most_events_a_request_keeps_a_post_is_a_409_and_nothing_is_stored(acme, at_monday_10, monkeypatch):
    _, agent, _ = acme
    monkeypatch.setattr(requests, "MAX_EVENTS", 3)
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    assert agent.post(f"/requests/{request_id}/events", {"type": "respond"})[0] == 200
    assert agent.post(f"/requests/{request_id}/events", {"type": "progress"})[0] == 200
    status, body = agent.post(f"/requests/{request_id}/events", {"type": "resolve"})
    assert status == 409 and "3 events" in body["Message"]
    assert EventModel.count(request_id) == 3


def test_the_packed_timeline_round_trips_every_field_and_instant():
    shanghai = datetime(2026, 11, 23, 10, 0, 0, 1, tzinfo=SH)
    timeline = (
        Event(1, "received", shanghai),
        Event(2, "register", shanghai + timedelta(microseconds=1), channel="门户"),
        Event(3, "reprioritize", shanghai + timedelta(days=400), priority="urgent"),
        Event(4, "resolve", shanghai + timedelta(days=400)),
        Event(5, "rate", datetime(2027, 12, 28, 2, 0, tzinfo=UTC), score=5),
    )
    assert unpack(pack(timeline)) == timeline
    assert all(event.at.tzinfo == UTC for event in unpack(pack(timeline)))
    with pytest.raises(ValueError, match="seq"):
        pack([timeline[0], timeline[2]])
