"""POST /contracts/{id}/preview: the deadlines a request would get, checked like a request, nothing stored."""
import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.aws import outbox
from chalicelib.aws.tables import EventModel, NotificationModel, RequestModel
from conftest import DEMO_CONTRACT, ILLUSTRATIVE_CN_2027

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=SH)
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


def preview_of(document):
    """What a request document says about its deadlines, in the preview's shape."""
    return {"clock_started_at": document["clock_started_at"],
            "sla": {name: {"due_at": metric["due_at"], "provisional": metric["provisional"]}
                    for name, metric in document["sla"].items()}}


def test_the_preview_is_what_the_request_would_get_and_nothing_is_stored(acme, mailbox):
    admin, agent, client = acme
    with time_machine.travel(datetime(2026, 12, 31, 16, 30, tzinfo=SH), tick=False):
        status, preview = client.post("/contracts/acme/preview", {"priority": "high", "channel": "portal"})
        assert status == 200
        assert preview == {"clock_started_at": "2026-12-31T16:30:00+08:00", "sla": {
            # After hours on a short day: one hour into 4 January (New Year estimated), then 8 business hours.
            "first_response": {"due_at": "2027-01-04T10:00:00+08:00", "provisional": True},
            "progress_update": {"due_at": None, "provisional": False},
            "resolution": {"due_at": "2027-01-05T10:00:00+08:00", "provisional": True}}}
        assert admin.get("/requests?contract_id=acme")[1]["items"] == [] and mailbox.messages() == []
        assert RequestModel.count() == 0
        status, created = client.post("/requests", REQUEST)
        assert preview_of(created) == preview


def test_a_request_off_a_designated_channel_has_no_deadlines_yet(acme):
    _, agent, _ = acme
    with time_machine.travel(NOW, tick=False):
        status, preview = agent.post("/contracts/acme/preview", {"priority": "low", "channel": "wechat"})
    assert status == 200 and preview["clock_started_at"] is None
    assert all(metric == {"due_at": None, "provisional": False} for metric in preview["sla"].values())


def test_the_preview_follows_a_published_schedule(acme):
    admin, agent, _ = acme
    body = {"priority": "high", "received_at": "2027-02-04T16:00:00+08:00"}
    with time_machine.travel(datetime(2027, 2, 4, 16, 0, tzinfo=SH), tick=False):
        assert agent.post("/contracts/acme/preview", body)[1]["sla"]["first_response"] == {
            "due_at": "2027-02-11T10:00:00+08:00", "provisional": True}
        admin.put("/calendars/CN/2027", ILLUSTRATIVE_CN_2027)
        assert agent.post("/contracts/acme/preview", body)[1]["sla"]["first_response"] == {
            "due_at": "2027-02-05T10:00:00+08:00", "provisional": False}


def test_a_bad_preview_is_a_400_naming_the_field_as_for_a_request(acme, admin):
    _, agent, client = acme
    with time_machine.travel(NOW, tick=False):
        for token, body, field in [
            (agent, {}, "priority"),
            (agent, {"priority": "critical"}, "priority"),
            (agent, {"priority": "high", "received_at": "2026-11-28T11:00:00+08:00"}, "received_at"),
            (agent, {"priority": "high", "received_at": "2026-11-28 09:00"}, "received_at"),
            (client, {"priority": "high", "received_at": "2026-11-28T09:00:00+08:00"}, "received_at"),
            (agent, {"priority": "high", "channel": ""}, "channel"),
            (agent, {"priority": "high", "category": "complaint"}, "category"),
            (agent, {"priority": "high", "subject": "x"}, "subject"),
            (agent, ["high"], "body"),
        ]:
            status, answer = token.post("/contracts/acme/preview", body)
            assert status == 400 and answer["Message"].startswith(f"{field}:"), (body, answer)
        _, answer = agent.post("/contracts/acme/preview", {"priority": "high", "category": "complaint"})
        assert answer["Message"] == "category: the contract defines no categories"
        other = copy.deepcopy(DEMO_CONTRACT)
        assert admin.put("/contracts/other", other)[0] == 201
        assert agent.post("/contracts/other/preview", {"priority": "high"})[0] == 403
        assert admin.post("/contracts/nobody/preview", {"priority": "high"})[0] == 404


@pytest.fixture
def quiet_mail(monkeypatch):
    """The acknowledgements stay in the outbox: sending them is beside the point here, and slow in moto."""
    monkeypatch.setattr(outbox, "deliver_quietly", lambda entries, now: None)


EARLIEST = datetime(2025, 1, 1, tzinfo=SH)
SPAN_MINUTES = int((NOW - EARLIEST).total_seconds() // 60)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.integers(0, SPAN_MINUTES), priority=st.sampled_from(sorted(DEMO_CONTRACT["priorities"])),
       channel=st.sampled_from(["portal", "email", "hotline", "wechat"]))
def test_the_preview_matches_a_real_requests_deadlines(acme, quiet_mail, minutes, priority, channel):
    """100 random submissions received within the last two years, on any priority and channel."""
    _, agent, _ = acme
    received_at = (EARLIEST + timedelta(minutes=minutes)).isoformat()
    with time_machine.travel(NOW, tick=False):
        status, preview = agent.post("/contracts/acme/preview",
                                     {"priority": priority, "channel": channel, "received_at": received_at})
        assert status == 200, preview
        status, created = agent.post("/requests", {**REQUEST, "priority": priority, "channel": channel,
                                                   "received_at": received_at})
        assert status == 201, created
    assert preview == preview_of(created)
    # moto copies whole tables for each transaction: keep them small so the examples stay quick.
    for record in (RequestModel.get(created["request_id"]), EventModel(created["request_id"], 1),
                   NotificationModel(created["request_id"], "acknowledgement")):
        record.delete()
