"""Test setup: fake AWS credentials and the table prefix, moto for every AWS call, and a thin JSON
client over `chalice.test.Client`."""
import contextlib
import copy
import email
import email.policy
import functools
import json
import os
import socket
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aws_limits
import pytest
import time_machine
from chalice.local import LambdaContext
from chalice.test import Client, FunctionNotFoundError, InvokeResponse, TestHTTPClient, TestLambdaClient
from hypothesis import settings
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.ses.models import ses_backends
from openapi_check import SPEC

from chalicelib.aws import outbox, tables

# Settings are read when used, so these apply to everything below. Never reach a real account. The
# tables carry the dev stage's prefix: chalice.test.Client applies the stage's variables inside each
# call, and the code outside calls (fixtures, direct store checks) must name the same tables.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    SLA_TABLE_PREFIX=json.loads((Path(__file__).parent.parent / ".chalice" / "config.json").read_text())
    ["stages"]["dev"]["environment_variables"]["SLA_TABLE_PREFIX"],
    SLA_ADMIN_TOKEN="bootstrap-admin-secret",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

# moto is not AWS: every AWS call of every test is refused as AWS would refuse it (SES's 50 recipients
# and 10 MB, DynamoDB's 400 KB items, lone surrogates). Installed once for the process rather than per
# test: test modules keep `BaseClient._make_api_call` at import to wrap it, and must keep the checked one.
aws_limits.install()

_MOTO_WRITES = threading.RLock()


def _atomic(method):
    """DynamoDB applies each write, conditional check included, atomically; moto does not under
    threads (a failed transaction even restores a whole-table snapshot taken before it started,
    undoing writes made meanwhile). Tests with concurrent writers need the real guarantee."""

    @functools.wraps(method)
    def serialized(*args, **kwargs):
        with _MOTO_WRITES:
            return method(*args, **kwargs)

    return serialized


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

_CRASHES = {"expected": False}  # set by the `crash_expected` fixture


def _checked_against_the_spec(request):
    """Every response a test receives through chalice's test client must be one the OpenAPI document
    describes (status, content type, body schema): a test that gets an off-spec answer fails. The
    one exception: Chalice's 500 in a test that makes a route crash on purpose (`crash_expected`)."""

    @functools.wraps(request)
    def checked(self, method, path, headers=None, body=b""):
        response = request(self, method, path, headers=headers, body=body)
        if response.status_code == 500 and _CRASHES["expected"]:
            return response
        problems = SPEC.problems(method, path, response.status_code, response.headers, response.body)
        assert not problems, "off-spec response (fix openapi.yaml or the code):\n" + "\n".join(problems)
        return response

    return checked


TestHTTPClient.request = _checked_against_the_spec(TestHTTPClient.request)


def _invoke_within_the_configured_timeout(self, function_name, payload=None):
    """chalice's test client gives every function 3 s, whatever its configured timeout, and the scheduled
    functions budget their work by what the context says is left: on a busy machine a scan then left
    work for the next one and tests flaked. Invoke as Lambda does, within the function's lambda_timeout."""
    scoped = self._config.scope(self._config.chalice_stage, function_name)
    context = LambdaContext(function_name, memory_size=scoped.lambda_memory_size,
                            max_runtime_ms=scoped.lambda_timeout * 1000)
    if function_name not in self._app.handler_map:
        raise FunctionNotFoundError(function_name)
    with self._patched_env_vars(scoped.environment_variables):
        return InvokeResponse(payload=self._app.handler_map[function_name]({} if payload is None else payload, context))


TestLambdaClient.invoke = _invoke_within_the_configured_timeout

settings.register_profile("default", deadline=None, max_examples=60)
settings.load_profile("default")

ADMIN_TOKEN = os.environ["SLA_ADMIN_TOKEN"]
DEMO_CONTRACT = json.loads((Path(__file__).parent.parent / "seed" / "demo-contract.json").read_text("utf-8"))


SENDER = DEMO_CONTRACT["notify"]["sender"]

# An ILLUSTRATIVE 2027 schedule for CN, shaped like the State Council's notices but NOT the official one.
# It differs from python-holidays' estimate on purpose: Friday 5 February works, 11-12 February are off,
# and Saturday 20 February is a make-up working day.
ILLUSTRATIVE_CN_2027 = {
    "holidays": ["2027-01-01", *(f"2027-02-{day:02d}" for day in range(6, 13)), "2027-04-05",
                 *(f"2027-05-{day:02d}" for day in range(1, 6)), "2027-06-09", "2027-09-15",
                 *(f"2027-10-{day:02d}" for day in range(1, 8))],
    "workdays": ["2027-02-20", "2027-04-25", "2027-09-26", "2027-10-09"],
    "source": "Illustrative example, NOT the official 2027 schedule",
}


