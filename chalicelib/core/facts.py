"""What the store holds, as plain data: a request's statuses and event types, the facts it was created
with, its events, the fields cached from its SLA state, the request as read, and a contract version.
The store maps its items to and from these; the rules that produce them live in clock, policy, alerts
and evaluation."""
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.core import events

EVENT_TYPES = events.NAMES
OPEN, AWAITING_CUSTOMER, RESOLVED = "open", "awaiting_customer", "resolved"
STATUSES = (OPEN, AWAITING_CUSTOMER, RESOLVED)
FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION = "first_response", "progress_update", "resolution"
METRICS = (FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION)  # in the order reports and emails list them


@dataclass(frozen=True, slots=True)
class Event:
    """What the clock needs of an event: its type, time and the details the clock reads
    (events.CLOCK_DETAILS); authors, notes and other details live in the event record, not here."""

    seq: int
    type: str
    at: datetime
    priority: str | None = None
    score: int | None = None
    channel: str | None = None


@dataclass(frozen=True)
class RequestFacts:
    """What the request was created with; everything after that is in its events."""

    priority: str
    designated: bool  # received on a designated channel: the clock starts at once
    received_at: datetime
    category: str | None = None  # its targets replace the priority's (Policy.targets)
    kept: object = None  # policy.KeptTargets: the targets a reopen kept, for a contract that dropped them


@dataclass(frozen=True)
class CachedFields:
    """What a request keeps of its SLA state for the listings, the queue view and the scanner.

    `next_check_at`: when the scanner looks next (None: nothing left to check); `checked_until`: the
    scanner has handled every milestone up to then (None after any other write); `closed_at`: when a
    resolved request last changed (None while it is not resolved); `frozen_state`: a resolved
    request's outcome, kept whatever calendar data or contract versions come later."""

    status: str
    priority: str
    contract_version: int
    breached: bool
    next_check_at: datetime | None
    next_due_at: datetime | None
    closed_at: datetime | None
    frozen_state: dict | None
    checked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """A request as the store read it: what it was created with, its text, its events (the clock's
    Events, oldest first) and what it keeps of its SLA state. A value: a use case reads it, asks the
    core, and hands the store what to write.

    `version`: the stored item's version, which the store's conditional write checks (None: not stored
    yet); `stored`: the cached fields as the store holds them, so a refresh writes only what changed."""

    request_id: str
    contract_id: str
    priority: str  # as created; reprioritize events change the current one
    designated: bool
    received_at: datetime
    events: tuple  # of Event
    category: str | None = None
    channel: str | None = None
    subject: str | None = None  # the requester's personal data: None once erased
    description: str | None = None
    requester: dict | None = None
    created_by: str | None = None
    status: str | None = None  # None: not evaluated yet (a new request)
    current_priority: str | None = None
    contract_version: int | None = None
    next_check_at: datetime | None = None
    checked_until: datetime | None = None
    frozen_state: dict | None = None
    kept_targets: dict | None = None  # policy.KeptTargets.as_document()
    personal_data_erased_at: datetime | None = None
    idempotency_key: str | None = None
    requester_key: str | None = None
    version: int | None = None
    stored: dict | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a request as recorded: who posted it, its note and its details."""

    seq: int
    type: str
    at: datetime
    by: str
    note: str | None = None
    details: dict | None = None


@dataclass(frozen=True, slots=True)
class ContractVersion:
    """One stored version of a contract: its normalized document (parsed by core.policy)."""

    contract_id: str
    version: int
    document: dict
    updated_at: datetime
    updated_by: str | None = None
