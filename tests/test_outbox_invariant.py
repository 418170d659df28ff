"""The outbox's invariant, under random contracts, edits and faults: every notification ends, and
nothing is sent twice.

A hypothesis state machine drives the real API and scanner (chalice.test.Client + moto, a webhook
receiver on loopback) while it draws contracts (no, few or too many recipients, webhooks with
non-ASCII paths, queries and hosts, URLs that cannot be sent, either language), edits them between
attempts (also around the API, as a version stored before today's rules), and injects faults at the
boundary: SES throttling, 5xx, rejections and exceptions nobody planned for, the write that records
a send throttled, receivers answering 5xx or refusing the connection, an exception while a webhook
is encoded. After every scan:
- every email and webhook delivery created 24 hours or more before it has ended (sent, failed with
  its reason, superseded or skipped);
- no entry was accepted twice (SES sends and 2xx-answered POSTs, counted per entry at the boundary),
  and an entry is `sent` exactly when it was accepted once;
- no scan reported an error: whatever went wrong was recorded on its entry.
"""
import copy
import os
import socket
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default
from unittest import mock
from zoneinfo import ZoneInfo

import time_machine
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.ses.models import ses_backends
from test_outbox_stateful import RequestTraffic
from test_webhooks import Receiver

from chalicelib.aws import outbox, webhooks
from chalicelib.aws.tables import ContractModel, NotificationModel
from chalicelib.core import delivery
from chalicelib.core.webhook_rules import delivery_id
from conftest import DEMO_CONTRACT, SENDER, _empty_tables, refusing_port

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 9, 30, tzinfo=SH)
ENDED = ("sent", "failed", "superseded", "skipped")
EVENTS = ("respond", "progress", "await_customer", "customer_reply", "resolve", "reopen")
HOOK_EVENTS = ("received", "warning", "breach", "progress_reminder", "resolved")
URL_KINDS = ("plain", "non_ascii", "idn_host", "refused", "unsendable")
SES_FAULTS = {
    "throttle": lambda: _ses_error("Throttling", "Maximum sending rate exceeded.", 400),
    "5xx": lambda: _ses_error("ServiceUnavailable", "Service unavailable", 503),
    "rejected": lambda: _ses_error("MessageRejected", "Email address is not verified.", 400),
    "unexpected": lambda: RuntimeError("no SES answer anyone planned for"),
}
_original_call = BaseClient._make_api_call
_original_request = webhooks._request
_original_getaddrinfo = socket.getaddrinfo


def _ses_error(code, message, status):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "SendRawEmail")


def _marks_sent(operation, params):
    return operation == "UpdateItem" and {"S": "sent"} in params.get("ExpressionAttributeValues", {}).values()


