"""Validation of incoming request and event bodies (pure: `now` and the caller are arguments).

Every error is a ValidationError naming the field; nothing is stored unless the whole body is valid.
"""
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.core import events
from chalicelib.core.calendar import parse_date
from chalicelib.core.errors import ForbiddenError, ValidationError
from chalicelib.core.fields import (
    channel_name,
    email_address,
    instant,
    missing,
    reject_unknown,
    require,
    require_object,
    text,
)
from chalicelib.core.service_level import Interaction

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # older history is a typo, not a backfill
MAX_SUBJECT = 200
MAX_DESCRIPTION = 20000
MAX_NOTE = 4000
MAX_NAME = 200
REQUEST_KEYS = ("contract_id", "priority", "category", "channel", "subject", "description", "requester",
                "received_at")
REQUIRED_REQUEST_KEYS = ("contract_id", "priority", "channel", "subject", "requester")
PREVIEW_KEYS = ("priority", "received_at", "channel", "category")
SCHEDULE_KEYS = ("holidays", "workdays", "source")
MAX_SOURCE = 500
# The event types, who may post each and the keys each carries are declared in core/events.py.
EVENT_KEYS = events.POSTED_KEYS + tuple(events.DETAIL_OWNER)
POSTABLE_EVENTS = events.POSTABLE
EVENTS_BY_ROLE = events.BY_ROLE
BACKDATING_ROLES = ("agent", "admin")
EVENT_ONLY_KEYS = events.DETAIL_OWNER  # a detail key -> the one event type that carries it


def _backdated(body, key, role, now, not_before=None):
    """`received_at` / `at`: only agents and admins may set it; never in the future, nor before
    `not_before` (an aware datetime, named in the message in its own timezone)."""
    if body.get(key) is None:
        return now
    if role not in BACKDATING_ROLES:
        raise ValidationError(key, "only agent or admin tokens may set it")
    at = instant(body[key], key)
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


def _request_shape(body):
    """A POST /requests body is an object of known keys with every required one: else a 400 naming
    every missing field at once (`requester.email` too, when `requester` is an object)."""
    require_object(body, "body")
    reject_unknown(body, REQUEST_KEYS)
    requester = body.get("requester")
    require(missing(body, REQUIRED_REQUEST_KEYS)
            + (missing(requester, ("email",), "requester") if isinstance(requester, dict) else []))


def contract_id_of(body):
    """The contract a POST /requests body names, once the body has its shape (_request_shape)."""
    _request_shape(body)
    return text(body["contract_id"], "contract_id", 64)


def parse_new_request(body, policy, role, now):
    """A POST /requests body, checked against the contract's policy."""
    _request_shape(body)
    priority = _priority(body["priority"], policy)
    requester = require_object(body["requester"], "requester")
    reject_unknown(requester, ("name", "email"), "requester")
    clean_requester = {"email": email_address(requester["email"], "requester.email")}
    if requester.get("name") is not None:
        clean_requester["name"] = text(requester["name"], "requester.name", MAX_NAME)
    description = body.get("description")
    if description is not None:
        description = text(description, "description", MAX_DESCRIPTION, min_len=0, multiline=True)
    return NewRequest(
        contract_id=contract_id_of(body),
        priority=priority,
        channel=channel_name(body["channel"], "channel"),
        subject=text(body["subject"], "subject", MAX_SUBJECT),
        description=description,
        requester=clean_requester,
        received_at=_backdated(body, "received_at", role, now),
        category=_category(body.get("category"), policy),
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
    require_object(body, "body")
    reject_unknown(body, PREVIEW_KEYS)
    if "priority" not in body:
        raise ValidationError("priority", "is required")
    priority = _priority(body["priority"], policy)
    category = _category(body.get("category"), policy)
    channel = channel_name(body["channel"], "channel") if body.get("channel") is not None else None
    return Preview(priority=priority, received_at=_backdated(body, "received_at", role, now), channel=channel,
                   category=category)


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
    require_object(body, "body")
    reject_unknown(body, EVENT_KEYS)
    kind = body.get("type")
    if kind is None:
        raise ValidationError("type", "is required")
    if kind not in POSTABLE_EVENTS:
        raise ValidationError("type", f"must be one of {', '.join(POSTABLE_EVENTS)}")
    if kind not in EVENTS_BY_ROLE[role]:
        raise ForbiddenError(f"a {role} token may not post {kind} events")
    for key, only_for in EVENT_ONLY_KEYS.items():
        if body.get(key) is not None and kind != only_for:
            raise ValidationError(key, f"only allowed on {only_for} events")
    fields = {}
    if kind == "reprioritize":
        fields["priority"] = _priority(body.get("priority"), policy)
    if kind == "rate":
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise ValidationError("score", "must be a whole number from 1 to 5")
        fields["score"] = score
    if kind == "register" and body.get("channel") is not None:
        channel = channel_name(body["channel"], "channel")
        if not policy.is_designated(channel):
            raise ValidationError("channel", f"{channel!r} is not a designated channel of the contract")
        fields["channel"] = channel
    if body.get("note") is not None:
        fields["note"] = text(body["note"], "note", MAX_NOTE, min_len=0, multiline=True)
    not_before = last_at.astimezone(policy.calendar.tz) if last_at is not None else None
    return NewEvent(type=kind, at=_backdated(body, "at", role, now, not_before=not_before), **fields)


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
