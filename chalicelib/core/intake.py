"""Validation of incoming request and event bodies (pure: `now` and the caller are arguments).

Every error is a ValidationError naming the field; nothing is stored unless the whole body is valid.
"""
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field

from chalicelib.core.calendar import parse_date
from chalicelib.core.errors import ForbiddenError, ValidationError
from chalicelib.core.fields import (
    instant,
    missing,
    reject_unknown,
    require,
    require_object,
    text,
)
from chalicelib.core.schemas import (  # noqa: F401 - the limits are read here too (docs tests)
    MAX_DESCRIPTION,
    MAX_NOTE,
    MAX_SUBJECT,
    Channel,
    Document,
    Instant,
    PreviewInput,
    RequestInput,
    Says,
    Text,
    check,
)
from chalicelib.core.service_level import Interaction

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # older history is a typo, not a backfill
SCHEDULE_KEYS = ("holidays", "workdays", "source")
MAX_SOURCE = 500
POSTABLE_EVENTS = (
    "respond", "progress", "await_customer", "customer_reply", "reprioritize", "register", "resolve",
    "reopen", "rate",
)
# What each role may post: customers (through client systems) reply, reopen and rate; agents run
# the request; admins may do everything.
EVENTS_BY_ROLE = {
    "client": frozenset({"customer_reply", "reopen", "rate"}),
    "agent": frozenset(POSTABLE_EVENTS) - {"rate"},
    "admin": frozenset(POSTABLE_EVENTS),
}
BACKDATING_ROLES = ("agent", "admin")
EVENT_ONLY_KEYS = {"priority": "reprioritize", "score": "rate", "channel": "register"}


class EventInput(Document):
    """A POST /requests/{id}/events body. (Declared here, after the event types it names.)"""

    type: Literal[POSTABLE_EVENTS] = Field(description=(
        "one of the event types below, allowed for the token's role (`403` otherwise)"))
    at: Instant | None = Field(None, description=(
        "defaults to now; only agent and admin tokens may set it; not in the future, not before the previous event"))
    note: Text(MAX_NOTE, min_len=0, multiline=True) | None = Field(None, description=(
        f"up to {MAX_NOTE:,} characters, tab and line breaks allowed; included in the customer's email"))
    priority: str | None = Field(None, description="`reprioritize` only, required there: one of the contract's "
                                                   "priorities")
    score: Annotated[int | None, Says(int_type="must be a whole number from 1 to 5",
                                      greater_than_equal="must be a whole number from 1 to 5",
                                      less_than_equal="must be a whole number from 1 to 5")] = \
        Field(None, ge=1, le=5, description="`rate` only, required there: a whole number 1–5")
    channel: Channel | None = Field(None, description=(
        "`register` only: the designated channel the request is recorded on"))


def _backdated(value, key, role, now, not_before=None):
    """`value` of `received_at` / `at`: only agents and admins may set it; never in the future, nor
    before `not_before` (an aware datetime, named in the message in its own timezone). None: `now`."""
    if value is None:
        return now
    if role not in BACKDATING_ROLES:
        raise ValidationError(key, "only agent or admin tokens may set it")
    at = instant(value, key)
    if at < EARLIEST:
        raise ValidationError(key, f"must not precede {EARLIEST.date().isoformat()}")
    if at > now:
        raise ValidationError(key, "must not lie in the future")
    if not_before is not None and at < not_before:
        raise ValidationError(key, f"must not precede the previous event ({not_before.isoformat()})")
    return at


def _priority(value, policy):
    if not isinstance(value, str) or value not in policy.priorities:
        raise ValidationError("priority", f"must be one of the contract's priorities: {', '.join(policy.priorities)}")
    return value


def _category(value, policy):
    """A request's optional category: null or one the contract defines."""
    if value is None:
        return None
    if not policy.categories:
        raise ValidationError("category", "the contract defines no categories")
    if not isinstance(value, str) or value not in policy.categories:
        raise ValidationError("category", f"must be one of the contract's categories: {', '.join(policy.categories)}")
    return value


@dataclass(frozen=True)
class NewRequest:
    contract_id: str
    priority: str
    channel: str
    subject: str
    description: str | None
    requester: dict
    received_at: datetime
    category: str | None = None


def contract_id_of(body):
    """The contract a POST /requests body names, once the body is valid (schemas.RequestInput)."""
    return check(RequestInput, body).contract_id


def parse_new_request(body, policy, role, now):
    """A POST /requests body, checked against the contract's policy."""
    request = check(RequestInput, body)
    return NewRequest(
        contract_id=request.contract_id,
        priority=_priority(request.priority, policy),
        channel=request.channel,
        subject=request.subject,
        description=request.description,
        requester=request.requester.model_dump(exclude_none=True),
        received_at=_backdated(request.received_at, "received_at", role, now),
        category=_category(request.category, policy),
    )


@dataclass(frozen=True)
class Preview:
    priority: str
    received_at: datetime
    channel: str | None  # None: assume a designated channel
    category: str | None = None


def parse_preview(body, policy, role, now):
    """A POST /contracts/{id}/preview body: the fields of a request that decide its deadlines, checked
    as a request's are."""
    preview = check(PreviewInput, body)
    return Preview(priority=_priority(preview.priority, policy),
                   received_at=_backdated(preview.received_at, "received_at", role, now),
                   channel=preview.channel, category=_category(preview.category, policy))


@dataclass(frozen=True)
class NewEvent:
    type: str
    at: datetime
    note: str | None = None
    priority: str | None = None
    score: int | None = None
    channel: str | None = None


