"""Hypothesis-generated timelines through the whole stack: any sequence of events at any times, read,
scanned and tallied at any moment, never fails with a server error and keeps the clock's invariants."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import scanner
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 9, 28, 8, 0, tzinfo=SH)  # a fortnight that runs into National Day
EVENTS = ["respond", "progress", "await_customer", "customer_reply", "reprioritize", "register", "resolve",
          "reopen", "rate"]

PRIORITIES = list(DEMO_CONTRACT["priorities"])
steps = st.lists(st.tuples(st.sampled_from(EVENTS), st.integers(0, 36 * 60), st.sampled_from(PRIORITIES),
                           st.integers(1, 5)), max_size=8)


# Every example's request stays in the tables, so each scan and tally reads all earlier ones too: the
# cost grows with the square of the examples, and 20 of them take a third of what 40 did.
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(priority=st.sampled_from(PRIORITIES), channel=st.sampled_from(["portal", "wechat"]),
       received=st.integers(0, 10 * 24 * 60), steps=steps, read_after=st.integers(0, 20 * 24 * 60))
def test_any_timeline_reads_scans_and_tallies_without_a_server_error(acme, priority, channel, received, steps,
                                                                      read_after):
    admin, _, _ = acme
    received_at = START + timedelta(minutes=received)
    at = received_at
    with time_machine.travel(received_at + timedelta(days=60), tick=False):
        status, created = admin.post("/requests", {
            "contract_id": "acme", "priority": priority, "channel": channel, "subject": "生成的时间线",
            "requester": {"email": "gen@customer.example"}, "received_at": received_at.isoformat()})
        assert status == 201, created
        path = f"/requests/{created['request_id']}"
        for kind, minutes, new_priority, score in steps:
            at += timedelta(minutes=minutes)
            body = {"type": kind, "at": at.isoformat(), "note": "自动生成"}
            if kind == "reprioritize":
                body["priority"] = new_priority
            if kind == "rate":
                body["score"] = score
            status, answer = admin.post(f"{path}/events", body)
            assert status in (200, 409), (body, answer)
    moment = received_at + timedelta(minutes=read_after)
    with time_machine.travel(max(moment, at), tick=False):
        status, document = admin.get(path)
        assert status == 200, document
        for metric in document["sla"].values():
            if metric["breached"] and metric["met_at"] is None and metric["remaining_minutes"] is not None:
                assert metric["remaining_minutes"] < 0
            if metric["due_at"] and metric["met_at"] and not metric["breached"]:
                assert metric["met_at"] <= metric["due_at"] or metric.get("misses") is not None
        scanner.scan(max(moment, at))
        status, tally = admin.post("/contracts/acme/tallies", {"date": max(moment, at).date().isoformat()})
        assert status == 200, tally
