"""Amazon Connect contact records through a Kinesis stream (moto) into `connect_contact_records`: the
records are sample contact records written after the documented data model, delivered as Lambda's
Kinesis poller delivers them (base64 data, sequence numbers, at least once)."""
import base64
import copy
import csv
import importlib.util
import io
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import botocore.client
import pytest
import time_machine
from botocore.exceptions import ClientError
from chalice.test import Client

from app import CONTACT_RECORD_STREAM, app
from chalicelib.core.customer_contacts import Leg, customer_interaction
from conftest import DEMO_CONTRACT

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
INSTANCE = "arn:aws:connect:us-east-1:123456789012:instance/9a8b7c6d-0000-4000-8000-000000000001"
HOTLINE, WEBCHAT, OTHER = "4c1e2f3a-hotline", "7d2e9b10-webchat", "ffff0000-someone-else"
CONTRACT = copy.deepcopy(DEMO_CONTRACT)
CONTRACT["interactions"] = {"phone": {"answer_within": "60s", "target": 0.9, "hours": "business"},
                            "chat": {"answer_within": "30s", "target": 0.9, "hours": "24x7"}}
CONTRACT["amazon_connect"] = {"queue_ids": [HOTLINE, WEBCHAT]}
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SH)


def stamp(moment):
    """The model's timestamp format: UTC, yyyy-mm-ddThh:mm:ssZ."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def contact_record(contact_id, queue_id, enqueued, answered=None, gone=None, channel="VOICE", updated=0,
                   method="INBOUND", initial=None, previous=None, following=None):
    """A contact record as Connect exports it: `answered` (seconds after enqueue) connects an agent,
    `gone` (seconds after enqueue) disconnects the customer; `updated` moves LastUpdateTimestamp.
    `initial`, `previous` and `following` link a leg to the others of its customer contact."""
    disconnect = enqueued + timedelta(seconds=gone if gone is not None else (answered or 0) + 180)
    agent = None if answered is None else {
        "ARN": f"{INSTANCE}/agent/5e6f7a8b-agent-0001",
        "Username": "wang.agent",
        "ConnectedToAgentTimestamp": stamp(enqueued + timedelta(seconds=answered)),
        "AgentInteractionDuration": 180,
        "CustomerHoldDuration": 0,
        "NumberOfHolds": 0,
        "HierarchyGroups": None,
        "RoutingProfile": {"ARN": f"{INSTANCE}/routing-profile/rp-1", "Name": "Basic Routing Profile"},
    }
    return {
        "AWSAccountId": "123456789012",
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "Agent": agent,
        "AgentConnectionAttempts": 1 if agent else 0,
        "Attributes": {"customer_tier": "gold"},
        "Channel": channel,
        "ContactId": contact_id,
        "CustomerEndpoint": {"Address": "+8613800000000", "Type": "TELEPHONE_NUMBER"},
        "DisconnectTimestamp": stamp(disconnect),
        "DisconnectReason": "CUSTOMER_DISCONNECT",
        "InitialContactId": initial,
        "InitiationMethod": method,
        "InitiationTimestamp": stamp(enqueued - timedelta(seconds=15)),
        "InstanceARN": INSTANCE,
        "LastUpdateTimestamp": stamp(disconnect + timedelta(minutes=1 + updated)),
        "NextContactId": following,
        "PreviousContactId": previous,
        "Queue": {
            "ARN": f"{INSTANCE}/queue/{queue_id}",
            "Name": "Hotline",
            "EnqueueTimestamp": stamp(enqueued),
            "DequeueTimestamp": stamp(enqueued + timedelta(seconds=answered if answered is not None else gone)),
            "Duration": answered if answered is not None else gone,
        },
        "Recording": None,
        "SystemEndpoint": {"Address": "+864000000000", "Type": "TELEPHONE_NUMBER"},
        "TransferCompletedTimestamp": None,
        "TransferredToEndpoint": None,
    }


class Stream:
    """The contact-record stream in moto's Kinesis, read the way Lambda's poller reads a shard."""

    def __init__(self):
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")
        self.kinesis.create_stream(StreamName=CONTACT_RECORD_STREAM, ShardCount=1)
        description = self.kinesis.describe_stream(StreamName=CONTACT_RECORD_STREAM)["StreamDescription"]
        self.arn = description["StreamARN"]
        self.iterator = self.kinesis.get_shard_iterator(
            StreamName=CONTACT_RECORD_STREAM, ShardId=description["Shards"][0]["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def put(self, *records):
        """Each record as Connect writes it (JSON), or raw bytes as they are."""
        self.kinesis.put_records(StreamName=CONTACT_RECORD_STREAM, Records=[
            {"Data": r if isinstance(r, bytes) else json.dumps(r).encode(), "PartitionKey": "contact"}
            for r in records])

    def next_batch(self):
        """The Lambda event of what was put since the last batch."""
        answer = self.kinesis.get_records(ShardIterator=self.iterator)
        self.iterator = answer["NextShardIterator"]
        return {"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                        "sequenceNumber": r["SequenceNumber"], "data": base64.b64encode(r["Data"]).decode("ascii"),
                        "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
            "eventID": f"shardId-000000000000:{r['SequenceNumber']}", "awsRegion": "us-east-1",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/sla-clock-dev", "eventSourceARN": self.arn,
        } for r in answer["Records"]]}

    def deliver(self, *records):
        """Put the records and invoke the consumer with them: the counts it logged. It answers Lambda
        with no record to retry."""
        self.put(*records)
        return invoke(self.next_batch())


def invoke(event, expected_failures=()):
    """The consumer invoked with a Lambda Kinesis event: the counts of its "contact records consumed"
    line, after checking the records it asked Lambda to retry."""
    summaries = []
    handler = logging.Handler()
    handler.emit = lambda record: summaries.append(record.fields) if record.getMessage() == \
        "contact records consumed" else None
    logger = logging.getLogger("sla_clock.connect")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        with Client(app) as chalice_client:
            answer = chalice_client.lambda_.invoke("connect_contact_records", event).payload
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in expected_failures]}
    [summary] = summaries
    return {key: value for key, value in summary.items() if key != "unknown_queues"}


@pytest.fixture
def acme(admin):
    assert admin.put("/contracts/acme", CONTRACT)[0] == 201
    return admin


@pytest.fixture
def later():
    with time_machine.travel(datetime(2026, 11, 30, 12, 0, tzinfo=SH), tick=False) as traveller:
        yield traveller


@pytest.fixture
def stream(aws):
    return Stream()


def counts(result, **expected):
    """The consumer's counts: every one not named is 0; `contacts` defaults to `stored` (one leg a contact)."""
    expected.setdefault("contacts", expected.get("stored", 0))
    return dict.fromkeys(("records", "stored", "replaced", "duplicates", "contacts", "unknown_queue", "unmapped",
                          "skipped", "malformed", "failed"), 0) | expected == result


