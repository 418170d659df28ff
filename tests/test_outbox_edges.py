"""The outbox at AWS's edges: every notification ends (sent, failed with its reason, or superseded)
within 24 hours whatever raises while it is prepared, encoded or sent; what SES accepted is sent
once even when recording it fails; no email exceeds SES's 50 recipients; a webhook URL is sent as
its receiver expects it, non-ASCII and all."""
import copy
import json
import logging
import socket
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from test_scanner import ADMIN, PROVIDER, create, local, scan_at
from test_scanner_faults import AwsCalls, ses_error
from test_webhooks import Receiver, contract, hook, webhook_entries

from app import app
from chalicelib.aws import metrics, outbox, webhooks
from chalicelib.aws.tables import ContractModel, NotificationModel
from chalicelib.core import alerts, delivery
from conftest import DEMO_CONTRACT

BREACH = "breach|first_response|0"  # of an urgent request received at 10:00: due 10:30


@pytest.fixture
def aws_calls(monkeypatch):
    return AwsCalls(monkeypatch)


@pytest.fixture
def local_webhooks(monkeypatch):
    monkeypatch.setenv(webhooks.ALLOW_LOCAL_VARIABLE, "1")


@pytest.fixture
def receiver(local_webhooks):
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def no_pauses(monkeypatch):
    """The retries of a record go on at once: the test counts them, it need not wait for them."""
    monkeypatch.setattr(outbox, "_sleep", lambda seconds: None)


@pytest.fixture
def notify_log(caplog):
    logging.getLogger("sla_clock").addHandler(caplog.handler)
    yield caplog
    logging.getLogger("sla_clock").removeHandler(caplog.handler)


def throttled(operation):
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def marks_sent(operation, params):
    """The UpdateItem that records an outbox entry as sent."""
    return operation == "UpdateItem" and {"S": "sent"} in params.get("ExpressionAttributeValues", {}).values()


def fail_times(n, which):
    """A fault plan for AwsCalls: the first `n` calls matching `which(operation, params)` fail."""
    left = {"n": n}

    def fail(operation, params):
        if which(operation, params) and left["n"] > 0:
            left["n"] -= 1
            return throttled(operation) if operation != "SendRawEmail" else ses_error("Throttling", "slow down", 400)
        return None

    return fail


def with_notify(**lists):
    document = copy.deepcopy(DEMO_CONTRACT)
    document["notify"] = {**document["notify"], **lists}
    return document


def stored_around_the_api(contract_id, **lists):
    """Change the latest stored version's notify lists as a version accepted before today's rules
    would hold them: written to the table directly, not through PUT."""
    record = next(ContractModel.query(contract_id, scan_index_forward=False, limit=1))
    document = json.loads(json.dumps(record.document))
    document["notify"].update(lists)
    record.update(actions=[ContractModel.document.set(document)])


def addresses(n, domain="provider.example", prefix="ops"):
    return [f"{prefix}{i}@{domain}" for i in range(n)]


# --- sent means sent once ---------------------------------------------------------------------------


def test_an_acknowledgement_ses_accepted_is_sent_once_when_recording_it_is_throttled(
        acme, mailbox, clock, aws_calls, no_pauses):
    _, agent, _ = acme
    aws_calls.fail = fail_times(3, marks_sent)
    request_id = create(agent)
    assert aws_calls.calls.count("SendRawEmail") == 1
    entry = NotificationModel.get(request_id, "acknowledgement")
    assert entry.status == "sent" and entry.attempts == 1 and entry.message_id
    scan_at(clock, local(23, 10, 5))  # well past the lease: nothing is left to send again
    assert aws_calls.calls.count("SendRawEmail") == 1 and mailbox.keys() == ["acknowledgement"]


def test_a_breach_alert_whose_mark_is_throttled_is_sent_by_one_scan_once(acme, mailbox, clock, aws_calls, no_pauses):
    _, agent, _ = acme
    request_id = create(agent, priority="urgent")
    aws_calls.reset()
    aws_calls.fail = fail_times(4, marks_sent)
    report = scan_at(clock, local(23, 10, 31))
    assert report["sent"] == 1 and report["errors"] == 0
    assert aws_calls.calls.count("SendRawEmail") == 1
    for minute in (34, 40, 59):
        scan_at(clock, local(23, 10, minute))
    assert aws_calls.calls.count("SendRawEmail") == 1 and mailbox.keys().count(BREACH) == 1
    assert NotificationModel.get(request_id, BREACH).status == "sent"


