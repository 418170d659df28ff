"""Persistence of contracts, requests, events and idempotency records (DynamoDB through PynamoDB).

Writes that must not race are conditional: a contract version is written once, a request's
`VersionAttribute` guards its timeline, an event's (request_id, seq) key is written once, the
request update and event put commit in one transaction, and so do a new request and the
Idempotency-Key it is created under.
"""
import base64
import binascii
import json
import logging
import random
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache, partial

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.aws import records
from chalicelib.aws.tables import (
    CONNECTIONS,
    DUE_SHARDS,
    OPEN_KEY,
    TALLY_RUNS,
    CalendarOverrideModel,
    ConnectQueueModel,
    ContractModel,
    CustomerContactModel,
    ErasureModel,
    EventModel,
    IdempotencyModel,
    InteractionLocatorModel,
    InteractionModel,
    JobModel,
    NotificationModel,
    OutageModel,
    RequestModel,
    TallyModel,
    TallyRunModel,
    TokenModel,
    condition_failed,
    connect,
    customer_contact_key,
    interaction_bucket,
    interaction_locator,
    listing_key,
    status_key,
    utc_key,
    write,
    written_if_it_holds,
)
from chalicelib.core.customer_contacts import Leg
from chalicelib.core.errors import ConflictError, CursorError, NotFoundError
from chalicelib.core.facts import RESOLVED
from chalicelib.core.service_level import Interaction
from chalicelib.logs import log_event

# What the scanner sizes itself by: the shards of the due index, the HTTP connections of each client.
SCAN_SHARDS, SCAN_CONNECTIONS = DUE_SHARDS, CONNECTIONS
IDEMPOTENCY_TTL = timedelta(hours=24)
logger = logging.getLogger("sla_clock.store")
WRITE_ATTEMPTS = 12
NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,9})?")  # epoch seconds, as the keys this API writes hold them


class StaleWrite(Exception):
    """Someone else wrote the item first; reload and try again."""