@pytest.fixture(autouse=True)
def ses_send_rate(monkeypatch):
    """moto's GetSendQuota answers the sandbox's 1 email a second, at which scans would pace (and
    really wait). Tests send at this configured rate unless they set their own."""
    monkeypatch.setattr(outbox, "configured_send_rate", lambda: 10_000.0)


@pytest.fixture
def crash_expected():
    """The test makes a route raise on purpose: its 500 is not checked against the spec."""
    _CRASHES["expected"] = True
    yield
    _CRASHES["expected"] = False


@functools.cache
def _empty_tables():
    """moto's tables as `tables.create_all()` leaves them, made once per process: creating them through
    the API in every test cost more than most tests themselves."""
    with mock_aws():
        tables.create_all()
        return copy.deepcopy(dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables)


@pytest.fixture
def aws():
    """A fresh moto account (every backend reset) holding empty tables and the verified sender."""
    empty = _empty_tables()
    with mock_aws():
        dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables.update(copy.deepcopy(empty))
        ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].verify_email_identity(SENDER)
        yield


class Mailbox:
    """What moto's SES accepted, parsed: each mail as an EmailMessage."""

    def messages(self):
        backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        raw = [m.raw_data for m in backend.sent_messages]
        return [email.message_from_string(r, policy=email.policy.default) if isinstance(r, str)
                else email.message_from_bytes(r, policy=email.policy.default) for r in raw]

    def keys(self):
        """The outbox key of every accepted mail (X-SLA-Notification: request|key)."""
        return [str(m["X-SLA-Notification"]).split("|", 1)[1] for m in self.messages()]

    def to(self, address):
        return [m for m in self.messages() if address in str(m["To"])]


@pytest.fixture
def mailbox(aws):
    return Mailbox()


class JsonClient:
    """`chalice.test.Client` speaking JSON with a bearer token; returns (status, body)."""

    def __init__(self, http, token=None):
        self.http, self.token = http, token

    def as_token(self, token):
        return JsonClient(self.http, token)

    def call(self, method, path, body=None, headers=None, raw=None):
        sent = {"Content-Type": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.http, method.lower())(path, headers=sent, body=payload)
        text = response.body.decode("utf-8") if isinstance(response.body, bytes) else response.body
        return response.status_code, (json.loads(text) if text else None)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def client(aws):
    from app import app

    with Client(app) as chalice_client:
        yield JsonClient(chalice_client.http)


@pytest.fixture
def admin(client):
    return client.as_token(ADMIN_TOKEN)


@pytest.fixture
def acme(admin):
    """The demo contract as "acme", with an agent and a client token: (admin, agent, client)."""
    return contract_with_tokens(admin, DEMO_CONTRACT)


SH = ZoneInfo("Asia/Shanghai")


def local(day, hour, minute=0):
    """An instant of November 2026 in Shanghai, where the demo contract's calendar runs."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


@pytest.fixture
def clock():
    """Monday 23 November 2026, 10:00 in Shanghai, frozen until a test moves it."""
    with time_machine.travel(local(23, 10), tick=False) as traveller:
        yield traveller


def contract_with_tokens(admin, document, contract_id="acme"):
    """`document` stored as a new contract, with an agent and a client token: (admin, agent, client)."""
    status, body = admin.put(f"/contracts/{contract_id}", document)
    assert status == 201, body
    tokens = {}
    for role in ("agent", "client"):
        status, body = admin.post("/tokens", {"role": role, "contract_id": contract_id})
        assert status == 201, body
        tokens[role] = body["token"]
    return admin, admin.as_token(tokens["agent"]), admin.as_token(tokens["client"])


def demo_contract(**changes):
    """The demo contract with changes at dotted paths: demo_contract(**{"calendar.hours": []})."""
    document = copy.deepcopy(DEMO_CONTRACT)
    for path, value in changes.items():
        *parents, key = path.split(".")
        target = document
        for name in parents:
            target = target[name]
        target[key] = value
    return document


@pytest.fixture
def local_receiver(monkeypatch):
    """A webhook receiver on loopback (test_webhooks.Receiver), with webhooks to loopback allowed."""
    from test_webhooks import Receiver  # it imports this module

    from chalicelib.aws import webhooks
    monkeypatch.setenv(webhooks.ALLOW_LOCAL_VARIABLE, "1")
    found = Receiver()
    yield found
    found.close()


@contextlib.contextmanager
def refusing_port():
    """A loopback port that refuses every connection at once: bound and never listening, and held so
    for the whole block, so no other test process can take it up meanwhile (a port found free and
    given back could be listening elsewhere a moment later, and then hang or answer)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
