"""The monthly report (GET /contracts/{id}/reports?month=), declared once as pydantic models: each field's
type and meaning, in the order the document shows them.

`tally.month_report` builds the document as plain data (a report is read often, a what-if builds two,
and none needs checking at run time); the tests hold every one it builds to `Report`, keys in order.
From the same declaration come the spec's `Report` component and its parts
(scripts/generate_openapi.py), the docs' tables of its fields, and the CSV's columns: a day row's
fields in order, a per-name field (`by_category`, `interactions`) spread over one column per name
and field of its model.
"""
from typing import Annotated, get_args

from pydantic import Field, RootModel

from chalicelib.core.schemas import Document, Number, shared

Count = Annotated[int, Field(ge=0), shared("Count")]
Amount = Annotated[Number(ge=0), shared("Amount")]
Share = Number(ge=0, le=1)


class Columns:
    """Annotated metadata of a per-name field of a day row: the first part of its CSV columns'
    names (`category` for `by_category`: `category.<name>.received`)."""

    def __init__(self, prefix):
        self.prefix = prefix


class BreachCounts(Document):
    """Breaches per metric"""

    first_response: Count
    progress_update: Count
    resolution: Count


class OnTimeRate(RootModel[dict[str, dict[str, Share]]]):
    """priority -> metric -> share decided on time, for the metrics decided in the month"""


class PenaltyTotal(Document):
    total: Amount = Field(description="the month's penalties after the monthly cap")
    capped: bool = Field(description="whether the monthly cap cut the total")


class KpiResult(Document):
    actual: Number() | None = Field(description="null when there is nothing to measure")
    target: Number()
    met: bool | None


class ReportRequests(Document):
    received: Count
    responded: Count
    resolved: Count


class ReportKpi(Document):
    availability: KpiResult = Field(description="the share of the month's minutes without a recorded outage")
    satisfaction: KpiResult = Field(description="the share of the month's ratings that are good (4–5)")
    resolution_rate: KpiResult = Field(description="the share of the month's requests resolved")
    service_level: dict[str, KpiResult] = Field(
        description="channel -> answered within the threshold against the target")


class ChannelMonth(Document):
    offered: Count
    answered: Count
    answered_within: Count
    abandoned: Count
    callbacks: Count = Field(description="queued callbacks; in `offered` too only when the channel counts them")
    average_answer_seconds: Number(ge=0) | None
    p90_answer_seconds: Number(ge=0) | None


class CategoryMonth(Document):
    received: Count
    breaches: BreachCounts


class CategoryDay(Document):
    received: Count = Field(description="requests of the category received that day")
    breaches: Count = Field(description="their breaches that day, all metrics")


class ChannelDay(Document):
    offered: Count
    answered: Count
    answered_within: Count = Field(description="answered within the channel's `answer_within`")
    abandoned: Count
    service_level: Share | None = Field(description="null when nothing could be measured")
    callbacks: Count


class ReportDay(Document):
    """One tallied day of the month: a row of the CSV"""

    date: Annotated[str, shared("Date")] = Field(description="the local day")
    received: Count = Field(description="requests received that day")
    responded: Count = Field(description="first responses given that day")
    resolved: Count = Field(description="resolve events that day")
    breaches: Count = Field(description="breaches that day, all metrics and priorities")
    penalties: Amount = Field(description="the day's penalties after the monthly cap (applied in day order)")
    penalties_before_cap: Amount = Field(description="the day's penalties before the cap")
    by_category: Annotated[dict[str, CategoryDay], Columns("category")] = Field(
        description="category -> its requests received and breaches that day, for every category of the report")
    interactions: Annotated[dict[str, ChannelDay], Columns("interactions")] = Field(
        description="channel -> that day's calls or chats, for every channel of the report")


class Report(Document):
    contract_id: Annotated[str, shared("ContractId")] = Field(description="the contract's id")
    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="YYYY-MM")
    currency: str = Field(description="ISO 4217, of every amount")
    requests: ReportRequests = Field(description=(
        "requests received in the month, first responses and resolve events in it"))
    breaches: BreachCounts = Field(description="the month's breaches per metric")
    on_time_rate: OnTimeRate = Field(description=(
        "priority -> metric -> the share decided on time, of the metrics decided in the month only"))
    penalties: PenaltyTotal = Field(description=(
        "`total`, the month's penalties after the monthly cap, and `capped`, whether the cap cut it"))
    kpi: ReportKpi = Field(description="each KPI of the contract: the month's actual value against its target")
    interactions: dict[str, ChannelMonth] = Field(description=(
        "channel -> the month's calls or chats, with the average and 90th-percentile answer seconds, for every "
        "channel of the contract"))
    by_category: dict[str, CategoryMonth] = Field(description=(
        "category -> requests received in the month and their breaches per metric, for every category of the "
        "contract (zeros included)"))
    days: list[ReportDay] = Field(description="each tallied day, in order")


def _per_name(info):
    """(CSV prefix, the fields of each name's columns) of a per-name field of a day row, else None."""
    prefix = next((m.prefix for m in info.metadata if isinstance(m, Columns)), None)
    return None if prefix is None else (prefix, tuple(get_args(info.annotation)[1].model_fields))


# A day row's fields in order, each with its _per_name: read once, a CSV has a row per day.
_DAY_FIELDS = tuple((field, _per_name(info)) for field, info in ReportDay.model_fields.items())


def csv_columns(report):
    """The CSV's columns for `report`: each field of a day row in order, a per-name one as
    `<prefix>.<name>.<field>` for each name the report's field of the same name lists."""
    columns = []
    for field, per_name in _DAY_FIELDS:
        if per_name is None:
            columns.append(field)
            continue
        prefix, keys = per_name
        columns += [f"{prefix}.{name}.{key}" for name in report[field] for key in keys]
    return columns


def csv_row(day):
    """A day row of the report as its CSV cells ({column: value}; None an empty cell)."""
    row = {}
    for field, per_name in _DAY_FIELDS:
        if per_name is None:
            row[field] = "" if day[field] is None else day[field]
            continue
        for name, values in day[field].items():
            row |= {f"{per_name[0]}.{name}.{key}": "" if value is None else value for key, value in values.items()}
    return row
