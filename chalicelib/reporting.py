"""nightly_tally, back-fills, monthly reports and outages: load, call the pure tally, store."""
import logging
import time
from datetime import date, datetime, timedelta

from chalicelib import contracts, erasures, evaluation
from chalicelib.aws import metrics, outbox, store
from chalicelib.core import delivery, fields, service_level
from chalicelib.core.calendar import parse_date
from chalicelib.core.clock import RESOLVED
from chalicelib.core.documents import outage_document
from chalicelib.core.emails import render_customer_report, render_daily_tally
from chalicelib.core.errors import ValidationError
from chalicelib.core.fields import FIRST_YEAR, instant, missing, reject_unknown, require, require_object, text
from chalicelib.core.intake import EARLIEST
from chalicelib.core.tally import (
    Evaluated,
    apply_cap,
    day_bounds,
    month_bounds,
    month_report,
    month_totals,
    report_csv,
    tally_day,
)
from chalicelib.logs import log_event, pseudonym

# A run stops starting contracts after RUN_BUDGET_S, or earlier when the invocation has less time:
# RESERVE of it stays for the contract in progress and for recording where the run stands.
RUN_BUDGET_S = 240
RESERVE = 0.25
logger = logging.getLogger("sla_clock.tally")


def previous_day(policy, now):
    return now.astimezone(policy.calendar.tz).date() - timedelta(days=1)


def run_nightly(now, seconds_left, day=None, contract_id=None):
    """Tally the previous local day (or `day`) of every contract (or one), from the first.
    `seconds_left`: what the invocation has left (the Lambda context's remaining time).

    Returns {"tallies": [...], "errors": n, "remaining": contracts left to a later invocation,
    "personal_data_erased": requests the contracts' retention erased}.
    """
    if contract_id:
        if store.latest_contract(contract_id) is None:
            raise ValidationError("contract_id", f"no contract {contract_id!r}")
        outcome = Outcome(now, day)
        outcome.tally(contract_id, now)
        return outcome.result(remaining=0)
    return _advance(store.new_tally_run(now, day), seconds_left, now)


def continue_nightly(now, seconds_left):
    """Resume the runs that ran out of time, or whose invocation died, oldest first (scheduled every
    few minutes: a single query when there is none)."""
    total = {"tallies": [], "errors": 0, "remaining": 0, "personal_data_erased": 0}
    for run in store.tally_runs():
        if run.lease_until is not None and run.lease_until > now.timestamp():
            continue  # an invocation is on it
        result = _advance(run, seconds_left, now)
        total = {key: total[key] + result[key] for key in total}
        if result["remaining"]:
            break  # out of time
    return total


def _advance(run, seconds_left, now):
    """This invocation's share of a nightly run: contracts in id order until the time budget is spent
    (at least one each time, so every invocation makes progress), then the run records where it
    stands for the next invocation; done, it is deleted. Before each contract the run is saved with
    it as `current` and a lease to the invocation's end: found still `current` later, the invocation
    died in it, and the contract is counted as failed rather than tried forever."""
    started = time.monotonic()
    budget = min(RUN_BUDGET_S, seconds_left * (1 - RESERVE))
    outcome = Outcome(run.started_at, date.fromisoformat(run.date) if run.date else None)
    if run.current is not None:
        outcome.failed(run.current, "the invocation tallying it ended before it finished")
        run.after, run.current = run.current, None
    todo = [cid for cid in store.contract_ids() if cid > (run.after or "")]
    try:
        for position, cid in enumerate(todo):
            if position and time.monotonic() - started >= budget:
                run.lease_until = None
                store.save_tally_run(run)
                return outcome.result(remaining=len(todo) - position)
            run.current, run.lease_until = cid, now.timestamp() + seconds_left
            store.save_tally_run(run)
            outcome.tally(cid, now)
            run.after, run.current = cid, None
        store.finish_tally_run(run)
    except store.StaleWrite:
        pass  # another invocation took the run over; it goes on from where the run stands
    return outcome.result(remaining=0)


