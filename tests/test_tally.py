"""nightly_tally, penalties, monthly reports, outages and KPIs (see docs/clock.md), end to end through
`chalice.test.Client` + moto + time-machine."""
import copy
import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib import reporting
from chalicelib.aws.tables import TallyModel
from chalicelib.core.tally import apply_cap
from conftest import DEMO_CONTRACT, contract_with_tokens

SH = ZoneInfo("Asia/Shanghai")
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["priorities"] = {
    "urgent": {"first_response": "30m", "resolution": "8h", "clock": "24x7"},
    "high": {"first_response": "2h", "resolution": "8h", "progress_every": "4h"},
    "medium": {"first_response": "4h"},
}
CONTRACT["penalties"] = {"currency": "CNY", "late_first_response": 200, "late_progress": 50,
                         "late_resolution_per_day": 500, "monthly_cap": 5000}
ADMINS = "sla-admin@provider.example"


def local(day, hour, minute=0, month=11):
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


@pytest.fixture
def acme(admin):
    return contract_with_tokens(admin, CONTRACT)


@pytest.fixture
def clock():
    with time_machine.travel(local(30, 12), tick=False) as traveller:
        yield traveller


def request(agent, priority, received, events=()):
    """A request received at `received` (local), with backdated events [(type, at, extra)]."""
    body = {"contract_id": "acme", "priority": priority, "channel": "portal", "subject": "测试",
            "requester": {"email": "zhang@customer.example"}, "received_at": received.isoformat()}
    status, created = agent.post("/requests", body)
    assert status == 201, created
    for kind, at, *extra in events:
        status, answer = agent.post(f"/requests/{created['request_id']}/events",
                                    {"type": kind, "at": at.isoformat(), **(extra[0] if extra else {})})
        assert status == 200, answer
    return created["request_id"]


def tally(admin, day):
    status, body = admin.post("/contracts/acme/tallies", {"date": day})
    assert status == 200, body
    return body


def test_a_late_first_response_is_one_breach_and_one_penalty_on_the_day_of_its_deadline(acme, clock):
    admin, agent, _ = acme
    request(agent, "high", local(23, 10), [("respond", local(23, 14)), ("resolve", local(23, 16))])
    monday = tally(admin, "2026-11-23")
    assert (monday["received"], monday["responded"], monday["resolved"]) == (1, 1, 1)
    assert monday["breaches"] == {"first_response": {"high": 1}}
    assert monday["penalties"] == 200 and monday["currency"] == "CNY"
    assert monday["decided"]["high"] == {"first_response": {"on_time": 0, "late": 1},
                                         "resolution": {"on_time": 1, "late": 0}}
    assert tally(admin, "2026-11-24")["penalties"] == 0


def test_each_missed_progress_cycle_is_a_breach_and_a_penalty(acme, clock):
    admin, agent, _ = acme
    # Responded Mon 10:00: cycles lapse at 15:00 Mon, 11:00 Tue and 16:00 Tue; resolved Wed 09:30.
    request(agent, "high", local(23, 9, 30), [("respond", local(23, 10)), ("resolve", local(25, 9, 30))])
    assert tally(admin, "2026-11-23")["breaches"] == {"progress_update": {"high": 1}}
    tuesday = tally(admin, "2026-11-24")
    assert tuesday["breaches"] == {"progress_update": {"high": 2}, "resolution": {"high": 1}}
    assert tuesday["penalties"] == 2 * 50 + 500


def test_a_resolution_25_hours_late_owes_two_days(acme, clock):
    admin, agent, _ = acme
    # 24x7: due Mon 08:00; resolved Tue 09:00, 25 hours late: days start Mon 08:00 and Tue 08:00.
    request(agent, "urgent", local(23, 0), [("respond", local(23, 0, 10)), ("resolve", local(24, 9))])
    monday, tuesday = tally(admin, "2026-11-23"), tally(admin, "2026-11-24")
    assert monday["penalties"] == 500 and tuesday["penalties"] == 500
    assert tally(admin, "2026-11-25")["penalties"] == 0
    assert [line["reason"] for line in monday["penalty_lines"] + tuesday["penalty_lines"]] == [
        "late_resolution_per_day (day 1)", "late_resolution_per_day (day 2)"]


def test_an_unresolved_late_request_keeps_accruing_a_day_at_a_time(acme, clock):
    admin, agent, _ = acme
    request(agent, "urgent", local(23, 0), [("respond", local(23, 0, 10))])
    assert [tally(admin, f"2026-11-{d}")["penalties"] for d in (23, 24, 25, 26)] == [500, 500, 500, 500]


