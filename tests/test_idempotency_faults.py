"""Idempotency-Key survives failures: a retry after any fault returns the committed request or creates
it once. DynamoDB faults are injected at botocore's `BaseClient._make_api_call`."""
import logging
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from chalicelib import requests
from chalicelib.aws.tables import IdempotencyModel, RequestModel
from chalicelib.core import alerts
from chalicelib.tokens import authenticate

SH = ZoneInfo("Asia/Shanghai")
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}
KEY = {"Idempotency-Key": "ticket-4711"}


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 11, 23, 10, 0, tzinfo=SH), tick=False) as traveller:
        yield traveller


class Faults:
    """Makes chosen AWS calls fail: `fail("Query", "ProvisionedThroughputExceededException", table="outbox")`
    fails the next matching call, after letting `after` of them through."""

    def __init__(self, monkeypatch):
        self.rules = []
        original = BaseClient._make_api_call

        def faulty(client, operation, params):
            for rule in self.rules:
                if rule["operation"] == operation and params.get("TableName", "").endswith(rule["table"]):
                    if rule["after"] > 0:
                        rule["after"] -= 1
                    elif rule["times"] > 0:
                        rule["times"] -= 1
                        raise ClientError({"Error": {"Code": rule["code"], "Message": "injected"}}, operation)
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", faulty)

    def fail(self, operation, code, table="", after=0, times=1):
        self.rules.append({"operation": operation, "code": code, "table": table, "after": after, "times": times})


@pytest.fixture
def faults(monkeypatch):
    return Faults(monkeypatch)


@pytest.fixture
def errors(caplog):
    logger = logging.getLogger("sla_clock")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def stored_requests():
    return list(RequestModel.scan())


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "InternalServerError"])
def test_a_dynamodb_fault_before_the_commit_answers_503_and_the_retry_creates_exactly_one(
        acme, clock, faults, errors, code):
    _, agent, _ = acme
    faults.fail("TransactWriteItems", code)
    status, body = agent.post("/requests", REQUEST, headers=KEY)
    assert status == 503 and body["Code"] == "ServiceUnavailableError"
    assert stored_requests() == [] and IdempotencyModel.count() == 0
    [logged] = [r for r in errors.records if r.getMessage() == "AWS call failed"]
    assert logged.levelno == logging.ERROR and logged.fields["code"] == code

    status, body = agent.post("/requests", REQUEST, headers=KEY)
    assert status == 201
    assert [item.request_id for item in stored_requests()] == [body["request_id"]]


@pytest.mark.parametrize("operation,table", [("Query", "outbox"), ("UpdateItem", "idempotency")],
                         ids=["reading-the-notifications", "keeping-the-answer"])
def test_a_fault_after_the_commit_answers_503_and_the_retry_returns_the_committed_request(
        acme, clock, faults, operation, table):
    _, agent, _ = acme
    faults.fail(operation, "ProvisionedThroughputExceededException", table=table)
    assert agent.post("/requests", REQUEST, headers=KEY)[0] == 503
    [committed] = stored_requests()

    clock.move_to(datetime(2026, 11, 23, 10, 5, tzinfo=SH))
    status, body = agent.post("/requests", REQUEST, headers=KEY)
    assert status == 201 and body["request_id"] == committed.request_id
    assert body == agent.get(f"/requests/{committed.request_id}")[1]  # the request as it stands
    assert len(stored_requests()) == 1
    assert agent.post("/requests", {**REQUEST, "subject": "另一个"}, headers=KEY)[0] == 409


def test_a_crash_before_the_commit_leaves_the_key_free_at_once(acme, clock, monkeypatch, crash_expected):
    _, agent, _ = acme
    acknowledgement = alerts.acknowledgement

    def crash(*args):
        monkeypatch.setattr(alerts, "acknowledgement", acknowledgement)  # only this once
        raise RuntimeError("the process died here")

    monkeypatch.setattr(alerts, "acknowledgement", crash)
    assert agent.post("/requests", REQUEST, headers=KEY)[0] == 500
    assert stored_requests() == []
    status, body = agent.post("/requests", REQUEST, headers=KEY)  # no lock to wait out
    assert status == 201
    assert [item.request_id for item in stored_requests()] == [body["request_id"]]


def test_the_answer_a_retry_gets_is_the_first_one_when_it_was_delivered(acme, clock):
    _, agent, _ = acme
    first = agent.post("/requests", REQUEST, headers=KEY)
    clock.move_to(datetime(2026, 11, 23, 11, 0, tzinfo=SH))
    assert agent.post("/requests", REQUEST, headers=KEY) == first
    assert len(stored_requests()) == 1


def test_two_attempts_at_once_create_one_request_and_both_answer_it(acme, clock):
    # Threads share `app.current_request`, so concurrent attempts go through the service layer the route calls.
    _, agent, _ = acme
    principal = authenticate(f"Bearer {agent.token}")
    now = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    answers = []
    start = threading.Barrier(4)

    def attempt():
        start.wait()
        answers.append(requests.create_request(principal, REQUEST, KEY["Idempotency-Key"], now))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [committed] = stored_requests()
    assert [(status, body["request_id"]) for status, body in answers] == [(201, committed.request_id)] * 4


def test_a_key_is_free_again_after_24_hours_even_before_dynamodb_deletes_it(acme, clock):
    _, agent, _ = acme
    first = agent.post("/requests", REQUEST, headers=KEY)[1]
    clock.shift(timedelta(hours=24, seconds=1))
    assert IdempotencyModel.count() == 1  # DynamoDB's TTL deletes late
    later = agent.post("/requests", REQUEST, headers=KEY)[1]
    assert later["request_id"] != first["request_id"] and len(stored_requests()) == 2
