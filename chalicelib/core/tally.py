"""Nightly tally and monthly report (see docs/clock.md), pure: evaluated requests in, numbers out.

A day is a local calendar day of the contract's timezone, [start, end). Everything a day counts is
read off each request's SLA state, which the clock derives from its timeline, so the tally needs
no scanner and a re-run for the same day gives the same numbers:
- received: received that day; responded: first response met that day; resolved: resolve events;
- breaches: breach milestones that day (a deadline at 23:59 belongs to that day), per metric and priority;
- penalties: `late_first_response` at the first-response breach, `late_progress` at each missed
  cycle, `late_resolution_per_day` at the start of each started 24 h of lateness; one penalty line per
  request and reason a day (a request on a 1-minute cycle misses 1,440 cycles a day: one line each
  would outgrow the stored tally item), saying which cycles or days it sums;
- on time / late per priority for first response and resolution, decided that day;
- ratings given that day;
- per request category: received that day and breaches per metric (`by_category`).
The monthly cap applies to the month's days in order (`apply_cap`).
"""
import csv
import io
from bisect import bisect_right
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

from chalicelib.core import service_level
from chalicelib.core.documents import money
from chalicelib.core.facts import FIRST_RESPONSE, METRICS, PROGRESS_UPDATE, RESOLUTION
from chalicelib.core.report import csv_columns, csv_row

DECIDED_METRICS = (FIRST_RESPONSE, RESOLUTION)
GOOD_RATING = 4


def day_bounds(day, tz):
    """[start, end) of a local day as aware datetimes (23 or 25 hours long on DST changes)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def month_bounds(month, tz):
    """[start, end) of a local month given as (year, month)."""
    year, number = month
    following = date(year + number // 12, number % 12 + 1, 1)
    return day_bounds(date(year, number, 1), tz)[0], day_bounds(following, tz)[0]


@dataclass
class DayTally:
    date: str
    received: int = 0
    responded: int = 0
    resolved: int = 0
    breaches: dict = field(default_factory=dict)  # metric -> priority -> count
    decided: dict = field(default_factory=dict)  # priority -> metric -> {"on_time": n, "late": n}
    ratings: int = 0
    good_ratings: int = 0
    penalties_raw: float = 0
    penalty_lines: list = field(default_factory=list)  # {"request_id", "reason", "amount", "at"}
    by_category: dict = field(default_factory=dict)  # category -> {"received": n, "breaches": {metric: n}}
    interactions: dict = field(default_factory=dict)  # channel -> service_level counts of the day

    @property
    def breach_count(self):
        return sum(sum(by_priority.values()) for by_priority in self.breaches.values())

    def as_dict(self):
        return asdict(self)


@dataclass(frozen=True)
class Evaluated:
    """A request as the tally needs it: its facts, its SLA state, and the penalties of its policy."""

    request_id: str
    received_at: datetime
    state: object  # clock.SlaState
    penalties: object  # policy.Penalties
    category: str | None = None


def tally_day(day, tz, requests):
    return (_tally_days([day], tz, requests)[0] or _DayCounts(day)).tally()


def tally_month(month, tz, requests):
    """The tallies of a month's local days that count anything of `requests`, in day order: what
    tally_day gives for each of them, in one pass over the requests (a request late for weeks costs
    each of its milestones once, not once a day)."""
    start, end = month_bounds(month, tz)
    days = [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days)]
    return [counts.tally() for counts in _tally_days(days, tz, requests) if counts is not None]


class _DayCounts:
    """One day's counts while the requests are walked; `tally()` is its DayTally."""

    __slots__ = ("result", "breaches", "decided", "by_category", "penalties")

    def __init__(self, day):
        self.result = DayTally(date=day.isoformat())
        self.breaches = defaultdict(lambda: defaultdict(int))
        self.decided = defaultdict(lambda: defaultdict(lambda: {"on_time": 0, "late": 0}))
        self.by_category = defaultdict(lambda: {"received": 0, "breaches": defaultdict(int)})
        self.penalties = {}  # (request_id, reason) -> [line, numbers of the cycles or days it sums]

    def penalize(self, request_id, amount, reason, number, at):
        self.result.penalties_raw += amount
        found = self.penalties.get((request_id, reason))
        if found is None:
            self.penalties[request_id, reason] = [{"request_id": request_id, "reason": reason, "amount": amount,
                                                   "at": at}, [number]]
        else:
            found[0]["amount"] += amount
            found[1].append(number)

    def tally(self):
        result = self.result
        result.penalty_lines = [{**line, "reason": _penalty_reason(line["reason"], numbers)}
                                for line, numbers in self.penalties.values()]
        result.breaches = {metric: dict(by_priority) for metric, by_priority in self.breaches.items()}
        result.decided = {priority: {m: dict(c) for m, c in by_metric.items()}
                          for priority, by_metric in self.decided.items()}
        result.by_category = {name: {"received": counts["received"], "breaches": dict(counts["breaches"])}
                              for name, counts in sorted(self.by_category.items())}
        return result


