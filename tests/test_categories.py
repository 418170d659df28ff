"""Free priority names and request categories whose targets replace the priority's, end to end."""
import copy
import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib.core.durations import Duration
from chalicelib.core.policy import parse_contract
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["priorities"] = {
    "p1": {"first_response": "30m", "resolution": "8h", "clock": "24x7"},
    "p2": {"first_response": "2h", "resolution": "8h", "progress_every": "4h"},
}
CONTRACT["categories"] = {"complaint": {"first_response": "4h", "resolution": "2wd"},
                          "inquiry": {"progress_every": "1h"}}
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)


@pytest.fixture
def acme(admin):
    assert admin.put("/contracts/acme", CONTRACT)[0] == 201
    token = admin.post("/tokens", {"role": "agent", "contract_id": "acme"})[1]["token"]
    return admin, admin.as_token(token)


@pytest.fixture
def later():
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, tzinfo=SH), tick=False) as traveller:
        yield traveller


def create(agent, priority, received=MONDAY_10, **extra):
    body = {"contract_id": "acme", "priority": priority, "channel": "portal", "subject": "投诉：服务态度",
            "requester": {"name": "王五", "email": "wang@customer.example"}, "received_at": received.isoformat(),
            **extra}
    status, created = agent.post("/requests", body)
    assert status == 201, created
    return created


def test_a_category_replaces_the_targets_it_sets_and_keeps_the_priority_clock():
    policy = parse_contract(CONTRACT)[1]
    complaint = policy.targets("p2", "complaint")
    assert (complaint.first_response, complaint.resolution) == (Duration(4, "h"), Duration(2, "wd"))
    assert complaint.progress_every == Duration(4, "h") and complaint.clock == "business"
    assert policy.targets("p1", "complaint").clock == "24x7"
    assert policy.targets("p2", "inquiry").progress_every == Duration(1, "h")
    assert policy.targets("p2", "inquiry").first_response == Duration(2, "h")
    assert policy.targets("p2") == policy.priorities["p2"] == policy.targets("p2", "gone")
    assert policy.targets("p9", "complaint") is None


def test_a_complaint_is_due_within_its_categorys_targets_not_its_prioritys(acme, later):
    _, agent = acme
    complaint = create(agent, "p2", category="complaint")
    plain = create(agent, "p2")
    assert complaint["category"] == "complaint" and plain["category"] is None
    assert complaint["sla"]["first_response"]["due_at"] == "2026-11-23T15:00:00+08:00"  # 4 h, lunch skipped
    assert complaint["sla"]["resolution"]["due_at"] == "2026-11-25T10:00:00+08:00"  # 2 working days
    assert plain["sla"]["first_response"]["due_at"] == "2026-11-23T12:00:00+08:00"
    assert plain["sla"]["resolution"]["due_at"] == "2026-11-24T11:00:00+08:00"
    _, again = agent.get(f"/requests/{complaint['request_id']}")
    assert again["category"] == "complaint" and again["sla"] == complaint["sla"]


def test_a_category_on_a_24x7_priority_counts_wall_clock_time(acme, later):
    _, agent = acme
    saturday = datetime(2026, 11, 28, 22, 0, tzinfo=SH)
    complaint = create(agent, "p1", received=saturday, category="complaint")
    assert complaint["sla"]["first_response"]["due_at"] == "2026-11-29T02:00:00+08:00"


def test_the_category_survives_a_reprioritize_event(acme, later):
    _, agent = acme
    complaint = create(agent, "p2", category="complaint")
    status, moved = agent.post(f"/requests/{complaint['request_id']}/events",
                               {"type": "reprioritize", "priority": "p1", "at": "2026-11-23T10:30:00+08:00"})
    assert status == 200, moved
    assert moved["category"] == "complaint" and moved["priority"] == "p1"
    assert moved["sla"]["first_response"]["due_at"] == "2026-11-23T14:00:00+08:00"  # 4 h on the 24x7 clock


@pytest.mark.parametrize("category", ["refund", "", 7, ["complaint"]])
def test_a_category_the_contract_does_not_define_is_refused_naming_category(acme, later, category):
    _, agent = acme
    status, body = agent.post("/requests", {"contract_id": "acme", "priority": "p2", "channel": "portal",
                                            "subject": "x", "requester": {"email": "wang@customer.example"},
                                            "category": category})
    assert status == 400 and body["Message"].startswith("category:")


def test_the_preview_takes_the_category_and_agrees_with_the_request(acme, later):
    _, agent = acme
    status, preview = agent.post("/contracts/acme/preview", {"priority": "p2", "category": "complaint",
                                                             "received_at": MONDAY_10.isoformat()})
    assert status == 200, preview
    created = create(agent, "p2", category="complaint")
    assert {name: metric["due_at"] for name, metric in preview["sla"].items()} == \
        {name: metric["due_at"] for name, metric in created["sla"].items()}
    status, refused = agent.post("/contracts/acme/preview", {"priority": "p2", "category": "refund"})
    assert status == 400 and refused["Message"].startswith("category:")


def test_free_priority_names_appear_as_they_are_in_emails(acme, later, mailbox):
    _, agent = acme
    create(agent, "p2", received=datetime(2026, 11, 30, 11, 30, tzinfo=SH), category="complaint")  # news: acknowledged
    acknowledgement = mailbox.to("wang@customer.example")[0]
    assert "p2" in str(acknowledgement["Subject"]) + acknowledgement.get_body(("plain",)).get_content()


def test_a_version_that_drops_a_category_open_requests_use_is_refused(acme, later):
    admin, agent = acme
    created = create(agent, "p2", category="complaint")
    without = copy.deepcopy(CONTRACT)
    del without["categories"]["complaint"]
    status, body = admin.put("/contracts/acme", without)
    assert status == 409 and created["request_id"] in body["Message"]
    assert admin.post(f"/requests/{created['request_id']}/events", {"type": "resolve"})[0] == 200
    assert admin.put("/contracts/acme", without)[0] == 200


def test_reports_and_their_csv_count_each_category(acme, later):
    admin, agent = acme
    on_time = create(agent, "p2", category="complaint")
    create(agent, "p2", category="complaint")  # never answered: its 15:00 first response breaches
    create(agent, "p2")  # no category: counted in the totals only
    assert agent.post(f"/requests/{on_time['request_id']}/events",
                      {"type": "respond", "at": "2026-11-23T11:00:00+08:00"})[0] == 200
    status, tally = admin.post("/contracts/acme/tallies", {"date": "2026-11-23"})
    assert status == 200, tally
    # The answered one misses its first progress update at 16:00 (4 h after 11:00, lunch skipped).
    assert tally["by_category"] == {"complaint": {"received": 2,
                                                  "breaches": {"first_response": 1, "progress_update": 1}}}
    status, report = admin.get("/contracts/acme/reports?month=2026-11")
    assert report["requests"]["received"] == 3 and report["breaches"]["first_response"] == 2
    assert report["by_category"] == {
        "complaint": {"received": 2, "breaches": {"first_response": 1, "progress_update": 1, "resolution": 0}},
        "inquiry": {"received": 0, "breaches": {"first_response": 0, "progress_update": 0, "resolution": 0}},
    }
    assert report["days"][0]["by_category"] == {"complaint": {"received": 2, "breaches": 2},
                                                "inquiry": {"received": 0, "breaches": 0}}
    with Client(app) as raw:
        response = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                headers={"Authorization": f"Bearer {admin.token}"})
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8"))))
    assert rows[0]["category.complaint.received"] == "2" and rows[0]["category.complaint.breaches"] == "2"
    assert rows[0]["category.inquiry.received"] == "0"
