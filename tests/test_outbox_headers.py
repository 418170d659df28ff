"""The headers and base64 bodies of a message SES sends are written without the email policy's parsing
(the costliest part of a message), and read back exactly as given, folded as SMTP wants them."""
import base64
import email
import email.policy
from email.message import EmailMessage

import pytest
from botocore.awsrequest import AWSRequest

from chalicelib.aws.outbox import _form_encoded_once, build_message
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


def test_base64_bodies_are_the_bytes_set_content_would_send():
    rendered = Rendered("主题", "第一行\n第二行\r\n" + "长" * 100 + "\n\n末行", "<p>正文</p>\n" * 30)
    raw = build_message("sla@provider.example", ["ops@provider.example"], rendered).as_bytes()
    reference = EmailMessage(policy=email.policy.SMTP)
    reference.set_content(rendered.text, subtype="plain", charset="utf-8", cte="base64")
    reference.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
    ours, theirs = (email.message_from_bytes(m, policy=email.policy.default) for m in (raw, reference.as_bytes()))
    assert ours.get_content_type() == theirs.get_content_type() == "multipart/alternative"
    for mine, expected in zip(ours.iter_parts(), theirs.iter_parts(), strict=True):
        assert (mine.get_content_type(), mine.get_content_charset(), mine["Content-Transfer-Encoding"]) == (
            expected.get_content_type(), expected.get_content_charset(), "base64")
        assert mine.get_payload(decode=True) == expected.get_payload(decode=True)
        assert mine.get_payload() == expected.get_payload()  # the same lines, too
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


def test_an_ses_call_body_is_form_encoded_once_into_the_text_botocore_would_send():
    raw = build_message("服务台 <sla@provider.example>", ["张三 <zhang@customer.example>"],
                        Rendered("主题 a+b=c/d", "正文 ~!@#$%^&*()\n", "<p>正文</p>\n")).as_bytes()
    body = {"Action": "SendRawEmail", "Version": "2010-12-01", "Source": "sla+ops@provider.example",
            "Destinations.member.1": "张三 <zhang+x@customer.example>",
            "RawMessage.Data": base64.b64encode(raw).decode(), "ConfigurationSetName": "sla clock/dev=1"}
    params = {"body": dict(body)}
    _form_encoded_once(params)
    assert params["body"] == AWSRequest(method="POST", url="https://email.example", data=body).prepare().body
