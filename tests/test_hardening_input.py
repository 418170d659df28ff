"""Production hardening of what comes in and what goes out: contract limits, odd input that must be a
400 (never a 500), what client tokens may see, and listings and reports that read only what they
need. End to end through chalice.test.Client + moto + time-machine."""
import itertools
import json
from datetime import date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import botocore.client
import factories
import pytest
import time_machine
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import app
from chalicelib import contracts, evaluation, requests
from chalicelib.aws import store
from chalicelib.aws.tables import RequestModel
from chalicelib.core.errors import ValidationError
from conftest import DEMO_CONTRACT, demo_contract

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}
PROVIDER_ADDRESSES = ("oncall@provider.example", "sla-admin@provider.example", "sla@provider.example")


@pytest.fixture
def at_monday_10():
    with time_machine.travel(MONDAY_10, tick=False) as traveller:
        yield traveller




def dates(first, days):
    return [(first + timedelta(days=n)).isoformat() for n in range(days)]


def refused(status, body, field):
    return status == 400 and body["Message"].startswith(f"{field}:")


# --- contract limits -------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field", [
    ({"calendar.hours": []}, "calendar.hours"),
    ({"calendar.workdays": []}, "calendar.workdays"),  # CN's few make-up Saturdays cannot save it
    ({"calendar.workdays": [], "calendar.extra_workdays": dates(date(2026, 12, 1), 40)}, "calendar.workdays"),
    ({"calendar.extra_holidays": dates(date(2027, 3, 1), 70)}, "calendar.extra_holidays"),
    ({"calendar.date_hours": dict.fromkeys(dates(date(2027, 3, 1), 70), [])}, "calendar.date_hours"),
    ({"calendar.extra_holidays": dates(date(2041, 5, 1), 65)}, "calendar.extra_holidays"),  # years away too
    ({"calendar.holidays": None, "calendar.workdays": [6],
      "calendar.extra_holidays": [d for d in dates(date(2026, 1, 1), 400)
                                  if date.fromisoformat(d).isoweekday() == 6][10:20]}, "calendar.extra_holidays"),
])
def test_a_calendar_without_working_time_in_some_60_day_window_is_refused_naming_the_field(
        admin, at_monday_10, changes, field):
    status, body = admin.put("/contracts/acme", demo_contract(**changes))
    assert refused(status, body, field), body
    assert "60-day window" in body["Message"] or field == "calendar.workdays"
    assert admin.get("/contracts/acme")[0] == 404  # nothing stored


@pytest.mark.parametrize("days_off, status", [(57, 201), (58, 400)])
def test_59_days_without_working_time_are_accepted_60_are_not(admin, at_monday_10, days_off, status):
    # From Monday 2027-03-01, after the weekend of 27-28 February: 57 days off end on Monday 26 April,
    # 59 days without working time; one more day off makes 60.
    document = demo_contract(**{"calendar.extra_holidays": dates(date(2027, 3, 1), days_off)})
    answer = admin.put("/contracts/acme", document)
    assert answer[0] == status, answer


@pytest.mark.parametrize("path, value", [
    ("priorities.high.resolution", "9999999wd"),
    ("priorities.high.resolution", "401wd"),
    ("priorities.high.resolution", "2801h"),  # 400 days of 7 business hours is 2800 h
    ("priorities.medium.first_response", "168001m"),
    ("priorities.high.progress_every", "9999999h"),
    ("priorities.urgent.resolution", "9601h"),  # 24x7: 400 days of 24 h
    ("priorities.urgent.first_response", "576001m"),
    ("off_hours_first_response", "2801h"),
])
def test_durations_over_400_working_days_are_refused_naming_the_field(admin, at_monday_10, path, value):
    status, body = admin.put("/contracts/acme", demo_contract(**{path: value}))
    assert refused(status, body, path), body
    assert "400 working days" in body["Message"]


