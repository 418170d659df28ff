"""Nothing lost, nothing doubled: random timelines × random SES outages × random scan times.

A hypothesis state machine drives the real API and scanner (chalice.test.Client + moto) while the
clock jumps and SES fails for random stretches. At the end SES recovers and the scanner catches up;
then every breach the clock shows has been alerted, every email went out at most once, and every
provider alert sent announced a milestone that had really come.
"""
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import boto3
import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from chalice.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from moto import mock_aws

from app import app
from chalicelib import evaluation, scanner
from chalicelib.aws import outbox, store, tables
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import delivery
from chalicelib.core.clock import evaluate
from conftest import ADMIN_TOKEN, DEMO_CONTRACT, SENDER, JsonClient, Mailbox

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 9, 30, tzinfo=SH)
EVENTS = ("respond", "progress", "await_customer", "customer_reply", "resolve", "reopen")
_original_call = BaseClient._make_api_call
# An SES outage this long is still retried to the end (24 h); a longer one rightly fails notifications.
MAX_OUTAGE = timedelta(hours=12)
MAX_BACKOFF = delivery.MAX_BACKOFF



def open_acme():
    """The app's test client, entered (the caller exits it), with the demo contract put as acme:
    (client, admin client)."""
    chalice = Client(app)
    chalice.__enter__()
    admin = JsonClient(chalice.http, ADMIN_TOKEN)
    assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
    return chalice, admin

class RequestTraffic(RuleBasedStateMachine):
    """Requests received and events posted through the API (`self.admin`), their ids in `self.requests`:
    the traffic both outbox machines drive. Each machine's fakes go on `self.fakes` (an ExitStack) as
    it starts them; after every example its books are checked (`check_the_end`), then they stop."""

    def start_traffic(self):
        """The app's test client with the demo contract as acme, open until the fakes stop."""
        self.chalice, self.admin = open_acme()
        self.fakes.callback(self.chalice.__exit__, None, None, None)
        self.requests = []

    @property
    def now(self):
        return datetime.now(UTC)

    def teardown(self):
        if not hasattr(self, "fakes"):
            return
        with self.fakes:
            self.check_the_end()

    @rule(priority=st.sampled_from(["urgent", "high", "medium"]))
    def receive(self, priority):
        status, body = self.admin.post("/requests", {
            "contract_id": "acme", "priority": priority, "channel": "portal", "subject": "故障",
            "requester": {"email": "zhang@customer.example"}})
        assert status == 201, body
        self.requests.append(body["request_id"])

    @precondition(lambda self: self.requests)
    @rule(which=st.integers(0, 10), kind=st.sampled_from(EVENTS))
    def post_event(self, which, kind):
        request_id = self.requests[which % len(self.requests)]
        status, body = self.admin.post(f"/requests/{request_id}/events", {"type": kind})
        assert status in (200, 409), body


class OutboxMachine(RequestTraffic):
    @initialize()
    def start(self):
        self.ses_down = False
        self.fakes = ExitStack()
        self.fakes.enter_context(mock_aws())
        self.traveller = self.fakes.enter_context(time_machine.travel(START, tick=False))
        machine = self

        def call(client, operation, params):
            if operation == "SendRawEmail" and machine.ses_down:
                raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
            return _original_call(client, operation, params)

        self.fakes.enter_context(mock.patch.object(BaseClient, "_make_api_call", call))
        tables.create_all()
        boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=SENDER)
        self.start_traffic()

    def scan(self):
        event = self.chalice.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                      resources=[], region="us-east-1")
        return self.chalice.lambda_.invoke("scan_deadlines", event).payload

    @rule(minutes=st.sampled_from([1, 7, 25, 50, 95, 240, 600, 1500]))
    def time_passes(self, minutes):
        self.traveller.shift(timedelta(minutes=minutes))
        if self.ses_down and self.now - self.down_since > MAX_OUTAGE:
            self.recovers()  # outages stay shorter than the outbox's 24 h of retries

    @rule()
    def ses_fails_or_recovers(self):
        if self.ses_down:
            self.recovers()
        else:
            self.ses_down, self.down_since = True, self.now

    def recovers(self):
        """SES is back. The real scanner runs every minute, so what waited is retried within the
        longest backoff: without these scans the model could let SES go down again before any scan
        saw it up, and a notification would rightly fail after 24 h of an outage SES never had."""
        self.ses_down = False
        for _ in range(2):
            self.traveller.shift(MAX_BACKOFF)
            self.scan_runs()

    @rule()
    def scan_runs(self):
        report = self.scan()
        assert report["errors"] == 0 and report["failed"] == 0

    @invariant()
    def no_email_is_sent_twice(self):
        if hasattr(self, "aws"):
            keys = [m["X-SLA-Notification"] for m in Mailbox().messages()]
            assert len(keys) == len(set(keys))

    def check_the_end(self):
        """SES recovers; the scanner catches up without the clock moving; then the books balance."""
        self.ses_down = False
        for _ in range(30):
            self.traveller.shift(timedelta(minutes=15))  # past every retry's backoff
            self.scan()
            if not list(outbox.pending_due(self.now + timedelta(days=1), scanner.SHARDS)):
                break
        now = self.now
        sent = {}
        for mail in Mailbox().messages():
            request_id, key = str(mail["X-SLA-Notification"]).strip().split("|", 1)
            sent.setdefault(request_id, set()).add(key)
        for request_id in self.requests:
            item = store.get_request(request_id)
            policy = evaluation.policy_for(item)
            state = evaluate(policy, evaluation.facts_of(item), item.events, now)
            entries = {e.key: e for e in NotificationModel.query(request_id)}
            assert all(e.status in ("sent", "superseded") for e in entries.values()), {
                k: e.status for k, e in entries.items()}
            mine = sent.get(request_id, set())
            breaches = [m for m in state.milestones if m.kind == "breach" and m.at <= now]
            for metric in {m.metric for m in breaches}:
                latest = max(m.cycle for m in breaches if m.metric == metric)
                assert f"breach|{metric}|{latest}" in mine, (request_id, metric, latest, sorted(mine))
            for key in mine:
                kind, *parts = key.split("|")
                if kind == "breach":
                    assert any(m.metric == parts[0] and m.cycle == int(parts[1]) for m in breaches), key
                metric = state.metrics[parts[0]] if kind == "warning" else None
                # The state lists the warning points of the cycle now running only: a warning of a
                # cycle since met, breached or stopped was built from the state of its own time.
                if metric is not None and metric.running and metric.cycle == int(parts[1]):
                    assert any(m.kind == "warn" and m.metric == parts[0] and m.cycle == int(parts[1])
                               and m.threshold == float(parts[2]) and m.at <= now for m in state.milestones), key


OutboxMachine.TestCase.settings = settings(max_examples=10, stateful_step_count=20, deadline=None,
                                           suppress_health_check=list(HealthCheck))
TestNothingLostNothingDoubled = OutboxMachine.TestCase
