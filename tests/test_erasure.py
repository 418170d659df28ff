"""Personal data under the PIPL: an admin erases a requester's personal data on request
(POST /contracts/{id}/erasures), and a contract's retention erases it from resolved requests in the
nightly run. Afterwards no table, index or log line holds the address, the name, the subject, the
description or a note, and every report reads the same."""
import importlib.util
import json
import logging
import os
import zlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import botocore.client
import pytest
import time_machine
from botocore.exceptions import ClientError
from chalice.test import Client
from test_webhooks import ALL_EVENTS, SECRET

from app import app
from chalicelib import erasures, settings
from chalicelib.aws.tables import MODELS, NotificationModel
from chalicelib.core.personal_data import requester_key
from chalicelib.logs import JsonFormatter
from conftest import contract_with_tokens, demo_contract, local

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
REQUESTER, NAME = "Zhang.San@Customer.example", "张三丰"
OTHER = "li@customer.example"
SUBJECT, DESCRIPTION, NOTE = "无法登录财务系统", "密码重置后仍然报错 E-4711", "已电话联系张三丰 13800138000"
SECRETS = (REQUESTER.lower(), NAME, SUBJECT, DESCRIPTION, NOTE, "13800138000")
_spec = importlib.util.spec_from_file_location("ses_event_script", ROOT / "scripts" / "ses_event.py")
ses_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ses_script)


def new_request(token, email=REQUESTER, name=NAME, headers=None, **extra):
    body = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": SUBJECT,
            "description": DESCRIPTION, "requester": {"name": name, "email": email}, **extra}
    status, created = token.post("/requests", body, headers=headers)
    assert status == 201, created
    return created["request_id"]


def post(token, request_id, kind, **extra):
    status, body = token.post(f"/requests/{request_id}/events", {"type": kind, **extra})
    assert status == 200, body
    return body


def invoke(name, clock=None, when=None):
    if when is not None:
        clock.move_to(when)
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [], region="us-east-1")
        return lambda_client.lambda_.invoke(name, event).payload


def publish(message):
    with Client(app) as lambda_client:
        event = lambda_client.events.generate_sns_event(message=json.dumps(message))
        return lambda_client.lambda_.invoke("ses_events", event).payload["outcome"]


def _readable(value):
    """A binary attribute as text: a packed timeline is zlib after its format byte."""
    for start in (1, 0):
        try:
            return zlib.decompress(value[start:]).decode("latin-1")
        except zlib.error:
            pass
    return value.decode("latin-1")


def everything_stored():
    """Every item of every table and of every index of each, as moto answers Scan: what AWS would hold."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    found = {}
    for model in MODELS:
        table = model.Meta.table_name
        indexes = [None] + [index["IndexName"] for index in
                            client.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])]
        for index in indexes:
            pages = client.get_paginator("scan").paginate(TableName=table, **({"IndexName": index} if index else {}))
            found[(table, index)] = sorted(json.dumps(item, sort_keys=True, ensure_ascii=False, default=_readable)
                                            for page in pages for item in page["Items"])
    return found


def holding(stored, *secrets):
    """The (table, index) places whose items hold any of `secrets` (compared in lower case)."""
    return sorted({place for place, items in stored.items() for item in items
                   for secret in secrets if secret.lower() in item.lower()}, key=str)


class Lines(logging.Handler):
    """Every log line the functions write, formatted as they reach CloudWatch."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines():
    handler = Lines()
    logger = logging.getLogger("sla_clock")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def clock():
    with time_machine.travel(local(23, 10), tick=False) as traveller:
        yield traveller


@pytest.fixture
def acme(admin, clock, local_receiver):
    document = demo_contract(**{"notify.customer_reports": ["boss@customer.example"]})
    document["webhooks"] = [{"url": local_receiver.url, "events": ALL_EVENTS, "secret": SECRET}]
    return contract_with_tokens(admin, document)


