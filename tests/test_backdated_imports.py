"""Backdated imports: a request and its events recorded long after they happened are never written to
the customer about (their notices are recorded `skipped`, reason `backdated`), while the provider still
gets one catch-up alert per metric. End to end through chalice.test.Client + moto + time-machine, and
the rule itself in the pure core."""
from datetime import datetime, timedelta

import pytest
from test_metrics import emf
from test_scanner import ADMIN, PROVIDER, REQUEST, REQUESTER, scan_at

from chalicelib.aws import outbox
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import alerts, delivery
from chalicelib.core.clock import Event, RequestFacts, evaluate
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT, SH, local

SEPTEMBER_14 = datetime(2026, 9, 14, 10, 0, tzinfo=SH)  # a Monday, 70 days before the clock fixture's now


def september(day, hour, minute=0):
    return datetime(2026, 9, day, hour, minute, tzinfo=SH)


def import_request(agent, received, events, **changes):
    """A request received at `received` and its events [(type, at)], each posted now: an import."""
    status, created = agent.post("/requests", {**REQUEST, "received_at": received.isoformat(), **changes})
    assert status == 201, created
    for kind, at in events:
        status, body = agent.post(f"/requests/{created['request_id']}/events",
                                  {"type": kind, "at": at.isoformat(), "note": f"{kind} 的说明"})
        assert status == 200, body
    return created["request_id"]


LATE_HISTORY = [("respond", september(15, 10)), ("progress", september(16, 10)), ("resolve", september(18, 16))]
CUSTOMER_KEYS = ["acknowledgement", "event|2", "event|3", "event|4"]


def emf_with(documents, name):
    return [doc for doc in documents if name in doc]


def notifications(caller, request_id):
    return {n["key"]: n for n in caller.get(f"/requests/{request_id}")[1]["notifications"]}


def test_backdated_import_records_customer_notices_skipped_not_sent(acme, mailbox, clock, capsys):
    _, agent, client = acme
    capsys.readouterr()
    request_id = import_request(agent, SEPTEMBER_14, LATE_HISTORY)
    printed = emf(capsys.readouterr().out)

    shown = notifications(agent, request_id)
    assert sorted(shown) == CUSTOMER_KEYS
    for key in CUSTOMER_KEYS:
        assert shown[key] | {"key": None, "kind": None} == {
            "key": None, "kind": None, "to": [REQUESTER], "status": "skipped", "reason": "backdated", "attempts": 0,
            "sent_at": None, "delivered_at": None, "bounced_at": None, "bounce_type": None, "complained_at": None,
            "recipients_feedback": [], "last_error": None}
    assert [shown[key]["kind"] for key in CUSTOMER_KEYS] == ["acknowledgement", "respond", "progress", "resolve"]
    assert mailbox.messages() == []
    assert "notifications" not in client.get(f"/requests/{request_id}")[1]
    # Counted as skipped, by reason, and never as sent.
    skipped = emf_with(printed, "NotificationsSkipped")
    assert [(doc["ContractId"], doc["Reason"], doc["NotificationsSkipped"]) for doc in skipped] == [
        ("acme", "backdated", [1.0])] * 4
    assert emf_with(printed, "NotificationsSent") == []


