"""The headers of a message SES sends are written without the email policy's parse-and-refold (the
costliest part of a message), and read back exactly as given, folded as SMTP wants them."""
import email
import email.policy

import pytest

from chalicelib.aws.outbox import build_message
from chalicelib.core.emails import Rendered

LONG_CHINESE = "【SLA 违约】请求 req_0123456789abcdef（优先级：紧急）首次响应已超时，剩余营业时间 0 分钟" * 2
LONG_ASCII = ("[SLA breach] Request req_0123456789abcdef (priority: urgent) first response is late " * 3).strip()


def sent(subject, sender_name=None, recipients=("ops@provider.example",), reply_to=None, headers=None):
    raw = build_message("sla@provider.example", list(recipients), Rendered(subject, "正文\n", "<p>正文</p>\n"),
                        headers=headers, sender_name=sender_name, reply_to=reply_to).as_bytes()
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def header_lines(raw):
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.mark.parametrize("subject", ["短", LONG_CHINESE, LONG_ASCII, "[SLA] a, b; c: \"d\" (e)", "x" * 150])
@pytest.mark.parametrize("sender_name", [None, "SLA 时钟", "SLA, Clock \"Ops\"", "服务台" * 5])
def test_subject_and_sender_read_back_as_given_in_lines_smtp_accepts(subject, sender_name):
    raw, back = sent(subject, sender_name)
    assert back["Subject"] == subject
    assert back["From"].addresses[0].display_name == (sender_name or "")
    assert back["From"].addresses[0].addr_spec == "sla@provider.example"
    lines = header_lines(raw)
    assert max(len(line) for line in lines) <= 998
    if subject != "x" * 150:  # one word longer than a line cannot be folded; every other line fits 78
        assert max(len(line) for line in lines) <= 78


def test_recipients_reply_to_and_our_headers_read_back_as_given():
    recipients = ["张三 <zhang@customer.example>", *(f"o{n}@provider.example" for n in range(9))]
    _, back = sent("s", recipients=recipients, reply_to="desk@provider.example",
                   headers={"X-SLA-Notification": "req_1|breach|first_response|0"})
    assert [str(a) for a in back["To"].addresses] == recipients
    assert back["Reply-To"].addresses[0].addr_spec == "desk@provider.example"
    assert back["X-SLA-Notification"] == "req_1|breach|first_response|0"
    assert back["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("header", ["X-SLA-Notification", "X-Other"])
@pytest.mark.parametrize("value", ["a\r\nBcc: x@evil.example", "a\nBcc: x", "请\rBcc: x"])
def test_a_line_break_in_a_header_is_refused_whatever_its_text(header, value):
    with pytest.raises(ValueError):
        sent("s", headers={header: value})
