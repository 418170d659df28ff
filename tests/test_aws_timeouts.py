"""Nothing waits on AWS for long: every client has explicit timeouts and bounded retries, the API
answers within 15 s when SES or SSM never answers (what it could not send waits in the outbox), and a
scan ends within its budget when SES hangs.

SES or SSM "hangs" as a loopback socket that accepts connections and never sends a byte: botocore's
own per-service endpoint variable (AWS_ENDPOINT_URL_SES, _SSM) points that one client at it, while
DynamoDB stays on moto. The waits are real, but short by design (timeouts.SES: 3 s of silence)."""
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.client import BaseClient
from chalice.test import Client

from app import app
from chalicelib import scanner
from chalicelib.aws import outbox, parameters, store, tables, timeouts
from chalicelib.aws.tables import NotificationModel
from chalicelib.budget import Budget
from chalicelib.core import delivery
from chalicelib.core.emails import Rendered
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT, refusing_port

API_LIMIT = 15.0  # seconds the API has to answer in, whatever SES or SSM do
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}
PARAMETER = "/sla-clock/test/admin-token"


@pytest.fixture
def silent():
    """The URL of a loopback port that accepts TCP connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def refused():
    """The URL of a loopback port nothing listens on: a connection is refused at once."""
    with refusing_port() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def ses_at(monkeypatch):
    """Point the process's SES client at a URL (None: back to moto); the next call builds it anew."""
    def point(url):
        if url is None:
            monkeypatch.delenv("AWS_ENDPOINT_URL_SES", raising=False)
        else:
            monkeypatch.setenv("AWS_ENDPOINT_URL_SES", url)
        monkeypatch.setattr(outbox, "_ses", None)

    yield point
    outbox._ses = None  # noqa: SLF001 - never leave a client built for a test's endpoint behind


