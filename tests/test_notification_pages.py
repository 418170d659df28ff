"""A request's notifications list stays bounded as the request ages: its document carries the newest 100
(by creation time, oldest first) and a cursor to the older ones, which GET /requests/{id}/notifications
pages for agents and admins; reading costs one page of the index whatever the number of entries."""
import base64
import json
import logging
from datetime import datetime, timedelta

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from test_frozen_outcomes import at, scan
from test_long_timelines import Calls, all_pages

from chalicelib import evaluation
from chalicelib.aws import outbox, store
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import delivery
from chalicelib.core.documents import notification_document
from chalicelib.core.emails import Rendered
from conftest import DEMO_CONTRACT, SH, contract_with_tokens, demo_contract

RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
ONE_MINUTE = demo_contract(**{"priorities.urgent.progress_every": "1m"})
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


def stored_order(request_id):
    """Every outbox entry of the request, as the index orders them: oldest first (by time, then key)."""
    return [entry.key for entry in sorted(outbox.of_request(request_id), key=lambda e: (e.created_at, e.key))]


def route_pages(token, request_id, **params):
    """Every page of GET /requests/{id}/notifications from the newest on: [(keys, next)]."""
    return all_pages(token, request_id, "notifications", "key", **params)


@pytest.fixture
def scanned(admin, mailbox):
    """An urgent request of acme (24x7, progress every minute) answered at 10:05 and then neglected,
    scanned every minute, as scheduled, for two hours and a quarter (a breach alert a cycle): (agent,
    client, request_id)."""
    _, agent, client = at(RECEIVED - timedelta(days=1), contract_with_tokens, admin, ONE_MINUTE)
    status, created = at(RECEIVED, agent.post, "/requests", REQUEST)
    assert status == 201, created
    request_id = created["request_id"]
    assert at(RECEIVED + timedelta(minutes=5), agent.post, f"/requests/{request_id}/events",
              {"type": "respond"})[0] == 200
    for minute in range(6, 141):
        assert scan(RECEIVED + timedelta(minutes=minute))["errors"] == 0
    return agent, client, request_id


def test_a_request_scanned_past_100_notifications_shows_the_newest_100_pages_every_one_once_and_resolves(scanned):
    agent, _, request_id = scanned
    everything = stored_order(request_id)
    assert len(everything) > 130  # the mail to the customer, and a breach alert for every lapsed cycle
    status, document = at(RECEIVED + timedelta(minutes=141), agent.get, f"/requests/{request_id}")
    assert status == 200
    assert [n["key"] for n in document["notifications"]] == everything[-100:]
    assert document["notifications_next"] is not None

    older = route_pages(agent, request_id, next=document["notifications_next"], limit=30)
    assert [len(keys) for keys, _ in older[:-1]] == [30] * (len(older) - 1) and older[-1][0]
    assert older[-1][0][0] == "acknowledgement"  # the oldest, on the last page
    paged = [key for keys, _ in reversed(older) for key in keys] + [n["key"] for n in document["notifications"]]
    assert paged == everything
    whole = route_pages(agent, request_id, limit=1000)
    assert [keys for keys, _ in whole] == [everything]

    # A resolve answers with its own notice, as its send left it, among the newest 100.
    moment = RECEIVED + timedelta(minutes=141)
    status, document = at(moment, agent.post, f"/requests/{request_id}/events", {"type": "resolve", "note": "已修复"})
    assert status == 200 and len(document["notifications"]) == 100
    notice = document["notifications"][-1]
    assert notice["kind"] == "resolve" and notice["status"] == "sent" and notice["attempts"] == 1
    assert [n["key"] for n in document["notifications"]] == stored_order(request_id)[-100:]
    assert at(moment, agent.get, f"/requests/{request_id}")[1]["notifications"] == document["notifications"]


def test_a_new_request_has_its_acknowledgement_and_no_older_notifications(acme, clock):
    _, agent, _ = acme
    status, created = agent.post("/requests", REQUEST)
    assert status == 201 and [n["key"] for n in created["notifications"]] == ["acknowledgement"]
    assert created["notifications"][0]["status"] == "sent" and created["notifications_next"] is None
    assert agent.get(f"/requests/{created['request_id']}/notifications") == (
        200, {"items": created["notifications"], "next": None})


