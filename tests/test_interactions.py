"""Phone and chat interactions: batches, re-delivery, and each service-level rule, end to end through
`chalice.test.Client` + moto (the nightly tally, the report, its CSV and the admins' daily email)."""
import copy
import csv
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import botocore.client
import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib.core import service_level
from chalicelib.core.policy import parse_contract
from chalicelib.core.service_level import Interaction
from conftest import DEMO_CONTRACT, contract_with_tokens

SH = ZoneInfo("Asia/Shanghai")
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["interactions"] = {"phone": {"answer_within": "60s", "target": 0.9, "hours": "business"},
                            "chat": {"answer_within": "30s", "target": 0.9, "hours": "24x7"}}
CONTRACT["notify"]["language"] = "en"
MONDAY = datetime(2026, 11, 23, tzinfo=SH)
ADMINS = "sla-admin@provider.example"


def at(hour, minute=0, second=0, day=MONDAY):
    return day.replace(hour=hour, minute=minute, second=second)


def call(id, offered, answered=None, abandoned=None, channel="phone"):
    """An interaction item; `answered` / `abandoned` in seconds after it was offered."""
    item = {"id": id, "channel": channel, "offered_at": offered.isoformat()}
    if answered is not None:
        item["answered_at"] = (offered + timedelta(seconds=answered)).isoformat()
    if abandoned is not None:
        item["abandoned_at"] = (offered + timedelta(seconds=abandoned)).isoformat()
    return item


@pytest.fixture
def acme(admin):
    return contract_with_tokens(admin, CONTRACT)


@pytest.fixture
def later():
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, tzinfo=SH), tick=False) as traveller:
        yield traveller


def post(token, *items):
    return token.post("/contracts/acme/interactions", {"items": list(items)})


def day_counts(admin, date="2026-11-23"):
    """The day's tally, per channel."""
    status, tally = admin.post("/contracts/acme/tallies", {"date": date})
    assert status == 200, tally
    return tally["interactions"]


# --- the service-level rules -------------------------------------------------------------------------


def test_answered_within_the_threshold_counts_for_it_and_later_against_it(acme, later):
    admin, agent, _ = acme
    assert post(agent, call("c1", at(10), answered=45), call("c2", at(10, 5), answered=90)) == \
        (200, {"accepted": 2, "replaced": 0})
    phone = day_counts(admin)["phone"]
    assert phone == {"offered": 2, "answered": 2, "answered_within": 1, "abandoned": 0, "callbacks": 0,
                     "service_level": 0.5, "average_answer_seconds": 67.5, "p90_answer_seconds": 90}


def test_exactly_the_threshold_is_within_and_a_microsecond_more_is_not(acme, later):
    admin, agent, _ = acme
    late = call("c2", at(10, 5))
    late["answered_at"] = (at(10, 5) + timedelta(seconds=60, microseconds=1)).isoformat()
    post(agent, call("c1", at(10), answered=60), late)
    phone = day_counts(admin)["phone"]
    assert (phone["answered_within"], phone["p90_answer_seconds"]) == (1, 61)


def test_short_abandons_are_left_out_of_the_service_level(acme, later):
    admin, agent, _ = acme
    post(agent, call("c1", at(10), answered=20), call("c2", at(10, 1), abandoned=15),
         call("c3", at(10, 2), abandoned=60))
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["abandoned"], phone["service_level"]) == (3, 2, 1.0)


def test_abandons_after_the_threshold_count_against_the_service_level(acme, later):
    admin, agent, _ = acme
    post(agent, call("c1", at(10), answered=20), call("c2", at(10, 1), abandoned=61),
         call("c3", at(10, 2), abandoned=300))
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["abandoned"], phone["service_level"]) == (3, 2, 0.3333)


