"""Delivery rules (chalicelib/core/delivery.py): who is told, which retry is re-checked, the backoff and
the give-up; and the scanner deciding a retry from its row of the pending index before it claims it."""
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from test_scanner import create, local, scan_at

from chalicelib import scanner
from chalicelib.aws import outbox
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import delivery
from chalicelib.core.emails import MAX_RECIPIENTS, Rendered
from chalicelib.core.policy import Notify

CREATED = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
RENDERED = Rendered("subject", "text", "<p>html</p>")


# --- the rules, pure -----------------------------------------------------------------------------


def test_a_failed_try_is_retried_after_30_s_then_twice_as_long_each_time_never_more_than_15_min_apart():
    waits = [delivery.attempt(CREATED, tried, CREATED).retry_at - CREATED for tried in range(8)]
    assert waits == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 900, 900, 900)]
    assert [delivery.attempt(CREATED, tried, CREATED).number for tried in range(3)] == [1, 2, 3]


def test_the_last_try_comes_24_h_after_creation_and_its_failure_ends_the_notification():
    almost = CREATED + delivery.GIVE_UP_AFTER - timedelta(minutes=1)
    assert delivery.attempt(CREATED, 40, almost).retry_at == CREATED + delivery.GIVE_UP_AFTER
    assert delivery.attempt(CREATED, 41, CREATED + delivery.GIVE_UP_AFTER).retry_at is None


def test_a_breach_alert_goes_to_provider_and_admins_once_each_a_warning_and_a_reminder_to_the_provider():
    notify = Notify(provider=("oncall@provider.example", "Boss@provider.example"),
                    admins=("boss@provider.example", "sla@provider.example"))
    assert delivery.addressees("breach", notify) == ("oncall@provider.example", "Boss@provider.example",
                                                     "sla@provider.example")
    assert delivery.addressees("warning", notify) == notify.provider
    assert delivery.addressees("progress_reminder", notify) == notify.provider


@pytest.mark.parametrize("kind, reason", [
    ("breach", "no recipients: notify.provider and notify.admins are empty"),
    ("warning", "no recipients: notify.provider is empty"),
    ("daily_tally", "no recipients"),
])
def test_an_email_with_nobody_left_to_tell_is_refused_naming_the_empty_lists(kind, reason):
    assert delivery.email(kind, (), RENDERED, CREATED, 0, CREATED).refusal == reason


def test_an_email_goes_to_each_mailbox_once_and_is_refused_past_what_ses_takes_in_one_message():
    twice = delivery.email("respond", ("a@customer.example", "A@customer.example"), RENDERED, CREATED, 0, CREATED)
    assert twice.recipients == ("a@customer.example",) and twice.refusal is None
    many = [f"p{n}@provider.example" for n in range(MAX_RECIPIENTS + 1)]
    refused = delivery.email("breach", many, RENDERED, CREATED, 0, CREATED).refusal
    assert refused.startswith(f"{MAX_RECIPIENTS + 1} recipients, more than the {MAX_RECIPIENTS} SES takes")


def test_only_provider_alerts_are_rechecked_before_a_retry_and_an_unknown_kind_is_not():
    assert [kind for kind in ("breach", "warning", "progress_reminder", "respond", "acknowledgement",
                              "daily_tally", "customer_report", "received", None) if delivery.rechecked(kind)] == [
        "breach", "warning", "progress_reminder"]


def test_a_customer_notice_about_a_moment_over_an_hour_before_its_post_is_backdated():
    assert delivery.skip_reason(CREATED - timedelta(minutes=61), CREATED) == delivery.BACKDATED
    assert delivery.skip_reason(CREATED - delivery.NOTICE_HORIZON, CREATED) is None


# --- the scanner decides from the index row, then claims -----------------------------------------


@pytest.fixture
def clock():
    with time_machine.travel(local(23, 10), tick=False) as traveller:
        yield traveller


class Calls:
    """The DynamoDB and SES calls made, as (operation, table), at the botocore boundary; `fail(operation,
    table, index)` returns an error to raise instead, `rows(items)` changes what a query of the pending
    index answers."""

    def __init__(self, monkeypatch):
        self.made, self.fail, self.rows = [], None, None
        original = BaseClient._make_api_call

        def patched(client, operation, params):
            table = params.get("TableName", "").rpartition("-")[2]
            self.made.append((operation, table))
            error = self.fail(operation, table, params.get("IndexName")) if self.fail else None
            if error is not None:
                raise error
            answer = original(client, operation, params)
            if operation == "Query" and params.get("IndexName") == "pending" and self.rows:
                answer = {**answer, "Items": self.rows(answer["Items"])}
            return answer

        monkeypatch.setattr(BaseClient, "_make_api_call", patched)


@pytest.fixture
def calls(monkeypatch):
    return Calls(monkeypatch)


def ses_down(operation, table, index):
    if operation == "SendRawEmail":
        return ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"},
                            "ResponseMetadata": {"HTTPStatusCode": 503}}, "SendRawEmail")
    return None


def reminder_waiting_for_ses(acme, clock, calls):
    """A request whose first progress cycle lapsed at 15:00 while SES was down: its breach alert, progress
    reminder and resolution warning wait in the outbox as retries. Resolved at 15:05, so the reminder
    and the warning no longer hold."""
    _, agent, _ = acme
    request_id = create(agent)
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})
    calls.fail = ses_down
    scan_at(clock, local(23, 15, 1))
    calls.fail = None
    clock.move_to(local(23, 15, 5))
    agent.post(f"/requests/{request_id}/events", {"type": "resolve", "note": "已修复"})
    return request_id


