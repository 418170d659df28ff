"""Published holiday schedules end to end: PUT/GET/DELETE /calendars/{country}/{year}, their effect on
open and resolved requests, provisional deadlines, and a contract's calendar as JSON and iCalendar."""
import copy
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib.aws import store
from chalicelib.aws.tables import RequestModel
from chalicelib.core.calendar import package_schedule
from conftest import DEMO_CONTRACT, ILLUSTRATIVE_CN_2027

SH = ZoneInfo("Asia/Shanghai")
ADMINS = DEMO_CONTRACT["notify"]["admins"]
PROVIDER = DEMO_CONTRACT["notify"]["provider"][0]
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}
ESTIMATED_LINE = "注：该时限按推定的节假日安排计算，官方安排尚未发布。"


def sh(text):
    return datetime.fromisoformat(text).replace(tzinfo=SH)


@pytest.fixture
def clock():
    with time_machine.travel(sh("2026-11-28 10:00"), tick=False) as traveller:
        yield traveller


def create(token, **changes):
    status, body = token.post("/requests", {**REQUEST, **changes})
    assert status == 201, body
    return body


def due(document, metric="first_response"):
    return document["sla"][metric]["due_at"]


def invoke(name):
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=[f"arn:aws:events:us-east-1:123456789012:rule/{name}"], region="us-east-1")
        return lambda_client.lambda_.invoke(name, event).payload


# --- the schedules ---------------------------------------------------------------------------------------


def test_publishing_a_year_replaces_the_package_estimate_until_it_is_deleted(acme, clock):
    admin, agent, client = acme
    status, estimated = client.get("/calendars/CN/2027")
    assert status == 200
    assert estimated == {"country": "CN", "year": 2027, "status": "estimated", "source": "package",
                         "holidays": sorted(str(d) for d in package_schedule("CN", 2027)[0]), "workdays": [],
                         "reference": None, "updated_at": None}
    assert "2027-02-05" in estimated["holidays"]

    status, published = admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
    assert status == 201
    assert published == {"country": "CN", "year": 2027, "status": "official", "source": "override",
                         "holidays": ILLUSTRATIVE_CN_2027["holidays"], "workdays": ILLUSTRATIVE_CN_2027["workdays"],
                         "reference": ILLUSTRATIVE_CN_2027["source"], "updated_at": "2026-11-28T02:00:00+00:00"}
    assert agent.get("/calendars/CN/2027") == (200, published)
    assert admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027) == (200, published)

    assert admin.delete("/calendars/CN/2027") == (204, None)
    assert client.get("/calendars/CN/2027") == (200, estimated)
    assert admin.delete("/calendars/CN/2027") == (204, None)  # nothing left to revert


def test_a_year_the_package_publishes_is_official_with_its_make_up_days(acme, clock):
    _, _, client = acme
    status, body = client.get("/calendars/CN/2026")
    assert status == 200 and body["status"] == "official" and body["source"] == "package"
    assert "2026-02-14" in body["workdays"] and "2026-10-01" in body["holidays"]


def test_only_admins_publish_and_every_token_reads(acme, client, clock):
    _, agent, customer = acme
    assert agent.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 403
    assert customer.delete("/calendars/CN/2027")[0] == 403
    assert client.get("/calendars/CN/2027")[0] == 401
    assert customer.get("/calendars/CN/2027")[1]["status"] == "estimated"


@pytest.mark.parametrize("path, changes, field", [
    ("/calendars/CN/2027", {"holidays": ["2027-01-01", "2026-12-31"]}, "holidays[1]"),
    ("/calendars/CN/2027", {"workdays": ["2028-01-02"]}, "workdays[0]"),
    ("/calendars/CN/2027", {"workdays": ["2027-02-20", "2027-02-08"]}, "workdays[1]"),
    ("/calendars/CN/2027", {"holidays": ["2027-02-30"]}, "holidays[0]"),
    ("/calendars/CN/2027", {"holidays": ["27-02-05"]}, "holidays[0]"),
    ("/calendars/CN/2027", {"holidays": "2027-02-05"}, "holidays"),
    ("/calendars/CN/2027", {"workdays": None}, "workdays"),
    ("/calendars/CN/2027", {"source": ""}, "source"),
    ("/calendars/CN/2027", {"source": 7}, "source"),
    ("/calendars/CN/2027", {"comment": "x"}, "comment"),
    ("/calendars/XX/2027", {}, "country"),
    ("/calendars/cn/2027", {}, "country"),
    ("/calendars/CN/27", {}, "year"),
    ("/calendars/CN/1999", {}, "year"),
])
def test_a_bad_schedule_is_a_400_naming_the_field_and_stores_nothing(acme, clock, path, changes, field):
    admin, _, _ = acme
    status, body = admin.put(path, {**ILLUSTRATIVE_CN_2027, **changes})
    assert status == 400 and body["Message"].startswith(f"{field}:"), body
    assert admin.get("/calendars/CN/2027")[1]["source"] == "package"