def test_durations_of_400_working_days_are_accepted_and_computable(acme, at_monday_10):
    admin, agent, _ = acme
    longest = demo_contract(**{"priorities.high.resolution": "400wd", "priorities.medium.resolution": "2800h",
                          "priorities.urgent.resolution": "9600h", "off_hours_first_response": "2800h"})
    assert admin.put("/contracts/acme", longest)[0] == 200
    for priority in ("high", "medium", "urgent"):
        status, body = agent.post("/requests", {**REQUEST, "priority": priority})
        assert status == 201, body
        due = datetime.fromisoformat(body["sla"]["resolution"]["due_at"])
        assert MONDAY_10 + timedelta(days=399) < due < MONDAY_10 + timedelta(days=700)


def test_a_refused_change_stores_no_new_version(admin, at_monday_10):
    assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
    assert refused(*admin.put("/contracts/acme", demo_contract(**{"calendar.hours": []})), "calendar.hours")
    assert admin.get("/contracts/acme")[1]["version"] == 1


def test_a_document_whose_stored_form_would_not_parse_is_refused_before_anything_is_stored(
        admin, at_monday_10, monkeypatch):
    assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
    parse = contracts.parse_contract

    def stored_form_breaks(doc, version=0, admitted_at=None, overrides=None, **options):
        if admitted_at is None:  # what every reader of the stored version does
            raise ValidationError("calendar", "does not read back")
        return parse(doc, version, admitted_at, overrides, **options)

    monkeypatch.setattr(contracts, "parse_contract", stored_form_breaks)
    assert refused(*admin.put("/contracts/acme", demo_contract(name="v2")), "calendar")
    monkeypatch.undo()
    assert admin.get("/contracts/acme")[1] | {"updated_at": None} == {
        "contract_id": "acme", "version": 1, "updated_at": None, **contracts.parse_contract(DEMO_CONTRACT)[0],
        "calendar_years": {"2026": "official", "2027": "estimated"}}


ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "UTC"]


@st.composite
def hours(draw):
    cuts = sorted(set(draw(st.lists(st.integers(0, 24 * 4), max_size=6))))
    pairs = [cuts[i:i + 2] for i in range(0, len(cuts) - 1, 2)]
    return [[f"{a // 4:02d}:{a % 4 * 15:02d}", f"{b // 4:02d}:{b % 4 * 15:02d}"] for a, b in pairs]


@st.composite
def off_runs(draw):
    """A run of consecutive dates around the present, up to 90 long."""
    first = date(2025, 6, 1) + timedelta(days=draw(st.integers(0, 3 * 365)))
    return dates(first, draw(st.integers(0, 90)))


# Mostly within the limits, so that most contracts are accepted and their requests computed.
durations = st.builds(lambda n, unit: f"{n}{unit}", st.sampled_from([1, 7, 30, 400, 2800, 9600]),
                      st.sampled_from(["m", "h", "wd"]))
calendars = st.fixed_dictionaries({
    "holidays": st.sampled_from(["CN", None, "DE"]),
    "workdays": st.lists(st.integers(1, 7), unique=True, min_size=1, max_size=7),
    "hours": hours(),
    "extra_holidays": off_runs(),
    "date_hours": off_runs().map(lambda ds: dict.fromkeys(ds, [])),
})
contract_documents = st.builds(
    lambda calendar, zone, first, resolution, every, clock: demo_contract(**{
        "calendar": calendar, "timezone": zone, "priorities": {
            "high": {"first_response": first, "resolution": resolution, "progress_every": every, "clock": clock}}}),
    calendars, st.sampled_from(ZONES), durations, durations, durations, st.sampled_from(["business", "24x7"]))
