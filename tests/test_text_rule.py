"""Text AWS cannot carry: control characters and lone surrogates are a 400 naming the field wherever
text enters (tab and line breaks only in `description` and `note`), nothing is stored, and no such
character reaches an email header or a log line, not even from data stored before the rule."""
import copy
import email
import email.policy
import json
import logging
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import factories
import pytest
import time_machine

from chalicelib import evaluation
from chalicelib.aws import outbox, store
from chalicelib.aws.tables import ContractModel, NotificationModel, RequestModel
from chalicelib.core import fields
from chalicelib.core.emails import Rendered
from chalicelib.logs import JsonFormatter
from conftest import DEMO_CONTRACT, ILLUSTRATIVE_CN_2027, contract_with_tokens

REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "description": "登录页面报错", "requester": {"name": "张三", "email": "zhang@customer.example"}}
UNSAFE = {"NUL": "\x00", "ESC": "\x1b", "DEL": "\x7f", "CSI": "\x9b", "lone surrogate": "\ud800"}
LINE_BREAKS = {"tab": "\t", "LF": "\n", "CRLF": "\r\n", "LINE SEPARATOR": "\u2028"}
# What no header and no log line may carry raw: control characters, line separators, lone surrogates.
RAW = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def refused(status, body, field):
    return status == 400 and body["Code"] == "BadRequestError" and body["Message"].startswith(f"{field}:")


def with_text(document, path, value):
    """A deep copy of `document` with the string at dotted `path` ("requester.name", "x[0]") set."""
    changed = copy.deepcopy(document)
    *parents, last = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target = changed
    for part in parents:
        target = target[int(part[1:-1])] if part.startswith("[") else target.setdefault(part, {})
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value
    return changed


def no_request_stored():
    return list(RequestModel.scan()) == [] and list(NotificationModel.scan()) == []


# --- requests and events -----------------------------------------------------------------------------


@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize("field", ["subject", "description", "requester.name", "channel", "category",
                                   "contract_id", "requester.email"])
def test_a_request_with_a_control_character_or_lone_surrogate_is_a_400_naming_the_field_and_stores_nothing(
        acme, clock, mailbox, caplog, field, char):
    _, agent, _ = acme
    body = with_text(REQUEST, field, f"登录{char}失败")
    status, answer = agent.post("/requests", body)
    assert refused(status, answer, field), answer
    assert no_request_stored() and mailbox.messages() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a 400, not an "AWS call failed"


@pytest.mark.parametrize("char", LINE_BREAKS.values(), ids=LINE_BREAKS.keys())
@pytest.mark.parametrize("field", ["subject", "requester.name", "channel"])
def test_a_one_line_field_of_a_request_refuses_tab_and_line_breaks_inside_it(acme, clock, field, char):
    _, agent, _ = acme
    status, answer = agent.post("/requests", with_text(REQUEST, field, f"登录{char}失败"))
    assert refused(status, answer, field), answer
    assert no_request_stored()


def test_the_description_keeps_tab_and_windows_line_breaks(acme, clock, mailbox):
    _, agent, _ = acme
    description = "步骤：\r\n1.\t打开登录页\r\n2.\t输入密码\n"
    status, answer = agent.post("/requests", {**REQUEST, "description": description})
    assert status == 201, answer
    assert agent.get(f"/requests/{answer['request_id']}")[1]["description"] == description.strip()


def test_white_space_around_a_one_line_field_is_trimmed_not_refused(acme, clock):
    _, agent, _ = acme
    status, answer = agent.post("/requests", {**REQUEST, "subject": "\t系统无法登录\r\n"})
    assert status == 201 and answer["subject"] == "系统无法登录"


@pytest.fixture
def request_id(acme, clock):
    _, agent, _ = acme
    return agent.post("/requests", REQUEST)[1]["request_id"]


@pytest.mark.parametrize("char", UNSAFE.values(), ids=UNSAFE.keys())
def test_an_event_note_with_a_control_character_or_lone_surrogate_is_a_400_and_stores_nothing(
        acme, request_id, clock, char):
    _, agent, _ = acme
    before = agent.get(f"/requests/{request_id}")[1]
    clock.shift(timedelta(minutes=5))
    status, answer = agent.post(f"/requests/{request_id}/events", {"type": "respond", "note": f"已处理{char}"})
    assert refused(status, answer, "note"), answer
    assert agent.get(f"/requests/{request_id}")[1]["events"] == before["events"]


