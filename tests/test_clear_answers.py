"""What a newcomer reads back: every missing field named at once, a wrong month called wrong rather than
missing, and times in the contract's timezone (outages, an event earlier than the previous one)."""
import pytest

from chalicelib.core.errors import ValidationError
from conftest import contract_with_tokens, demo_contract


def test_a_request_missing_several_fields_is_told_each_by_its_path(acme):
    _, agent, _ = acme
    status, body = agent.post("/requests", {"channel": "portal", "requester": {"name": "张三"}})
    assert status == 400 and body["Code"] == "BadRequestError"
    assert body["Message"] == ("contract_id: is required; priority: is required; subject: is required; "
                               "requester.email: is required")
    status, body = agent.post("/requests", {})
    assert body["Message"] == ("contract_id: is required; priority: is required; channel: is required; "
                               "subject: is required; requester: is required")


def test_a_single_missing_field_keeps_its_one_line_message(acme):
    _, agent, _ = acme
    body = {"contract_id": "acme", "priority": "high", "channel": "portal", "requester": {"email": "a@b.example"}}
    assert agent.post("/requests", body) == (400, {"Code": "BadRequestError", "Message": "subject: is required",
                                                   "Errors": [{"Field": "subject", "Message": "is required"}]})
    assert agent.post("/contracts/acme/simulations", {"month": "2026-10"})[1]["Message"] == (
        "contract: is required: the full contract document to replay the month under")


def test_past_ten_missing_fields_the_rest_are_counted():
    problems = [(f"items[{i}].id", "is required") for i in range(13)]
    error = ValidationError.several(problems)
    assert error.field == "items[0].id" and error.problems == tuple(problems)
    assert error.message.count("is required") == 10 and error.message.endswith("items[9].id: is required; and 3 more")
    assert ValidationError.several(problems[:1]).message == "items[0].id: is required"


def test_a_contract_missing_fields_at_several_depths_names_them_all(admin):
    document = demo_contract()
    del document["name"]
    del document["priorities"]["high"]["first_response"]
    document["interactions"] = {"phone": {"hours": "business"}}
    document["webhooks"] = [{"url": "https://hooks.customer.example/sla"}]
    status, body = admin.put("/contracts/acme", document)
    assert status == 400
    assert body["Message"] == (
        "name: is required; priorities.high.first_response: is required; interactions.phone.answer_within: "
        "is required; interactions.phone.target: is required; webhooks[0].events: is required; "
        "webhooks[0].secret: is required")


def test_a_what_if_names_the_missing_fields_of_its_candidate_inside_contract(acme, clock):
    _, agent, _ = acme
    candidate = demo_contract()
    del candidate["name"], candidate["priorities"]["low"]["first_response"]
    status, body = agent.post("/contracts/acme/simulations", {"contract": candidate, "month": "2026-10"})
    assert status == 400
    assert body["Message"] == "contract.name: is required; contract.priorities.low.first_response: is required"
    status, body = agent.post("/contracts/acme/simulations", {"priorities": ["high"]})
    assert body["Message"].startswith("contract: is required: the full contract document")
    assert "; month: is required, as a month YYYY-MM from 2000-01 to 2100-12" in body["Message"]


def test_a_batch_of_interactions_names_every_missing_field_of_every_item(acme, clock):
    admin, agent, _ = acme
    document = demo_contract(interactions={"phone": {"answer_within": "60s", "target": 0.9}})
    assert admin.put("/contracts/acme", document)[0] == 200
    items = [{"id": "c-1", "channel": "phone"}, {"channel": "phone", "offered_at": None},
             {"id": "c-3", "channel": "phone", "offered_at": "2026-11-23T09:00:00+08:00"}]
    status, body = agent.post("/contracts/acme/interactions", {"items": items})
    assert status == 400
    assert body["Message"] == ("items[0].offered_at: is required; items[1].id: is required; "
                               "items[1].offered_at: is required")


@pytest.mark.parametrize("month, message", [
    ("2026-13", "month: 2026-13 is not a month (YYYY-MM)"),
    ("2026-1", "month: 2026-1 is not a month (YYYY-MM)"),
    ("October", "month: October is not a month (YYYY-MM)"),
    ("1999-12", "month: 1999-12 is outside the months from 2000-01 to 2100-12"),
])
def test_a_wrong_month_is_called_wrong_not_missing(acme, clock, month, message):
    _, agent, _ = acme
    field, _, said = message.partition(": ")
    assert agent.get(f"/contracts/acme/reports?month={month}") == (400, {
        "Code": "BadRequestError", "Message": message, "Errors": [{"Field": field, "Message": said}]})
    body = {"contract": demo_contract(), "month": month}
    assert agent.post("/contracts/acme/simulations", body)[1]["Message"] == message


def test_a_missing_month_is_still_required(acme, clock):
    _, agent, _ = acme
    assert agent.get("/contracts/acme/reports")[1]["Message"] == (
        "month: is required, as a month YYYY-MM from 2000-01 to 2100-12")
    assert agent.post("/contracts/acme/simulations", {"contract": demo_contract(), "month": 202610})[1][
        "Message"] == "month: must be a string, a month YYYY-MM"


def test_outages_come_back_in_the_contract_s_timezone(admin, clock):
    _, _, client = contract_with_tokens(admin, demo_contract(timezone="Europe/Berlin"), "berlin")
    sent = {"start": "2026-11-10T10:00:00+08:00", "end": "2026-11-10T11:30:00+08:00", "description": "机房断电"}
    status, body = admin.post("/contracts/berlin/outages", sent)
    assert status == 201
    assert body["outage"] == {"start": "2026-11-10T03:00:00+01:00", "end": "2026-11-10T04:30:00+01:00",
                              "description": "机房断电"}
    assert body["outages"] == [body["outage"]]
    assert client.get("/contracts/berlin/outages") == (200, {"outages": [body["outage"]]})


def test_an_event_earlier_than_the_previous_one_is_told_that_time_in_the_contract_s_timezone(acme, clock):
    _, agent, _ = acme
    created = agent.post("/requests", {"contract_id": "acme", "priority": "high", "channel": "portal",
                                       "subject": "系统无法登录", "requester": {"email": "zhang@customer.example"},
                                       "received_at": "2026-11-23T09:30:00+08:00"})[1]
    status, body = agent.post(f"/requests/{created['request_id']}/events",
                              {"type": "respond", "at": "2026-11-23T01:00:00Z"})
    assert status == 400
    assert body["Message"] == "at: must not precede the previous event (2026-11-23T09:30:00+08:00)"
