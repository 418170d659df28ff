"""scripts/replay_failed.py against moto's SQS, Kinesis and CloudFormation: the on-failure messages
Lambda writes for the asynchronous `ses_events` (the event itself) and for the Kinesis mapping of
`connect_contact_records` (only where the batch lies) are replayed through the app; a message is
deleted only when its replay succeeded. Lambda itself is the function boundary: `invoke` runs the
function through chalice.test, as Lambda would, and fails as Lambda reports a function error."""
import importlib.util
import io
import json
from datetime import timedelta
from pathlib import Path

import boto3
import botocore.client
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from chalice.test import Client
from test_connect import CONTRACT, HOTLINE, MONDAY_10, Stream, channels, contact_record, throttled_for

from app import app
from chalicelib.aws.tables import NotificationModel

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("replay_failed", ROOT / "scripts" / "replay_failed.py")
replay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replay)
_ses_spec = importlib.util.spec_from_file_location("ses_event_script", ROOT / "scripts" / "ses_event.py")
ses_event_script = importlib.util.module_from_spec(_ses_spec)
_ses_spec.loader.exec_module(ses_event_script)

REGION, ACCOUNT = "us-east-1", "123456789012"
FUNCTIONS = {f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sla-clock-dev-SesEvents-AbC123:$LATEST": "ses_events",
             f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sla-clock-dev-ConnectContactRecords-Def456":
             "connect_contact_records"}
SES_EVENTS_ARN, CONSUMER_ARN = list(FUNCTIONS)
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


class Lambda:
    """Lambda invoking the app's functions (by the ARN an on-failure message names) through chalice.test."""

    def __init__(self):
        self.invocations = []

    def __call__(self, function_arn, event):
        self.invocations.append((FUNCTIONS[function_arn], event))
        try:
            with Client(app) as client:
                return client.lambda_.invoke(FUNCTIONS[function_arn], event).payload
        except Exception as exc:  # noqa: BLE001 - what Lambda reports as a function error
            raise replay.ReplayFailed(f"{type(exc).__name__}: {exc}") from None


@pytest.fixture
def queue(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs, sqs.create_queue(QueueName="sla-clock-dev-failed")["QueueUrl"]


def async_failure(event):
    """What Lambda writes to an asynchronous function's on-failure destination after its retries."""
    return {"version": "1.0", "timestamp": "2026-11-23T02:01:00.000Z",
            "requestContext": {"requestId": "e0f1-request", "functionArn": SES_EVENTS_ARN,
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "slow down", "errorType": "ProvisionedThroughputExceededException"}}


def kinesis_failure(stream, first, last, count):
    """What the Kinesis mapping writes to its on-failure destination: where the batch lies, not its data."""
    return {"requestContext": {"requestId": "c0ffee", "functionArn": CONSUMER_ARN,
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0", "timestamp": "2026-11-30T04:00:00.000Z",
            "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": first,
                                 "endSequenceNumber": last, "approximateArrivalOfFirstRecord": "2026-11-30T03:00:00Z",
                                 "approximateArrivalOfLastRecord": "2026-11-30T03:00:01Z", "batchSize": count,
                                 "streamArn": stream.arn}}


def waiting(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def bounce_event(agent):
    """A request's acknowledgement and the SNS event of its permanent bounce, as ses_events receives it."""
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    entry = NotificationModel.get(body["request_id"], "acknowledgement")
    message = ses_event_script.ses_event("bounce", entry.message_id, [REQUEST["requester"]["email"]],
                                         MONDAY_10 + timedelta(minutes=1))
    with Client(app) as client:
        return body["request_id"], client.events.generate_sns_event(message=json.dumps(message))


def test_a_failed_ses_event_is_invoked_again_with_its_payload_and_deleted(acme, mailbox, clock, queue):
    _, agent, _ = acme
    sqs, url = queue
    request_id, event = bounce_event(agent)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(async_failure(event)))
    lines, invoke = [], Lambda()
    outcome = replay.Replayer(sqs, boto3.client("kinesis", region_name=REGION), invoke, lines.append).replay_queue(url)
    assert (outcome.replayed, outcome.failed) == (1, 0)
    assert invoke.invocations == [("ses_events", event)]
    assert NotificationModel.get(request_id, "acknowledgement").bounced_at is not None
    assert mailbox.to("sla-admin@provider.example")  # the requester's bounce reached the admins after all
    assert waiting(sqs, url) == 0
    assert "replayed the event of request e0f1-request, deleted" in lines[0] and "1 replayed, 0 failed" in lines[-1]


def test_a_replay_that_fails_again_leaves_its_message_in_the_queue(acme, mailbox, clock, queue, monkeypatch):
    _, agent, _ = acme
    sqs, url = queue
    request_id, event = bounce_event(agent)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(async_failure(event)))
    original = botocore.client.BaseClient._make_api_call

    def throttled(client, operation, params):
        if operation == "UpdateItem" and "bounced_at" in json.dumps(params):
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    lines = []
    outcome = replay.Replayer(sqs, None, Lambda(), lines.append).replay_queue(url)
    assert (outcome.replayed, outcome.failed) == (0, 1)
    assert waiting(sqs, url) == 1 and "slow down" in lines[0]
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    assert NotificationModel.get(request_id, "acknowledgement").bounced_at is None


@pytest.fixture
def connect(admin):
    assert admin.put("/contracts/acme", CONTRACT)[0] == 201
    return admin


@pytest.fixture
def later():
    import time_machine

    with time_machine.travel(MONDAY_10 + timedelta(days=7), tick=False) as traveller:
        yield traveller


