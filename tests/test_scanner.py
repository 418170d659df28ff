"""scan_deadlines and SES notifications, exactly once (see docs/clock.md): chalice.test.Client + moto +
time-machine. Every row of the notification table, the once-only guarantees, SES failure then recovery."""
import copy
import logging
import threading
from datetime import UTC, datetime

import boto3
import factories
from chalice.test import Client
from pynamodb.connection.base import Connection

from app import app
from chalicelib import evaluation, scanner
from chalicelib.aws import outbox, store
from chalicelib.aws.tables import NotificationModel, RequestModel, shard_of
from conftest import DEMO_CONTRACT, SENDER, local

REQUESTER = "zhang@customer.example"
PROVIDER = "oncall@provider.example"
ADMIN = "sla-admin@provider.example"
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": REQUESTER}}


def scan_at(clock, moment):
    clock.move_to(moment)
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/scan_deadlines"], region="us-east-1")
        response = lambda_client.lambda_.invoke("scan_deadlines", event)
    return response.payload


def create(agent, **changes):
    status, body = agent.post("/requests", {**REQUEST, **changes})
    assert status == 201, body
    return body["request_id"]


def test_an_accepted_request_is_acknowledged_to_the_requester(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    [mail] = mailbox.to(REQUESTER)
    assert request_id in mail["Subject"] and mail["From"].addresses[0].addr_spec == SENDER
    body = mail.get_body(("plain",)).get_content()
    assert request_id in body and "2026-11-23 12:00" in body  # the first-response deadline
    document = agent.get(f"/requests/{request_id}")[1]
    assert document["notifications"] == [{"key": "acknowledgement", "kind": "acknowledgement", "to": [REQUESTER],
                                           "status": "sent", "reason": None, "attempts": 1,
                                           "sent_at": "2026-11-23T10:00:00+08:00", "delivered_at": None,
                                           "bounced_at": None, "bounce_type": None, "complained_at": None,
                                           "recipients_feedback": [], "last_error": None}]


def test_respond_progress_await_and_resolve_notify_the_requester_with_the_note(acme, mailbox, clock):
    _, agent, client = acme
    request_id = create(agent)
    notes = {"respond": "已收到，正在排查", "progress": "已定位问题", "await_customer": "请提供截图",
             "resolve": "已修复，请确认"}
    for kind, note in notes.items():
        assert agent.post(f"/requests/{request_id}/events", {"type": kind, "note": note})[0] == 200
        if kind == "await_customer":
            client.post(f"/requests/{request_id}/events", {"type": "customer_reply"})
    mails = mailbox.to(REQUESTER)[1:]
    assert len(mails) == 4
    for mail, note in zip(mails, notes.values(), strict=True):
        assert note in mail.get_body(("plain",)).get_content()
        assert request_id in mail["Subject"]
    assert "1" in mails[-1].get_body(("plain",)).get_content() and "5" in mails[-1].get_body(("plain",)).get_content()
    # Every email carries a deadline and the business time left: after the first response, the resolution's.
    respond = mails[0].get_body(("plain",)).get_content()
    assert "2026-11-24 11:00" in respond and "8 小时" in respond


def test_customer_reply_and_reprioritize_send_nothing(acme, mailbox, clock):
    _, agent, client = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "reprioritize", "priority": "medium"})
    assert len(mailbox.messages()) == 1


