"""The queue view: GET /requests?sort=due orders by the next running deadline (the earliest due_at of
the metrics not yet met, breached ones included), soonest first, then the requests without one,
newest first; due_within keeps those due within a wall-clock duration (overdue included); priority,
status and category filter; pages carry on across both parts. It reads a sparse index sorted by
the next running deadline, so a due-soon query reads what it returns."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import boto3
import factories
import pytest
import time_machine
from chalice.test import Client
from test_hardening_input import RequestReads

from chalicelib import evaluation
from chalicelib.aws import store
from chalicelib.aws.tables import RequestModel
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
REQUESTER = {"name": "张三", "email": "zhang@customer.example"}


def at(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


@pytest.fixture
def monday_10():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller


def create(agent, priority, received, *events):
    body = {"contract_id": "acme", "priority": priority, "channel": "portal", "subject": "queue",
            "requester": REQUESTER, "received_at": received.isoformat()}
    status, document = agent.post("/requests", body)
    assert status == 201, document
    for kind, moment in events:
        status, document = agent.post(f"/requests/{document['request_id']}/events",
                                      {"type": kind, "at": moment.isoformat()})
        assert status == 200, document
    return document["request_id"]


@pytest.fixture
def queue(acme, monday_10):
    """Seven requests at Monday 10:00, by name, with the next running deadline each has (the demo
    contract: business hours 09-12 and 13-17, urgent on a 24x7 clock)."""
    _, agent, _ = acme
    return {
        # high, Friday 10:00: its first response was due Friday 12:00, unmet: overdue, first in line
        "overdue": create(agent, "high", at(20, 10)),
        "urgent": create(agent, "urgent", at(23, 9, 50)),  # 30 min, 24x7: due 10:20
        "high": create(agent, "high", at(23, 9)),  # 2 business hours: due 11:00
        "medium": create(agent, "medium", at(20, 16)),  # 4 business hours from Friday 16:00: Monday 12:00
        # answered: the next running deadline is its progress update, 4 business hours on: 14:10
        "answered": create(agent, "high", at(23, 9, 5), ("respond", at(23, 9, 10))),
        "paused": create(agent, "high", at(23, 9, 30), ("await_customer", at(23, 9, 40))),  # no running clock
        "resolved": create(agent, "low", at(23, 9, 20), ("resolve", at(23, 9, 25))),  # nothing left to run
    }


DUE_ORDER = ["overdue", "urgent", "high", "medium", "answered", "paused", "resolved"]
NEXT_DUE = {"overdue": at(20, 12), "urgent": at(23, 10, 20), "high": at(23, 11), "medium": at(23, 12),
            "answered": at(23, 14, 10), "paused": None, "resolved": None}


def names(queue, page):
    by_id = {request_id: name for name, request_id in queue.items()}
    return [by_id[item["request_id"]] for item in page["items"]]


def listing(client, query):
    status, page = client.get(f"/requests?{query}")
    assert status == 200, page
    return page


def test_sort_due_puts_the_soonest_running_deadline_first_overdue_included_and_the_rest_last_newest_first(queue, acme):
    _, agent, _ = acme
    page = listing(agent, "sort=due")
    assert names(queue, page) == DUE_ORDER and page["next"] is None
    for item in page["items"]:
        expected = NEXT_DUE[names(queue, {"items": [item]})[0]]
        assert item["next_due_at"] == (expected.isoformat() if expected else None)
    newest_first = names(queue, listing(agent, "limit=100"))
    assert newest_first[0] == "urgent" and set(newest_first) == set(DUE_ORDER)


def test_due_within_keeps_what_is_due_by_then_overdue_included(queue, acme):
    _, agent, _ = acme
    assert names(queue, listing(agent, "sort=due&due_within=30m")) == ["overdue", "urgent"]
    assert names(queue, listing(agent, "sort=due&due_within=2h")) == ["overdue", "urgent", "high", "medium"]
    assert names(queue, listing(agent, "sort=due&due_within=1m")) == ["overdue"]


def test_priority_status_and_breached_filter_the_queue(queue, acme):
    admin, agent, _ = acme
    assert names(queue, listing(agent, "sort=due&priority=high")) == ["overdue", "high", "answered", "paused"]
    assert names(queue, listing(agent, "sort=due&status=open")) == ["overdue", "urgent", "high", "medium", "answered"]
    assert names(queue, listing(agent, "sort=due&status=awaiting_customer")) == ["paused"]
    assert names(queue, listing(agent, "sort=due&status=resolved")) == ["resolved"]
    assert names(queue, listing(agent, "sort=due&breached=true")) == ["overdue"]
    assert names(queue, listing(admin, "contract_id=acme&sort=due&due_within=2h&priority=medium")) == ["medium"]
    assert names(queue, listing(agent, "priority=urgent")) == ["urgent"]  # newest first, filtered too


def test_the_queue_pages_across_the_running_deadlines_and_the_rest(queue, acme):
    _, agent, _ = acme
    for limit in (1, 2, 3, 6):
        seen, query = [], f"sort=due&limit={limit}"
        while True:
            page = listing(agent, query)
            assert len(page["items"]) <= limit
            seen += names(queue, page)
            if not page["next"]:
                break
            query = f"sort=due&limit={limit}&next={page['next']}"
        assert seen == DUE_ORDER, limit
    first = listing(agent, "sort=due&due_within=2h&limit=3")
    assert names(queue, first) == ["overdue", "urgent", "high"]
    assert names(queue, listing(agent, f"sort=due&due_within=2h&limit=3&next={first['next']}")) == ["medium"]


def test_an_event_moves_a_request_in_the_queue_at_once(queue, acme):
    _, agent, _ = acme
    assert agent.post(f"/requests/{queue['high']}/events", {"type": "respond"})[0] == 200
    # Its first response met, the next running deadline is its progress update, 4 business hours on: 15:00.
    assert names(queue, listing(agent, "sort=due&due_within=2h")) == ["overdue", "urgent", "medium"]
    assert names(queue, listing(agent, "sort=due&status=open")) == ["overdue", "urgent", "medium", "answered", "high"]
    assert agent.post(f"/requests/{queue['paused']}/events", {"type": "customer_reply"})[0] == 200
    assert "paused" in names(queue, listing(agent, "sort=due&status=open"))


def test_a_lapsed_progress_cycle_moves_down_the_queue_when_the_scanner_next_visits(queue, acme, monday_10):
    _, agent, _ = acme
    from app import app

    assert RequestModel.get(queue["answered"]).next_due_at == at(23, 14, 10).timestamp()
    # At 14:30 the progress update due at 14:10 has lapsed; the next cycle would end Tuesday 10:10,
    # so the resolution, due Tuesday 10:05, is the next running deadline.
    monday_10.move_to(at(23, 14, 30))
    items = listing(agent, "sort=due&priority=high&status=open")["items"]
    answered = next(i for i in items if i["request_id"] == queue["answered"])
    assert answered["next_due_at"] == at(24, 10, 5).isoformat()  # a read evaluates now
    with Client(app) as chalice_client:
        event = chalice_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/scan_deadlines"], region="us-east-1")
        chalice_client.lambda_.invoke("scan_deadlines", event)
    assert RequestModel.get(queue["answered"]).next_due_at == at(24, 10, 5).timestamp()  # the index follows


def test_a_request_without_a_running_deadline_leaves_the_index_its_key_removed_never_null(queue, acme):
    """DynamoDB refuses an index key that is present but NULL: cached fields that no longer apply are removed."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for name in ("paused", "resolved"):
        stored = dynamodb.get_item(TableName=RequestModel.Meta.table_name,
                                   Key={"request_id": {"S": queue[name]}})["Item"]
        for key in ("due_contract", "next_due_at", "due_shard", "next_check_at", "breached_contract"):
            assert key not in stored, (name, key)
    stored = dynamodb.get_item(TableName=RequestModel.Meta.table_name, Key={"request_id": {"S": queue["high"]}})["Item"]
    assert stored["due_contract"] == {"S": "acme"} and float(stored["next_due_at"]["N"]) == at(23, 11).timestamp()