def test_calls_offered_outside_business_hours_do_not_count(acme, later):
    admin, agent, _ = acme
    saturday = MONDAY - timedelta(days=2)
    post(agent, call("early", at(8, 59, 59), answered=300), call("open", at(9), answered=10),
         call("closing", at(17), abandoned=500), call("night", at(22), answered=900),
         call("weekend", at(10, day=saturday), answered=900))
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["answered"], phone["service_level"]) == (1, 1, 1.0)
    assert day_counts(admin, "2026-11-21")["phone"]["offered"] == 0


def test_calls_offered_in_the_lunch_break_do_not_count(acme, later):
    admin, agent, _ = acme
    post(agent, call("before", at(11, 59, 59), answered=30), call("lunch", at(12), answered=600),
         call("lunch-end", at(12, 59, 59), abandoned=600), call("after", at(13), answered=61))
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["answered_within"], phone["service_level"]) == (2, 1, 0.5)


def test_chat_on_24x7_counts_at_night_at_lunch_and_on_weekends(acme, later):
    admin, agent, _ = acme
    sunday = MONDAY - timedelta(days=1)
    post(agent, call("night", at(3), answered=20, channel="chat"), call("lunch", at(12, 30), answered=31,
                                                                        channel="chat"),
         call("gone", at(23, 59, 59), abandoned=10, channel="chat"),
         call("sunday", at(14, day=sunday), answered=5, channel="chat"))
    chat = day_counts(admin)["chat"]
    assert chat == {"offered": 3, "answered": 2, "answered_within": 1, "abandoned": 1, "callbacks": 0,
                    "service_level": 0.5, "average_answer_seconds": 25.5, "p90_answer_seconds": 31}
    assert day_counts(admin, "2026-11-22")["chat"]["offered"] == 1


def test_an_interaction_neither_answered_nor_abandoned_is_offered_only(acme, later):
    admin, agent, _ = acme
    post(agent, call("c1", at(10)), call("c2", at(10, 1), answered=10))
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["answered"], phone["abandoned"], phone["service_level"]) == (2, 1, 0, 1.0)


# --- re-delivery ------------------------------------------------------------------------------------


def test_a_re_sent_id_replaces_its_record(acme, later):
    admin, agent, _ = acme
    assert post(agent, call("c1", at(10), answered=90), call("c2", at(10, 5), answered=10))[1] == \
        {"accepted": 2, "replaced": 0}
    assert post(agent, call("c1", at(10), answered=30), call("c3", at(10, 7), abandoned=100))[1] == \
        {"accepted": 2, "replaced": 1}
    phone = day_counts(admin)["phone"]
    assert (phone["offered"], phone["answered"], phone["answered_within"], phone["abandoned"]) == (3, 2, 2, 1)


def test_a_re_sent_id_offered_on_another_day_leaves_the_first_day(acme, later):
    admin, agent, _ = acme
    post(agent, call("c1", at(10), answered=10), call("c2", at(16, 59), answered=10))
    tuesday = MONDAY + timedelta(days=1)
    assert post(agent, call("c1", at(9, 30, day=tuesday), answered=120))[1] == {"accepted": 1, "replaced": 1}
    assert day_counts(admin)["phone"]["offered"] == 1
    assert day_counts(admin, "2026-11-24")["phone"]["answered_within"] == 0
    assert post(agent, call("c1", at(9, 30, day=tuesday), answered=5))[1] == {"accepted": 1, "replaced": 1}
    assert day_counts(admin, "2026-11-24")["phone"] == {
        "offered": 1, "answered": 1, "answered_within": 1, "abandoned": 0, "callbacks": 0, "service_level": 1.0,
        "average_answer_seconds": 5.0, "p90_answer_seconds": 5}


def test_a_full_batch_of_500_is_taken_and_a_second_delivery_replaces_all_of_it(acme, later):
    admin, agent, _ = acme
    items = [call(f"0f3e7a52-8c1b-4d0e-9d5f-{n:012d}", at(9) + timedelta(seconds=50 * n), answered=n % 90)
             for n in range(500)]
    assert len(json.dumps({"items": items})) > 64 * 1024  # more than other routes take
    assert post(agent, *items) == (200, {"accepted": 500, "replaced": 0})
    assert post(agent, *items) == (200, {"accepted": 500, "replaced": 500})
    phone = day_counts(admin)["phone"]
    in_hours = [n for n in range(500) if not 3 * 3600 <= 50 * n < 4 * 3600]  # 12:00-13:00 is lunch
    assert phone["offered"] == len(in_hours)
    assert phone["answered_within"] == sum(1 for n in in_hours if n % 90 <= 60)