def test_a_missing_source_is_a_400(acme, clock):
    admin, _, _ = acme
    body = {k: v for k, v in ILLUSTRATIVE_CN_2027.items() if k != "source"}
    status, answer = admin.put("/calendars/CN/2027", body)
    assert status == 400 and answer["Message"].startswith("source:")


def test_the_contracts_own_days_win_over_a_published_schedule(acme, clock):
    admin, agent, _ = acme
    contract = copy.deepcopy(DEMO_CONTRACT)
    contract["calendar"].update(extra_holidays=["2027-02-20"], extra_workdays=["2027-02-11"])
    assert admin.put("/contracts/acme", contract)[0] == 200
    assert admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 201
    status, body = agent.get("/contracts/acme/calendar?from=2027-02-04&to=2027-02-20")
    assert status == 200
    kinds = {day["date"]: day["kind"] for day in body["days"]}
    assert kinds["2027-02-05"] == "workday"  # the published schedule over the package's estimate
    assert kinds["2027-02-12"] == "holiday"
    assert kinds["2027-02-11"] == "workday"  # the contract's extra workday over the published holiday
    assert kinds["2027-02-20"] == "holiday"  # the contract's extra holiday over the make-up working day


# --- open requests follow, resolved ones do not -------------------------------------------------------


def test_the_override_changes_an_open_requests_due_date_at_once_and_after_a_scan(acme, mailbox, clock):
    admin, agent, _ = acme
    clock.move_to(sh("2027-02-04 16:00"))  # Thursday before the Spring Festival
    created = create(agent)
    # The package estimate: off from Friday 5 to Wednesday 10 February.
    assert due(created) == "2027-02-11T10:00:00+08:00" and created["sla"]["first_response"]["provisional"]
    assert invoke("scan_deadlines")["created"] == 0
    clock.move_to(sh("2027-02-04 17:30"))
    invoke("scan_deadlines")  # the 50 % warning (17:00); the next check is the 80 % one, on 11 February
    assert "warning|first_response|0|0.5" in mailbox.keys()

    assert admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 201
    status, now = agent.get(f"/requests/{created['request_id']}")
    assert due(now) == "2027-02-05T10:00:00+08:00" and not now["sla"]["first_response"]["provisional"]
    assert due(now, "resolution") == "2027-02-05T17:00:00+08:00"
    # The scanner's schedule follows with the next scan, which re-evaluates the contract's open requests
    # in the background: the 80 % warning is now due on Friday 5 February instead of Thursday 11, and
    # the 50 % one, sent already, is not sent again.
    clock.move_to(sh("2027-02-04 17:31"))
    report = invoke("scan_deadlines")
    assert report["reevaluated"] == 1 and report["created"] == 0
    assert RequestModel.get(created["request_id"]).next_check_at == sh("2027-02-05 09:36").timestamp()

    clock.move_to(sh("2027-02-05 10:01"))
    report = invoke("scan_deadlines")
    assert report["due"] == 1 and "breach|first_response|0" in mailbox.keys()
    [breach] = [m for m in mailbox.to(PROVIDER) if "SLA 违约" in m["Subject"]]
    assert "2027-02-05 10:00" in breach["Subject"]
    assert agent.get(f"/requests/{created['request_id']}")[1]["sla"]["first_response"]["breached"]


def test_deleting_the_override_brings_the_estimate_back_at_once(acme, clock):
    admin, agent, _ = acme
    clock.move_to(sh("2027-02-04 16:00"))
    admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
    request_id = create(agent)["request_id"]
    assert due(agent.get(f"/requests/{request_id}")[1]) == "2027-02-05T10:00:00+08:00"
    assert admin.delete("/calendars/CN/2027")[0] == 204
    assert due(agent.get(f"/requests/{request_id}")[1]) == "2027-02-11T10:00:00+08:00"
    assert invoke("scan_deadlines")["reevaluated"] == 1  # the scanner's schedule follows on its next run
    assert RequestModel.get(request_id).next_check_at == sh("2027-02-04 17:00").timestamp()


