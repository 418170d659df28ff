"""No log line holds a requester's address, name or subject in clear (docs/privacy.md): every path that
logs (the API and its errors, notifications, the scanner's warnings and breaches, webhooks, SES events,
Amazon Connect records) driven with one distinctive requester, every record and every written line
searched for them. An address stands in the logs as its pseudonym, the same in every line."""
import copy
import io
import json
import logging
import re
import sys
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from test_connect import CONTRACT as CONNECT_CONTRACT
from test_connect import HOTLINE, SH, Stream, contact_record
from test_customer_reports import nightly
from test_run_local import run_local
from test_scanner import scan_at
from test_ses_events import publish, script
from test_webhooks import hook

from app import app
from chalicelib import logs, requests
from chalicelib.aws.tables import NotificationModel
from conftest import contract_with_tokens, local
from infra.generate import NOTIFICATION_BLOCKED_PATTERN, UNHANDLED_EXCEPTION_PATTERN

ADDRESS = "li.xiaolong.privacy@customer.example"
NAME = "李小龙 Privacy-Name"
SUBJECT = "Privacy-Subject 系统无法登录 Q7"
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": SUBJECT,
           "description": f"{NAME} 无法登录 ({ADDRESS})", "requester": {"name": NAME, "email": ADDRESS}}
# Each must be absent from every record and line: the address (any case), its local part, the name and
# its parts, the subject.
PERSONAL = (ADDRESS, ADDRESS.upper(), "li.xiaolong.privacy", "李小龙", "Privacy-Name", "Privacy-Subject")
STAGE = "dev"  # the stage chalice.test.Client runs; also set for calls made outside it


class Captured:
    """What the `sla_clock` loggers and Chalice's app logger recorded (records) and wrote (lines), and
    what the functions printed (the metrics)."""

    def __init__(self, caplog, written, capsys):
        self.caplog, self.written, self.capsys, self.printed = caplog, written, capsys, ""

    def lines(self):
        return [json.loads(line) for line in self.written.getvalue().splitlines()]

    def texts(self):
        """Every record's message and fields, every line written, everything printed."""
        self.printed += self.capsys.readouterr().out
        records = [f"{r.getMessage()} {json.dumps(getattr(r, 'fields', {}), ensure_ascii=False, default=str)}"
                   for r in self.caplog.records]
        return [*records, *self.written.getvalue().splitlines(), *self.printed.splitlines()]

    def leaks(self):
        return [(found, text) for text in self.texts() for found in PERSONAL if found in text]

    def logged(self, logger, message=None):
        return [line for line in self.lines()
                if line["logger"] == logger and (message is None or re.fullmatch(message, line["message"]))]


@pytest.fixture
def captured(monkeypatch, caplog, capsys):
    """Every level of every `sla_clock` logger and Chalice's, as recorded and as written."""
    monkeypatch.setenv("SLA_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SLA_STAGE", STAGE)
    written, swapped = io.StringIO(), []
    loggers = [logging.getLogger("sla_clock"), app.log]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.stdout) or \
                    isinstance(handler.formatter, logs.JsonFormatter):
                swapped.append((handler, handler.setStream(written)))
        logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    assert swapped, "no handler writes the logs"
    yield Captured(caplog, written, capsys)
    for logger in loggers:
        logger.removeHandler(caplog.handler)
    for handler, stream in swapped:
        handler.setStream(stream)


@pytest.fixture
def tenant(admin, local_receiver, clock):
    """A contract fed by Amazon Connect and posting every event to a webhook from the test's start on (a
    webhook gets what happens after it was added): (admin, agent, client)."""
    document = copy.deepcopy(CONNECT_CONTRACT)
    document["webhooks"] = [hook(local_receiver.url)]
    document["notify"]["customer_reports"] = [ADDRESS]
    return contract_with_tokens(admin, document)


