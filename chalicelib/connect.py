"""Amazon Connect contact records → interactions (the `connect_contact_records` Kinesis consumer).

Connect streams one JSON contact record per contact leg, at least once (a record is delivered again
when new information arrives). What a service level needs of one, in the documented data model:
`ContactId`, `InitialContactId` (the customer contact it is a leg of; none on the first leg),
`PreviousContactId` / `NextContactId`, `InitiationMethod`, `Channel` (VOICE, CHAT, TASK, EMAIL),
`Queue.ARN` (its last part after "/queue/" is the queue id) and `Queue.EnqueueTimestamp` (when the
customer started waiting), `Agent.ConnectedToAgentTimestamp` (answered), `DisconnectTimestamp` and
`TransferredToEndpoint` (left Connect for another number).

A record goes to the contract whose `amazon_connect.queue_ids` lists its queue: the queue index
(`store.queue_claims`, written by the contract PUT) answers for the whole batch in one read, however
many contracts there are. It is a leg of the customer contact `InitialContactId` (or its own
ContactId), counted once per customer contact as core.customer_contacts says: the legs are stored
together, a re-delivered record replaces its earlier copy, and the customer contact's interaction is
computed again from all its stored legs, whatever order they came in. Contracts measure VOICE as
`phone`, CHAT as `chat`, TASK as `task` and EMAIL as `email`, each only when the contract defines that
channel (the others are counted `unmapped` and skipped).

What cannot be used is counted and skipped, never raised: the shard must not stop on a record that
will never read better (unknown queues, contacts that never reached a queue, unmapped channels,
malformed records: not base64, not JSON, nested too deep, a field of another shape; those are logged
with their sequence number, never their content, and counted in the `MalformedEvents` metric, as
batches.read_each does for every consumer).

A failure to store a contract's legs (DynamoDB throttling, say) is reported as a partial batch
failure: the sequence numbers of that contract's records go back to Lambda (the event source mapping
has `ReportBatchItemFailures`), which checkpoints before the lowest of them and retries from there, so
the records stored before it are not read again. Storing a record again changes nothing.
Powertools' batch processor is not used: it handles one record at a time, and this consumer needs the
whole batch to keep the latest copy of a contact and to write each contract's records together
(docs/architecture.md, "Event-source batches").
"""
import base64
import json
import logging
from collections import Counter

from chalicelib import evaluation, interactions
from chalicelib.aws import store
from chalicelib.batches import Unreadable, read_each
from chalicelib.core.customer_contacts import CHANNELS, Leg, newer
from chalicelib.core.errors import ValidationError
from chalicelib.core.fields import instant, text
from chalicelib.core.intake import INTERACTION_RETENTION, MAX_INTERACTION_ID
from chalicelib.core.policy import MAX_QUEUE_ID
from chalicelib.logs import log_event

logger = logging.getLogger("sla_clock.connect")
COUNTS = ("records", "stored", "replaced", "duplicates", "contacts", "unknown_queue", "unmapped", "skipped",
          "malformed", "failed")


class Malformed(Unreadable):
    """A contact record this consumer cannot read."""


def contact_leg(record, now):
    """(queue id, customer contact id, Leg) of a contact record; None for a contact of another channel
    or that no queue took (it cannot be told whose it is). Raises Malformed when a field the model
    defines has another shape, ValidationError when a timestamp is no timestamp or out of order."""
    if not isinstance(record, dict):
        raise Malformed("not a JSON object")
    contact_id = _contact_id(record, "ContactId")
    if contact_id is None:
        raise Malformed("no ContactId")
    queue, agent = _object(record, "Queue"), _object(record, "Agent")
    for key in ("Channel", "InitiationMethod"):
        if not isinstance(record.get(key), str | None):
            raise Malformed(f"{key} is not a string")
    if record.get("Channel") not in CHANNELS or not queue:
        return None
    arn = queue.get("ARN")
    if not isinstance(arn, str) or "/queue/" not in arn:
        raise Malformed("Queue.ARN is not a queue ARN")
    queue_id = text(arn.rsplit("/queue/", 1)[1], "record.Queue.ARN", MAX_QUEUE_ID)  # a key of the queue index
    enqueued = _time(queue, "EnqueueTimestamp", "Queue.", now)
    if enqueued is not None and enqueued < now - INTERACTION_RETENTION:
        raise ValidationError("record.Queue.EnqueueTimestamp", f"is older than the {INTERACTION_RETENTION.days} "
                                                               "days interactions are kept")
    answered = _time(agent or {}, "ConnectedToAgentTimestamp", "Agent.", now)
    if answered is not None and enqueued is not None and answered < enqueued:
        raise ValidationError("record.Agent.ConnectedToAgentTimestamp", "must not precede Queue.EnqueueTimestamp")
    next_id = _contact_id(record, "NextContactId")
    leg = Leg(contact_id, record.get("InitiationMethod") or "", record["Channel"], enqueued, answered,
              _time(record, "DisconnectTimestamp", "", now), _contact_id(record, "PreviousContactId"), next_id,
              transferred_out=bool(record.get("TransferredToEndpoint")) and next_id is None,
              updated=str(record.get("LastUpdateTimestamp") or ""))
    return queue_id, _contact_id(record, "InitialContactId") or contact_id, leg