def parse_event(body, policy, role, now, last_at):
    """A POST /requests/{id}/events body. `last_at`: time of the request's latest event."""
    event = check(EventInput, body)
    if event.type not in EVENTS_BY_ROLE[role]:
        raise ForbiddenError(f"a {role} token may not post {event.type} events")
    for key, only_for in EVENT_ONLY_KEYS.items():
        if getattr(event, key) is not None and event.type != only_for:
            raise ValidationError(key, f"only allowed on {only_for} events")
    fields = {}
    if event.type == "reprioritize":
        fields["priority"] = _priority(event.priority, policy)
    if event.type == "rate":
        if event.score is None:
            raise ValidationError("score", "must be a whole number from 1 to 5")
        fields["score"] = event.score
    if event.type == "register" and event.channel is not None:
        if not policy.is_designated(event.channel):
            raise ValidationError("channel", f"{event.channel!r} is not a designated channel of the contract")
        fields["channel"] = event.channel
    if event.note is not None:
        fields["note"] = event.note
    not_before = last_at.astimezone(policy.calendar.tz) if last_at is not None else None
    return NewEvent(type=event.type, at=_backdated(event.at, "at", role, now, not_before=not_before), **fields)


MAX_INTERACTIONS = 500  # per call: a feed's batch, well inside the API's body limit
MAX_INTERACTION_ID = 128
INTERACTION_KEYS = ("id", "channel", "offered_at", "answered_at", "abandoned_at")
REQUIRED_INTERACTION_KEYS = ("id", "channel", "offered_at")
# Interactions are kept this long (DynamoDB's TTL removes them after): an older one could not be kept.
INTERACTION_RETENTION = timedelta(days=400)


def parse_interactions(body, policy, now):
    """A POST /contracts/{id}/interactions body: {"items": [...]}, every item checked before anything is
    stored; an error names the item, e.g. `items[3].answered_at`."""
    require_object(body, "body")
    reject_unknown(body, ("items",))
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise ValidationError("items", "is required: a list of 1 to 500 interactions")
    if len(items) > MAX_INTERACTIONS:
        raise ValidationError("items", f"holds {len(items)} interactions; send at most {MAX_INTERACTIONS} per call")
    if not policy.interactions:
        raise ValidationError("items", "the contract defines no interaction channels (its `interactions` key)")
    require([path for i, item in enumerate(items) if isinstance(item, dict)
             for path in missing(item, REQUIRED_INTERACTION_KEYS, f"items[{i}]", null=True)])
    parsed, seen = [], {}
    for i, item in enumerate(items):
        interaction = parse_interaction(item, f"items[{i}]", policy, now)
        if interaction.id in seen:
            raise ValidationError(f"items[{i}].id", f"repeats items[{seen[interaction.id]}].id: send each id once")
        seen[interaction.id] = i
        parsed.append(interaction)
    return parsed


def parse_interaction(item, where, policy, now):
    """One interaction: an id, a channel of the contract, when it was offered, and when it was answered
    or abandoned (neither: still waiting when sent, or ended otherwise; it counts as offered only)."""
    require_object(item, where)
    reject_unknown(item, INTERACTION_KEYS, where)
    require(missing(item, REQUIRED_INTERACTION_KEYS, where, null=True))
    interaction_id = text(item["id"], f"{where}.id", MAX_INTERACTION_ID)
    channel = item["channel"]
    if not isinstance(channel, str) or channel not in policy.interactions:
        raise ValidationError(f"{where}.channel", f"must be one of the contract's channels: "
                                                 f"{', '.join(policy.interactions)}")
    offered = _interaction_time(item, "offered_at", where, now)
    if offered < now - INTERACTION_RETENTION:
        raise ValidationError(f"{where}.offered_at", f"is older than the {INTERACTION_RETENTION.days} days "
                                                     "interactions are kept")
    ends = {key: _interaction_time(item, key, where, now) for key in ("answered_at", "abandoned_at")
            if item.get(key) is not None}
    if len(ends) == 2:
        raise ValidationError(f"{where}.abandoned_at", "an interaction is answered or abandoned, not both")
    for key, at in ends.items():
        if at < offered:
            raise ValidationError(f"{where}.{key}", "must not precede offered_at")
    return Interaction(id=interaction_id, channel=channel, offered_at=offered,
                       answered_at=ends.get("answered_at"), abandoned_at=ends.get("abandoned_at"))


def _interaction_time(item, key, where, now):
    at = instant(item[key], f"{where}.{key}")
    if at > now:
        raise ValidationError(f"{where}.{key}", "must not lie in the future")
    return at


@dataclass(frozen=True)
class YearSchedule:
    holidays: tuple  # sorted dates
    workdays: tuple
    source: str


def _dates_of_year(value, name, year):
    if not isinstance(value, list):
        raise ValidationError(name, f"must be a list of dates YYYY-MM-DD in {year}")
    found = {}
    for i, item in enumerate(value):
        day = parse_date(item, f"{name}[{i}]")
        if day.year != year:
            raise ValidationError(f"{name}[{i}]", f"{item} is not in {year}")
        found.setdefault(day, i)
    return found


def parse_year_schedule(body, year):
    """A PUT /calendars/{country}/{year} body: the year's official days off (`holidays`), make-up working
    days (`workdays`) and where they were published (`source`)."""
    require_object(body, "body")
    reject_unknown(body, SCHEDULE_KEYS)
    require(missing(body, SCHEDULE_KEYS))
    holidays = _dates_of_year(body["holidays"], "holidays", year)
    workdays = _dates_of_year(body["workdays"], "workdays", year)
    for day, i in sorted(workdays.items(), key=lambda pair: pair[1]):
        if day in holidays:
            raise ValidationError(f"workdays[{i}]", f"{day} is also listed in holidays: a day is one or the other")
    return YearSchedule(tuple(sorted(holidays)), tuple(sorted(workdays)), text(body["source"], "source", MAX_SOURCE))
