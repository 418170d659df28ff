"""What every email says about itself in its headers, end to end through the API and moto's SES: it is
automatic (RFC 3834), so out-of-office replies do not answer it; From carries the contract's name;
customer emails carry the contract's Reply-To, provider alerts none; SES's Source is the bare address."""
from datetime import datetime

import botocore.client
import pytest
from chalice.test import Client
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from app import app
from conftest import DEMO_CONTRACT, SENDER, SH, contract_with_tokens, demo_contract, local

REQUESTER = "zhang@customer.example"
PROVIDER = DEMO_CONTRACT["notify"]["provider"][0]
ADMIN = DEMO_CONTRACT["notify"]["admins"][0]
SUPPORT = "support@provider.example"
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": REQUESTER}}


@pytest.fixture
def sources(monkeypatch):
    """The Source of every SendRawEmail call, as botocore sends it to SES."""
    found, original = [], botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "SendRawEmail":
            found.append(params.get("Source"))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return found


def agent_of(admin, **changes):
    return contract_with_tokens(admin, demo_contract(**changes))[1]


def acknowledged_and_warned(agent, clock):
    """A request created (its acknowledgement to the requester) and scanned past its 50 % warning (to
    the provider): (the acknowledgement, the warning) as SES received them."""
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    clock.move_to(local(23, 10, 16))
    with Client(app) as lambda_client:
        lambda_client.lambda_.invoke("scan_deadlines", lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[], region="us-east-1"))
    return body["request_id"]


def test_every_email_is_marked_automatic_so_out_of_office_replies_do_not_answer_it(admin, mailbox, clock):
    agent = agent_of(admin)
    acknowledged_and_warned(agent, clock)
    messages = mailbox.messages()
    assert {str(m["X-SLA-Notification"]).split("|", 1)[1] for m in messages} == {
        "acknowledgement", "warning|first_response|0|0.5"}
    for message in messages:
        assert message["Auto-Submitted"] == "auto-generated"
        # Exchange's own header: no out-of-office or other auto-reply, no delivery or read receipts;
        # non-delivery reports stay allowed, since they are the bounces SES reports back.
        suppressed = {value.strip() for value in str(message["X-Auto-Response-Suppress"]).split(",")}
        assert suppressed == {"DR", "RN", "NRN", "OOF", "AutoReply"}


def test_from_shows_the_contract_s_name_encoded_for_non_ascii_and_ses_source_stays_the_bare_address(
        admin, mailbox, clock, sources):
    agent = agent_of(admin)
    acknowledged_and_warned(agent, clock)
    raw = [m.raw_data for m in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages]
    raw = [r if isinstance(r, str) else r.decode("ascii") for r in raw]  # 7-bit: RFC 2047 words, no raw UTF-8
    assert len(raw) == 2 and all(r.isascii() and "\r\nFrom: =?utf-8?" in r for r in raw)
    for message in mailbox.messages():
        [sender] = message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (DEMO_CONTRACT["name"], SENDER)
    assert sources == [SENDER, SENDER]


def test_notify_sender_name_replaces_the_contract_s_name_in_from(admin, mailbox, clock):
    agent = agent_of(admin, **{"notify.sender_name": 'Acme "24x7" Support, 客服'})
    status, contract = admin.get("/contracts/acme")
    assert status == 200 and contract["notify"]["sender_name"] == 'Acme "24x7" Support, 客服'
    acknowledged_and_warned(agent, clock)
    assert {m["From"].addresses[0].display_name for m in mailbox.messages()} == {'Acme "24x7" Support, 客服'}


def test_customer_emails_carry_the_contract_s_reply_to_and_provider_alerts_do_not(admin, mailbox, clock):
    agent = agent_of(admin, **{"notify.reply_to": SUPPORT})
    status, contract = admin.get("/contracts/acme")
    assert status == 200 and contract["notify"]["reply_to"] == SUPPORT
    request_id = acknowledged_and_warned(agent, clock)
    assert agent.post(f"/requests/{request_id}/events", {"type": "respond", "note": "已收到"})[0] == 200
    customer = mailbox.to(REQUESTER)
    assert len(customer) == 2 and {str(m["Reply-To"]) for m in customer} == {SUPPORT}
    [alert] = mailbox.to(PROVIDER)
    assert alert["Reply-To"] is None  # a reply to an alert is for whoever sent it, not the customer desk


def test_without_notify_reply_to_no_email_has_a_reply_to(admin, mailbox, clock):
    agent = agent_of(admin)
    acknowledged_and_warned(agent, clock)
    assert [m["Reply-To"] for m in mailbox.messages()] == [None, None]


@pytest.mark.parametrize("key, value", [
    ("reply_to", "support at provider"), ("reply_to", "客服@provider.example"), ("reply_to", ["a@b.example"]),
    ("sender_name", ""), ("sender_name", "Acme\nSupport"), ("sender_name", "A" * 201), ("sender_name", 5),
])
def test_a_bad_sender_name_or_reply_to_is_a_400_naming_the_field(admin, aws, key, value):
    status, body = admin.put("/contracts/acme", demo_contract(**{f"notify.{key}": value}))
    assert status == 400 and body["Message"].startswith(f"notify.{key}"), body


def test_client_tokens_see_neither_the_sender_name_nor_the_reply_to(admin, aws):
    _, _, client = contract_with_tokens(admin, demo_contract(**{"notify.reply_to": SUPPORT,
                                                                "notify.sender_name": "Acme"}))
    status, contract = client.get("/contracts/acme")
    assert status == 200 and contract["notify"] == {"language": "zh-CN"}



def test_the_monthly_report_to_the_customer_carries_the_reply_to_and_the_admins_tally_does_not(admin, mailbox, clock):
    customer = "boss@customer.example"
    contract_with_tokens(admin, demo_contract(**{"notify.reply_to": SUPPORT, "notify.customer_reports": [customer]}))
    clock.move_to(datetime(2026, 12, 1, 0, 5, tzinfo=SH))  # the first nightly run of December
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        assert lambda_client.lambda_.invoke("nightly_tally", event).payload["errors"] == 0
    [report] = mailbox.to(customer)
    [tally] = [m for m in mailbox.to(ADMIN) if "|daily_tally|" in str(m["X-SLA-Notification"])]
    assert "|customer_report|" in str(report["X-SLA-Notification"]) and str(report["Reply-To"]) == SUPPORT
    assert tally["Reply-To"] is None
    assert {m["Auto-Submitted"] for m in (report, tally)} == {"auto-generated"}