def test_an_event_note_keeps_tab_and_line_breaks(acme, request_id, clock):
    _, agent, _ = acme
    clock.shift(timedelta(minutes=5))
    note = "已处理：\r\n\t请重新登录"
    status, answer = agent.post(f"/requests/{request_id}/events", {"type": "respond", "note": note})
    assert status == 200, answer
    assert answer["events"][-1]["note"] == note


def test_an_unknown_key_with_a_control_character_is_refused_as_a_key_of_its_object(acme, clock):
    _, agent, _ = acme
    status, answer = agent.post("/requests", {**REQUEST, "requester": {**REQUEST["requester"], "na\x00me": "x"}})
    assert refused(status, answer, "requester"), answer


# --- contracts, calendars, outages, interactions, tokens, query strings ------------------------------


@pytest.mark.parametrize("field, value", [
    ("name", "Acme\x00"), ("name", "Acme\x1b[31m"), ("name", "Acme\ud800"), ("name", "Acme\tCorp"),
    ("name", "Acme\nCorp"),
    ("notify.sender", "sla\x1b@provider.example"), ("notify.provider[0]", "oncall\x00@provider.example"),
    ("notify.admins[0]", "\ud800@provider.example"), ("notify.language", "en\x00"),
    ("calendar.holidays", "C\x00N"), ("timezone", "Asia/Shanghai\x00"), ("designated_channels[0]", "portal\x1b"),
    ("amazon_connect.queue_ids[0]", "queue\n1"), ("webhooks[0].url", "https://hooks.customer.example/\x1b"),
    ("webhooks[0].secret", "s" * 31 + "\x00"), ("penalties.currency", "CN\x00"),
])
def test_a_contract_with_a_control_character_or_lone_surrogate_is_a_400_naming_the_field_and_stores_nothing(
        admin, clock, field, value):
    document = copy.deepcopy(DEMO_CONTRACT)
    if field.startswith("webhooks"):
        document["webhooks"] = [{"url": "https://hooks.customer.example/sla", "events": ["breach"], "secret": "s" * 32}]
    if field.startswith("amazon_connect"):
        document["amazon_connect"] = {"queue_ids": ["q1"]}
    status, answer = admin.put("/contracts/other", with_text(document, field, value))
    assert refused(status, answer, field), answer
    assert list(ContractModel.scan()) == []


def test_a_priority_named_with_a_control_character_is_refused(admin, clock):
    document = copy.deepcopy(DEMO_CONTRACT)
    document["priorities"]["hi\x00gh"] = document["priorities"].pop("high")
    status, answer = admin.put("/contracts/other", document)
    assert refused(status, answer, "priorities"), answer


def test_a_calendar_schedule_source_with_a_control_character_is_a_400(admin, clock):
    status, answer = admin.put("/calendars/CN/2027", {**ILLUSTRATIVE_CN_2027, "source": "国务院\x1b通知"})
    assert refused(status, answer, "source"), answer
    assert list(store.calendar_overrides("CN")) == []


def test_an_outage_description_refuses_control_characters_and_keeps_line_breaks(acme, clock):
    admin, _, _ = acme
    outage = {"start": "2026-11-20T10:00:00+08:00", "end": "2026-11-20T11:00:00+08:00"}
    status, answer = admin.post("/contracts/acme/outages", {**outage, "description": "机房断电\x00"})
    assert refused(status, answer, "description"), answer
    status, answer = admin.post("/contracts/acme/outages", {**outage, "description": "机房断电\r\n已恢复"})
    assert status == 201, answer


def test_an_interaction_id_with_a_control_character_is_a_400_naming_the_item(admin, clock):
    document = {**copy.deepcopy(DEMO_CONTRACT), "interactions": {"phone": {"answer_within": "60s", "target": 0.9}}}
    _, agent, _ = contract_with_tokens(admin, document)
    item = {"id": "call\x1b1", "channel": "phone", "offered_at": "2026-11-23T09:00:00+08:00"}
    status, answer = agent.post("/contracts/acme/interactions", {"items": [item]})
    assert refused(status, answer, "items[0].id"), answer