def test_a_breach_at_2359_local_belongs_to_that_day_and_one_at_midnight_to_the_next(acme, clock):
    admin, agent, _ = acme
    request(agent, "urgent", local(23, 23, 29), [("respond", local(24, 1)), ("resolve", local(24, 1))])
    request(agent, "urgent", local(23, 23, 30), [("respond", local(24, 1)), ("resolve", local(24, 1))])
    monday, tuesday = tally(admin, "2026-11-23"), tally(admin, "2026-11-24")
    assert monday["breaches"] == {"first_response": {"urgent": 1}}  # due 23:59 Monday
    assert tuesday["breaches"] == {"first_response": {"urgent": 1}}  # due 00:00 Tuesday


def test_the_tally_needs_no_scanner(acme, mailbox, clock):
    admin, agent, _ = acme
    request(agent, "high", local(23, 10))
    assert not [m for m in mailbox.messages() if "breach" in str(m["X-SLA-Notification"])]
    assert tally(admin, "2026-11-23")["breaches"] == {"first_response": {"high": 1}}


def test_rerunning_a_day_rewrites_the_same_tally(acme, clock):
    admin, agent, _ = acme
    request(agent, "high", local(23, 10), [("respond", local(23, 14))])
    first = tally(admin, "2026-11-23")
    clock.move_to(local(30, 18))
    assert tally(admin, "2026-11-23") == first
    assert TallyModel.count("acme") == 1


def test_the_monthly_cap_limits_the_months_total_in_day_order(acme, clock):
    admin, agent, _ = acme
    capped = copy.deepcopy(CONTRACT)
    capped["penalties"]["monthly_cap"] = 500
    admin.put("/contracts/acme", capped)
    for day in (23, 23, 24, 25):
        request(agent, "medium", local(day, 9), [("respond", local(day, 15))])  # due 14:00: late
    assert [tally(admin, f"2026-11-{d}")["penalties"] for d in (23, 24, 25)] == [400, 100, 0]
    tally(admin, "2026-11-23")  # a back-fill keeps the month consistent
    report = admin.get("/contracts/acme/reports?month=2026-11")[1]
    assert report["penalties"] == {"total": 500, "capped": True}
    assert [d["penalties"] for d in report["days"]] == [400, 100, 0]


def test_apply_cap_in_order():
    assert apply_cap([("d1", 300), ("d2", 300), ("d3", 300)], 500) == [("d1", 300), ("d2", 200), ("d3", 0)]
    assert apply_cap([("d1", 300)], None) == [("d1", 300)]


def test_the_monthly_report_has_the_designed_shape_and_kpis(acme, clock):
    admin, agent, client = acme
    late = request(agent, "high", local(23, 10), [("respond", local(23, 13)), ("resolve", local(23, 15))])
    on_time = request(agent, "high", local(23, 11), [("respond", local(23, 11, 30)), ("resolve", local(24, 10))])
    request(agent, "high", local(24, 9))
    for request_id, score in ((late, 3), (on_time, 5)):  # rated on Tuesday (recorded by an admin)
        rating = {"type": "rate", "score": score, "at": local(24, 12).isoformat()}
        assert admin.post(f"/requests/{request_id}/events", rating)[0] == 200
    admin.post("/contracts/acme/outages", {"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T14:00:00+08:00",
                                          "description": "数据库故障"})
    for day in ("2026-11-23", "2026-11-24"):
        tally(admin, day)
    status, report = client.get("/contracts/acme/reports?month=2026-11")
    assert status == 200
    assert set(report) == {"contract_id", "month", "currency", "requests", "breaches", "on_time_rate", "penalties",
                           "kpi", "interactions", "by_category", "days"}
    assert report["requests"] == {"received": 3, "responded": 2, "resolved": 2}
    # Monday: the first is answered late; the second's progress cycle lapses at 16:30. Tuesday: the
    # third is never answered (due 11:00).
    assert report["breaches"] == {"first_response": 2, "progress_update": 1, "resolution": 0}
    assert report["on_time_rate"] == {"high": {"first_response": 0.33, "resolution": 1.0}}
    assert report["penalties"] == {"total": 200 + 50 + 200, "capped": False}
    assert report["kpi"] == {
        "availability": {"actual": 0.9944, "target": 0.995, "met": False},  # 4 h of a 30-day month
        "satisfaction": {"actual": 0.5, "target": 0.9, "met": False},
        "resolution_rate": {"actual": 0.6667, "target": 0.95, "met": False},
        "service_level": {},  # the contract has no interaction channels
    }
    assert report["days"][0] == {"date": "2026-11-23", "received": 2, "responded": 2, "resolved": 1, "breaches": 2,
                                 "penalties": 250, "penalties_before_cap": 250, "by_category": {},
                                 "interactions": {}}


