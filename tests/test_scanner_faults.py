"""The scanner in production: catch-up after gaps, cost flat with age, faults at the AWS boundary,
tenants isolated, contract changes re-evaluated in the background, alerts true when they arrive."""
import copy
import json
from datetime import UTC, datetime, timedelta

import boto3
import factories
import pytest
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError

# The same request and scan helpers as the scanner's everyday tests.
from test_scanner import PROVIDER, create, local, scan_at

from chalicelib import evaluation, scanner
from chalicelib.aws import store
from chalicelib.aws.tables import ContractModel, NotificationModel, RequestModel
from chalicelib.budget import Budget
from conftest import DEMO_CONTRACT


@pytest.fixture
def clock():
    with time_machine.travel(local(23, 10), tick=False) as traveller:
        yield traveller


class AwsCalls:
    """Counts (and optionally fails) calls at the botocore boundary, by operation name."""

    def __init__(self, monkeypatch):
        self.calls = []
        self.fail = None  # fail(operation, params) -> ClientError to raise, or None
        original = BaseClient._make_api_call
        outer = self

        def patched(client, operation, params):
            outer.calls.append(operation)
            error = outer.fail(operation, params) if outer.fail else None
            if error is not None:
                raise error
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", patched)

    def writes(self):
        return [c for c in self.calls if c in ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems",
                                                "BatchWriteItem")]

    def reset(self):
        self.calls.clear()


def ses_error(code, message, status):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "SendRawEmail")


@pytest.fixture
def aws_calls(monkeypatch):
    return AwsCalls(monkeypatch)


def provider_keys(mailbox):
    return [k for m, k in zip(mailbox.messages(), mailbox.keys(), strict=True) if PROVIDER in str(m["To"])]


# --- catch-up after a gap: one alert per metric, cost flat with age -----------------------------


def test_a_request_neglected_for_days_gets_one_catch_up_alert_per_metric_not_one_per_cycle(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})  # progress every 4 business hours
    report = scan_at(clock, local(27, 16))  # the scanner was down from Monday to Friday afternoon
    keys = provider_keys(mailbox)
    assert sorted(k.split("|")[0] for k in keys) == ["breach", "breach", "progress_reminder"]
    progress_breach = next(m for m in mailbox.messages() if "breach|progress_update" in m["X-SLA-Notification"])
    text = progress_breach.get_body(("plain",)).get_content()
    assert "已错过 8 个进度周期" in text  # 10:00 Mon + 4 h cycles through Friday 16:00
    assert report["created"] == 3 and report["sent"] == 3


def test_scan_writes_for_a_neglected_request_are_the_same_on_day_3_as_on_day_1(acme, mailbox, clock, aws_calls):
    admin, agent, _ = acme
    eight_hour_days = copy.deepcopy(DEMO_CONTRACT)
    eight_hour_days["calendar"]["hours"] = [["09:00", "17:00"]]
    admin.put("/contracts/acme", eight_hour_days)
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})  # then never another update

    def writes_of(day):
        """Scan every half hour of a working day and count DynamoDB writes: with 4-hour cycles in an
        8-hour day, every day has the same milestones at the same times."""
        aws_calls.reset()
        for half_hours in range(17):
            scan_at(clock, local(day, 9) + timedelta(minutes=30 * half_hours))
        return len(aws_calls.writes())

    writes_of(23), writes_of(24)  # received Monday; the resolution deadline breaches once on Tuesday
    # Then every day lapses the same cycles and starts a penalty day.
    day1, _, day3 = writes_of(25), writes_of(26), writes_of(27)
    assert day1 == day3 > 0


def test_progress_warnings_keep_coming_after_a_missed_cycle(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})  # cycle 1 due 14:00
    scan_at(clock, local(23, 14, 1))  # cycle 1 lapsed: cycle 2 runs 14:00 → 11:00 next day
    for moment in (local(24, 9, 31), local(24, 10, 13)):  # its 50 % and 80 % points
        scan_at(clock, moment)
    keys = provider_keys(mailbox)
    assert "warning|progress_update|2|0.5" in keys and "warning|progress_update|2|0.8" in keys


