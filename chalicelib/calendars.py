"""Country-year holiday schedules and the views of a contract's calendar: load, check, call the pure
core, store.

- PUT/GET/DELETE /calendars/{country}/{year}: the officially published schedule of a year, replacing
  python-holidays' data for every contract whose calendar uses that country (a contract's own extra
  holidays and workdays still win). A write re-evaluates the open requests of those contracts.
- GET /contracts/{id}/calendar and /calendar.ics: the contract's days, as JSON or iCalendar.
- The nightly notice: from 1 November, while next year's schedule of a contract's country is only
  estimated, its admins are told weekly how to publish it.
"""
import logging
import re
from datetime import date, timedelta

from chalicelib import contracts, evaluation
from chalicelib.aws import outbox, store
from chalicelib.core import delivery
from chalicelib.core.calendar import ESTIMATED, is_supported_country, package_schedule, parse_date, schedule_status
from chalicelib.core.documents import calendar_days_document, calendar_year_document
from chalicelib.core.emails import render_calendar_notice
from chalicelib.core.errors import ValidationError
from chalicelib.core.fields import FIRST_YEAR, LAST_YEAR, reject_unknown
from chalicelib.core.ics import contract_ics
from chalicelib.core.intake import parse_year_schedule
from chalicelib.logs import log_event

MAX_DAYS = 366  # the JSON view
MAX_ICS_DAYS = 731  # two calendar years: this year and next, what a subscription shows by default
NOTICE_FROM = (11, 1)  # (month, day) from which next year's schedule is awaited
NOTICE_EVERY = timedelta(days=7)
logger = logging.getLogger("sla_clock.calendars")


# --- country-year schedules ----------------------------------------------------------------------


def _country(value):
    if not is_supported_country(value):
        raise ValidationError("country", f"{value!r} is not a country code supported by python-holidays (e.g. CN)")
    return value


def _year(value):
    if not re.fullmatch(r"\d{4}", value or "") or not FIRST_YEAR <= int(value) <= LAST_YEAR:
        raise ValidationError("year", f"must be a year from {FIRST_YEAR} to {LAST_YEAR}")
    return int(value)


def _document(country, year, override):
    holidays, workdays = package_schedule(country, year)
    status = schedule_status(country, year, overridden=override is not None)
    return calendar_year_document(country, year, status, holidays, workdays, override)


def get_year(country, year):
    country, year = _country(country), _year(year)
    return _document(country, year, store.calendar_override(country, year))


def put_year(principal, country, year, body, now):
    """Store a year's published schedule; re-evaluate the affected open requests. (status, document)."""
    country, year = _country(country), _year(year)
    schedule = parse_year_schedule(body, year)
    created = store.calendar_override(country, year) is None
    record = store.save_calendar_override(country, year, [d.isoformat() for d in schedule.holidays],
                                          [d.isoformat() for d in schedule.workdays], schedule.source,
                                          principal.token_id, now)
    log_event(logger, "calendar override stored", country=country, year=year, by=principal.token_id,
              holidays=len(schedule.holidays), workdays=len(schedule.workdays))
    _reevaluate_contracts_of(country, now)
    return (201 if created else 200), _document(country, year, record)


def delete_year(principal, country, year, now):
    """Revert a year to the packaged data (nothing to do when it has no override)."""
    country, year = _country(country), _year(year)
    record = store.calendar_override(country, year)
    if record is None:
        return
    store.delete_calendar_override(record)
    log_event(logger, "calendar override deleted", country=country, year=year, by=principal.token_id)
    _reevaluate_contracts_of(country, now)


def _reevaluate_contracts_of(country, now):
    for contract_id, record in _latest_contracts():
        if evaluation.country_of(record) == country:
            contracts.schedule_reevaluation(contract_id, now)


def _latest_contracts():
    """(contract id, latest version) of every contract that can be read; one that cannot (a corrupt
    item) is logged at ERROR and skipped, so it never stops the others."""
    for contract_id in store.contract_ids():
        try:
            yield contract_id, store.latest_contract(contract_id)
        except Exception as exc:  # noqa: BLE001 - one tenant's broken item must not stop the others
            log_event(logger, "contract unreadable", level=logging.ERROR, contract_id=contract_id,
                      error=f"{type(exc).__name__}: {exc}")