def retrying(write, what):
    """Run a read-check-write until it stops losing races to concurrent writers (StaleWrite),
    with jittered exponential backoff as DynamoDB advises; give up with 409 after WRITE_ATTEMPTS."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return write()
        except StaleWrite:
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
    raise ConflictError(f"{what} is being changed concurrently; retry")


@contextmanager
def _stale_when_beaten():
    """A write that loses to another writer (its condition fails, or a transaction conflicts) raises
    StaleWrite: reload and try again. Any other error passes through."""
    try:
        yield
    except (PutError, UpdateError, DeleteError, TransactWriteError) as exc:
        if condition_failed(exc) or exc.cause_response_code == "TransactionConflictException":
            raise StaleWrite() from exc
        raise


@cache
def _connection():
    """One connection (one botocore client) per process for transactions: building a client loads the
    service model, which costs more than the transaction itself."""
    meta = RequestModel.Meta
    return Connection(region=meta.region, host=meta.host, connect_timeout_seconds=meta.connect_timeout_seconds,
                      read_timeout_seconds=meta.read_timeout_seconds, max_retry_attempts=meta.max_retry_attempts)


# --- contracts -----------------------------------------------------------------------------------


def latest_contract(contract_id):
    """The latest ContractVersion of a contract, or None."""
    items = list(ContractModel.query(contract_id, scan_index_forward=False, limit=1, consistent_read=True))
    return records.contract_version(items[0]) if items else None


def latest_record(contract_id):
    """The latest ContractVersion of a contract; NotFoundError when it has none."""
    record = latest_contract(contract_id)
    if record is None:
        raise NotFoundError(f"no contract {contract_id!r}")
    return record


def contract_version(contract_id, version):
    """Version `version` of a contract (a ContractVersion), or None."""
    try:
        return records.contract_version(ContractModel.get(contract_id, version))
    except DoesNotExist:
        return None


def save_contract_version(contract_id, version, document, by, now, queues=(), stale_claims=None):
    """Write version `version` and claim the Amazon Connect queues it lists, in one transaction;
    StaleWrite if another writer took that number, or a queue, first. A queue is claimed when no
    contract claims it, this one does, or `stale_claims` ({queue id: contract id}) names the contract
    that still claims it although its latest version no longer lists it. Returns the ContractVersion."""
    record = ContractModel(contract_id, version, document=document, updated_at=now, updated_by=by)
    if not queues:
        with _stale_when_beaten():
            record.save(condition=ContractModel.version.does_not_exist())
        return records.contract_version(record)
    with _stale_when_beaten(), TransactWrite(connection=_connection()) as tx:
        tx.save(record, condition=ContractModel.version.does_not_exist())
        for queue_id in sorted(queues):
            condition = ConnectQueueModel.queue_id.does_not_exist() | (ConnectQueueModel.contract_id == contract_id)
            if queue_id in (stale_claims or {}):
                condition |= ConnectQueueModel.contract_id == stale_claims[queue_id]
            tx.save(ConnectQueueModel(queue_id, contract_id=contract_id), condition=condition)
    return records.contract_version(record)


# --- Amazon Connect queues -----------------------------------------------------------------------


def queue_claims(queue_ids):
    """{queue id: contract id} of the queues a contract claims: one BatchGetItem per 100 ids, whatever
    the number of contracts."""
    return {item.queue_id: item.contract_id
            for item in ConnectQueueModel.batch_get(sorted(queue_ids), consistent_read=True)}


def claim_queue(queue_id, contract_id):
    """Claim a queue no contract claims; False when one does."""
    return written_if_it_holds(lambda: ConnectQueueModel(queue_id, contract_id=contract_id).save(
        condition=ConnectQueueModel.queue_id.does_not_exist()))


def release_queues(contract_id, queue_ids):
    """Remove the claims of `contract_id` on queues its latest version dropped (a claim another contract
    took meanwhile stays)."""
    for queue_id in sorted(queue_ids):
        written_if_it_holds(partial(ConnectQueueModel(queue_id).delete,
                                    condition=ConnectQueueModel.contract_id == contract_id))


# --- calendar overrides --------------------------------------------------------------------------


def calendar_overrides(country):
    """Every published schedule of `country`, by year: one Query on a table of a few items."""
    return list(CalendarOverrideModel.query(country, consistent_read=True))


def published_overrides(country):
    """The published schedules of `country` as ((year, (holidays, workdays)), ...), read now."""
    return records.overrides_of(calendar_overrides(country))


def calendar_override(country, year):
    """The CalendarOverride of `country` and `year`, or None."""
    try:
        found = CalendarOverrideModel.get(country, year, consistent_read=True)
    except DoesNotExist:
        return None
    return _override(found)


def _override(item):
    return records.CalendarOverride(item.country, int(item.year), list(item.holidays), list(item.workdays),
                                    item.source, item.updated_at, item.updated_by)


def save_calendar_override(country, year, holidays, workdays, source, by, now):
    record = CalendarOverrideModel(country, year, holidays=holidays, workdays=workdays, source=source,
                                   updated_at=now, updated_by=by)
    record.save()
    return _override(record)


def delete_calendar_override(override):
    CalendarOverrideModel(override.country, override.year).delete()


# --- requests and events ----------------------------------------------------------------------


def create_request(request, cached, outbox, now, idempotency=None):
    """A new request (a StoredRequest holding its received event) with its cached fields (a
    CachedFields), its first event and the notifications it triggers: all or nothing.

    `idempotency`: (key, fingerprint) of the Idempotency-Key the request is created under. Its record
    names the request and commits with it, unless a live record holds the key already (StaleWrite:
    read it and answer with its request).
    """
    received_event = records.event_record(request.request_id, request.events[0], request.created_by, None)
    request = records.new_request_item(request, cached)
    with _stale_when_beaten(), TransactWrite(connection=_connection()) as tx:
        if idempotency is not None:
            key, fingerprint = idempotency
            record = IdempotencyModel(key, fingerprint=fingerprint, request_id=request.request_id,
                                      expires_at=now + IDEMPOTENCY_TTL)
            tx.save(record, condition=IdempotencyModel.key.does_not_exist() | (IdempotencyModel.expires_at < now))
            request.idempotency_key = key  # an erasure scrubs the answer the record keeps
        tx.save(request, condition=RequestModel.request_id.does_not_exist())
        tx.save(received_event, condition=EventModel.seq.does_not_exist())
        for entry in outbox:
            tx.save(entry, condition=NotificationModel.key.does_not_exist())


def get_request(request_id):
    """The StoredRequest `request_id`, or None."""
    try:
        return records.stored_request(RequestModel.get(request_id, consistent_read=True))
    except DoesNotExist:
        return None


def get_requests(request_ids):
    """The StoredRequests of `request_ids` that exist, by id: one strongly consistent BatchGetItem per
    100 ids (PynamoDB retries the keys DynamoDB leaves unprocessed)."""
    return {item.request_id: records.stored_request(item)
            for item in RequestModel.batch_get(request_ids, consistent_read=True)}


def events_before(request_id, before, limit):
    """The newest events of a request with a seq below `before` (None: the newest of all), at most
    `limit` of them and fewer when they pass DynamoDB's 1 MB page, oldest first: exactly one Query,
    whatever the length of the timeline or the weight of its notes. StoredEvents."""
    condition = EventModel.seq < before if before is not None else None
    results = EventModel.query(request_id, condition, scan_index_forward=False, limit=limit, consistent_read=True)
    page = next(results.page_iter)
    return [records.stored_event(EventModel.from_raw_data(raw)) for raw in reversed(page["Items"])]


def append_event(request, event, by, note, cached, outbox=(), fields=None, details=None):
    """Append `event` (a clock Event posted by `by` with `note` and `details`, an events.Details, stored
    with its record) to `request`'s timeline, refresh its
    cached fields (a CachedFields) and `fields` ({StoredRequest field: value}), and create the
    notifications the event triggers, atomically.

    `request` is the StoredRequest as read: the update fails if anyone else appended meanwhile
    (StaleWrite: its version changed), and the event key can be written once only.
    """
    actions = [RequestModel.timeline.set((*request.events, event))]
    actions += _cache_actions(records.cached_attributes(request, cached) | (fields or {}))
    with _stale_when_beaten(), TransactWrite(connection=_connection()) as tx:
        tx.update(records.request_as_read(request), actions=actions)
        tx.save(records.event_record(request.request_id, event, by, note, details),
                condition=EventModel.seq.does_not_exist())
        for notification in outbox:
            tx.save(notification, condition=NotificationModel.key.does_not_exist())


def _cache_actions(cache):
    """The update of a request's cached fields: None removes the attribute. A sparse index leaves out
    items without its key; DynamoDB refuses an index key that is present but NULL."""
    return [getattr(RequestModel, name).remove() if value is None else getattr(RequestModel, name).set(value)
            for name, value in cache.items()]


def refresh_cache(request, cached):
    """Best effort: a concurrent event post refreshes the cache itself, so a lost race is fine.
    Writes only the fields of `cached` (a CachedFields) that differ from the StoredRequest as read
    (under its version), none when none do."""
    changed = records.changed_attributes(request, cached)
    if not changed:
        return
    # A failed version condition: someone else wrote it meanwhile.
    written_if_it_holds(lambda: write(records.request_as_read(request), changed))


def connect_for_scan():
    """Build the scan's clients up front, in one thread (see tables.connect)."""
    connect(RequestModel, NotificationModel, ContractModel, CalendarOverrideModel)