def _object(record, key):
    value = record.get(key)
    if value is not None and not isinstance(value, dict):
        raise Malformed(f"{key} is not an object")
    return value


def _contact_id(record, key):
    """A contact id, held to the rule of any id the API stores (it becomes part of DynamoDB keys)."""
    value = record.get(key)
    return text(value, f"record.{key}", MAX_INTERACTION_ID) if value not in (None, "") else None


def _time(part, key, where, now):
    if part.get(key) is None:
        return None
    at = instant(part[key], f"record.{where}{key}")
    if at > now:
        raise ValidationError(f"record.{where}{key}", "must not lie in the future")
    return at


def queue_directory(queue_ids):
    """{queue id: (contract id, policy)} of the queues of a batch: one BatchGetItem of the queue index,
    then the latest version of each contract it names (a claim its latest version no longer lists, left
    by a PUT that died half-way, is no claim)."""
    claims = store.queue_claims(queue_ids) if queue_ids else {}
    memo, policies = {}, {}
    for contract_id in sorted(set(claims.values())):
        record = store.latest_contract(contract_id)
        policies[contract_id] = evaluation.policy_of(record, memo) if record is not None else None
    return {queue_id: (contract_id, policies[contract_id]) for queue_id, contract_id in claims.items()
            if policies[contract_id] is not None and queue_id in policies[contract_id].amazon_connect_queues}


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
    """Store the legs of the records of a Lambda Kinesis event. Returns (counts, failed): the counts
    (COUNTS) are records; stored (legs written), replaced (of them, those that replaced a stored copy);
    duplicates (a copy of a leg this batch or the store holds a later copy of: the later is kept);
    contacts (customer contacts counted again); unknown_queue, unmapped, skipped, malformed and
    failed. `failed` lists the sequence numbers of the records whose contract could not be stored,
    lowest first."""
    readable, malformed = read_each(
        event_records, lambda record: contact_leg(read_record(record), now), source="connect_contact_records",
        logger=logger, message="contact record skipped: malformed",
        ids=lambda record: {"sequence_number": sequence_number(record)}, explained=(Malformed, ValidationError))
    counts, unknown = Counter(records=len(event_records), malformed=malformed), Counter()
    legs = []  # (sequence number, queue id, customer contact id, Leg)
    for position, found in readable:
        if found is None:
            counts["skipped"] += 1
        else:
            legs.append((sequence_number(event_records[position]), *found))
    directory = queue_directory({queue_id for _, queue_id, _, _ in legs})
    by_contract = {}  # contract id -> {customer contact id: {ContactId: Leg}}
    sequences = {}  # contract id -> sequence numbers of its records
    for sequence, queue_id, customer_contact_id, leg in legs:
        if queue_id not in directory:
            unknown[queue_id] += 1
            continue
        contract_id, policy = directory[queue_id]
        if CHANNELS[leg.channel] not in policy.interactions:
            counts["unmapped"] += 1
            continue
        sequences.setdefault(contract_id, []).append(sequence)
        contact = by_contract.setdefault(contract_id, {}).setdefault(customer_contact_id, {})
        if leg.contact_id in contact:
            counts["duplicates"] += 1
            if not newer(leg, contact[leg.contact_id]):
                continue
        contact[leg.contact_id] = leg
    failed = []
    for contract_id, contacts in sorted(by_contract.items()):
        try:
            stored = interactions.store_contact_legs(contract_id, contacts, now)
        except Exception as exc:  # noqa: BLE001 - Lambda retries these records; the others are done
            failed += sequences[contract_id]
            log_event(logger, "contact records not stored: retried", level=logging.ERROR, contract_id=contract_id,
                      sequence_numbers=sequences[contract_id][:20], error=_described(exc))
            continue
        counts.update(stored)
    counts["unknown_queue"] = sum(unknown.values())
    counts["failed"] = len(failed)
    result = {key: counts[key] for key in COUNTS}
    log_event(logger, "contact records consumed", **result, unknown_queues=sorted(unknown)[:20])
    return result, sorted(failed, key=int)


def _described(exc):
    """An error for the log: PynamoDB's name DynamoDB's error code only as their cause."""
    cause = getattr(exc, "cause_response_code", None)
    return f"{type(exc).__name__}: {exc}{f' ({cause})' if cause else ''}"[:500]