def test_clients_never_see_notifications_nor_their_cursor_and_other_contracts_see_no_request(acme, admin, clock):
    _, agent, client = acme
    request_id = client.post("/requests", REQUEST)[1]["request_id"]
    add_entries(request_id, 120, RECEIVED)
    for document in (client.get(f"/requests/{request_id}")[1],
                     client.post(f"/requests/{request_id}/events", {"type": "customer_reply"})[1]):
        assert "notifications" not in document and "notifications_next" not in document
    status, body = client.get(f"/requests/{request_id}/notifications")
    assert status == 403 and body["Code"] == "ForbiddenError"
    cursor = agent.get(f"/requests/{request_id}")[1]["notifications_next"]
    assert client.get(f"/requests/{request_id}/notifications?next={cursor}")[0] == 403
    admin.put("/contracts/other", DEMO_CONTRACT)
    outsider = admin.as_token(admin.post("/tokens", {"role": "agent", "contract_id": "other"})[1]["token"])
    assert outsider.get(f"/requests/{request_id}/notifications")[0] == 404  # like a missing one
    assert agent.get("/requests/req_missing/notifications")[0] == 404
    assert admin.get(f"/requests/{request_id}/notifications?limit=1")[0] == 200


def _cursor(content):
    return base64.urlsafe_b64encode(json.dumps(content).encode()).decode().rstrip("=")


@pytest.mark.parametrize("make", [
    lambda rid, good: "not-a-cursor",
    lambda rid, good: "",
    lambda rid, good: "e30",  # {}
    lambda rid, good: _cursor({**good, "before": ["yesterday", good["before"][1]]}),
    lambda rid, good: _cursor({**good, "before": [good["before"][0], ""]}),
    lambda rid, good: _cursor({**good, "before": [good["before"][0], "k" * 1025]}),
    lambda rid, good: _cursor({**good, "before": [good["before"][0], "\ud800"]}),  # not UTF-8
    lambda rid, good: _cursor({**good, "before": good["before"][:1]}),
    lambda rid, good: _cursor({**good, "extra": 1}),
    lambda rid, good: store.events_cursor(rid, 5),
], ids=["garbage", "empty", "empty-object", "bad-instant", "empty-key", "long-key", "surrogate", "short",
        "extra-field", "events-cursor"])
def test_a_tampered_cursor_is_a_400_naming_next(acme, clock, make):
    _, agent, _ = acme
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    add_entries(request_id, 120, RECEIVED)
    good = agent.get(f"/requests/{request_id}")[1]["notifications_next"]
    content = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    status, body = agent.get(f"/requests/{request_id}/notifications?next={make(request_id, content)}")
    assert status == 400 and body["Message"].startswith("next: "), body


def test_a_cursor_of_another_request_and_bad_limits_are_refused(acme, clock):
    _, agent, _ = acme
    first, second = (agent.post("/requests", REQUEST)[1]["request_id"] for _ in range(2))
    add_entries(first, 120, RECEIVED)
    cursor = agent.get(f"/requests/{first}")[1]["notifications_next"]
    status, body = agent.get(f"/requests/{second}/notifications?next={cursor}")
    assert status == 400 and body["Message"] == "next: belongs to another request"
    for query in ("limit=0", "limit=1001", "limit=ten", "page=2"):
        status, body = agent.get(f"/requests/{first}/notifications?{query}")
        assert status == 400 and body["Message"].startswith(query.split("=")[0] + ":"), body