def channels(admin, date="2026-11-23"):
    status, tally = admin.post("/contracts/acme/tallies", {"date": date})
    assert status == 200, tally
    return tally["interactions"]


def test_contact_records_become_the_interactions_of_the_contract_listing_their_queue(acme, later, stream):
    result = stream.deliver(
        contact_record("c-answered", HOTLINE, MONDAY_10, answered=42),
        contact_record("c-late", HOTLINE, MONDAY_10 + timedelta(minutes=5), answered=75),
        contact_record("c-hung-up", HOTLINE, MONDAY_10 + timedelta(minutes=9), gone=100),
        contact_record("chat-1", WEBCHAT, MONDAY_10.replace(hour=3), answered=12, channel="CHAT"),
    )
    assert counts(result, records=4, stored=4)
    found = channels(acme)
    assert (found["phone"]["offered"], found["phone"]["answered_within"], found["phone"]["abandoned"]) == (3, 1, 1)
    assert found["phone"]["service_level"] == 0.3333 and found["phone"]["p90_answer_seconds"] == 75
    assert (found["chat"]["offered"], found["chat"]["service_level"]) == (1, 1.0)  # 03:00: chat is 24x7


def test_a_redelivered_record_replaces_the_first_and_duplicates_in_a_batch_keep_the_latest(acme, later, stream):
    first = contact_record("c-1", HOTLINE, MONDAY_10, answered=90)
    assert counts(stream.deliver(first), records=1, stored=1)
    newer = contact_record("c-1", HOTLINE, MONDAY_10, answered=30, updated=10)
    older = contact_record("c-1", HOTLINE, MONDAY_10, answered=300, updated=1)
    assert counts(stream.deliver(newer, older), records=2, stored=1, replaced=1, duplicates=1)
    assert counts(stream.deliver(newer), records=1, stored=1, replaced=1)  # at least once: again
    phone = channels(acme)["phone"]
    assert (phone["offered"], phone["answered_within"], phone["average_answer_seconds"]) == (1, 1, 30.0)


def test_records_of_foreign_queues_are_counted_and_skipped(acme, later, stream, caplog):
    caplog.set_level(logging.INFO, logger="sla_clock.connect")
    result = stream.deliver(contact_record("c-1", OTHER, MONDAY_10, answered=10),
                            contact_record("c-2", OTHER, MONDAY_10, answered=10),
                            contact_record("c-3", HOTLINE, MONDAY_10, answered=10))
    assert counts(result, records=3, stored=1, unknown_queue=2)
    assert channels(acme)["phone"]["offered"] == 1
    [summary] = [r.fields for r in caplog.records if r.getMessage() == "contact records consumed"]
    assert summary["unknown_queue"] == 2 and summary["unknown_queues"] == [OTHER]


def test_contacts_of_channels_the_contract_does_not_measure_or_in_no_queue_are_skipped(acme, later, stream):
    task = contact_record("t-1", HOTLINE, MONDAY_10, answered=10, channel="TASK")
    email = contact_record("e-1", HOTLINE, MONDAY_10, answered=10, channel="EMAIL")
    no_queue = contact_record("o-1", HOTLINE, MONDAY_10, answered=10, method="OUTBOUND")
    no_queue["Queue"] = None
    other_channel = contact_record("x-1", HOTLINE, MONDAY_10, answered=10, channel="SMS")
    assert counts(stream.deliver(task, email, no_queue, other_channel), records=4, unmapped=2, skipped=2)
    assert channels(acme)["phone"]["offered"] == 0