def _tally_days(days, tz, requests):
    """The counts of each of the consecutive local `days` (None for a day no instant of `requests`
    falls on), in one pass: every instant the tally reads is put on its day by bisection over the
    days' bounds in UTC (the clock's instants are UTC, and instants sharing a tzinfo compare without
    offset look-ups). A warning counts nothing, so it touches no day."""
    bounds = [day_bounds(day, tz)[0].astimezone(UTC) for day in days] + [day_bounds(days[-1], tz)[1].astimezone(UTC)]
    first, last = bounds[0], bounds[-1]
    found = [None] * len(days)

    def day_of(moment):
        if moment is None or not first <= moment < last:
            return None
        index = bisect_right(bounds, moment) - 1
        counts = found[index]
        if counts is None:
            counts = found[index] = _DayCounts(days[index])
        return counts

    for request in requests:
        state, category = request.state, request.category
        priority = state.priority
        counts = day_of(request.received_at)
        if counts is not None:
            counts.result.received += 1
            if category is not None:
                counts.by_category[category]["received"] += 1
        counts = day_of(state.first_response_at)
        if counts is not None:
            counts.result.responded += 1
        for moment in state.resolves:
            counts = day_of(moment)
            if counts is not None:
                counts.result.resolved += 1
        for at, score in state.ratings:
            counts = day_of(at)
            if counts is not None:
                counts.result.ratings += 1
                counts.result.good_ratings += score >= GOOD_RATING
        for metric in DECIDED_METRICS:
            outcome = state.metrics.get(metric)
            if outcome is not None and not outcome.breached:
                counts = day_of(outcome.met_at)
                if counts is not None:
                    counts.decided[priority][metric]["on_time"] += 1
        for milestone in state.milestones:
            if milestone.kind == "warn":
                continue
            counts = day_of(milestone.at)
            if counts is None:
                continue
            if milestone.kind == "breach":
                counts.breaches[milestone.metric][priority] += 1
                if category is not None:
                    counts.by_category[category]["breaches"][milestone.metric] += 1
                if milestone.metric in DECIDED_METRICS:
                    counts.decided[priority][milestone.metric]["late"] += 1
            amount, reason = _penalty(milestone, request.penalties)
            if amount:
                counts.penalize(request.request_id, amount, reason, milestone.cycle,
                                milestone.at.astimezone(tz).isoformat())
    return found


def _penalty(milestone, penalties):
    if milestone.kind == "breach" and milestone.metric == FIRST_RESPONSE:
        return penalties.late_first_response, "late_first_response"
    if milestone.kind == "breach" and milestone.metric == PROGRESS_UPDATE:
        return penalties.late_progress, "late_progress"
    if milestone.kind == "penalty_day":
        return penalties.late_resolution_per_day, "late_resolution_per_day"
    return 0, None


_PENALTY_UNITS = {"late_progress": "cycle", "late_resolution_per_day": "day"}


def _penalty_reason(reason, numbers):
    """"late_progress (cycle 7)" for one missed cycle, "late_progress (144 cycles, 7–150)" for a day's."""
    unit = _PENALTY_UNITS.get(reason)
    if unit is None:
        return reason
    if len(numbers) == 1:
        return f"{reason} ({unit} {numbers[0]})"
    return f"{reason} ({len(numbers)} {unit}s, {numbers[0]}–{numbers[-1]})"


def apply_cap(raw_by_day, cap):
    """[(day, raw)] of one month in order → [(day, capped)]: the month's total never exceeds `cap`."""
    capped, total = [], 0
    for day, raw in raw_by_day:
        allowed = raw if cap is None else max(0, min(raw, cap - total))
        capped.append((day, allowed))
        total += allowed
    return capped


def _rate(part, whole, digits=4):
    return round(part / whole, digits) if whole else None


def _kpi(actual, target):
    return {"actual": actual, "target": target, "met": None if actual is None else actual >= target}


def outage_minutes(outages, start, end):
    """Minutes of [start, end) covered by (already merged) outages."""
    total = 0.0
    for outage_start, outage_end in outages:
        overlap = min(end, outage_end) - max(start, outage_start)
        total += max(0.0, overlap.total_seconds() / 60)
    return total


def month_totals(tallies):
    """What stored tallies (dicts with "tally" and "penalties") add up to, for a month or a month to
    date: requests received, responded and resolved, breaches per metric, and the penalties after the
    monthly cap ("penalties") and before it ("penalties_raw")."""
    days = [t["tally"] for t in tallies]
    return {
        "received": sum(d["received"] for d in days),
        "responded": sum(d["responded"] for d in days),
        "resolved": sum(d["resolved"] for d in days),
        "breaches": {metric: sum(sum(d["breaches"].get(metric, {}).values()) for d in days) for metric in METRICS},
        "penalties": sum(t["penalties"] for t in tallies),
        "penalties_raw": sum(d["penalties_raw"] for d in days),
    }