@pytest.fixture
def ssm_silent(monkeypatch, silent):
    """SSM never answers; the bootstrap admin token is read from it (as in production)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", silent)
    monkeypatch.setenv("SLA_ADMIN_TOKEN_PARAMETER", PARAMETER)
    monkeypatch.setattr(parameters, "_client", None)
    monkeypatch.setattr(parameters, "_values", {})
    yield
    parameters._client = None  # noqa: SLF001


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def invoke_scan():
    """scan_deadlines as Lambda runs it (its budget capped by the context); its report."""
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/scan_deadlines"], region="us-east-1")
        return lambda_client.lambda_.invoke("scan_deadlines", event).payload


def acknowledgement(request_id):
    [entry] = [e for e in outbox.of_request(request_id) if e.kind == "acknowledgement"]
    return entry


# --- every client -----------------------------------------------------------------------------------


def test_every_aws_client_has_explicit_timeouts_and_bounded_retries(aws):
    def limits(client):
        config = client.meta.config
        return config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]

    def expected(call_limits):
        return call_limits.connect, call_limits.read, call_limits.attempts

    outbox._ses = None  # noqa: SLF001 - built afresh, by the factory under test
    parameters._client = None  # noqa: SLF001
    assert limits(outbox.ses()) == expected(timeouts.SES)
    assert limits(parameters.client()) == expected(timeouts.SSM)
    assert limits(store._connection().client) == expected(timeouts.DYNAMODB)  # noqa: SLF001 - transactions
    models = [m for m in vars(tables).values() if isinstance(m, type) and issubclass(m, tables.Model)
              and m is not tables.Model]
    assert len(models) > 10
    for model in models:
        assert limits(model._get_connection().connection.client) == expected(timeouts.DYNAMODB), model  # noqa: SLF001


def test_the_worst_case_of_each_client_fits_the_places_that_wait_for_it():
    assert timeouts.SES.worst + timeouts.SSM.worst < API_LIMIT  # a POST /requests may meet both
    assert timeouts.SES.worst < outbox.LEASE.total_seconds() / 4  # a lease outlives any send under it
    assert timeouts.SES.attempts == 1  # a retry after a read timeout could send an accepted email twice
    assert scanner.WEBHOOK_SECONDS < scanner.SCAN_SECONDS / 3


# --- SES never answers ------------------------------------------------------------------------------


def test_post_requests_answers_201_within_15_s_when_ses_never_answers_and_the_acknowledgement_waits_pending(
        acme, clock, silent, ses_at, mailbox):
    _, agent, _ = acme
    ses_at(silent)
    (status, body), elapsed = timed(agent.post, "/requests", REQUEST)
    assert status == 201, body
    assert timeouts.SES.read <= elapsed < API_LIMIT  # it did wait for SES, and no longer than its limit
    entry = acknowledgement(body["request_id"])
    now = datetime.now(UTC)
    assert entry.status == "pending" and int(entry.attempts) == 1 and "ReadTimeoutError" in entry.last_error
    assert entry.lease_until is None  # given back at once: the next scan may take it
    assert entry.retry_at <= (now + delivery.FIRST_RETRY).timestamp()
    assert mailbox.messages() == []


def test_a_scan_ends_within_its_budget_when_ses_never_answers_and_the_mail_goes_once_ses_is_back(
        acme, clock, silent, ses_at, mailbox, monkeypatch):
    _, agent, _ = acme
    ses_at(silent)
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    clock.shift(timedelta(minutes=1))
    monkeypatch.setattr(scanner, "SCAN_SECONDS", 8.0)  # the budget, kept short: the test waits for real
    report, elapsed = timed(invoke_scan)
    assert elapsed < scanner.SCAN_SECONDS
    assert report["pending"] == 1 and report["sent"] == 0
    entry = acknowledgement(request_id)
    assert entry.status == "pending" and int(entry.attempts) == 2 and entry.lease_until is None

    ses_at(None)  # SES answers again: nothing was lost
    clock.shift(timedelta(minutes=2))
    assert invoke_scan()["sent"] == 1
    assert acknowledgement(request_id).status == "sent" and len(mailbox.messages()) == 1


def test_a_scan_starts_no_send_whose_worst_case_would_overrun_its_budget(
        acme, clock, silent, refused, ses_at):
    _, agent, _ = acme
    ses_at(refused)  # two acknowledgements left pending at once
    ids = [agent.post("/requests", REQUEST)[1]["request_id"] for _ in range(2)]
    assert [acknowledgement(i).status for i in ids] == ["pending", "pending"]
    ses_at(silent)
    clock.shift(timedelta(minutes=1))
    budget_seconds = timeouts.SES.worst + 0.5  # room for one send, not for a second after it
    report, elapsed = timed(scanner.scan, datetime.now(UTC), Budget(budget_seconds), workers=1)
    assert elapsed < budget_seconds
    assert report.pending == 1 and report.left_over
    assert sorted(int(acknowledgement(i).attempts) for i in ids) == [1, 2]  # the second was never started


def test_a_scan_with_less_budget_than_one_send_sends_nothing_and_returns_at_once(acme, clock, refused, ses_at):
    _, agent, _ = acme
    ses_at(refused)
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    clock.shift(timedelta(minutes=1))
    report, elapsed = timed(scanner.scan, datetime.now(UTC), Budget(timeouts.SES.worst - 1))
    assert elapsed < 1 and report.left_over and report.pending == 0
    assert int(acknowledgement(request_id).attempts) == 1


def test_the_api_tries_no_second_email_once_one_was_not_sent(aws, clock, refused, ses_at, monkeypatch):
    sends = []
    original = outbox.deliver
    monkeypatch.setattr(outbox, "deliver", lambda entry, *args: sends.append(entry.key) or original(entry, *args))
    ses_at(refused)
    entries = [outbox.new_entry("req_x", "acme", key, "respond", ["a@customer.example"],
                                Rendered("s", "t", "<p>h</p>"), _policy(), datetime.now(UTC))
               for key in ("one", "two")]
    for entry in entries:
        outbox.enqueue(entry)
    now = datetime.now(UTC)
    outbox.deliver_quietly([(entry, delivery.email(now=now, **outbox.stored_email(entry))) for entry in entries], now)
    assert sends == ["one"]
    assert [NotificationModel.get("req_x", key).status for key in ("one", "two")] == ["pending", "pending"]


def _policy():
    return parse_contract(DEMO_CONTRACT)[1]


# --- SSM never answers ------------------------------------------------------------------------------


class SsmCalls:
    def __init__(self, monkeypatch):
        self.operations = []
        original = BaseClient._make_api_call
        outer = self

        def recorded(client, operation, params):
            if client.meta.service_model.service_name == "ssm":
                outer.operations.append(operation)
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", recorded)


def test_the_api_answers_within_15_s_when_ssm_never_answers_and_asks_it_again_only_after_a_while(
        acme, clock, ssm_silent, monkeypatch):
    _, agent, _ = acme
    calls = SsmCalls(monkeypatch)
    (status, body), elapsed = timed(agent.post, "/requests", REQUEST)
    assert status == 201, body
    assert timeouts.SSM.read <= elapsed < API_LIMIT
    assert agent.get(f"/requests/{body['request_id']}")[0] == 200
    assert calls.operations == ["GetParameter"]  # the second call did not wait for SSM again
    monkeypatch.delenv("AWS_ENDPOINT_URL_SSM")  # SSM is back (moto)...
    monkeypatch.setattr(parameters, "_client", None)
    parameters._values[PARAMETER] = time.monotonic()  # noqa: SLF001 - ...and RETRY_AFTER seconds have passed
    assert agent.get(f"/requests/{body['request_id']}")[0] == 200
    assert calls.operations == ["GetParameter", "GetParameter"]


def test_put_contract_with_a_webhook_answers_503_within_15_s_when_ssm_never_answers(admin, clock, silent, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", silent)
    monkeypatch.setattr(parameters, "_client", None)
    document = {**DEMO_CONTRACT, "webhooks": [{"url": "https://hooks.customer.example/sla", "events": ["breach"],
                                               "secret": "s" * 32}]}
    (status, body), elapsed = timed(admin.put, "/contracts/acme", document)
    parameters._client = None  # noqa: SLF001
    assert status == 503 and elapsed < API_LIMIT, body
    assert store.latest_contract("acme") is None