# --- SES faults ----------------------------------------------------------------------------------


def test_ses_throttled_for_30_minutes_sends_the_warning_once_after_recovery_and_fails_nothing(
        acme, mailbox, clock, aws_calls):
    _, agent, _ = acme
    request_id = create(agent)
    outage_end = local(23, 11, 30)
    aws_calls.fail = lambda op, params: (ses_error("Throttling", "Maximum sending rate exceeded.", 400)
                                         if op == "SendRawEmail" and datetime.now(UTC) < outage_end else None)
    minute = local(23, 11)
    while minute <= local(23, 11, 50):
        report = scan_at(clock, minute)
        assert report["failed"] == 0
        minute += timedelta(minutes=1)
    warnings = [k for k in provider_keys(mailbox) if k.startswith("warning")]
    assert warnings == ["warning|first_response|0|0.5", "warning|first_response|0|0.8"]
    entries = {e.key: e for e in NotificationModel.query(request_id)}
    assert entries["warning|first_response|0|0.5"].status == "sent"
    assert int(entries["warning|first_response|0|0.5"].attempts) > 1


@pytest.mark.parametrize("code, status", [("ServiceUnavailable", 503), ("InternalFailure", 500),
                                          ("Throttling", 400)])
def test_transient_ses_errors_are_retried_not_failed(acme, mailbox, clock, aws_calls, code, status):
    _, agent, _ = acme
    aws_calls.fail = lambda op, params: ses_error(code, "try again", status) if op == "SendRawEmail" else None
    request_id = create(agent)
    [entry] = NotificationModel.query(request_id)
    assert entry.status == "pending" and entry.retry_at > datetime.now(UTC).timestamp()
    aws_calls.fail = None
    scan_at(clock, local(23, 10, 1))
    assert NotificationModel.get(request_id, "acknowledgement").status == "sent"


def test_a_message_ses_rejects_fails_at_once_with_its_reason(acme, mailbox, clock, aws_calls):
    _, agent, _ = acme
    aws_calls.fail = lambda op, params: (ses_error("MessageRejected", "Illegal address", 400)
                                         if op == "SendRawEmail" else None)
    request_id = create(agent)
    [entry] = agent.get(f"/requests/{request_id}")[1]["notifications"]
    assert entry["status"] == "failed" and "Illegal address" in entry["last_error"] and entry["attempts"] == 1


def test_a_scan_out_of_time_takes_no_new_work_and_the_next_one_does_it_all(acme, mailbox, clock):
    _, agent, _ = acme
    request_ids = [create(agent, priority="urgent") for _ in range(3)]
    clock.move_to(local(23, 10, 31))
    report = scanner.scan(datetime.now(UTC), Budget(0.0))
    assert report.left_over and report.due == 0 and report.sent == 0
    report = scanner.scan(datetime.now(UTC), Budget(30.0))
    assert report.due == 3 and not report.left_over
    assert {k.split("|")[0] for k in mailbox.keys() if k.startswith("breach")} == {"breach"}
    assert all(NotificationModel.get(r, "breach|first_response|0").status == "sent" for r in request_ids)


def test_the_time_budget_is_below_the_scan_functions_timeout():
    config = json.load(open(".chalice/config.json"))
    for stage in config["stages"].values():
        assert scanner.SCAN_SECONDS + 10 <= stage["lambda_functions"]["scan_deadlines"]["lambda_timeout"]


def test_the_budget_is_capped_by_what_the_lambda_context_has_left():
    class Context:
        def get_remaining_time_in_millis(self):
            return 3000

    ticks = iter([100.0, 102.0, 103.0])
    budget = Budget(45, Context(), clock=lambda: next(ticks))
    assert not budget.spent and budget.spent  # 2.4 s: left at +2 s, spent at +3 s


# --- tenants isolated ----------------------------------------------------------------------------