def add_entries(request_id, count, start):
    """`count` outbox entries of the request, two a second from `start` on (so pairs share their
    creation instant), written through the outbox module as the scanner writes them."""
    policy = evaluation.policy_of(store.latest_contract("acme"))
    rendered = Rendered(subject="提醒", text="进度更新已逾期" * 40, html="<p>进度更新已逾期</p>" * 40)
    with NotificationModel.batch_write() as batch:
        for n in range(count):
            batch.save(outbox.new_entry(request_id, "acme", f"reminder|progress_update|{n:05d}", "progress_reminder",
                                        ["oncall@provider.example"], rendered, policy,
                                        start + timedelta(seconds=n // 2)))


def test_reading_a_request_costs_one_page_of_notifications_at_150_and_1000_entries(acme, clock, monkeypatch):
    _, agent, _ = acme
    requests_by_size = {}
    for size in (150, 1_000):
        request_id = agent.post("/requests", REQUEST)[1]["request_id"]
        add_entries(request_id, size - 1, RECEIVED - timedelta(days=1))  # and the acknowledgement
        requests_by_size[size] = request_id
    assert agent.get(f"/requests/{request_id}/events?limit=1")[0] == 200  # the token's use is stamped once a minute
    calls = Calls(monkeypatch)

    def cost_of(path):
        before = (calls.calls, calls.items)
        answer = agent.get(path)
        return answer, (calls.calls - before[0], calls.items - before[1])

    costs, sizes = {}, {}
    for size, request_id in requests_by_size.items():
        (status, document), get_cost = cost_of(f"/requests/{request_id}")
        assert status == 200 and len(document["notifications"]) == 100 and document["notifications_next"]
        assert document["notifications"][-1]["key"] == "acknowledgement"  # created last
        (status, page), page_cost = cost_of(f"/requests/{request_id}/notifications")
        assert status == 200 and page["items"] == document["notifications"]
        costs[size], sizes[size] = (get_cost, page_cost), len(json.dumps(document))
    assert costs[150] == costs[1_000]
    (_, get_items), (_, page_items) = costs[150]
    assert get_items == 1 + 1 + 1 + 1 + 101  # token, request, contract, its one event, a page of notifications
    assert page_items == 1 + 1 + 1 + 101  # token, request, contract, a page of notifications
    assert sizes[150] == sizes[1_000]


def test_the_index_holds_every_field_a_notification_shows(acme, clock):
    _, agent, _ = acme
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    add_entries(request_id, 4, RECEIVED - timedelta(hours=1))
    entries = {entry.key: entry for entry in outbox.of_request(request_id)}
    outbox.record_feedback(entries["acknowledgement"], "Delivery", RECEIVED + timedelta(seconds=2),
                           [("zhang@customer.example", "")])
    bounced = entries["reminder|progress_update|00001"]
    outbox.record_feedback(bounced, "Bounce", RECEIVED, [(bounced.recipients[0], "smtp; 550 5.1.1 user unknown")],
                           bounce_type="Permanent")
    complained = entries["reminder|progress_update|00002"]
    outbox.record_feedback(complained, "Complaint", RECEIVED, [(complained.recipients[0], "")])
    rejected = entries["reminder|progress_update|00003"]
    third = delivery.attempt(rejected.created_at, 2, RECEIVED)
    outbox.not_sent(rejected, third, "MessageRejected: no", outbox.REJECTED, RECEIVED)
    expected = [notification_document(entry, SH)
                for entry in sorted(outbox.of_request(request_id), key=lambda e: (e.created_at, e.key))]
    assert agent.get(f"/requests/{request_id}")[1]["notifications"] == expected
    assert {n["status"] for n in expected} == {"pending", "sent", "failed"}
    assert any(n["bounce_type"] == "Permanent" for n in expected) and any(n["complained_at"] for n in expected)
    assert any(f["diagnostic"] for n in expected for f in n["recipients_feedback"])


def test_while_the_index_is_built_the_request_reads_the_same_from_the_table(acme, clock, monkeypatch, caplog):
    _, agent, _ = acme
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    add_entries(request_id, 130, RECEIVED - timedelta(hours=1))
    document = agent.get(f"/requests/{request_id}")[1]
    pages = route_pages(agent, request_id, limit=40)
    original = BaseClient._make_api_call

    def backfilling(client, operation, params):
        if operation == "Query" and params.get("IndexName") == "by_request_created":
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": "Cannot read from backfilling global secondary index: "
                                                    "by_request_created"}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", backfilling)
    with caplog.at_level(logging.WARNING, logger="sla_clock.notify"):
        assert agent.get(f"/requests/{request_id}") == (200, document)
        assert route_pages(agent, request_id, limit=40) == pages
    assert "notifications index not readable yet, reading every entry" in caplog.messages


def test_any_other_refusal_of_the_index_is_not_hidden(acme, clock, monkeypatch, caplog):
    _, agent, _ = acme
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    original = BaseClient._make_api_call

    def refusing(client, operation, params):
        if operation == "Query" and params.get("IndexName") == "by_request_created":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "The provided starting key is "
                                                                                   "invalid"}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refusing)
    assert agent.get(f"/requests/{request_id}")[0] == 503
    assert "AWS call failed" in caplog.messages and "notifications index not readable yet" not in str(caplog.messages)
