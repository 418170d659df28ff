"""Reopen keeps a clock: a resolved request whose priority or category a later contract version dropped
is reopened on the targets it was resolved under (whoever reopens it: a client cannot reprioritize),
never as an open request without deadlines. End to end through chalice.test.Client + moto +
time-machine, and the rule in the pure core."""
import copy

import pytest
from test_scanner import ADMIN, PROVIDER, scan_at

from chalicelib.aws import store
from chalicelib.aws.tables import RequestModel
from chalicelib.core.errors import ConflictError
from chalicelib.core.policy import KeptTargets, kept_on_reopen, parse_contract
from conftest import DEMO_CONTRACT, contract_with_tokens, demo_contract, local

WITH_VIP = demo_contract(**{"priorities": {**DEMO_CONTRACT["priorities"],
                                           "vip": {"first_response": "1h", "resolution": "4h"}},
                            "categories": {"complaint": {"first_response": "4h", "resolution": "2wd"}}})
WITHOUT_VIP = copy.deepcopy(WITH_VIP)
del WITHOUT_VIP["priorities"]["vip"]
WITHOUT_COMPLAINT = copy.deepcopy(WITH_VIP)
del WITHOUT_COMPLAINT["categories"]


@pytest.fixture
def acme(admin):
    return contract_with_tokens(admin, WITH_VIP)


def post(caller, request_id, kind, **extra):
    status, body = caller.post(f"/requests/{request_id}/events", {"type": kind, **extra})
    assert status == 200, body
    return body


def resolved_at_eleven(agent, clock, priority, **extra):
    """A request received Monday 10:00, answered 10:30 and resolved 11:00 (an hour of its clock used)."""
    status, created = agent.post("/requests", {"contract_id": "acme", "priority": priority, "channel": "portal",
                                               "subject": "无法登录", "requester": {"email": "zhang@customer.example"},
                                               **extra})
    assert status == 201, created
    clock.move_to(local(23, 10, 30))
    post(agent, created["request_id"], "respond")
    clock.move_to(local(23, 11))
    post(agent, created["request_id"], "resolve")
    return created["request_id"]


def due(document, metric):
    return document["sla"][metric]["due_at"]


def test_a_client_reopening_a_request_whose_priority_was_dropped_keeps_its_resolved_targets(acme, clock, mailbox):
    admin, agent, client = acme
    request_id = resolved_at_eleven(agent, clock, "vip")
    assert admin.put("/contracts/acme", WITHOUT_VIP)[0] == 200  # no open request uses vip: allowed

    clock.move_to(local(23, 13))
    reopened = post(client, request_id, "reopen")
    assert reopened["status"] == "open" and reopened["priority"] == "vip"
    assert reopened["sla"] != {}
    # vip's 4 hours of resolution, one used before the resolve: three more from the reopen at 13:00.
    assert due(reopened, "resolution") == "2026-11-23T16:00:00+08:00"
    assert reopened["sla"]["resolution"]["remaining_minutes"] == 180
    assert reopened["sla"]["first_response"]["met_at"] == "2026-11-23T10:30:00+08:00"
    assert reopened["next_due_at"] == "2026-11-23T16:00:00+08:00"
    assert store.get_request(request_id).next_check_at is not None  # the scanner watches it
    assert agent.get(f"/requests/{request_id}")[1]["sla"] == reopened["sla"]

    # Its deadline is warned about and alerted like any other.
    scan_at(clock, local(23, 16, 1))
    assert "breach|resolution|0" in mailbox.keys()
    [alert] = [m for m in mailbox.messages() if "breach|resolution|0" in str(m["X-SLA-Notification"])]
    assert PROVIDER in str(alert["To"]) and ADMIN in str(alert["To"])
    assert client.get(f"/requests/{request_id}")[1]["penalty"]["amount"] == 500  # one started day late

    # An agent may move it onto the contract's current targets: high's 8 hours from 10:00, less the stop.
    moved = post(agent, request_id, "reprioritize", priority="high")
    assert due(moved, "resolution") == "2026-11-24T12:00:00+08:00"


