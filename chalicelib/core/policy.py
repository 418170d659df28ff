"""Contract (SLA policy) document → validated, normalized document and policy objects.

`parse_contract` is the only way a contract enters the system: every field is checked, unknown keys
are rejected, and omitted keys get the defaults of docs/contract.md. Errors name the field.
"""
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.core.calendar import DEFAULT_CONFIG as CALENDAR_DEFAULTS
from chalicelib.core.calendar import BusinessCalendar
from chalicelib.core.durations import Duration, parse_duration
from chalicelib.core.emails import LANGUAGES, MAX_RECIPIENTS, distinct_addresses
from chalicelib.core.errors import ConflictError, ValidationError
from chalicelib.core.fields import (
    channel_name,
    email_address,
    missing,
    number,
    reject_unknown,
    require,
    require_object,
    text,
)
from chalicelib.core.webhook_rules import EVENTS as WEBHOOK_EVENTS
from chalicelib.core.webhook_rules import MASK, MAX_SECRET, MIN_SECRET, check_url

EXAMPLE_PRIORITIES = ("urgent", "high", "medium", "low")  # the usual names; any NAME is allowed
NAME = re.compile(r"[a-z0-9_-]{1,32}")  # priority and category names (fullmatch: no trailing newline)
TARGETS = ("first_response", "resolution", "progress_every")
CLOCKS = ("business", "24x7")
RESOLUTION_FROM = ("received", "first_response")
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_WARN_AT = (0.5, 0.8)
DEFAULT_KPI = {"availability": 0.995, "satisfaction": 0.9, "resolution_rate": 0.95}
INTERACTION_HOURS = ("business", "24x7")
INTERACTION_CALLBACKS = ("exclude", "count")
MAX_ANSWER_WITHIN_S = 24 * 3600  # a phone or chat answer target is seconds or minutes; a day is plenty
MONEY_KEYS = ("late_first_response", "late_progress", "late_resolution_per_day", "monthly_cap")
MAX_NAME = 200
# Limits a contract must meet to be accepted: they keep every deadline computable (a target of at
# most MAX_WORKING_DAYS working days in a calendar that never stops working for 60 days).
MAX_WORKING_DAYS = 400
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class PriorityPolicy:
    first_response: Duration
    resolution: Duration | None = None
    progress_every: Duration | None = None
    clock: str = "business"

    @property
    def around_the_clock(self):
        return self.clock == "24x7"


@dataclass(frozen=True)
class KeptTargets:
    """The targets (`targets`, a PriorityPolicy) a request was resolved under, kept when it is reopened
    under a contract version that no longer defines its `priority` or `category`: a reopened request
    always runs on a clock, whoever reopens it (a client cannot reprioritize)."""

    priority: str
    category: str | None
    targets: PriorityPolicy

    def as_document(self):
        """The JSON form kept with the request; `from_document` reads it back."""
        return {"priority": self.priority, "category": self.category,
                "targets": _targets_document(vars(self.targets)) | {"clock": self.targets.clock}}

    @classmethod
    def from_document(cls, doc):
        targets = doc["targets"]
        durations = {k: parse_duration(targets[k], k) for k in TARGETS if targets.get(k) is not None}
        return cls(doc["priority"], doc["category"], PriorityPolicy(clock=targets["clock"], **durations))


def kept_on_reopen(latest, resolved_under, priority, category, kept=None):
    """What a resolved request of `priority` and `category` keeps when it is reopened under `latest`:
    nothing (None) while `latest` defines both; else the targets it was resolved under (the policy
    `resolved_under` gives them, or `kept`, those it kept before). Raises ConflictError naming the
    field when it was resolved without targets (written before they were kept): nothing to keep."""
    if latest.defines(priority, category):
        return None
    targets = resolved_under.targets(priority, category, kept)
    if targets is None:
        field = "priority" if priority not in latest.priorities else "category"
        raise ConflictError(f"{field}: the contract no longer defines {field} "
                            f"{priority if field == 'priority' else category!r} and the request was resolved "
                            "without its targets, so it cannot run on a clock again; open a new request")
    return KeptTargets(priority, category, targets)


@dataclass(frozen=True)
class ChannelRule:
    """The answer-time clause of an interaction channel (a hotline answered within 60 s, 90 % of calls).
    Only interactions offered inside `hours` count: "business" = the calendar's working periods."""

    answer_within: Duration
    target: float
    hours: str = "business"
    callbacks: str = "exclude"  # queued callbacks: "exclude" counts them apart, "count" measures them too


