"""Validation of incoming request and event bodies (pure: `now` and the caller are arguments).

Every error is a ValidationError naming the field; nothing is stored unless the whole body is valid.
"""
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, PlainValidator, WithJsonSchema

from chalicelib.core import events
from chalicelib.core.calendar import parse_date
from chalicelib.core.errors import ForbiddenError, Problems, ValidationError
from chalicelib.core.fields import (
    instant,
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
MAX_SOURCE = 500
# The event types, who may post each and the keys each carries are declared in core/events.py.
POSTABLE_EVENTS = events.POSTABLE
EVENTS_BY_ROLE = events.BY_ROLE
BACKDATING_ROLES = ("agent", "admin")
EVENT_ONLY_KEYS = events.DETAIL_OWNER  # a detail key -> the one event type that carries it


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


def _terms(body, policy, role, now):
    """What decides a request's deadlines, checked against the contract: (priority, category,
    received_at). Every problem found is named in one ValidationError."""
    problems = Problems()
    priority = problems.run(_priority, body.priority, policy)
    category = problems.run(_category, body.category, policy)
    received_at = problems.run(_backdated, body.received_at, "received_at", role, now)
    problems.raise_any()
    return priority, category, received_at


def contract_id_of(body):
    """The contract a POST /requests body names, once the body is valid (schemas.RequestInput)."""
    return check(RequestInput, body).contract_id


def parse_new_request(body, policy, role, now):
    """A POST /requests body, checked against the contract's policy."""
    request = check(RequestInput, body)
    priority, category, received_at = _terms(request, policy, role, now)
    return NewRequest(
        contract_id=request.contract_id,
        priority=priority,
        channel=request.channel,
        subject=request.subject,
        description=request.description,
        requester=request.requester.model_dump(exclude_none=True),
        received_at=received_at,
        category=category,
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
    priority, category, received_at = _terms(preview, policy, role, now)
    return Preview(priority=priority, received_at=received_at, channel=preview.channel, category=category)


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
    problems = Problems()
    problems += [(key, f"only allowed on {only_for} events") for key, only_for in EVENT_ONLY_KEYS.items()
                 if getattr(event, key) is not None and event.type != only_for]
    fields = {}
    if event.type == "reprioritize":
        fields["priority"] = problems.run(_priority, event.priority, policy)
    if event.type == "rate":
        if event.score is None:
            problems.append(("score", "must be a whole number from 1 to 5"))
        fields["score"] = event.score
    if event.type == "register" and event.channel is not None:
        if not policy.is_designated(event.channel):
            problems.append(("channel", f"{event.channel!r} is not a designated channel of the contract"))
        fields["channel"] = event.channel
    if event.note is not None:
        fields["note"] = event.note
    not_before = last_at.astimezone(policy.calendar.tz) if last_at is not None else None
    at = problems.run(_backdated, event.at, "at", role, now, not_before)
    problems.raise_any()
    return NewEvent(type=event.type, at=at, **fields)


MAX_INTERACTIONS = 500  # per call: a feed's batch, well inside the API's body limit
MAX_INTERACTION_ID = 128
# Interactions are kept this long (DynamoDB's TTL removes them after): an older one could not be kept.
INTERACTION_RETENTION = timedelta(days=400)


def _required_instant(value):
    if value is None:
        raise ValidationError("", "is required")
    return instant(value, "")


# An ISO-8601 timestamp with an offset, read as an aware datetime.
Moment = Annotated[str, PlainValidator(_required_instant), WithJsonSchema({"type": "string", "format": "date-time"})]


class InteractionInput(Document):
    """A call or chat: answered, abandoned, or neither (still waiting when sent, or ended otherwise: it
    counts as offered only)."""

    id: Text(MAX_INTERACTION_ID) = Field(description=(
        "1–128 characters, once per batch. A later batch with the same id **replaces** the record (feeds "
        "deliver at least once)"))
    channel: Annotated[str, Says(string_type="must be one of the contract's channels")] = Field(
        description="one of the contract's `interactions` channels")
    offered_at: Moment = Field(description=(
        f"when the interaction reached the queue; not in the future, not older than {INTERACTION_RETENTION.days} "
        "days (how long interactions are kept)"))
    answered_at: Moment | None = Field(None, description=(
        "when an agent took it; not before `offered_at`, not in the future"))
    abandoned_at: Moment | None = Field(None, description=(
        "when the customer gave up; same rules. An interaction is answered or abandoned, not both; with neither "
        "it counts as offered only"))


class InteractionsInput(Document):
    items: Annotated[list[InteractionInput], Says(
        list_type=f"is required: a list of 1 to {MAX_INTERACTIONS} interactions",
        too_short=f"is required: a list of 1 to {MAX_INTERACTIONS} interactions",
        too_long=lambda ctx: f"holds {ctx['actual_length']} interactions; send at most {MAX_INTERACTIONS} per call",
    )] = Field(min_length=1, max_length=MAX_INTERACTIONS, description=f"1 to {MAX_INTERACTIONS} interactions")


def parse_interactions(body, policy, now):
    """A POST /contracts/{id}/interactions body: {"items": [...]}, every item checked before anything is
    stored; the 400 names each wrong field of each item, e.g. `items[3].answered_at`."""
    items = check(InteractionsInput, body).items
    if not policy.interactions:
        raise ValidationError("items", "the contract defines no interaction channels (its `interactions` key)")
    problems, seen = Problems(), {}
    for i, item in enumerate(items):
        where = f"items[{i}]"
        problems += [(f"{where}.{key}", message) for key, message in _interaction_problems(item, policy, now)]
        if item.id in seen:
            problems.append((f"{where}.id", f"repeats items[{seen[item.id]}].id: send each id once"))
        seen.setdefault(item.id, i)
    problems.raise_any()
    return [Interaction(id=item.id, channel=item.channel, offered_at=item.offered_at,
                        answered_at=item.answered_at, abandoned_at=item.abandoned_at) for item in items]


def _interaction_problems(item, policy, now):
    """(field, message) of each rule one interaction breaks: a channel of the contract, offered within
    INTERACTION_RETENTION, nothing in the future, ended (answered or abandoned, not both) after it was
    offered."""
    if item.channel not in policy.interactions:
        yield "channel", f"must be one of the contract's channels: {', '.join(policy.interactions)}"
    moments = {key: at for key in ("offered_at", "answered_at", "abandoned_at")
               if (at := getattr(item, key)) is not None}
    for key, at in moments.items():
        if at > now:
            yield key, "must not lie in the future"
    if item.offered_at < now - INTERACTION_RETENTION:
        yield "offered_at", f"is older than the {INTERACTION_RETENTION.days} days interactions are kept"
    if item.answered_at is not None and item.abandoned_at is not None:
        yield "abandoned_at", "an interaction is answered or abandoned, not both"
    for key in ("answered_at", "abandoned_at"):
        if key in moments and moments[key] < item.offered_at:
            yield key, "must not precede offered_at"


@dataclass(frozen=True)
class YearSchedule:
    holidays: tuple  # sorted dates
    workdays: tuple
    source: str


# A "YYYY-MM-DD" date, read as a date.
Day = Annotated[str, PlainValidator(lambda value: parse_date(value, "")),
                WithJsonSchema({"type": "string", "format": "date"})]
Days = Annotated[list[Day], Says(list_type="must be a list of dates YYYY-MM-DD")]


class CalendarYearInput(Document):
    holidays: Days = Field(description="Days off, all in the year")
    workdays: Days = Field(description="Make-up working days, none also a holiday")
    source: Text(MAX_SOURCE) = Field(description="Where the schedule was published")


def _dates_of_year(days, name, year):
    """{day: the index it is first listed at}; each of `year`."""
    found = {}
    for i, day in enumerate(days):
        if day.year != year:
            raise ValidationError(f"{name}[{i}]", f"{day} is not in {year}")
        found.setdefault(day, i)
    return found


def parse_year_schedule(body, year):
    """A PUT /calendars/{country}/{year} body: the year's official days off (`holidays`), make-up working
    days (`workdays`) and where they were published (`source`)."""
    schedule = check(CalendarYearInput, body)
    holidays = _dates_of_year(schedule.holidays, "holidays", year)
    workdays = _dates_of_year(schedule.workdays, "workdays", year)
    for day, i in sorted(workdays.items(), key=lambda pair: pair[1]):
        if day in holidays:
            raise ValidationError(f"workdays[{i}]", f"{day} is also listed in holidays: a day is one or the other")
    return YearSchedule(tuple(sorted(holidays)), tuple(sorted(workdays)), schedule.source)
