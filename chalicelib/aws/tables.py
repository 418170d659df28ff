"""PynamoDB models: the only description of the DynamoDB tables, and `create_all()`.

PynamoDB evaluates Meta at import, so each model's table name, region and endpoint are properties
read from `settings` whenever PynamoDB asks for them (it builds a model's connection again when the
table name it gives changes): importing this module reads no setting.
"""
import hashlib
from datetime import UTC

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib import settings
from chalicelib.aws import timeouts
from chalicelib.aws.timeline_codec import TimelineAttribute

CONNECTIONS = 16  # HTTP connections a botocore client keeps open: one for each scanner thread


class _SettingsMeta(type):
    """Table settings as class properties of Meta, read when used."""

    @property
    def table_name(cls):
        return settings.value("table_prefix") + cls.table  # PynamoDB reads it several times a call

    @property
    def region(cls):
        return settings.value("region")

    @property
    def host(cls):
        return settings.value("endpoint_url")


class _Meta(metaclass=_SettingsMeta):
    table = None  # the name after the stage's prefix
    billing_mode = "PAY_PER_REQUEST"
    max_pool_connections = CONNECTIONS
    connect_timeout_seconds = timeouts.DYNAMODB.connect
    read_timeout_seconds = timeouts.DYNAMODB.read
    max_retry_attempts = timeouts.DYNAMODB.attempts - 1  # retries, after the first attempt


class ContractModel(Model):
    """One item per contract version: history is kept so a resolved request keeps its terms."""

    class Meta(_Meta):
        table = "contracts"

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


def status_key(contract_id, status):
    """`contract_status`: the partition of a contract's requests in one status."""
    return f"{contract_id}#{status}"


class RequestsByContractStatus(GlobalSecondaryIndex):
    """A contract's requests in one status, newest first: a status-filtered listing (and the open
    requests a contract change re-evaluates) reads those requests only, not the contract's history."""

    class Meta:
        index_name = "by_contract_status"
        projection = AllProjection()  # listing evaluates each request, which needs its timeline

    contract_status = UnicodeAttribute(hash_key=True)
    listed_at = UnicodeAttribute(range_key=True)


class RequestsBreached(GlobalSecondaryIndex):
    """Sparse: only requests breached when last evaluated carry `breached_contract` (their contract id),
    newest first. Every write and every scanner visit re-evaluates a request, and the scanner visits at
    each deadline, so a request enters the index within a scan of its breach."""

    class Meta:
        index_name = "breached_by_contract"
        projection = AllProjection()  # listing evaluates each request, which needs its timeline

    breached_contract = UnicodeAttribute(hash_key=True)
    listed_at = UnicodeAttribute(range_key=True)


class RequestsDueByContract(GlobalSecondaryIndex):
    """Sparse: only requests with a running deadline carry `due_contract` (their contract id), sorted by
    `next_due_at`, the earliest deadline still running. The queue view ("what is due soon") reads the
    requests it returns, soonest first, never the contract's history."""

    class Meta:
        index_name = "due_by_contract"
        projection = AllProjection()  # listing evaluates each request, which needs its timeline

    due_contract = UnicodeAttribute(hash_key=True)
    next_due_at = NumberAttribute(range_key=True)


class RequestsByRequester(GlobalSecondaryIndex):
    """Sparse: only requests still holding their requester's personal data carry `requester_key`
    (core.personal_data.requester_key: a hash of the contract and the address). An erasure on request
    reads that requester's requests, never the contract's history; erasing one removes its key."""

    class Meta:
        index_name = "by_requester"
        projection = KeysOnlyProjection()

    requester_key = UnicodeAttribute(hash_key=True)


class RequestsWithPersonalData(GlobalSecondaryIndex):
    """Sparse: only requests still holding personal data carry `personal_contract` (their contract id),
    by `closed_key`. The nightly retention run reads the resolved ones that went quiet before its
    cutoff, a page at a time: what it erased has left the index, so the next night starts where this
    one stopped and the cost is the page, not the contract's history."""

    class Meta:
        index_name = "personal_by_closed"
        projection = KeysOnlyProjection()

    personal_contract = UnicodeAttribute(hash_key=True)
    closed_key = UnicodeAttribute(range_key=True)