@dataclass(frozen=True)
class Penalties:
    currency: str = "CNY"
    late_first_response: float = 0
    late_progress: float = 0
    late_resolution_per_day: float = 0
    monthly_cap: float | None = None


@dataclass(frozen=True)
class Notify:
    sender: str | None = None
    provider: tuple = ()
    admins: tuple = ()
    language: str = "zh-CN"
    customer_reports: tuple = ()  # the customer's addresses for the monthly report
    sender_name: str | None = None  # the From display name: notify.sender_name, else the contract's name
    reply_to: str | None = None  # where the customer's answers to their emails go; None: to the sender


@dataclass(frozen=True)
class Webhook:
    """Where a contract's events are POSTed, signed. `secret_ref` names the stored secret (None in a
    document being submitted, whose secret has not been stored yet)."""

    url: str
    events: frozenset
    secret_ref: str | None = None
    # (event, since): when the webhook began to get each event (webhook_rules.subscription_times). An
    # event without one (a version stored before they were recorded) has no such bound.
    subscribed_at: tuple = ()

    def receives(self, event, moment=None):
        """Does the webhook get `event`, one that announces `moment` (a breach its deadline, any other
        its `at`)? Only what happens at or after it subscribed: adding it never delivers a backlog."""
        since = dict(self.subscribed_at).get(event)
        return event in self.events and (since is None or moment is None or moment >= since)


@dataclass(frozen=True)
class Policy:
    name: str
    timezone: str
    calendar: BusinessCalendar = field(compare=False)
    priorities: dict
    designated_channels: frozenset | None  # None: every channel is designated
    off_hours_first_response: Duration | None
    warn_at: tuple
    resolution_from: str
    penalties: Penalties
    kpi: dict
    notify: Notify
    version: int = 0

    categories: dict = field(default_factory=dict)  # name -> {target: Duration}, the targets it replaces
    interactions: dict = field(default_factory=dict)  # channel -> ChannelRule
    amazon_connect_queues: frozenset = frozenset()  # Connect queue ids whose contact records are this contract's
    webhooks: tuple = ()  # Webhook
    retention_days: int | None = None  # personal data of requests resolved longer ago is erased; None: kept

    def webhooks_for(self, event, moment=None):
        """The webhooks that get `event` (one of webhook_rules.EVENTS) announcing `moment` (Webhook.receives)."""
        return [hook for hook in self.webhooks if hook.receives(event, moment)]

    def is_designated(self, channel):
        return self.designated_channels is None or channel in self.designated_channels

    def defines(self, priority, category=None):
        """Whether this contract defines `priority` and, for a request in one, its `category`."""
        return priority in self.priorities and (category is None or category in self.categories)

    def targets(self, priority, category=None, kept=None):
        """The targets a request of `priority` and `category` runs on: the priority's, with each one
        the category sets replacing the priority's (the clock stays the priority's). None for a
        priority the contract does not define; a category it no longer defines changes nothing.
        `kept` (KeptTargets): what a reopened request kept of the version it was resolved under;
        they apply while its priority is still theirs and this contract lacks it or its category."""
        if kept is not None and kept.priority == priority and not self.defines(priority, category):
            return kept.targets
        found = self.priorities.get(priority)
        overrides = self.categories.get(category) if category is not None else None
        return replace(found, **overrides) if found is not None and overrides else found


def _email_list(value, name):
    """The addresses of a list, normalized, each mailbox once (a repeat is dropped, not refused)."""
    if not isinstance(value, list):
        raise ValidationError(name, "must be a list of e-mail addresses")
    return distinct_addresses(email_address(item, f"{name}[{i}]") for i, item in enumerate(value))


def _check_length(duration, where, day_minutes):
    """At most MAX_WORKING_DAYS working days: "<n>wd" by its count, minutes against that many regular
    working days of the calendar (24 h days on a 24x7 clock)."""
    if duration.is_working_days:
        if duration.count > MAX_WORKING_DAYS:
            raise ValidationError(where, f"{duration} is longer than the limit of {MAX_WORKING_DAYS} working days")
    elif duration.seconds > MAX_WORKING_DAYS * day_minutes * 60:
        raise ValidationError(where, f"{duration} is longer than the limit of {MAX_WORKING_DAYS} working days "
                                     f"({MAX_WORKING_DAYS * day_minutes // 60} h on this clock)")


