"""The documents the API accepts, declared once as pydantic models: the contract (PUT /contracts/{id})
and the bodies of a new request and a preview (core/intake.py declares the event, interaction and
calendar-year bodies beside the event types they name).

Each model is the shape of its document: the keys, which are required, their types (strict: "5" is no
number, 1 is no string), the field-level rules (a duration, an e-mail address, one line of text of at
most N characters) and each field's description. `check` validates a document against one and turns
every problem into a ValidationError naming its path in the API's form (`calendar.hours[1]`,
`priorities.urgent.first_response`). What a model cannot say alone (a rule across fields, a limit that
depends on the calendar, the contract a request names) stays with the use of the document
(core/policy.py, core/intake.py). The OpenAPI components and the docs' field tables are generated
from these models (scripts/generate_openapi.py).
"""
import copy
import re
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic import ValidationError as PydanticError

from chalicelib.core.calendar import DEFAULT_CONFIG as CALENDAR_DEFAULTS
from chalicelib.core.calendar import DEFAULT_TIMEZONE
from chalicelib.core.durations import parse_duration
from chalicelib.core.emails import LANGUAGES, distinct_addresses
from chalicelib.core.errors import ValidationError
from chalicelib.core.fields import MAX_CHANNEL, email_address, number, text
from chalicelib.core.webhook_rules import EVENTS as WEBHOOK_EVENTS
from chalicelib.core.webhook_rules import MASK, MAX_SECRET, MAX_URL, MIN_SECRET

REF = "#/components/schemas/{model}"
SHARED = "x-component"  # stands for a $ref to a hand-written component, see shared
NAME = re.compile(r"[a-z0-9_-]{1,32}")  # priority, category and channel names (fullmatch: no trailing newline)
MAX_NAME = 200
MAX_QUEUES = 50  # queues a new version may list: a PUT claims them in one DynamoDB transaction
MAX_QUEUE_ID = 256
MAX_WEBHOOKS = 10
MAX_RETENTION_DAYS = 3650
MAX_SUBJECT = 200
MAX_DESCRIPTION = 20000
MAX_NOTE = 4000
MAX_CONTRACT_ID = 64
CLOCKS = ("business", "24x7")
RESOLUTION_FROM = ("received", "first_response")
INTERACTION_HOURS = ("business", "24x7")
INTERACTION_CALLBACKS = ("exclude", "count")
DEFAULT_KPI = {"availability": 0.995, "satisfaction": 0.9, "resolution_rate": 0.95}


class Says:
    """Annotated metadata of a field: the message of a problem of `kind` (a pydantic error type) at
    the field itself, where the generic one (`MESSAGES`) would say less; or a function of the error's
    context (its `actual_length`...) that returns it."""

    def __init__(self, **by_kind):
        self.by_kind = by_kind


def shared(name):
    """A JSON Schema that stands for the OpenAPI component `name`, one the spec declares by hand (pydantic
    resolves a "$ref" among its own models only; the generator writes this one as a "$ref")."""
    return WithJsonSchema({SHARED: name})


def _rule(check, schema):
    """A field type whose value `check(value)` validates and normalizes (raising ValidationError),
    described by the JSON Schema `schema`."""
    return (PlainValidator(check), WithJsonSchema(schema))


def Text(max_len, min_len=1, multiline=False):  # noqa: N802 - a type, named as one
    """A string of min_len..max_len characters once trimmed, one line unless `multiline` (fields.text)."""
    return Annotated[str, *_rule(lambda value: text(value, "", max_len, min_len, multiline),
                                 {"type": "string", "minLength": min_len, "maxLength": max_len})]


def Number(**bounds):  # noqa: N802 - a type, named as one
    """A JSON number (no bool, no string, finite), kept as sent (5 stays 5), within `bounds`: any of
    ge, le, gt, lt."""
    lo = bounds.get("ge", bounds.get("gt"))
    hi = bounds.get("le", bounds.get("lt"))
    schema = {"type": "number"} | {
        {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}[k]: v
        for k, v in bounds.items()}
    return Annotated[float, *_rule(lambda value: number(value, "", lo, hi, "gt" in bounds, "lt" in bounds), schema),
                     PlainSerializer(lambda value: value)]