# --- refused batches ---------------------------------------------------------------------------------


BAD_ITEMS = [
    ({"answered_at": "soon"}, "items[3].answered_at"),
    ({"answered_at": "2026-11-23T09:59:00+08:00"}, "items[3].answered_at"),
    ({"abandoned_at": "2026-11-23T10:01:00+08:00"}, "items[3].abandoned_at"),
    ({"offered_at": "2026-12-01T10:00:00+08:00", "answered_at": None}, "items[3].offered_at"),
    ({"offered_at": "2025-01-01T10:00:00+08:00", "answered_at": None}, "items[3].offered_at"),
    ({"offered_at": "2026-11-23T10:00:00"}, "items[3].offered_at"),
    ({"channel": "wechat"}, "items[3].channel"),
    ({"channel": None}, "items[3].channel"),
    ({"id": ""}, "items[3].id"),
    ({"id": "x" * 129}, "items[3].id"),
    ({"id": "c0"}, "items[3].id"),
    ({"queue": "q1"}, "items[3].queue"),
]


@pytest.mark.parametrize("change, field", BAD_ITEMS, ids=[f for _, f in BAD_ITEMS])
def test_a_bad_item_refuses_the_whole_batch_naming_it(acme, later, change, field):
    admin, agent, _ = acme
    good = [call(f"c{n}", at(10, n), answered=10) for n in range(3)]
    bad = {**call("c3", at(10), answered=10), **change}
    status, body = post(agent, *good, bad)
    assert status == 400 and body["Message"].startswith(field + ":"), body
    assert day_counts(admin)["phone"]["offered"] == 0  # nothing of the batch was stored


@pytest.mark.parametrize("body, field", [({"items": []}, "items"), ({"items": "c1"}, "items"), ({}, "items"),
                                         ({"items": [{}] * 501}, "items"), ({"items": [], "x": 1}, "x"),
                                         ({"items": [7]}, "items[0]")])
def test_a_malformed_batch_is_refused_naming_the_field(acme, later, body, field):
    _, agent, _ = acme
    status, answer = agent.post("/contracts/acme/interactions", body)
    assert status == 400 and answer["Message"].startswith(field + ":"), answer


def test_client_tokens_may_not_post_interactions_and_contracts_without_channels_refuse_them(acme, later):
    admin, agent, client = acme
    assert post(client, call("c1", at(10), answered=10))[0] == 403
    assert admin.put("/contracts/bare", DEMO_CONTRACT)[0] == 201
    status, body = admin.post("/contracts/bare/interactions", {"items": [call("c1", at(10), answered=10)]})
    assert status == 400 and body["Message"].startswith("items:")


# --- what the tally reads, and what it shows -----------------------------------------------------------


def test_the_tally_reads_only_the_days_interactions(acme, later, monkeypatch):
    admin, agent, _ = acme
    for day in range(20, 27):  # a week around the day, 30 calls a day
        offered = datetime(2026, 11, day, 9, tzinfo=SH)
        post(agent, *(call(f"d{day}-{n}", offered + timedelta(minutes=10 * n), answered=20) for n in range(30)))
    returned, original = [], botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        answer = original(client, operation, params)
        if operation == "Query" and params["TableName"].endswith("interactions"):
            returned.append(len(answer["Items"]))
        return answer

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    assert day_counts(admin)["phone"]["offered"] == 24  # 6 of the 30 fall in the lunch break
    assert sum(returned) == 30 and len(returned) == 24  # one Query per UTC hour of the local day


