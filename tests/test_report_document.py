"""The monthly report is declared once (chalicelib/core/report.py): the JSON and CSV a month answers are
pinned to the byte, every report the core builds is an instance of the declaration, the CSV's columns
are the day row's fields in order, and the spec's `Report` schemas are generated from the models."""
import copy
import json
from datetime import datetime, timedelta
from typing import get_origin
from zoneinfo import ZoneInfo

import pytest
import test_schemas
import time_machine
import yaml
from chalice.test import Client
from pydantic import ValidationError as PydanticError
from test_interactions import call

from app import app
from chalicelib import openapi
from chalicelib.core.report import CategoryDay, ChannelDay, Report, ReportDay
from chalicelib.core.tally import report_csv
from conftest import DEMO_CONTRACT, contract_with_tokens

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=SH)
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["categories"] = {"complaint": {"first_response": "4h"}, "inquiry": {"progress_every": "1h"}}
CONTRACT["penalties"] |= {"late_progress": 12.5, "monthly_cap": 2500}  # amounts to the cent, a cap reached
CONTRACT["interactions"] = {"phone": {"answer_within": "60s", "target": 0.9},
                            "chat": {"answer_within": "30s", "target": 0.9, "hours": "24x7"}}

# What the month answered before the report was declared as models: the same bytes since.
PINNED_JSON = (
    '{"contract_id":"acme","month":"2026-11","currency":"CNY","requests":{"received":8,"responded":6,"res'
    'olved":2},"breaches":{"first_response":3,"progress_update":63,"resolution":2},"on_time_rate":{"high"'
    ':{"first_response":1.0,"resolution":1.0},"low":{"first_response":0.0},"medium":{"first_response":1.0'
    '},"urgent":{"first_response":0.0,"resolution":0.0}},"penalties":{"total":2500,"capped":true},"kpi":{'
    '"availability":{"actual":0.9944,"target":0.995,"met":false},"satisfaction":{"actual":0.5,"target":0.'
    '9,"met":false},"resolution_rate":{"actual":0.25,"target":0.95,"met":false},"service_level":{"chat":{'
    '"actual":1.0,"target":0.9,"met":true},"phone":{"actual":0.5,"target":0.9,"met":false}}},"interaction'
    's":{"chat":{"offered":1,"answered":1,"answered_within":1,"abandoned":0,"callbacks":0,"average_answer'
    '_seconds":20.0,"p90_answer_seconds":20},"phone":{"offered":3,"answered":2,"answered_within":1,"aband'
    'oned":1,"callbacks":0,"average_answer_seconds":67.5,"p90_answer_seconds":90}},"by_category":{"compla'
    'int":{"received":2,"breaches":{"first_response":0,"progress_update":0,"resolution":0}},"inquiry":{"r'
    'eceived":2,"breaches":{"first_response":0,"progress_update":17,"resolution":0}}},"days":[{"date":"20'
    '26-11-23","received":4,"responded":3,"resolved":1,"breaches":18,"penalties":900,"penalties_before_ca'
    'p":900,"by_category":{"complaint":{"received":1,"breaches":0},"inquiry":{"received":1,"breaches":5}}'
    ',"interactions":{"chat":{"offered":1,"answered":1,"answered_within":1,"abandoned":0,"service_level":'
    '1.0,"callbacks":0},"phone":{"offered":3,"answered":2,"answered_within":1,"abandoned":1,"service_leve'
    'l":0.5,"callbacks":0}}},{"date":"2026-11-24","received":4,"responded":3,"resolved":1,"breaches":50,"'
    'penalties":1600,"penalties_before_cap":1987.5,"by_category":{"complaint":{"received":1,"breaches":0}'
    ',"inquiry":{"received":1,"breaches":12}},"interactions":{"chat":{"offered":0,"answered":0,"answered_'
    'within":0,"abandoned":0,"service_level":null,"callbacks":0},"phone":{"offered":0,"answered":0,"answe'
    'red_within":0,"abandoned":0,"service_level":null,"callbacks":0}}}]}')
