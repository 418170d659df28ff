"""Replay what the event sources gave up on: the messages of the on-failure SQS queues of a stage.

Two kinds of message, told apart by their content:

- `ses_events` (SNS invokes it asynchronously): after Lambda's retries the message holds the original
  event as `requestPayload`; it is invoked again with it.
- `connect_contact_records` (the Kinesis mapping): the message holds only where the failed batch lies
  (`KinesisBatchInfo`: stream, shard, first and last sequence number); the records are read back from
  the stream (GetShardIterator AT_SEQUENCE_NUMBER, then GetRecords up to the last sequence number) and
  the consumer is invoked with them, as the mapping would. The stream keeps records 24 hours by
  default: replay before they expire (the script says when they are gone).

Both functions are idempotent, so a replay of something recorded meanwhile changes nothing. A message
is deleted only once its replay succeeded (the invocation did not fail and, for Kinesis, reported no
record to retry); otherwise it stays, and is visible again after the visibility timeout.

Usage, with credentials for the stage's account and region:
  python scripts/replay_failed.py --stack sla-clock-prod            the queues the stack's outputs name
  python scripts/replay_failed.py --queue-url URL [--queue-url URL]
  ... --dry-run                                                     say what would be replayed, change nothing
"""
import argparse
import base64
import json
import sys
from dataclasses import dataclass

import boto3

QUEUE_OUTPUTS = ("SesEventsFailedQueueUrl", "ConnectContactRecordsFailedQueueUrl")
VISIBILITY_TIMEOUT = 300  # seconds a received message stays hidden while it is replayed
MAX_RECORDS_PER_READ = 1000


class ReplayFailed(Exception):
    """A replay that did not succeed: its message stays in the queue."""


@dataclass
class Outcome:
    replayed: int = 0
    failed: int = 0
    skipped: int = 0  # dry run: what would have been replayed


def lambda_invoker(client):
    """invoke(function ARN, event) -> the function's answer through the Lambda API; ReplayFailed when
    the invocation failed."""

    def invoke(function_arn, event):
        answer = client.invoke(FunctionName=function_arn, InvocationType="RequestResponse",
                               Payload=json.dumps(event).encode("utf-8"))
        payload = answer["Payload"].read()
        result = json.loads(payload) if payload else None
        if answer.get("FunctionError"):
            message = result.get("errorMessage") if isinstance(result, dict) else payload[:200]
            raise ReplayFailed(f"{function_arn} failed: {message}")
        return result

    return invoke


class Replayer:
    def __init__(self, sqs, kinesis, invoke, out=print):
        self.sqs, self.kinesis, self.invoke, self.out = sqs, kinesis, invoke, out

    def replay_queue(self, queue_url, dry_run=False):
        """Replay every message of the queue once; returns the Outcome."""
        outcome, seen = Outcome(), set()
        while True:
            messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                VisibilityTimeout=VISIBILITY_TIMEOUT).get("Messages", [])
            fresh = [m for m in messages if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                self._replay_message(queue_url, message, dry_run, outcome)
        self.out(f"{queue_url}: {outcome.replayed} replayed, {outcome.failed} failed (left in the queue)"
                 + (f", {outcome.skipped} to replay (dry run)" if dry_run else ""))
        return outcome

    def _replay_message(self, queue_url, message, dry_run, outcome):
        label = f"message {message['MessageId']}"
        try:
            body = json.loads(message["Body"])
            function_arn, event, what = self.event_of(body)
        except (ValueError, KeyError, TypeError, ReplayFailed) as exc:
            outcome.failed += 1
            self.out(f"  {label}: cannot replay: {exc}")
            return
        if dry_run:
            outcome.skipped += 1
            self.out(f"  {label}: would invoke {function_arn} with {what}")
            return
        try:
            answer = self.invoke(function_arn, event)
            retry = (answer or {}).get("batchItemFailures") if isinstance(answer, dict) else None
            if retry:
                raise ReplayFailed(f"the consumer asked to retry {len(retry)} record(s)")
        except ReplayFailed as exc:
            outcome.failed += 1
            self.out(f"  {label}: {what}: {exc}")
            return
        self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        outcome.replayed += 1
        self.out(f"  {label}: replayed {what}, deleted")

    def event_of(self, body):
        """(function ARN, event to invoke it with, a short description) of an on-failure message."""
        function_arn = body["requestContext"]["functionArn"]
        if "KinesisBatchInfo" in body:
            batch = body["KinesisBatchInfo"]
            records = self.read_batch(batch)
            return function_arn, {"Records": records}, (
                f"{len(records)} record(s) of {batch['shardId']} from {batch['startSequenceNumber']}")
        if "requestPayload" in body:
            return function_arn, body["requestPayload"], f"the event of request {body['requestContext']['requestId']}"
        raise ReplayFailed("neither requestPayload nor KinesisBatchInfo: not an on-failure message of Lambda")

    def read_batch(self, batch):
        """The records of a failed Kinesis batch, as Lambda's event carries them."""
        stream_arn, shard, first, last = (batch["streamArn"], batch["shardId"], batch["startSequenceNumber"],
                                          batch["endSequenceNumber"])
        try:
            iterator = self.kinesis.get_shard_iterator(StreamARN=stream_arn, ShardId=shard,
                                                       ShardIteratorType="AT_SEQUENCE_NUMBER",
                                                       StartingSequenceNumber=first)["ShardIterator"]
        except self.kinesis.exceptions.InvalidArgumentException as exc:
            raise ReplayFailed(f"the stream no longer holds {first} (past its retention?): {exc}") from None
        records = []
        while iterator:
            answer = self.kinesis.get_records(ShardIterator=iterator, Limit=MAX_RECORDS_PER_READ,
                                              StreamARN=stream_arn)
            for record in answer["Records"]:
                if int(record["SequenceNumber"]) > int(last):
                    return records
                records.append(lambda_record(record, stream_arn, shard))
            if records and records[-1]["kinesis"]["sequenceNumber"] == last:
                return records
            if not answer["Records"] and not answer.get("MillisBehindLatest"):
                break  # the end of what the shard holds
            iterator = answer.get("NextShardIterator")
        if not records:
            raise ReplayFailed(f"the stream no longer holds the records from {first} (past its retention?)")
        return records


def lambda_record(record, stream_arn, shard):
    """A Kinesis record (GetRecords) as Lambda's event source mapping hands it to the function."""
    sequence = record["SequenceNumber"]
    arrival = record.get("ApproximateArrivalTimestamp")
    return {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": record["PartitionKey"], "sequenceNumber": sequence,
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": arrival.timestamp() if arrival else None},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
        "eventID": f"{shard}:{sequence}", "awsRegion": stream_arn.split(":")[3], "eventSourceARN": stream_arn,
    }


def queue_urls(cloudformation, stack):
    """The on-failure queues a stack's outputs name (the Kinesis one only when the stack reads a stream)."""
    [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return [outputs[key] for key in QUEUE_OUTPUTS if key in outputs]


def main(argv=None, session=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="the stage's stack, e.g. sla-clock-prod: its on-failure queues")
    parser.add_argument("--queue-url", action="append", default=[], help="a queue to replay (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")
    args = parser.parse_args(argv)
    session = session or boto3.session.Session()
    urls = list(args.queue_url)
    if args.stack:
        urls += queue_urls(session.client("cloudformation"), args.stack)
    if not urls:
        parser.error("name a --stack or at least one --queue-url")
    replayer = Replayer(session.client("sqs"), session.client("kinesis"), lambda_invoker(session.client("lambda")))
    failed = sum(replayer.replay_queue(url, dry_run=args.dry_run).failed for url in urls)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
