"""Stored records <-> domain values: request items to StoredRequest (its facts, text, events and cached
fields) and back, event items to StoredEvent, contract versions to ContractVersion, published calendar
overrides to data, the keys that resume listings, and the plain values of the other records (tokens,
first answers, overrides, erasures, tallies, outages, runs, customer contacts, jobs). Which rules apply
to these values is decided above (chalicelib.evaluation and the use cases): this module maps and
decides nothing."""
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from pynamodb.constants import NULL

from chalicelib.aws.tables import OPEN_KEY, EventModel, RequestModel, listing_key, shard_of, status_key, utc_key
from chalicelib.core.facts import RESOLVED, ContractVersion, StoredEvent, StoredRequest
from chalicelib.core.personal_data import requester_key


@dataclass(frozen=True)
class Token:
    """A stored API token: the SHA-256 of its secret, never the secret."""

    token_id: str
    secret_sha256: str
    role: str
    contract_id: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class FirstAnswer:
    """What an Idempotency-Key names: the request created under it, and the first answer once built."""

    key: str
    fingerprint: str
    request_id: str
    response_body: dict | None
    expires_at: datetime


@dataclass(frozen=True)
class CalendarOverride:
    """A country-year's published holiday schedule (days as YYYY-MM-DD)."""

    country: str
    year: int
    holidays: list
    workdays: list
    source: str
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class Erasure:
    """The audit record of an erasure: who, when, why and how many requests."""

    contract_id: str
    erasure_id: str
    erased_at: datetime
    erased_by: str
    reason: str
    requests: int


@dataclass(frozen=True)
class DayTally:
    """A stored day's tally (core.tally's document) and its penalties before and after the month's cap."""

    contract_id: str
    day: str
    tally: dict
    penalties_raw: float
    penalties: float
    computed_at: datetime


@dataclass(frozen=True)
class Outage:
    """A recorded service outage: start and end as UTC ISO instants."""

    contract_id: str
    start: str
    end: str
    description: str
    recorded_at: datetime
    recorded_by: str


@dataclass(frozen=True)
class CustomerContact:
    """The legs ({ContactId: core.customer_contacts.Leg}) of one Amazon Connect customer contact, where
    its interaction is stored (a bucket, or None), and the version the store's write checks."""

    customer_contact_id: str
    legs: dict
    stored_in: str | None
    version: int | None


@dataclass
class TallyRun:
    """Where a nightly run stands (see TallyRunModel); the run moves it on and the store saves it, under
    `version` (None: not saved yet)."""

    run_id: str
    started_at: datetime
    date: str | None
    after: str | None = None
    current: str | None = None
    lease_until: float | None = None
    version: int | None = None


@dataclass
class Job:
    """A background job: `cursor` is where its next page starts (store.advance_job moves it on)."""

    kind: str
    subject: str
    generation: str
    cursor: dict | None
    created_at: datetime


def value_of(kind, item):
    """The value of `kind` (one of the dataclasses above) holding the same-named attributes of `item`
    (None stays None)."""
    if item is None:
        return None
    return kind(**{f.name: getattr(item, f.name) for f in fields(kind)})


# The attributes a request keeps of its SLA state (cached_attributes), and the listing key: a
# StoredRequest carries them as read, so a refresh writes only what changed and a listing resumes
# after the very key it read.
CACHED = ("checked_until", "status", "current_priority", "contract_version", "breached", "next_check_at",
          "due_shard", "closed_key", "contract_status", "breached_contract", "next_due_at", "due_contract",
          "frozen_state")
_STORED = (*CACHED, "listed_at")
# The fields of a StoredRequest its item holds under the same name, in the same form.
_AS_STORED = ("request_id", "contract_id", "priority", "designated", "received_at", "category", "channel", "subject",
              "description", "requester", "created_by", "status", "current_priority", "frozen_state", "kept_targets",
              "personal_data_erased_at", "idempotency_key", "requester_key")


def overrides_of(items):
    """Published schedules (CalendarOverrideModel items) as ((year, (holidays, workdays)), ...)."""
    return tuple(
        (int(o.year), (frozenset(map(date.fromisoformat, o.holidays)), frozenset(map(date.fromisoformat, o.workdays))))
        for o in items
    )


def contract_version(item):
    """The ContractVersion of a stored contract item (None stays None)."""
    if item is None:
        return None
    return ContractVersion(item.contract_id, int(item.version), item.document, item.updated_at, item.updated_by)


def _instant(epoch_seconds):
    return datetime.fromtimestamp(epoch_seconds, UTC) if epoch_seconds is not None else None


def stored_request(item):
    """The StoredRequest of a request item (None stays None). An item read with a projection maps too:
    what it leaves out reads as None."""
    if item is None:
        return None
    return _stored_request(item.attribute_values)


# A request item's attributes by the names DynamoDB stores them under, and the defaults PynamoDB gives
# those an item lacks.
_REQUEST_ATTRIBUTES = {attr.attr_name: (name, attr) for name, attr in RequestModel.get_attributes().items()}
_REQUEST_DEFAULTS = {name: attr.default for name, attr in RequestModel.get_attributes().items()
                     if attr.default is not None}