PINNED_CSV = (
    'date,received,responded,resolved,breaches,penalties,penalties_before_cap,category.complaint.received'
    ',category.complaint.breaches,category.inquiry.received,category.inquiry.breaches,interactions.chat.o'
    'ffered,interactions.chat.answered,interactions.chat.answered_within,interactions.chat.abandoned,inte'
    'ractions.chat.service_level,interactions.chat.callbacks,interactions.phone.offered,interactions.phon'
    'e.answered,interactions.phone.answered_within,interactions.phone.abandoned,interactions.phone.servic'
    'e_level,interactions.phone.callbacks\r\n2026-11-23,4,3,1,18,900,900,1,0,1,5,1,1,1,0,1.0,0,3,2,1,1,0.5,'
    '0\r\n2026-11-24,4,3,1,50,1600,1987.5,1,0,1,12,0,0,0,0,,0,0,0,0,0,,0\r\n')


@pytest.fixture
def month(admin):
    """November 2026 of a contract with categories and channels: requests answered, resolved, rated and
    late over two tallied days, calls and chats, an outage. Yields the admin."""
    with time_machine.travel(datetime(2026, 11, 30, 12, tzinfo=SH), tick=False):
        admin, agent, client = contract_with_tokens(admin, CONTRACT)
        for day, offset in ((MONDAY_10, 0), (MONDAY_10 + timedelta(days=1), 1)):
            _requests_of(agent, client, day, offset)
        calls = [call("c1", MONDAY_10, answered=45), call("c2", MONDAY_10 + timedelta(minutes=5), answered=90),
                 call("c3", MONDAY_10 + timedelta(minutes=6), abandoned=10),
                 call("h1", MONDAY_10 - timedelta(hours=7), answered=20, channel="chat")]
        assert agent.post("/contracts/acme/interactions", {"items": calls})[0] == 200
        assert admin.post("/contracts/acme/outages", {"start": "2026-11-10T10:00:00+08:00",
                                                      "end": "2026-11-10T14:00:00+08:00",
                                                      "description": "数据库故障"})[0] == 201
        for date in ("2026-11-23", "2026-11-24"):
            assert admin.post("/contracts/acme/tallies", {"date": date})[0] == 200
        yield admin


def _requests_of(agent, client, received, offset):
    """Four requests received at `received`: a complaint answered and resolved (rated 5, or 2 the second
    day), an inquiry answered but never updated, one of no category never answered, an urgent one."""
    ids = []
    for priority, category in (("high", "complaint"), ("medium", "inquiry"), ("low", None), ("urgent", None)):
        body = {"contract_id": "acme", "priority": priority, "channel": "portal", "subject": "打印机坏了",
                "requester": {"email": "li@customer.example"}, "received_at": received.isoformat()}
        status, created = agent.post("/requests", body | ({"category": category} if category else {}))
        assert status == 201, created
        ids.append(created["request_id"])
    events = [(ids[0], {"type": "respond", "at": (received + timedelta(minutes=30)).isoformat()}),
              (ids[0], {"type": "resolve", "at": (received + timedelta(hours=3)).isoformat()}),
              (ids[1], {"type": "respond", "at": (received + timedelta(hours=1)).isoformat()}),
              (ids[3], {"type": "respond", "at": (received + timedelta(hours=2)).isoformat()})]
    for request_id, event in events:
        assert agent.post(f"/requests/{request_id}/events", event)[0] == 200
    with time_machine.travel(received + timedelta(hours=4), tick=False):  # a rating is given when it is posted
        assert client.post(f"/requests/{ids[0]}/events", {"type": "rate", "score": 5 - 3 * offset})[0] == 200


