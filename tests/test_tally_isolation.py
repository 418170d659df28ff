"""nightly_tally in production: one contract that cannot be tallied never stops the others, and a run
that does not fit in one invocation goes on in the next (chalice.test.Client + moto + time-machine)."""
import copy
import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import boto3
import pytest
import time_machine
from chalice.test import Client

from app import app
from chalicelib import reporting
from chalicelib.aws import store
from chalicelib.aws.tables import ContractModel, TallyModel
from chalicelib.logs import JsonFormatter
from conftest import DEMO_CONTRACT

SH = ZoneInfo("Asia/Shanghai")
NIGHT = datetime(2026, 11, 24, 0, 5, tzinfo=SH)  # the cron's 16:05 UTC: tallies Monday 23 November


@pytest.fixture
def clock():
    with time_machine.travel(NIGHT, tick=False) as traveller:
        yield traveller


@pytest.fixture
def errors_logged():
    """The ERROR records of the tally's logger (sla_clock loggers do not propagate to the root logger;
    the calendar notices of the same nightly run log their own failures elsewhere)."""
    records = []
    handler = logging.Handler(level=logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("sla_clock.tally")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def contracts(admin, *ids):
    for contract_id in ids:
        assert admin.put(f"/contracts/{contract_id}", DEMO_CONTRACT)[0] == 201


def invoke(name, detail=None):
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", detail or {}, [],
                                                       region="us-east-1")
        return lambda_client.lambda_.invoke(name, event).payload


def tallied(result):
    return [(t["contract_id"], t["date"]) for t in result["tallies"]]


def corrupt_contract(contract_id, document):
    """A contract item as a bad migration or a bug could leave it, written past the API."""
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=ContractModel.Meta.table_name,
        Item={"contract_id": {"S": contract_id}, "version": {"N": "1"}, "document": {"S": document},
              "updated_at": {"S": "2026-11-01T00:00:00.000000+0000"}, "updated_by": {"S": "migration"}})


@pytest.mark.parametrize("document", ['{"name": "Bravo", "priorities": {', '{"name": 5, "priorities": {}}'],
                         ids=["not-json", "not-a-contract"])
def test_a_contract_that_cannot_be_tallied_is_logged_at_error_counted_and_the_others_are_tallied(
        admin, clock, errors_logged, document):
    contracts(admin, "alpha", "charlie")
    corrupt_contract("bravo", document)
    result = invoke("nightly_tally")
    assert tallied(result) == [("alpha", "2026-11-23"), ("charlie", "2026-11-23")]
    assert result["errors"] == 1 and result["remaining"] == 0
    [failure] = errors_logged
    assert failure.getMessage() == "tally failed" and failure.fields["contract_id"] == "bravo"
    line = json.loads(JsonFormatter().format(failure))  # what CloudWatch gets
    assert line["level"] == "ERROR" and line["contract_id"] == "bravo" and "Traceback" in line["exception"]
    assert store.tally_runs() == []  # the run is over


def test_a_run_out_of_time_leaves_its_place_and_the_continuation_tallies_the_rest_of_that_night(
        admin, clock, monkeypatch):
    contracts(admin, "alpha", "bravo", "charlie")
    monkeypatch.setattr(reporting, "RUN_BUDGET_S", 0)  # every invocation has time for one contract only
    first = invoke("nightly_tally")
    assert tallied(first) == [("alpha", "2026-11-23")] and first["remaining"] == 2
    clock.move_to(datetime(2026, 11, 24, 0, 10, tzinfo=SH))
    assert tallied(invoke("nightly_tally_continue")) == [("bravo", "2026-11-23")]
    clock.move_to(datetime(2026, 11, 25, 0, 4, tzinfo=SH))  # a late continuation still tallies the run's day
    last = invoke("nightly_tally_continue")
    assert tallied(last) == [("charlie", "2026-11-23")] and last["remaining"] == 0
    assert invoke("nightly_tally_continue") == {"tallies": [], "errors": 0, "remaining": 0, "personal_data_erased": 0}
    assert sorted((t.contract_id, t.day) for t in TallyModel.scan()) == [
        ("alpha", "2026-11-23"), ("bravo", "2026-11-23"), ("charlie", "2026-11-23")]