def test_a_contact_record_whose_id_holds_a_control_character_or_lone_surrogate_is_skipped_as_malformed(admin):
    import test_connect as connect

    assert admin.put("/contracts/acme", connect.CONTRACT)[0] == 201
    with time_machine.travel(connect.MONDAY_10 + timedelta(days=7), tick=False):
        records = [connect.contact_record(contact_id, connect.HOTLINE, connect.MONDAY_10, answered=10)
                   for contact_id in ("c\x00-1", "c\ud800-2", "c-good")]
        result = connect.Stream().deliver(*records)
    assert (result["stored"], result["malformed"]) == (1, 2)


def test_a_token_field_with_a_control_character_is_a_400(admin, clock):
    status, answer = admin.post("/tokens", {"role": "agent", "contract_id": "acme\x1b"})
    assert refused(status, answer, "contract_id"), answer


@pytest.mark.parametrize("query, field", [("status=%1B", "status"), ("contract_id=acme%00", "contract_id"),
                                          ("priority=high%0Aurgent", "priority")])
def test_a_query_parameter_with_a_control_character_is_a_400_naming_it(acme, clock, query, field):
    admin, _, _ = acme
    status, answer = admin.get(f"/requests?{query}")
    assert refused(status, answer, field), answer


# --- stored before the rule --------------------------------------------------------------------------


def clean_header(value):
    return RAW.search(str(value)) is None


def test_a_contract_stored_with_a_lone_surrogate_and_escape_in_its_name_still_takes_requests(
        acme, clock, mailbox, caplog):
    admin, agent, _ = acme
    stored = store.latest_contract("acme")
    store.save_contract_version("acme", int(stored.version) + 1, {**stored.document, "name": "Acme\ud800\x1b[2J"},
                                "before-the-rule", datetime.now(UTC))
    status, answer = agent.post("/requests", REQUEST)
    assert status == 201, answer
    [message] = mailbox.messages()
    assert clean_header(message["Subject"])
    body = message.get_body(("plain",)).get_content()
    assert "Acme\ufffd\ufffd[2J" in body and RAW.search(body.replace("\r\n", "").replace("\n", "")) is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_request_stored_with_control_characters_in_its_subject_gets_emails_with_a_clean_subject(
        acme, clock, mailbox):
    _, agent, _ = acme
    policy = evaluation.policy_of(store.latest_contract("acme"))
    now = datetime.now(UTC)
    item = factories.request_item(policy, "acme", "high", now - timedelta(minutes=5), now)
    item.subject = "登录\x1b[2J失败\x00\u2028Bcc: x@evil.example"
    factories.insert([item])
    status, answer = agent.post(f"/requests/{item.request_id}/events", {"type": "respond", "note": "已处理"})
    assert status == 200, answer
    [message] = mailbox.messages()
    subject = str(message["Subject"])
    assert clean_header(subject) and "登录\ufffd[2J失败\ufffd Bcc: x@evil.example" in subject
    assert message["Bcc"] is None


def test_an_outbox_entry_stored_with_a_line_break_in_its_subject_is_sent_on_one_line():
    message = outbox.build_message("sla@provider.example", ["zhang@customer.example"],
                                   Rendered("已受理\r\nBcc: x@evil.example\x1b", "正文", "<p>正文</p>"))
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert clean_header(parsed["Subject"]) and parsed["Bcc"] is None
    assert str(parsed["Subject"]) == "已受理 Bcc: x@evil.example\ufffd"


# --- the rule itself and the logs ---------------------------------------------------------------------


def test_every_control_character_but_tab_and_line_breaks_is_refused_even_in_a_multiline_field():
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) == "Cc" or 0xD800 <= code <= 0xDFFF:
            allowed_in_a_note = char in "\t\n\r"
            assert (fields.unsafe_character(f"a{char}b", multiline=True) is None) == allowed_in_a_note, hex(code)
            assert fields.unsafe_character(f"a{char}b") == char, hex(code)
    assert fields.unsafe_character("系统无法登录 ✓ é") is None


def test_a_log_line_never_carries_a_raw_control_character_and_reads_back_the_same():
    value = "".join(chr(c) for c in range(0x00, 0xa0)) + "\u2028\u2029\ud800 中文"
    record = logging.LogRecord("sla_clock.test", logging.INFO, __file__, 1, "subject %s", (value,), None)
    record.fields = {"subject": value}
    line = JsonFormatter().format(record)
    assert RAW.search(line) is None
    line.encode("utf-8")  # a lone surrogate would make the handler fail here
    parsed = json.loads(line)
    assert parsed["subject"] == value and parsed["message"] == f"subject {value}"
