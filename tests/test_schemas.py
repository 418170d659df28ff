"""The bodies the API accepts are declared once (chalicelib/core/schemas.py): a 400 lists every problem
the declaration finds, up to 10, each by its path; types are strict; and the spec and the docs' field
tables are what the generator writes from the same models."""
import importlib.util
import json
from pathlib import Path

import pytest

from chalicelib import openapi
from chalicelib.core import intake, schemas
from chalicelib.core.errors import ValidationError
from chalicelib.core.policy import parse_contract
from conftest import demo_contract

ROOT = Path(__file__).resolve().parent.parent


def generator():
    spec = importlib.util.spec_from_file_location("generate_openapi", ROOT / "scripts" / "generate_openapi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Thirteen wrong fields at every depth of a contract: the 400 names the first ten and counts the rest.
THIRTEEN_WRONG = {
    "name": 7,
    "warn_at": [0.5, 1],
    "resolution_from": "now",
    "priorities": {"high": {"first_response": "soon", "clock": "24/7"}, "Bad Name": {"first_response": "1h"}},
    "penalties": {"currency": "yuan", "monthly_cap": -1},
    "kpi": {"availability": "0.99"},
    "notify": {"provider": ["ops@provider.example", "not an address"], "language": "fr"},
    "webhooks": [{"url": "https://hooks.example/sla", "events": ["breach", "lunch"], "secret": "s" * 16}],
    "retention": {"personal_data_days": True},
}


def test_a_contract_with_thirteen_wrong_fields_is_one_400_listing_ten_by_path_and_counting_three(admin):
    status, body = admin.put("/contracts/acme", THIRTEEN_WRONG)
    assert status == 400 and body["Code"] == "BadRequestError"
    fields = [error["Field"] for error in body["Errors"]]
    assert fields == ["name", "warn_at[1]", "resolution_from", "priorities.high.first_response",
                      "priorities.high.clock", "priorities.Bad Name", "penalties.currency", "penalties.monthly_cap",
                      "kpi.availability", "notify.provider[1]"]
    assert body["Message"].startswith("name: must be a string; warn_at[1]: must be < 1; resolution_from: must be "
                                      "one of received, first_response; ")
    assert body["Message"].endswith("; and 3 more")
    assert [f"{e['Field']}: {e['Message']}" for e in body["Errors"]] == body["Message"].split("; ")[:10]


def test_every_problem_is_named_in_full_up_to_ten_in_the_error_itself():
    with pytest.raises(ValidationError) as caught:
        parse_contract(THIRTEEN_WRONG)
    assert [field for field, _ in caught.value.problems][10:] == [
        "notify.language", "webhooks[0].events[1]", "retention.personal_data_days"]


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"kpi": {"availability": "0.99"}}, "kpi.availability", "must be a number"),
    ({"warn_at": [True]}, "warn_at[0]", "must be a number"),
    ({"name": 5}, "name", "must be a string"),
    ({"retention": {"personal_data_days": "30"}}, "retention.personal_data_days",
     "must be a whole number of days from 1 to 3650, or null to keep it"),
    ({"retention": {"personal_data_days": 30.0}}, "retention.personal_data_days",
     "must be a whole number of days from 1 to 3650, or null to keep it"),
    ({"interactions": {"phone": {"answer_within": 60, "target": 0.9}}}, "interactions.phone.answer_within",
     'must be a duration string such as "30s", "30m", "2h" or "5wd"'),
    ({"notify": {"provider": "ops@provider.example"}}, "notify.provider", "must be a list of e-mail addresses"),
    ({"penalties": {"late_progress": float("nan")}}, "penalties.late_progress", "must be a number"),
])
def test_values_are_not_coerced_a_string_is_no_number_and_a_number_no_string(admin, changes, field, message):
    status, body = admin.put("/contracts/acme", demo_contract(**changes))
    assert status == 400 and body["Errors"] == [{"Field": field, "Message": message}], body


def test_a_whole_amount_stays_whole_in_the_stored_document():
    document, policy = parse_contract(demo_contract(penalties={"late_first_response": 200, "late_progress": 12.5}))
    assert json.dumps(document["penalties"]) == '{"currency": "CNY", "late_first_response": 200, "late_progress": 12.5}'
    assert policy.penalties.late_first_response == 200
    assert (policy.penalties.late_resolution_per_day, policy.penalties.monthly_cap) == (0, None)  # unset: the defaults