def test_a_resolved_request_keeps_its_outcome_whatever_calendar_or_contract_comes_later(acme, clock):
    admin, agent, client = acme
    clock.move_to(sh("2027-02-04 16:00"))
    request_id = create(agent)["request_id"]
    clock.move_to(sh("2027-02-04 16:30"))
    agent.post(f"/requests/{request_id}/events", {"type": "respond"})
    clock.move_to(sh("2027-02-11 12:00"))
    status, resolved = agent.post(f"/requests/{request_id}/events", {"type": "resolve"})
    assert status == 200 and not resolved["breached"] and due(resolved, "resolution") == "2027-02-11T17:00:00+08:00"
    assert invoke("nightly_tally")["tallies"]  # tallies 10 February
    before = {key: resolved[key] for key in ("sla", "breached", "penalty", "status")}
    report = admin.get("/contracts/acme/reports?month=2027-02")[1]

    assert admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 201  # 5 February was a working day
    stricter = copy.deepcopy(DEMO_CONTRACT)
    stricter["priorities"]["high"]["resolution"] = "1h"
    assert admin.put("/contracts/acme", stricter)[0] == 200
    clock.move_to(sh("2027-02-12 00:05"))
    assert admin.get("/contracts/acme/reports?month=2027-02")[1] == report  # stored days are not rewritten
    assert invoke("nightly_tally")["tallies"][0]["breaches"] == {}  # 11 February: resolved on time

    _, read = agent.get(f"/requests/{request_id}")
    assert {key: read[key] for key in before} == before
    [listed] = admin.get("/requests?contract_id=acme")[1]["items"]
    assert {key: listed[key] for key in before} == before
    status, rated = client.post(f"/requests/{request_id}/events", {"type": "rate", "score": 5})
    assert status == 200 and rated["rating"] == 5 and {key: rated[key] for key in before} == before
    assert admin.post("/contracts/acme/tallies", {"date": "2027-02-11"})[1]["breaches"] == {}

    status, reopened = client.post(f"/requests/{request_id}/events", {"type": "reopen"})
    assert status == 200 and reopened["status"] == "open"
    assert due(reopened, "resolution") == "2027-02-04T17:00:00+08:00" and reopened["breached"]


def test_provisional_flips_when_an_override_arrives(acme, mailbox, clock):
    admin, agent, _ = acme
    clock.move_to(sh("2026-12-31 11:30"))  # a short day (date_hours), then New Year 2027
    created = create(agent)
    assert due(created) == "2027-01-04T10:30:00+08:00"
    assert created["sla"]["first_response"]["provisional"] and created["sla"]["resolution"]["provisional"]
    assert not created["sla"]["progress_update"]["provisional"]  # no deadline yet
    [acknowledgement] = mailbox.to(REQUEST["requester"]["email"])
    assert ESTIMATED_LINE in acknowledgement.get_body(("plain",)).get_content()
    assert admin.get("/contracts/acme")[1]["calendar_years"] == {"2026": "official", "2027": "estimated"}

    assert admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)[0] == 201
    _, read = agent.get(f"/requests/{created['request_id']}")
    assert not read["sla"]["first_response"]["provisional"] and not read["sla"]["resolution"]["provisional"]
    assert admin.get("/contracts/acme")[1]["calendar_years"] == {"2026": "official", "2027": "official"}
    clock.move_to(sh("2026-12-31 11:45"))
    status, responded = agent.post(f"/requests/{created['request_id']}/events", {"type": "respond", "note": "在查"})
    assert status == 200 and not responded["sla"]["resolution"]["provisional"]
    respond_mail = mailbox.to(REQUEST["requester"]["email"])[-1]
    assert ESTIMATED_LINE not in respond_mail.get_body(("plain",)).get_content()


def test_a_request_within_official_years_is_not_provisional(acme, clock):
    _, agent, _ = acme
    created = create(agent, priority="low")
    assert not any(metric["provisional"] for metric in created["sla"].values())


# --- a contract's calendar --------------------------------------------------------------------------


WORKING_HOURS = [["09:00", "12:00"], ["13:00", "17:00"]]


def test_the_calendar_lists_each_day_with_its_kind_hours_and_status(acme, clock):
    _, agent, _ = acme
    status, body = agent.get("/contracts/acme/calendar?from=2026-12-30&to=2027-01-04")
    assert status == 200 and body["timezone"] == "Asia/Shanghai"
    assert body["days"] == [
        {"date": "2026-12-30", "working": True, "kind": "workday", "hours": WORKING_HOURS, "status": "official"},
        {"date": "2026-12-31", "working": True, "kind": "workday", "hours": [["09:00", "12:00"]],
         "status": "official"},
        {"date": "2027-01-01", "working": False, "kind": "holiday", "hours": [], "status": "estimated"},
        {"date": "2027-01-02", "working": False, "kind": "weekend", "hours": [], "status": "estimated"},
        {"date": "2027-01-03", "working": False, "kind": "weekend", "hours": [], "status": "estimated"},
        {"date": "2027-01-04", "working": True, "kind": "workday", "hours": WORKING_HOURS, "status": "estimated"},
    ]
    _, february = agent.get("/contracts/acme/calendar?from=2026-02-14&to=2026-02-14")
    assert february["days"][0]["kind"] == "makeup_workday" and february["days"][0]["working"]