received = st.datetimes(datetime(2000, 1, 2), datetime(2026, 11, 23, 9, 59), timezones=st.just(SH))
contract_ids = (f"hypo{n}" for n in itertools.count())


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=contract_documents, received_at=received)
def test_any_accepted_contract_computes_the_deadlines_of_any_request(admin, at_monday_10, document, received_at):
    contract_id = next(contract_ids)
    status, body = admin.put(f"/contracts/{contract_id}", document)
    assert status in (201, 400), body
    if status == 201:
        request = {**REQUEST, "contract_id": contract_id, "received_at": received_at.isoformat()}
        status, body = admin.post("/requests", request)
        assert status == 201, (document, body)
        assert admin.get(f"/requests/{body['request_id']}")[0] == 200


# --- bad input is a 400 ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["²", "٣", "１０", "1" * 5000, "-1", "+5", " 5", "5\n"])
def test_a_limit_in_anything_but_ascii_digits_is_400_naming_limit(acme, limit):
    _, agent, _ = acme
    status, body = agent.get(f"/requests?limit={quote(limit)}")
    assert refused(status, body, "limit"), body


@pytest.mark.parametrize("query, field", [
    ("month=２０２６-１１", "month"), ("month=2026-1²", "month"), ("month=2026-11%0A", "month"),
    ("month=2026-11&format=%F0%9F%98%80", "format"),
])
def test_report_parameters_in_odd_digits_are_400_naming_them(acme, query, field):
    admin, _, _ = acme
    status, body = admin.get(f"/contracts/acme/reports?{query}")
    assert refused(status, body, field), body


@pytest.mark.parametrize("query", ["contract_id=acme%0A", "contract_id=%EF%BC%A1cme"])
def test_a_contract_id_with_a_trailing_newline_or_odd_letters_is_400(acme, query):
    admin, _, _ = acme
    assert refused(*admin.get(f"/requests?{query}"), "contract_id")


@pytest.mark.parametrize("method, path", [("POST", "/requests"), ("PUT", "/contracts/acme"),
                                          ("POST", "/tokens"), ("POST", "/contracts/acme/outages")])
def test_30_kb_of_nested_brackets_is_400_naming_body(acme, method, path):
    admin, _, _ = acme
    status, body = admin.call(method, path, raw="[" * 30000)
    assert refused(status, body, "body") and "32" in body["Message"], body


def nested(depth):
    """A JSON object `depth` levels deep."""
    return "{\"a\": " * (depth - 1) + "{}" + "}" * (depth - 1)


def test_valid_json_nested_deeper_than_32_levels_is_400_and_32_levels_are_parsed(acme):
    _, agent, _ = acme
    status, body = agent.call("POST", "/requests", raw=nested(33))
    assert refused(status, body, "body") and "nested more than 32 levels" in body["Message"], body
    status, body = agent.call("POST", "/requests", raw=nested(32))
    assert status == 400 and "nested" not in body["Message"]  # parsed; refused for what it says


def test_a_requester_address_with_a_non_ascii_mailbox_name_is_400_and_nothing_is_stored(acme, mailbox):
    _, agent, _ = acme
    status, body = agent.post("/requests", {**REQUEST, "requester": {"email": "张三@example.com"}})
    assert refused(status, body, "requester.email") and "ASCII" in body["Message"], body
    assert agent.get("/requests")[1]["items"] == [] and mailbox.messages() == []


def test_an_internationalised_domain_is_stored_and_mailed_as_punycode(acme, mailbox):
    _, agent, _ = acme
    status, body = agent.post("/requests", {**REQUEST, "requester": {"email": "zhang@例子.中国"}})
    assert status == 201, body
    assert body["requester"]["email"] == "zhang@xn--fsqu00a.xn--fiqs8s"
    [mail] = mailbox.messages()
    assert str(mail["To"]) == "zhang@xn--fsqu00a.xn--fiqs8s"


