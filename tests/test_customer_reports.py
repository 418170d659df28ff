"""The monthly report to the customer (`notify.customer_reports`): sent by the first nightly run of the
month, once, in the contract's language, with the month's CSV attached."""
import copy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib.aws.outbox import build_message
from chalicelib.core.emails import Rendered
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
CUSTOMER = "boss@customer.example"
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["notify"]["customer_reports"] = [CUSTOMER, "it@customer.example"]
CONTRACT["notify"]["language"] = "en"
CONTRACT["interactions"] = {"phone": {"answer_within": "60s", "target": 0.9}}
CONTRACT["categories"] = {"complaint": {"resolution": "2wd"}}


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, tzinfo=SH), tick=False) as traveller:
        yield traveller


@pytest.fixture
def acme(admin, clock):
    assert admin.put("/contracts/acme", CONTRACT)[0] == 201
    body = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "投诉", "category": "complaint",
            "requester": {"email": "zhang@customer.example"}, "received_at": "2026-11-20T10:00:00+08:00"}
    assert admin.post("/requests", body)[0] == 201
    calls = [{"id": f"c{n}", "channel": "phone", "offered_at": f"2026-11-20T10:0{n}:00+08:00",
              "answered_at": f"2026-11-20T10:0{n}:{15 * n:02d}+08:00"} for n in range(4)]
    assert admin.post("/contracts/acme/interactions", {"items": calls})[0] == 200
    return admin


def nightly(clock, when):
    """Run the scheduled nightly_tally at local time `when`."""
    clock.move_to(when)
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        return lambda_client.lambda_.invoke("nightly_tally", event).payload


def reports(mailbox):
    return [m for m in mailbox.to(CUSTOMER) if "|customer_report|" in str(m["X-SLA-Notification"])]


def test_the_first_nightly_run_of_the_month_sends_last_months_report_once(acme, clock, mailbox):
    for day in range(21, 31):  # every night of the rest of November: no report yet
        nightly(clock, datetime(2026, 11, day, 0, 5, tzinfo=SH))
    assert reports(mailbox) == []
    first = nightly(clock, datetime(2026, 12, 1, 0, 5, tzinfo=SH))  # tallies 30 November: the month is complete
    assert first["errors"] == 0
    nightly(clock, datetime(2026, 12, 1, 0, 5, tzinfo=SH))  # the run repeats
    nightly(clock, datetime(2026, 12, 1, 0, 35, tzinfo=SH))
    nightly(clock, datetime(2026, 12, 2, 0, 5, tzinfo=SH))  # and the next nights
    [report] = reports(mailbox)
    assert "it@customer.example" in str(report["To"])
    assert str(report["Subject"]) == "[SLA monthly] XX系统技术支持 service report for 2026-11"
    html = report.get_body(("html",)).get_content()
    assert "<table" in html and "phone: answered within 60s" in html and "complaint: requests received" in html
    [attachment] = list(report.iter_attachments())
    assert attachment.get_filename() == "sla-report-acme-2026-11.csv"
    assert attachment.get_content_type() == "text/csv"
    with Client(app) as raw:
        csv_answer = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                  headers={"Authorization": f"Bearer {acme.token}"})
    content = attachment.get_content()
    assert (content.decode("utf-8") if isinstance(content, bytes) else content) == csv_answer.body.decode("utf-8")
    assert "interactions.phone.service_level" in csv_answer.body.decode("utf-8")


def test_a_run_that_missed_the_first_of_the_month_catches_up_the_next_night(acme, clock, mailbox):
    nightly(clock, datetime(2026, 11, 21, 0, 5, tzinfo=SH))
    nightly(clock, datetime(2026, 12, 2, 0, 5, tzinfo=SH))  # 1 December's run never happened
    assert len(reports(mailbox)) == 1


def test_the_report_is_in_the_contracts_language(admin, clock, mailbox):
    chinese = copy.deepcopy(CONTRACT)
    chinese["notify"]["language"] = "zh-CN"
    assert admin.put("/contracts/acme", chinese)[0] == 201
    nightly(clock, datetime(2026, 11, 21, 0, 5, tzinfo=SH))
    nightly(clock, datetime(2026, 12, 1, 0, 5, tzinfo=SH))
    [report] = reports(mailbox)
    assert str(report["Subject"]) == "[SLA 月报] XX系统技术支持 2026-11 服务报告"
    assert "系统可用性" in report.get_body(("plain",)).get_content()


def test_no_report_without_addresses_nor_for_a_month_the_contract_was_not_tallied(admin, clock, mailbox):
    assert admin.put("/contracts/quiet", DEMO_CONTRACT)[0] == 201
    assert admin.put("/contracts/acme", CONTRACT)[0] == 201
    payload = nightly(clock, datetime(2026, 12, 1, 0, 5, tzinfo=SH))  # no tally of acme in November before
    assert payload["errors"] == 0 and payload["tallies"]
    # acme's 30 November tally is its first of the month: the report goes; quiet has no addresses
    sent = [str(m["X-SLA-Notification"]) for m in mailbox.messages()]
    assert [key for key in sent if "customer_report" in key] == ["contract#acme|customer_report|2026-11"]
    nightly(clock, datetime(2026, 11, 2, 0, 5, tzinfo=SH))  # tallies 1 November: October has no tallies
    assert [str(m["X-SLA-Notification"]) for m in mailbox.messages() if "customer_report" in
            str(m["X-SLA-Notification"])] == ["contract#acme|customer_report|2026-11"]


def test_a_message_carries_its_attachments_after_the_text_and_html_bodies():
    message = build_message("sla@provider.example", ["boss@customer.example"], Rendered("报告", "正文", "<p>正文</p>"),
                            attachments=[{"filename": "r.csv", "content_type": "text/csv", "content": "日期,收到\r\n"}])
    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(("plain",)).get_content().strip() == "正文"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "r.csv" and attachment.get_content() == "日期,收到\r\n"
