"""SES events (issue 12): delivery, bounce and complaint events reach `ses_events` through SNS and are
recorded on the notification SES accepted under that message id; agents and admins see them."""
import importlib.util
import json
from pathlib import Path

import botocore.client
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from app import app
from chalicelib.aws import metrics, outbox
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import delivery
from conftest import contract_with_tokens, demo_contract, local

ROOT = Path(__file__).resolve().parent.parent
REQUESTER = "zhang@customer.example"
PROVIDER = "oncall@provider.example"
ADMIN = "sla-admin@provider.example"
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": REQUESTER}}
_spec = importlib.util.spec_from_file_location("ses_event_script", ROOT / "scripts" / "ses_event.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


@pytest.fixture
def written():
    """The EMF documents the functions write."""
    documents = []
    metrics.use_writer(documents.append)
    yield documents
    metrics.use_writer(None)


def publish(message):
    """SNS delivers `message` (a dict, or raw text) to the ses_events function, as Lambda would."""
    with Client(app) as lambda_client:
        text = message if isinstance(message, str) else json.dumps(message)
        event = lambda_client.events.generate_sns_event(message=text)
        return lambda_client.lambda_.invoke("ses_events", event).payload["outcome"]


def event(kind, entry, addresses=None, at=None, **options):
    return script.ses_event(kind, entry.message_id, addresses or entry.recipients, at or local(23, 10, 1), **options)


def create(agent):
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    return body["request_id"]


def acknowledgement(request_id):
    return NotificationModel.get(request_id, "acknowledgement")


def notifications(token, request_id):
    status, body = token.get(f"/requests/{request_id}")
    assert status == 200, body
    return {n["key"]: n for n in body.get("notifications", [])} if "notifications" in body else None


@pytest.mark.parametrize("shape", ["event", "notification"])
def test_a_delivery_is_recorded_on_the_notification_and_shown_to_agents_and_admins_never_clients(
        acme, mailbox, clock, shape):
    admin, agent, client = acme
    request_id = create(agent)
    entry = acknowledgement(request_id)
    assert entry.message_id  # kept when SES accepted it
    assert publish(event("delivery", entry, at=local(23, 10, 0), shape=shape)) == "recorded"
    for token in (agent, admin):
        shown = notifications(token, request_id)["acknowledgement"]
        assert shown["delivered_at"] == "2026-11-23T10:00:00+08:00"
        assert (shown["bounced_at"], shown["bounce_type"], shown["complained_at"]) == (None, None, None)
    assert notifications(client, request_id) is None


@pytest.mark.parametrize("shape", ["event", "notification"])
def test_a_complaint_is_recorded_once(acme, mailbox, clock, shape):
    _, agent, _ = acme
    request_id = create(agent)
    entry = acknowledgement(request_id)
    assert publish(event("complaint", entry, at=local(23, 11), shape=shape)) == "recorded"
    assert publish(event("complaint", entry, at=local(23, 12), shape=shape)) == "repeated"
    assert notifications(agent, request_id)["acknowledgement"]["complained_at"] == "2026-11-23T11:00:00+08:00"


def test_repeated_events_change_nothing_and_count_one_bounce(acme, mailbox, clock, written):
    _, agent, _ = acme
    request_id = create(agent)
    entry = acknowledgement(request_id)
    first = event("delivery", entry, at=local(23, 10, 1))
    assert [publish(first) for _ in range(3)] == ["recorded", "repeated", "repeated"]
    assert publish(event("delivery", entry, at=local(23, 10, 30))) == "repeated"  # a later copy changes nothing
    bounce = event("bounce", entry, at=local(23, 10, 2), bounce_type="Transient", shape="notification")
    assert [publish(bounce) for _ in range(2)] == ["recorded", "repeated"]
    stored = acknowledgement(request_id)
    assert stored.delivered_at == local(23, 10, 1) and stored.bounced_at == local(23, 10, 2)
    assert stored.bounce_type == "Transient"
    bounced = [d for d in written if "NotificationsBounced" in d]
    assert [(d["ContractId"], d["NotificationsBounced"]) for d in bounced] == [("acme", [1.0])]
    assert bounced[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ContractId", "Stage"], ["Stage"]]


def test_a_permanent_bounce_of_the_requester_tells_the_admins_once_per_request(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    assert agent.post(f"/requests/{request_id}/events", {"type": "respond", "note": "已收到"})[0] == 200
    ack, reply = acknowledgement(request_id), NotificationModel.get(request_id, "event|2")
    for entry in (ack, ack, reply):  # the same bounce again, then the requester's next email bouncing too
        publish(event("bounce", entry, [REQUESTER], at=local(23, 10, 5)))
    [alert] = mailbox.to(ADMIN)
    assert request_id in alert["Subject"] and REQUESTER in alert["Subject"]
    body = alert.get_body(("plain",)).get_content()
    assert "受理确认" in body and "550 5.1.1 user unknown" in body and "2026-11-23 10:05" in body
    shown = notifications(agent, request_id)
    assert shown["acknowledgement"]["bounce_type"] == "Permanent"
    assert shown["acknowledgement"]["bounced_at"] == shown["event|2"]["bounced_at"] == "2026-11-23T10:05:00+08:00"
    assert shown["bounce|requester"]["kind"] == "requester_bounce" and shown["bounce|requester"]["to"] == [ADMIN]
    assert shown["bounce|requester"]["status"] == "sent"


def test_a_transient_bounce_or_a_provider_address_bouncing_tells_no_admin(acme, mailbox, clock):
    _, agent, _ = acme
    request_id = create(agent)
    assert publish(event("bounce", acknowledgement(request_id), bounce_type="Transient")) == "recorded"
    clock.move_to(local(23, 10, 16))  # the urgent request's 50 % warning goes to the provider
    with Client(app) as lambda_client:
        lambda_client.lambda_.invoke("scan_deadlines", lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[], region="us-east-1"))
    warning = NotificationModel.get(request_id, "warning|first_response|0|0.5")
    assert warning.recipients == [PROVIDER]
    assert publish(event("bounce", warning)) == "recorded"
    assert mailbox.to(ADMIN) == [] and "bounce|requester" not in notifications(agent, request_id)


def test_unknown_message_ids_are_counted_and_ignored(acme, mailbox, clock, caplog):
    _, agent, _ = acme
    request_id = create(agent)
    before = acknowledgement(request_id).attribute_values
    stranger = script.ses_event("bounce", "0100018c-not-ours", [REQUESTER], local(23, 10, 1))
    with caplog.at_level("INFO", logger="sla_clock.ses_feedback"):
        assert [publish(stranger) for _ in range(2)] == ["unknown", "unknown"]
    assert [r.fields["message_id"] for r in caplog.records if r.getMessage() == "ses event for an unknown message"] \
        == ["0100018c-not-ours"] * 2
    assert acknowledgement(request_id).attribute_values == before and mailbox.to(ADMIN) == []


@pytest.mark.parametrize("message, outcome", [
    ("not json", "unreadable"),
    ("[1, 2]", "unreadable"),
    ({"mail": {"messageId": "x"}}, "unreadable"),
    ({"eventType": "Bounce", "bounce": {"bounceType": "Permanent"}}, "unreadable"),
    ({"eventType": "Send", "mail": {"messageId": "x"}, "send": {}}, "ignored"),
    ({"eventType": "Open", "mail": {"messageId": "x"}, "open": {}}, "ignored"),
    ({"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have successfully subscribed"},
     "ignored"),
])
def test_other_event_types_and_unreadable_messages_are_dropped_without_failing(aws, message, outcome):
    assert publish(message) == outcome


def ses_shaped(kind="Bounce", **detail):
    """An SES event of `kind` for a message id of ours or not, its detail object as given."""
    name = {"Bounce": "bounce", "Delivery": "delivery", "Complaint": "complaint"}[kind]
    return {"eventType": kind, "mail": {"messageId": "0100018c-x", "destination": [REQUESTER]}, name: detail}


MALFORMED = [
    ("bouncedRecipients a number", ses_shaped(bounceType="Permanent", bouncedRecipients=5)),
    ("bouncedRecipients an object", ses_shaped(bounceType="Permanent", bouncedRecipients={"emailAddress": REQUESTER})),
    ("recipients a string", ses_shaped("Delivery", recipients=REQUESTER)),
    ("complainedRecipients true", ses_shaped("Complaint", complainedRecipients=True)),
    ("bounce a list", {"eventType": "Bounce", "mail": {"messageId": "x"}, "bounce": [REQUESTER]}),
    ("bounce a string", {"eventType": "Bounce", "mail": {"messageId": "x"}, "bounce": "Permanent"}),
    ("mail a list", {"eventType": "Bounce", "mail": ["x"]}),
    ("messageId a number", {"eventType": "Delivery", "mail": {"messageId": 7}}),
    ("eventType a list", {"eventType": ["Bounce"], "mail": {"messageId": "x"}}),
    ("deep nesting", "[" * 100_000),
    ("deep objects", '{"a":' * 50_000),
    ("a JSON string", '"Bounce"'),
    ("JSON null", "null"),
    ("empty", ""),
    ("base64", "eyJldmVudFR5cGUiOiAiQm91bmNlIn0="),
]


@pytest.mark.parametrize("name, message", MALFORMED, ids=[name for name, _ in MALFORMED])
def test_a_malformed_sns_message_is_counted_and_dropped_never_raised(aws, written, caplog, name, message):
    with caplog.at_level("WARNING", logger="sla_clock.ses_feedback"):
        assert publish(message) == "unreadable"
    [warning] = [r.fields for r in caplog.records if r.getMessage() == "ses event unreadable"]
    assert warning["sns_message_id"] and warning["error"]
    assert REQUESTER not in caplog.text  # ids only, never the addresses it holds
    assert [(d["MalformedEvents"], d["Source"]) for d in written if "MalformedEvents" in d] == [([1.0], "ses_events")]


def test_bounce_details_of_odd_shapes_still_record_the_bounce(acme, mailbox, clock):
    """Fields SES may leave out or fill oddly (no recipients, a numeric bounce type, a timestamp that is
    no time): the bounce is still recorded at the time it arrived."""
    _, agent, _ = acme
    request_id = create(agent)
    document = event("bounce", acknowledgement(request_id), [REQUESTER])
    document["bounce"].update(bouncedRecipients=None, bounceType=5, timestamp=["now"])
    assert publish(document) == "recorded"
    assert notifications(agent, request_id)["acknowledgement"]["bounced_at"]


def test_a_dynamodb_failure_raises_so_lambda_retries_and_the_retry_records_it(acme, mailbox, clock, monkeypatch):
    _, agent, _ = acme
    request_id = create(agent)
    bounce = event("bounce", acknowledgement(request_id), [REQUESTER])
    original = botocore.client.BaseClient._make_api_call

    def throttled(client, operation, params):
        if operation == "UpdateItem" and "bounced_at" in json.dumps(params):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    with pytest.raises(Exception, match="slow down"):
        publish(bounce)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    assert publish(bounce) == "recorded"
    assert len(mailbox.to(ADMIN)) == 1


def test_emails_are_sent_through_the_stage_s_configuration_set(acme, mailbox, clock, monkeypatch):
    _, agent, _ = acme
    sends = []
    original = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "SendRawEmail":
            sends.append(params.get("ConfigurationSetName"))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    create(agent)  # inside the Lambda environment of the dev stage (.chalice/config.json)
    monkeypatch.delenv("SLA_SES_CONFIGURATION_SET", raising=False)
    request_id = create(agent)
    entry = NotificationModel.get(request_id, "acknowledgement")
    entry.update(actions=[NotificationModel.status.set("pending")])
    outbox.deliver_quietly([(entry, delivery.email(now=local(23, 10, 5), **outbox.stored_email(entry)))],
                           local(23, 10, 5))  # outside it, with no configuration set configured
    assert sends == ["sla-clock-dev", "sla-clock-dev", None]


def scan(clock, at):
    clock.move_to(at)
    with Client(app) as lambda_client:
        lambda_client.lambda_.invoke("scan_deadlines", lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[], region="us-east-1"))


def test_a_worse_bounce_replaces_a_milder_one_with_its_time_and_a_repeated_or_milder_one_changes_nothing(
        acme, mailbox, clock, written):
    _, agent, _ = acme
    request_id = create(agent)
    ack = acknowledgement(request_id)
    steps = [("Transient", local(23, 10, 2), "recorded"), ("Undetermined", local(23, 10, 3), "recorded"),
             ("Transient", local(23, 10, 4), "repeated"), ("Permanent", local(23, 10, 5), "recorded"),
             ("Undetermined", local(23, 10, 6), "repeated"), ("Permanent", local(23, 10, 7), "repeated")]
    outcomes = [publish(event("bounce", ack, [REQUESTER], at=at, bounce_type=kind)) for kind, at, _ in steps]
    assert outcomes == [outcome for _, _, outcome in steps]
    shown = notifications(agent, request_id)["acknowledgement"]
    assert (shown["bounce_type"], shown["bounced_at"]) == ("Permanent", "2026-11-23T10:05:00+08:00")
    [recipient] = shown["recipients_feedback"]
    assert recipient == {"address": REQUESTER, "delivered_at": None, "bounced_at": "2026-11-23T10:05:00+08:00",
                         "bounce_type": "Permanent", "complained_at": None,
                         "diagnostic": "smtp; 550 5.1.1 user unknown"}
    assert [d["NotificationsBounced"] for d in written if "NotificationsBounced" in d] == [[1.0]]  # one email
    assert len(mailbox.to(ADMIN)) == 1  # the requester's hard bounce, once


def test_a_permanent_bounce_recorded_before_the_per_recipient_record_is_still_the_worst(acme, mailbox, clock):
    """An email whose bounce was recorded on the email alone (before recipients were told apart) keeps it:
    a milder bounce of a recipient is recorded for that recipient, not over the email's Permanent one."""
    _, agent, _ = acme
    request_id = create(agent)
    ack = acknowledgement(request_id)
    ack.update(actions=[NotificationModel.bounced_at.set(local(23, 10, 1)),
                        NotificationModel.bounce_type.set("Permanent")])
    assert publish(event("bounce", ack, [REQUESTER], at=local(23, 10, 2), bounce_type="Transient")) == "recorded"
    shown = notifications(agent, request_id)["acknowledgement"]
    assert (shown["bounce_type"], shown["bounced_at"]) == ("Permanent", "2026-11-23T10:01:00+08:00")
    assert [(r["address"], r["bounce_type"]) for r in shown["recipients_feedback"]] == [(REQUESTER, "Transient")]


def test_each_recipient_s_delivery_bounce_and_complaint_are_recorded_under_its_address(admin, mailbox, clock, caplog):
    backup = "Backup@provider.example"
    _, agent, _ = contract_with_tokens(admin, demo_contract(**{"notify.provider": [PROVIDER, backup]}))
    request_id = create(agent)
    scan(clock, local(23, 10, 16))  # the urgent request's 50 % warning goes to both provider addresses
    warning = NotificationModel.get(request_id, "warning|first_response|0|0.5")
    assert warning.recipients == [PROVIDER, backup]
    delivered = event("delivery", warning, [PROVIDER], at=local(23, 10, 17))
    bounce = event("bounce", warning, [backup.lower(), "stranger@elsewhere.example"], at=local(23, 10, 18))
    answer = "smtp; 550 5.1.1 <backup@provider.example>: no such user"
    bounce["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = answer
    complaint = event("complaint", warning, [PROVIDER], at=local(23, 10, 19))
    with caplog.at_level("INFO", logger="sla_clock.ses_feedback"):
        assert [publish(e) for e in (delivered, bounce, complaint, bounce)] == \
            ["recorded", "recorded", "recorded", "repeated"]
    shown = notifications(agent, request_id)["warning|first_response|0|0.5"]
    assert (shown["delivered_at"], shown["bounced_at"], shown["bounce_type"], shown["complained_at"]) == (
        "2026-11-23T10:17:00+08:00", "2026-11-23T10:18:00+08:00", "Permanent", "2026-11-23T10:19:00+08:00")
    assert shown["recipients_feedback"] == [  # in the order of `to`, spelled as there; no stranger
        {"address": PROVIDER, "delivered_at": "2026-11-23T10:17:00+08:00", "bounced_at": None, "bounce_type": None,
         "complained_at": "2026-11-23T10:19:00+08:00", "diagnostic": None},
        {"address": backup, "delivered_at": None, "bounced_at": "2026-11-23T10:18:00+08:00",
         "bounce_type": "Permanent", "complained_at": None,
         "diagnostic": answer},
    ]
    assert mailbox.to(ADMIN) == []  # a provider address bounced, not the requester's
    logged = [r for r in caplog.records if r.name == "sla_clock.ses_feedback"]
    assert logged and all("provider.example" not in r.getMessage() + json.dumps(r.fields) for r in logged)


def test_a_second_recipient_bouncing_after_the_first_is_recorded_for_it_alone(admin, mailbox, clock):
    _, agent, _ = contract_with_tokens(admin, demo_contract(**{"notify.provider": [PROVIDER, "b@provider.example"]}))
    request_id = create(agent)
    scan(clock, local(23, 10, 16))
    warning = NotificationModel.get(request_id, "warning|first_response|0|0.5")
    assert publish(event("bounce", warning, [PROVIDER], at=local(23, 10, 17))) == "recorded"
    assert publish(event("bounce", warning, ["b@provider.example"], at=local(23, 10, 18))) == "recorded"
    shown = notifications(agent, request_id)["warning|first_response|0|0.5"]
    assert shown["bounced_at"] == "2026-11-23T10:17:00+08:00"  # the email's first Permanent bounce
    assert [r["bounced_at"] for r in shown["recipients_feedback"]] == ["2026-11-23T10:17:00+08:00",
                                                                       "2026-11-23T10:18:00+08:00"]


def test_two_events_of_one_email_recorded_at_the_same_moment_are_both_kept(admin, mailbox, clock, monkeypatch):
    """Another event's write lands between this event's read and its write: the conditional write fails,
    the entry is read again, and the event applied anew on top of the other."""
    _, agent, _ = contract_with_tokens(admin, demo_contract(**{"notify.provider": [PROVIDER, "b@provider.example"]}))
    request_id = create(agent)
    scan(clock, local(23, 10, 16))
    warning = NotificationModel.get(request_id, "warning|first_response|0|0.5")
    original = botocore.client.BaseClient._make_api_call
    raced = []

    def racing(client, operation, params):
        if operation == "UpdateItem" and "feedback_changes" in json.dumps(params) and not raced:
            raced.append(True)
            other = outbox.stored_entry(request_id, warning.key)
            outbox.record_feedback(other, "Delivery", local(23, 10, 17), [("b@provider.example", "")])
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", racing)
    assert publish(event("bounce", warning, [PROVIDER], at=local(23, 10, 18))) == "recorded"
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    stored = NotificationModel.get(request_id, warning.key)
    assert raced and stored.feedback_changes == 2
    assert [(r.address, r.delivered_at, r.bounce_type) for r in stored.recipients_feedback] == [
        (PROVIDER, None, "Permanent"), ("b@provider.example", local(23, 10, 17), None)]
    assert (stored.delivered_at, stored.bounce_type) == (local(23, 10, 17), "Permanent")