def test_the_report_its_csv_and_the_daily_email_show_each_channel(acme, later, mailbox):
    admin, agent, _ = acme
    post(agent, call("c1", at(10), answered=45), call("c2", at(10, 5), answered=90),
         call("c3", at(10, 6), abandoned=10), call("h1", at(3), answered=20, channel="chat"))
    tuesday = MONDAY + timedelta(days=1)
    post(agent, call("c4", at(10, day=tuesday), answered=10), call("c5", at(11, day=tuesday), abandoned=100))
    day_counts(admin)
    day_counts(admin, "2026-11-24")
    status, report = admin.get("/contracts/acme/reports?month=2026-11")
    assert status == 200
    assert report["interactions"] == {
        "chat": {"offered": 1, "answered": 1, "answered_within": 1, "abandoned": 0, "callbacks": 0,
                 "average_answer_seconds": 20.0, "p90_answer_seconds": 20},
        "phone": {"offered": 5, "answered": 3, "answered_within": 2, "abandoned": 2, "callbacks": 0,
                  "average_answer_seconds": 48.3, "p90_answer_seconds": 90},
    }
    assert report["kpi"]["service_level"] == {"chat": {"actual": 1.0, "target": 0.9, "met": True},
                                              "phone": {"actual": 0.5, "target": 0.9, "met": False}}
    assert report["days"][0]["interactions"]["phone"] == {"offered": 3, "answered": 2, "answered_within": 1,
                                                          "abandoned": 1, "service_level": 0.5, "callbacks": 0}
    with Client(app) as raw:
        response = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                headers={"Authorization": f"Bearer {admin.token}"})
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8"))))
    assert [row["interactions.phone.offered"] for row in rows] == ["3", "2"]
    assert [row["interactions.phone.service_level"] for row in rows] == ["0.5", "0.5"]
    assert [row["interactions.phone.callbacks"] for row in rows] == ["0", "0"]
    assert rows[1]["interactions.chat.service_level"] == ""  # nothing to measure that day
    email = [m for m in mailbox.to(ADMINS) if "2026-11-24" in str(m["Subject"])][0]
    text = email.get_body(("plain",)).get_content()
    assert "phone: service level (answered within 60s, target 90.0%)" in text
    line = next(row for row in text.splitlines() if row.startswith("phone: service level"))
    assert line.split()[-2:] == ["50.0%", "50.0%"]  # that day 1 of 2; the month to date 2 of 4


# --- the pure parts ---------------------------------------------------------------------------------


def test_waits_are_kept_to_the_second_up_to_ten_minutes_then_to_the_minute():
    assert [service_level.wait_bucket(us) for us in (0, 1, 1_000_000, 1_000_001, 600_000_000, 600_000_001,
                                                      3_601_000_000, 10**12)] == [0, 1, 1, 2, 600, 660, 3660, 86400]


def test_the_90th_percentile_is_the_nearest_rank():
    assert service_level.p90_seconds({str(s): 1 for s in range(1, 11)}) == 9
    assert service_level.p90_seconds({"5": 9, "100": 1}) == 5
    assert service_level.p90_seconds({"5": 8, "100": 2}) == 100
    assert service_level.p90_seconds({}) is None


def test_days_add_up_to_the_month_exactly():
    policy = parse_contract(CONTRACT)[1]
    start, end = MONDAY, MONDAY + timedelta(days=2)
    calls = [Interaction(f"c{n}", "phone", at(9) + timedelta(days=n % 2, minutes=n), at(9) + timedelta(
        days=n % 2, minutes=n, seconds=n)) for n in range(100)]
    both = service_level.count_day(policy.interactions, policy.calendar, start, end, calls)
    days = [service_level.count_day(policy.interactions, policy.calendar, MONDAY + timedelta(days=d),
                                    MONDAY + timedelta(days=d + 1), calls) for d in (0, 1)]
    assert service_level.merge(days) == both
    assert service_level.summary(both["phone"])["p90_answer_seconds"] == 89  # the 90th of waits 0..99 s