def test_a_webhook_delivery_whose_mark_is_throttled_is_posted_once(acme, receiver, clock, aws_calls, no_pauses):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["received"])))[0] == 200
    request_id = create(agent)
    aws_calls.fail = fail_times(3, marks_sent)
    scan_at(clock, local(23, 10))
    scan_at(clock, local(23, 10, 5))
    assert receiver.events() == ["received"]
    [entry] = webhook_entries(request_id)
    assert (entry.status, entry.attempts) == ("sent", 1)


def test_a_record_refused_past_its_patience_is_logged_and_only_then_may_the_send_repeat(
        acme, mailbox, clock, aws_calls, no_pauses, monkeypatch, notify_log):
    """The documented window: a table that refuses the mark for longer than RECORD_PATIENCE is a
    crash between send and mark. The scan counts it, and the email goes again once the lease ends."""
    _, agent, _ = acme
    request_id = create(agent, priority="urgent")
    monkeypatch.setattr(outbox, "RECORD_PATIENCE", 0.0)
    aws_calls.fail = fail_times(1, marks_sent)
    report = scan_at(clock, local(23, 10, 31))
    assert report["errors"] == 1 and mailbox.keys().count(BREACH) == 1
    assert [r for r in notify_log.records if r.getMessage().startswith("notification sent but not recorded")]
    scan_at(clock, local(23, 10, 32))  # the lease still holds it
    assert mailbox.keys().count(BREACH) == 1
    scan_at(clock, local(23, 10, 34))
    assert mailbox.keys().count(BREACH) == 2 and NotificationModel.get(request_id, BREACH).status == "sent"


# --- every notification ends -------------------------------------------------------------------------


def test_a_throttled_breach_alert_whose_contract_then_lost_every_address_fails_with_the_reason(
        acme, mailbox, clock, aws_calls):
    admin, agent, _ = acme
    request_id = create(agent, priority="urgent")
    aws_calls.fail = fail_times(1, lambda operation, params: operation == "SendRawEmail")
    scan_at(clock, local(23, 10, 31))
    assert NotificationModel.get(request_id, BREACH).status == "pending"
    assert admin.put("/contracts/acme", with_notify(provider=[], admins=[]))[0] == 200
    aws_calls.reset()
    lines = []
    metrics.use_writer(lines.append)
    try:
        report = scan_at(clock, local(23, 10, 32))
    finally:
        metrics.use_writer(None)
    entry = NotificationModel.get(request_id, BREACH)
    assert entry.status == "failed" and entry.attempts == 2
    assert entry.last_error == "no recipients: notify.provider and notify.admins are empty"
    assert report["failed"] == 1 and report["errors"] == 0 and "SendRawEmail" not in aws_calls.calls
    assert any(line.get("NotificationsFailed") == [1.0] for line in lines)
    assert entry.retry_at is None and entry.pending_shard is None  # out of the pending index: never tried again
    assert scan_at(clock, local(23, 11))["failed"] == 0


def test_an_exception_while_rendering_a_retry_is_a_failed_attempt_retried_then_failed_at_24_hours(
        acme, mailbox, clock, aws_calls, monkeypatch, notify_log):
    _, agent, _ = acme
    request_id = create(agent, priority="urgent")
    aws_calls.fail = fail_times(1, lambda operation, params: operation == "SendRawEmail")
    scan_at(clock, local(23, 10, 31))

    def broken(*args):
        raise KeyError("deadline")

    monkeypatch.setattr(alerts, "render", broken)  # a template bug ships with the next deploy
    report = scan_at(clock, local(23, 10, 32))
    entry = NotificationModel.get(request_id, BREACH)
    assert (entry.status, entry.attempts, entry.last_error) == ("pending", 2, "KeyError: 'deadline'")
    assert report["errors"] == 0 and report["pending"] == 1
    blocked = [r for r in notify_log.records if r.getMessage() == "notification blocked"]
    assert blocked[-1].levelno == logging.ERROR and blocked[-1].fields["error_class"] == "unexpected"
    assert blocked[-1].exc_info  # its trace, for whoever fixes the bug
    created = entry.created_at
    scan_at(clock, created + timedelta(hours=23, minutes=59))  # (the tries between change nothing)
    entry = NotificationModel.get(request_id, BREACH)
    assert entry.status == "pending" and entry.retry_at == (created + delivery.GIVE_UP_AFTER).timestamp()
    report = scan_at(clock, created + delivery.GIVE_UP_AFTER)  # the last try comes at 24 h, not later
    entry = NotificationModel.get(request_id, BREACH)
    assert (entry.status, entry.attempts, entry.last_error) == ("failed", 4, "KeyError: 'deadline'")
    assert report["failed"] == 1 and mailbox.keys().count(BREACH) == 0


