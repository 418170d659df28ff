"""Contract (SLA policy) document → validated, normalized document and policy objects.

`parse_contract` is the only way a contract enters the system: the document is validated against its
declaration (core/schemas.py: every field checked, unknown keys rejected, omitted keys given their
defaults), then held to the rules across fields. Errors name the field.
"""
from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.core.calendar import BusinessCalendar
from chalicelib.core.durations import Duration, parse_duration
from chalicelib.core.emails import MAX_RECIPIENTS, distinct_addresses
from chalicelib.core.errors import ConflictError, Problems, ValidationError
from chalicelib.core.schemas import (  # noqa: F401 - the limits are read here too (connect.py, tests)
    MAX_QUEUE_ID,
    MAX_QUEUES,
    ContractInput,
    StoredContract,
    check,
)
from chalicelib.core.webhook_rules import check_url

EXAMPLE_PRIORITIES = ("urgent", "high", "medium", "low")  # the usual names; any NAME is allowed
TARGETS = ("first_response", "resolution", "progress_every")
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


def _check_length(duration, where, day_minutes):
    """At most MAX_WORKING_DAYS working days: "<n>wd" by its count, minutes against that many regular
    working days of the calendar (24 h days on a 24x7 clock)."""
    if duration.is_working_days:
        if duration.count > MAX_WORKING_DAYS:
            raise ValidationError(where, f"{duration} is longer than the limit of {MAX_WORKING_DAYS} working days")
    elif duration.seconds > MAX_WORKING_DAYS * day_minutes * 60:
        raise ValidationError(where, f"{duration} is longer than the limit of {MAX_WORKING_DAYS} working days "
                                     f"({MAX_WORKING_DAYS * day_minutes // 60} h on this clock)")


def _targets_document(durations):
    """Targets as a contract document writes them: {"first_response": "2h", …}, the ones set only."""
    return {k: str(durations[k]) for k in TARGETS if durations.get(k) is not None}


def _check_lengths(contract, business_day_minutes, problems):
    """A submitted contract's durations are at most MAX_WORKING_DAYS working days of their clock. A
    category target may run on any priority's clock, so it is held to the shortest working day among
    them."""
    def day_minutes(clock):
        return MINUTES_PER_DAY if clock == "24x7" else business_day_minutes

    for key, spec in contract.priorities.items():
        for target, duration in spec.durations().items():
            problems.run(_check_length, duration, f"priorities.{key}.{target}", day_minutes(spec.clock))
    shortest = min(day_minutes(spec.clock) for spec in contract.priorities.values())
    for key, spec in contract.categories.items():
        for target, duration in spec.durations().items():
            problems.run(_check_length, duration, f"categories.{key}.{target}", shortest)
    if contract.off_hours_first_response is not None:
        problems.run(_check_length, contract.off_hours_first_response, "off_hours_first_response",
                     business_day_minutes)


def _check_notify(notify, problems):
    """A submitted contract keeps every email within SES's recipients per message: a breach alert goes
    to provider and admins at once, the monthly report to customer_reports. Stored versions are read as
    they were accepted; the outbox fails the email of an older one that exceeds it, with the reason."""
    escalation = distinct_addresses(notify.provider + notify.admins)
    if len(escalation) > MAX_RECIPIENTS:
        problems.append(("notify", f"provider and admins name {len(escalation)} different addresses, and a "
                                   f"breach alert goes to all of them in one email: at most {MAX_RECIPIENTS} "
                                   "(SES's limit per message); use a distribution list"))
    if len(notify.customer_reports) > MAX_RECIPIENTS:
        problems.append(("notify.customer_reports", f"at most {MAX_RECIPIENTS} addresses (SES's limit per "
                                                    f"message), not {len(notify.customer_reports)}"))


def _checked_webhooks(webhooks, submitted, allow_local, problems):
    """The webhooks, each URL once. A submitted document's URLs must pass the destination rules
    (`allow_local`: loopback too) and are kept as they will be sent; a stored one's passed them when it
    was submitted, and names its secret (`secret_ref`, or a `secret` written before they were stored)."""
    checked, urls = [], set()
    for i, hook in enumerate(webhooks):
        where = f"webhooks[{i}]"
        if not submitted and hook.secret is None and hook.secret_ref is None:
            problems.append((f"{where}.secret", "is required"))
        url = problems.run(check_url, hook.url, f"{where}.url", allow_local) if submitted else hook.url
        if url is not None and url in urls:
            problems.append((f"{where}.url", "is listed twice"))
        urls.add(url)
        checked.append(hook.model_copy(update={"url": url}))
    return checked