class RequestModel(Model):
    """A customer request: its facts, the clock-relevant timeline, and cached derived fields.

    Full events (with notes and authors) live in EventModel; `timeline` keeps the compact copy the
    clock needs, packed to a few bytes an event, so evaluating a request costs one read whatever its
    notes weigh or however many events it has.
    """

    class Meta(_Meta):
        table = "requests"

    request_id = UnicodeAttribute(hash_key=True)
    contract_id = UnicodeAttribute()
    listed_at = UnicodeAttribute()
    priority = UnicodeAttribute()  # as created; reprioritize events change the current one
    category = UnicodeAttribute(null=True)  # the contract category whose targets replace the priority's
    channel = UnicodeAttribute()
    designated = BooleanAttribute()  # channel was designated at receipt: the clock started then
    # The requester's personal data: null once erased (then personal_data_erased_at says when).
    subject = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    requester = JSONAttribute(null=True)
    requester_key = UnicodeAttribute(null=True)  # by_requester's key, while the personal data is kept
    personal_contract = UnicodeAttribute(null=True)  # the contract id, while the personal data is kept
    personal_data_erased_at = UTCDateTimeAttribute(null=True)
    idempotency_key = UnicodeAttribute(null=True)  # the IdempotencyModel key it was created under, if any
    received_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    timeline = TimelineAttribute()  # the clock's Events, oldest first (timeline_codec)
    version = VersionAttribute()
    # Derived from the timeline by the pure clock; cached for listing filters and the scanner.
    status = UnicodeAttribute()
    current_priority = UnicodeAttribute()
    contract_version = NumberAttribute()
    breached = BooleanAttribute(default=False)
    next_check_at = NumberAttribute(null=True)  # epoch seconds
    due_shard = UnicodeAttribute(null=True)  # set only while next_check_at is
    # Epoch seconds up to which the scanner has sent what came due; None: never checked, or changed
    # since (an event, a contract change), so the next visit looks at every milestone again.
    checked_until = NumberAttribute(null=True)
    closed_key = UnicodeAttribute(default=OPEN_KEY)
    contract_status = UnicodeAttribute(null=True)  # status_key(contract_id, status); null only on older items
    breached_contract = UnicodeAttribute(null=True)  # the contract id, while breached
    next_due_at = NumberAttribute(null=True)  # epoch seconds of the earliest running deadline
    due_contract = UnicodeAttribute(null=True)  # the contract id, set only while next_due_at is
    # While resolved: the SLA state it was resolved with (clock.freeze), so later calendar data or
    # contract versions never change its deadlines, breaches or penalty. Removed by a reopen.
    frozen_state = JSONAttribute(null=True)
    # Set by a reopen under a version that no longer defines the request's priority or category: the
    # targets it was resolved under, which it keeps running on (policy.KeptTargets.as_document).
    kept_targets = JSONAttribute(null=True)

    by_contract = RequestsByContract()
    by_contract_closed = RequestsByContractClosed()
    due_for_check = RequestsDueForCheck()
    by_contract_status = RequestsByContractStatus()
    breached_by_contract = RequestsBreached()
    due_by_contract = RequestsDueByContract()
    by_requester = RequestsByRequester()
    personal_by_closed = RequestsWithPersonalData()


class EventModel(Model):
    """The append-only event record of a request (seq 1 is "received")."""

    class Meta(_Meta):
        table = "events"

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
        table = "tokens"

    token_id = UnicodeAttribute(hash_key=True)
    secret_sha256 = UnicodeAttribute()
    role = UnicodeAttribute()
    contract_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    expires_at = UTCDateTimeAttribute(null=True)  # refused from then on; None: until revoked
    last_used_at = UTCDateTimeAttribute(null=True)  # written at most once a minute (auth.USE_STAMP_EVERY)


class IdempotencyModel(Model):
    """The request created under an `Idempotency-Key`, per token, kept 24 h. Written in the same
    transaction as the request, so a key names a committed request or nothing."""

    class Meta(_Meta):
        table = "idempotency"

    key = UnicodeAttribute(hash_key=True)  # sha256(token_id + key)
    fingerprint = UnicodeAttribute()  # sha256 of the request body
    request_id = UnicodeAttribute()
    response_body = JSONAttribute(null=True)  # the first answer, once it was built
    expires_at = TTLAttribute()


class PendingNotifications(GlobalSecondaryIndex):
    """Sparse: only notifications still to be sent carry `pending_shard`. Projects what the scanner
    decides on before it claims any of them: the order of a backlog (urgency, then deadline) and
    each one's kind (a provider alert is re-checked against its request first)."""

    class Meta:
        index_name = "pending"
        projection = IncludeProjection(["urgency", "due_at", "kind"])

    pending_shard = UnicodeAttribute(hash_key=True)
    retry_at = NumberAttribute(range_key=True)


