"""What erasing a requester's personal data changes on one of the request's emails (pure)."""
from datetime import UTC, datetime
from types import SimpleNamespace

from chalicelib.core.personal_data import ERASED, FeedbackKept, notification_erasure, requester_key, scrub

ADDRESS = "Zhang@Customer.example"


def email(kind="respond", status="sent", recipients=(ADDRESS,), feedback=(), last_error=None, **stored):
    values = {"subject": "[已回复] 无法登录", "text": "张三 您好", "html": "<p>张三</p>", "attachments": None,
              "message_id": "0100-abc", "last_error": last_error}
    return SimpleNamespace(kind=kind, status=status, recipients=list(recipients), recipients_feedback=list(feedback),
                           **(values | stored))


def test_the_requester_key_is_one_per_mailbox_and_contract_and_is_not_the_address():
    key = requester_key("acme", ADDRESS)
    assert key == requester_key("acme", ADDRESS.lower()) != requester_key("globex", ADDRESS)
    assert ADDRESS.lower() not in key and len(key) == 64


def test_an_address_is_scrubbed_in_any_case_and_other_text_stays():
    assert scrub("550 5.1.1 <zhang@customer.EXAMPLE>: user unknown", ADDRESS) == f"550 5.1.1 <{ERASED}>: user unknown"
    assert scrub(None, ADDRESS) is None


def test_a_sent_email_loses_its_content_the_address_and_its_feedback_and_keeps_the_other_recipients():
    feedback = [SimpleNamespace(address=ADDRESS.lower(), diagnostic="550 user unknown"),
                SimpleNamespace(address="boss@customer.example", diagnostic=f"forwarding to {ADDRESS} failed")]
    changes = notification_erasure(email(recipients=(ADDRESS.lower(), "boss@customer.example"), feedback=feedback,
                                         last_error=f"rejected {ADDRESS}"), ADDRESS)
    assert changes == {"subject": "", "text": "", "html": "", "attachments": None,
                       "recipients": ["boss@customer.example"], "last_error": f"rejected {ERASED}",
                       "message_id": None,
                       "feedback": [FeedbackKept("boss@customer.example", f"forwarding to {ERASED} failed")]}


def test_a_pending_notice_to_the_requester_is_superseded_and_a_pending_provider_alert_stays_pending():
    assert notification_erasure(email(status="pending"), ADDRESS)["status"] == "superseded"
    alert = notification_erasure(email(kind="breach", status="pending", recipients=("oncall@provider.example",)),
                                 ADDRESS)
    assert "status" not in alert and alert["recipients"] == ["oncall@provider.example"]


def test_an_email_erased_before_needs_no_change():
    erased = email(recipients=(), subject="", text="", html="", message_id=None,
                   delivered_at=datetime(2026, 11, 23, tzinfo=UTC))
    assert notification_erasure(erased, ADDRESS) is None