def test_a_failed_kinesis_batch_is_read_back_from_the_stream_and_replayed(connect, later, queue):
    sqs, url = queue
    stream = Stream()
    stream.put(*[contact_record(f"c-{n}", HOTLINE, MONDAY_10 + timedelta(minutes=n), answered=20) for n in range(6)])
    sequences = [r["kinesis"]["sequenceNumber"] for r in stream.next_batch()["Records"]]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(kinesis_failure(stream, sequences[1], sequences[3], 3)))
    invoke = Lambda()
    outcome = replay.Replayer(sqs, boto3.client("kinesis", region_name=REGION), invoke, print).replay_queue(url)
    assert (outcome.replayed, outcome.failed) == (1, 0)
    [(function, event)] = invoke.invocations
    assert function == "connect_contact_records"
    assert [r["kinesis"]["sequenceNumber"] for r in event["Records"]] == sequences[1:4]  # the batch, no more
    assert {r["eventSourceARN"] for r in event["Records"]} == {stream.arn}
    assert channels(connect)["phone"]["offered"] == 3
    assert waiting(sqs, url) == 0


def test_a_kinesis_replay_whose_records_fail_again_keeps_its_message(connect, later, queue, monkeypatch):
    sqs, url = queue
    stream = Stream()
    stream.put(*[contact_record(f"c-{n}", HOTLINE, MONDAY_10 + timedelta(minutes=n), answered=20) for n in range(2)])
    sequences = [r["kinesis"]["sequenceNumber"] for r in stream.next_batch()["Records"]]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(kinesis_failure(stream, sequences[0], sequences[1], 2)))
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled_for("acme"))
    lines = []
    outcome = replay.Replayer(sqs, boto3.client("kinesis", region_name=REGION), Lambda(), lines.append
                              ).replay_queue(url)
    assert (outcome.replayed, outcome.failed) == (0, 1)
    assert "asked to retry 2 record(s)" in lines[0] and waiting(sqs, url) == 1


def test_records_gone_from_the_stream_are_reported_and_the_message_kept(aws, queue):
    sqs, url = queue
    stream = Stream()
    message = kinesis_failure(stream, "49590338271490256608559692538361571095921575989136588898",
                              "49590338271490256608559692538361571095921575989136588899", 2)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
    lines, invoke = [], Lambda()
    outcome = replay.Replayer(sqs, boto3.client("kinesis", region_name=REGION), invoke, lines.append
                              ).replay_queue(url)
    assert (outcome.replayed, outcome.failed, invoke.invocations) == (0, 1, [])
    assert "no longer holds" in lines[0] and waiting(sqs, url) == 1


def test_a_message_that_is_no_on_failure_record_is_reported_and_kept(aws, queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"requestContext": {"functionArn": SES_EVENTS_ARN}}))
    lines = []
    outcome = replay.Replayer(sqs, None, Lambda(), lines.append).replay_queue(url)
    assert (outcome.replayed, outcome.failed) == (0, 2) and waiting(sqs, url) == 2
    assert any("not an on-failure message" in line for line in lines)


def test_a_dry_run_through_the_stack_outputs_lists_and_changes_nothing(connect, later, capsys):
    """main() finds the queues in the stack's outputs; --dry-run invokes nothing and deletes nothing."""
    stream = Stream()
    stream.put(contact_record("c-1", HOTLINE, MONDAY_10, answered=20))
    [sequence] = [r["kinesis"]["sequenceNumber"] for r in stream.next_batch()["Records"]]
    template = {"Resources": {name: {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"q-{name}"}}
                              for name in ("SesEventsFailedQueue", "ConnectContactRecordsFailedQueue")},
                "Outputs": {f"{name}Url": {"Value": {"Ref": name}}
                            for name in ("SesEventsFailedQueue", "ConnectContactRecordsFailedQueue")}}
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName="sla-clock-dev", TemplateBody=json.dumps(template))
    sqs = boto3.client("sqs", region_name=REGION)
    urls = replay.queue_urls(cloudformation, "sla-clock-dev")
    assert len(urls) == 2
    sqs.send_message(QueueUrl=urls[1], MessageBody=json.dumps(kinesis_failure(stream, sequence, sequence, 1)))
    assert replay.main(["--stack", "sla-clock-dev", "--dry-run"], session=boto3.session.Session(
        region_name=REGION)) == 0
    out = capsys.readouterr().out
    assert f"would invoke {CONSUMER_ARN} with 1 record(s) of shardId-000000000000 from {sequence}" in out
    assert "0 replayed, 0 failed (left in the queue), 1 to replay (dry run)" in out
    assert waiting(sqs, urls[1]) == 1 and channels(connect)["phone"]["offered"] == 0


def test_the_lambda_invoker_reports_a_function_error_as_a_failed_replay():
    client = boto3.client("lambda", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    invoke = replay.lambda_invoker(client)

    def answer(payload, **more):
        body = json.dumps(payload).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body)), **more}

    with Stubber(client) as stubber:
        stubber.add_response("invoke", answer({"outcome": "recorded"}),
                             {"FunctionName": SES_EVENTS_ARN, "InvocationType": "RequestResponse",
                              "Payload": b'{"Records": []}'})
        stubber.add_response("invoke", answer({"errorMessage": "slow down"}, FunctionError="Unhandled"))
        assert invoke(SES_EVENTS_ARN, {"Records": []}) == {"outcome": "recorded"}
        with pytest.raises(replay.ReplayFailed, match="slow down"):
            invoke(SES_EVENTS_ARN, {"Records": []})