@pytest.mark.parametrize("path, value, field", [
    ("notify.provider", ["运维@provider.example"], "notify.provider[0]"),
    ("notify.admins", ["ok@provider.example", "管理员@provider.example"], "notify.admins[1]"),
    ("notify.sender", "服务@provider.example", "notify.sender"),
])
def test_notify_addresses_ses_cannot_deliver_are_refused_naming_them(admin, path, value, field):
    status, body = admin.put("/contracts/acme", demo_contract(**{path: value}))
    assert refused(status, body, field), body


def test_notify_addresses_with_internationalised_domains_are_kept_as_punycode(admin):
    status, body = admin.put("/contracts/acme", demo_contract(**{"notify.provider": ["oncall@例子.中国"]}))
    assert status == 201 and body["notify"]["provider"] == ["oncall@xn--fsqu00a.xn--fiqs8s"], body


# --- clients see only their business ---------------------------------------------------------------


def test_clients_never_see_notifications_nor_provider_addresses_agents_and_admins_do(acme, at_monday_10, mailbox):
    admin, agent, client = acme
    status, created = client.post("/requests", REQUEST)
    assert status == 201 and "notifications" not in created
    request_id = created["request_id"]
    assert agent.post(f"/requests/{request_id}/events", {"type": "await_customer", "note": "请提供截图"})[0] == 200
    status, replied = client.post(f"/requests/{request_id}/events", {"type": "customer_reply"})
    assert status == 200 and "notifications" not in replied
    status, seen = client.get(f"/requests/{request_id}")
    assert status == 200 and "notifications" not in seen
    listing = client.get("/requests")[1]
    for document in (created, replied, seen, listing):
        assert not any(address in json.dumps(document) for address in PROVIDER_ADDRESSES)
    for token in (agent, admin):
        notifications = token.get(f"/requests/{request_id}")[1]["notifications"]
        assert [n["kind"] for n in notifications] == ["acknowledgement", "await_customer"]
        assert notifications[0] == {
            "key": "acknowledgement", "kind": "acknowledgement", "to": ["zhang@customer.example"], "status": "sent",
            "reason": None, "attempts": 1, "sent_at": "2026-11-23T10:00:00+08:00", "delivered_at": None,
            "bounced_at": None, "bounce_type": None, "complained_at": None, "recipients_feedback": [],
            "last_error": None}


def test_clients_get_the_contract_without_the_provider_s_addresses(acme):
    admin, agent, client = acme
    status, document = client.get("/contracts/acme")
    assert status == 200 and document["notify"] == {"language": "zh-CN"}
    assert not any(address in json.dumps(document) for address in PROVIDER_ADDRESSES)
    assert document["priorities"] == admin.get("/contracts/acme")[1]["priorities"]
    assert agent.get("/contracts/acme")[1]["notify"]["provider"] == ["oncall@provider.example"]


# --- listings and reports read what they need -------------------------------------------------------


class RequestReads:
    """Items DynamoDB read from the requests table (its Count / ScannedCount), at botocore."""

    def __init__(self, monkeypatch):
        self.scanned, self.returned = 0, 0
        original = botocore.client.BaseClient._make_api_call
        reads = self

        def counting(client, operation, params):
            answer = original(client, operation, params)
            if operation == "Query" and params.get("TableName") == RequestModel.Meta.table_name:
                reads.scanned += answer.get("ScannedCount", 0)
                reads.returned += len(answer.get("Items", []))
            return answer

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)


def history(size, resolved, breached=0):
    """`size` requests on acme, received a minute apart before Monday 10:00; the oldest `resolved` are
    resolved, the newest `breached` are late (urgent, no response), the rest answered on time."""
    policy = evaluation.policy_of(store.latest_record("acme"))
    items = []
    for n in range(size):
        received = MONDAY_10 - timedelta(minutes=size - n)
        if n < resolved:
            events = [("respond", received + timedelta(seconds=10)), ("resolve", received + timedelta(seconds=20))]
        elif n >= size - breached:
            events = []
            received = received - timedelta(hours=1)
        else:
            events = [("respond", received + timedelta(seconds=10))]
        priority = "urgent" if n >= size - breached else "high"
        items.append(factories.request_item(policy, "acme", priority, received, MONDAY_10, events))
    return [item.request_id for item in factories.insert(items)]