def requests_due(shard, now):
    """Keys of the open requests of one shard whose next check has come (sparse GSI, keys only)."""
    return RequestModel.due_for_check.query(shard, RequestModel.next_check_at <= now.timestamp())


def oldest_due(shard, now):
    """The earliest next check of one shard that has come (epoch seconds), or None: one key read."""
    found = RequestModel.due_for_check.query(shard, RequestModel.next_check_at <= now.timestamp(), limit=1)
    return next((key.next_check_at for key in found), None)


def requests_of_contract(contract_id, start_key=None, page_size=50, status=None, breached_only=False):
    """One page of a contract's requests, newest first: (items, last evaluated key or None).

    Read from the index that holds only the wanted requests: the sparse breached index, the status
    index, or every request of the contract. Keys in and out are listing keys (request_id,
    contract_id, listed_at) whatever the index; filtering beyond the index is the caller's.
    """
    if breached_only:
        index, partition = RequestModel.breached_by_contract, ("breached_contract", contract_id)
    elif status is not None:
        index, partition = RequestModel.by_contract_status, ("contract_status", status_key(contract_id, status))
    else:
        index, partition = RequestModel.by_contract, ("contract_id", contract_id)
    if start_key is not None:
        start_key = {"request_id": start_key["request_id"], "listed_at": start_key["listed_at"],
                     partition[0]: {"S": partition[1]}}
    result = index.query(partition[1], scan_index_forward=False, limit=page_size, last_evaluated_key=start_key)
    items = [records.stored_request(item) for item in result]
    last = result.last_evaluated_key
    if last is not None:
        last = {"request_id": last["request_id"], "contract_id": {"S": contract_id}, "listed_at": last["listed_at"]}
    return items, last


def _one_page(results):
    """Exactly one DynamoDB page of a request query: (StoredRequests, last evaluated key or None). A
    filter then costs one bounded read per call, however few of the requests read it keeps."""
    page = next(results.page_iter)
    return [records.stored_request_of_raw(raw) for raw in page["Items"]], results.page_iter.last_evaluated_key


def _stored_requests(results):
    """The StoredRequests of every page of a request Query, lazily, each mapped from DynamoDB's answer."""
    return (records.stored_request_of_raw(raw) for page in results.page_iter for raw in page.get("Items", ()))


def requests_by_deadline(contract_id, start_key=None, page_size=50, due_by=None):
    """One page of the contract's requests with a running deadline, the soonest first (breached ones,
    whose deadline has passed, before the rest): (items, last evaluated key or None). `due_by`: only
    those whose next running deadline falls at or before that instant; the index's sort key bounds
    the read, so it reads what it returns."""
    condition = RequestModel.next_due_at <= due_by.timestamp() if due_by is not None else None
    return _one_page(RequestModel.due_by_contract.query(contract_id, condition, limit=page_size,
                                                        last_evaluated_key=start_key))


def requests_without_deadline(contract_id, start_key=None, page_size=50, status=None):
    """One page of the contract's requests with no running deadline (paused, not started, resolved),
    newest first: (items, last evaluated key or None). Read from the status index when `status` is
    given, else from every request of the contract, keeping those outside the deadline index."""
    if status is not None:
        index, partition = RequestModel.by_contract_status, status_key(contract_id, status)
    else:
        index, partition = RequestModel.by_contract, contract_id
    return _one_page(index.query(partition, scan_index_forward=False, limit=page_size, last_evaluated_key=start_key,
                                 filter_condition=RequestModel.due_contract.does_not_exist()))