def _name_of(what):
    def check(value):
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise ValidationError("", f"{what} names are 1–32 characters of a–z, 0–9, '_' and '-'")
        return value
    return Annotated[str, PlainValidator(check), shared("PriorityName")]


PriorityName = _name_of("priority")
CategoryName = _name_of("category")
ChannelName = _name_of("channel")
Email = Annotated[str, *_rule(lambda value: email_address(value, ""), {"type": "string", "format": "email"})]
Channel = Text(MAX_CHANNEL)
# A duration ("30s", "30m", "2h", "5wd") read as a durations.Duration, written back as its text.
Duration = Annotated[str, PlainValidator(lambda value: parse_duration(value, "")), PlainSerializer(str),
                     shared("Duration")]
MAX_ANSWER_WITHIN_S = 24 * 3600  # a phone or chat answer target is seconds or minutes; a day is plenty


def _answer_within(value):
    within = parse_duration(value, "")
    if within.is_working_days or within.seconds > MAX_ANSWER_WITHIN_S:
        raise ValidationError("", "must be seconds, minutes or hours, at most 24h")
    return within


def _queue_id(value):
    queue_id = text(value, "", MAX_QUEUE_ID)
    if "/" in queue_id:
        raise ValidationError("", "is the queue id (the last part of the queue ARN), not an ARN")
    return queue_id


QueueId = Annotated[str, *_rule(_queue_id, {"type": "string"})]
AnswerWithin = Annotated[str, PlainValidator(_answer_within), PlainSerializer(str), shared("Duration")]
Instant = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Document(BaseModel):
    """A JSON object of these keys only, each of its declared type (no coercion)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Sparse(Document):
    """A document whose normalized form (`model_dump(mode="json")`) leaves out the keys of OMIT_NONE
    that are null, those of OMIT_EMPTY that are empty and those of OMIT_UNSET it was not given."""

    OMIT_NONE: ClassVar[tuple] = ()
    OMIT_EMPTY: ClassVar[tuple] = ()
    OMIT_UNSET: ClassVar[tuple] = ()

    @model_serializer(mode="wrap")
    def _normalized(self, handler):
        return {key: value for key, value in handler(self).items()
                if not (key in self.OMIT_NONE and value is None or key in self.OMIT_EMPTY and not value
                        or key in self.OMIT_UNSET and key not in self.model_fields_set)}


def _distinct(what):
    """A list check: no item twice. The error names the list, saying `what`; without one, it names the
    second of the two items."""
    def check(values):
        seen = set()
        for i, value in enumerate(values):
            if value in seen:
                raise ValidationError("", what) if what else ValidationError(f"[{i}]", f"{value} is listed twice")
            seen.add(value)
        return values
    return AfterValidator(check)


class CalendarConfig(Document):
    """Working days and hours (docs/contract.md#calendar)."""

    # Each value's own rules (ordered periods, dates, a known country) are BusinessCalendar.from_config's.

    holidays: str | None = Field(CALENDAR_DEFAULTS["holidays"],
                                 description="A country code of the holidays package, or null")
    workdays: Annotated[list, WithJsonSchema(
        {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7}, "uniqueItems": True})] = \
        Field(default_factory=lambda: list(CALENDAR_DEFAULTS["workdays"]), description="ISO weekdays, 1 = Monday")
    hours: Annotated[list, WithJsonSchema({"type": "array", "items": {SHARED: "Period"}})] = \
        Field(default_factory=lambda: copy.deepcopy(CALENDAR_DEFAULTS["hours"]),
              description="The working periods of a working day")
    extra_holidays: Annotated[list, WithJsonSchema({"type": "array", "items": {SHARED: "Date"}})] \
        = Field(default_factory=list, description="Days off besides the country's")
    extra_workdays: Annotated[list, WithJsonSchema({"type": "array", "items": {SHARED: "Date"}})] \
        = Field(default_factory=list, description="Working days besides the country's")
    date_hours: Annotated[dict, WithJsonSchema({
        "type": "object", "propertyNames": {"format": "date"},
        "additionalProperties": {"type": "array", "items": {SHARED: "Period"}}})] = \
        Field(default_factory=dict, description="Other working periods on the given dates")