def test_the_pending_index_tells_each_retry_s_kind_urgency_and_deadline(acme, clock, calls):
    request_id = reminder_waiting_for_ses(acme, clock, calls)
    rows = {row.key: row for row in outbox.pending_due(local(23, 16), scanner.SHARDS)
            if row.request_id == request_id}
    assert {key: row.kind for key, row in rows.items()} == {
        "breach|progress_update|1": "breach", "progress_reminder|1": "progress_reminder",
        "warning|resolution|0|0.5": "warning"}
    assert rows["breach|progress_update|1"].urgency == 0 and rows["progress_reminder|1"].due_at is not None


def _claims_and_request_reads(calls):
    return [(operation, table) for operation, table in calls.made
            if (operation, table) in (("UpdateItem", "outbox"), ("GetItem", "requests"))]


def test_a_retried_provider_alert_is_rechecked_from_its_index_row_before_it_is_claimed(acme, clock, calls, mailbox):
    request_id = reminder_waiting_for_ses(acme, clock, calls)
    calls.made.clear()
    scan_at(clock, local(23, 15, 10))
    statuses = {e.key: e.status for e in NotificationModel.query(request_id)}
    assert statuses["progress_reminder|1"] == statuses["warning|resolution|0|0.5"] == "superseded"
    assert statuses["breach|progress_update|1"] == "sent"
    assert _claims_and_request_reads(calls)[0] == ("GetItem", "requests")  # re-checked first, then claimed
    assert not [k for k in mailbox.keys() if k.startswith("progress_reminder")]


def test_an_alert_indexed_before_the_index_told_its_kind_is_rechecked_once_its_claim_read_it(acme, clock, calls,
                                                                                             mailbox):
    request_id = reminder_waiting_for_ses(acme, clock, calls)
    calls.rows = lambda items: [{name: value for name, value in item.items() if name != "kind"} for item in items]
    calls.made.clear()
    scan_at(clock, local(23, 15, 10))
    statuses = {e.key: e.status for e in NotificationModel.query(request_id)}
    assert statuses["progress_reminder|1"] == statuses["warning|resolution|0|0.5"] == "superseded"
    assert statuses["breach|progress_update|1"] == "sent"
    assert _claims_and_request_reads(calls)[0] == ("UpdateItem", "outbox")  # claimed first, then re-checked
    assert not [k for k in mailbox.keys() if k.startswith("progress_reminder")]


def test_a_recheck_that_fails_before_the_claim_is_recorded_as_the_claimed_attempt_s_failure(acme, clock, calls):
    request_id = reminder_waiting_for_ses(acme, clock, calls)
    before = {e.key: e for e in NotificationModel.query(request_id)}
    calls.fail = lambda operation, table, index: ClientError(
        {"Error": {"Code": "InternalServerError", "Message": "try again"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        "GetItem") if (operation, table) == ("GetItem", "requests") else None
    scan_at(clock, local(23, 15, 10))
    calls.fail = None
    after = {e.key: e for e in NotificationModel.query(request_id)}
    for key in ("breach|progress_update|1", "progress_reminder|1", "warning|resolution|0|0.5"):
        assert after[key].status == "pending" and after[key].attempts == before[key].attempts + 1
        assert "InternalServerError" in after[key].last_error and after[key].lease_until is None
        assert after[key].retry_at > local(23, 15, 10).timestamp()


def backfilling_pending_index(operation, table, index):
    if operation == "Query" and index == "pending":
        return ClientError({"Error": {"Code": "ValidationException",
                                      "Message": "Cannot read from backfilling global secondary index: pending"}},
                           operation)
    return None


def test_while_the_pending_index_is_rebuilt_retries_wait_and_new_alerts_still_go(acme, clock, calls, mailbox,
                                                                                  caplog):
    """A stage upgraded to a new projection of the pending index: DynamoDB refuses to read it until its
    backfill ends, and the scan goes on without the retries meanwhile."""
    request_id = reminder_waiting_for_ses(acme, clock, calls)
    later_id = create(acme[1])  # received at 15:05: its acknowledgement is sent by the API
    calls.fail = backfilling_pending_index
    with caplog.at_level("WARNING", logger="sla_clock.notify"):
        report = scan_at(clock, local(24, 10))  # the new request's first response lapsed overnight
    assert report["errors"] == 0 and "pending index not readable yet, retries wait" in caplog.messages
    assert NotificationModel.get(later_id, "breach|first_response|0").status == "sent"
    assert "breach|first_response|0" in mailbox.keys()
    statuses = {e.key: e.status for e in NotificationModel.query(request_id)}
    assert statuses["breach|progress_update|1"] == "pending"  # found again once the index serves reads
    calls.fail = None
    scan_at(clock, local(24, 10, 1))
    assert NotificationModel.get(request_id, "breach|progress_update|1").status == "sent"


def test_a_process_that_read_the_table_before_the_index_was_created_again_lets_retries_wait(monkeypatch, caplog):
    """PynamoDB reads a table's description once per process, and refuses a query of an index missing
    from it before asking DynamoDB."""
    def described_without_the_index(*args, **kwargs):
        raise ValueError("Table sla-dev-outbox has no index: pending")

    monkeypatch.setattr(NotificationModel.pending, "query", described_without_the_index)
    with caplog.at_level("WARNING", logger="sla_clock.notify"):
        assert list(outbox.pending_due(CREATED, scanner.SHARDS)) == []
    assert "pending index not readable yet, retries wait" in caplog.messages


def test_any_other_error_reading_the_pending_index_is_not_hidden(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an unrelated bug")

    monkeypatch.setattr(NotificationModel.pending, "query", broken)
    with pytest.raises(ValueError, match="an unrelated bug"):
        list(outbox.pending_due(CREATED, scanner.SHARDS))