def _answer(admin, query):
    with time_machine.travel(datetime(2026, 12, 1, 9, tzinfo=SH), tick=False), Client(app) as raw:
        response = raw.http.get(f"/contracts/acme/reports?month=2026-11{query}",
                                headers={"Authorization": f"Bearer {admin.token}"})
    assert response.status_code == 200, response.body
    return response.headers["Content-Type"], response.body.decode("utf-8")


def test_the_json_and_the_csv_of_a_month_are_the_bytes_they_were(month):
    assert _answer(month, "") == ("application/json; charset=utf-8", PINNED_JSON)
    assert _answer(month, "&format=csv") == ("text/csv; charset=utf-8", PINNED_CSV)


def _declared(document):
    """`document` as the declaration reads and writes it back: the same JSON, keys in the same order,
    only when every field is declared, of its type, in its place."""
    return json.dumps(Report.model_validate(document).model_dump(mode="json"), ensure_ascii=False)


def test_the_report_of_a_month_is_the_declared_document_field_for_field_in_order(month):
    assert _declared(json.loads(PINNED_JSON)) == json.dumps(json.loads(PINNED_JSON), ensure_ascii=False)
    with time_machine.travel(datetime(2026, 12, 1, 9, tzinfo=SH), tick=False):
        status, empty = month.get("/contracts/acme/reports?month=2026-10")
    assert status == 200 and empty["days"] == []
    assert _declared(empty) == json.dumps(empty, ensure_ascii=False)


def test_a_field_the_core_adds_without_declaring_it_fails_the_declaration(month):
    document = json.loads(PINNED_JSON)
    document["days"][0]["median_first_response"] = 30
    with pytest.raises(PydanticError, match="days.0.median_first_response"):
        Report.model_validate(document)
    del document["days"][0]["median_first_response"], document["penalties"]["capped"]
    with pytest.raises(PydanticError, match="penalties.capped"):
        Report.model_validate(document)


def test_the_csv_columns_are_a_day_rows_fields_in_declared_order_per_name_ones_spread():
    header = PINNED_CSV.split("\r\n", 1)[0].split(",")
    scalars = [name for name, info in ReportDay.model_fields.items() if get_origin(info.annotation) is not dict]
    assert header[:len(scalars)] == scalars
    assert header[len(scalars):] == [
        *(f"category.{name}.{key}" for name in ("complaint", "inquiry") for key in CategoryDay.model_fields),
        *(f"interactions.{name}.{key}" for name in ("chat", "phone") for key in ChannelDay.model_fields)]


def test_a_day_row_holding_a_value_the_declaration_lacks_is_refused_not_dropped_from_the_csv():
    document = json.loads(PINNED_JSON)
    document["days"][1]["interactions"]["phone"]["median_answer_seconds"] = 12
    with pytest.raises(ValueError, match="median_answer_seconds"):
        report_csv(document)
    del document["days"][1]["interactions"]["phone"]["median_answer_seconds"]
    assert report_csv(document) == PINNED_CSV


def test_the_specs_report_schemas_are_generated_from_the_models_not_written_by_hand():
    generator = test_schemas.generator()
    generated, source = generator.components(), yaml.safe_load(generator.SOURCE.read_text("utf-8"))
    source = source["components"]["schemas"]
    spec = openapi.document()["components"]["schemas"]
    parts = ("Report", "ReportDay", "BreachCounts", "OnTimeRate", "PenaltyTotal", "KpiResult")
    assert all(name in generated and name not in source and spec[name] == generated[name] for name in parts)
    assert list(spec["ReportDay"]["properties"]) == list(ReportDay.model_fields)
    assert spec["Report"]["properties"]["days"]["items"] == {"$ref": "#/components/schemas/ReportDay"}


@pytest.mark.parametrize("model", [Report, ReportDay])
def test_every_field_the_docs_table_lists_says_what_it_is(model):
    assert [name for name, info in model.model_fields.items() if not info.description] == []