class Outcome:
    """The tallies of one invocation. A contract that cannot be tallied (corrupt item, bug) is logged
    at ERROR with its id and counted; the other contracts are tallied all the same."""

    def __init__(self, started_at, day):
        self.started_at, self.day = started_at, day  # day None: each contract's local day before started_at
        self.tallies, self.errors = [], 0
        self.personal_data_erased = 0  # requests whose personal data the contracts' retention erased
        self.calendars = {}  # country -> published schedules, read once per invocation

    def tally(self, contract_id, now):
        try:
            record = store.latest_contract(contract_id)
            if record is None:
                raise ValidationError("contract_id", f"no contract {contract_id!r}")
            policy = evaluation.policy_of(record, self.calendars)
            day = self.day or previous_day(policy, self.started_at)
            self.tallies.append(tally_contract_day(contract_id, policy, day, now))
            if self.day is None:  # the scheduled run, not a back-fill of a given date
                send_customer_report(contract_id, policy, day, now)
        except Exception as exc:  # noqa: BLE001 - one tenant's failure must not stop the others
            self.failed(contract_id, f"{type(exc).__name__}: {exc}", exc_info=True)
            return
        if self.day is None:  # the contract's retention, a bounded page a night (failures isolated inside)
            self.personal_data_erased += erasures.apply_retention(contract_id, policy, now)

    def failed(self, contract_id, error, exc_info=None):
        self.errors += 1
        log_event(logger, "tally failed", level=logging.ERROR, exc_info=exc_info, contract_id=contract_id,
                  day=self.day.isoformat() if self.day else None, run_started_at=self.started_at.isoformat(),
                  error=error[:1000])

    def result(self, remaining):
        return {"tallies": self.tallies, "errors": self.errors, "remaining": remaining,
                "personal_data_erased": self.personal_data_erased}


def tally_contract_day(contract_id, policy, day, now):
    """Tally one local day of one contract, store it, re-apply the month's cap, email the admins.
    Resolved requests count with the outcome they were resolved with (evaluation.state_of)."""
    started = time.perf_counter()
    tz = policy.calendar.tz
    start, end = day_bounds(day, tz)
    pinned, evaluated, read = {}, [], 0
    for item in store.requests_active_since(contract_id, start):
        read += 1
        if item.received_at >= end:
            continue
        request_policy = policy if item.status != RESOLVED else evaluation.resolved_policy(item, pinned, policy)
        state = evaluation.state_of(item, request_policy, now)
        evaluated.append(Evaluated(item.request_id, item.received_at, state, request_policy.penalties, item.category))
    tally = tally_day(day, tz, evaluated)
    if policy.interactions:  # a contract without channels reads no interactions
        tally.interactions = service_level.count_day(policy.interactions, policy.calendar, start, end,
                                                     store.interactions_between(contract_id, start, end))
    store.save_tally(contract_id, tally, now)
    month = _cap_month(contract_id, day, policy)
    today = next(t for t in month if t.day == tally.date)
    _email_admins(contract_id, policy, tally, today, month, now)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log_event(logger, "tally finished", contract_id=contract_id, day=tally.date, requests_read=read,
              received=tally.received, breaches=tally.breach_count, penalties=today.penalties,
              window=[start.isoformat(), end.isoformat()], duration_ms=duration_ms)
    metrics.emit("TallyDuration", duration_ms, metrics.MILLISECONDS, contract_id=contract_id)
    return tally_document(contract_id, policy, today)


def _cap_month(contract_id, day, policy):
    """Re-apply the monthly cap over the month's days in order; rewrite the days it changes."""
    month = sorted(store.tallies_of_month(contract_id, day.strftime("%Y-%m-")), key=lambda t: t.day)
    capped = apply_cap([(t.day, t.penalties_raw) for t in month], policy.penalties.monthly_cap)
    return [store.cap_tally(tally, allowed) if tally.penalties != allowed else tally
            for tally, (_, allowed) in zip(month, capped, strict=True)]