def stored_request_of_raw(raw):
    """The StoredRequest of a request item as DynamoDB answered it (one of a Query page's `Items`), each
    attribute read as PynamoDB reads it, without building the PynamoDB item: building it costs about as
    much again as the mapping, and a month's replay or a day's tally maps thousands."""
    values = {name: default() if callable(default) else default for name, default in _REQUEST_DEFAULTS.items()}
    for stored_name, stored in raw.items():
        name, attr = _REQUEST_ATTRIBUTES.get(stored_name, (None, None))
        if attr is not None and stored and NULL not in stored:
            values[name] = attr.deserialize(attr.get_value(stored))
    return _stored_request(values)


def _stored_request(values):
    """The StoredRequest of a request item's attribute values, by attribute name."""
    contract_version = values.get("contract_version")
    return StoredRequest(
        **{name: values.get(name) for name in _AS_STORED},
        events=values.get("timeline") or (),
        contract_version=int(contract_version) if contract_version is not None else None,
        next_check_at=_instant(values.get("next_check_at")),
        checked_until=_instant(values.get("checked_until")),
        version=values.get("version"),
        stored={name: values.get(name) for name in _STORED},
    )


def cached_attributes(request, cached):
    """The attributes of `request` that hold `cached` (a CachedFields): listing filters and their indexes
    (status, breached, the next running deadline of the queue view), and the scanner's sparse index
    (an item leaves the index when it has nothing left to check)."""
    next_check, next_due = cached.next_check_at, cached.next_due_at
    return {
        "checked_until": cached.checked_until.timestamp() if cached.checked_until else None,
        "status": cached.status,
        "current_priority": cached.priority,
        "contract_version": cached.contract_version,
        "breached": cached.breached,
        "next_check_at": next_check.timestamp() if next_check else None,
        "due_shard": shard_of(request.request_id) if next_check else None,
        "closed_key": utc_key(cached.closed_at) if cached.status == RESOLVED else OPEN_KEY,
        "contract_status": status_key(request.contract_id, cached.status),
        "breached_contract": request.contract_id if cached.breached else None,
        "next_due_at": next_due.timestamp() if next_due else None,
        "due_contract": request.contract_id if next_due else None,
        "frozen_state": cached.frozen_state,
    }


def changed_attributes(request, cached):
    """The attributes of `cached` that differ from what `request` holds as read."""
    stored = request.stored or {}
    return {name: value for name, value in cached_attributes(request, cached).items()
            if name not in stored or stored[name] != value}


def event_record(request_id, event, by, note, details=None):
    """The stored form of one event of a request (its own item: who posted it, the note, and its
    `details`, an events.Details)."""
    return EventModel(request_id, event.seq, type=event.type, at=event.at, by=by, note=note,
                      details=details.stored() if details is not None else None)


def stored_event(item):
    return StoredEvent(seq=int(item.seq), type=item.type, at=item.at, by=item.by, note=item.note, details=item.details)


def new_request(request_id, contract_id, new, designated, received_event, created_by):
    """A new request (`new`: the parsed body, `designated`: received on a designated channel), its
    timeline holding `received_event`; not stored yet, nor evaluated."""
    return StoredRequest(
        request_id=request_id, contract_id=contract_id, priority=new.priority, designated=designated,
        received_at=new.received_at, events=(received_event,), category=new.category, channel=new.channel,
        subject=new.subject, description=new.description, requester=new.requester, created_by=created_by,
        requester_key=requester_key(contract_id, new.requester["email"]),
    )


def new_request_item(request, cached):
    """The item of a new request with its cached fields (a CachedFields)."""
    return RequestModel(
        request.request_id,
        contract_id=request.contract_id,
        listed_at=listing_key(request.received_at, request.request_id),
        priority=request.priority,
        category=request.category,
        channel=request.channel,
        designated=request.designated,
        subject=request.subject,
        description=request.description,
        requester=request.requester,
        requester_key=request.requester_key,
        personal_contract=request.contract_id if request.requester_key else None,
        received_at=request.received_at,
        created_by=request.created_by,
        timeline=request.events,
        **cached_attributes(request, cached),
    )


def request_as_read(request):
    """The key of `request` with the version it was read at: an update through it fails (a failed
    condition) when anyone else wrote the request since."""
    if request.version is None:  # an item written without one: the write expects none either
        return RequestModel(request.request_id)
    return RequestModel(request.request_id, version=request.version)


def listing_key_of(request):
    """The key of a request in the listing index: a listing cursor resumes after it."""
    return {"request_id": {"S": request.request_id}, "contract_id": {"S": request.contract_id},
            "listed_at": {"S": request.stored["listed_at"]}}


def deadline_key_of(request):
    """The key of a request in the deadline index: a queue cursor resumes after it."""
    return {"request_id": {"S": request.request_id}, "due_contract": {"S": request.stored["due_contract"]},
            "next_due_at": {"N": RequestModel.next_due_at.serialize(request.stored["next_due_at"])}}


def without_deadline_key_of(status):
    """The key of a request in the index requests_without_deadline reads for `status`."""
    def key_of(request):
        partition = ("contract_status", request.stored["contract_status"]) if status \
            else ("contract_id", request.contract_id)
        return {"request_id": {"S": request.request_id}, partition[0]: {"S": partition[1]},
                "listed_at": {"S": request.stored["listed_at"]}}

    return key_of