def test_the_report_as_csv_for_spreadsheets(acme, clock):
    admin, agent, _ = acme
    request(agent, "high", local(23, 10))
    tally(admin, "2026-11-23")
    response = Client(app).http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                    headers={"Authorization": f"Bearer {admin.token}"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8"))))
    assert rows == [{"date": "2026-11-23", "received": "1", "responded": "0", "resolved": "0", "breaches": "1",
                     "penalties": "200", "penalties_before_cap": "200"}]


def test_a_month_without_tallies_reports_zeros_and_no_rates(acme, clock):
    admin, _, _ = acme
    report = admin.get("/contracts/acme/reports?month=2026-02")[1]
    assert report["requests"] == {"received": 0, "responded": 0, "resolved": 0} and report["days"] == []
    assert report["kpi"]["satisfaction"] == {"actual": None, "target": 0.9, "met": None}
    assert report["kpi"]["availability"]["actual"] == 1.0


@pytest.mark.parametrize("query, field", [("", "month"), ("month=2026-13", "month"), ("month=11-2026", "month"),
                                          ("month=2026-11&format=xlsx", "format"), ("month=2026-11&x=1", "x")])
def test_bad_report_parameters_are_400(acme, query, field):
    admin, _, _ = acme
    status, body = admin.get(f"/contracts/acme/reports?{query}")
    assert status == 400 and body["Message"].startswith(field)


def test_reports_are_for_that_contracts_people_only(acme):
    admin, agent, client = acme
    admin.put("/contracts/other", CONTRACT)
    assert agent.get("/contracts/other/reports?month=2026-11")[0] == 403
    assert client.get("/contracts/acme/reports?month=2026-11")[0] == 200
    assert agent.post("/contracts/acme/tallies", {"date": "2026-11-23"})[0] == 403
    assert agent.post("/contracts/acme/outages", {"start": "2026-11-10T10:00:00+08:00",
                                                  "end": "2026-11-10T11:00:00+08:00"})[0] == 403


def test_overlapping_outages_are_merged(acme, clock):
    admin, _, client = acme
    first = {"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T12:00:00+08:00", "description": "网络中断"}
    second = {"start": "2026-11-10T11:00:00+08:00", "end": "2026-11-10T14:00:00+08:00", "description": "数据库故障"}
    apart = {"start": "2026-11-12T10:00:00+08:00", "end": "2026-11-12T10:30:00+08:00"}
    assert admin.post("/contracts/acme/outages", first)[0] == 201
    status, body = admin.post("/contracts/acme/outages", second)
    assert status == 201 and body["merged"] == 1
    assert body["outage"] == {"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T14:00:00+08:00",
                              "description": "网络中断; 数据库故障"}  # in the contract's timezone
    admin.post("/contracts/acme/outages", apart)
    assert len(client.get("/contracts/acme/outages")[1]["outages"]) == 2


@pytest.mark.parametrize("body, field", [
    ({"end": "2026-11-10T12:00:00+08:00"}, "start"),
    ({"start": "2026-11-10T12:00:00+08:00"}, "end"),
    ({"start": "2026-11-10T12:00:00+08:00", "end": "2026-11-10T11:00:00+08:00"}, "end"),
    ({"start": "2026-11-10T12:00:00+08:00", "end": "2026-11-10T12:00:00+08:00"}, "end"),
    ({"start": "yesterday", "end": "2026-11-10T12:00:00+08:00"}, "start"),
    ({"start": "2026-11-10T10:00:00", "end": "2026-11-10T12:00:00+08:00"}, "start"),
    ({"start": "2026-11-10T10:00:00+08:00", "end": "2026-12-10T12:00:00+08:00"}, "end"),
    ({"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T12:00:00+08:00", "description": 5}, "description"),
    ({"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T12:00:00+08:00", "cause": "x"}, "cause"),
])
def test_bad_outages_are_400_naming_the_field(acme, clock, body, field):
    admin, _, _ = acme
    status, answer = admin.post("/contracts/acme/outages", body)
    assert status == 400 and answer["Message"].startswith(field), answer


@pytest.mark.parametrize("body, field", [({}, "date"), ({"date": "2026-02-30"}, "date"),
                                         ({"date": "2026-12-01"}, "date"), ({"date": "x", "y": 1}, "y")])
def test_bad_backfill_dates_are_400(acme, clock, body, field):
    admin, _, _ = acme
    status, answer = admin.post("/contracts/acme/tallies", body)
    assert status == 400 and answer["Message"].startswith(field)


def test_the_nightly_schedule_tallies_the_previous_local_day_and_emails_the_admins_once(acme, mailbox, clock):
    _, agent, _ = acme
    request(agent, "high", local(23, 10), [("respond", local(23, 14))])
    clock.move_to(local(24, 0, 5))  # 16:05 UTC on Monday
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        first = lambda_client.lambda_.invoke("nightly_tally", event).payload
        again = lambda_client.lambda_.invoke("nightly_tally", event).payload
    assert [t["date"] for t in first["tallies"]] == ["2026-11-23"] and first["tallies"] == again["tallies"]
    # In November the same run also reminds the admins that the 2027 holiday schedule is not official yet.
    assert first["calendar_notices"] == ["acme"] and again["calendar_notices"] == []
    daily = [m for m in mailbox.to(ADMINS) if "|daily_tally|" in str(m["X-SLA-Notification"])]
    assert len(daily) == 1
    assert "2026-11-23" in daily[0]["Subject"] and "200" in daily[0]["Subject"]
    assert "<table" in daily[0].get_body(("html",)).get_content()


def test_the_nightly_event_can_backfill_a_given_date_for_one_contract(acme, clock):
    _, agent, _ = acme
    request(agent, "high", local(23, 10))
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event",
                                                       {"date": "2026-11-23", "contract_id": "acme"}, [],
                                                       region="us-east-1")
        payload = lambda_client.lambda_.invoke("nightly_tally", event).payload
    assert payload["tallies"][0]["breaches"] == {"first_response": {"high": 1}}


