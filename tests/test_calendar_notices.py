"""The nightly early warning: from 1 November, while next year's holiday schedule is only estimated for
a contract's country, its admins are emailed once a week how to publish it, through the outbox."""
import copy
import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib import calendars
from conftest import DEMO_CONTRACT, ILLUSTRATIVE_CN_2027

SH = ZoneInfo("Asia/Shanghai")
ADMIN = DEMO_CONTRACT["notify"]["admins"][0]


def nightly(day):
    """The nightly run of 00:05 local time on `day` (tallying the day before)."""
    with time_machine.travel(datetime.combine(day, datetime.min.time(), SH) + timedelta(minutes=5), tick=False):
        with Client(app) as lambda_client:
            event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [],
                                                           region="us-east-1")
            return lambda_client.lambda_.invoke("nightly_tally", event).payload


def notices(mailbox):
    return [m for m in mailbox.to(ADMIN) if "|calendar_notice|" in str(m["X-SLA-Notification"])]


@pytest.fixture
def contracts(admin):
    with time_machine.travel(datetime(2026, 10, 20, 10, tzinfo=SH), tick=False):
        assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
        english = copy.deepcopy(DEMO_CONTRACT)
        english["notify"]["language"] = "en"
        assert admin.put("/contracts/globex", english)[0] == 201
        own_calendar = copy.deepcopy(DEMO_CONTRACT)
        own_calendar["calendar"]["holidays"] = None
        assert admin.put("/contracts/initech", own_calendar)[0] == 201  # no country: nothing to publish
        silent = copy.deepcopy(DEMO_CONTRACT)
        silent["notify"]["admins"] = []
        assert admin.put("/contracts/hooli", silent)[0] == 201  # nobody to tell
    return admin


def test_the_weekly_notice_is_sent_once_a_week_and_stops_when_the_year_is_official(contracts, mailbox):
    sent_on = {}
    for offset in range(-2, 16):  # 30 October .. 15 November
        day = date(2026, 11, 1) + timedelta(days=offset)
        if day == date(2026, 11, 10):
            with time_machine.travel(datetime(2026, 11, 10, 9, tzinfo=SH), tick=False):
                assert contracts.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 201
        sent_on[day] = nightly(day)["calendar_notices"]
    assert {day: ids for day, ids in sent_on.items() if ids} == {
        date(2026, 11, 1): ["acme", "globex"], date(2026, 11, 8): ["acme", "globex"]}
    assert nightly(date(2026, 11, 8))["calendar_notices"] == []  # a second run the same night sends nothing
    mails = notices(mailbox)
    assert len(mails) == 4 and all(str(m["To"]) == ADMIN for m in mails)
    chinese = next(m for m in mails if "acme" in m.get_body(("plain",)).get_content())
    assert "2027" in chinese["Subject"] and "CN" in chinese["Subject"]
    text = chinese.get_body(("plain",)).get_content()
    assert 'curl -X PUT "$SLA/calendars/CN/2027"' in text and "2027-MM-DD" in text
    english = next(m for m in mails if "globex" in m.get_body(("plain",)).get_content())
    assert "The official 2027 holiday schedule of CN is not in SLA Clock yet" in english["Subject"]


def test_the_first_notice_after_a_missed_night_keeps_seven_days_to_the_next(contracts, mailbox):
    sent = [day for day in (date(2026, 11, 3) + timedelta(days=n) for n in range(14))
            if nightly(day)["calendar_notices"]]
    assert sent == [date(2026, 11, 3), date(2026, 11, 10)]


def test_a_year_published_before_november_is_never_announced(contracts, mailbox):
    with time_machine.travel(datetime(2026, 10, 25, 9, tzinfo=SH), tick=False):
        contracts.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
    assert nightly(date(2026, 11, 1))["calendar_notices"] == []
    assert notices(mailbox) == []


def test_a_contract_that_fails_is_logged_and_the_others_are_still_told(contracts, mailbox, monkeypatch, caplog):
    original = calendars.render_calendar_notice

    def broken_for_globex(language, context):
        if context["contract_id"] == "globex":
            raise RuntimeError("corrupt contract")
        return original(language, context)

    monkeypatch.setattr(calendars, "render_calendar_notice", broken_for_globex)
    logger = logging.getLogger("sla_clock")
    logger.addHandler(caplog.handler)
    try:
        assert nightly(date(2026, 11, 1))["calendar_notices"] == ["acme"]
    finally:
        logger.removeHandler(caplog.handler)
    [failure] = [r for r in caplog.records if r.getMessage() == "calendar notice failed"]
    assert failure.levelno == logging.ERROR and failure.fields["contract_id"] == "globex"
    assert "corrupt contract" in failure.fields["error"]