# --- a contract's calendar -----------------------------------------------------------------------


def _span(params, today, default_last_year, max_days):
    """(first, last) local dates from `from` / `to` (inclusive): by default 1 January of this year to
    31 December of `default_last_year` years later."""
    reject_unknown(params, ("from", "to"))
    first = parse_date(params["from"], "from") if params.get("from") else date(today.year, 1, 1)
    last = parse_date(params["to"], "to") if params.get("to") else date(first.year + default_last_year, 12, 31)
    for name, day in (("from", first), ("to", last)):
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise ValidationError(name, f"must lie between {FIRST_YEAR} and {LAST_YEAR}")
    if last < first:
        raise ValidationError("to", "must not precede from")
    if (last - first).days + 1 > max_days:
        raise ValidationError("to", f"the span from `from` to `to` must be at most {max_days} days")
    return first, last


def contract_calendar(principal, contract_id, params, now):
    """GET /contracts/{id}/calendar?from&to: every day, at most 366 (default: this year)."""
    policy = evaluation.policy_of(contracts.latest_contract_of(principal, contract_id))
    today = now.astimezone(policy.calendar.tz).date()
    first, last = _span(params or {}, today, 0, MAX_DAYS)
    return calendar_days_document(policy.calendar, first, last)


def contract_calendar_ics(principal, contract_id, params, now):
    """GET /contracts/{id}/calendar.ics?from&to: holidays on working weekdays and make-up working days
    as all-day events (default: this year and next, what a subscribed calendar should show)."""
    policy = evaluation.policy_of(contracts.latest_contract_of(principal, contract_id))
    today = now.astimezone(policy.calendar.tz).date()
    first, last = _span(params or {}, today, 1, MAX_ICS_DAYS)
    return contract_ics(policy.calendar, contract_id, policy.name, policy.notify.language, first, last, now)


# --- the nightly notice --------------------------------------------------------------------------


def publish_call(country, year):
    """The HTTP call that publishes a year's schedule, as a curl command line (placeholders marked)."""
    return (f'curl -X PUT "$SLA/calendars/{country}/{year}" \\\n'
            '  -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \\\n'
            f'  -d \'{{"holidays": ["{year}-MM-DD", "..."], "workdays": ["{year}-MM-DD", "..."], '
            '"source": "<the official notice>"}\'')


def send_year_notices(now):
    """From 1 November (each contract's local date), while next year's schedule of a contract's country
    is estimated, email the contract's admins how to publish it, at most once per 7 days. A contract that
    fails is logged at ERROR and skipped. Returns the ids of the contracts notified."""
    memo, notified = {}, []
    for contract_id, record in _latest_contracts():
        try:
            if _year_notice(record, memo, now):
                notified.append(contract_id)
        except Exception as exc:  # noqa: BLE001 - one contract must not silence the others
            log_event(logger, "calendar notice failed", level=logging.ERROR, contract_id=contract_id,
                      error=f"{type(exc).__name__}: {exc}")
    return notified


def _year_notice(record, memo, now):
    country = evaluation.country_of(record)
    policy = evaluation.policy_of(record, memo)
    if country is None or not policy.notify.admins:
        return False
    today = now.astimezone(policy.calendar.tz).date()
    year = today.year + 1
    if (today.month, today.day) < NOTICE_FROM or policy.calendar.year_status(year) != ESTIMATED:
        return False
    owner, prefix = f"contract#{record.contract_id}", f"calendar_notice|{year}|"
    last = outbox.latest_of(owner, prefix)
    if last is not None and today - date.fromisoformat(last.key[len(prefix):]) < NOTICE_EVERY:
        return False
    rendered = render_calendar_notice(policy.notify.language, {
        "contract_name": policy.name, "contract_id": record.contract_id, "country": country, "year": year,
        "call": publish_call(country, year),
    })
    # Keyed by the local date: two runs the same day create it once; the look-up above spaces the days.
    entry = outbox.new_entry(owner, record.contract_id, f"{prefix}{today.isoformat()}", "calendar_notice",
                             policy.notify.admins, rendered, policy, now)
    if not outbox.enqueue(entry):
        return False
    outbox.deliver_quietly([(entry, delivery.email(now=now, **outbox.stored_email(entry)))], now)
    return True
