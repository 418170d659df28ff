"""PynamoDB models: the only description of the DynamoDB tables, and `create_all()`.

Meta is evaluated at import, so every setting read here from the environment has a default:
`SLA_TABLE_PREFIX` (default "sla-"), `AWS_DEFAULT_REGION` (default "us-east-1"), optional
`AWS_ENDPOINT_URL` (a moto server when running locally).
"""
import hashlib
import os
from datetime import UTC

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

PREFIX = os.environ.get("SLA_TABLE_PREFIX", "sla-")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
HOST = os.environ.get("AWS_ENDPOINT_URL") or None


class _Meta:
    region = REGION
    host = HOST
    billing_mode = "PAY_PER_REQUEST"


class ContractModel(Model):
    """One item per contract version: history is kept so a resolved request keeps its terms."""

    class Meta(_Meta):
        table_name = f"{PREFIX}contracts"

    contract_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    document = JSONAttribute()  # the normalized contract document
    updated_at = UTCDateTimeAttribute()
    updated_by = UnicodeAttribute()


class RequestsByContract(GlobalSecondaryIndex):
    """Listing a contract's requests, newest first (`listed_at` = received instant + request id)."""

    class Meta:
        index_name = "by_contract"
        projection = AllProjection()  # listing evaluates each request, which needs its timeline

    contract_id = UnicodeAttribute(hash_key=True)
    listed_at = UnicodeAttribute(range_key=True)


# Sparse GSIs are written under a few partition keys so no single partition takes every write.
DUE_SHARDS = 4


def shard_of(key):
    """A stable shard ("0".."DUE_SHARDS-1") for a key; Python's hash() is salted per process."""
    return str(int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % DUE_SHARDS)


class RequestsDueForCheck(GlobalSecondaryIndex):
    """Sparse: only open requests with a next check carry `due_shard`. The scanner reads what is due,
    never the table."""

    class Meta:
        index_name = "due_for_check"
        projection = KeysOnlyProjection()

    due_shard = UnicodeAttribute(hash_key=True)
    next_check_at = NumberAttribute(range_key=True)


def utc_key(moment):
    """A sortable fixed-width UTC string key for an aware datetime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def listing_key(received_at, request_id=""):
    """`listed_at`: the received instant, fixed width so strings sort like instants, then the id.
    Without an id it is a bound for range queries: every request received at that instant sorts after it."""
    return f"{received_at.timestamp():017.6f}" + (f"#{request_id}" if request_id else "")


OPEN_KEY = "~open"  # sorts after every ISO timestamp: open requests come last in `by_contract_closed`


class RequestsByContractClosed(GlobalSecondaryIndex):
    """A contract's requests by when they last changed once resolved (`closed_key`, a UTC instant
    key, or OPEN_KEY while open). The nightly tally of day D queries `closed_key >= start of D`:
    requests active that day, never the history that went quiet before it."""

    class Meta:
        index_name = "by_contract_closed"
        projection = AllProjection()  # the tally evaluates each request's timeline

    contract_id = UnicodeAttribute(hash_key=True)
    closed_key = UnicodeAttribute(range_key=True)


class RequestModel(Model):
    """A customer request: its facts, the clock-relevant timeline, and cached derived fields.

    Full events (with notes and authors) live in EventModel; `timeline` keeps the compact copy the
    clock needs, so evaluating a request costs one read whatever its notes weigh.
    """

    class Meta(_Meta):
        table_name = f"{PREFIX}requests"

    request_id = UnicodeAttribute(hash_key=True)
    contract_id = UnicodeAttribute()
    listed_at = UnicodeAttribute()
    priority = UnicodeAttribute()  # as created; reprioritize events change the current one
    channel = UnicodeAttribute()
    designated = BooleanAttribute()  # channel was designated at receipt: the clock started then
    subject = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    requester = JSONAttribute()
    received_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    timeline = JSONAttribute()  # [{"seq","type","at", optional "priority","score","channel"}]
    version = VersionAttribute()
    # Derived from the timeline by the pure clock; cached for listing filters and the scanner.
    status = UnicodeAttribute()
    current_priority = UnicodeAttribute()
    contract_version = NumberAttribute()
    breached = BooleanAttribute(default=False)
    next_check_at = NumberAttribute(null=True)  # epoch seconds
    due_shard = UnicodeAttribute(null=True)  # set only while next_check_at is
    closed_key = UnicodeAttribute(default=OPEN_KEY)
    # While resolved: the SLA state it was resolved with (clock.freeze), so later calendar data or
    # contract versions never change its deadlines, breaches or penalty. Removed by a reopen.
    frozen_state = JSONAttribute(null=True)

    by_contract = RequestsByContract()
    by_contract_closed = RequestsByContractClosed()
    due_for_check = RequestsDueForCheck()


class EventModel(Model):
    """The append-only event record of a request (seq 1 is "received")."""

    class Meta(_Meta):
        table_name = f"{PREFIX}events"

    request_id = UnicodeAttribute(hash_key=True)
    seq = NumberAttribute(range_key=True)
    type = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    by = UnicodeAttribute()
    note = UnicodeAttribute(null=True)
    details = JSONAttribute(null=True)  # priority / score / channel for the events that carry one


class TokenModel(Model):
    """API tokens: the token is `<token_id>.<secret>`; only the secret's SHA-256 is stored."""

    class Meta(_Meta):
        table_name = f"{PREFIX}tokens"

    token_id = UnicodeAttribute(hash_key=True)
    secret_sha256 = UnicodeAttribute()
    role = UnicodeAttribute()
    contract_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()