ABSENT = {"x-default": "none: the metric is absent"}  # the default the docs show in words (see the generator)


class CategoryTargets(Sparse):
    """The targets a category (a complaint) replaces; at least one."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    OMIT_NONE = ("first_response", "resolution", "progress_every")

    first_response: Duration | None = Field(None, description="target of the first response, from the clock start",
                                            examples=["2h"])
    resolution: Duration | None = Field(None, description="target of the resolution, from `resolution_from`",
                                        examples=["8h", "5wd"], json_schema_extra=ABSENT)
    progress_every: Duration | None = Field(
        None, description="after the first response, a progress update is due this often", examples=["4h"],
        json_schema_extra=ABSENT)

    @model_validator(mode="after")
    def _sets_one(self):
        if not self.durations():
            raise ValidationError("", f"must set at least one of {', '.join(self.OMIT_NONE)}")
        return self

    def durations(self):
        """{target: Duration} of the targets set."""
        return {key: value for key in self.OMIT_NONE if (value := getattr(self, key)) is not None}


class PriorityTargets(CategoryTargets):
    model_config = ConfigDict(json_schema_extra=None)

    first_response: Duration = Field(description="target of the first response, from the clock start",
                                     examples=["2h"])
    clock: Literal[CLOCKS] = Field("business", description=(
        '`"business"` counts only working time; `"24x7"` counts wall-clock time (and ignores the off-hours rule)'),
        examples=["24x7"])


class ChannelRule(Sparse):
    OMIT_UNSET = ("callbacks",)  # written back only when given: versions from before it read unchanged

    answer_within: AnswerWithin = Field(description=(
        "the answer-time promise: a duration in `s`, `m` or `h`, at most `24h` (no `wd`)"), examples=["60s"])
    target: Number(ge=0, le=1) = Field(description=(
        "the share of interactions answered within it that the month must reach (0 to 1)"), examples=[0.9])
    hours: Literal[INTERACTION_HOURS] = Field("business", description=(
        'when the promise holds: `"business"`, the calendar\'s working periods (a lunch break excluded), or '
        '`"24x7"`'), examples=["24x7"])
    callbacks: Literal[INTERACTION_CALLBACKS] = Field("exclude", description=(
        "queued callbacks from Amazon Connect (the customer asked to be called back rather than wait): "
        '`"exclude"` leaves them out of the service level and counts them apart (`callbacks` in reports); '
        '`"count"` measures them too, from the customer\'s first enqueue to the agent on the callback (never '
        "answered: abandoned)"), examples=["count"])


class AmazonConnect(Document):
    queue_ids: Annotated[list[QueueId], _distinct(None), Says(too_short="must list at least one queue id",
                                                        list_type="must list at least one queue id")] = \
        Field(min_length=1, json_schema_extra={"maxItems": MAX_QUEUES},
              description=f"Queue ids (the last part of the queue ARN); a new version lists at most {MAX_QUEUES}")


def _in_event_order(events):
    """The events of a webhook in the order of webhook_rules.EVENTS, each once."""
    if len(set(events)) != len(events):
        raise ValidationError("", "must not repeat an event")
    return [event for event in WEBHOOK_EVENTS if event in events]


def _secret(value):
    """A webhook's secret as submitted: MASK keeps the stored one."""
    return value if value == MASK else text(value, "", MAX_SECRET, MIN_SECRET)


WebhookEvents = Annotated[list[Literal[WEBHOOK_EVENTS]], AfterValidator(_in_event_order),
                          Says(too_short=f"must list at least one of {', '.join(WEBHOOK_EVENTS)}",
                               list_type=f"must list at least one of {', '.join(WEBHOOK_EVENTS)}")]