def test_malformed_records_are_logged_and_skipped_never_blocking_the_shard(acme, later, stream, caplog):
    caplog.set_level(logging.WARNING, logger="sla_clock.connect")
    bad_arn = contact_record("c-2", HOTLINE, MONDAY_10, answered=10)
    bad_arn["Queue"]["ARN"] = "not-an-arn"
    backwards = contact_record("c-3", HOTLINE, MONDAY_10, answered=10)
    backwards["Agent"]["ConnectedToAgentTimestamp"] = stamp(MONDAY_10 - timedelta(minutes=1))
    not_a_time = contact_record("c-4", HOTLINE, MONDAY_10, answered=10)
    not_a_time["Queue"]["EnqueueTimestamp"] = "yesterday"
    queue_text = contact_record("c-5", HOTLINE, MONDAY_10, answered=10)
    queue_text["Queue"] = "Hotline"
    no_id = contact_record("", HOTLINE, MONDAY_10, answered=10)
    result = stream.deliver(b"\xff\xfe not json", b"[1, 2]", bad_arn, backwards, not_a_time, queue_text, no_id,
                            contact_record("c-good", HOTLINE, MONDAY_10, answered=10))
    assert counts(result, records=8, stored=1, malformed=7)
    warnings = [r.fields for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 7 and all(w["sequence_number"] for w in warnings)
    assert "record.Agent.ConnectedToAgentTimestamp: must not precede Queue.EnqueueTimestamp" in [
        w["error"] for w in warnings]
    assert channels(acme)["phone"]["offered"] == 1


def throttled_for(contract_id):
    """DynamoDB throttles every write of `contract_id`'s interactions; the others go through."""
    original = botocore.client.BaseClient._make_api_call

    def throttled(client, operation, params):
        if operation in ("BatchWriteItem", "TransactWriteItems") and contract_id in json.dumps(params):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return original(client, operation, params)

    return throttled


def test_a_storage_failure_returns_its_records_for_retry_and_the_rest_of_the_batch_is_stored(
        acme, later, stream, monkeypatch, caplog):
    """DynamoDB throttling one contract's writes: its records go back to Lambda as batch item failures
    (Lambda retries from the lowest), the other contract's records are stored; the retry stores them once."""
    other = copy.deepcopy(CONTRACT)
    other["amazon_connect"] = {"queue_ids": ["q-beta"]}
    assert acme.put("/contracts/beta", other)[0] == 201
    stream.put(contact_record("b-1", "q-beta", MONDAY_10, answered=20),
               *[contact_record(f"c-{n}", HOTLINE, MONDAY_10 + timedelta(minutes=n), answered=20) for n in range(3)],
               contact_record("b-2", "q-beta", MONDAY_10, answered=20))
    event = stream.next_batch()
    sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="sla_clock.connect"):
        patch.setattr(botocore.client.BaseClient, "_make_api_call", throttled_for("acme"))
        assert counts(invoke(event, expected_failures=sequences[1:4]), records=5, stored=2, failed=3)
    [error] = [r.fields for r in caplog.records if r.levelno == logging.ERROR]
    assert error["contract_id"] == "acme" and error["sequence_numbers"] == sequences[1:4]
    assert "ProvisionedThroughputExceededException" in error["error"]
    assert acme.post("/contracts/beta/tallies", {"date": "2026-11-23"})[1]["interactions"]["phone"]["offered"] == 2

    retry = {"Records": event["Records"][1:]}  # Lambda resumes at the lowest sequence number returned
    assert counts(invoke(retry), records=4, stored=4, replaced=1)
    assert channels(acme)["phone"]["offered"] == 3
    assert acme.post("/contracts/beta/tallies", {"date": "2026-11-23"})[1]["interactions"]["phone"]["offered"] == 2


def test_a_failure_to_read_the_queue_index_fails_the_whole_batch(acme, later, stream, monkeypatch):
    """Without the queue index no record can be placed: the invocation fails and Lambda retries
    (bisecting) the batch; nothing is lost."""
    original = botocore.client.BaseClient._make_api_call

    def failing(client, operation, params):
        if operation == "BatchGetItem" and "connect_queues" in json.dumps(params):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation)
        return original(client, operation, params)

    stream.put(contact_record("c-1", HOTLINE, MONDAY_10, answered=20))
    event = stream.next_batch()
    with monkeypatch.context() as patch, Client(app) as chalice_client:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", failing)
        with pytest.raises(Exception, match="injected"):  # pynamodb's GetError around it
            chalice_client.lambda_.invoke("connect_contact_records", event)
    assert counts(invoke(event), records=1, stored=1)


def raw(event, position, **kinesis):
    """`event` with the Kinesis part of one record replaced (None removes a key)."""
    changed = copy.deepcopy(event)
    part = changed["Records"][position]["kinesis"]
    for key, value in kinesis.items():
        if value is None:
            part.pop(key, None)
        else:
            part[key] = value
    return changed