def test_the_calendar_defaults_to_this_year_and_refuses_bad_spans(acme, clock):
    admin, agent, client = acme
    status, body = client.get("/contracts/acme/calendar")
    assert status == 200 and len(body["days"]) == 365
    assert (body["days"][0]["date"], body["days"][-1]["date"]) == ("2026-01-01", "2026-12-31")
    assert len(agent.get("/contracts/acme/calendar?from=2028-01-01&to=2028-12-31")[1]["days"]) == 366
    assert len(agent.get("/contracts/acme/calendar?from=2026-01-01&to=2027-01-01")[1]["days"]) == 366
    for query, field in [("from=2026-01-01&to=2027-01-02", "to"), ("from=2026-02-01&to=2026-01-31", "to"),
                         ("from=2026-13-01", "from"), ("from=1999-12-31&to=2000-01-01", "from"),
                         ("to=yesterday", "to"), ("days=3", "days")]:
        status, answer = agent.get(f"/contracts/acme/calendar?{query}")
        assert status == 400 and answer["Message"].startswith(f"{field}:"), (query, answer)
    admin.put("/contracts/other", DEMO_CONTRACT)
    assert agent.get("/contracts/other/calendar")[0] == 403


def ics(client, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.http.get(path, headers=headers)
    return response.status_code, response.headers, response.body


def events_of(body):
    parsed = icalendar.Calendar.from_ical(body)
    return {event.decoded("dtstart"): event for event in parsed.walk("VEVENT")}


def test_the_ics_parses_with_icalendar_and_lists_the_expected_days(acme, client, clock):
    _, agent, _ = acme
    status, headers, body = ics(client, "/contracts/acme/calendar.ics?from=2026-01-01&to=2026-12-31", agent.token)
    assert status == 200 and headers["Content-Type"] == "text/calendar; charset=utf-8"
    parsed = icalendar.Calendar.from_ical(body)
    assert parsed["VERSION"] == "2.0" and parsed["PRODID"]
    events = events_of(body)
    holidays, makeup = package_schedule("CN", 2026)
    expected_off = {d for d in holidays | {date(2026, 6, 1)} if d.isoweekday() <= 5}  # incl. the extra holiday
    assert set(events) == expected_off | set(makeup)
    assert all(isinstance(day, date) and not isinstance(day, datetime) for day in events)  # all-day
    for day, event in events.items():
        assert event.decoded("dtend") == day + timedelta(days=1)
        kind = "makeup_workday" if day in makeup else "holiday"
        assert str(event["SUMMARY"]) == {"holiday": "节假日休息（不计 SLA 时间）",
                                         "makeup_workday": "调休上班（计 SLA 时间）"}[kind]
    assert len({str(event["UID"]) for event in events.values()}) == len(events)
    assert date(2026, 10, 3) not in events  # a holiday on a Saturday changes nothing


def test_a_subscription_gets_this_year_and_next_in_the_contract_language_with_a_token_in_the_url(
        acme, admin, client, clock):
    _, _, customer = acme
    english = {**copy.deepcopy(DEMO_CONTRACT), "notify": {**DEMO_CONTRACT["notify"], "language": "en"}}
    assert admin.put("/contracts/acme", english)[0] == 200
    status, _, body = ics(client, f"/contracts/acme/calendar.ics?token={customer.token}")
    assert status == 200
    events = events_of(body)
    assert min(events).year == 2026 and max(events).year == 2027
    assert str(events[date(2027, 2, 5)]["SUMMARY"]) == "Holiday (no SLA time) (estimated)"
    assert str(events[date(2026, 2, 14)]["SUMMARY"]) == "Make-up working day (SLA time counts)"
    assert ics(client, "/contracts/acme/calendar.ics?token=tok_x.nope")[0] == 401
    assert ics(client, "/contracts/acme/calendar.ics")[0] == 401
    status, _, answer = ics(client, "/contracts/acme/calendar.ics?from=2026-01-01&to=2028-01-02", customer.token)
    assert status == 400 and b"to:" in answer


def test_the_ics_follows_a_published_schedule(acme, admin, client, clock):
    admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
    _, _, body = ics(client, "/contracts/acme/calendar.ics?from=2027-02-01&to=2027-02-28", admin.token)
    events = events_of(body)
    assert set(events) == {date(2027, 2, day) for day in (8, 9, 10, 11, 12, 20)}
    assert str(events[date(2027, 2, 20)]["SUMMARY"]) == "调休上班（计 SLA 时间）"


def test_overrides_are_read_with_one_query_per_call(acme, clock, monkeypatch):
    admin, agent, _ = acme
    admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
    for _ in range(3):
        create(agent)
    reads = []
    original = store.calendar_overrides
    monkeypatch.setattr(store, "calendar_overrides", lambda country: reads.append(country) or original(country))
    assert len(admin.get("/requests?contract_id=acme")[1]["items"]) == 3
    assert reads == ["CN"]