class Webhook(Document):
    """Where the contract's events are POSTed, signed with HMAC-SHA256 (see docs/api.md#webhooks).
    Only https URLs to public addresses (plain http to loopback only where local webhooks are allowed)."""

    url: Annotated[str, WithJsonSchema({"type": "string", "maxLength": MAX_URL,
                                        "examples": ["https://hooks.customer.example/sla"]})] = \
        Field(description="Checked against the destination rules when the contract is PUT")
    events: WebhookEvents = Field(min_length=1, json_schema_extra={"uniqueItems": True},
                                  description="The events it gets")
    secret: Annotated[str, PlainValidator(_secret), WithJsonSchema({"type": "string"})] = Field(
        description='Write-only: 16–256 characters when set; reads show "****", and "****" sent back keeps the '
                    "stored secret of the same url.")


class StoredWebhook(Webhook, Sparse):
    """A webhook as a stored version keeps it: its secret is named (`secret_ref`), and it says since when
    it gets each event (`subscribed_at`); a version stored before either has neither."""

    OMIT_NONE = ("secret", "secret_ref")
    OMIT_EMPTY = ("subscribed_at",)

    secret: str | None = None
    secret_ref: str | None = None
    subscribed_at: dict[str, str] = Field(default_factory=dict)


class Penalties(Sparse):
    OMIT_NONE = ("late_first_response", "late_progress", "late_resolution_per_day", "monthly_cap")

    currency: Annotated[str, Says(string_type="must be a three-letter ISO 4217 code such as CNY",
                                  string_pattern_mismatch="must be a three-letter ISO 4217 code such as CNY")] = \
        Field("CNY", pattern=r"^[A-Z]{3}$", description="ISO 4217")
    late_first_response: Number(ge=0) | None = Field(None, description="Per late first response")
    late_progress: Number(ge=0) | None = Field(None, description="Per missed progress update")
    late_resolution_per_day: Number(ge=0) | None = Field(None, description="Per started day of late resolution")
    monthly_cap: Number(ge=0) | None = Field(None, description="At most this much a month; null: no cap")


class Kpi(Document):
    availability: Number(ge=0, le=1) = Field(DEFAULT_KPI["availability"], description="Service availability target")
    satisfaction: Number(ge=0, le=1) = Field(DEFAULT_KPI["satisfaction"], description="Share of good ratings (4–5)")
    resolution_rate: Number(ge=0, le=1) = Field(DEFAULT_KPI["resolution_rate"],
                                                description="Share of requests resolved on time")


# Addresses normalized, each mailbox once (a repeat is dropped, not refused).
EmailList = Annotated[list[Email], AfterValidator(distinct_addresses),
                      Says(list_type="must be a list of e-mail addresses")]


class Notify(Document):
    sender: Email | None = Field(None, description="The From address; null: the stage's")
    sender_name: Text(MAX_NAME) | None = Field(None, description="the From display name; null: the contract's name")
    reply_to: Email | None = Field(None, description="Reply-To of the customers' emails; null: none")
    provider: EmailList = Field(default_factory=list, description=(
        "warned, alerted and reminded; with admins at most 50 different addresses (a breach alert goes to both "
        "in one email)"))
    admins: EmailList = Field(default_factory=list, description=(
        "also get breach alerts, the daily tally and calendar notices"))
    language: Literal[LANGUAGES] = Field("zh-CN", description="Of every email")
    customer_reports: EmailList = Field(default_factory=list, description=(
        "monthly report recipients, at most 50 (SES's limit per message)"))


class Retention(Document):
    personal_data_days: Annotated[int | None, Says(
        int_type=f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null to keep it",
        greater_than_equal=f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null to keep it",
        less_than_equal=f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null to keep it")] = \
        Field(None, ge=1, le=MAX_RETENTION_DAYS, description=(
            "Requests resolved longer ago lose their personal data in the nightly run; null (the default) keeps it"))


def _sorted_set(found):
    return sorted(set(found)) if found is not None else None


def _shown_default(words):
    """A default the docs' tables show in `words` (the spec leaves it out)."""
    return {"x-default": words}