def reports(admin, agent):
    """What the provider reads about November: a day's tally, the month as JSON and CSV, and a what-if."""
    status, tally = admin.post("/contracts/acme/tallies", {"date": "2026-11-23"})
    assert status == 200, tally
    status, month = admin.get("/contracts/acme/reports?month=2026-11")
    assert status == 200, month
    with Client(app) as raw:
        csv = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                           headers={"Authorization": f"Bearer {admin.token}"}).body.decode("utf-8")
    status, contract = admin.get("/contracts/acme")
    candidate = {key: value for key, value in contract.items()
                 if key not in ("contract_id", "version", "updated_at", "calendar_years")}
    candidate["webhooks"] = []
    status, whatif = agent.post("/contracts/acme/simulations", {"contract": candidate, "month": "2026-11"})
    assert status == 200, whatif
    tally.pop("computed_at", None)
    return tally, month, csv, whatif


def test_after_an_erasure_no_table_index_or_log_line_holds_the_requesters_data_and_reports_read_the_same(
        acme, clock, mailbox, log_lines, local_receiver):
    admin, agent, _ = acme
    # Two requests of the requester (one created under an Idempotency-Key, whose record keeps the
    # answer), in two spellings of the address; and another requester's.
    first = new_request(agent, headers={"Idempotency-Key": "ticket-1"})
    second = new_request(agent, email=REQUESTER.upper(), name=NAME)
    kept = new_request(agent, email=OTHER, name="李四", subject="打印机卡纸", description="三楼打印机")
    post(agent, first, "respond", note=NOTE)
    # SES bounces the acknowledgement of the first, quoting the address; admins are told.
    acknowledgement = NotificationModel.get(first, "acknowledgement")
    bounce = ses_script.ses_event("bounce", acknowledgement.message_id, [REQUESTER.lower()], local(23, 10, 1))
    bounce["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = f"smtp; 550 5.1.1 <{REQUESTER.lower()}>: unknown"
    assert publish(bounce) == "recorded"
    # SES refuses mail to the requester for now: the second's notice waits, pending, for the scan.
    original = botocore.client.BaseClient._make_api_call

    def throttled(self, operation, params):
        if operation == "SendRawEmail" and any(REQUESTER.lower() == d.lower() for d in params["Destinations"]):
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = throttled
    try:
        post(agent, second, "respond", note=NOTE)
        # The requests run past their deadlines: the provider's breach alerts quote the subject.
        invoke("scan_deadlines", clock, local(23, 18, 30))
    finally:
        botocore.client.BaseClient._make_api_call = original
    assert NotificationModel.get(second, "event|2").status == "pending"
    assert any(SUBJECT in m.get_body(("plain",)).get_content() for m in mailbox.messages()
               if "|breach|" in str(m["X-SLA-Notification"]))
    post(agent, first, "resolve", note=NOTE)
    clock.move_to(local(23, 19))
    before = reports(admin, agent)
    assert holding(everything_stored(), REQUESTER, NAME, SUBJECT, DESCRIPTION, NOTE)  # the scan sees them
    sent_before = len(mailbox.messages())

    log_lines.clear()
    status, body = admin.post("/contracts/acme/erasures", {"email": REQUESTER.upper()})
    assert (status, body) == (200, {"requests": 2})
    assert reports(admin, agent) == before

    status, erased = admin.get(f"/requests/{first}")
    assert erased["requester"] is None and erased["subject"] is None and erased["description"] is None
    assert erased["personal_data_erased_at"] == "2026-11-23T19:00:00+08:00"
    assert [event["note"] for event in erased["events"]] == [None] * len(erased["events"])
    assert {n["key"]: n["to"] for n in erased["notifications"]}["acknowledgement"] == []
    ack = NotificationModel.get(first, "acknowledgement")
    assert (ack.status, ack.recipients, ack.recipients_feedback, ack.message_id) == ("sent", [], None, None)
    assert ack.bounce_type == "Permanent"  # what SES reported, without the address, stays
    assert NotificationModel.get(second, "event|2").status == "superseded"
    _, other = admin.get(f"/requests/{kept}")
    assert other["requester"] == {"name": "李四", "email": OTHER} and other["personal_data_erased_at"] is None
    # A retry under the same Idempotency-Key gets the request as it reads now.
    status, retried = agent.post("/requests", {"contract_id": "acme", "priority": "urgent", "channel": "portal",
                                               "subject": SUBJECT, "description": DESCRIPTION,
                                               "requester": {"name": NAME, "email": REQUESTER}},
                                 headers={"Idempotency-Key": "ticket-1"})
    assert status == 201 and retried["request_id"] == first and retried["requester"] is None

    # What runs afterwards writes nothing about the requester either: scans (retries, new alerts),
    # a later event with a note, the nightly run.
    invoke("scan_deadlines", clock, local(23, 19, 30))
    later = post(agent, second, "progress", note=f"{NOTE} again")
    assert [event["note"] for event in later["events"]] == [None] * len(later["events"])
    assert not _exists(second, "event|3")  # the progress notice would go to nobody
    invoke("scan_deadlines", clock, local(24, 9, 30))
    invoke("nightly_tally", clock, datetime(2026, 11, 25, 0, 5, tzinfo=SH))
    assert not any(REQUESTER.lower() in str(m["To"]).lower() for m in mailbox.messages()[sent_before:])
    assert not any(SUBJECT in m.get_body(("plain",)).get_content() for m in mailbox.messages()[sent_before:])

    # Webhook deliveries carry ids, event types and times: those about the erased requests too.
    about = {json.loads(d["body"])["request_id"] for d in local_receiver.deliveries}
    assert {first, second} <= about
    assert not any(secret.lower() in d["body"].decode("utf-8").lower() for d in local_receiver.deliveries
                   for secret in SECRETS)

    stored = everything_stored()
    assert holding(stored, *SECRETS) == []
    assert holding(stored, requester_key("acme", REQUESTER)) == []  # nor the hash that stood for the address
    assert holding(stored, "李四", OTHER)  # another requester's data is untouched
    assert not any(secret.lower() in line.lower() for line in log_lines for secret in SECRETS), \
        [line for line in log_lines if any(secret.lower() in line.lower() for secret in SECRETS)]

    # The audit record: who, when, how many; never whose.
    status, audit = admin.get("/contracts/acme/erasures")
    assert status == 200
    assert audit["items"] == [{"erased_at": "2026-11-23T11:00:00+00:00", "erased_by": "bootstrap-admin",
                               "reason": "request", "requests": 2}]

    # Idempotent: a second call erases nothing and changes nothing but its own audit record.
    unchanged = {place: items for place, items in stored.items() if "erasures" not in place[0]}
    assert admin.post("/contracts/acme/erasures", {"email": REQUESTER}) == (200, {"requests": 0})
    assert {place: items for place, items in everything_stored().items() if "erasures" not in place[0]} == unchanged
    assert [item["requests"] for item in admin.get("/contracts/acme/erasures")[1]["items"]] == [0, 2]


def _exists(request_id, key):
    try:
        NotificationModel.get(request_id, key)
        return True
    except NotificationModel.DoesNotExist:
        return False


def test_erasure_is_for_admins_with_a_valid_address_of_a_known_contract(acme, client):
    admin, agent, customer = acme
    body = {"email": REQUESTER}
    assert agent.post("/contracts/acme/erasures", body)[0] == 403
    assert customer.post("/contracts/acme/erasures", body)[0] == 403
    assert client.post("/contracts/acme/erasures", body)[0] == 401
    assert agent.get("/contracts/acme/erasures")[0] == 403
    for bad in ({"email": "not an address"}, {"email": 42}, {}, {"email": REQUESTER, "name": NAME}):
        status, error = admin.post("/contracts/acme/erasures", bad)
        assert status == 400, error
        assert error["Message"].startswith(("email", "name")), error
    assert admin.post("/contracts/nobody/erasures", body)[0] == 404
    assert admin.get("/contracts/nobody/erasures")[0] == 404
    assert admin.post("/contracts/acme/erasures", body) == (200, {"requests": 0})


def test_an_erasure_finds_the_requesters_requests_through_their_index_not_the_contracts_history(acme):
    admin, agent, _ = acme
    for _ in range(3):
        new_request(agent, email=OTHER)
    mine = new_request(agent)
    calls = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        calls.append((operation, params.get("TableName", ""), params.get("IndexName")))
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = recording
    try:
        assert admin.post("/contracts/acme/erasures", {"email": REQUESTER}) == (200, {"requests": 1})
    finally:
        botocore.client.BaseClient._make_api_call = original
    assert not [call for call in calls if call[0] == "Scan"]
    assert [call for call in calls if call[0] == "Query" and call[1].endswith("requests")] == \
        [("Query", settings.current().table_prefix + "requests", "by_requester")]
    assert admin.get(f"/requests/{mine}")[1]["requester"] is None


RETENTION = {"personal_data_days": 30}


def test_retention_erases_requests_resolved_longer_ago_a_page_a_night(admin, clock, monkeypatch):
    monkeypatch.setattr(erasures, "RETENTION_PAGE", 2)
    _, agent, _ = contract_with_tokens(admin, demo_contract(retention=RETENTION))
    old = [new_request(agent, received_at=f"2026-10-{day:02d}T10:00:00+08:00") for day in (12, 13, 14)]
    for number, request_id in enumerate(old):
        post(agent, request_id, "resolve", at=f"2026-10-{12 + number:02d}T15:00:00+08:00", note=NOTE)
    recent = new_request(agent, received_at="2026-11-10T10:00:00+08:00")
    post(agent, recent, "resolve", at="2026-11-10T15:00:00+08:00")
    still_open = new_request(agent, received_at="2026-10-12T09:00:00+08:00")

    first_night = invoke("nightly_tally", clock, datetime(2026, 11, 24, 0, 5, tzinfo=SH))
    assert first_night["personal_data_erased"] == 2 and first_night["errors"] == 0
    erased = [request_id for request_id in old if admin.get(f"/requests/{request_id}")[1]["requester"] is None]
    assert erased == old[:2]  # the oldest first
    second_night = invoke("nightly_tally", clock, datetime(2026, 11, 25, 0, 5, tzinfo=SH))
    assert second_night["personal_data_erased"] == 1
    third_night = invoke("nightly_tally", clock, datetime(2026, 11, 26, 0, 5, tzinfo=SH))
    assert third_night["personal_data_erased"] == 0
    for request_id in old:
        _, document = admin.get(f"/requests/{request_id}")
        assert document["requester"] is None and document["subject"] is None
        assert all(event.get("note") is None for event in document["events"])
    for request_id in (recent, still_open):
        _, document = admin.get(f"/requests/{request_id}")
        assert document["requester"]["name"] == NAME and document["requester"]["email"].lower() == REQUESTER.lower()
        assert document["subject"] == SUBJECT and document["personal_data_erased_at"] is None
    _, audit = admin.get("/contracts/acme/erasures")
    assert [(item["reason"], item["erased_by"], item["requests"]) for item in audit["items"]] == \
        [("retention", "retention", 1), ("retention", "retention", 2)]


def test_retention_defaults_to_keeping_and_takes_whole_days_from_1_to_3650(admin, clock):
    assert admin.put("/contracts/acme", demo_contract())[0] == 201
    assert admin.get("/contracts/acme")[1]["retention"] == {"personal_data_days": None}
    for bad in (0, 3651, "30", True, 1.5):
        status, error = admin.put("/contracts/acme", demo_contract(retention={"personal_data_days": bad}))
        assert status == 400 and error["Message"].startswith("retention.personal_data_days:"), (bad, error)
    status, error = admin.put("/contracts/acme", demo_contract(retention={"days": 3}))
    assert status == 400 and error["Message"].startswith("retention"), error
    assert admin.put("/contracts/acme", demo_contract(retention=RETENTION))[0] == 200
    assert admin.get("/contracts/acme")[1]["retention"] == RETENTION


def test_requests_stored_before_the_indexes_are_found_once_the_back_fill_ran(acme, monkeypatch):
    admin, agent, _ = acme
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the script sets the stage's variables
    request_id = new_request(agent)
    # As a request stored by an earlier version: no requester key, no retention key.
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName=settings.current().table_prefix + "requests", Key={"request_id": {"S": request_id}},
        UpdateExpression="REMOVE requester_key, personal_contract")
    assert admin.post("/contracts/acme/erasures", {"email": REQUESTER}) == (200, {"requests": 0})
    spec = importlib.util.spec_from_file_location("index_personal_data", ROOT / "scripts" / "index_personal_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--stage", "dev"])
    script.main(["--stage", "dev"])  # again: nothing left to index
    assert admin.post("/contracts/acme/erasures", {"email": REQUESTER}) == (200, {"requests": 1})
    assert admin.get(f"/requests/{request_id}")[1]["requester"] is None