def test_a_reopen_after_the_category_was_dropped_keeps_the_categorys_targets(acme, clock):
    admin, agent, client = acme
    request_id = resolved_at_eleven(agent, clock, "high", category="complaint")
    assert admin.put("/contracts/acme", WITHOUT_COMPLAINT)[0] == 200

    clock.move_to(local(23, 13))
    reopened = post(client, request_id, "reopen")
    # complaint's 2 working days (14 business hours) from Monday 10:00, plus the hour stopped
    # resolved (11:00-12:00; lunch does not count): Wednesday 11:00, not high's Tuesday 12:00.
    assert due(reopened, "resolution") == "2026-11-25T11:00:00+08:00"
    assert reopened["category"] == "complaint" and reopened["sla"] != {}

    # Resolved and reopened again under the same version: still the targets it was first resolved under.
    clock.move_to(local(23, 14))
    post(agent, request_id, "resolve")
    clock.move_to(local(23, 15))
    again = post(client, request_id, "reopen")
    assert due(again, "resolution") == "2026-11-25T12:00:00+08:00"  # one more business hour stopped


def test_a_version_that_defines_the_priority_again_gives_the_reopened_request_its_targets(acme, clock):
    admin, agent, client = acme
    request_id = resolved_at_eleven(agent, clock, "vip")
    assert admin.put("/contracts/acme", WITHOUT_VIP)[0] == 200
    slower = copy.deepcopy(WITH_VIP)
    slower["priorities"]["vip"]["resolution"] = "5h"
    assert admin.put("/contracts/acme", slower)[0] == 200
    clock.move_to(local(23, 13))
    assert due(post(client, request_id, "reopen"), "resolution") == "2026-11-23T17:00:00+08:00"
    assert store.get_request(request_id).kept_targets is None


def test_a_kept_request_replays_in_the_what_if_as_it_runs(acme, clock):
    admin, agent, client = acme
    request_id = resolved_at_eleven(agent, clock, "vip")
    assert admin.put("/contracts/acme", WITHOUT_VIP)[0] == 200
    clock.move_to(local(23, 13))
    post(client, request_id, "reopen")
    clock.move_to(local(23, 18))
    status, body = admin.post("/contracts/acme/simulations", {"contract": WITHOUT_VIP, "month": "2026-11"})
    assert status == 200, body
    assert (body["changed"], body["changed_total"]) == ([], 0)
    assert body["current"]["breaches"]["resolution"] == 1  # due 16:00 on the targets it kept


def test_a_request_resolved_without_targets_is_not_reopened_without_a_clock(acme, clock):
    """Data from before targets were kept: a request resolved under a version that lacked its priority
    (pinned to it here by hand) has nothing to keep. Its reopen is a 409 naming the field, not an open
    request without deadlines."""
    admin, agent, client = acme
    request_id = resolved_at_eleven(agent, clock, "vip")
    assert admin.put("/contracts/acme", WITHOUT_VIP)[0] == 200
    RequestModel.get(request_id).update(actions=[RequestModel.contract_version.set(2)])
    clock.move_to(local(23, 13))
    status, body = client.post(f"/requests/{request_id}/events", {"type": "reopen"})
    assert status == 409 and body["Message"].startswith("priority: the contract no longer defines priority 'vip'")
    assert agent.get(f"/requests/{request_id}")[1]["status"] == "resolved"


# --- the rule, in the pure core ------------------------------------------------------------------

OLD = parse_contract(WITH_VIP, version=1)[1]
NO_VIP = parse_contract(WITHOUT_VIP, version=2)[1]
NO_COMPLAINT = parse_contract(WITHOUT_COMPLAINT, version=2)[1]


def test_nothing_is_kept_while_the_latest_version_defines_the_priority_and_category():
    assert kept_on_reopen(OLD, OLD, "vip", "complaint") is None
    assert kept_on_reopen(NO_VIP, OLD, "high", None) is None


def test_the_resolved_targets_are_kept_for_a_dropped_priority_or_category():
    kept = kept_on_reopen(NO_VIP, OLD, "vip", None)
    assert kept == KeptTargets("vip", None, OLD.priorities["vip"])
    assert NO_VIP.targets("vip", None, kept) == OLD.priorities["vip"]
    assert NO_VIP.targets("high", None, kept) == NO_VIP.priorities["high"]  # reprioritized: the contract's
    kept = kept_on_reopen(NO_COMPLAINT, OLD, "high", "complaint")
    assert kept.targets == OLD.targets("high", "complaint") != NO_COMPLAINT.targets("high", "complaint")
    assert KeptTargets.from_document(kept.as_document()) == kept
    # Once resolved under the version that lacks them, what it kept is what it keeps.
    assert kept_on_reopen(NO_COMPLAINT, NO_COMPLAINT, "high", "complaint", kept) == kept


def test_a_request_resolved_without_targets_is_refused_naming_the_field():
    with pytest.raises(ConflictError, match=r"^priority: .*'vip'"):
        kept_on_reopen(NO_VIP, NO_VIP, "vip", None)