def _name(key, where, what):
    if not isinstance(key, str) or not NAME.fullmatch(key):
        raise ValidationError(where, f"{what} names are 1–32 characters of a–z, 0–9, '_' and '-'")


def _targets_document(durations):
    """Targets as a contract document writes them: {"first_response": "2h", …}, the ones set only."""
    return {k: str(durations[k]) for k in TARGETS if durations.get(k) is not None}


def _targets(spec, where, day_minutes):
    """The durations of `spec` that are set, each checked against the limit when `day_minutes` is."""
    durations = {k: parse_duration(spec[k], f"{where}.{k}") for k in TARGETS if spec.get(k) is not None}
    if day_minutes is not None:
        for k, duration in durations.items():
            _check_length(duration, f"{where}.{k}", day_minutes)
    return durations


def _priorities(value, business_day_minutes=None):
    """`business_day_minutes`: when set, durations are held to MAX_WORKING_DAYS working days."""
    require_object(value, "priorities")
    if not value:
        raise ValidationError("priorities", "must define at least one priority")
    normalized, policies = {}, {}
    for key, spec in value.items():
        where = f"priorities.{key}"
        _name(key, where, "priority")
        require_object(spec, where)
        reject_unknown(spec, TARGETS + ("clock",), where)
        clock = spec.get("clock", "business")
        if clock not in CLOCKS:
            raise ValidationError(f"{where}.clock", f"must be one of {', '.join(CLOCKS)}")
        day_minutes = None
        if business_day_minutes is not None:
            day_minutes = MINUTES_PER_DAY if clock == "24x7" else business_day_minutes
        durations = _targets(spec, where, day_minutes)
        policies[key] = PriorityPolicy(clock=clock, **durations)
        normalized[key] = _targets_document(durations) | {"clock": clock}
    return normalized, policies


def _categories(value, priorities, business_day_minutes=None):
    """Categories of requests (a complaint) whose targets replace the priority's. A category target
    may run on any priority's clock, so the limit uses the shortest working day among them."""
    value = require_object(value if value is not None else {}, "categories")
    day_minutes = None
    if business_day_minutes is not None:
        business = any(not p.around_the_clock for p in priorities.values())
        day_minutes = business_day_minutes if business else MINUTES_PER_DAY
    normalized, categories = {}, {}
    for key, spec in value.items():
        where = f"categories.{key}"
        _name(key, where, "category")
        require_object(spec, where)
        reject_unknown(spec, TARGETS, where)
        durations = _targets(spec, where, day_minutes)
        if not durations:
            raise ValidationError(where, f"must set at least one of {', '.join(TARGETS)}")
        categories[key] = durations
        normalized[key] = _targets_document(durations)
    return normalized, categories


def _interactions(value):
    """Answer-time clauses per interaction channel: {"phone": {"answer_within": "60s", "target": 0.9,
    "hours": "business"}}."""
    value = require_object(value if value is not None else {}, "interactions")
    normalized, rules = {}, {}
    for channel, spec in value.items():
        where = f"interactions.{channel}"
        _name(channel, where, "channel")
        require_object(spec, where)
        reject_unknown(spec, ("answer_within", "target", "hours", "callbacks"), where)
        within = parse_duration(spec["answer_within"], f"{where}.answer_within")
        if within.is_working_days or within.seconds > MAX_ANSWER_WITHIN_S:
            raise ValidationError(f"{where}.answer_within", "must be seconds, minutes or hours, at most 24h")
        target = number(spec["target"], f"{where}.target", lo=0, hi=1)
        hours = spec.get("hours", "business")
        if hours not in INTERACTION_HOURS:
            raise ValidationError(f"{where}.hours", f"must be one of {', '.join(INTERACTION_HOURS)}")
        callbacks = spec.get("callbacks", "exclude")
        if callbacks not in INTERACTION_CALLBACKS:
            raise ValidationError(f"{where}.callbacks", f"must be one of {', '.join(INTERACTION_CALLBACKS)}")
        rules[channel] = ChannelRule(within, target, hours, callbacks)
        normalized[channel] = {"answer_within": str(within), "target": target, "hours": hours}
        if "callbacks" in spec:
            normalized[channel]["callbacks"] = callbacks
    return normalized, rules


MAX_QUEUE_ID = 256
# Queues a new version may list: a PUT claims them for the contract in one DynamoDB transaction.
MAX_QUEUES = 50


