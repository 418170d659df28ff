"""Sharded scans: K scans a minute, each a disjoint share of the due requests, the retries, the
re-evaluation jobs and the SES rate. Counted where every AWS call goes through: botocore's
`BaseClient._make_api_call`.
"""
import json
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from chalice.config import Config
from chalice.test import Client
from test_scale import NOW, FakeTime, Ses, breaches, policy, warnings  # noqa: F401 - policy is a fixture

from chalicelib import scanner, shards
from chalicelib.aws import outbox
from chalicelib.aws.tables import DUE_SHARDS
from chalicelib.pacing import Grid, TokenBucket
from chalicelib.shards import Share

HALVES = [Share(frozenset({0}), 2), Share(frozenset({1}), 2)]


class RequestWrites:
    """The request ids of every UpdateItem on the requests table (a visit moves the request's next
    check with one) and of every key a BatchGetItem of it asked for (a visit's read)."""

    def __init__(self, monkeypatch):
        self.updated, self.read = Counter(), Counter()
        self._lock = threading.Lock()
        original = BaseClient._make_api_call

        def counting(client, operation, params):
            with self._lock:
                if operation == "UpdateItem" and params["TableName"].endswith("requests"):
                    self.updated[params["Key"]["request_id"]["S"]] += 1
                if operation == "BatchGetItem":
                    for table, asked in params["RequestItems"].items():
                        if table.endswith("requests"):
                            self.read.update(key["request_id"]["S"] for key in asked["Keys"])
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", counting)


def at_once(*scans):
    """Run each callable in a thread of its own, all at once: their results, in order."""
    with ThreadPoolExecutor(max_workers=len(scans)) as pool:
        return list(pool.map(lambda scan: scan(), scans))


def busiest_second(times):
    """The most sends any one-second window [t, t + 1) holds (to a microsecond: the fake clocks add up
    floats, so a slot one second after another may read a hair early)."""
    times = sorted(times)
    return max((sum(1 for other in times if start <= other < start + 1.0 - 1e-6) for start in times), default=0)


# --- the shares ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", range(1, DUE_SHARDS + 1))
def test_k_shares_split_the_shards_and_the_jobs_with_nothing_twice_and_nothing_left_out(count):
    groups = [Share(frozenset({group}), count) for group in range(count)]
    assert sorted(shard for share in groups for shard in share.due_shards) == scanner.SHARDS
    contracts = [f"contract-{n}" for n in range(200)]
    assert sorted(c for share in groups for c in contracts if share.takes_job(c)) == sorted(contracts)
    assert sum(share.send_rate(50.0) for share in groups) == pytest.approx(50.0)


def test_the_shares_of_a_rate_never_hold_the_same_instant_and_together_keep_its_spacing():
    fake, rate = FakeTime(), 10.0
    buckets = [TokenBucket(share.send_rate(rate), clock=fake.clock, sleep=fake.sleep,
                           grid=Grid(rate, share.groups, share.of, offset=0.0)) for share in HALVES]
    slots = sorted(bucket.reserve().at for bucket in buckets for _ in range(50))
    assert all(gap == pytest.approx(1 / rate) for gap in (b - a for a, b in zip(slots, slots[1:], strict=False)))
    assert busiest_second(slots) == 10
    # Two scans each at the whole rate, the way they would pace without shares: twice the rate.
    unshared = [TokenBucket(rate, clock=fake.clock, sleep=fake.sleep) for _ in HALVES]
    assert busiest_second([bucket.reserve().at for bucket in unshared for _ in range(50)]) >= 20


@pytest.mark.parametrize("detail", [
    {"shard_groups": [2], "shard_count": 2}, {"shard_groups": [], "shard_count": 2},
    {"shard_groups": "1", "shard_count": 2}, {"shard_groups": [0], "shard_count": DUE_SHARDS + 1},
    {"shard_groups": [0]}, {"shard_groups": [True], "shard_count": 2}])
def test_a_malformed_share_is_refused_naming_the_field(detail):
    with pytest.raises(ValueError, match=r"detail\.shard_"):
        shards.share_of({"detail": detail})