def poison_records():
    """(name, contact record as JSON or raw bytes) a real stream may carry and that no retry can fix."""
    channel_list = contact_record("p-channel", HOTLINE, MONDAY_10, answered=10)
    channel_list["Channel"] = ["VOICE"]
    enqueue_number = contact_record("p-enqueue", HOTLINE, MONDAY_10, answered=10)
    enqueue_number["Queue"]["EnqueueTimestamp"] = 1732327200
    answered_object = contact_record("p-answered", HOTLINE, MONDAY_10, answered=10)
    answered_object["Agent"]["ConnectedToAgentTimestamp"] = {"at": "now"}
    agent_list = contact_record("p-agent", HOTLINE, MONDAY_10, answered=10)
    agent_list["Agent"] = [agent_list["Agent"]]
    arn_number = contact_record("p-arn", HOTLINE, MONDAY_10, answered=10)
    arn_number["Queue"]["ARN"] = 5
    no_arn = contact_record("p-no-arn", HOTLINE, MONDAY_10, answered=10)
    del no_arn["Queue"]["ARN"]
    no_contact_id = contact_record("p-no-id", HOTLINE, MONDAY_10, answered=10)
    del no_contact_id["ContactId"]
    id_number = contact_record("p-id", HOTLINE, MONDAY_10, answered=10)
    id_number["ContactId"] = 12345
    surrogate_queue = contact_record("p-queue", HOTLINE + "\ud800", MONDAY_10, answered=10)
    control_initial = contact_record("p-initial", HOTLINE, MONDAY_10, answered=10, method="TRANSFER",
                                     initial="c-\x00", previous="c-\x00")
    return [("a queue id with a lone surrogate", surrogate_queue), ("InitialContactId with NUL", control_initial),
            ("Channel a list", channel_list), ("EnqueueTimestamp a number", enqueue_number),
            ("ConnectedToAgentTimestamp an object", answered_object), ("Agent a list", agent_list),
            ("Queue.ARN a number", arn_number), ("no Queue.ARN", no_arn), ("no ContactId", no_contact_id),
            ("ContactId a number", id_number), ("deep nesting", b"[" * 100_000),
            ("deep objects", b'{"a":' * 50_000), ("not JSON", b"\xff\xfe not json"), ("a JSON list", b"[1, 2]"),
            ("a JSON string", b'"VOICE"'), ("JSON null", b"null"), ("empty", b""), ("a huge number", b"1" * 5000)]


POISON = poison_records()


@pytest.mark.parametrize("name, poison", POISON, ids=[name for name, _ in POISON])
def test_a_poison_record_is_counted_and_skipped_and_the_good_records_around_it_are_stored(
        acme, later, stream, caplog, name, poison):
    caplog.set_level(logging.WARNING, logger="sla_clock.connect")
    result = stream.deliver(contact_record("c-before", HOTLINE, MONDAY_10, answered=10), poison,
                            contact_record("c-after", HOTLINE, MONDAY_10, answered=10))
    assert counts(result, records=3, stored=2, malformed=1)
    [warning] = [r.fields for r in caplog.records if r.levelno == logging.WARNING]
    assert warning["sequence_number"] and warning["position"] == 1
    assert channels(acme)["phone"]["offered"] == 2


def test_envelopes_without_base64_data_or_a_sequence_number_are_counted_and_skipped(acme, later, stream, caplog):
    caplog.set_level(logging.WARNING, logger="sla_clock.connect")
    stream.put(*[contact_record(f"c-{n}", HOTLINE, MONDAY_10 + timedelta(minutes=n), answered=10) for n in range(5)])
    event = stream.next_batch()
    event = raw(event, 0, data="not base64!")
    event = raw(event, 1, data="QUJD")  # valid base64 of "ABC": not JSON
    event = raw(event, 2, data="QUJ")  # incorrect padding
    event = raw(event, 3, sequenceNumber=None)
    assert counts(invoke(event), records=5, stored=1, malformed=4)
    warnings = [r.fields for r in caplog.records if r.levelno == logging.WARNING]
    assert [w["error"] for w in warnings] == ["data is not base64", "data is not JSON", "data is not base64",
                                              "not a Kinesis record with a sequence number and data"]
    assert [w["position"] for w in warnings] == [0, 1, 2, 3]
    assert channels(acme)["phone"]["offered"] == 1


def test_malformed_records_are_logged_without_their_content_and_counted_as_a_metric(
        acme, later, stream, caplog, capsys):
    caplog.set_level(logging.DEBUG, logger="sla_clock")
    secret = contact_record("p-secret", HOTLINE, MONDAY_10, answered=10)
    secret["Channel"] = ["VOICE", "+8613912345678"]
    unreadable = b'{"CustomerEndpoint": {"Address": "+8613912345678"}, ' + b"[" * 100_000
    result = stream.deliver(secret, unreadable, contact_record("c-good", HOTLINE, MONDAY_10, answered=10))
    assert counts(result, records=3, stored=1, malformed=2)
    assert "+8613912345678" not in caplog.text and "p-secret" not in caplog.text
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [document] = [d for d in documents if "MalformedEvents" in d]
    assert (document["MalformedEvents"], document["Source"]) == ([2.0], "connect_contact_records")


def test_a_queue_feeds_one_contract_only(acme, later):
    other = copy.deepcopy(CONTRACT)
    other["amazon_connect"] = {"queue_ids": ["q-new", WEBCHAT]}
    status, body = acme.put("/contracts/beta", other)
    assert status == 409 and WEBCHAT in body["Message"]
    assert acme.put("/contracts/acme", CONTRACT)[0] == 200  # a contract may keep its own queues
    other["amazon_connect"] = {"queue_ids": ["q-new"]}
    assert acme.put("/contracts/beta", other)[0] == 201