def open_requests_page(contract_id, start_key=None, page_size=100):
    """One page of the contract's open requests: (StoredRequests, last evaluated key or None)."""
    result = RequestModel.by_contract_closed.query(
        contract_id, RequestModel.closed_key == OPEN_KEY, limit=page_size, last_evaluated_key=start_key
    )
    items = [records.stored_request(item) for item in result]
    return items, result.last_evaluated_key


def an_open_request_with_priority(contract_id, priorities):
    """Some open request of the contract whose current priority is one of `priorities`, or None."""
    return _an_open_request(contract_id, RequestModel.current_priority.is_in(*sorted(priorities)))


def an_open_request_in_category(contract_id, categories):
    """Some open request of the contract in one of `categories`, or None."""
    return _an_open_request(contract_id, RequestModel.category.is_in(*sorted(categories)))


def _an_open_request(contract_id, condition):
    matches = RequestModel.by_contract_closed.query(contract_id, RequestModel.closed_key == OPEN_KEY,
                                                    filter_condition=condition)
    return records.stored_request(next(iter(matches), None))


def encode_cursor(key):
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _cursor_content(cursor):
    """The JSON inside an opaque `next` cursor; CursorError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("is not a cursor returned by this API") from None


LISTING_KEY = {"request_id": "S", "contract_id": "S", "listed_at": "S"}
DEADLINE_KEY = {"request_id": "S", "due_contract": "S", "next_due_at": "N"}
WITHOUT_DEADLINE_KEYS = (  # by_contract's key, or by_contract_status's
    {"request_id": "S", "contract_id": "S", "listed_at": "S"},
    {"request_id": "S", "contract_status": "S", "listed_at": "S"},
)
TOKEN_KEY = {"token_id": "S"}  # the tokens table's key: a token listing's cursor


def _is_key(value, shape):
    """Is `value` a DynamoDB key of `shape` ({attribute: "S" or "N"})? Numbers must read as numbers:
    DynamoDB would answer a malformed one with an error, not a 400."""
    if not isinstance(value, dict) or set(value) != set(shape):
        return False
    for name, kind in shape.items():
        attribute = value[name]
        if not isinstance(attribute, dict) or set(attribute) != {kind} or not isinstance(attribute[kind], str):
            return False
        if kind == "N" and not NUMBER.fullmatch(attribute[kind]):
            return False
    return True


def decode_key(cursor, *shapes):
    """The DynamoDB start key inside an opaque `next` cursor, of one of `shapes`; CursorError if it
    is not one."""
    key = _cursor_content(cursor)
    if not any(_is_key(key, shape) for shape in shapes):
        raise CursorError("is not a cursor returned by this API")
    return key


def decode_cursor(cursor, contract_id):
    """The DynamoDB start key inside an opaque cursor of `contract_id`'s listing; CursorError if it is not one."""
    key = decode_key(cursor, LISTING_KEY)
    if key["contract_id"]["S"] != contract_id:
        raise CursorError("belongs to another listing")
    return key


def encode_queue_cursor(contract_id, phase, key):
    """The cursor of the queue view: the contract, which part to go on with ("due": the requests with
    a running deadline, or "rest") and where in it (None: at its start)."""
    return encode_cursor({"contract_id": contract_id, "phase": phase, "key": key})


def decode_queue_cursor(cursor, contract_id, status=None):
    """(phase, start key) inside a cursor of `contract_id`'s queue view (filtered by `status`);
    CursorError otherwise. The key must also belong to the index that phase reads: DynamoDB refuses
    any other with an error, not an empty page."""
    content = _cursor_content(cursor)
    if isinstance(content, dict) and set(content) == {"contract_id", "phase", "key"} \
            and isinstance(content["contract_id"], str):
        phase, key = content["phase"], content["key"]
        if (phase == "due" and _is_key(key, DEADLINE_KEY)) or (phase == "rest" and (
                key is None or any(_is_key(key, shape) for shape in WITHOUT_DEADLINE_KEYS))):
            if content["contract_id"] != contract_id or not _queue_key_of(key, phase, contract_id, status):
                raise CursorError("belongs to another listing")
            return phase, key
    raise CursorError("is not a cursor of a listing sorted by due")


def _queue_key_of(key, phase, contract_id, status):
    if key is None:
        return True
    if phase == "due":
        return key["due_contract"]["S"] == contract_id
    name, value = ("contract_status", status_key(contract_id, status)) if status else ("contract_id", contract_id)
    return key.get(name, {}).get("S") == value


def events_cursor(request_id, before):
    """The cursor to a request's events older than seq `before`."""
    return encode_cursor({"request_id": request_id, "before": before})