def test_an_unexpected_exception_from_the_ses_call_is_a_failed_attempt_not_a_stuck_entry(
        acme, mailbox, clock, aws_calls):
    _, agent, _ = acme

    def fail(operation, params):
        if operation == "SendRawEmail":
            raise RuntimeError("connection pool is full")  # not a botocore error: nothing planned for it
        return None

    aws_calls.fail = fail
    request_id = create(agent)
    entry = NotificationModel.get(request_id, "acknowledgement")
    assert (entry.status, entry.attempts) == ("pending", 1) and entry.lease_until is None
    assert entry.last_error == "RuntimeError: connection pool is full"
    aws_calls.fail = None
    scan_at(clock, local(23, 10, 1))
    assert NotificationModel.get(request_id, "acknowledgement").status == "sent"


# --- webhook URLs as written -------------------------------------------------------------------------


def test_a_webhook_url_with_a_non_ascii_path_and_query_is_posted_percent_encoded(acme, receiver, clock):
    admin, agent, _ = acme
    url = receiver.url + "/工单?team=运维&name=José&q=a b".replace(" ", "%20")
    assert admin.put("/contracts/acme", contract(hook(url, ["received"])))[0] == 200
    assert admin.get("/contracts/acme")[1]["webhooks"][0]["url"] == url  # stored as written
    request_id = create(agent)
    report = scan_at(clock, local(23, 10))
    assert report["errors"] == 0
    [delivery] = receiver.deliveries
    assert delivery["path"] == ("/sla-hooks/%E5%B7%A5%E5%8D%95?team=%E8%BF%90%E7%BB%B4&name=Jos%C3%A9&q=a%20b")
    [entry] = webhook_entries(request_id)
    assert entry.status == "sent"


def test_an_internationalised_host_is_looked_up_and_named_in_punycode(acme, receiver, clock, monkeypatch):
    admin, agent, _ = acme
    port = receiver.server.server_port
    url = f"http://bücher.localhost:{port}/hook"
    assert admin.put("/contracts/acme", contract(hook(url, ["received"])))[0] == 200
    original, asked = socket.getaddrinfo, []

    def resolver(host, *args, **kwargs):
        asked.append(host)
        return original("127.0.0.1" if host.endswith(".localhost") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    create(agent)
    scan_at(clock, local(23, 10))
    assert "xn--bcher-kva.localhost" in asked
    [delivery] = receiver.deliveries
    assert delivery["headers"]["Host"] == f"xn--bcher-kva.localhost:{port}"


@pytest.mark.parametrize("url", [
    "https://hooks.customer.example/sla?team=\ud800",  # a lone surrogate: no UTF-8 form to percent-encode
    "https://hooks.customer.example/\udfff/sla",
    f"https://{'x' * 64}é.customer.example/sla",  # a label too long for its punycode form
    f"http://{'x' * 64}é.localhost:9000/sla",  # loopback names too: DNS and TLS are asked in punycode
])
def test_a_webhook_url_that_cannot_be_sent_as_written_is_refused_at_put_naming_it(acme, local_webhooks, url):
    admin = acme[0]
    raw = json.dumps(contract(hook("https://hooks.customer.example/ok"), hook(url)))
    status, body = admin.put("/contracts/acme", raw=raw)
    assert status == 400 and body["Message"].startswith("webhooks[1].url:"), body


def test_an_unexpected_exception_while_posting_a_webhook_ends_failed_after_24_hours(
        acme, receiver, clock, monkeypatch, notify_log):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["received"])))[0] == 200
    request_id = create(agent)

    def old_encoder(*args):
        "é".encode("ascii")  # what a request line of a non-ASCII URL once raised

    monkeypatch.setattr(webhooks, "_request", old_encoder)
    scan_at(clock, local(23, 10))
    [entry] = webhook_entries(request_id)
    assert entry.status == "pending" and entry.last_error.startswith("UnicodeEncodeError: 'ascii' codec")
    assert entry.lease_until is None and entry.retry_at == local(23, 10, 0).timestamp() + 30
    errors = [r for r in notify_log.records if r.getMessage() == "notification blocked"]
    assert errors and errors[0].fields["error_class"] == "unexpected"
    scan_at(clock, local(24, 10))  # 24 h after its creation
    [entry] = webhook_entries(request_id)
    assert (entry.status, entry.attempts) == ("failed", 2) and entry.last_error.startswith("UnicodeEncodeError")
    notify_log.clear()
    scan_at(clock, local(24, 10, 15))
    assert not [r for r in notify_log.records if r.levelno >= logging.ERROR]  # no scan reports it again
    assert receiver.deliveries == []