class NotificationsByMessageId(GlobalSecondaryIndex):
    """Sparse: only notifications SES accepted carry `message_id`. SES's delivery, bounce and complaint
    events name the message by it."""

    class Meta:
        index_name = "by_message_id"
        projection = KeysOnlyProjection()

    message_id = UnicodeAttribute(hash_key=True)


class RecipientFeedbackAttribute(MapAttribute):
    """What SES reported about one recipient of an email (core.feedback.Feedback)."""

    address = UnicodeAttribute()
    delivered_at = UTCDateTimeAttribute(null=True)
    bounced_at = UTCDateTimeAttribute(null=True)
    bounce_type = UnicodeAttribute(null=True)
    complained_at = UTCDateTimeAttribute(null=True)
    diagnostic = UnicodeAttribute(null=True)  # the receiving server's answer to the bounce kept


class NotificationsByRequest(GlobalSecondaryIndex):
    """A request's notifications by creation time, newest first when read backwards: the
    request document's newest page and each older page cost their own items, whatever the request's age.
    Projects what a notification's document shows, not the bodies: a page of 1,000 stays well below
    DynamoDB's 1 MB."""

    class Meta:
        index_name = "by_request_created"
        projection = IncludeProjection(["kind", "recipients", "status", "attempts", "sent_at", "delivered_at",
                                        "bounced_at", "bounce_type", "complained_at", "last_error", "reason",
                                        "recipients_feedback"])

    request_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class NotificationModel(Model):
    """The dedupe outbox: one item per notification (request × kind × metric × cycle × threshold, or
    request × event). Creating it is conditional, so each notification exists once; a short lease
    claimed with a conditional update lets exactly one sender at a time try it."""

    class Meta(_Meta):
        table = "outbox"

    request_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute(range_key=True)  # e.g. "warning|first_response|0|0.8", "event|3"
    contract_id = UnicodeAttribute()
    kind = UnicodeAttribute()
    # "pending", "sent", "failed", "superseded" (no longer true: not sent) or "skipped" (created never
    # to be sent, `reason` says why: "backdated", a customer notice about a moment long past)
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    recipients = ListAttribute(of=UnicodeAttribute)
    sender = UnicodeAttribute()  # the address: SES's Source and the From header's address
    sender_name = UnicodeAttribute(null=True)  # the From header's display name
    reply_to = UnicodeAttribute(null=True)  # the Reply-To header (customer emails, when the contract sets one)
    subject = UnicodeAttribute()
    text = UnicodeAttribute()
    html = UnicodeAttribute()
    attachments = JSONAttribute(null=True)  # [{"filename", "content_type", "content"}]: a monthly report's CSV
    attempts = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    sent_at = UTCDateTimeAttribute(null=True)
    lease_until = NumberAttribute(null=True)  # epoch seconds: someone is sending it until then
    message_id = UnicodeAttribute(null=True)  # SES MessageId once accepted
    superseded_at = UTCDateTimeAttribute(null=True)
    # What SES reported after accepting it (its delivery, bounce and complaint events, core.feedback):
    # the first delivery and complaint to any recipient, the worst bounce of any...
    delivered_at = UTCDateTimeAttribute(null=True)
    bounced_at = UTCDateTimeAttribute(null=True)
    bounce_type = UnicodeAttribute(null=True)  # SES's bounceType: "Permanent", "Transient" or "Undetermined"
    complained_at = UTCDateTimeAttribute(null=True)
    # ...and each recipient's own (at most one per address of `recipients`), changed only under a
    # condition on `feedback_changes`, which counts the changes: two events at once never lose one.
    recipients_feedback = ListAttribute(of=RecipientFeedbackAttribute, null=True)
    feedback_changes = NumberAttribute(null=True)
    pending_shard = UnicodeAttribute(null=True)
    retry_at = NumberAttribute(null=True)
    urgency = NumberAttribute(default=4)  # emails.URGENCY: breaches 0 first, reports 4 last
    due_at = NumberAttribute(null=True)  # epoch seconds of the deadline it names: earlier goes first
    expires_at = TTLAttribute()

    pending = PendingNotifications()
    by_message_id = NotificationsByMessageId()
    by_request_created = NotificationsByRequest()


class TallyModel(Model):
    """One nightly tally per contract and local day; re-running a day rewrites it."""

    class Meta(_Meta):
        table = "tallies"

    contract_id = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)  # YYYY-MM-DD in the contract's timezone
    tally = JSONAttribute()  # counts, breaches, on-time counts, ratings, penalty lines
    penalties_raw = NumberAttribute()  # accrued that day before the monthly cap
    penalties = NumberAttribute()  # what the cap leaves of it, given the earlier days of the month
    computed_at = UTCDateTimeAttribute()


