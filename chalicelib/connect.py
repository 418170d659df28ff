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
contract does not measure, malformed records, which are also logged with their sequence number).
Only a storage failure raises, so Lambda retries the batch; storing it again changes nothing.
"""
import json
import logging
from collections import Counter

from chalicelib import interactions
from chalicelib.aws import records, store
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


def consume(records, now):
    """Store the interactions of a batch of Kinesis records [(sequence number, data bytes)]. Returns the
    counts: records, stored, replaced, duplicates (the same contact twice in the batch: the copy with
    the latest LastUpdateTimestamp is kept), unknown_queue, skipped, malformed."""
    counts = Counter(records=len(records))
    directory, unknown = queue_directory(), Counter()
    by_contract = {}  # contract id -> {contact id: (last update, Interaction)}
    for sequence, data in records:
        try:
            found = contact_interaction(json.loads(data))
        except (Malformed, ValueError) as exc:  # ValueError: not JSON (UnicodeDecodeError is one too)
            _malformed(counts, sequence, str(exc))
            continue
        if found is None:
            counts["skipped"] += 1
            continue
        queue_id, item, last_update = found
        if queue_id not in directory:
            unknown[queue_id] += 1
            continue
        contract_id, policy = directory[queue_id]
        if item["channel"] not in policy.interactions:
            counts["skipped"] += 1
            continue
        try:
            interaction = parse_interaction(item, "record", policy, now)
        except ValidationError as exc:
            _malformed(counts, sequence, exc.message)
            continue
        batch = by_contract.setdefault(contract_id, {})
        if interaction.id in batch:
            counts["duplicates"] += 1
            if batch[interaction.id][0] > last_update:
                continue
        batch[interaction.id] = (last_update, interaction)
    for contract_id, batch in sorted(by_contract.items()):
        stored = interactions.store_batch(contract_id, [interaction for _, interaction in batch.values()])
        counts["stored"] += stored["accepted"]
        counts["replaced"] += stored["replaced"]
    counts["unknown_queue"] = sum(unknown.values())
    result = {key: counts[key] for key in ("records", "stored", "replaced", "duplicates", "unknown_queue",
                                           "skipped", "malformed")}
    log_event(logger, "contact records consumed", **result, unknown_queues=sorted(unknown)[:20])
    return result


def _malformed(counts, sequence, why):
    counts["malformed"] += 1
    log_event(logger, "contact record skipped: malformed", level=logging.WARNING, sequence_number=sequence,
              error=why[:500])