class ContractInput(Document):
    """A contract document; docs/contract.md explains every field and its default."""

    name: Text(MAX_NAME) = Field(description=(
        "the agreement's name, shown in emails and reports; 1–200 characters"), examples=["XX系统技术支持"])
    timezone: Annotated[str, Says(string_type="must be an IANA timezone name such as Asia/Shanghai")] = Field(
        DEFAULT_TIMEZONE, description=("IANA timezone of the calendar; every timestamp the API returns for this "
                                       "contract's requests is expressed in it"), examples=["Europe/Berlin"])
    calendar: Annotated[CalendarConfig, Says(model_type="must be an object")] = Field(
        default_factory=CalendarConfig, description="working days and hours",
        json_schema_extra=_shown_default("the PRC calendar, 09:00–12:00 and 13:00–17:00"))
    designated_channels: Annotated[list[Channel] | None, AfterValidator(_sorted_set),
                                   Says(list_type="must be a list of channel names")] = Field(
        None, description=("channels on which receipt starts the clock at once; a request on any other channel "
                           "waits for a `register` event"), examples=[["portal", "email", "hotline"]],
        json_schema_extra=_shown_default("`null`: every channel is designated"))
    off_hours_first_response: Duration | None = Field(None, description=(
        "a duration: a request whose clock starts outside working hours has its first response due this long after "
        "the next working period opens, if that is sooner than the priority's target"), examples=["1h"],
        json_schema_extra=_shown_default("`null`: no off-hours rule"))
    warn_at: Annotated[list[Number(gt=0, lt=1)], _distinct("must not repeat a fraction"), AfterValidator(sorted),
                       Says(list_type="must be a list of fractions between 0 and 1")] = Field(
        default_factory=lambda: [0.5, 0.8], examples=[[0.75]], json_schema_extra={"uniqueItems": True},
        description=("fractions of each running target at which the provider is warned; each strictly between 0 "
                     "and 1, no repeats (stored sorted)"))
    resolution_from: Literal[RESOLUTION_FROM] = Field("received", examples=["first_response"], description=(
        'where the resolution target is counted from: `"received"` (the clock start) or `"first_response"`'))
    priorities: Annotated[dict[PriorityName, PriorityTargets], Says(too_short="must define at least one priority")] \
        = Field(min_length=1, description="the targets of each priority; at least one")
    categories: dict[CategoryName, CategoryTargets] = Field(
        default_factory=dict, description="request categories whose targets replace the priority's",
        examples=[{"complaint": {"resolution": "2wd"}}], json_schema_extra=_shown_default("`{}`: none"))
    interactions: dict[ChannelName, ChannelRule] = Field(
        default_factory=dict, description="answer-time clauses of phone and chat channels",
        examples=[{"phone": {"answer_within": "60s", "target": 0.9}}], json_schema_extra=_shown_default("`{}`: none"))
    amazon_connect: AmazonConnect | None = Field(None, description=(
        "the Amazon Connect queues whose contact records are this contract's calls and chats"),
        examples=[{"queue_ids": ["4c1e2f3a-…"]}], json_schema_extra=_shown_default("`null`: none"))
    penalties: Penalties = Field(default_factory=Penalties, description="money owed for lateness",
                                 json_schema_extra=_shown_default("no penalties, currency CNY"))
    kpi: Kpi = Field(default_factory=Kpi, description="monthly KPI targets",
                     json_schema_extra=_shown_default("0.995 / 0.9 / 0.95"))
    notify: Notify = Field(default_factory=Notify, description="email settings",
                           json_schema_extra=_shown_default("no provider or admin mail, `zh-CN`"))
    webhooks: Annotated[list[Webhook], Says(list_type="must be a list of {url, events, secret}",
                                            too_long=f"at most {MAX_WEBHOOKS} webhooks per contract")] = Field(
        default_factory=list, max_length=MAX_WEBHOOKS, description="signed HTTPS callbacks of the contract's events",
        json_schema_extra=_shown_default("`[]`: none"))
    retention: Retention = Field(default_factory=Retention, description=(
        "how long the personal data of resolved requests is kept"), examples=[{"personal_data_days": 365}],
        json_schema_extra=_shown_default('`{"personal_data_days": null}`: kept'))


class StoredContract(ContractInput):
    """A contract version as stored: its webhooks name their secrets."""

    webhooks: list[StoredWebhook] = Field(default_factory=list)