def tally_document(contract_id, policy, item):
    """A stored tally as the API shows it: each channel's counts with its average and p90 answer
    seconds and service level (the stored answer-time histogram stays inside)."""
    channels = {channel: service_level.summary(counts) | {"service_level": service_level.service_level(counts)}
                for channel, counts in item.tally.get("interactions", {}).items()}
    return {"contract_id": contract_id, "currency": policy.penalties.currency, **item.tally,
            "penalties": item.penalties, "interactions": channels}


def _email_admins(contract_id, policy, tally, today, month, now):
    """The day's numbers and the month to date, once per contract × day."""
    if not policy.notify.admins:
        return
    to_date = [t for t in month if t.day <= tally.date]
    rendered = render_daily_tally(policy.notify.language, {
        "contract_name": policy.name,
        "contract_id": contract_id,
        "date": tally.date,
        "currency": policy.penalties.currency,
        "day": {**tally.as_dict(), "penalties": today.penalties},
        "month": month_totals(_stored_tallies(to_date)),
        "interactions": _channel_lines(policy, tally.interactions,
                                       service_level.merge(t.tally.get("interactions", {}) for t in to_date)),
    })
    entry = outbox.new_entry(f"contract#{contract_id}", contract_id, f"daily_tally|{tally.date}", "daily_tally",
                             policy.notify.admins, rendered, policy, now)
    if outbox.enqueue(entry):
        outbox.deliver_quietly([(entry, delivery.email(now=now, **outbox.stored_email(entry)))], now)


def _channel_lines(policy, day, month):
    """Per channel of the contract: its answer target and the day's and month-to-date summaries."""
    lines = {}
    for channel, rule in sorted(policy.interactions.items()):
        lines[channel] = {"answer_within": str(rule.answer_within), "target": rule.target}
        for name, counts in (("day", day), ("month", month)):
            found = counts.get(channel) or service_level.empty()
            lines[channel][name] = service_level.summary(found) | {"service_level": service_level.service_level(found)}
    return lines


def send_customer_report(contract_id, policy, day, now):
    """The month before the day after `day`, once complete, to the customer's `notify.customer_reports`:
    the HTML summary with the CSV of its days attached. The first nightly run of a month (it tallies
    the month's last day) sends it; every later run finds it in the outbox and reads nothing more, and
    a run that missed the 1st catches up. A month without any tally of the contract sends nothing.
    Returns True when this call created it."""
    if not policy.notify.customer_reports:
        return False
    last_day = (day + timedelta(days=1)).replace(day=1) - timedelta(days=1)
    month = (last_day.year, last_day.month)
    owner, key = f"contract#{contract_id}", f"customer_report|{last_day:%Y-%m}"
    if outbox.exists(owner, key):
        return False
    document = month_document(contract_id, policy, month)
    if not document["days"]:
        return False
    rendered = render_customer_report(policy.notify.language, {
        "contract_name": policy.name, "contract_id": contract_id, "month": document["month"], "report": document,
        "answer_within": {channel: str(rule.answer_within) for channel, rule in policy.interactions.items()},
    })
    csv_file = {"filename": f"sla-report-{contract_id}-{document['month']}.csv", "content_type": "text/csv",
                "content": report_csv(document)}
    entry = outbox.new_entry(owner, contract_id, key, "customer_report", policy.notify.customer_reports, rendered,
                             policy, now, attachments=[csv_file])
    if not outbox.enqueue(entry):
        return False
    outbox.deliver_quietly([(entry, delivery.email(now=now, **outbox.stored_email(entry)))], now)
    log_event(logger, "customer report queued", contract_id=contract_id, month=document["month"],
              to_hashes=[pseudonym(address) for address in policy.notify.customer_reports])
    return True