# --- SES's 50 recipients ---------------------------------------------------------------------------


def test_a_contract_whose_breach_alerts_would_go_to_more_than_50_addresses_is_refused_naming_notify(acme):
    admin = acme[0]
    too_many = with_notify(provider=addresses(30), admins=addresses(30, prefix="boss"))
    status, body = admin.put("/contracts/acme", too_many)
    assert status == 400 and body["Message"].startswith("notify:") and "60" in body["Message"], body
    status, body = admin.put("/contracts/acme", with_notify(customer_reports=addresses(51, "customer.example")))
    assert status == 400 and body["Message"].startswith("notify.customer_reports:"), body
    # 30 + 30 naming 50 different mailboxes (10 in both lists, some in another case) is within the limit.
    admins = addresses(20, prefix="boss") + [a.upper() for a in addresses(10)]
    assert admin.put("/contracts/acme", with_notify(provider=addresses(30), admins=admins))[0] == 200


def test_an_address_listed_twice_is_kept_once_and_a_breach_alert_names_each_mailbox_once(acme, mailbox, clock):
    admin, agent, _ = acme
    status, body = admin.put("/contracts/acme", with_notify(provider=[PROVIDER, PROVIDER.upper(), PROVIDER],
                                                            admins=[ADMIN, PROVIDER]))
    assert status == 200 and body["notify"]["provider"] == [PROVIDER], body
    assert body["notify"]["admins"] == [ADMIN, PROVIDER]  # each list keeps its own; the alert joins them
    create(agent, priority="urgent")
    scan_at(clock, local(23, 10, 31))
    [alert] = [m for m in mailbox.messages() if BREACH in m["X-SLA-Notification"]]
    assert [a.addr_spec for a in alert["To"].addresses] == [PROVIDER, ADMIN]


def test_a_breach_alert_of_a_stored_contract_over_the_limit_fails_with_the_reason_and_is_not_retried(
        acme, mailbox, clock, aws_calls):
    _, agent, _ = acme
    stored_around_the_api("acme", provider=addresses(30), admins=addresses(30, prefix="boss"))
    request_id = create(agent, priority="urgent")
    aws_calls.reset()
    report = scan_at(clock, local(23, 10, 31))
    entry = NotificationModel.get(request_id, BREACH)
    assert entry.status == "failed" and entry.attempts == 1 and report["failed"] == 1
    assert entry.last_error.startswith("60 recipients, more than the 50 SES takes in one message")
    assert "SendRawEmail" not in aws_calls.calls
    assert scan_at(clock, local(23, 10, 45))["failed"] == 0  # ended: no scan tries it again


def test_a_daily_tally_of_a_stored_contract_over_the_limit_fails_with_the_reason(acme, clock, aws_calls):
    admin, agent, _ = acme
    create(agent)
    stored_around_the_api("acme", admins=addresses(51, prefix="boss"))
    aws_calls.reset()
    clock.move_to(local(24, 0, 5))
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        lambda_client.lambda_.invoke("nightly_tally", event)
    [entry] = NotificationModel.query("contract#acme", NotificationModel.key.startswith("daily_tally|"))
    assert entry.status == "failed" and entry.last_error.startswith("51 recipients")
    assert "SendRawEmail" not in aws_calls.calls