def test_the_tally_reads_only_requests_active_that_day(acme, clock, caplog):
    import logging

    admin, agent, _ = acme
    for day in (2, 3, 4):  # history: received and resolved before the day tallied
        request(agent, "high", local(day, 10), [("resolve", local(day, 11))])
    request(agent, "high", local(23, 10), [("resolve", local(23, 11))])
    request(agent, "high", local(22, 10))  # still open
    logging.getLogger("sla_clock").addHandler(caplog.handler)
    tally(admin, "2026-11-23")
    logging.getLogger("sla_clock").removeHandler(caplog.handler)
    [finished] = [r for r in caplog.records if r.getMessage() == "tally finished"]
    assert finished.fields["requests_read"] == 2


def test_tally_days_follow_the_contract_timezone(admin, clock):
    berlin = copy.deepcopy(CONTRACT)
    berlin["timezone"] = "Europe/Berlin"
    berlin["calendar"] = {"holidays": None}
    admin.put("/contracts/acme", berlin)
    body = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "x",
            "requester": {"email": "a@b.example"}, "received_at": "2026-11-23T23:30:00+01:00"}
    admin.post("/requests", body)  # 23:30 Berlin on Monday is already Tuesday in Shanghai
    assert admin.post("/contracts/acme/tallies", {"date": "2026-11-23"})[1]["received"] == 1
    assert admin.post("/contracts/acme/tallies", {"date": "2026-11-24"})[1]["received"] == 0


def test_previous_day_is_local():
    class Policy:
        class calendar:
            tz = SH

    assert reporting.previous_day(Policy, datetime(2026, 11, 23, 16, 5, tzinfo=ZoneInfo("UTC"))) == date(2026, 11, 23)


def test_the_admins_daily_email_shows_the_month_to_date_the_monthly_report_adds_up(acme, mailbox, clock):
    admin, agent, _ = acme
    request(agent, "high", local(23, 10), [("respond", local(23, 14))])  # first response 2 h late
    request(agent, "high", local(24, 10), [("respond", local(24, 10, 30)), ("resolve", local(24, 11))])
    request(agent, "medium", local(24, 10))  # open, its first response late by the 24th's evening
    tally(admin, "2026-11-23")
    tally(admin, "2026-11-24")
    report = admin.get("/contracts/acme/reports?month=2026-11")[1]
    [email] = [m for m in mailbox.to(ADMINS) if "|daily_tally|2026-11-24" in str(m["X-SLA-Notification"])]
    rows = [[part.strip() for part in line.split("  ") if part.strip()]
            for line in email.get_body(("plain",)).get_content().splitlines()]
    month_column = [row[2] for row in rows if len(row) == 3][1:]  # each row: label, that day, month to date
    assert month_column == [str(value) for value in (
        report["requests"]["received"], report["requests"]["responded"], report["requests"]["resolved"],
        *(report["breaches"][metric] for metric in ("first_response", "progress_update", "resolution")),
        report["penalties"]["total"])]
    assert report["requests"]["received"] == 3 and report["breaches"]["first_response"] == 2
