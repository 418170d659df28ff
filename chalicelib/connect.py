"""Amazon Connect contact records → interactions (the `connect_contact_records` Kinesis consumer).

Connect streams one JSON contact record per contact, at least once (a record is delivered again when
new information arrives). What a service level needs of one, in the documented data model:
`ContactId`, `Channel` (VOICE, CHAT; TASK and EMAIL are not calls or chats), `Queue.ARN` (its last
part after "/queue/" is the queue id) and `Queue.EnqueueTimestamp` (when the customer started waiting),
`Agent.ConnectedToAgentTimestamp` (answered) and `DisconnectTimestamp` (no agent: abandoned then).

The record goes to the contract whose `amazon_connect.queue_ids` lists its queue, as an interaction of
channel `phone` (VOICE) or `chat` (CHAT) with the ContactId as its id, so a re-delivered record
replaces the first. What cannot be used is counted and skipped, never raised: the shard must not stop
on a record that will never read better (unknown queues, contacts that never queued, channels the
contract does not measure, malformed records: not base64, not JSON, nested too deep, a field of
another shape; those are logged with their sequence number, never their content, and counted in the
`MalformedEvents` metric).

A failure to store a contract's interactions (DynamoDB throttling, say) is reported as a partial
batch failure: the sequence numbers of that contract's records go back to Lambda (the event source
mapping has `ReportBatchItemFailures`), which checkpoints before the lowest of them and retries from
there, so the records stored before it are not read again. Storing a record again changes nothing.
Powertools' batch processor is not used: it handles one record at a time, and this consumer needs the
whole batch to keep the latest copy of a contact and to write each contract's records together.
"""
import base64
import json
import logging
from collections import Counter

from chalicelib import interactions
from chalicelib.aws import metrics, records, store
from chalicelib.core.errors import ValidationError
from chalicelib.core.intake import parse_interaction
from chalicelib.logs import log_event

CHANNELS = {"VOICE": "phone", "CHAT": "chat"}
logger = logging.getLogger("sla_clock.connect")


class Malformed(Exception):
    """A contact record this consumer cannot read."""


def contact_interaction(record):
    """(queue id, interaction item as POST /contracts/{id}/interactions takes it, LastUpdateTimestamp)
    of a contact record; None for a contact that is no call or chat or never waited in a queue.
    Raises Malformed when a field the model defines has another shape."""
    if not isinstance(record, dict):
        raise Malformed("not a JSON object")
    contact_id = record.get("ContactId")
    if not isinstance(contact_id, str) or not contact_id:
        raise Malformed("no ContactId")
    queue, agent = record.get("Queue"), record.get("Agent")
    if queue is not None and not isinstance(queue, dict):
        raise Malformed("Queue is not an object")
    if agent is not None and not isinstance(agent, dict):
        raise Malformed("Agent is not an object")
    if not isinstance(record.get("Channel"), str | None):
        raise Malformed("Channel is not a string")
    channel = CHANNELS.get(record.get("Channel"))
    if channel is None or not queue or queue.get("EnqueueTimestamp") is None:
        return None
    arn = queue.get("ARN")
    if not isinstance(arn, str) or "/queue/" not in arn:
        raise Malformed("Queue.ARN is not a queue ARN")
    answered = (agent or {}).get("ConnectedToAgentTimestamp")
    item = {"id": contact_id, "channel": channel, "offered_at": queue["EnqueueTimestamp"], "answered_at": answered,
            "abandoned_at": None if answered is not None else record.get("DisconnectTimestamp")}
    return arn.rsplit("/queue/", 1)[1], item, str(record.get("LastUpdateTimestamp") or "")


def queue_directory():
    """{queue id: (contract id, policy)} of every contract that lists Connect queues: one read per
    contract, once per batch of records."""
    memo, found = {}, {}
    for contract_id in store.contract_ids():
        record = store.latest_contract(contract_id)
        if record is None or not (record.document.get("amazon_connect") or {}).get("queue_ids"):
            continue
        policy = records.policy_of(record, memo)
        for queue_id in policy.amazon_connect_queues:
            found.setdefault(queue_id, (contract_id, policy))  # contracts cannot share a queue (PUT refuses)
    return found


def sequence_number(record):
    """The sequence number of one record of Lambda's Kinesis event; None when it has none."""
    kinesis = record.get("kinesis") if isinstance(record, dict) else None
    sequence = kinesis.get("sequenceNumber") if isinstance(kinesis, dict) else None
    return sequence if isinstance(sequence, str) and sequence else None


