"""Bursts: concurrent scans and workers send each notification once, the most urgent first, no faster
than SES's maximum send rate, and what a scan has no time for is left whole to the next one.

Pacing runs on a fake clock (FakeTime): nothing here really sleeps, and each send is stamped with
the time its thread had reached when it called SES.
"""
import email
import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import factories
import pytest
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from chalicelib import evaluation, pacing, scanner
from chalicelib.aws import outbox, store
from chalicelib.aws.tables import CalendarOverrideModel, ContractModel, NotificationModel, RequestModel
from chalicelib.budget import Budget
from chalicelib.core import delivery
from chalicelib.pacing import TokenBucket
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # a Monday morning
READ_CONFIGURED_RATE = outbox.configured_send_rate  # before conftest sets the tests' rate


class FakeTime:
    """A clock per thread, moved only by that thread's sleeps: threads waiting at once wait side by
    side, as real ones do. A worker that waited for its send slot reads exactly the slot's time."""

    def __init__(self):
        self._threads = threading.local()

    def clock(self):
        return getattr(self._threads, "now", 0.0)

    def sleep(self, seconds):
        self._threads.now = self.clock() + seconds


class Ses:
    """Every SendRawEmail at the botocore boundary: (fake time, "request|key"), in call order;
    `throttle(n)` refuses the n-th send (1-based) with SES's rate throttle."""

    def __init__(self, monkeypatch, fake=None):
        self.sends, self.throttled, self._refuse = [], [], set()
        self._lock = threading.Lock()
        original = BaseClient._make_api_call
        outer = self

        def patched(client, operation, params):
            if operation == "SendRawEmail":
                with outer._lock:
                    number = len(outer.sends) + len(outer.throttled) + 1
                    sent = (fake.clock() if fake else 0.0, _notification_of(params))
                    if number in outer._refuse:
                        outer.throttled.append(sent)
                        raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."},
                                           "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
                    outer.sends.append(sent)
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", patched)

    def throttle(self, *numbers):
        self._refuse.update(numbers)

    def keys(self):
        return [key for _, key in self.sends]

    def in_time_order(self):
        return [key for _, key in sorted(self.sends)]


def _notification_of(params):
    return str(email.message_from_bytes(params["RawMessage"]["Data"])["X-SLA-Notification"]).strip()


@pytest.fixture
def policy(acme):
    return evaluation.policy_of(store.latest_contract("acme"))


def breaches(policy, count, first_deadline=NOW - timedelta(minutes=8)):
    """`count` requests whose first-response breach is due, deadlines 10 s apart, the earliest first."""
    items = [factories.due_breach(policy, "acme", first_deadline + timedelta(seconds=10 * n)) for n in range(count)]
    factories.insert(items)
    return [f"{item.request_id}|breach|first_response|0" for item in items]


def warnings(policy, count, first_deadline=NOW + timedelta(minutes=10)):
    """`count` requests whose 50 % first-response warning is due, deadlines 10 s apart, the earliest first."""
    items = [factories.due_warning(policy, "acme", first_deadline + timedelta(seconds=10 * n)) for n in range(count)]
    factories.insert(items)
    return [f"{item.request_id}|warning|first_response|0|0.5" for item in items]


def gaps_between(times):
    times = sorted(times)
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def paced_scan(fake, per_second, seconds, workers=scanner.WORKERS, at=NOW):
    """One scan at `at`, `seconds` of fake time long, sending at most `per_second`."""
    budget = Budget(seconds, clock=fake.clock)
    return scanner.scan(at, budget, workers=workers,
                        pace=TokenBucket(per_second, until=budget, clock=fake.clock, sleep=fake.sleep))


# --- exactly once under concurrency ----------------------------------------------------------------


def test_three_scans_at_once_each_with_its_workers_send_every_notification_exactly_once(policy, mailbox, monkeypatch):
    ses = Ses(monkeypatch)
    expected = breaches(policy, 30) + warnings(policy, 30)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(scanner.scan(NOW))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(ses.keys()) == Counter(expected)  # every one, once
    assert sum(r.sent for r in reports) == 60 and sum(r.created for r in reports) == 60
    assert not any(r.errors or r.failed for r in reports)
    assert sorted(f"{m['X-SLA-Notification']}".strip() for m in mailbox.messages()) == sorted(expected)