@pytest.mark.parametrize(("query", "field"), [
    ("sort=soon", "sort"),
    ("sort=due&due_within=30x", "due_within"),
    ("sort=due&due_within=2wd", "due_within"),
    ("sort=due&due_within=", "due_within"),
    ("due_within=30m", "due_within"),
    ("sort=due&priority=critical", "priority"),
    ("sort=due&category=complaint", "category"),
    ("category=complaint", "category"),
    ("sort=due&next=not-a-cursor", "next"),
    ("sort=due&colour=red", "colour"),
])
def test_bad_queue_parameters_are_400s_naming_the_parameter(acme, monday_10, query, field):
    _, agent, _ = acme
    status, body = agent.get(f"/requests?{query}")
    assert status == 400 and body["Message"].startswith(f"{field}:"), body


def test_a_cursor_works_in_its_own_listing_only(queue, acme):
    admin, agent, _ = acme
    by_received = listing(agent, "limit=1")["next"]
    by_due = listing(agent, "sort=due&limit=1")["next"]
    open_rest = listing(agent, "sort=due&status=open&limit=5")["next"]  # after the last running deadline
    assert agent.get(f"/requests?sort=due&next={by_received}")[0] == 400
    assert agent.get(f"/requests?next={by_due}")[0] == 400
    assert admin.put("/contracts/other", DEMO_CONTRACT)[0] == 201
    for cursor in (by_due, open_rest):
        status, body = admin.get(f"/requests?contract_id=other&sort=due&status=open&next={cursor}")
        assert status == 400 and body["Message"] == "next: belongs to another listing"
    assert listing(agent, f"sort=due&status=open&limit=5&next={open_rest}")["items"] == []


def test_a_due_soon_query_on_ten_thousand_requests_reads_only_what_it_returns(acme, monday_10, monkeypatch):
    """10,000 open requests answered on time, their resolution deadlines (240 h, 24x7) spread over the
    ten days around now, 86.4 s apart: 21 are due within 30 minutes (the oldest of them overdue)."""
    admin, _, _ = acme
    bulk = {"name": "bulk", "priorities": {"high": {"first_response": "30m", "resolution": "240h", "clock": "24x7"}}}
    assert admin.put("/contracts/bulk", bulk)[0] == 201
    policy = evaluation.policy_of(store.latest_record("bulk"))
    items = []
    for n in range(10_000):
        received = MONDAY_10 - timedelta(seconds=60 + 86.4 * n)
        items.append(factories.request_item(policy, "bulk", "high", received, MONDAY_10,
                                            [("respond", received + timedelta(seconds=1))]))
    factories.insert(items)
    due_soon = sorted((i for i in items if i.next_due_at <= (MONDAY_10 + timedelta(minutes=30)).timestamp()),
                      key=lambda i: i.next_due_at)
    assert len(due_soon) == 21

    reads = RequestReads(monkeypatch)
    page = listing(admin, "contract_id=bulk&sort=due&due_within=30m&limit=100")
    assert [r["request_id"] for r in page["items"]] == [i.request_id for i in due_soon] and page["next"] is None
    assert reads.scanned == reads.returned == 21

    reads.scanned = reads.returned = 0
    first = listing(admin, "contract_id=bulk&sort=due&limit=5")
    assert [r["request_id"] for r in first["items"]] == [i.request_id for i in due_soon[:5]]
    assert reads.scanned == 5