def decode_events_cursor(cursor, request_id):
    """The seq an events cursor of `request_id` pages before; CursorError otherwise."""
    content = _cursor_content(cursor)
    if not isinstance(content, dict) or set(content) != {"request_id", "before"} or \
            type(content["before"]) is not int or content["before"] < 2:
        raise CursorError("is not a cursor returned by this API")
    if content["request_id"] != request_id:
        raise CursorError("belongs to another request")
    return content["before"]


# PynamoDB's form of a stored UTCDateTimeAttribute, as the notifications index sorts them.
STORED_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+0000")
MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit on a sort key value: a longer one is an error, not a page


def notifications_cursor(entry):
    """The cursor to a request's notifications created before outbox `entry` (by time, then key)."""
    created_at = NotificationModel.created_at.serialize(entry.created_at)
    return encode_cursor({"request_id": entry.request_id, "before": [created_at, entry.key]})


def _is_sort_key(value):
    try:
        return 0 < len(value.encode("utf-8")) <= MAX_SORT_KEY_BYTES
    except UnicodeEncodeError:  # a lone surrogate, which JSON can spell
        return False


def decode_notifications_cursor(cursor, request_id):
    """The index key a notifications cursor of `request_id` pages after; CursorError otherwise."""
    content = _cursor_content(cursor)
    before = content.get("before") if isinstance(content, dict) and set(content) == {"request_id", "before"} else None
    if not (isinstance(before, list) and len(before) == 2 and all(isinstance(part, str) for part in before)
            and STORED_INSTANT.fullmatch(before[0]) and _is_sort_key(before[1])):
        raise CursorError("is not a cursor returned by this API")
    if content["request_id"] != request_id:
        raise CursorError("belongs to another request")
    created_at, key = before
    return {"request_id": {"S": request_id}, "key": {"S": key}, "created_at": {"S": created_at}}


# --- tokens --------------------------------------------------------------------------------------


def token(token_id):
    """The stored Token `token_id` (its secret's hash, role, scope, expiry), or None."""
    try:
        return records.value_of(records.Token, TokenModel.get(token_id, consistent_read=True))
    except DoesNotExist:
        return None


def stamp_token_use(record, now, every):
    """Record when the token was last used, at most once per `every`: the condition makes concurrent
    calls write once, and a busy token costs one write a minute, not one per call. Best effort: a
    failed stamp never fails the call it belongs to."""
    if record.last_used_at is not None and now - record.last_used_at < every:
        return
    stale = TokenModel.last_used_at.does_not_exist() | (TokenModel.last_used_at <= now - every)
    try:
        write(TokenModel(record.token_id), {"last_used_at": now}, condition=stale)
    except UpdateError as exc:
        if not condition_failed(exc):
            log_event(logger, "token use not recorded", level=logging.WARNING, token_id=record.token_id,
                      error=f"{type(exc).__name__}: {exc}")


def save_token(token_id, secret_sha256, role, contract_id, created_by, now, expires_at):
    """Store a new token's hash (never the token) and return its Token."""
    record = TokenModel(token_id, secret_sha256=secret_sha256, role=role, contract_id=contract_id,
                        created_at=now, created_by=created_by, expires_at=expires_at)
    record.save(condition=TokenModel.token_id.does_not_exist())
    return records.value_of(records.Token, record)


def tokens_page(limit, start_key=None):
    """One page of stored tokens (a Scan of the small tokens table): (Tokens, last key or None)."""
    result = TokenModel.scan(limit=limit, last_evaluated_key=start_key)
    return [records.value_of(records.Token, item) for item in result], result.last_evaluated_key


def delete_token(token_id):
    """Delete a stored token; False when there was none."""
    try:
        TokenModel.get(token_id).delete()
    except DoesNotExist:
        return False
    return True


# --- idempotency ---------------------------------------------------------------------------------


def idempotency_record(key, now):
    """The FirstAnswer of a request created under `key`, or None (never used, or expired: DynamoDB's
    TTL deletes late)."""
    try:
        record = IdempotencyModel.get(key, consistent_read=True)
    except DoesNotExist:
        return None
    return records.value_of(records.FirstAnswer, record) if record.expires_at > now else None


def save_first_answer(key, body):
    """Keep the answer the request's creator got: a retry gets the same one."""
    IdempotencyModel(key).update(actions=[IdempotencyModel.response_body.set(body)])


# --- personal data --------------------------------------------------------------------------------


def requests_of_requester(key):
    """Ids of the requests still holding the personal data of the requester whose index key
    (core.personal_data.requester_key) is `key`: a query of the sparse requester index."""
    return [found.request_id for found in RequestModel.by_requester.query(key)]


def requests_with_personal_data_closed_before(contract_id, cutoff, limit):
    """Ids of up to `limit` of the contract's resolved requests still holding personal data that last
    changed before `cutoff`, the oldest first: one page of the sparse retention index (open requests
    sort after every instant)."""
    found = RequestModel.personal_by_closed.query(contract_id, RequestModel.closed_key < utc_key(cutoff), limit=limit)
    return [key.request_id for key in found]