@pytest.mark.parametrize("value, field", [({"queue_ids": []}, "amazon_connect.queue_ids"),
                                          ({"queue_ids": [f"{INSTANCE}/queue/x"]}, "amazon_connect.queue_ids[0]"),
                                          ({"queue_ids": ["a", "a"]}, "amazon_connect.queue_ids[1]"),
                                          ({"queues": ["a"]}, "amazon_connect.queues"),
                                          (["a"], "amazon_connect")])
def test_bad_connect_settings_are_refused_naming_the_field(admin, value, field):
    status, body = admin.put("/contracts/acme", {**CONTRACT, "amazon_connect": value})
    assert status == 400 and body["Message"].startswith(field + ":"), body


# --- once per customer contact ------------------------------------------------------------------------


CALLBACKS = "c0ffee00-callback-queue"


def legs_of_an_agent_transfer():
    """The customer waits 20 s for a first agent, who transfers the call; the TRANSFER leg waits 90 s."""
    first = contact_record("ct-1", HOTLINE, MONDAY_10, answered=20, following="ct-2")
    transfer = contact_record("ct-2", HOTLINE, MONDAY_10 + timedelta(minutes=3), answered=90, method="TRANSFER",
                              initial="ct-1", previous="ct-1")
    return first, transfer


def queued_callback():
    """The documented queued callback: John waits from 11:35, asks for a callback at 11:37 and hangs up;
    the CALLBACK leg is queued at 11:38:39 and an agent accepts it at 11:39:00."""
    waiting = datetime(2026, 11, 23, 11, 35, tzinfo=SH)
    inbound = contact_record("cb-1", HOTLINE, waiting, gone=150, following="cb-2")
    callback = contact_record("cb-2", CALLBACKS, waiting + timedelta(seconds=219), answered=21, method="CALLBACK",
                              initial="cb-1", previous="cb-1")
    callback["Queue"]["Name"] = "CallbackQueue"
    return inbound, callback


def phone_of(admin, date="2026-11-23"):
    phone = channels(admin, date)["phone"]
    return {key: phone[key] for key in ("offered", "answered", "answered_within", "abandoned", "callbacks",
                                        "service_level")}


def test_an_agent_transfer_is_one_customer_contact_answered_at_the_first_agent(acme, later, stream):
    assert counts(stream.deliver(*legs_of_an_agent_transfer()), records=2, stored=2, contacts=1)
    assert phone_of(acme) == {"offered": 1, "answered": 1, "answered_within": 1, "abandoned": 0, "callbacks": 0,
                              "service_level": 1.0}
    assert channels(acme)["phone"]["average_answer_seconds"] == 20.0


@pytest.mark.parametrize("order", ["in order", "reversed", "separate batches, last first"])
def test_a_queue_to_queue_transfer_waits_from_the_first_enqueue_and_its_first_leg_is_no_abandon(
        acme, later, stream, order):
    first = contact_record("qt-1", HOTLINE, MONDAY_10, gone=40, following="qt-2")
    second = contact_record("qt-2", WEBCHAT, MONDAY_10 + timedelta(seconds=40), answered=30,
                            method="QUEUE_TRANSFER", initial="qt-1", previous="qt-1")
    if order == "in order":
        stream.deliver(first, second)
    elif order == "reversed":
        stream.deliver(second, first)
    else:
        stream.deliver(second)
        assert phone_of(acme)["answered_within"] == 1  # alone, the leg counts from its own enqueue: 30 s
        assert counts(stream.deliver(first), records=1, stored=1)
    assert phone_of(acme) == {"offered": 1, "answered": 1, "answered_within": 0, "abandoned": 0, "callbacks": 0,
                              "service_level": 0.0}  # 70 s from the first enqueue: not within 60 s
    assert channels(acme)["phone"]["p90_answer_seconds"] == 70


def test_a_first_leg_whose_next_leg_has_not_come_yet_is_not_counted_abandoned(acme, later, stream):
    stream.deliver(contact_record("nx-1", HOTLINE, MONDAY_10, gone=40, following="nx-2"))
    assert phone_of(acme) == {"offered": 1, "answered": 0, "answered_within": 0, "abandoned": 0, "callbacks": 0,
                              "service_level": None}


def test_a_contact_transferred_out_before_an_agent_is_neither_answered_nor_abandoned(acme, later, stream):
    out = contact_record("out-1", HOTLINE, MONDAY_10, gone=80)
    out["TransferredToEndpoint"] = {"Address": "+861012345678", "Type": "TELEPHONE_NUMBER"}
    out["TransferCompletedTimestamp"] = stamp(MONDAY_10 + timedelta(seconds=75))
    stream.deliver(out, contact_record("gone-1", HOTLINE, MONDAY_10, gone=90))
    assert phone_of(acme) == {"offered": 2, "answered": 0, "answered_within": 0, "abandoned": 1, "callbacks": 0,
                              "service_level": 0.0}


def with_callback_queue(admin, callbacks=None):
    contract = copy.deepcopy(CONTRACT)
    contract["amazon_connect"]["queue_ids"].append(CALLBACKS)
    if callbacks:
        contract["interactions"]["phone"]["callbacks"] = callbacks
    assert admin.put("/contracts/acme", contract)[0] == 200
    return admin