def _webhook(hook):
    """The Webhook of a validated schemas.Webhook (submitted) or schemas.StoredWebhook."""
    since = getattr(hook, "subscribed_at", {})
    return Webhook(hook.url, frozenset(hook.events), getattr(hook, "secret_ref", None),
                   tuple((event, datetime.fromisoformat(at)) for event, at in since.items()))


def _policy(contract, calendar, version):
    """The Policy of a validated (and checked) contract document."""
    notify = contract.notify
    return Policy(
        name=contract.name,
        timezone=contract.timezone,
        calendar=calendar,
        priorities={key: PriorityPolicy(clock=spec.clock, **spec.durations())
                    for key, spec in contract.priorities.items()},
        categories={key: spec.durations() for key, spec in contract.categories.items()},
        interactions={channel: ChannelRule(rule.answer_within, rule.target, rule.hours, rule.callbacks)
                      for channel, rule in contract.interactions.items()},
        amazon_connect_queues=frozenset(contract.amazon_connect.queue_ids if contract.amazon_connect else ()),
        designated_channels=(frozenset(contract.designated_channels)
                             if contract.designated_channels is not None else None),
        off_hours_first_response=contract.off_hours_first_response,
        warn_at=tuple(contract.warn_at),
        resolution_from=contract.resolution_from,
        penalties=Penalties(**{key: value for key, value in contract.penalties if value is not None}),
        kpi=contract.kpi.model_dump(),
        notify=Notify(notify.sender, tuple(notify.provider), tuple(notify.admins), notify.language,
                      tuple(notify.customer_reports), sender_name=notify.sender_name or contract.name,
                      reply_to=notify.reply_to),
        webhooks=tuple(_webhook(hook) for hook in contract.webhooks),
        retention_days=contract.retention.personal_data_days,
        version=version,
    )


def _check_submitted(contract, calendar, admitted_at, problems):
    """The rules a contract being PUT meets besides its schema: working time in every 60-day window of
    the years around `admitted_at`, durations within MAX_WORKING_DAYS working days, at most MAX_QUEUES
    Connect queues, and every email within SES's recipients per message."""
    problems.run(calendar.require_working_time, admitted_at.astimezone(calendar.tz).date())
    _check_lengths(contract, calendar.regular_day_minutes, problems)
    queues = contract.amazon_connect.queue_ids if contract.amazon_connect else ()
    if len(queues) > MAX_QUEUES:
        problems.append(("amazon_connect.queue_ids", f"lists {len(queues)} queues; at most {MAX_QUEUES}"))
    _check_notify(contract.notify, problems)


def parse_contract(doc, version=0, admitted_at=None, overrides=None, allow_local_webhooks=False):
    """Validate a contract document. Returns (normalized document with defaults, Policy).

    The document's shape and field rules are schemas.ContractInput's (a null key stands for its
    default). `admitted_at`: the instant a new document is submitted (PUT). It must then also meet the
    limits that keep its arithmetic bounded (_check_submitted) and its webhooks' destination rules.
    Stored versions (schemas.StoredContract) are parsed without it, so a version once accepted stays
    readable whatever the date.
    `overrides`: the published schedules {year: (holidays, workdays)} of the calendar's country, which
    replace the packaged holiday data for those years (see BusinessCalendar.from_config).
    `allow_local_webhooks`: a submitted document may also send webhooks to loopback (a local run).
    """
    submitted = admitted_at is not None
    if isinstance(doc, dict):
        doc = {key: value for key, value in doc.items() if value is not None}
    contract = check(ContractInput if submitted else StoredContract, doc, "contract")
    calendar_doc = contract.calendar.model_dump(mode="json")
    calendar = BusinessCalendar.from_config(calendar_doc, timezone=contract.timezone, overrides=overrides)
    problems = Problems()  # every rule below is checked, and one 400 names each one broken
    if submitted:
        _check_submitted(contract, calendar, admitted_at, problems)
    contract = contract.model_copy(update={
        "webhooks": _checked_webhooks(contract.webhooks, submitted, allow_local_webhooks, problems)})
    problems.raise_any()
    return contract.model_dump(mode="json"), _policy(contract, calendar, version)