def _amazon_connect(value, new):
    """{"queue_ids": [...]}: the Amazon Connect queues whose contact records feed this contract's
    interactions. None when the contract takes no Connect records. `new`: a document being PUT, held
    to MAX_QUEUES."""
    if value is None:
        return None, frozenset()
    require_object(value, "amazon_connect")
    reject_unknown(value, ("queue_ids",), "amazon_connect")
    queue_ids = value.get("queue_ids")
    if not isinstance(queue_ids, list) or not queue_ids:
        raise ValidationError("amazon_connect.queue_ids", "must list at least one queue id")
    if new and len(queue_ids) > MAX_QUEUES:
        raise ValidationError("amazon_connect.queue_ids", f"lists {len(queue_ids)} queues; at most {MAX_QUEUES}")
    found = []
    for i, queue_id in enumerate(queue_ids):
        where = f"amazon_connect.queue_ids[{i}]"
        queue_id = text(queue_id, where, MAX_QUEUE_ID)
        if "/" in queue_id:
            raise ValidationError(where, "is the queue id (the last part of the queue ARN), not an ARN")
        if queue_id in found:
            raise ValidationError(where, f"{queue_id} is listed twice")
        found.append(queue_id)
    return {"queue_ids": found}, frozenset(found)


MAX_WEBHOOKS = 10


def _webhooks(value, submitted, allow_local):
    """[{"url", "events", "secret"}]. A submitted document gives each secret (or MASK: keep the stored
    one), and its URLs must pass the destination rules (`allow_local`: loopback too). The stored form
    names each secret by "secret_ref" instead, and says since when each event goes to the webhook
    ("subscribed_at"); its URLs passed those rules when it was submitted."""
    value = value if value is not None else []
    if not isinstance(value, list):
        raise ValidationError("webhooks", "must be a list of {url, events, secret}")
    if len(value) > MAX_WEBHOOKS:
        raise ValidationError("webhooks", f"at most {MAX_WEBHOOKS} webhooks per contract")
    normalized, hooks = [], []
    for i, spec in enumerate(value):
        where = f"webhooks[{i}]"
        require_object(spec, where)
        secret_key = _secret_key(spec, submitted)
        stored = secret_key == "secret_ref"
        reject_unknown(spec, ("url", "events", secret_key, *(("subscribed_at",) if stored else ())), where)
        url = check_url(spec["url"], f"{where}.url", allow_local) if submitted else spec["url"]
        if any(hook.url == url for hook in hooks):
            raise ValidationError(f"{where}.url", "is listed twice")
        events = spec["events"]
        if not isinstance(events, list) or not events:
            raise ValidationError(f"{where}.events", f"must list at least one of {', '.join(WEBHOOK_EVENTS)}")
        for j, event in enumerate(events):
            if event not in WEBHOOK_EVENTS:
                raise ValidationError(f"{where}.events[{j}]", f"must be one of {', '.join(WEBHOOK_EVENTS)}")
        if len(set(events)) != len(events):
            raise ValidationError(f"{where}.events", "must not repeat an event")
        secret = spec[secret_key]
        if secret_key == "secret" and secret != MASK:
            secret = text(secret, f"{where}.secret", MAX_SECRET, MIN_SECRET)
        elif not isinstance(secret, str):
            raise ValidationError(f"{where}.{secret_key}", "must be a string")
        ordered = [event for event in WEBHOOK_EVENTS if event in events]
        since = spec.get("subscribed_at") or {}
        normalized.append({"url": url, "events": ordered, secret_key: secret,
                           **({"subscribed_at": since} if since else {})})
        hooks.append(Webhook(url, frozenset(ordered), secret if stored else None,
                             tuple((event, datetime.fromisoformat(at)) for event, at in since.items())))
    return normalized, tuple(hooks)


def _secret_key(spec, submitted):
    """Where a webhook keeps its secret: "secret" in a submitted document, "secret_ref" once stored."""
    return "secret" if submitted or "secret_ref" not in spec else "secret_ref"


def _missing_fields(doc, submitted):
    """The paths of every required field a contract document lacks (`name`, `priorities`, a priority's
    `first_response`, a channel's `answer_within` and `target`, a webhook's `url`, `events` and
    secret), so that one 400 names them all."""
    found = missing(doc, ("name", "priorities"))
    for section, keys in (("priorities", ("first_response",)), ("interactions", ("answer_within", "target"))):
        specs = doc.get(section)
        if isinstance(specs, dict):
            found += [path for key, spec in specs.items() if isinstance(spec, dict)
                      for path in missing(spec, keys, f"{section}.{key}")]
    hooks = doc.get("webhooks")
    if isinstance(hooks, list):
        found += [path for i, spec in enumerate(hooks) if isinstance(spec, dict)
                  for path in missing(spec, ("url", "events", _secret_key(spec, submitted)), f"webhooks[{i}]")]
    return found


