"""Persistence of contracts, requests, events and idempotency records (DynamoDB through PynamoDB).

Writes that must not race are conditional: a contract version is written once, a request's
`VersionAttribute` guards its timeline, an event's (request_id, seq) key is written once, and the
request update and event put commit in one transaction.
"""
import base64
import binascii
import json
from datetime import UTC, timedelta
from functools import cache

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import ConflictError, ValidationError
from chalicelib.tables import (
    CalendarOverrideModel,
    ContractModel,
    EventModel,
    IdempotencyModel,
    NotificationModel,
    OutageModel,
    RequestModel,
    TallyModel,
    listing_key,
    utc_key,
)

IDEMPOTENCY_TTL = timedelta(hours=24)


class StaleWrite(Exception):
    """Someone else wrote the item first; reload and try again."""


def _condition_failed(exc):
    if isinstance(exc, TransactWriteError):
        return any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons)
    return exc.cause_response_code == "ConditionalCheckFailedException"


@cache
def _connection():
    """One connection (one botocore client) per process for transactions: building a client loads the
    service model, which costs more than the transaction itself."""
    return Connection(region=RequestModel.Meta.region, host=RequestModel.Meta.host)


# --- contracts -----------------------------------------------------------------------------------


def latest_contract(contract_id):
    items = list(ContractModel.query(contract_id, scan_index_forward=False, limit=1, consistent_read=True))
    return items[0] if items else None


def contract_version(contract_id, version):
    try:
        return ContractModel.get(contract_id, version)
    except DoesNotExist:
        return None


def save_contract_version(contract_id, version, document, by, now):
    """Write version `version`; StaleWrite if another writer took that number first."""
    record = ContractModel(contract_id, version, document=document, updated_at=now, updated_by=by)
    try:
        record.save(condition=ContractModel.version.does_not_exist())
    except PutError as exc:
        if _condition_failed(exc):
            raise StaleWrite() from exc
        raise
    return record


def latest_contracts():
    """The latest version of every contract. The contracts table holds a few items per customer
    agreement, so a projected scan is fine here; requests are never scanned."""
    latest = {}
    for item in ContractModel.scan(attributes_to_get=["contract_id", "version", "document"]):
        if item.contract_id not in latest or item.version > latest[item.contract_id].version:
            latest[item.contract_id] = item
    return [latest[contract_id] for contract_id in sorted(latest)]


# --- calendar overrides --------------------------------------------------------------------------


def calendar_overrides(country):
    """Every published schedule of `country`, by year: one Query on a table of a few items."""
    return list(CalendarOverrideModel.query(country, consistent_read=True))


def calendar_override(country, year):
    try:
        return CalendarOverrideModel.get(country, year, consistent_read=True)
    except DoesNotExist:
        return None


def save_calendar_override(country, year, holidays, workdays, source, by, now):
    record = CalendarOverrideModel(country, year, holidays=holidays, workdays=workdays, source=source,
                                   updated_at=now, updated_by=by)
    record.save()
    return record


def delete_calendar_override(record):
    record.delete()


# --- requests and events ----------------------------------------------------------------------


def create_request(request, received_event, outbox=()):
    """Request, first event and the notifications it triggers: all or nothing."""
    with TransactWrite(connection=_connection()) as tx:
        tx.save(request, condition=RequestModel.request_id.does_not_exist())
        tx.save(received_event, condition=EventModel.seq.does_not_exist())
        for entry in outbox:
            tx.save(entry, condition=NotificationModel.key.does_not_exist())


def get_request(request_id):
    try:
        return RequestModel.get(request_id, consistent_read=True)
    except DoesNotExist:
        return None


def events_of(request_id):
    return list(EventModel.query(request_id, consistent_read=True))


def append_event(request, event, cache, outbox=()):
    """Append `event` to `request`'s timeline, refresh its cached fields and create the
    notifications the event triggers, atomically.

    `request` is the item as read; its VersionAttribute makes the update fail if anyone else
    appended meanwhile (StaleWrite), and the event key can be written once only.
    """
    entry = compact_event(event)
    actions = [RequestModel.timeline.set(request.timeline + [entry])]
    actions += [getattr(RequestModel, name).set(value) for name, value in cache.items()]
    try:
        with TransactWrite(connection=_connection()) as tx:
            tx.update(request, actions=actions)
            tx.save(event, condition=EventModel.seq.does_not_exist())
            for notification in outbox:
                tx.save(notification, condition=NotificationModel.key.does_not_exist())
    except TransactWriteError as exc:
        if _condition_failed(exc) or (exc.cause_response_code == "TransactionConflictException"):
            raise StaleWrite() from exc
        raise