def test_an_erasure_cut_short_by_a_failing_table_finishes_when_called_again(acme, crash_expected):
    admin, agent, _ = acme
    request_id = new_request(agent)
    post(agent, request_id, "respond", note=NOTE)
    original = botocore.client.BaseClient._make_api_call

    def failing(self, operation, params):
        if operation == "UpdateItem" and params["TableName"].endswith("requests"):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = failing
    try:
        status, _ = admin.post("/contracts/acme/erasures", {"email": REQUESTER})
    finally:
        botocore.client.BaseClient._make_api_call = original
    assert status == 503
    # The copies went first; the request still holds its data and is still found.
    assert admin.get(f"/requests/{request_id}")[1]["requester"] is not None
    assert admin.post("/contracts/acme/erasures", {"email": REQUESTER}) == (200, {"requests": 1})
    assert holding(everything_stored(), *SECRETS) == []


def test_a_request_retention_cannot_erase_is_logged_and_the_others_are_erased(admin, clock, monkeypatch, log_lines):
    _, agent, _ = contract_with_tokens(admin, demo_contract(retention=RETENTION))
    old = [new_request(agent, received_at=f"2026-10-{day}T10:00:00+08:00") for day in (12, 13)]
    for request_id, day in zip(old, (12, 13), strict=True):
        post(agent, request_id, "resolve", at=f"2026-10-{day}T15:00:00+08:00")
    original = erasures.erase_request

    def broken(request_id, *args, **kwargs):
        if request_id == old[0]:
            raise RuntimeError("a corrupt item")
        return original(request_id, *args, **kwargs)

    monkeypatch.setattr(erasures, "erase_request", broken)
    night = invoke("nightly_tally", clock, datetime(2026, 11, 24, 0, 5, tzinfo=SH))
    assert night["personal_data_erased"] == 1 and night["errors"] == 0
    assert admin.get(f"/requests/{old[1]}")[1]["requester"] is None
    assert admin.get(f"/requests/{old[0]}")[1]["requester"] is not None  # left for the next night
    [failure] = [json.loads(line) for line in log_lines if "retention erasure failed" in line]
    assert failure["request_id"] == old[0] and failure["level"] == "ERROR"
    monkeypatch.setattr(erasures, "erase_request", original)
    assert invoke("nightly_tally", clock, datetime(2026, 11, 25, 0, 5, tzinfo=SH))["personal_data_erased"] == 1