def test_a_queued_callback_is_no_abandon_and_is_counted_apart_from_the_service_level(acme, later, stream):
    inbound, callback = queued_callback()
    with_callback_queue(acme)
    stream.deliver(inbound)  # the callback leg is still to come: no abandon meanwhile
    assert phone_of(acme) == {"offered": 1, "answered": 0, "answered_within": 0, "abandoned": 0, "callbacks": 0,
                              "service_level": None}
    assert counts(stream.deliver(callback), records=1, stored=1)
    assert phone_of(acme) == {"offered": 0, "answered": 0, "answered_within": 0, "abandoned": 0, "callbacks": 1,
                              "service_level": None}


def test_a_channel_that_counts_callbacks_measures_them_from_the_first_enqueue(acme, later, stream):
    inbound, callback = queued_callback()
    with_callback_queue(acme, callbacks="count")
    stream.deliver(callback, inbound)
    assert phone_of(acme) == {"offered": 1, "answered": 1, "answered_within": 0, "abandoned": 0, "callbacks": 1,
                              "service_level": 0.0}
    assert channels(acme)["phone"]["average_answer_seconds"] == 240.0  # 11:35:00 to 11:39:00


def test_a_callback_never_answered_is_abandoned_only_where_callbacks_count(acme, later, stream):
    inbound, callback = queued_callback()
    callback["Agent"] = None
    callback["Queue"]["Duration"] = 300
    callback["DisconnectTimestamp"] = stamp(datetime(2026, 11, 23, 11, 43, 39, tzinfo=SH))
    with_callback_queue(acme)
    stream.deliver(inbound, callback)
    assert phone_of(acme)["abandoned"] == 0 and phone_of(acme)["callbacks"] == 1
    with_callback_queue(acme, callbacks="count")
    assert phone_of(acme) == {"offered": 1, "answered": 0, "answered_within": 0, "abandoned": 1, "callbacks": 1,
                              "service_level": 0.0}


@pytest.mark.parametrize("value", ["sometimes", True, ["count"]])
def test_the_callbacks_setting_is_count_or_exclude(admin, value):
    contract = copy.deepcopy(CONTRACT)
    contract["interactions"]["phone"]["callbacks"] = value
    status, body = admin.put("/contracts/acme", contract)
    assert status == 400 and body["Message"].startswith("interactions.phone.callbacks:"), body
    contract["interactions"]["phone"]["callbacks"] = "exclude"
    assert admin.put("/contracts/acme", contract)[0] == 201
    assert admin.get("/contracts/acme")[1]["interactions"]["phone"]["callbacks"] == "exclude"


def test_outbound_and_api_calls_are_no_offered_contacts_but_a_customer_chat_started_by_api_is(acme, later, stream):
    outbound = contact_record("o-1", HOTLINE, MONDAY_10, answered=10, method="OUTBOUND")
    api_call = contact_record("a-1", HOTLINE, MONDAY_10, answered=10, method="API")
    transferred = contact_record("o-2", HOTLINE, MONDAY_10 + timedelta(minutes=2), answered=100, method="TRANSFER",
                                 initial="o-1", previous="o-1")  # an outbound call an agent transferred
    chat = contact_record("chat-api", WEBCHAT, MONDAY_10, answered=12, channel="CHAT", method="API")
    assert counts(stream.deliver(outbound, api_call, transferred, chat), records=4, stored=4, contacts=3)
    assert phone_of(acme)["offered"] == 0
    assert (channels(acme)["chat"]["offered"], channels(acme)["chat"]["answered_within"]) == (1, 1)


def test_a_contact_never_queued_is_not_offered_and_one_without_an_agent_is_abandoned(acme, later, stream):
    never_queued = contact_record("nq-1", HOTLINE, MONDAY_10, gone=30)
    del never_queued["Queue"]["EnqueueTimestamp"], never_queued["Queue"]["DequeueTimestamp"]
    no_agent = contact_record("na-1", HOTLINE, MONDAY_10, gone=95)
    assert no_agent["Agent"] is None
    assert counts(stream.deliver(never_queued, no_agent), records=2, stored=2)
    assert phone_of(acme) == {"offered": 1, "answered": 0, "answered_within": 0, "abandoned": 1, "callbacks": 0,
                              "service_level": 0.0}


def test_tasks_and_emails_count_only_where_the_contract_defines_those_channels(admin, later, stream):
    contract = copy.deepcopy(CONTRACT)
    contract["interactions"]["task"] = {"answer_within": "4h", "target": 0.8, "hours": "24x7"}
    assert admin.put("/contracts/acme", contract)[0] == 201
    task = contact_record("t-1", HOTLINE, MONDAY_10, answered=600, channel="TASK", method="API")
    email = contact_record("e-1", HOTLINE, MONDAY_10, answered=60, channel="EMAIL")
    assert counts(stream.deliver(task, email), records=2, stored=1, unmapped=1)
    found = channels(admin)
    assert (found["task"]["offered"], found["task"]["answered_within"], "email" in found) == (1, 1, False)


def test_a_record_delivered_again_replaces_its_copy_and_an_older_copy_coming_late_changes_nothing(
        acme, later, stream):
    first, transfer = legs_of_an_agent_transfer()
    stream.deliver(first, transfer)
    assert counts(stream.deliver(transfer, first), records=2, stored=2, replaced=2, contacts=1)
    stale = copy.deepcopy(first)
    stale["Agent"], stale["NextContactId"] = None, None
    stale["LastUpdateTimestamp"] = stamp(MONDAY_10)
    assert counts(stream.deliver(stale), records=1, duplicates=1, contacts=1)
    assert phone_of(acme)["answered_within"] == 1 and phone_of(acme)["offered"] == 1