def test_the_provider_gets_one_catch_up_alert_per_metric_and_the_customer_nothing_ever(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = import_request(agent, SEPTEMBER_14, LATE_HISTORY)
    document = agent.get(f"/requests/{request_id}")[1]
    assert document["status"] == "resolved"
    assert {name: metric["breached"] for name, metric in document["sla"].items()} == {
        "first_response": True, "progress_update": True, "resolution": True}
    assert document["sla"]["progress_update"]["misses"] > 1  # several lapsed cycles, still one alert

    assert scan_at(clock, local(23, 10, 0))["created"] == 0  # the import settles for a minute first
    scan_at(clock, local(23, 10, 2))
    breaches = sorted(key for key in mailbox.keys())
    assert [key.rsplit("|", 1)[0] for key in breaches] == [
        "breach|first_response", "breach|progress_update", "breach|resolution"]
    for message in mailbox.messages():
        assert PROVIDER in str(message["To"]) and ADMIN in str(message["To"])
    assert mailbox.to(REQUESTER) == []

    # Nothing more, ever: a day later (past every retry and give-up time) the notices are still skipped.
    scan_at(clock, local(23, 10, 3))
    scan_at(clock, local(24, 10, 5))
    assert sorted(mailbox.keys()) == breaches and mailbox.to(REQUESTER) == []
    stored = {entry.key: entry for entry in NotificationModel.query(request_id)}
    assert {key: (stored[key].status, stored[key].reason) for key in CUSTOMER_KEYS} == {
        key: ("skipped", "backdated") for key in CUSTOMER_KEYS}
    assert all(stored[key].pending_shard is None and stored[key].retry_at is None for key in CUSTOMER_KEYS)
    assert not outbox.claim(stored["acknowledgement"], local(24, 10, 6))  # no sender can claim one


def test_only_the_notices_about_the_past_are_skipped_a_recent_one_is_sent(acme, mailbox, clock):
    """An import that catches up to the present: the receipt of a request received three hours ago is
    skipped, the reply posted about half an hour ago goes out."""
    _, agent, _ = acme
    request_id = import_request(agent, local(23, 7), [("respond", local(23, 9, 30))])
    shown = notifications(agent, request_id)
    assert (shown["acknowledgement"]["status"], shown["acknowledgement"]["reason"]) == ("skipped", "backdated")
    assert (shown["event|2"]["status"], shown["event|2"]["reason"]) == ("sent", None)
    assert mailbox.keys() == ["event|2"]


def test_a_request_received_exactly_an_hour_ago_is_still_acknowledged(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = import_request(agent, local(23, 9), [])
    assert notifications(agent, request_id)["acknowledgement"]["status"] == "sent"
    assert mailbox.keys() == ["acknowledgement"]


# --- the rule, in the pure core ------------------------------------------------------------------

POLICY = parse_contract(DEMO_CONTRACT)[1]


class _Request:
    request_id = "req_1"
    subject = "系统无法登录"
    requester = {"name": "张三", "email": REQUESTER}

    def __init__(self, received_at):
        self.received_at = received_at


@pytest.mark.parametrize(("ago", "reason"), [
    (timedelta(0), None),
    (timedelta(minutes=59), None),
    (timedelta(hours=1), None),  # "more than an hour": the hour itself is still news
    (timedelta(hours=1, microseconds=1), "backdated"),
    (timedelta(days=70), "backdated"),
])
def test_a_customer_notice_about_a_moment_more_than_an_hour_before_it_is_posted_is_skipped(ago, reason):
    now = local(23, 10)
    assert delivery.skip_reason(now - ago, now) == reason
    request = _Request(now - ago)
    facts = RequestFacts("high", True, request.received_at)
    events = [Event(1, "received", request.received_at), Event(2, "respond", now - ago)]
    state = evaluate(POLICY, facts, events, now)
    assert alerts.acknowledgement(POLICY, request, state, now).skipped == reason
    notice = alerts.event_notice(POLICY, request, state, events[1], "已收到", now)
    assert (notice.key, notice.kind, notice.skipped) == ("event|2", "respond", reason)


def test_the_rule_looks_at_the_moment_the_notice_is_about_not_at_the_request():
    """A reply posted now on a request received months ago is news to the customer: it is sent."""
    now = local(23, 10)
    request = _Request(now - timedelta(days=70))
    events = [Event(1, "received", request.received_at), Event(2, "respond", now)]
    state = evaluate(POLICY, RequestFacts("high", True, request.received_at), events, now)
    assert alerts.acknowledgement(POLICY, request, state, now).skipped == "backdated"
    assert alerts.event_notice(POLICY, request, state, events[1], "", now).skipped is None


def test_an_import_is_looked_at_once_its_writes_settle_a_live_write_at_once():
    """The scanner's first look after a write (alerts.check_after_write), decided in the core."""
    now = local(23, 10)

    def state_of(received):
        return evaluate(POLICY, RequestFacts("high", True, received), [Event(1, "received", received)], now)

    breached = state_of(SEPTEMBER_14)  # its first response breached long ago: due at once
    request = _Request(SEPTEMBER_14)
    assert alerts.check_after_write(POLICY, request, breached, now, written_for=SEPTEMBER_14) == (
        now + alerts.IMPORT_SETTLES)
    assert alerts.check_after_write(POLICY, request, breached, now) == now  # a change of terms: at once
    fresh = state_of(now)  # nothing due before its first warning
    assert alerts.check_after_write(POLICY, _Request(now), fresh, now, written_for=now) is None
    # Written a minute late, its first warning (11:00) lies beyond the settling minute: no earlier look.
    assert alerts.check_after_write(POLICY, _Request(now), fresh, now, written_for=now - timedelta(minutes=2)) is None