def read_record(record):
    """The contact record in one record of Lambda's Kinesis event. Raises Malformed for anything that is
    no base64-encoded JSON document."""
    data = record["kinesis"].get("data") if sequence_number(record) else None
    if not isinstance(data, str):
        raise Malformed("not a Kinesis record with a sequence number and data")
    try:
        data = base64.b64decode(data, validate=True)
    except ValueError:  # binascii.Error
        raise Malformed("data is not base64") from None
    try:
        return json.loads(data)
    except ValueError:  # UnicodeDecodeError is one too
        raise Malformed("data is not JSON") from None
    except RecursionError:
        raise Malformed("data is JSON nested too deep to read") from None


def consume(event_records, now):
    """Store the interactions of the records of a Lambda Kinesis event. Returns (counts, failed): the
    counts are records, stored, replaced, duplicates (the same contact twice in the batch: the copy
    with the latest LastUpdateTimestamp is kept), unknown_queue, skipped, malformed and failed; `failed`
    lists the sequence numbers of the records whose contract could not be stored, lowest first."""
    counts = Counter(records=len(event_records))
    directory, unknown = queue_directory(), Counter()
    by_contract = {}  # contract id -> {contact id: (last update, Interaction)}
    sequences = {}  # contract id -> sequence numbers of its records
    for position, record in enumerate(event_records):
        sequence = sequence_number(record)
        try:
            found = _interaction_of(record, directory, now)
        except (Malformed, ValidationError) as exc:
            _malformed(counts, sequence, position, exc.message if isinstance(exc, ValidationError) else str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - reading is pure: a retry would fail the same way forever
            _malformed(counts, sequence, position, f"unreadable ({type(exc).__name__})")
            continue
        if isinstance(found, str):  # a queue no contract lists
            unknown[found] += 1
            continue
        if found is None:
            counts["skipped"] += 1
            continue
        contract_id, interaction, last_update = found
        sequences.setdefault(contract_id, []).append(sequence)
        batch = by_contract.setdefault(contract_id, {})
        if interaction.id in batch:
            counts["duplicates"] += 1
            if batch[interaction.id][0] > last_update:
                continue
        batch[interaction.id] = (last_update, interaction)
    failed = []
    for contract_id, batch in sorted(by_contract.items()):
        try:
            stored = interactions.store_batch(contract_id, [interaction for _, interaction in batch.values()])
        except Exception as exc:  # noqa: BLE001 - Lambda retries these records; the others are done
            failed += sequences[contract_id]
            log_event(logger, "contact records not stored: retried", level=logging.ERROR, contract_id=contract_id,
                      sequence_numbers=sequences[contract_id][:20], error=f"{type(exc).__name__}: {exc}"[:500])
            continue
        counts["stored"] += stored["accepted"]
        counts["replaced"] += stored["replaced"]
    counts["unknown_queue"] = sum(unknown.values())
    counts["failed"] = len(failed)
    result = {key: counts[key] for key in ("records", "stored", "replaced", "duplicates", "unknown_queue",
                                           "skipped", "malformed", "failed")}
    log_event(logger, "contact records consumed", **result, unknown_queues=sorted(unknown)[:20])
    if counts["malformed"]:
        metrics.emit("MalformedEvents", counts["malformed"], Source="connect_contact_records")
    return result, sorted(failed, key=int)


def _interaction_of(record, directory, now):
    """What one record of the event is to the contracts: (contract id, Interaction, LastUpdateTimestamp);
    the queue id when no contract lists its queue; None when it is nothing to measure (no call or chat,
    never queued, a channel the contract does not measure). Raises Malformed or ValidationError."""
    found = contact_interaction(read_record(record))
    if found is None:
        return None
    queue_id, item, last_update = found
    if queue_id not in directory:
        return queue_id
    contract_id, policy = directory[queue_id]
    if item["channel"] not in policy.interactions:
        return None
    return contract_id, parse_interaction(item, "record", policy, now), last_update


def _malformed(counts, sequence, position, why):
    """Count and log a record that cannot be used: its sequence number (or its place in the batch when
    it has none) and why, never what it holds."""
    counts["malformed"] += 1
    log_event(logger, "contact record skipped: malformed", level=logging.WARNING, sequence_number=sequence,
              position=position, error=why[:500])