@pytest.mark.parametrize(("raw", "used"), [(None, 1), ("2", 2), ("0", 1), ("9", DUE_SHARDS), ("two", 1)])
def test_the_scans_a_minute_come_from_the_stage_and_an_unusable_value_is_logged(raw, used, monkeypatch, caplog):
    if raw is None:
        monkeypatch.delenv(shards.COUNT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(shards.COUNT_VARIABLE, raw)
    with caplog.at_level(logging.ERROR, logger="sla_clock.shards"):
        assert shards.configured_count() == used
    assert ("SLA_SCAN_SHARDS must be" in caplog.text) == (raw not in (None, str(used)))


# --- two shard scans at the same minute ---------------------------------------------------------------


def test_two_shard_scans_at_once_visit_each_due_request_once_and_send_each_notification_once(
        policy, mailbox, monkeypatch):  # noqa: F811
    ses = Ses(monkeypatch)
    requests = RequestWrites(monkeypatch)
    expected = breaches(policy, 30) + warnings(policy, 30)
    reports = at_once(*(lambda share=share: scanner.scan(NOW, share=share) for share in HALVES))
    assert Counter(ses.keys()) == Counter(expected)  # every one, once
    request_ids = {key.split("|")[0] for key in expected}
    assert requests.updated == Counter(request_ids) and requests.read == Counter(request_ids)
    assert [r.shards for r in reports] == [["0", "2"], ["1", "3"]]
    assert all(r.due and r.sent == r.due for r in reports) and sum(r.due for r in reports) == 60
    assert not any(r.errors or r.failed or r.busy for r in reports)


def test_two_shard_scans_at_once_never_exceed_the_account_rate_in_any_second(policy, mailbox, monkeypatch):  # noqa: F811
    fake = FakeTime()
    ses = Ses(monkeypatch, fake)
    monkeypatch.setattr(outbox, "configured_send_rate", lambda: 10.0)
    # The scans' buckets as built, on the fake clock (the grid anchored at its zero).
    monkeypatch.setattr(scanner, "TokenBucket", lambda per_second, until, grid: TokenBucket(
        per_second, until=until, clock=fake.clock, sleep=fake.sleep,
        grid=Grid(grid.per_second, grid.groups, grid.of, offset=0.0)))
    expected = breaches(policy, 40)
    reports = at_once(*(lambda share=share: scanner.scan(NOW, share=share) for share in HALVES))
    assert Counter(ses.keys()) == Counter(expected) and sum(r.sent for r in reports) == 40
    assert all(r.sent for r in reports)
    assert busiest_second([at for at, _ in ses.sends]) <= 10


# --- the minute's scan hands its other groups off ------------------------------------------------------


@pytest.fixture
def two_scans_a_minute(monkeypatch):
    """The stage configures SLA_SCAN_SHARDS = 2 (chalice's test client applies the stage's variables)."""
    stage = Config.environment_variables
    monkeypatch.setattr(Config, "environment_variables",
                        property(lambda config: {**stage.fget(config), shards.COUNT_VARIABLE: "2"}))


class Lambda:
    """Lambda's Invoke at the botocore boundary: each asynchronous invocation queued, or refused."""

    def __init__(self, monkeypatch, refuse=False):
        self.queued = []
        original = BaseClient._make_api_call

        def invoke(client, operation, params):
            if operation != "Invoke":
                return original(client, operation, params)
            if refuse:
                raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                                   "ResponseMetadata": {"HTTPStatusCode": 429}}, operation)
            self.queued.append((params["FunctionName"], params["InvocationType"], json.loads(params["Payload"])))
            return {"StatusCode": 202, "ResponseMetadata": {"HTTPStatusCode": 202}}

        monkeypatch.setattr(BaseClient, "_make_api_call", invoke)


def scheduled(chalice):
    return chalice.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:us-east-1:123456789012:rule/scan"],
                                            region="us-east-1")


def test_the_minute_scan_scans_one_group_and_hands_the_other_to_itself_which_scans_the_rest(
        policy, mailbox, monkeypatch, two_scans_a_minute):  # noqa: F811
    from app import app

    ses = Ses(monkeypatch)
    invocations = Lambda(monkeypatch)
    expected = breaches(policy, 20)
    with Client(app) as chalice, time_machine.travel(NOW, tick=False):
        first = chalice.lambda_.invoke("scan_deadlines", scheduled(chalice)).payload
        [(function, kind, handed)] = invocations.queued
        second = chalice.lambda_.invoke(function, handed).payload
    assert (function, kind, handed["detail"]) == ("scan_deadlines", "Event", {"shard_groups": [1], "shard_count": 2})
    assert handed["detail-type"] == "Scheduled Event" and len(invocations.queued) == 1  # a hand-off hands nothing on
    assert (first["shards"], second["shards"]) == (["0", "2"], ["1", "3"])
    assert first["sent"] + second["sent"] == 20 and Counter(ses.keys()) == Counter(expected)


def test_a_group_lambda_refuses_to_take_is_scanned_by_the_minute_scan_itself(
        policy, mailbox, monkeypatch, two_scans_a_minute, caplog):  # noqa: F811
    from app import app

    ses = Ses(monkeypatch)
    Lambda(monkeypatch, refuse=True)
    expected = breaches(policy, 10)
    with Client(app) as chalice, time_machine.travel(NOW, tick=False), caplog.at_level(logging.ERROR):
        report = chalice.lambda_.invoke("scan_deadlines", scheduled(chalice)).payload
    assert report["shards"] == scanner.SHARDS and report["sent"] == 10 and Counter(ses.keys()) == Counter(expected)
    assert "could not hand off a shard group" in caplog.text and "TooManyRequestsException" in caplog.text
