"""The MIME message SES sends (multipart text and HTML, 7-bit clean, CRLF), and the copy `make run` keeps
of each accepted email as an .eml file: with the Date and Message-ID SES gives it, under a name every file
system accepts."""
import email
import email.policy
import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from types import SimpleNamespace

import pytest
from test_emails import context

from chalicelib.aws import outbox
from chalicelib.aws.outbox import build_message
from chalicelib.core import delivery
from chalicelib.core.emails import Rendered, render
from chalicelib.core.policy import Notify
from conftest import SENDER

NOW = datetime(2026, 11, 23, 16, 5, 7, tzinfo=UTC)


def parsed(message):
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def test_build_message_makes_a_multipart_alternative_that_parses_back():
    rendered = render("breach", "zh-CN", context("breach"))
    message = build_message("SLA Clock <sla@provider.example>", ["ops@provider.example", "boss@provider.example"],
                            rendered, headers={"X-SLA-Notification": "req_7Q2M|breach|first_response|0"})
    back = parsed(message)
    assert back.get_content_type() == "multipart/alternative"
    assert back["Subject"] == rendered.subject
    assert back["Subject"].startswith("[SLA 违约] 请求 req_7Q2M（优先级：紧急）")
    assert back["From"] == "SLA Clock <sla@provider.example>"
    assert [a.addr_spec for a in back["To"].addresses] == ["ops@provider.example", "boss@provider.example"]
    assert back["X-SLA-Notification"] == "req_7Q2M|breach|first_response|0"
    plain, markup = back.iter_parts()
    assert plain.get_content_type() == "text/plain" and plain.get_content_charset() == "utf-8"
    assert markup.get_content_type() == "text/html" and markup.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert markup.get_content().replace("\r\n", "\n") == rendered.html
    assert back.get_body(("plain",)).get_content().replace("\r\n", "\n") == rendered.text
    assert back.get_body(("html",)).get_content().replace("\r\n", "\n") == rendered.html


def test_build_message_is_7bit_clean_with_crlf_lines_for_ses():
    rendered = render("acknowledgement", "zh-CN", context("acknowledgement"))
    raw = build_message("sla@provider.example", ["张三 <zhang@customer.example>"], rendered).as_bytes()
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["Subject"] == "[已受理] 服务请求 req_7Q2M：系统无法登录"
    assert back["To"].addresses[0].display_name == "张三"


def test_build_message_keeps_ascii_bodies_readable():
    rendered = Rendered(subject="[SLA warning] Request r1", text="Hello\n", html="<p>Hello</p>\n")
    message = build_message("sla@provider.example", ["ops@provider.example"], rendered)
    plain, markup = message.iter_parts()
    assert plain["Content-Transfer-Encoding"] == "7bit" and markup["Content-Transfer-Encoding"] == "7bit"
    assert parsed(message).get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello\n"


def test_build_message_refuses_no_recipients_and_header_injection():
    rendered = render("respond", "en", context("respond", "en"))
    with pytest.raises(ValueError):
        build_message("sla@provider.example", [], rendered)
    with pytest.raises(ValueError):
        build_message("sla@provider.example", ["a@b.example"], rendered, headers={"X-SLA-Notification": "a\r\nBcc: x"})


def sent_contract_mail(monkeypatch, tmp_path, ses=None):
    """A daily tally of contract "acme" delivered through the outbox with SLA_EML_DIR set: (entry, .eml path)."""
    monkeypatch.setenv("SLA_EML_DIR", str(tmp_path / "outbox"))
    if ses is not None:
        monkeypatch.setattr(outbox, "ses", lambda: ses)
    policy = SimpleNamespace(notify=Notify(sender=SENDER, sender_name="SLA Clock"))
    rendered = Rendered("[SLA 日报] Acme 2026-11-23", "您好：\n", "<p>您好：</p>\n")
    entry = outbox.new_entry("contract#acme", "acme", "daily_tally|2026-11-23", "daily_tally",
                             ["ops@provider.example"], rendered, policy, NOW)
    assert outbox.enqueue(entry)
    assert outbox.claim(entry, NOW) and outbox.deliver(entry, NOW, stored_attempt(entry)) == "sent"
    [path] = (tmp_path / "outbox").iterdir()
    return entry, path


def test_the_kept_copy_has_the_date_and_message_id_ses_gives_the_mail_it_accepts(aws, mailbox, monkeypatch,
                                                                                 tmp_path):
    entry, path = sent_contract_mail(monkeypatch, tmp_path)
    kept = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert kept["Date"] == format_datetime(NOW) == "Mon, 23 Nov 2026 16:05:07 +0000"
    assert parsedate_to_datetime(kept["Date"]) == NOW
    assert entry.message_id and kept["Message-ID"] == f"<{entry.message_id}@email.amazonses.com>"
    assert kept["Subject"] == "[SLA 日报] Acme 2026-11-23"
    assert kept.get_body(("plain",)).get_content().replace("\r\n", "\n") == "您好：\n"
    [sent] = mailbox.messages()  # SES stamps its own Date and Message-ID: the message sent has neither
    assert sent["Date"] is None and sent["Message-ID"] is None
    assert str(sent["X-SLA-Notification"]) == "contract#acme|daily_tally|2026-11-23"


def test_without_an_ses_message_id_the_kept_copy_gets_one_of_the_sender_s_domain(aws, monkeypatch, tmp_path):
    class SesWithoutId:
        def send_raw_email(self, **kwargs):
            return {}

    _, path = sent_contract_mail(monkeypatch, tmp_path, ses=SesWithoutId())
    kept = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert re.fullmatch(r"<[^@<>\s]+@provider\.example>", kept["Message-ID"])


def test_kept_copies_are_named_with_letters_digits_dashes_underscores_and_dots_only(aws, monkeypatch, tmp_path):
    _, path = sent_contract_mail(monkeypatch, tmp_path)
    assert path.name == "20261123T160507-contract_acme-daily_tally_2026-11-23.eml"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", path.name)


def test_nothing_is_kept_without_sla_eml_dir(aws, monkeypatch, tmp_path):
    monkeypatch.delenv("SLA_EML_DIR", raising=False)
    policy = SimpleNamespace(notify=Notify(sender=SENDER))
    entry = outbox.new_entry("req_1", "acme", "acknowledgement", "acknowledgement", ["a@customer.example"],
                             Rendered("s", "t", "<p>t</p>"), policy, NOW)
    assert outbox.enqueue(entry) and outbox.claim(entry, NOW)
    assert outbox.deliver(entry, NOW, stored_attempt(entry)) == "sent"
    assert not list(tmp_path.iterdir())


def stored_attempt(entry):
    """The first try at an entry as it is stored: what the use cases hand outbox.deliver."""
    return delivery.email(now=NOW, **outbox.stored_email(entry))