def month_report(contract_id, month, policy, tallies, outages, received_resolved):
    """The monthly report from the month's stored tallies (dicts with "tally" and "penalties"), outages,
    and `received_resolved`: (requests received in the month, how many of them are resolved now).

    Resolution rate is the share of the month's requests that are resolved, so requests carried
    over from the month before do not push it above 1. The document is `report.Report`, its keys in
    the order declared there."""
    days = [t["tally"] for t in tallies]
    totals = month_totals(tallies)
    # Every category and channel of the contract, and any an older version had that still has counts this month.
    categories = sorted(set(policy.categories) | {name for d in days for name in d.get("by_category", {})})
    month_channels = service_level.merge(d.get("interactions", {}) for d in days)
    channels = sorted(set(policy.interactions) | set(month_channels))
    return {
        "contract_id": contract_id,
        "month": f"{month[0]:04d}-{month[1]:02d}",
        "currency": policy.penalties.currency,
        "requests": {key: totals[key] for key in ("received", "responded", "resolved")},
        "breaches": totals["breaches"],
        "on_time_rate": _on_time_rates(days),
        "penalties": {"total": money(totals["penalties"]), "capped": totals["penalties"] < totals["penalties_raw"]},
        "kpi": _kpis(policy, month_bounds(month, policy.calendar.tz), outages, days, received_resolved,
                     month_channels),
        "interactions": {channel: service_level.summary(_of_channel(month_channels, channel)) for channel in channels},
        "by_category": {
            name: {"received": sum(_of_category(d, name)["received"] for d in days),
                   "breaches": {metric: sum(_of_category(d, name)["breaches"].get(metric, 0) for d in days)
                                for metric in METRICS}}
            for name in categories
        },
        "days": [_report_day(t, categories, channels) for t in tallies],
    }


def _of_category(day, name):
    return day.get("by_category", {}).get(name, {"received": 0, "breaches": {}})


def _of_channel(counts, channel):
    return counts.get(channel) or service_level.empty()


def _on_time_rates(days):
    """priority -> metric -> the share decided on time, of the metrics decided at all this month."""
    decided = defaultdict(lambda: defaultdict(lambda: [0, 0]))  # priority -> metric -> [on time, decided]
    for d in days:
        for priority, by_metric in d["decided"].items():
            for metric, counts in by_metric.items():
                decided[priority][metric][0] += counts["on_time"]
                decided[priority][metric][1] += counts["on_time"] + counts["late"]
    return {priority: {metric: _rate(on_time, all_, 2) for metric, (on_time, all_) in by_metric.items() if all_}
            for priority, by_metric in sorted(decided.items())}


def _kpis(policy, bounds, outages, days, received_resolved, month_channels):
    """Each KPI of the contract: the month's actual value against its target."""
    start, end = bounds
    month_minutes = (end - start).total_seconds() / 60
    ratings = sum(d["ratings"] for d in days)
    return {
        "availability": _kpi(round(1 - outage_minutes(outages, start, end) / month_minutes, 4),
                             policy.kpi["availability"]),
        "satisfaction": _kpi(_rate(sum(d["good_ratings"] for d in days), ratings), policy.kpi["satisfaction"]),
        "resolution_rate": _kpi(_rate(received_resolved[1], received_resolved[0]), policy.kpi["resolution_rate"]),
        "service_level": {
            channel: _kpi(service_level.service_level(_of_channel(month_channels, channel)), rule.target)
            for channel, rule in sorted(policy.interactions.items())},
    }


def _report_day(stored, categories, channels):
    """One day's row of the report (and of its CSV): totals, then per category and per channel, as
    `report.ReportDay` declares it."""
    d = stored["tally"]
    return {
        "date": d["date"], "received": d["received"], "responded": d["responded"], "resolved": d["resolved"],
        "breaches": sum(sum(v.values()) for v in d["breaches"].values()), "penalties": money(stored["penalties"]),
        "penalties_before_cap": money(d["penalties_raw"]),
        "by_category": {name: {"received": _of_category(d, name)["received"],
                               "breaches": sum(_of_category(d, name)["breaches"].values())}
                        for name in categories},
        "interactions": {channel: service_level.day_columns(_of_channel(d.get("interactions", {}), channel))
                         for channel in channels},
    }


def report_csv(report):
    """The report's days as CSV for spreadsheets (UTF-8, header row first): a day row's fields in the
    order `report.ReportDay` declares them, `category.<name>.received` / `.breaches` for each category
    of the report and `interactions.<channel>.<count>` for each channel (an empty cell for null)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_columns(report), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_row(day) for day in report["days"])
    return out.getvalue()