def requests_without_personal_keys():
    """The ids of the requests holding personal data but no requester key: stored before the requester
    and retention indexes existed. A Scan of the requests table, for the one-off back-fill only."""
    unindexed = RequestModel.requester.exists() & RequestModel.requester_key.does_not_exist()
    return (found.request_id for found in RequestModel.scan(filter_condition=unindexed,
                                                            attributes_to_get=["request_id"]))


def erase_notes(request_id):
    """Remove the note of every event of the request that holds one (the others are read but not
    written)."""
    for event in EventModel.query(request_id, filter_condition=EventModel.note.exists(), consistent_read=True):
        write(event, {"note": None})


def forget_first_answer(key, request_id):
    """Remove the first answer an Idempotency-Key's record keeps for `request_id` (it holds the request
    document): a retry with the key then gets the request as it reads now. Nothing when the record
    expired, or names another request."""
    written_if_it_holds(lambda: IdempotencyModel(key).update(actions=[IdempotencyModel.response_body.remove()],
                                                             condition=IdempotencyModel.request_id == request_id))


def update_request_fields(request, fields):
    """Write `fields` ({attribute: value}, None removes one) on the StoredRequest as read: StaleWrite
    when anyone wrote it since."""
    with _stale_when_beaten():
        write(records.request_as_read(request), fields)


def save_erasure(contract_id, by, reason, requests, now):
    record = ErasureModel(contract_id, f"{utc_key(now)}#{uuid.uuid4().hex[:8]}", erased_at=now, erased_by=by,
                          reason=reason, requests=requests)
    record.save()
    return _erasure(record)


def _erasure(item):
    return records.Erasure(item.contract_id, item.erasure_id, item.erased_at, item.erased_by, item.reason,
                           int(item.requests))


ERASURE_KEY = {"contract_id": "S", "erasure_id": "S"}


def erasures_page(contract_id, limit, start_key=None):
    """One page of the contract's erasure records, newest first: (Erasures, last key or None)."""
    result = ErasureModel.query(contract_id, scan_index_forward=False, limit=limit, last_evaluated_key=start_key,
                                consistent_read=True)
    page = next(result.page_iter)
    return [_erasure(ErasureModel.from_raw_data(raw)) for raw in page["Items"]], result.page_iter.last_evaluated_key


def decode_erasures_cursor(cursor, contract_id):
    key = decode_key(cursor, ERASURE_KEY)
    if key["contract_id"]["S"] != contract_id:
        raise CursorError("belongs to another listing")
    return key


# --- background jobs ----------------------------------------------------------------------------

REEVALUATE = "reevaluate"


def start_job(kind, subject, now):
    """Start (or restart from the beginning) the job `kind` for `subject`; a newer start wins over
    an older one still running, which then finds its generation gone and stops."""
    JobModel(kind, subject, generation=uuid.uuid4().hex, cursor=None, created_at=now).save()


def pending_jobs(kind=REEVALUATE):
    """The Jobs of `kind` waiting to be drained."""
    return [records.value_of(records.Job, item) for item in JobModel.query(kind, consistent_read=True)]


def advance_job(job, cursor):
    """Record where the Job's next page starts (on `job` too), or finish it when `cursor` is None.
    Returns True when the job is finished (or was restarted by a newer change, which owns it now)."""
    same_generation = JobModel.generation == job.generation
    stored = JobModel(job.kind, job.subject)
    if cursor is None:
        written_if_it_holds(lambda: stored.delete(condition=same_generation))
        return True
    if not written_if_it_holds(lambda: write(stored, {"cursor": cursor}, condition=same_generation)):
        return True
    job.cursor = cursor
    return False


# --- tallies and outages -------------------------------------------------------------------------


def contract_ids():
    """Every contract id (a projected scan of the small contracts table; requests are never scanned)."""
    return sorted({item.contract_id for item in ContractModel.scan(attributes_to_get=["contract_id"])})


def requests_active_since(contract_id, start):
    """The contract's requests resolved at or after `start`, and every open one: the only ones that
    can have anything to count on a day beginning at `start`. StoredRequests, read lazily."""
    found = RequestModel.by_contract_closed.query(contract_id, RequestModel.closed_key >= utc_key(start))
    return _stored_requests(found)


def count_received_between(contract_id, start, end):
    """(received, resolved now) of the contract's requests received in [start, end).

    Two COUNT queries: DynamoDB answers with numbers, not items, so a month of requests is neither
    transferred nor parsed, and "resolved" is the size of the status index's resolved partition in
    that range rather than a status read from every item. (DynamoDB still bills the items a COUNT
    reads; a keys-only index would bill less, but would cost a write on every status change for a
    report read a few times a month.)
    """
    received = _received_between(start, end)
    return (RequestModel.by_contract.count(contract_id, received),
            RequestModel.by_contract_status.count(status_key(contract_id, RESOLVED), received))


def _received_between(start, end):
    """Listing keys of requests received in [start, end): a bare bound sorts before every id at its instant."""
    return RequestModel.listed_at.between(listing_key(start), listing_key(end))