def test_an_event_score_of_another_type_is_refused_naming_score(acme):
    admin, _, _ = acme
    status, created = admin.post("/requests", {"contract_id": "acme", "priority": "high", "channel": "portal",
                                               "subject": "s", "requester": {"email": "a@customer.example"}})
    assert status == 201
    for score in ("5", 4.0, True):
        status, body = admin.post(f"/requests/{created['request_id']}/events", {"type": "rate", "score": score})
        assert (status, body["Errors"]) == (400, [{"Field": "score", "Message": "must be a whole number from 1 to 5"}])


def test_a_request_body_lists_each_wrong_field_of_its_requester_and_text(acme):
    _, agent, _ = acme
    status, body = agent.post("/requests", {"contract_id": "acme", "priority": "high", "channel": " ",
                                            "subject": "", "requester": {"email": "x", "name": 3}, "colour": 1})
    assert status == 400
    assert [error["Field"] for error in body["Errors"]] == [  # an unknown key first: likely a misspelt one
        "colour", "channel", "subject", "requester.email", "requester.name"]


def test_the_committed_spec_and_doc_tables_are_what_the_generator_writes():
    stale = [str(path.relative_to(ROOT)) for path, text in generator().outputs().items()
             if path.read_text("utf-8") != text]
    assert not stale, f"run `make openapi`: {stale} differ from what scripts/generate_openapi.py writes"


def test_the_generator_check_fails_on_a_hand_edit(tmp_path, monkeypatch):
    module = generator()
    edited = tmp_path / "openapi.yaml"
    edited.write_text(openapi.SPEC_PATH.read_text("utf-8").replace("maxLength: 200", "maxLength: 300", 1))
    monkeypatch.setattr(module, "SPEC", edited)
    monkeypatch.setattr(module, "DOCS", ())
    monkeypatch.setattr("sys.argv", ["generate_openapi.py", "--check"])
    with pytest.raises(SystemExit, match="out of date"):
        module.main()
    assert "maxLength: 300" in edited.read_text("utf-8")


def test_the_spec_components_of_the_bodies_come_from_the_models():
    components = openapi.document()["components"]["schemas"]
    assert components["EventInput"]["properties"]["type"]["enum"] == list(intake.POSTABLE_EVENTS)
    assert set(intake.POSTABLE_EVENTS) < set(components["EventType"]["enum"])  # a timeline also holds `received`
    contract = components["ContractInput"]
    assert list(contract["properties"]) == list(schemas.ContractInput.model_fields)
    assert contract["required"] == ["name", "priorities"] and contract["additionalProperties"] is False
    assert components["RequestInput"]["properties"]["requester"] == {
        "$ref": "#/components/schemas/Requester", "description": "the customer who asked"}


def test_the_400_example_of_api_md_is_what_the_api_answers(admin):
    text = (ROOT / "docs" / "api.md").read_text("utf-8")
    shown = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    document = demo_contract()
    document["priorities"]["high"]["clock"] = "24/7"
    document["notify"] = {**document.get("notify", {}), "provider": ["ops@provider.example", "ops"]}
    assert admin.put("/contracts/demo", document) == (400, shown)


def test_a_batch_names_every_rule_each_of_its_items_breaks(acme, clock):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", demo_contract(interactions={"phone": {"answer_within": "60s",
                                                                               "target": 0.9}}))[0] == 200
    items = [{"id": "c-1", "channel": "fax", "offered_at": "2026-11-23T09:00:00+08:00"},
             {"id": "c-1", "channel": "phone", "offered_at": "2026-11-23T09:00:00+08:00",
              "answered_at": "2026-11-23T08:00:00+08:00"}]
    status, body = agent.post("/contracts/acme/interactions", {"items": items})
    assert status == 400 and [error["Field"] for error in body["Errors"]] == [
        "items[0].channel", "items[1].answered_at", "items[1].id"]


def test_a_contract_breaking_several_rules_across_fields_is_told_each(admin):
    document = demo_contract()
    document["priorities"]["high"]["resolution"] = "401wd"
    document["off_hours_first_response"] = "401wd"
    document["notify"] = {**document["notify"], "customer_reports": [f"c{i}@customer.example" for i in range(51)]}
    status, body = admin.put("/contracts/acme", document)
    assert status == 400 and [error["Field"] for error in body["Errors"]] == [
        "priorities.high.resolution", "off_hours_first_response", "notify.customer_reports"]


def test_a_request_is_told_every_rule_of_the_contract_and_role_it_breaks(acme):
    _, _, client = acme
    status, body = client.post("/requests", {"contract_id": "acme", "priority": "p9", "category": "x",
                                             "channel": "portal", "subject": "s",
                                             "requester": {"email": "a@customer.example"},
                                             "received_at": "2026-11-23T09:00:00+08:00"})
    assert status == 400 and [error["Field"] for error in body["Errors"]] == ["priority", "category", "received_at"]