def refresh_cache(request, cache):
    """Best effort: a concurrent event post refreshes the cache itself, so a lost race is fine."""
    actions = [getattr(RequestModel, name).set(value) for name, value in cache.items()]
    try:
        request.update(actions=actions)
    except Exception as exc:  # noqa: BLE001 - an UpdateError with a failed version condition
        if not _condition_failed(exc):
            raise


def compact_event(event):
    """The clock-relevant part of an event, kept inside the request item."""
    entry = {"seq": event.seq, "type": event.type, "at": event.at.astimezone(UTC).isoformat()}
    entry.update(event.details or {})
    return entry


def requests_due(shard, now):
    """Keys of the open requests of one shard whose next check has come (sparse GSI, keys only)."""
    return RequestModel.due_for_check.query(shard, RequestModel.next_check_at <= now.timestamp())


def requests_of_contract(contract_id, start_key=None, page_size=50):
    """One page of a contract's requests, newest first: (items, last evaluated key or None)."""
    result = RequestModel.by_contract.query(
        contract_id, scan_index_forward=False, limit=page_size, last_evaluated_key=start_key
    )
    items = list(result)
    return items, result.last_evaluated_key


def open_requests_of_contract(contract_id):
    return RequestModel.by_contract.query(contract_id, filter_condition=RequestModel.status != "resolved")


def encode_cursor(key):
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor):
    """The DynamoDB start key inside an opaque `next` cursor; ValidationError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError("next", "is not a cursor returned by this API") from None
    expected = {"request_id", "contract_id", "listed_at"}
    if not isinstance(key, dict) or set(key) != expected or not all(
        isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values()
    ):
        raise ValidationError("next", "is not a cursor returned by this API")
    return key


# --- idempotency ---------------------------------------------------------------------------------


def claim_idempotency(key, fingerprint, now):
    """Claim `key` for a new answer. Returns None when claimed, or the stored (status, body).

    Raises ConflictError when the key is being answered right now or was used with another body.
    """
    record = IdempotencyModel(key, fingerprint=fingerprint, status="in_progress", expires_at=now + IDEMPOTENCY_TTL)
    try:
        record.save(
            condition=IdempotencyModel.key.does_not_exist() | (IdempotencyModel.expires_at < now)
        )
        return None
    except PutError as exc:
        if not _condition_failed(exc):
            raise
    existing = IdempotencyModel.get(key, consistent_read=True)
    if existing.fingerprint != fingerprint:
        raise ConflictError("Idempotency-Key was already used with a different request body")
    if existing.status != "done":
        raise ConflictError("a request with this Idempotency-Key is still being processed; retry shortly")
    return existing.response_status, existing.response_body


def complete_idempotency(key, status, body):
    IdempotencyModel(key).update(
        actions=[
            IdempotencyModel.status.set("done"),
            IdempotencyModel.response_status.set(status),
            IdempotencyModel.response_body.set(body),
        ]
    )


def release_idempotency(key):
    """The first attempt failed: forget the key so the client may retry with it."""
    IdempotencyModel(key).delete()


# --- tallies and outages -------------------------------------------------------------------------


def contract_ids():
    """Every contract id (a projected scan of the small contracts table, as in latest_contracts)."""
    return sorted({item.contract_id for item in ContractModel.scan(attributes_to_get=["contract_id"])})


def requests_active_since(contract_id, start):
    """The contract's requests resolved at or after `start`, and every open one: the only ones that
    can have anything to count on a day beginning at `start`."""
    return RequestModel.by_contract_closed.query(contract_id, RequestModel.closed_key >= utc_key(start))


def requests_received_between(contract_id, start, end):
    """The contract's requests received in [start, end), through the listing index."""
    bounds = listing_key(start), listing_key(end)
    return RequestModel.by_contract.query(contract_id, RequestModel.listed_at.between(*bounds))


def tallies_of_month(contract_id, month_prefix):
    return list(TallyModel.query(contract_id, TallyModel.day.startswith(month_prefix), consistent_read=True))


def outages_of(contract_id):
    return list(OutageModel.query(contract_id, consistent_read=True))


def replace_outages(removed, added):
    """Swap merged outages for their union in one transaction."""
    with TransactWrite(connection=_connection()) as tx:
        for outage in removed:
            tx.delete(outage)
        tx.save(added)