# What evaluating a StoredRequest needs of its item (evaluation.state_of, facts_of, pinned versions):
# an attribute left out reads as None, so the request would be evaluated as another one (a category's
# targets lost). tests/test_whatif.py checks one read this way evaluates like the whole item.
EVALUATION_ATTRIBUTES = ["request_id", "contract_id", "priority", "category", "kept_targets", "designated",
                         "received_at", "timeline", "status", "contract_version", "frozen_state"]


def requests_received_between(contract_id, start, end, priorities=None):
    """The contract's requests received in [start, end), oldest first: one Query of the listing index
    returning only what evaluating them needs. `priorities`: only requests whose current priority is
    one of them (filtered by DynamoDB, so the others are never sent or parsed). StoredRequests, read
    lazily, holding only what EVALUATION_ATTRIBUTES holds."""
    only = RequestModel.current_priority.is_in(*priorities) if priorities else None
    found = RequestModel.by_contract.query(contract_id, _received_between(start, end), filter_condition=only,
                                           scan_index_forward=True, attributes_to_get=EVALUATION_ATTRIBUTES)
    return _stored_requests(found)


def tallies_of_month(contract_id, month_prefix):
    """The DayTallies of the contract's days whose date starts with `month_prefix` ("2026-11-")."""
    return [records.value_of(records.DayTally, item)
            for item in TallyModel.query(contract_id, TallyModel.day.startswith(month_prefix), consistent_read=True)]


def outages_of(contract_id):
    """The contract's recorded Outages, by start."""
    return [records.value_of(records.Outage, item) for item in OutageModel.query(contract_id, consistent_read=True)]


def replace_outages(removed, added):
    """Swap merged Outages for their union in one transaction."""
    with TransactWrite(connection=_connection()) as tx:
        for outage in removed:
            tx.delete(OutageModel(outage.contract_id, outage.start))
        tx.save(OutageModel(added.contract_id, added.start, end=added.end, description=added.description,
                            recorded_at=added.recorded_at, recorded_by=added.recorded_by))


def new_tally_run(started_at, day):
    """A nightly TallyRun starting at `started_at` (of `day`, or each contract's previous local day);
    not stored until the run saves where it stands."""
    return records.TallyRun(utc_key(started_at), started_at, day.isoformat() if day else None)


def save_tally(contract_id, tally, now):
    """Store one day's tally, its penalties not yet capped (the month's cap is applied after)."""
    TallyModel(contract_id, tally.date, tally=tally.as_dict(), penalties_raw=tally.penalties_raw,
               penalties=tally.penalties_raw, computed_at=now).save()


def cap_tally(tally, allowed):
    """Set a stored day's penalties (of the DayTally `tally`) to what the month's cap allows; returns
    the DayTally as it now stands."""
    write(TallyModel(tally.contract_id, tally.day), {"penalties": allowed})
    return replace(tally, penalties=allowed)


def outages_overlapping(contract_id, start, end):
    """The contract's recorded outages that overlap [start, end]."""
    return [o for o in outages_of(contract_id) if o.start <= utc_key(end) and o.end >= utc_key(start)]


def new_outage(contract_id, start, end, description, now, by):
    """An Outage, not yet stored (`replace_outages` stores it in place of those it merges)."""
    return records.Outage(contract_id, utc_key(start), utc_key(end), description, now, by)


def tally_runs():
    """Nightly TallyRuns not finished yet, oldest first (a handful at most)."""
    return [records.value_of(records.TallyRun, item) for item in TallyRunModel.query(TALLY_RUNS, consistent_read=True)]


def _run_item(run):
    item = TallyRunModel(TALLY_RUNS, run.run_id, started_at=run.started_at, date=run.date, after=run.after,
                         current=run.current, lease_until=run.lease_until)
    if run.version is not None:  # the save and the delete check it (none: never saved)
        item.version = run.version
    return item


def save_tally_run(run):
    """Save where the TallyRun stands; StaleWrite if another invocation saved it since it was read."""
    item = _run_item(run)
    with _stale_when_beaten():
        item.save()
    run.version = item.version


def finish_tally_run(run):
    """The run is done: forget it (StaleWrite if another invocation saved it meanwhile)."""
    with _stale_when_beaten():
        _run_item(run).delete()
# --- interactions --------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _us(moment):
    return None if moment is None else (moment - _EPOCH) // _ONE_US