def test_a_corrupt_contract_item_never_stops_the_scan_for_a_healthy_one(acme, mailbox, clock, caplog):
    admin, agent, _ = acme
    other = copy.deepcopy(DEMO_CONTRACT)
    assert admin.put("/contracts/beta", other)[0] == 201
    beta_request = create(admin, contract_id="beta", priority="urgent")
    acme_request = create(agent, priority="urgent")
    record = next(ContractModel.query("beta", scan_index_forward=False, limit=1))
    broken = json.loads(json.dumps(record.document))
    broken["calendar"]["hours"] = "nine to five"  # written around the API: it no longer parses
    record.update(actions=[ContractModel.document.set(broken)])
    report = scan_at(clock, local(23, 10, 31))
    assert report["errors"] == 1 and report["due"] == 1
    assert "breach|first_response|0" in [k for m, k in zip(mailbox.messages(), mailbox.keys(), strict=True)
                                          if acme_request in m["X-SLA-Notification"]]
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.getMessage().startswith("scan could not")]
    assert errors and errors[0].fields["request_id"] == beta_request


def test_a_request_that_raises_is_logged_counted_and_skipped(acme, mailbox, clock):
    _, agent, _ = acme
    bad, good = create(agent, priority="urgent"), create(agent, priority="urgent")
    boto3.client("dynamodb", region_name="us-east-1").update_item(  # a damaged item, written around the app
        TableName=RequestModel.Meta.table_name, Key={"request_id": {"S": bad}},
        UpdateExpression="SET timeline = :junk", ExpressionAttributeValues={":junk": {"B": b"not a timeline"}})
    report = scan_at(clock, local(23, 10, 31))
    assert report["errors"] == 1 and report["due"] == 1
    assert any(good in m["X-SLA-Notification"] and "breach" in m["X-SLA-Notification"] for m in mailbox.messages())


# --- contract changes: cheap PUT, re-evaluation in the background -------------------------------


def test_a_contract_change_costs_the_same_however_many_requests_are_open(acme, clock, aws_calls):
    admin, agent, _ = acme
    looser = copy.deepcopy(DEMO_CONTRACT)
    looser["priorities"]["high"]["first_response"] = "3h"
    aws_calls.reset()
    assert admin.put("/contracts/acme", looser)[0] == 200
    calls_with_none_open = len(aws_calls.calls)
    policy = evaluation.policy_of(store.latest_contract("acme"))
    now = local(23, 10)
    factories.insert([factories.request_item(policy, "acme", "high", now, now) for _ in range(200)])
    aws_calls.reset()
    looser["priorities"]["high"]["first_response"] = "4h"
    assert admin.put("/contracts/acme", looser)[0] == 200
    assert len(aws_calls.calls) == calls_with_none_open


def test_a_stricter_contract_is_read_at_once_and_warned_within_three_scans(acme, mailbox, clock):
    admin, agent, _ = acme
    request_ids = [create(agent) for _ in range(5)]  # high: due 12:00
    clock.move_to(local(23, 10, 40))
    stricter = copy.deepcopy(DEMO_CONTRACT)
    stricter["priorities"]["high"]["first_response"] = "30m"  # now due 10:30: breached already
    assert admin.put("/contracts/acme", stricter)[0] == 200
    document = agent.get(f"/requests/{request_ids[0]}")[1]
    assert document["sla"]["first_response"]["breached"] and document["contract_version"] == 2
    for minute in (41, 42, 43):
        scan_at(clock, local(23, 10, minute))
    alerted = {m["X-SLA-Notification"].strip().split("|")[0] for m in mailbox.messages()
               if "breach|first_response" in m["X-SLA-Notification"]}
    assert alerted == set(request_ids)
    assert all(RequestModel.get(r).contract_version == 2 for r in request_ids)


# --- alerts tell the truth when they arrive ------------------------------------------------------


def test_a_reminder_whose_cycle_ended_before_its_turn_is_superseded_not_sent(acme, mailbox, clock, aws_calls):
    _, agent, _ = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})
    aws_calls.fail = lambda op, params: ses_error("ServiceUnavailable", "down", 503) if op == "SendRawEmail" else None
    scan_at(clock, local(23, 15, 1))  # cycle 1 lapsed at 15:00: breach alert and reminder wait for SES
    aws_calls.fail = None
    clock.move_to(local(23, 15, 5))
    agent.post(f"/requests/{request_id}/events", {"type": "resolve", "note": "已修复"})
    scan_at(clock, local(23, 15, 10))
    entries = {e.key: e.status for e in NotificationModel.query(request_id)}
    assert entries["progress_reminder|1"] == "superseded"
    assert entries["breach|progress_update|1"] == "sent"  # the breach still happened
    assert not [k for k in mailbox.keys() if k.startswith("progress_reminder")]


