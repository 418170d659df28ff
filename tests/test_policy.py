"""Contract documents: defaults, and every bad field answered with an error naming it (see docs/contract.md)."""
import copy

import pytest

from chalicelib.core.durations import Duration, parse_duration
from chalicelib.core.errors import ValidationError
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT

MINIMAL = {"name": "最小合同", "priorities": {"high": {"first_response": "2h"}}}


def test_the_demo_contract_is_valid_and_normalized():
    document, policy = parse_contract(DEMO_CONTRACT)
    assert document["priorities"]["urgent"] == {
        "first_response": "30m", "resolution": "8h", "progress_every": "1h", "clock": "24x7"
    }
    assert policy.priorities["low"].resolution == Duration(5, "wd")
    assert policy.is_designated("portal") and not policy.is_designated("wechat")


def test_omitted_keys_take_the_documented_defaults():
    document, policy = parse_contract(MINIMAL)
    assert document["timezone"] == "Asia/Shanghai"
    assert document["calendar"]["holidays"] == "CN"
    assert document["calendar"]["hours"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert document["warn_at"] == [0.5, 0.8]
    assert document["resolution_from"] == "received"
    assert document["priorities"]["high"]["clock"] == "business"
    assert document["penalties"] == {"currency": "CNY"}
    assert document["notify"]["language"] == "zh-CN"
    assert (document["notify"]["sender_name"], document["notify"]["reply_to"]) == (None, None)
    assert (policy.notify.sender_name, policy.notify.reply_to) == ("最小合同", None)  # From: the contract's name
    assert document["designated_channels"] is None and policy.is_designated("anything")
    assert document["off_hours_first_response"] is None


@pytest.mark.parametrize("text, expected", [("30m", Duration(30, "m")), ("2h", Duration(2, "h")),
                                            ("5wd", Duration(5, "wd"))])
def test_durations_parse_minutes_hours_and_working_days(text, expected):
    assert parse_duration(text, "x") == expected


@pytest.mark.parametrize("text", ["", "0m", "-1h", "1.5h", "2d", "h", "2 h", "1w", "01h", 5, None, "99999999m"])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValidationError):
        parse_duration(text, "x")


def with_change(path, value):
    doc = copy.deepcopy(DEMO_CONTRACT)
    *parents, last = path
    target = doc
    for key in parents:
        target = target.setdefault(key, {})
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


class _Deleted:
    """The field is removed; its repr names the test the same in every process (pytest-xdist compares)."""

    def __repr__(self):
        return "<deleted>"