def _instant(us):
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def save_interactions(contract_id, interactions, retention):
    """Store a batch of interactions; a re-sent id replaces its record. Returns how many replaced one.

    Batched: one BatchGetItem per 100 ids reads where each id is stored (its locator item), then
    BatchWriteItem writes 25 items a call: the records (each in its UTC hour's partition), the
    removal of the old record of an id whose offered_at moved to another hour, and last the locators
    that are new or moved. Written in that order, a call that dies half-way leaves at worst an old
    record beside the new one, and the feed's retry (it delivers at least once) removes it.
    """
    keys = [(interaction_locator(contract_id, i.id), i.id) for i in interactions]
    stored = {found.interaction_id: found.stored_in
              for found in InteractionLocatorModel.batch_get(keys, consistent_read=True)}
    buckets = {i.id: interaction_bucket(contract_id, i.offered_at) for i in interactions}
    with InteractionModel.batch_write() as batch:
        for interaction in interactions:
            batch.save(_interaction_item(buckets[interaction.id], interaction, retention))
        for interaction_id, old in stored.items():
            if old != buckets[interaction_id]:
                batch.delete(InteractionModel(old, interaction_id))
    with InteractionLocatorModel.batch_write() as batch:
        for interaction in interactions:
            if stored.get(interaction.id) != buckets[interaction.id]:
                batch.save(InteractionLocatorModel(
                    interaction_locator(contract_id, interaction.id), interaction.id,
                    stored_in=buckets[interaction.id], expires_at=interaction.offered_at + retention))
    return len(stored)


def leg_document(leg):
    return {"method": leg.method, "channel": leg.channel, "enqueued_us": _us(leg.enqueued_at),
            "answered_us": _us(leg.answered_at), "disconnected_us": _us(leg.disconnected_at),
            "previous": leg.previous_id, "next": leg.next_id, "transferred_out": leg.transferred_out,
            "updated": leg.updated}


def leg_of(contact_id, document):
    return Leg(contact_id, document["method"], document["channel"], _instant(document["enqueued_us"]),
               _instant(document["answered_us"]), _instant(document["disconnected_us"]), document["previous"],
               document["next"], document["transferred_out"], document["updated"])


def customer_contacts(contract_id, customer_contact_ids):
    """{customer contact id: CustomerContact} of those the contract has legs of: one strongly
    consistent BatchGetItem per 100 ids."""
    keys = [(customer_contact_key(contract_id, i), i) for i in customer_contact_ids]
    return {item.customer_contact_id: _customer_contact(item)
            for item in CustomerContactModel.batch_get(keys, consistent_read=True)}


def _customer_contact(item):
    legs = {contact_id: leg_of(contact_id, document) for contact_id, document in item.legs.items()}
    return records.CustomerContact(item.customer_contact_id, legs, item.stored_in, item.version)


CUSTOMER_CONTACTS_PER_TRANSACTION = 25  # 3 writes each at most: inside DynamoDB's 100 per transaction


def save_customer_contacts(contract_id, changes, retention, now):
    """Store customer contacts: `changes` lists (customer contact id, {ContactId: Leg}, Interaction or
    None, the CustomerContact as read or None). Each contact's legs, its interaction (moved when
    its first enqueue moved to another hour, removed when it is no offered contact any more) commit
    together, 25 contacts a transaction; StaleWrite when another consumer wrote one of them since it
    was read (read again and recompute: nothing is lost, storing the same legs again changes nothing)."""
    size = CUSTOMER_CONTACTS_PER_TRANSACTION
    for start in range(0, len(changes), size):
        with _stale_when_beaten(), TransactWrite(connection=_connection()) as tx:
            for customer_contact_id, legs, interaction, record in changes[start:start + size]:
                bucket = interaction_bucket(contract_id, interaction.offered_at) if interaction else None
                if record is not None and record.stored_in is not None and record.stored_in != bucket:
                    tx.delete(InteractionModel(record.stored_in, customer_contact_id))
                earliest = min((leg.enqueued_at or leg.disconnected_at or now for leg in legs.values()), default=now)
                item = CustomerContactModel(
                    customer_contact_key(contract_id, customer_contact_id), customer_contact_id,
                    legs={contact_id: leg_document(leg) for contact_id, leg in sorted(legs.items())},
                    stored_in=bucket, expires_at=earliest + retention)
                if record is not None and record.version is not None:  # the save checks it: none, a new one
                    item.version = record.version
                tx.save(item)
                if interaction is not None:
                    tx.save(_interaction_item(bucket, interaction, retention))


def _interaction_item(bucket, interaction, retention):
    return InteractionModel(bucket, interaction.id, channel=interaction.channel, offered_us=_us(interaction.offered_at),
                            answered_us=_us(interaction.answered_at), abandoned_us=_us(interaction.abandoned_at),
                            callback=interaction.callback or None, expires_at=interaction.offered_at + retention)


def interactions_between(contract_id, start, end):
    """The contract's interactions offered in [start, end): one Query per UTC hour the span touches,
    so a day reads that day's interactions (and, for a timezone off the whole hour, the rest of the
    hours it starts and ends in), never another day's."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        for item in InteractionModel.query(interaction_bucket(contract_id, hour)):
            offered = _instant(item.offered_us)
            if start <= offered < end:
                yield Interaction(item.interaction_id, item.channel, offered, _instant(item.answered_us),
                                  _instant(item.abandoned_us), bool(item.callback))
        hour += timedelta(hours=1)
