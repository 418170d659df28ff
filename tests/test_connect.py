"""Amazon Connect contact records through a Kinesis stream (moto) into `connect_contact_records`: the
records are sample contact records written after the documented data model, delivered as Lambda's
Kinesis poller delivers them (base64 data, sequence numbers, at least once)."""
import base64
import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import boto3
import botocore.client
import pytest
import time_machine
from botocore.exceptions import ClientError
from chalice.test import Client

from app import CONTACT_RECORD_STREAM, app
from conftest import DEMO_CONTRACT

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
    return [("Channel a list", channel_list), ("EnqueueTimestamp a number", enqueue_number),
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