def test_running_a_night_again_rewrites_the_same_tallies(admin, clock, monkeypatch):
    contracts(admin, "alpha", "bravo")
    monkeypatch.setattr(reporting, "RUN_BUDGET_S", 0)
    in_pieces = invoke("nightly_tally")["tallies"] + invoke("nightly_tally_continue")["tallies"]
    monkeypatch.setattr(reporting, "RUN_BUDGET_S", 240)
    at_once = invoke("nightly_tally")
    assert at_once["tallies"] == in_pieces and at_once["remaining"] == 0
    assert len(list(TallyModel.scan())) == 2


class InvocationTimedOut(BaseException):
    """What Lambda does to a function at its timeout: nothing after it runs."""


def test_an_invocation_that_dies_in_a_contract_is_resumed_after_it_and_that_contract_counted_failed(
        admin, clock, monkeypatch, errors_logged):
    contracts(admin, "alpha", "bravo", "charlie")
    tally = reporting.tally_contract_day

    def dies_in_bravo(contract_id, *args):
        if contract_id == "bravo":
            raise InvocationTimedOut()
        return tally(contract_id, *args)

    monkeypatch.setattr(reporting, "tally_contract_day", dies_in_bravo)
    with pytest.raises(InvocationTimedOut):
        invoke("nightly_tally")
    assert invoke("nightly_tally_continue")["tallies"] == []  # its invocation may still be running
    clock.move_to(datetime(2026, 11, 24, 0, 10, tzinfo=SH))
    resumed = invoke("nightly_tally_continue")
    assert tallied(resumed) == [("charlie", "2026-11-23")] and resumed["errors"] == 1
    [failure] = errors_logged
    assert failure.fields["contract_id"] == "bravo" and "ended before it finished" in failure.fields["error"]
    assert store.tally_runs() == []


def test_a_backfill_event_for_one_contract_still_answers_with_its_tally(admin, clock):
    contracts(admin, "alpha", "bravo")
    result = invoke("nightly_tally", {"date": "2026-11-20", "contract_id": "bravo"})
    assert tallied(result) == [("bravo", "2026-11-20")] and result["errors"] == 0
    assert store.tally_runs() == []


def test_a_contract_that_breaks_only_in_the_tally_is_isolated_too(admin, clock, monkeypatch, errors_logged):
    contracts(admin, "alpha", "bravo")
    broken = copy.deepcopy(DEMO_CONTRACT)
    broken["name"] = "Bravo"
    assert admin.put("/contracts/bravo", broken)[0] == 200
    tally = reporting.tally_contract_day

    def bug_for_bravo(contract_id, policy, *args):
        if policy.name == "Bravo":
            raise KeyError("a bug")
        return tally(contract_id, policy, *args)

    monkeypatch.setattr(reporting, "tally_contract_day", bug_for_bravo)
    result = invoke("nightly_tally")
    assert tallied(result) == [("alpha", "2026-11-23")] and result["errors"] == 1
    assert errors_logged[0].fields["contract_id"] == "bravo" and "KeyError" in errors_logged[0].fields["error"]


def test_an_invocation_that_read_the_run_before_another_saved_it_stops_instead_of_tallying_twice(
        admin, clock, monkeypatch):
    contracts(admin, "alpha", "bravo", "charlie")
    monkeypatch.setattr(reporting, "RUN_BUDGET_S", 0)
    invoke("nightly_tally")
    as_read_before = store.tally_runs()  # a duplicate delivery of the schedule reads the run...
    assert tallied(invoke("nightly_tally_continue")) == [("bravo", "2026-11-23")]  # ...another goes on first
    monkeypatch.setattr(store, "tally_runs", lambda: as_read_before)
    assert invoke("nightly_tally_continue") == {"tallies": [], "errors": 0, "remaining": 0, "personal_data_erased": 0}
    monkeypatch.undo()
    assert [(run.after, run.current) for run in store.tally_runs()] == [("bravo", None)]
