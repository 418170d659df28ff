"""What a stored request is made of, as plain data: its statuses and event types, the facts it was
created with, its events, and the fields cached from its SLA state. The store maps its items to and
from these; the rules that produce them live in clock, policy, alerts and evaluation."""
from dataclasses import dataclass
from datetime import datetime

from chalicelib.core import events

EVENT_TYPES = events.NAMES
OPEN, AWAITING_CUSTOMER, RESOLVED = "open", "awaiting_customer", "resolved"
STATUSES = (OPEN, AWAITING_CUSTOMER, RESOLVED)
FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION = "first_response", "progress_update", "resolution"
METRICS = (FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION)  # in the order reports and emails list them


@dataclass(frozen=True)
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