def test_a_status_filtered_listing_reads_the_requests_in_that_status_only(acme, at_monday_10, monkeypatch):
    _, agent, _ = acme
    ids = history(300, resolved=20)
    reads = RequestReads(monkeypatch)
    status, page = agent.get("/requests?status=resolved&limit=20")
    assert status == 200 and [r["request_id"] for r in page["items"]] == ids[:20][::-1]
    assert reads.scanned <= 20, reads.scanned  # before the status index: all 300


def test_a_status_listing_pages_with_its_cursor(acme, at_monday_10):
    _, agent, _ = acme
    ids = history(30, resolved=7)
    seen, query = [], "status=resolved&limit=3"
    page = agent.get(f"/requests?{query}")[1]
    while True:
        seen += [r["request_id"] for r in page["items"]]
        if not page["next"]:
            break
        page = agent.get(f"/requests?{query}&next={page['next']}")[1]
    assert seen == ids[:7][::-1]


def test_a_breached_listing_reads_the_breached_requests_only(acme, at_monday_10, monkeypatch):
    _, agent, _ = acme
    ids = history(200, resolved=0, breached=4)
    reads = RequestReads(monkeypatch)
    page = agent.get("/requests?breached=true")[1]
    assert [r["request_id"] for r in page["items"]] == ids[-4:][::-1] and page["next"] is None
    assert reads.scanned == 4


def test_a_request_moves_between_status_listings_and_joins_the_breached_one_when_the_scanner_sees_it(
        acme, at_monday_10):
    _, agent, _ = acme
    request_id = agent.post("/requests", REQUEST)[1]["request_id"]
    only = lambda query: [r["request_id"] for r in agent.get(f"/requests?{query}")[1]["items"]]  # noqa: E731
    assert only("status=open") == [request_id] and only("breached=true") == []
    at_monday_10.move_to(datetime(2026, 11, 23, 12, 1, tzinfo=SH))  # the first response (2 h) breached at 12:00
    with Client(app) as lambda_client:
        lambda_client.lambda_.invoke("scan_deadlines", lambda_client.events.generate_cw_event(
            "aws.events", "Scheduled Event", {}, [], region="us-east-1"))
    assert only("breached=true") == [request_id] and only("status=open&breached=true") == [request_id]
    assert agent.post(f"/requests/{request_id}/events", {"type": "resolve"})[0] == 200
    assert only("status=open") == [] and only("status=resolved") == [request_id]
    assert only("status=resolved&breached=true") == [request_id]


def test_a_listing_the_indexes_cannot_narrow_reads_a_few_pages_per_call_and_continues(
        acme, at_monday_10, monkeypatch):
    _, agent, _ = acme
    ids = history(60, resolved=0, breached=57)  # only the 3 oldest are not breached
    found, calls = [], 0
    page = {"next": None}
    while True:
        reads = RequestReads(monkeypatch)
        page = agent.get("/requests?breached=false&limit=2" + (f"&next={page['next']}" if page["next"] else ""))[1]
        calls += 1
        assert reads.scanned <= requests.MAX_LISTING_PAGES * 2
        found += [r["request_id"] for r in page["items"]]
        if not page["next"]:
            break
    assert found == ids[:3][::-1] and calls > 3


def test_the_monthly_report_counts_the_month_s_requests_without_reading_them(acme, at_monday_10, monkeypatch):
    admin, _, _ = acme
    history(120, resolved=45)
    reads = RequestReads(monkeypatch)
    status, report = admin.get("/contracts/acme/reports?month=2026-11")
    assert status == 200 and report["kpi"]["resolution_rate"]["actual"] == 45 / 120  # resolved / received
    assert reads.returned == 0  # COUNT queries: numbers, not items