class IdempotencyModel(Model):
    """First answer to an `Idempotency-Key`, per token, kept 24 h."""

    class Meta(_Meta):
        table_name = f"{PREFIX}idempotency"

    key = UnicodeAttribute(hash_key=True)  # sha256(token_id + key)
    fingerprint = UnicodeAttribute()  # sha256 of the request body
    status = UnicodeAttribute()  # "in_progress" or "done"
    response_status = NumberAttribute(null=True)
    response_body = JSONAttribute(null=True)
    expires_at = TTLAttribute()


class PendingNotifications(GlobalSecondaryIndex):
    """Sparse: only notifications still to be sent carry `pending_shard`."""

    class Meta:
        index_name = "pending"
        projection = KeysOnlyProjection()

    pending_shard = UnicodeAttribute(hash_key=True)
    retry_at = NumberAttribute(range_key=True)


class NotificationModel(Model):
    """The dedupe outbox: one item per notification (request × kind × metric × cycle × threshold, or
    request × event). Creating it is conditional, so each notification exists once; a short lease
    claimed with a conditional update lets exactly one sender at a time try it."""

    class Meta(_Meta):
        table_name = f"{PREFIX}outbox"

    request_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute(range_key=True)  # e.g. "warning|first_response|0|0.8", "event|3"
    contract_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    status = UnicodeAttribute()  # "pending", "sent" or "failed"
    recipients = ListAttribute(of=UnicodeAttribute)
    sender = UnicodeAttribute()
    subject = UnicodeAttribute()
    text = UnicodeAttribute()
    html = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    sent_at = UTCDateTimeAttribute(null=True)
    lease_until = NumberAttribute(null=True)  # epoch seconds: someone is sending it until then
    message_id = UnicodeAttribute(null=True)  # SES MessageId once accepted
    pending_shard = UnicodeAttribute(null=True)
    retry_at = NumberAttribute(null=True)
    expires_at = TTLAttribute()

    pending = PendingNotifications()


class TallyModel(Model):
    """One nightly tally per contract and local day; re-running a day rewrites it."""

    class Meta(_Meta):
        table_name = f"{PREFIX}tallies"

    contract_id = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)  # YYYY-MM-DD in the contract's timezone
    tally = JSONAttribute()  # counts, breaches, on-time counts, ratings, penalty lines
    penalties_raw = NumberAttribute()  # accrued that day before the monthly cap
    penalties = NumberAttribute()  # what the cap leaves of it, given the earlier days of the month
    computed_at = UTCDateTimeAttribute()


class OutageModel(Model):
    """Service outages feeding availability; overlapping ones are merged when recorded."""

    class Meta(_Meta):
        table_name = f"{PREFIX}outages"

    contract_id = UnicodeAttribute(hash_key=True)
    start = UnicodeAttribute(range_key=True)  # ISO UTC instant
    end = UnicodeAttribute()
    description = UnicodeAttribute()
    recorded_at = UTCDateTimeAttribute()
    recorded_by = UnicodeAttribute()


class CalendarOverrideModel(Model):
    """The officially published holiday schedule of one country and year, replacing the packaged data
    for every contract whose calendar uses that country. A handful of items per country."""

    class Meta(_Meta):
        table_name = f"{PREFIX}calendars"

    country = UnicodeAttribute(hash_key=True)  # a python-holidays country code, e.g. "CN"
    year = NumberAttribute(range_key=True)
    holidays = ListAttribute(of=UnicodeAttribute)  # YYYY-MM-DD days off
    workdays = ListAttribute(of=UnicodeAttribute)  # YYYY-MM-DD make-up working days
    source = UnicodeAttribute()  # where it was published, e.g. the State Council notice
    updated_at = UTCDateTimeAttribute()
    updated_by = UnicodeAttribute()


MODELS = (ContractModel, RequestModel, EventModel, TokenModel, IdempotencyModel, NotificationModel, TallyModel,
          OutageModel, CalendarOverrideModel)


def create_all():
    """Create every table (idempotent) in the current account: tests and the local run."""
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=True)