def test_the_provider_is_warned_once_at_each_warn_at_fraction(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    scan_at(clock, local(23, 10, 59))
    assert mailbox.to(PROVIDER) == []
    scan_at(clock, local(23, 11, 0))
    scan_at(clock, local(23, 11, 1))
    [half] = mailbox.to(PROVIDER)
    assert "warning|first_response|0|0.5" in half["X-SLA-Notification"]
    text = half.get_body(("plain",)).get_content()
    assert request_id in text and "2026-11-23 12:00" in text and "50%" in text
    scan_at(clock, local(23, 11, 40))
    assert [m["X-SLA-Notification"].split("|", 1)[1] for m in mailbox.to(PROVIDER)] == [
        "warning|first_response|0|0.5", "warning|first_response|0|0.8"]


def test_a_breach_alerts_provider_and_admins_once(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    for minute in (1, 2, 30):
        scan_at(clock, local(23, 12, minute))
    breaches = [m for m in mailbox.messages() if "breach|first_response|0" in m["X-SLA-Notification"]]
    assert len(breaches) == 1
    assert PROVIDER in breaches[0]["To"] and ADMIN in breaches[0]["To"]
    assert request_id in breaches[0]["Subject"]
    # The warnings that were never sent before the breach are not sent after it.
    assert not [m for m in mailbox.messages() if "warning" in m["X-SLA-Notification"]]


def test_a_lapsed_progress_cycle_sends_a_reminder_and_a_breach_alert(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})
    scan_at(clock, local(23, 15, 1))  # 10:00 + 4 business hours = 15:00
    keys = mailbox.keys()
    assert "progress_reminder|1" in keys and "breach|progress_update|1" in keys
    reminder = next(m for m in mailbox.messages() if "progress_reminder|1" in m["X-SLA-Notification"])
    assert reminder["To"] == PROVIDER
    assert "2026-11-24 11:00" in reminder.get_body(("plain",)).get_content()  # the next update is due


def test_scanning_twice_sends_nothing_twice(acme, mailbox, clock):
    _, agent, _ = acme
    create(agent)
    scan_at(clock, local(23, 12, 5))
    first = sorted(mailbox.keys())
    second = scan_at(clock, local(23, 12, 5))
    assert sorted(mailbox.keys()) == first and second["sent"] == 0


def test_two_scanners_at_once_send_each_notification_once(acme, mailbox, clock):
    _, agent, _ = acme
    for _ in range(4):
        create(agent)
    clock.move_to(local(23, 12, 5))
    now = datetime.now(UTC)
    threads = [threading.Thread(target=scanner.scan, args=(now,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_request = [m["X-SLA-Notification"] for m in mailbox.messages()]
    assert len(per_request) == len(set(per_request)) == 4 * 2  # an acknowledgement and a breach each


def test_an_ses_failure_never_fails_the_api_and_the_next_scan_sends_it(acme, mailbox, clock):
    _, agent, _ = acme
    ses = boto3.client("ses", region_name="us-east-1")
    ses.delete_identity(Identity=SENDER)
    request_id = create(agent)  # 201 although SES refused the acknowledgement
    [pending] = agent.get(f"/requests/{request_id}")[1]["notifications"]
    assert pending["status"] == "pending" and pending["attempts"] == 1 and "MessageRejected" in pending["last_error"]
    assert mailbox.messages() == []
    ses.verify_email_identity(EmailAddress=SENDER)
    report = scan_at(clock, local(23, 10, 1))
    assert report["sent"] == 1
    [sent] = agent.get(f"/requests/{request_id}")[1]["notifications"]
    assert sent["status"] == "sent" and sent["attempts"] == 2 and sent["last_error"] is None
    assert len(mailbox.messages()) == 1


def test_an_unverified_sender_is_retried_with_backoff_for_a_day_then_failed_logged_and_shown(
        acme, mailbox, clock, caplog):
    _, agent, _ = acme
    logging.getLogger("sla_clock").addHandler(caplog.handler)
    boto3.client("ses", region_name="us-east-1").delete_identity(Identity=SENDER)
    request_id = create(agent)  # first attempt at 10:00
    agent.post(f"/requests/{request_id}/events", {"type": "resolve"})  # no alerts: only customer mail

    def acknowledgement():
        return NotificationModel.get(request_id, "acknowledgement")

    delays = []  # minutes from each attempt to the next one it schedules
    moment = local(23, 10)
    while acknowledgement().status == "pending":
        retry_at = datetime.fromtimestamp(acknowledgement().retry_at, UTC)
        delays.append((retry_at - moment).total_seconds() / 60)
        scan_at(clock, retry_at)  # the next scan after its retry time tries again
        moment = retry_at
    # 30 s, 1, 2, 4, 8 min … then every 15 min for 24 h: far fewer attempts than scans, none lost. The
    # last retry comes at 24 h exactly, which ends it.
    assert delays[:6] == [0.5, 1, 2, 4, 8, 15] and set(delays[6:-1]) == {15} and 0 < delays[-1] <= 15
    assert moment == local(24, 10)
    [entry] = [n for n in agent.get(f"/requests/{request_id}")[1]["notifications"] if n["key"] == "acknowledgement"]
    assert entry["status"] == "failed" and 24 * 4 - 10 < entry["attempts"] < 24 * 4 + 10
    blocked = [r for r in caplog.records if r.getMessage() == "notification blocked"]
    assert blocked and all(r.levelno == logging.ERROR for r in blocked)  # alarmed while it can be fixed
    failed = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert {r.fields["key"] for r in failed} == {"acknowledgement", "event|2"}
    logging.getLogger("sla_clock").removeHandler(caplog.handler)


def test_an_english_contract_sends_english_emails(admin, mailbox, clock):
    english = copy.deepcopy(DEMO_CONTRACT)
    english["notify"]["language"] = "en"
    admin.put("/contracts/acme", english)
    request_id = create(admin)
    [mail] = mailbox.messages()
    assert request_id in mail["Subject"]
    assert "请" not in mail.get_body(("plain",)).get_content()
    assert "High" in mail.get_body(("plain",)).get_content()


def test_a_resolved_request_leaves_the_scanner_index(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    assert RequestModel.get(request_id).due_shard is not None
    agent.post(f"/requests/{request_id}/events", {"type": "resolve"})
    item = RequestModel.get(request_id)
    assert item.due_shard is None and item.next_check_at is None
    assert scan_at(clock, local(24, 12))["due"] == 0


def test_the_scan_reads_only_due_requests_whatever_the_table_holds(acme, mailbox, clock, monkeypatch):
    policy = evaluation.policy_of(store.latest_contract("acme"))
    now = local(23, 10)
    factories.insert([factories.request_item(policy, "acme", "low", now, now) for _ in range(297)])  # check at 14:00
    urgent = [factories.request_item(policy, "acme", "urgent", now, now) for _ in range(3)]  # check at 10:15
    factories.insert(urgent)
    items_read = []
    original = Connection._make_api_call

    def counting(self, operation, kwargs):
        answer = original(self, operation, kwargs)
        items_read.append(len(answer.get("Items", [])) + (1 if "Item" in answer else 0)
                          + sum(len(items) for items in answer.get("Responses", {}).values()))
        return answer

    monkeypatch.setattr(Connection, "_make_api_call", counting)
    report = scan_at(clock, local(23, 10, 16))
    assert report["due"] == 3 and report["sent"] == 3
    # 3 index keys + the 3 requests (one consistent batch read) + 1 read of their contract (the pending outbox
    # index is read before the visits, so this scan's own notifications are never read back); before
    # that, the lag reads the oldest due key of each shard that has one
    shards = len({shard_of(item.request_id) for item in urgent})
    assert sum(items_read) == report["items_read"] == 7 + shards


def test_scan_reports_a_structured_summary(acme, mailbox, clock, caplog):
    logging.getLogger("sla_clock").addHandler(caplog.handler)
    scan_at(clock, local(23, 10, 5))
    logging.getLogger("sla_clock").removeHandler(caplog.handler)
    [summary] = [r for r in caplog.records if r.getMessage() == "scan finished"]
    assert {"due", "sent", "failed", "pending", "duration_ms", "items_read"} <= set(summary.fields)


def test_notifications_are_kept_once_per_key(acme, clock):
    _, agent, _ = acme
    request_id = create(agent)
    entries = NotificationModel.query(request_id)
    assert [e.key for e in entries] == ["acknowledgement"]
    assert outbox.enqueue(next(iter(NotificationModel.query(request_id)))) is False


def test_a_backdated_request_already_breached_is_alerted_on_the_next_scan(acme, mailbox, clock):
    _, agent, _ = acme
    create(agent, priority="urgent", received_at="2026-11-23T09:00:00+08:00")  # due 09:30, now 10:00
    report = scan_at(clock, local(23, 10, 1))
    assert report["due"] == 1
    assert "breach|first_response|0" in mailbox.keys()
    assert not [k for k in mailbox.keys() if k.startswith("warning|first_response")]
    assert scan_at(clock, local(23, 10, 2))["due"] == 0  # moved on to the next milestone


def test_pausing_after_a_warning_point_is_fine_and_sends_no_stale_warning(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    clock.move_to(local(23, 11, 10))  # past the 50 % point (11:00), no scan ran
    status, body = agent.post(f"/requests/{request_id}/events", {"type": "await_customer", "note": "请提供日志"})
    assert status == 200 and body["paused"] is True
    scan_at(clock, local(23, 11, 11))
    assert not [k for k in mailbox.keys() if k.startswith("warning")]