def test_no_email_of_a_busy_week_has_an_empty_deadline_or_time_left(acme, mailbox, clock):
    _, agent, client = acme
    ids = [create(agent, priority=p) for p in ("urgent", "high", "medium", "low")]
    steps = [("respond", 0), ("await_customer", 1), ("customer_reply", 1), ("progress", 0), ("resolve", 2)]
    moment = local(23, 10)
    for step, (kind, who) in enumerate(steps):
        for minute in range(0, 240, 20):
            scan_at(clock, moment + timedelta(minutes=minute))
        moment += timedelta(hours=4 + step)
        clock.move_to(moment)
        for request_id in ids[who:]:
            poster = client if kind == "customer_reply" else agent
            poster.post(f"/requests/{request_id}/events", {"type": kind})
    for mail in mailbox.messages():
        for line in mail.get_body(("plain",)).get_content().splitlines():
            label, colon, value = line.partition("：") if "：" in line else line.partition(": ")
            if colon and label in ("截止时间", "进度更新截止", "剩余时间", "首次响应截止"):
                assert value.strip(), (mail["X-SLA-Notification"], line)


def test_an_import_of_a_request_answered_on_time_never_raises_a_false_breach_alert(acme, mailbox, clock):
    """An importer posts a request, then its history one event at a time, while scans run every few
    seconds: the scanner waits for the writes to settle instead of alerting on half a timeline."""
    _, agent, _ = acme
    request_id = create(agent, priority="urgent", received_at="2026-11-20T09:00:00+08:00")  # due 09:30
    scan_at(clock, local(23, 10) + timedelta(seconds=5))
    clock.move_to(local(23, 10) + timedelta(seconds=10))
    assert agent.post(f"/requests/{request_id}/events",
                      {"type": "respond", "at": "2026-11-20T09:20:00+08:00"})[0] == 200
    scan_at(clock, local(23, 10) + timedelta(seconds=15))
    clock.move_to(local(23, 10) + timedelta(seconds=20))
    assert agent.post(f"/requests/{request_id}/events",
                      {"type": "resolve", "at": "2026-11-20T10:10:00+08:00"})[0] == 200
    for minute in (1, 2, 5):
        scan_at(clock, local(23, 10, minute))
    assert not [k for k in mailbox.keys() if k.startswith(("breach", "warning"))]


def test_an_imported_request_that_really_breached_is_alerted_once_the_import_settles(acme, mailbox, clock):
    _, agent, _ = acme
    create(agent, priority="urgent", received_at="2026-11-20T09:00:00+08:00")
    assert scan_at(clock, local(23, 10) + timedelta(seconds=30))["due"] == 0  # still settling
    scan_at(clock, local(23, 10, 1) + timedelta(seconds=1))
    assert "breach|first_response|0" in mailbox.keys()


def test_a_pending_retry_is_sent_even_when_new_due_requests_outnumber_what_a_scan_can_do(
        acme, mailbox, clock, aws_calls):
    _, agent, _ = acme
    first = create(agent, priority="urgent")  # due 10:30
    aws_calls.fail = lambda op, params: ses_error("ServiceUnavailable", "down", 503) if op == "SendRawEmail" else None
    scan_at(clock, local(23, 10, 31))  # its breach alert waits for a retry
    aws_calls.fail = None
    for _ in range(30):
        create(agent, priority="urgent", received_at="2026-11-23T10:05:00+08:00")  # due 10:35
    clock.move_to(local(23, 10, 40))
    ticks = iter(range(10**6))
    # A budget of 20 "seconds" on a clock that ticks once per look: far too little for 30 due requests.
    report = scanner.scan(datetime.now(UTC), Budget(20, clock=lambda: float(next(ticks))), workers=1)
    assert report.left_over and report.due < 30
    assert NotificationModel.get(first, "breach|first_response|0").status == "sent"