TALLY_RUNS = "~runs"  # contract ids start with a letter or digit: no contract's tallies share this key


class TallyRunModel(Model):
    """Where a nightly run stands, kept in the tallies table under TALLY_RUNS (a second model over the
    same table and key names, so no table of its own). Contracts are tallied in id order; a run that
    ran out of time, or whose invocation died, resumes after `after`. Deleted once the run is done."""

    class Meta(_Meta):
        table = TallyModel.Meta.table

    partition = UnicodeAttribute(hash_key=True, attr_name="contract_id")  # always TALLY_RUNS
    run_id = UnicodeAttribute(range_key=True, attr_name="day")  # utc_key of the run's start
    started_at = UTCDateTimeAttribute()  # each contract tallies its local day before this instant...
    date = UnicodeAttribute(null=True)  # ...unless a back-fill names the date (YYYY-MM-DD)
    after = UnicodeAttribute(null=True)  # the last contract id dealt with
    current = UnicodeAttribute(null=True)  # being tallied; still set when the invocation died in it
    lease_until = NumberAttribute(null=True)  # epoch seconds: the invocation on it may run until then
    version = VersionAttribute()  # concurrent runners: the one that saves second stops


class OutageModel(Model):
    """Service outages feeding availability; overlapping ones are merged when recorded."""

    class Meta(_Meta):
        table = "outages"

    contract_id = UnicodeAttribute(hash_key=True)
    start = UnicodeAttribute(range_key=True)  # ISO UTC instant
    end = UnicodeAttribute()
    description = UnicodeAttribute()
    recorded_at = UTCDateTimeAttribute()
    recorded_by = UnicodeAttribute()


class JobModel(Model):
    """Background work the scanner drains in pages: re-evaluating a contract's open requests after
    the contract (or its holiday data) changed. One item per job; `cursor` is where the next page starts."""

    class Meta(_Meta):
        table = "jobs"

    kind = UnicodeAttribute(hash_key=True)  # "reevaluate"
    subject = UnicodeAttribute(range_key=True)  # the contract id
    generation = UnicodeAttribute()  # changes whenever the job is (re)started: a stale finisher leaves it
    cursor = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    done_items = NumberAttribute(default=0)



class ErasureModel(Model):
    """The audit record of one erasure of personal data: who (a token id, or "retention" for the
    nightly run), when, and how many requests; never whose data it was."""

    class Meta(_Meta):
        table = "erasures"

    contract_id = UnicodeAttribute(hash_key=True)
    erasure_id = UnicodeAttribute(range_key=True)  # utc_key of the erasure + a random suffix: newest last
    erased_at = UTCDateTimeAttribute()
    erased_by = UnicodeAttribute()
    reason = UnicodeAttribute()  # "request" (POST /contracts/{id}/erasures) or "retention"
    requests = NumberAttribute()


class CalendarOverrideModel(Model):
    """The officially published holiday schedule of one country and year, replacing the packaged data
    for every contract whose calendar uses that country. A handful of items per country."""

    class Meta(_Meta):
        table = "calendars"

    country = UnicodeAttribute(hash_key=True)  # a python-holidays country code, e.g. "CN"
    year = NumberAttribute(range_key=True)
    holidays = ListAttribute(of=UnicodeAttribute)  # YYYY-MM-DD days off
    workdays = ListAttribute(of=UnicodeAttribute)  # YYYY-MM-DD make-up working days
    source = UnicodeAttribute()  # where it was published, e.g. the State Council notice
    updated_at = UTCDateTimeAttribute()
    updated_by = UnicodeAttribute()


def interaction_bucket(contract_id, offered_at):
    """The partition of a contract's interactions offered in one UTC hour: "<contract>#YYYY-MM-DDTHH".
    A local day of any timezone is 23 to 25 such hours, so the nightly tally reads that day's
    interactions and no other day's, whatever the table holds (and a timezone change moves nothing)."""
    return f"{contract_id}#{offered_at.astimezone(UTC):%Y-%m-%dT%H}"


def interaction_locator(contract_id, interaction_id):
    """The partition of the item that says where an interaction id is stored: "<contract>~<id>"
    (contract ids hold neither '#' nor '~', so it never meets an hour's partition)."""
    return f"{contract_id}~{interaction_id}"


class InteractionModel(Model):
    """One phone call or chat of a contract, in the partition of the UTC hour it was offered in.
    Instants are epoch microseconds: the tally reads a day of them and compares waits exactly."""

    class Meta(_Meta):
        table = "interactions"

    bucket = UnicodeAttribute(hash_key=True)  # interaction_bucket(contract, offered_at)
    interaction_id = UnicodeAttribute(range_key=True)
    channel = UnicodeAttribute()
    offered_us = NumberAttribute()
    answered_us = NumberAttribute(null=True)
    abandoned_us = NumberAttribute(null=True)
    callback = BooleanAttribute(null=True)  # set only on a queued callback
    expires_at = TTLAttribute()