class Requester(Document):
    email: Email = Field(description="a deliverable address (the requester's emails go there)")
    name: Text(MAX_NAME) | None = Field(None, description="1–200 characters on one line")


class RequestInput(Document):
    contract_id: Text(MAX_CONTRACT_ID) = Field(description=(
        "an existing contract, the token's own (`403` otherwise, `404` when there is none)"))
    priority: Annotated[str, Says(string_type="must be one of the contract's priorities")] = \
        Field(description="one of the contract's priorities")
    category: str | None = Field(None, description=(
        "one of the contract's `categories` (`400` naming `category` otherwise, also when the contract has none)"))
    channel: Channel = Field(description=(
        "1–64 characters on one line, designated or not (a non-designated one waits for `register`)"))
    subject: Text(MAX_SUBJECT) = Field(description="1–200 characters on one line")
    description: Text(MAX_DESCRIPTION, min_len=0, multiline=True) | None = Field(None, description=(
        f"up to {MAX_DESCRIPTION:,} characters (code points, after trimming); may hold tab and line breaks"))
    requester: Requester = Field(description="the customer who asked")
    received_at: Instant | None = Field(None, description=(
        "defaults to now; only agent and admin tokens may set it; not in the future, not before 2000-01-01"))


class PreviewInput(Document):
    priority: Annotated[str, Says(string_type="must be one of the contract's priorities")] = \
        Field(description="One of the contract's priorities")
    received_at: Instant | None = Field(None, description="Agent and admin tokens only")
    channel: Channel | None = Field(None, description="null: a designated channel")
    category: str | None = Field(None, description="One of the contract's categories, or null")


# The messages of pydantic's error types, in the API's words.
MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
}


def _message(error, says):
    kind, ctx = error["type"], error.get("ctx") or {}
    if says is not None and kind in says.by_kind:
        said = says.by_kind[kind]
        return said(ctx) if callable(said) else said
    if kind in MESSAGES:
        return MESSAGES[kind]
    if kind == "value_error" and isinstance(ctx.get("error"), ValidationError):
        return ctx["error"].problems[0][1]
    if kind == "literal_error":
        return "must be one of " + ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']}"
    if kind == "too_long":
        return f"holds {ctx['actual_length']}; at most {ctx['max_length']}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"must be {'≥' if kind == 'greater_than_equal' else '≤'} {ctx.get('ge', ctx.get('le'))}"
    return error["msg"]


def _path(loc, name):
    """A pydantic location as the API names it: ("calendar", "hours", 1) → "calendar.hours[1]"."""
    path = ""
    for step in loc:
        if step == "[key]":
            continue
        path += f"[{step}]" if isinstance(step, int) else f".{step}" if path else str(step)
    return path or name


def _below(error):
    """The part of the path a field's own check names (`[3]`, the item of a list that repeats one)."""
    found = (error.get("ctx") or {}).get("error")
    return found.field if isinstance(found, ValidationError) and error["type"] == "value_error" else ""


def _says(model, loc):
    """The Says of the field `loc` ends at, if it has one."""
    annotation, says = model, None
    for step in loc:
        fields = getattr(annotation, "model_fields", None) if isinstance(annotation, type) else None
        if fields is not None and isinstance(step, str) and step in fields:
            info = fields[step]
            annotation = info.annotation
            says = next((m for m in info.metadata if isinstance(m, Says)), None)
        else:  # a list index, a dict key or a type's member: not a field of its own
            annotation, says = None, None
    return says


def check(model, document, name="body"):
    """`document` as an instance of `model`, or a ValidationError naming every problem (up to
    ValidationError.MAX_NAMED in its message). `name` is the document's own name, for a problem with
    the whole of it (not an object)."""
    try:
        return model.model_validate(document)
    except PydanticError as exc:
        # Unknown keys first: a misspelt key is the likeliest cause of the "is required" beside it.
        errors = sorted(exc.errors(), key=lambda error: error["type"] != "extra_forbidden")
        problems = [(_path(e["loc"], name) + _below(e), _message(e, _says(model, e["loc"]))) for e in errors]
        raise ValidationError.several(list(dict.fromkeys(problems))) from None