# --- the API's side ------------------------------------------------------------------------------


def backfill(principal, contract_id, body, now):
    """POST /contracts/{id}/tallies {"date": "YYYY-MM-DD"}: tally that day again (admins)."""
    body = require_object(body, "body")
    reject_unknown(body, ("date",))
    record = contracts.latest_contract_of(principal, contract_id)
    policy = evaluation.policy_of(record)
    day = parse_date(body.get("date"), "date")
    if day > now.astimezone(policy.calendar.tz).date():
        raise ValidationError("date", "must not lie in the future")
    if day.year < FIRST_YEAR:
        raise ValidationError("date", f"must not precede {FIRST_YEAR}")
    return tally_contract_day(contract_id, policy, day, now)


def report(principal, contract_id, params, now):
    """GET /contracts/{id}/reports?month=YYYY-MM[&format=csv]: (content type, body)."""
    params = params or {}
    reject_unknown(params, ("month", "format"))
    record = contracts.latest_contract_of(principal, contract_id)
    policy = evaluation.policy_of(record)
    month = fields.month(params.get("month"), "month")
    kind = params.get("format", "json")
    if kind not in ("json", "csv"):
        raise ValidationError("format", "must be json or csv")
    document = month_document(contract_id, policy, month)
    return ("text/csv", report_csv(document)) if kind == "csv" else ("application/json", document)


def month_document(contract_id, policy, month):
    """The monthly report of (year, month) from the stored tallies, outages and request counts."""
    tallies = store.tallies_of_month(contract_id, f"{month[0]:04d}-{month[1]:02d}-")
    outages = [(datetime.fromisoformat(o.start), datetime.fromisoformat(o.end)) for o in store.outages_of(contract_id)]
    counts = store.count_received_between(contract_id, *month_bounds(month, policy.calendar.tz))
    return month_report(contract_id, month, policy, _stored_tallies(tallies), outages, counts)


def _stored_tallies(items):
    """Stored tally items as the core's reports read them."""
    return [{"tally": t.tally, "penalties": t.penalties} for t in items]


def record_outage(principal, contract_id, body, now):
    """POST /contracts/{id}/outages: validated, end after start, merged with overlapping ones."""
    body = require_object(body, "body")
    reject_unknown(body, ("start", "end", "description"))
    tz = _timezone_of(contracts.latest_contract_of(principal, contract_id))
    require(missing(body, ("start", "end")))
    start, end = instant(body["start"], "start"), instant(body["end"], "end")
    if start < EARLIEST:
        raise ValidationError("start", f"must not precede {EARLIEST.date().isoformat()}")
    if end <= start:
        raise ValidationError("end", "must be after start")
    if end > now:
        raise ValidationError("end", "must not lie in the future: record an outage once it is over")
    description = text(body.get("description") or "-", "description", 500, multiline=True)
    overlapping = store.outages_overlapping(contract_id, start, end)
    merged_start = min([start] + [datetime.fromisoformat(o.start) for o in overlapping])
    merged_end = max([end] + [datetime.fromisoformat(o.end) for o in overlapping])
    descriptions = list(dict.fromkeys([o.description for o in overlapping] + [description]))
    merged = store.new_outage(contract_id, merged_start, merged_end, "; ".join(descriptions)[:2000], now,
                              principal.token_id)
    store.replace_outages([o for o in overlapping if o.start != merged.start], merged)
    return {"outage": outage_document(merged, tz), "merged": len(overlapping),
            "outages": [outage_document(o, tz) for o in store.outages_of(contract_id)]}


def list_outages(principal, contract_id):
    tz = _timezone_of(contracts.latest_contract_of(principal, contract_id))
    return {"outages": [outage_document(o, tz) for o in store.outages_of(contract_id)]}


def _timezone_of(record):
    return evaluation.policy_of(record).calendar.tz