class InteractionLocatorModel(Model):
    """Where an interaction id is stored (its hour's partition), kept in the interactions table under
    interaction_locator(): a re-sent id whose offered_at moved to another hour removes its old record."""

    class Meta(_Meta):
        table = InteractionModel.Meta.table

    locator = UnicodeAttribute(hash_key=True, attr_name="bucket")
    interaction_id = UnicodeAttribute(range_key=True)
    stored_in = UnicodeAttribute()  # the record's bucket
    expires_at = TTLAttribute()


def customer_contact_key(contract_id, customer_contact_id):
    """The partition of the contact records of one Amazon Connect customer contact of a contract:
    "<contract>^<InitialContactId>" (contract ids hold no '^': it meets no other partition)."""
    return f"{contract_id}^{customer_contact_id}"


class CustomerContactModel(Model):
    """The contact records (legs) of one Amazon Connect customer contact of a contract, kept in the
    interactions table under customer_contact_key(), with where its interaction is stored. Versioned:
    consumers of two shards adding legs of one customer contact at once cannot lose one."""

    class Meta(_Meta):
        table = InteractionModel.Meta.table

    key = UnicodeAttribute(hash_key=True, attr_name="bucket")
    customer_contact_id = UnicodeAttribute(range_key=True, attr_name="interaction_id")
    legs = JSONAttribute()  # {ContactId: leg}, as store.leg_document writes them
    stored_in = UnicodeAttribute(null=True)  # the bucket of its interaction; None: no offered contact (yet)
    expires_at = TTLAttribute()
    version = VersionAttribute()


class ConnectQueueModel(Model):
    """Which contract an Amazon Connect queue feeds: one item per queue listed by a contract's latest
    version, written with that version (and removed by the version that drops the queue). The contact
    record consumer reads the queues of a batch, never every contract."""

    class Meta(_Meta):
        table = "connect_queues"

    queue_id = UnicodeAttribute(hash_key=True)
    contract_id = UnicodeAttribute()


MODELS = (ContractModel, RequestModel, EventModel, TokenModel, IdempotencyModel, NotificationModel, TallyModel,
          OutageModel, JobModel, CalendarOverrideModel, InteractionModel, ConnectQueueModel, ErasureModel)


def create_all():
    """Create every table (idempotent) in the current account: tests and the local run."""
    for model in MODELS:
        if not model.exists():
            model.create_table(wait=True)


def connect(*models):
    """Build each model's botocore client now, in this thread. PynamoDB builds it on first use; threads
    using a model for the first time at once would each build one (and loading the service model
    costs more than a call). Once built, the client is shared: botocore clients are thread-safe."""
    for model in models:
        model._get_connection().connection.client  # noqa: B018 - the property builds and caches it


def write(item, fields, condition=None):
    """Set each of `fields` on the stored item (None removes it) and on `item`, in one UpdateItem that
    answers nothing. PynamoDB's `Model.update` asks for the whole item back (ReturnValues ALL_NEW),
    which DynamoDB sends and we parse on every write: an outbox item's bodies on each lease and mark.
    A versioned model keeps its check: the write fails if anyone else wrote since `item` was read."""
    model = type(item)
    actions = [getattr(model, name).remove() if value is None else getattr(model, name).set(value)
               for name, value in fields.items()]
    hash_key, range_key = item._get_hash_range_key_serialized_values()
    version_condition = item._handle_version_attribute(actions=actions)
    if version_condition is not None:
        condition &= version_condition
    item._get_connection().update_item(hash_key, range_key=range_key, actions=actions, condition=condition)
    for name, value in fields.items():
        setattr(item, name, value)
    item.update_local_version_attribute()


def condition_failed(exc):
    """Whether a write (or a transaction) was refused because its condition did not hold: someone else
    wrote first. Any other error is a fault of its own."""
    if isinstance(exc, TransactWriteError):
        return any(r is not None and r.code == "ConditionalCheckFailed" for r in exc.cancellation_reasons or ())
    return exc.cause_response_code == "ConditionalCheckFailedException"


def written_if_it_holds(conditional_write):
    """Run a conditional put, update or delete: True when written, False when its condition did not hold."""
    try:
        conditional_write()
    except (PutError, UpdateError, DeleteError) as exc:
        if condition_failed(exc):
            return False
        raise
    return True