def test_legs_stored_by_another_consumer_meanwhile_are_read_again_and_none_is_lost(acme, later, stream, monkeypatch):
    """Two shards' consumers add legs of one customer contact at once: the second to write finds the
    customer contact changed (its version), reads it again and counts both legs."""
    from chalicelib import connect
    from chalicelib.aws import store
    first, transfer = legs_of_an_agent_transfer()
    stream.put(transfer)
    other_shard = stream.next_batch()["Records"]
    original, raced = botocore.client.BaseClient._make_api_call, []

    def racing(client, operation, params):
        if operation == "TransactWriteItems" and not raced:
            raced.append(operation)
            connect.consume(other_shard, datetime.now(UTC))  # the other consumer commits first
        return original(client, operation, params)

    stream.put(first)
    event = stream.next_batch()
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", racing)
    with Client(app):  # the stage's environment, as around an invocation
        result, failed = connect.consume(event["Records"], datetime.now(UTC))
    monkeypatch.undo()
    assert raced and failed == [] and counts(result, records=1, stored=1)
    [stored] = store.customer_contacts("acme", ["ct-1"]).values()
    assert sorted(stored.legs) == ["ct-1", "ct-2"] and stored.version == 2
    assert phone_of(acme) == {"offered": 1, "answered": 1, "answered_within": 1, "abandoned": 0, "callbacks": 0,
                              "service_level": 1.0}


def test_the_report_and_its_csv_show_customer_contacts_and_callbacks(acme, later, stream):
    with_callback_queue(acme)
    stream.deliver(*legs_of_an_agent_transfer(), *queued_callback(),
                   contact_record("ab-1", HOTLINE, MONDAY_10 + timedelta(minutes=30), gone=100))
    channels(acme)
    status, report = acme.get("/contracts/acme/reports?month=2026-11")
    assert status == 200
    phone = report["interactions"]["phone"]
    assert (phone["offered"], phone["answered"], phone["abandoned"], phone["callbacks"]) == (2, 1, 1, 1)
    assert report["kpi"]["service_level"]["phone"]["actual"] == 0.5
    with Client(app) as raw:
        response = raw.http.get("/contracts/acme/reports?month=2026-11&format=csv",
                                headers={"Authorization": f"Bearer {acme.token}"})
    rows = csv.DictReader(io.StringIO(response.body.decode("utf-8")))
    [monday] = [row for row in rows if row["date"] == "2026-11-23"]
    assert {key: monday[f"interactions.phone.{key}"] for key in ("offered", "answered", "abandoned", "callbacks",
                                                                 "service_level")} == {
        "offered": "2", "answered": "1", "abandoned": "1", "callbacks": "1", "service_level": "0.5"}


# --- the queue index --------------------------------------------------------------------------------


