"""What-if maths, pure: one month of requests under the terms in force and under a candidate contract.

Each side is tallied exactly as the nightly tally and the monthly report count (tally_month, the cap in
day order, month_report's own sums), so the current side of a month whose requests all started in it
gives the report's numbers. A request's outcome is its part of the month: the metrics whose deadline
passed unmet in the month, and the penalties it accrued there before the monthly cap (the cap binds
the month, not a request).
"""
from collections import defaultdict
from dataclasses import dataclass

from chalicelib.core.documents import money
from chalicelib.core.tally import METRICS, apply_cap, month_bounds, month_report, tally_month

MAX_CHANGED = 100  # the requests listed in `changed`; the summaries and `changed_total` count them all


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the policy whose currency and monthly cap apply, and the month's
    requests evaluated under its terms (tally.Evaluated, in the same order on both sides)."""

    policy: object
    requests: list


def compare(month, tz, current, candidate):
    """{"current", "candidate", "changed", "changed_total"} for `month` ((year, month)) whose local days
    are those of `tz`."""
    start, end = month_bounds(month, tz)
    summaries, outcomes = [], []
    for side in (current, candidate):
        days = tally_month(month, tz, side.requests)
        summaries.append(summary(month, side.policy, days))
        outcomes.append(_outcomes(side.requests, days, start, end))
    changed = [
        (request.request_id, before, after)
        for request, before, after in zip(current.requests, *outcomes, strict=True)
        if before != after
    ]
    changed.sort(key=lambda entry: -abs(entry[2][1] - entry[1][1]))  # stable: ties stay in received order
    return {
        "current": summaries[0],
        "candidate": summaries[1],
        "changed": [{"request_id": request_id, "current": _outcome_document(before),
                     "candidate": _outcome_document(after)} for request_id, before, after in changed[:MAX_CHANGED]],
        "changed_total": len(changed),
    }


def summary(month, policy, days):
    """The monthly report's breaches, penalties (capped in day order by `policy`) and on-time rates of
    the DayTallies `days`, with the currency the amounts are in."""
    capped = apply_cap([(day.date, day.penalties_raw) for day in days], policy.penalties.monthly_cap)
    tallies = [{"tally": vars(day), "penalties": allowed} for day, (_, allowed) in zip(days, capped, strict=True)]
    report = month_report(None, month, policy, tallies, outages=[], received_resolved=(0, 0))
    return {key: report[key] for key in ("currency", "breaches", "penalties", "on_time_rate")}


def _outcomes(requests, days, start, end):
    """Per request, in order: (metrics breached in [start, end), penalties accrued there before the cap)."""
    accrued = defaultdict(float)
    for day in days:
        for line in day.penalty_lines:
            accrued[line["request_id"]] += line["amount"]
    return [(_breached(request.state, start, end), accrued[request.request_id]) for request in requests]


def _breached(state, start, end):
    metrics = {m.metric for m in state.milestones if m.kind == "breach" and start <= m.at < end}
    return tuple(metric for metric in METRICS if metric in metrics)


def _outcome_document(outcome):
    breached, penalty = outcome
    return {"breached": list(breached), "penalty": money(penalty)}