def _penalties(value):
    value = require_object(value if value is not None else {}, "penalties")
    reject_unknown(value, ("currency",) + MONEY_KEYS, "penalties")
    currency = value.get("currency", "CNY")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise ValidationError("penalties.currency", "must be a three-letter ISO 4217 code such as CNY")
    amounts = {k: number(value[k], f"penalties.{k}", lo=0) for k in MONEY_KEYS if value.get(k) is not None}
    return {"currency": currency} | amounts, Penalties(currency=currency, **amounts)


def _kpi(value):
    value = require_object(value if value is not None else {}, "kpi")
    reject_unknown(value, tuple(DEFAULT_KPI), "kpi")
    return {k: number(value.get(k, default), f"kpi.{k}", lo=0, hi=1) for k, default in DEFAULT_KPI.items()}


NOTIFY_KEYS = ("sender", "sender_name", "reply_to", "provider", "admins", "language", "customer_reports")


def _notify(value, submitted, contract_name):
    """The email settings. A `submitted` document must also keep every email of the contract within
    SES's recipients per message: a breach alert goes to provider and admins at once, the monthly
    report to customer_reports. Stored versions are read as they were accepted; the outbox fails the
    email of an older one that exceeds it, with the reason. Without a `sender_name` the From name is
    `contract_name`: a renamed contract's emails follow its new name."""
    value = require_object(value if value is not None else {}, "notify")
    reject_unknown(value, NOTIFY_KEYS, "notify")
    sender = email_address(value["sender"], "notify.sender") if value.get("sender") is not None else None
    sender_name = text(value["sender_name"], "notify.sender_name", MAX_NAME) \
        if value.get("sender_name") is not None else None
    reply_to = email_address(value["reply_to"], "notify.reply_to") if value.get("reply_to") is not None else None
    provider = _email_list(value.get("provider", []), "notify.provider")
    admins = _email_list(value.get("admins", []), "notify.admins")
    language = value.get("language", "zh-CN")
    if language not in LANGUAGES:
        raise ValidationError("notify.language", f"must be one of {', '.join(LANGUAGES)}")
    customer_reports = _email_list(value.get("customer_reports", []), "notify.customer_reports")
    escalation = distinct_addresses(provider + admins)
    if submitted and len(escalation) > MAX_RECIPIENTS:
        raise ValidationError("notify", f"provider and admins name {len(escalation)} different addresses, and a "
                                        f"breach alert goes to all of them in one email: at most {MAX_RECIPIENTS} "
                                        "(SES's limit per message); use a distribution list")
    if submitted and len(customer_reports) > MAX_RECIPIENTS:
        raise ValidationError("notify.customer_reports", f"at most {MAX_RECIPIENTS} addresses (SES's limit per "
                                                         f"message), not {len(customer_reports)}")
    normalized = {"sender": sender, "sender_name": sender_name, "reply_to": reply_to, "provider": provider,
                  "admins": admins, "language": language, "customer_reports": customer_reports}
    return normalized, Notify(sender, tuple(provider), tuple(admins), language, tuple(customer_reports),
                              sender_name=sender_name or contract_name, reply_to=reply_to)


MAX_RETENTION_DAYS = 3650


def _retention(value):
    """How long the personal data of resolved requests is kept: {"personal_data_days": N or null}."""
    value = require_object(value if value is not None else {}, "retention")
    reject_unknown(value, ("personal_data_days",), "retention")
    days = value.get("personal_data_days")
    if days is not None and (type(days) is not int or not 1 <= days <= MAX_RETENTION_DAYS):  # bool is no number
        raise ValidationError("retention.personal_data_days", f"must be a whole number of days from 1 to "
                                                              f"{MAX_RETENTION_DAYS}, or null to keep it")
    return {"personal_data_days": days}


def _warn_at(value):
    if value is None:
        return list(DEFAULT_WARN_AT)
    if not isinstance(value, list):
        raise ValidationError("warn_at", "must be a list of fractions between 0 and 1")
    fractions = [number(v, f"warn_at[{i}]", lo=0, hi=1, lo_open=True, hi_open=True) for i, v in enumerate(value)]
    if len(set(fractions)) != len(fractions):
        raise ValidationError("warn_at", "must not repeat a fraction")
    return sorted(fractions)