def dynamodb_calls(monkeypatch):
    """The DynamoDB operations made from now on, in order."""
    original, calls = botocore.client.BaseClient._make_api_call, []

    def recording(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def test_the_consumer_reads_the_same_per_batch_with_1_contract_or_50(acme, later, stream, monkeypatch):
    def batch_calls(first):
        stream.put(*[contact_record(f"c-{n}", HOTLINE, MONDAY_10 + timedelta(minutes=n), answered=20)
                     for n in range(first, first + 10)])
        event = stream.next_batch()
        with monkeypatch.context() as patch:
            calls = dynamodb_calls(patch)
            assert counts(invoke(event), records=10, stored=10)
        return calls

    alone = batch_calls(0)
    for n in range(1, 50):
        tenant = copy.deepcopy(CONTRACT)
        tenant["amazon_connect"] = {"queue_ids": [f"q-{n}"]}
        assert acme.put(f"/contracts/t{n:02d}", tenant)[0] == 201
    assert batch_calls(10) == alone
    # the queue index; acme's latest version and its country's published holidays; the legs; one transaction
    assert alone == ["BatchGetItem", "Query", "Query", "BatchGetItem", "TransactWriteItems"]


def test_a_queue_a_version_drops_is_free_for_another_contract_and_its_records_are_no_longer_this_ones(
        acme, later, stream):
    other = copy.deepcopy(CONTRACT)
    other["amazon_connect"] = {"queue_ids": [WEBCHAT]}
    assert acme.put("/contracts/beta", other)[0] == 409
    mine = copy.deepcopy(CONTRACT)
    mine["amazon_connect"] = {"queue_ids": [HOTLINE]}
    assert acme.put("/contracts/acme", mine)[0] == 200
    assert counts(stream.deliver(contact_record("w-1", WEBCHAT, MONDAY_10, answered=5, channel="CHAT")),
                  records=1, unknown_queue=1)
    assert acme.put("/contracts/beta", other)[0] == 201
    assert counts(stream.deliver(contact_record("w-2", WEBCHAT, MONDAY_10, answered=5, channel="CHAT")),
                  records=1, stored=1)
    assert acme.post("/contracts/beta/tallies", {"date": "2026-11-23"})[1]["interactions"]["chat"]["offered"] == 1


def test_a_claim_left_behind_by_a_put_that_died_neither_routes_records_nor_blocks_another_contract(
        acme, later, stream):
    from chalicelib.aws.tables import ConnectQueueModel
    ConnectQueueModel("q-left", contract_id="acme").save()  # acme's latest version does not list it
    assert counts(stream.deliver(contact_record("l-1", "q-left", MONDAY_10, answered=5)), records=1,
                  unknown_queue=1)
    other = copy.deepcopy(CONTRACT)
    other["amazon_connect"] = {"queue_ids": ["q-left"]}
    assert acme.put("/contracts/beta", other)[0] == 201
    assert ConnectQueueModel.get("q-left").contract_id == "beta"


def test_of_two_contracts_claiming_one_queue_at_once_the_first_to_commit_keeps_it(admin, later, monkeypatch):
    """beta's PUT reads the index before acme's version commits: its transaction fails on the claim, it
    tries again, reads acme's claim and is refused."""
    from chalicelib.aws import store
    from chalicelib.aws.tables import ConnectQueueModel
    original, raced = botocore.client.BaseClient._make_api_call, []

    def racing(client, operation, params):
        if operation == "TransactWriteItems" and "beta" in json.dumps(params) and not raced:
            raced.append(operation)  # acme's PUT commits first
            store.save_contract_version("acme", 1, CONTRACT, "t-admin", datetime.now(UTC), {HOTLINE, WEBCHAT})
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", racing)
    status, body = admin.put("/contracts/beta", CONTRACT)
    assert status == 409 and body["Message"].startswith("amazon_connect.queue_ids:") and "acme" in body["Message"]
    assert raced and ConnectQueueModel.get(HOTLINE).contract_id == "acme"


def test_contracts_stored_before_the_queue_index_get_their_queues_claimed_once(acme, later, stream, capsys,
                                                                                monkeypatch):
    from chalicelib.aws.tables import ConnectQueueModel
    spec = importlib.util.spec_from_file_location("index_connect_queues", ROOT / "scripts" / "index_connect_queues.py")
    index_connect_queues = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(index_connect_queues)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the script sets the stage's variables
    for claim in ConnectQueueModel.scan():
        claim.delete()  # as before the index existed
    assert counts(stream.deliver(contact_record("u-1", HOTLINE, MONDAY_10, answered=5)), records=1,
                  unknown_queue=1)
    index_connect_queues.main(["--stage", "dev"])
    assert "2 queue(s) claimed" in capsys.readouterr().out
    assert counts(stream.deliver(contact_record("u-2", HOTLINE, MONDAY_10, answered=5)), records=1, stored=1)
    index_connect_queues.main(["--stage", "dev"])
    assert "0 queue(s) claimed" in capsys.readouterr().out


def test_a_new_version_lists_at_most_50_queues(admin):
    status, body = admin.put("/contracts/acme", {**CONTRACT, "amazon_connect": {"queue_ids": [f"q-{n}" for n in
                                                                                               range(51)]}})
    assert status == 400 and body["Message"].startswith("amazon_connect.queue_ids:"), body
    assert admin.put("/contracts/acme", {**CONTRACT, "amazon_connect": {"queue_ids": [f"q-{n}" for n in
                                                                                      range(50)]}})[0] == 201


# --- the pure rules ---------------------------------------------------------------------------------


def leg(contact_id, method="INBOUND", enqueued=0, answered=None, gone=None, previous=None, following=None, **more):
    """A Leg with its times in seconds after MONDAY_10."""
    def moment(seconds):
        return None if seconds is None else MONDAY_10 + timedelta(seconds=seconds)
    return Leg(contact_id, method, more.pop("channel", "VOICE"), moment(enqueued), moment(answered), moment(gone),
               previous, following, **more)


def test_a_customer_contact_is_measured_across_its_legs():
    def of(*legs):
        return customer_interaction("c", {each.contact_id: each for each in legs}, "phone")

    waits = of(leg("c", gone=40, following="t"), leg("t", "QUEUE_TRANSFER", 40, answered=70, previous="c"))
    assert (waits.offered_at, waits.answered_at, waits.abandoned_at) == (MONDAY_10, MONDAY_10 + timedelta(
        seconds=70), None)
    gave_up = of(leg("c", gone=40, following="t"), leg("t", "QUEUE_TRANSFER", 40, gone=200, previous="c"))
    assert gave_up.abandoned_at == MONDAY_10 + timedelta(seconds=200)  # the last leg's end, not the first's
    assert of(leg("c", enqueued=None, gone=10)) is None  # never queued
    assert of(leg("c", "OUTBOUND", answered=5), leg("t", "TRANSFER", 30, answered=40, previous="c")) is None
    assert of(leg("c", "API", answered=5, channel="CHAT")).answered_at is not None
    assert of(leg("c", "API", answered=5)) is None  # a call started through the API: outbound
    callback = of(leg("c", gone=120, following="b"), leg("b", "CALLBACK", 219, answered=240, previous="c"))
    assert callback.callback and callback.answered_at == MONDAY_10 + timedelta(seconds=240)
    going_on = of(leg("c", gone=None))
    assert (going_on.answered_at, going_on.abandoned_at) == (None, None)
    consulted = of(leg("c", answered=10, following="x"), leg("x", "MONITOR", previous="c", enqueued=None))
    assert consulted.answered_at == MONDAY_10 + timedelta(seconds=10)