class OutboxInvariant(RequestTraffic):
    @initialize()
    def start(self):
        self.ses_faults, self.mark_faults, self.encoding_faults = [], 0, 0
        self.accepted = Counter()  # (request_id, key) -> emails SES accepted
        self.fakes = ExitStack()
        self.fakes.enter_context(mock_aws())
        dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables.update(copy.deepcopy(_empty_tables()))
        ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].verify_email_identity(SENDER)
        self.receiver = Receiver()
        self.fakes.callback(self.receiver.close)
        self.refused_port = self.fakes.enter_context(refusing_port())
        self.clock = self.fakes.enter_context(time_machine.travel(START, tick=False))
        machine = self

        def call(client, operation, params):
            if operation == "SendRawEmail" and machine.ses_faults:
                raise SES_FAULTS[machine.ses_faults.pop(0)]()
            if _marks_sent(operation, params) and machine.mark_faults:
                machine.mark_faults -= 1
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"},
                                   "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
            answer = _original_call(client, operation, params)
            if operation == "SendRawEmail":
                headers = BytesHeaderParser(policy=default).parsebytes(params["RawMessage"]["Data"])
                machine.accepted[tuple(str(headers["X-SLA-Notification"]).strip().split("|", 1))] += 1
            return answer

        def request(*args):
            if machine.encoding_faults:
                machine.encoding_faults -= 1
                "é".encode("ascii")  # an encoder that raises, as one once did for non-ASCII URLs
            return _original_request(*args)

        def resolver(host, *args, **kwargs):  # *.localhost (punycode once looked up) is this machine
            return _original_getaddrinfo("127.0.0.1" if host.endswith(".localhost") else host, *args, **kwargs)

        for patch in (mock.patch.object(BaseClient, "_make_api_call", call),
                      mock.patch.object(webhooks, "_request", request),
                      mock.patch.object(socket, "getaddrinfo", resolver),
                      mock.patch.object(outbox, "_sleep", lambda seconds: None),
                      mock.patch.object(outbox, "configured_send_rate", lambda: 10_000.0),
                      mock.patch.dict(os.environ, {webhooks.ALLOW_LOCAL_VARIABLE: "1"})):
            self.fakes.enter_context(patch)
        self.start_traffic()

    def url(self, kind, n):
        port = self.receiver.server.server_port
        return {"plain": f"http://127.0.0.1:{port}/hook{n}",
                "non_ascii": f"http://127.0.0.1:{port}/工单/{n}?team=运维&name=José",
                "idn_host": f"http://bücher{n}.localhost:{port}/h?q=ü",
                "refused": f"http://127.0.0.1:{self.refused_port}/down{n}",
                "unsendable": f"http://127.0.0.1:{port}/x{n}?q=\ud800"}[kind]

    # --- what happens -----------------------------------------------------------------------------

    @rule(provider=st.sampled_from([0, 1, 3, 30]), admins=st.sampled_from([0, 1, 30]),
          language=st.sampled_from(["zh-CN", "en"]),
          hooks=st.lists(st.tuples(st.sampled_from(URL_KINDS), st.sets(st.sampled_from(HOOK_EVENTS), min_size=1)),
                         max_size=2))
    def edit_contract(self, provider, admins, language, hooks):
        document = copy.deepcopy(DEMO_CONTRACT)
        provider_list = [f"p{i}@provider.example" for i in range(provider)]
        admin_list = [f"a{i}@provider.example" for i in range(admins)] + [a.upper() for a in provider_list[:1]]
        document["notify"] = {**document["notify"], "provider": provider_list, "admins": admin_list,
                              "language": language}
        document["webhooks"] = [{"url": self.url(kind, n), "events": sorted(events), "secret": "s" * 20}
                                for n, (kind, events) in enumerate(hooks)]
        status, body = self.admin.put("/contracts/acme", document)
        unsendable = [n for n, (kind, _) in enumerate(hooks) if kind == "unsendable"]
        # The upper-cased provider address is the same mailbox. A field's own rules (a URL's text) are
        # checked before the rules across fields (the 50 recipients): with both broken, the 400 names
        # the URL first, and the recipients once the URLs are mended.
        refused = [f"webhooks[{n}].url" for n in unsendable] or (["notify"] if provider + admins > 50 else [])
        if refused:
            named = [problem["Field"] for problem in body.get("Errors", ())]
            assert status == 400 and set(refused) <= set(named), body
        else:
            assert status == 200, body

    @rule(provider=st.sampled_from([0, 60]), admins=st.sampled_from([0, 60]))
    def a_version_stored_before_the_rules(self, provider, admins):
        """The lists as a version accepted before the 50-recipient rule could hold them."""
        record = next(ContractModel.query("acme", scan_index_forward=False, limit=1))
        document = copy.deepcopy(record.document)
        document["notify"]["provider"] = [f"old{i}@provider.example" for i in range(provider)]
        document["notify"]["admins"] = [f"boss{i}@provider.example" for i in range(admins)]
        record.update(actions=[ContractModel.document.set(document)])

    @rule(ses=st.lists(st.sampled_from(sorted(SES_FAULTS)), max_size=3), marks=st.integers(0, 3),
          receiver=st.lists(st.sampled_from([200, 404, 500, 503]), max_size=3), encoding=st.integers(0, 2))
    def trouble(self, ses, marks, receiver, encoding):
        """The next SES calls fail so, the next marks of a send are throttled (fewer times than the
        mark is retried), the receiver answers so, the next webhook encodings raise."""
        self.ses_faults, self.mark_faults, self.encoding_faults = list(ses), marks, encoding
        self.receiver.statuses = list(receiver)

    @rule(minutes=st.sampled_from([1, 7, 25, 60, 240, 600, 1500]))
    def time_passes(self, minutes):
        self.clock.shift(timedelta(minutes=minutes))

    @rule()
    def scan_runs(self):
        report = self.scan()
        assert report["errors"] == 0, report
        self.check(self.now)

    # --- the invariant ----------------------------------------------------------------------------

    def scan(self):
        event = self.chalice.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                      resources=[], region="us-east-1")
        return self.chalice.lambda_.invoke("scan_deadlines", event).payload

    def check(self, scanned_at):
        posted = Counter(d["headers"]["SLA-Delivery"] for d in self.receiver.deliveries if 200 <= d["status"] < 300)
        for entry in NotificationModel.scan():
            if entry.kind == "webhook":
                accepted = posted[delivery_id(entry.request_id, entry.key)]
            else:
                accepted = self.accepted[(entry.request_id, entry.key)]
            assert accepted <= 1, f"{entry.request_id}|{entry.key} accepted {accepted} times"
            assert (entry.status == "sent") == (accepted == 1), (entry.key, entry.status, accepted)
            if entry.created_at + delivery.GIVE_UP_AFTER <= scanned_at:
                assert entry.status in ENDED, (entry.key, entry.status, entry.created_at, entry.last_error)
            if entry.status == "failed":
                assert entry.last_error, entry.key

    def check_the_end(self):
        """No more faults; one scan 24 hours after the newest entry ends every entry there is."""
        self.ses_faults, self.mark_faults, self.encoding_faults, self.receiver.statuses = [], 0, 0, []
        newest = max((entry.created_at for entry in NotificationModel.scan()), default=self.now)
        self.clock.move_to(max(self.now, newest + delivery.GIVE_UP_AFTER))
        report = self.scan()
        assert report["errors"] == 0, report
        self.check(self.now)


OutboxInvariant.TestCase.settings = settings(max_examples=5, stateful_step_count=10, deadline=None, database=None,
                                             suppress_health_check=list(HealthCheck))
TestEveryNotificationEndsAndIsSentOnce = OutboxInvariant.TestCase