def test_retries_sent_by_concurrent_scans_go_out_once(acme, mailbox, monkeypatch):
    _, agent, _ = acme
    ses = Ses(monkeypatch)
    ses.throttle(*range(1, 21))  # SES refuses the acknowledgements the API tries to send at once
    with time_machine.travel(NOW - timedelta(minutes=5), tick=False):
        request_ids = [agent.post("/requests", {"contract_id": "acme", "priority": "low", "channel": "portal",
                                                "subject": "s", "requester": {"email": "a@customer.example"}})[1]
                       ["request_id"] for _ in range(20)]
    assert ses.sends == [] and len(ses.throttled) == 20
    threads = [threading.Thread(target=scanner.scan, args=(NOW,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(ses.keys()) == Counter(f"{r}|acknowledgement" for r in request_ids)
    assert all(NotificationModel.get(r, "acknowledgement").status == "sent" for r in request_ids)


# --- urgency under a backlog ----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, scanner.WORKERS])
def test_a_backlog_larger_than_a_scan_sends_breaches_then_customer_mail_then_warnings_earliest_deadline_first(
        acme, policy, mailbox, monkeypatch, workers):
    _, agent, _ = acme
    fake = FakeTime()
    ses = Ses(monkeypatch, fake)
    ses.throttle(1, 2)  # two acknowledgements wait for a retry: customer mail, no deadline
    with time_machine.travel(NOW - timedelta(minutes=5), tick=False):
        acks = [agent.post("/requests", {"contract_id": "acme", "priority": "low", "channel": "portal",
                                         "subject": "s", "requester": {"email": "a@customer.example"}})[1]
                ["request_id"] + "|acknowledgement" for _ in range(2)]
    late = warnings(policy, 6, NOW + timedelta(minutes=12))  # inserted first: the index order is not the send order
    early = warnings(policy, 6, NOW + timedelta(minutes=8))
    breached = breaches(policy, 8)
    # A scan with no send slot at all creates every notification and leaves them all waiting.
    report = scanner.scan(NOW, Budget(60, clock=fake.clock), workers=workers,
                          pace=TokenBucket(8, until=Budget(0, clock=fake.clock), clock=fake.clock, sleep=fake.sleep))
    assert report.created == 20 and report.sent == 0 and report.left_over and ses.sends == []

    later = NOW + timedelta(seconds=30)  # the backlog, all of it known before the first send
    report = paced_scan(fake, per_second=8, seconds=2.0, workers=workers, at=later)  # 16 slots for 22
    first = ses.in_time_order()
    assert first[:8] == breached and set(first[8:10]) == set(acks) and first[10:] == early
    if workers == 1:
        assert ses.keys() == first  # one worker: the calls themselves in that order
    assert report.sent == 16 and report.left_over

    report = paced_scan(fake, per_second=8, seconds=2.0, workers=workers, at=later)
    assert [key for _, key in sorted(ses.sends[16:])] == late and report.sent == 6 and not report.left_over
    assert Counter(ses.keys()) == Counter(breached + acks + early + late)


def test_sending_starts_with_the_first_visits_mail_while_the_other_due_requests_are_visited(
        policy, mailbox, monkeypatch):
    expected = breaches(policy, 40)
    last = expected[-1].split("|")[0]  # the latest check: visited last
    sent, waited = threading.Event(), []
    original = BaseClient._make_api_call

    def patched(client, operation, params):
        if operation == "SendRawEmail":
            sent.set()
        elif operation == "BatchGetItem" and last in {key["request_id"]["S"] for table in params["RequestItems"]
                                                      .values() for key in table["Keys"]}:
            waited.append(sent.wait(timeout=30))  # had sending waited for every visit, this would time out
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", patched)
    report = scanner.scan(NOW)
    assert waited == [True] and report.due == 40 and report.sent == 40
    assert sorted(str(m["X-SLA-Notification"]).strip() for m in mailbox.messages()) == sorted(expected)


# --- the SES send rate ------------------------------------------------------------------------------


def test_sends_never_exceed_the_rate_in_any_second_and_keep_up_with_it(policy, mailbox, monkeypatch):
    monkeypatch.setattr(outbox, "configured_send_rate", lambda: 8.0)
    fake = FakeTime()
    ses = Ses(monkeypatch, fake)
    expected = breaches(policy, 40)
    budget = Budget(60, clock=fake.clock)
    pace = TokenBucket(outbox.max_send_rate(), until=budget, clock=fake.clock, sleep=fake.sleep)
    report = scanner.scan(NOW, budget, pace=pace)
    per_second = Counter(int(at) for at, _ in ses.sends)
    assert per_second == {0: 8, 1: 8, 2: 8, 3: 8, 4: 8}  # 40 sends at 8 a second: five full seconds
    assert set(gaps_between(at for at, _ in ses.sends)) == {0.125}  # evenly spaced: no burst at the start either
    assert report.sent == 40 and Counter(ses.keys()) == Counter(expected)


def test_a_throttle_halves_the_rate_for_the_rest_of_the_scan_and_the_throttled_mail_is_sent_next_time(
        policy, mailbox, monkeypatch):
    fake = FakeTime()
    ses = Ses(monkeypatch, fake)
    ses.throttle(3)
    expected = breaches(policy, 20)
    report = paced_scan(fake, per_second=8, seconds=60, workers=2)
    gaps = gaps_between(at for at, _ in ses.sends + ses.throttled)
    assert gaps[:2] == [0.125, 0.125] and set(gaps[-10:]) == {0.25}  # the slots reserved before it, then half
    [(_, refused)] = ses.throttled
    request_id, key = refused.split("|", 1)
    entry = NotificationModel.get(request_id, key)
    assert entry.status == "pending" and entry.attempts == 1 and "Throttling" in entry.last_error
    assert entry.retry_at == (NOW + delivery.FIRST_RETRY).timestamp()
    assert report.sent == 19 and report.pending == 1 and report.failed == 0

    report = scanner.scan(NOW + timedelta(minutes=1))
    assert report.sent == 1 and Counter(ses.keys()) == Counter(expected)


def test_without_a_configured_rate_each_scan_with_mail_to_send_asks_ses_for_its_quota_once(
        policy, mailbox, monkeypatch):
    monkeypatch.setattr(outbox, "configured_send_rate", READ_CONFIGURED_RATE)
    monkeypatch.delenv(outbox.SEND_RATE_VARIABLE, raising=False)
    calls = []
    original = BaseClient._make_api_call
    monkeypatch.setattr(BaseClient, "_make_api_call",
                        lambda client, op, params: calls.append(op) or original(client, op, params))
    rates = []
    monkeypatch.setattr(scanner, "TokenBucket", lambda per_second, until, grid: rates.append(per_second)
                        or TokenBucket(per_second, until, grid=grid))
    # One send per scan: the first slot is now, so moto's 1 a second costs no waiting.
    factories.insert([factories.due_breach(policy, "acme", NOW - timedelta(minutes=5)),
                      factories.due_breach(policy, "acme", NOW + timedelta(seconds=30))])
    for minute in range(3):  # the third scan has nothing to send
        scanner.scan(NOW + timedelta(minutes=minute))
    assert calls.count("GetSendQuota") == 2 and calls.count("SendRawEmail") == 2
    assert rates == [1.0, 1.0]  # moto answers the SES sandbox's quota: 200 a day, 1 a second


def test_the_configured_rate_wins_over_the_quota_and_is_read_when_asked(aws, monkeypatch):
    monkeypatch.setattr(outbox, "configured_send_rate", READ_CONFIGURED_RATE)
    monkeypatch.setenv(outbox.SEND_RATE_VARIABLE, "50")
    assert outbox.max_send_rate() == 50.0
    monkeypatch.setenv(outbox.SEND_RATE_VARIABLE, "12.5")  # read at each call: the Lambda's environment
    assert outbox.max_send_rate() == 12.5
    monkeypatch.delenv(outbox.SEND_RATE_VARIABLE)
    assert outbox.max_send_rate() == 1.0


@pytest.mark.parametrize("value", ["fast", "0", "-3", "nan", "inf"])
def test_an_unusable_configured_rate_is_logged_and_the_quota_used(aws, monkeypatch, caplog, value):
    monkeypatch.setattr(outbox, "configured_send_rate", READ_CONFIGURED_RATE)
    monkeypatch.setenv(outbox.SEND_RATE_VARIABLE, value)
    assert outbox.max_send_rate() == 1.0
    [record] = [r for r in caplog.records if r.getMessage() == "ignoring an unusable send rate"]
    assert record.levelname == "ERROR" and record.fields["value"] == value


def test_when_ses_cannot_tell_the_quota_the_last_known_rate_is_kept(aws, monkeypatch, caplog):
    monkeypatch.setattr(outbox, "configured_send_rate", lambda: None)
    monkeypatch.setattr(outbox, "_last_quota_rate", 14.0)
    original = BaseClient._make_api_call

    def refuse(client, operation, params):
        if operation == "GetSendQuota":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)
    assert outbox.max_send_rate() == 14.0
    [record] = [r for r in caplog.records if r.getMessage().startswith("send quota unknown")]
    assert record.levelname == "ERROR"  # an operator must grant ses:GetSendQuota


# --- the time budget ------------------------------------------------------------------------------


def test_a_scan_out_of_send_slots_leaves_the_rest_untouched_and_the_next_scans_send_all_of_it(
        policy, mailbox, monkeypatch):
    ses = Ses(monkeypatch, FakeTime())
    expected = breaches(policy, 30)
    first = paced_scan(FakeTime(), per_second=8, seconds=1.5)  # 12 slots
    assert first.sent == 12 and first.created == 30 and first.left_over
    waiting = list(outbox.pending_due(NOW, scanner.SHARDS))
    assert len(waiting) == 18
    for key in waiting:  # never leased, never tried: the next scan takes them as they were
        entry = NotificationModel.get(key.request_id, key.key)
        assert entry.attempts == 0 and entry.lease_until is None and entry.status == "pending"
    reports = [paced_scan(FakeTime(), per_second=8, seconds=1.5) for _ in range(2)]
    assert [r.sent for r in reports] == [12, 6] and [r.left_over for r in reports] == [True, False]
    assert Counter(ses.keys()) == Counter(expected)  # 12 + 12 + 6: nothing lost, nothing twice


def test_mail_created_under_the_scans_lease_but_left_without_a_slot_is_given_back_to_the_next_scan(
        policy, mailbox, monkeypatch):
    fake = FakeTime()
    ses = Ses(monkeypatch, fake)
    ses.throttle(1, 2)  # the rate halves: fewer slots than the mail leased for them
    expected = breaches(policy, 8)
    first = paced_scan(fake, per_second=8, seconds=1.0)  # all 8 visited at once, each alert leased
    assert first.created == 8 and first.pending == 2 and first.left_over and first.sent + first.pending < 8
    waiting = [NotificationModel.get(*key.split("|", 1)) for key in expected if key not in ses.keys()]
    assert all(entry.status == "pending" and entry.lease_until is None for entry in waiting)
    second = scanner.scan(NOW + timedelta(minutes=1))  # inside the 2-minute lease, had it been kept
    assert second.busy == 0 and first.sent + second.sent == 8
    assert Counter(ses.keys()) == Counter(expected)


def test_a_scan_that_dies_after_creating_mail_under_its_lease_leaves_it_to_the_lease_then_it_goes_once(
        policy, mailbox, monkeypatch):
    expected = breaches(policy, 3)
    original = BaseClient._make_api_call

    def dies_at_ses(client, operation, params):
        if operation == "SendRawEmail":
            raise SystemExit("the Lambda is gone")  # not an error the outbox handles: nothing is recorded
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", dies_at_ses)
    monkeypatch.setattr(outbox, "release", lambda entry: pytest.fail("a dead scan gives nothing back"))
    with pytest.raises(SystemExit):  # one worker: the first request visited, its alert created, then death
        scanner.scan(NOW, workers=1)
    monkeypatch.setattr(BaseClient, "_make_api_call", original)
    ses = Ses(monkeypatch)
    second = scanner.scan(NOW + timedelta(minutes=1))
    assert second.sent == 2 and second.busy == 1  # the other two; the first is still leased to the dead scan
    assert scanner.scan(NOW + outbox.LEASE + timedelta(seconds=1)).sent == 1
    assert Counter(ses.keys()) == Counter(expected) and ses.keys()[-1] == expected[0]


def visits_take_a_second_each(monkeypatch):
    """A clock that only a visit moves: each outbox put is one second."""
    original, seconds = BaseClient._make_api_call, [0.0]

    def put_takes_a_second(client, operation, params):
        if operation == "PutItem" and params["TableName"] == NotificationModel.Meta.table_name:
            seconds[0] += 1.0
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", put_takes_a_second)
    return lambda: seconds[0]


@pytest.mark.parametrize(("per_second", "visited", "sent"), [(100, 10, 9), (0.25, 6, 3)])
def test_past_their_share_of_the_budget_visits_go_on_only_while_the_mail_found_leaves_send_slots_idle(
        policy, mailbox, monkeypatch, per_second, visited, sent):
    expected = breaches(policy, 20)
    clock = visits_take_a_second_each(monkeypatch)
    budget = Budget(10, clock=clock)  # visits' share: 6 seconds, 6 visits one at a time
    pace = TokenBucket(per_second, until=budget, clock=clock, sleep=lambda seconds: None)
    report = scanner.scan(NOW, budget, workers=2, pace=pace)
    # 100 a second: slots to spare, visits go on to the budget's end (the last one's mail has no slot
    # left); 1 every 4 s (3 slots): the slots are spoken for after 6 visits, the rest is for sending
    assert report.due == report.created == visited and report.sent == sent and report.left_over
    assert scanner.scan(NOW + timedelta(minutes=1)).due == 20 - visited  # the rest, by the next scan
    assert sorted(str(m["X-SLA-Notification"]).strip() for m in mailbox.messages()) == sorted(expected)


def test_no_send_slot_is_reserved_past_the_end_of_the_budget():
    fake = FakeTime()
    budget = Budget(1.0, clock=fake.clock)
    bucket = TokenBucket(4, until=budget, clock=fake.clock, sleep=fake.sleep)
    slots = []
    while (slot := bucket.reserve()) is not None:
        slots.append(slot.at)
    assert slots == [0.0, 0.25, 0.5, 0.75]


# --- the token bucket alone --------------------------------------------------------------------------


def test_slots_are_spaced_evenly_with_no_burst_and_waiting_reaches_each_exactly():
    fake = FakeTime()
    bucket = TokenBucket(4, clock=fake.clock, sleep=fake.sleep)
    reached = []
    for _ in range(6):
        bucket.reserve().wait()
        reached.append(fake.clock())
    assert reached == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


def test_threads_reserving_at_once_get_distinct_evenly_spaced_slots():
    bucket = TokenBucket(1024, clock=lambda: 0.0)
    slots, lock = [], threading.Lock()

    def reserve_many():
        for _ in range(200):
            at = bucket.reserve().at
            with lock:
                slots.append(at)

    threads = [threading.Thread(target=reserve_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(slots) == [n / 1024 for n in range(1600)]


def test_throttles_halve_the_rate_at_most_once_a_second_and_never_below_one_a_second():
    fake = FakeTime()
    bucket = TokenBucket(8, clock=fake.clock, sleep=fake.sleep)
    bucket.reserve().throttled()
    bucket.reserve().throttled()  # the same second: the same news
    assert bucket.per_second == 4
    for _ in range(6):
        fake.sleep(1.0)
        bucket.reserve().throttled()
    assert bucket.per_second == pacing.SLOWEST
    slow = TokenBucket(0.5, clock=fake.clock, sleep=fake.sleep)
    slow.reserve().throttled()
    assert slow.per_second == 0.5  # a rate already below it is kept
    with pytest.raises(ValueError):
        TokenBucket(0)


# --- DynamoDB calls per notification -----------------------------------------------------------------


class Calls:
    """Every AWS call at the botocore boundary: (operation, params)."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = BaseClient._make_api_call
        monkeypatch.setattr(BaseClient, "_make_api_call",
                            lambda client, operation, params: self.calls.append((operation, params))
                            or original(client, operation, params))

    def per_item(self, table=None):
        """Calls that touch one item (or send one email), by operation, on `table` or on any."""
        return Counter(op for op, params in self.calls if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem",
                                                                 "TransactWriteItems", "SendRawEmail")
                       and table in (None, params.get("TableName")))

    def updates(self, table):
        return [params for op, params in self.calls if op == "UpdateItem" and params["TableName"] == table]


def test_due_requests_are_read_a_batch_at_a_time_and_a_notification_costs_a_leased_put_two_quiet_writes_a_send(
        policy, mailbox, monkeypatch):
    breaches(policy, 10)
    calls = Calls(monkeypatch)
    report = scanner.scan(NOW, workers=16)
    assert report.sent == 10
    # the requests read 8 (half the workers) at a time, strongly consistent
    reads = [params for op, params in calls.calls if op == "BatchGetItem"]
    assert [len(read["RequestItems"][RequestModel.Meta.table_name]["Keys"]) for read in reads] == [8, 2]
    assert all(read["RequestItems"][RequestModel.Meta.table_name]["ConsistentRead"] for read in reads)
    # create the alert under the scan's lease, move the request's check; send, mark sent
    assert calls.per_item() == {"PutItem": 10, "UpdateItem": 20, "SendRawEmail": 10}
    assert all("ReturnValues" not in params for op, params in calls.calls if op == "UpdateItem")
    puts = [params for op, params in calls.calls if op == "PutItem"]
    assert all(put["Item"]["lease_until"]["N"] == str((NOW + outbox.LEASE).timestamp()) for put in puts)
    assert all(NotificationModel.get(put["Item"]["request_id"]["S"], put["Item"]["key"]["S"]).lease_until is None
               for put in puts)  # marked sent: the lease went with it
    for update in calls.updates(RequestModel.Meta.table_name):  # only what the visit changed
        assert set(update["ExpressionAttributeNames"].values()) == {
            "checked_until", "next_check_at", "breached", "breached_contract", "version"}


def test_a_retry_is_claimed_and_read_in_one_conditional_update(policy, mailbox, monkeypatch):
    expected = breaches(policy, 5)
    ses = Ses(monkeypatch)
    ses.throttle(*range(1, 6))
    assert scanner.scan(NOW).pending == 5
    calls = Calls(monkeypatch)
    report = scanner.scan(NOW + delivery.FIRST_RETRY)
    assert report.sent == 5 and Counter(ses.keys()) == Counter(expected)
    table = NotificationModel.Meta.table_name
    assert calls.per_item(table) == {"UpdateItem": 10}  # no read of its own: the claim answers with the item
    assert [u.get("ReturnValues") for u in calls.updates(table)].count("ALL_NEW") == 5
    assert calls.per_item(RequestModel.Meta.table_name) == {"GetItem": 5}  # each breach re-checked once
    for request_id, key in (notification.split("|", 1) for notification in expected):
        sent = NotificationModel.get(request_id, key)  # what only a pending entry needs is gone with it
        assert sent.status == "sent" and sent.attempts == 2
        assert (sent.last_error, sent.retry_at, sent.pending_shard, sent.lease_until) == (None, None, None, None)


# --- threads and clients ----------------------------------------------------------------------------


def test_every_aws_client_a_scan_uses_is_built_before_its_workers_start(policy, mailbox, monkeypatch):
    breaches(policy, 10)
    warnings(policy, 10)
    for model in (RequestModel, NotificationModel, ContractModel, CalendarOverrideModel):
        monkeypatch.setattr(model, "_connection", None)  # as in a fresh Lambda
    monkeypatch.setattr(outbox, "_ses", None)
    from botocore.session import Session

    builders = []
    original = Session.create_client
    monkeypatch.setattr(Session, "create_client", lambda session, *args, **kwargs: builders.append(
        threading.current_thread().name) or original(session, *args, **kwargs))
    report = scanner.scan(NOW)
    assert report.sent == 20 and report.errors == 0
    assert builders and set(builders) == {threading.main_thread().name}


def test_workers_read_different_contracts_at_once_and_each_contract_once_per_scan(admin, mailbox, monkeypatch):
    contract_ids = [f"tenant{n}" for n in range(4)]
    for contract_id in contract_ids:
        assert admin.put(f"/contracts/{contract_id}", DEMO_CONTRACT)[0] == 201
        policy = evaluation.policy_of(store.latest_contract(contract_id))
        factories.insert([factories.due_breach(policy, contract_id, NOW - timedelta(minutes=5 + n)) for n in range(3)])
    reads, together = Counter(), threading.Barrier(2, timeout=10)
    original = BaseClient._make_api_call

    def contract_read(client, operation, params):
        if operation == "Query" and params["TableName"] == ContractModel.Meta.table_name:
            contract_id = params["ExpressionAttributeValues"][":0"]["S"]
            reads[contract_id] += 1
            if len(reads) <= 2:
                together.wait()  # the first two contracts are read at the same time, or the scan fails
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", contract_read)
    report = scanner.scan(NOW)
    assert report.errors == 0 and report.sent == 12
    assert reads == {contract_id: 1 for contract_id in contract_ids}


def test_each_client_keeps_a_connection_for_every_worker(aws):
    clients = [outbox.ses()] + [model._get_connection().connection.client
                                for model in (RequestModel, NotificationModel, ContractModel, CalendarOverrideModel)]
    assert all(client.meta.config.max_pool_connections >= scanner.WORKERS for client in clients)