DELETE = _Deleted()
BAD_FIELDS = [
    (("name",), DELETE, "name"),
    (("name",), "", "name"),
    (("name",), 42, "name"),
    (("timezone",), "Mars/Olympus", "timezone"),
    (("timezone",), 8, "timezone"),
    (("calendar",), "CN", "calendar"),
    (("calendar", "hours"), [["09:00", "12:00"], ["11:00", "17:00"]], "calendar.hours"),
    (("calendar", "hours"), [["17:00", "09:00"]], "calendar.hours"),
    (("calendar", "hours"), [["9am", "5pm"]], "calendar.hours"),
    (("calendar", "workdays"), [0, 1], "calendar.workdays"),
    (("calendar", "workdays"), [True], "calendar.workdays"),
    (("calendar", "holidays"), "XX", "calendar.holidays"),
    (("calendar", "extra_holidays"), ["2026-02-30"], "calendar.extra_holidays"),
    (("calendar", "extra_workdays"), "2026-01-04", "calendar.extra_workdays"),
    (("calendar", "date_hours"), {"2026-12-31": [["12:00", "09:00"]]}, "calendar.date_hours"),
    (("calendar", "weekends"), [6, 7], "calendar.weekends"),
    (("designated_channels",), "portal", "designated_channels"),
    (("designated_channels",), [""], "designated_channels[0]"),
    (("off_hours_first_response",), "soon", "off_hours_first_response"),
    (("warn_at",), [0.5, 1.0], "warn_at[1]"),
    (("warn_at",), [0], "warn_at[0]"),
    (("warn_at",), [0.5, 0.5], "warn_at"),
    (("warn_at",), 0.5, "warn_at"),
    (("resolution_from",), "respond", "resolution_from"),
    (("priorities",), {}, "priorities"),
    (("priorities",), DELETE, "priorities"),
    (("priorities", "Critical"), {"first_response": "10m"}, "priorities.Critical"),
    (("priorities", "p" * 33), {"first_response": "10m"}, "priorities." + "p" * 33),
    (("priorities", "p 1"), {"first_response": "10m"}, "priorities.p 1"),
    (("categories", "complaint"), {}, "categories.complaint"),
    (("categories", "complaint"), {"first_response": "2x"}, "categories.complaint.first_response"),
    (("categories", "complaint"), {"clock": "24x7"}, "categories.complaint.clock"),
    (("categories", "Complaint"), {"resolution": "2wd"}, "categories.Complaint"),
    (("categories",), [], "categories"),
    (("priorities", "high"), {"resolution": "8h"}, "priorities.high.first_response"),
    (("priorities", "high", "first_response"), "2 hours", "priorities.high.first_response"),
    (("priorities", "high", "resolution"), "0h", "priorities.high.resolution"),
    (("priorities", "high", "progress_every"), 4, "priorities.high.progress_every"),
    (("priorities", "high", "clock"), "24/7", "priorities.high.clock"),
    (("priorities", "high", "escalate"), "1h", "priorities.high.escalate"),
    (("penalties", "late_first_response"), -200, "penalties.late_first_response"),
    (("penalties", "monthly_cap"), "5000", "penalties.monthly_cap"),
    (("penalties", "currency"), "yuan", "penalties.currency"),
    (("penalties", "late_resolution_per_day"), float("nan"), "penalties.late_resolution_per_day"),
    (("penalties", "bonus"), 1, "penalties.bonus"),
    (("kpi", "availability"), 1.5, "kpi.availability"),
    (("kpi", "uptime"), 0.9, "kpi.uptime"),
    (("notify", "sender"), "not-an-address", "notify.sender"),
    (("notify", "provider"), ["oncall@provider.example", "bad"], "notify.provider[1]"),
    (("notify", "admins"), "sla-admin@provider.example", "notify.admins"),
    (("notify", "language"), "fr", "notify.language"),
    (("notify", "cc"), [], "notify.cc"),
    (("notify", "sender_name"), "", "notify.sender_name"),
    (("notify", "sender_name"), "Acme\r\nBcc: x@evil.example", "notify.sender_name"),
    (("notify", "sender_name"), "A" * 201, "notify.sender_name"),
    (("notify", "sender_name"), 7, "notify.sender_name"),
    (("notify", "reply_to"), "support at provider", "notify.reply_to"),
    (("notify", "reply_to"), ["support@provider.example"], "notify.reply_to"),
    (("notify", "reply_to"), "客服@provider.example", "notify.reply_to"),
    (("owner",), "someone", "owner"),
]


@pytest.mark.parametrize("path, value, field", BAD_FIELDS, ids=[f"{'.'.join(p)}={v!r}"[:60] for p, v, _ in BAD_FIELDS])
def test_every_bad_field_is_rejected_naming_the_field(path, value, field):
    with pytest.raises(ValidationError) as caught:
        parse_contract(with_change(path, value))
    assert caught.value.field.startswith(field), caught.value.message


def test_a_contract_must_be_an_object():
    with pytest.raises(ValidationError, match="contract"):
        parse_contract(["not", "an", "object"])


def test_explicit_nulls_mean_not_set():
    document, policy = parse_contract({**MINIMAL, "off_hours_first_response": None, "penalties": None})
    assert policy.off_hours_first_response is None and document["penalties"] == {"currency": "CNY"}