def _designated_channels(value):
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError("designated_channels", "must be a list of channel names")
    return sorted({channel_name(v, f"designated_channels[{i}]") for i, v in enumerate(value)})


CONTRACT_KEYS = (
    "name", "timezone", "calendar", "designated_channels", "off_hours_first_response", "warn_at",
    "resolution_from", "priorities", "categories", "interactions", "amazon_connect", "penalties", "kpi", "notify",
    "webhooks", "retention",
)


def parse_contract(doc, version=0, admitted_at=None, overrides=None, allow_local_webhooks=False):
    """Validate a contract document. Returns (normalized document with defaults, Policy).

    `admitted_at`: the instant a new document is submitted (PUT). It must then also meet the limits
    that keep its arithmetic bounded: durations of at most MAX_WORKING_DAYS working days, and working
    time in every 60-day window of the years around that instant. Stored versions are parsed without
    it, so a version once accepted stays readable whatever the date.
    `overrides`: the published schedules {year: (holidays, workdays)} of the calendar's country, which
    replace the packaged holiday data for those years (see BusinessCalendar.from_config).
    `allow_local_webhooks`: a submitted document may also send webhooks to loopback (a local run).
    """
    require_object(doc, "contract")
    reject_unknown(doc, CONTRACT_KEYS, "")
    require(_missing_fields(doc, admitted_at is not None))
    name = text(doc["name"], "name", MAX_NAME)
    timezone = doc.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(timezone, str):
        raise ValidationError("timezone", "must be an IANA timezone name such as Asia/Shanghai")
    calendar_config = require_object(doc.get("calendar") or {}, "calendar")
    calendar = BusinessCalendar.from_config(calendar_config, timezone=timezone, overrides=overrides)
    day_minutes = None
    if admitted_at is not None:
        calendar.require_working_time(admitted_at.astimezone(calendar.tz).date())
        day_minutes = calendar.regular_day_minutes
    priorities_doc, priorities = _priorities(doc["priorities"], day_minutes)
    categories_doc, categories = _categories(doc.get("categories"), priorities, day_minutes)
    interactions_doc, interactions = _interactions(doc.get("interactions"))
    connect_doc, connect_queues = _amazon_connect(doc.get("amazon_connect"), admitted_at is not None)
    off_hours = doc.get("off_hours_first_response")
    off_hours = parse_duration(off_hours, "off_hours_first_response") if off_hours is not None else None
    if off_hours is not None and day_minutes is not None:
        _check_length(off_hours, "off_hours_first_response", day_minutes)
    resolution_from = doc.get("resolution_from", "received")
    if resolution_from not in RESOLUTION_FROM:
        raise ValidationError("resolution_from", f"must be one of {', '.join(RESOLUTION_FROM)}")
    channels = _designated_channels(doc.get("designated_channels"))
    warn_at = _warn_at(doc.get("warn_at"))
    penalties_doc, penalties = _penalties(doc.get("penalties"))
    kpi = _kpi(doc.get("kpi"))
    notify_doc, notify = _notify(doc.get("notify"), admitted_at is not None, name)
    webhooks_doc, webhooks = _webhooks(doc.get("webhooks"), admitted_at is not None, allow_local_webhooks)
    retention = _retention(doc.get("retention"))

    normalized = {
        "name": name,
        "timezone": timezone,
        "calendar": {**CALENDAR_DEFAULTS, **calendar_config},
        "designated_channels": channels,
        "off_hours_first_response": str(off_hours) if off_hours else None,
        "warn_at": warn_at,
        "resolution_from": resolution_from,
        "priorities": priorities_doc,
        "categories": categories_doc,
        "interactions": interactions_doc,
        "amazon_connect": connect_doc,
        "penalties": penalties_doc,
        "kpi": kpi,
        "notify": notify_doc,
        "webhooks": webhooks_doc,
        "retention": retention,
    }
    policy = Policy(
        name=name,
        timezone=timezone,
        calendar=calendar,
        priorities=priorities,
        categories=categories,
        interactions=interactions,
        amazon_connect_queues=connect_queues,
        designated_channels=frozenset(channels) if channels is not None else None,
        off_hours_first_response=off_hours,
        warn_at=tuple(warn_at),
        resolution_from=resolution_from,
        penalties=penalties,
        kpi=kpi,
        notify=notify,
        webhooks=webhooks,
        retention_days=retention["personal_data_days"],
        version=version,
    )
    return normalized, policy