def fail_ses_send(monkeypatch, message):
    original = BaseClient._make_api_call

    def refusing(client, operation, params):
        if operation == "SendRawEmail":
            raise ClientError({"Error": {"Code": "MessageRejected", "Message": message}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refusing)


def test_a_requests_whole_life_is_logged_without_the_requesters_address_name_or_subject(
        tenant, mailbox, clock, local_receiver, captured):
    _, agent, _ = tenant
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    request_id = body["request_id"]
    scan_at(clock, local(23, 10, 20))  # the first response's warning, and the webhook deliveries
    scan_at(clock, local(23, 10, 31))  # its breach
    assert agent.post(f"/requests/{request_id}/events", {"type": "respond", "note": f"已联系 {NAME}"})[0] == 200
    acknowledgement = NotificationModel.get(request_id, "acknowledgement")
    bounce = script.ses_event("bounce", acknowledgement.message_id, [ADDRESS], local(23, 10, 32))
    bounce["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = \
        f"smtp; 550 5.1.1 <{ADDRESS}>: Recipient address rejected: {NAME} left the company"
    assert publish(bounce) == "recorded"
    assert publish(script.ses_event("complaint", acknowledgement.message_id, [ADDRESS], local(23, 10, 33))) \
        == "recorded"
    scan_at(clock, local(23, 10, 34))  # the admins' email about the requester's bounce
    by_email = contact_record("c-mail-1", HOTLINE, local(23, 10), answered=10)
    by_email["CustomerEndpoint"] = {"Address": ADDRESS, "Type": "EMAIL_ADDRESS"}
    by_email["Attributes"] = {"customer_name": NAME, "subject": SUBJECT}
    unreadable = json.dumps({"CustomerEndpoint": {"Address": ADDRESS}, "Name": NAME}).encode()[:-1]
    Stream().deliver(by_email, unreadable)
    nightly(clock, datetime(2026, 12, 1, 0, 5, tzinfo=SH))  # November's report, to the requester as a customer

    assert captured.leaks() == []
    # Every path did log: the test searched real lines, not an empty log.
    assert mailbox.to(ADDRESS) and local_receiver.events()[:1] == ["received"]
    for logger, message in [("sla_clock.notify", "notification sent"), ("sla_clock.webhooks", "webhook delivered"),
                            ("sla_clock.scanner", "scan finished"), ("sla_clock.ses_feedback", "ses bounce recorded"),
                            ("sla_clock.ses_feedback", "ses complaint recorded"),
                            ("sla_clock.connect", "contact record skipped: malformed"),
                            ("sla_clock.connect", "contact records consumed"),
                            ("sla_clock.tally", "tally finished"), ("sla_clock.tally", "customer report queued")]:
        assert captured.logged(logger, message), (logger, message)
    scans = captured.logged("sla_clock.scanner", "scan finished")
    assert sum(line["sent"] for line in scans) >= 3  # the warning, the breach, the admins' bounce email
    # The requester's mail is followed by its pseudonym: the same in every line that names the address.
    pseudonym = logs.pseudonym(ADDRESS)
    to_requester = [line for line in captured.logged("sla_clock.notify", "notification sent")
                    if pseudonym in line["to_hashes"]]
    assert {line["key"] for line in to_requester} >= {"acknowledgement", "event|2"}
    [report] = captured.logged("sla_clock.tally", "customer report queued")
    assert report["to_hashes"] == [pseudonym]
    assert all("subject" not in line and "to" not in line for line in captured.lines())


def test_http_errors_answer_the_callers_input_but_log_it_only_as_a_pseudonym(
        acme, clock, captured, monkeypatch, crash_expected):
    _, agent, _ = acme
    bad = {**REQUEST, "requester": {"name": NAME, "email": f"{NAME} {ADDRESS}"}}
    status, body = agent.post("/requests", bad)
    assert status == 400 and body["Message"].startswith("requester.email:") and ADDRESS in body["Message"]
    original = BaseClient._make_api_call

    def quoting(client, operation, params):  # an AWS error that quotes what it was given
        if operation == "TransactWriteItems":
            raise ClientError({"Error": {"Code": "InternalServerError",
                                         "Message": f"could not write the item of {ADDRESS}"}}, operation)
        return original(client, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", quoting)
        assert agent.post("/requests", REQUEST)[0] == 503
    with monkeypatch.context() as patch:
        def crashing(*args, **kwargs):
            raise RuntimeError(f"a bug while creating the request of {ADDRESS}")

        patch.setattr(requests, "create_request", crashing)
        assert agent.post("/requests", REQUEST)[0] == 500

    assert captured.leaks() == []
    [failed] = captured.logged("sla_clock.http", "AWS call failed")
    assert failed["code"] == "InternalServerError" and failed["path"] == "/requests"
    # Chalice's own line for a crashed route is a masked JSON line too, still found by its metric filter.
    [crash] = [line for line in captured.written.getvalue().splitlines() if "Caught exception" in line]
    assert UNHANDLED_EXCEPTION_PATTERN.strip('"') in crash
    assert logs.pseudonym(ADDRESS) in json.loads(crash)["exception"]


def test_an_address_ses_quotes_in_its_refusal_is_logged_as_the_pseudonym_the_sent_line_uses(
        acme, mailbox, clock, captured, monkeypatch):
    _, agent, _ = acme
    with monkeypatch.context() as patch:
        fail_ses_send(patch, f"Email address is not verified. The following identities failed the check in "
                             f"region US-EAST-1: {ADDRESS}")
        assert agent.post("/requests", REQUEST)[0] == 201
    scan_at(clock, local(23, 10) + timedelta(minutes=5))
    assert captured.leaks() == []
    [blocked] = captured.logged("sla_clock.notify", "notification blocked")
    [sent] = [line for line in captured.logged("sla_clock.notify", "notification sent")
              if line["key"] == "acknowledgement"]
    assert sent["to_hashes"] == [logs.pseudonym(ADDRESS)] and sent["to_hashes"][0] in blocked["error"]
    # The alarm's metric filter still matches the line.
    assert re.findall(r'\$\.(\w+) = "([^"]+)"', NOTIFICATION_BLOCKED_PATTERN) == [
        ("logger", blocked["logger"]), ("message", blocked["message"])]


# --- the pseudonym and the formatter's guard ------------------------------------------------------------


def formatted(message, *args, fields=None, exc_info=None):
    record = logging.LogRecord("sla_clock.test", logging.ERROR, __file__, 1, message, args, exc_info)
    if fields is not None:
        record.fields = fields
    return logs.JsonFormatter().format(record)


def test_the_pseudonym_is_stable_case_blind_per_stage_and_tells_addresses_apart(monkeypatch):
    monkeypatch.setenv("SLA_STAGE", "prod")
    same = logs.pseudonym(ADDRESS)
    assert re.fullmatch(r"addr:[0-9a-f]{12}", same)
    assert logs.pseudonym(ADDRESS) == logs.pseudonym(f" {ADDRESS.upper()} ") == same
    assert logs.pseudonym("wang@customer.example") != same
    monkeypatch.setenv("SLA_STAGE", "dev")
    assert logs.pseudonym(ADDRESS) != same  # another stage's logs cannot be matched against these


def test_the_formatter_masks_an_address_in_the_message_any_field_and_the_trace():
    try:
        raise ValueError(f"refused: {ADDRESS}")
    except ValueError:
        exc_info = sys.exc_info()
    line = formatted("sent to %s", ADDRESS.upper(), fields={
        "error": f"MessageRejected: '{ADDRESS}' is not verified", "nested": {"to": [ADDRESS, "wang@客户.中国"]},
        "count": 2}, exc_info=exc_info)
    assert ADDRESS not in line.lower() and "wang@" not in line
    entry = json.loads(line)
    pseudonym = logs.pseudonym(ADDRESS)
    assert entry["message"] == f"sent to {pseudonym}"
    assert entry["error"] == f"MessageRejected: '{pseudonym}' is not verified"
    assert entry["nested"] == {"to": [pseudonym, logs.pseudonym("wang@客户.中国")]} and entry["count"] == 2
    assert f"ValueError: refused: {pseudonym}" in entry["exception"]


def test_the_guard_leaves_text_that_is_no_address_alone():
    text = "a @ b; user@localhost; https://hooks.example/x?y=1; 2026-11-23T10:00:00+08:00; req_0f3a"
    assert json.loads(formatted(text))["message"] == text


def test_log_event_records_fields_already_masked_for_every_handler(caplog):
    logger = logging.getLogger("sla_clock.test")
    logger.addHandler(caplog.handler)
    try:
        logs.log_event(logger, f"about {ADDRESS}", error=f"SES: {ADDRESS}", to=[ADDRESS], n=1)
    finally:
        logger.removeHandler(caplog.handler)
    pseudonym = logs.pseudonym(ADDRESS)
    assert {(r.getMessage(), json.dumps(r.fields)) for r in caplog.records} == {
        (f"about {pseudonym}", json.dumps({"error": f"SES: {pseudonym}", "to": [pseudonym], "n": 1}))}


def test_make_runs_mail_summary_reads_recipients_and_subject_from_the_local_copy_not_the_log(tmp_path, capsys):
    message = EmailMessage()
    message["To"], message["Subject"] = ADDRESS, SUBJECT
    message.set_content("body")
    copy_path = tmp_path / "20261123T100000-req_1-acknowledgement.eml"
    copy_path.write_bytes(message.as_bytes())
    record = logging.LogRecord("sla_clock.notify", logging.INFO, __file__, 1, "notification sent", (), None)
    record.fields = {"kind": "acknowledgement", "to_hashes": [logs.pseudonym(ADDRESS)], "eml": str(copy_path)}
    run_local.MailSummary().emit(record)
    assert capsys.readouterr().out == f"mail: acknowledgement   to {ADDRESS}: {SUBJECT}  [{copy_path}]\n"
