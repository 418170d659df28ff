"""A contract's calendar as iCalendar (RFC 5545) for Outlook, Google Calendar and the like. Pure.

One all-day event per day that breaks the weekly pattern: a holiday on one of the contract's working
weekdays (no SLA time that day) and a make-up working day (SLA time counts although it is a weekend).
Each event's UID is stable (contract, date, kind), so a subscribed calendar updates in place when an
override changes a day.
"""
from datetime import UTC, timedelta

from icalendar import Calendar, Event

PRODID = "-//SLA Clock//Contract business calendar//EN"
SUMMARIES = {
    "zh-CN": {"holiday": "节假日休息（不计 SLA 时间）", "makeup_workday": "调休上班（计 SLA 时间）",
              "estimated": "（推定）", "calendar": "{name} 工作日历"},
    "en": {"holiday": "Holiday (no SLA time)", "makeup_workday": "Make-up working day (SLA time counts)",
           "estimated": " (estimated)", "calendar": "{name} business calendar"},
}


def _listed(calendar, day):
    """The kind of event `day` gets, or None when it follows the weekly pattern."""
    kind = calendar.day_kind(day)
    if kind == "makeup_workday" or (kind == "holiday" and day.isoweekday() in calendar.workdays):
        return kind
    return None


def contract_ics(calendar, contract_id, contract_name, language, first, last, now):
    """The VCALENDAR (bytes, CRLF lines) of the days from `first` to `last` inclusive. `now` stamps
    the events (DTSTAMP)."""
    words = SUMMARIES[language]
    ical = Calendar()
    ical.add("prodid", PRODID)
    ical.add("version", "2.0")
    ical.add("calscale", "GREGORIAN")
    ical.add("method", "PUBLISH")
    ical.add("x-wr-calname", words["calendar"].format(name=contract_name))
    ical.add("x-wr-timezone", calendar.tz.key)
    day = first
    while day <= last:
        kind = _listed(calendar, day)
        if kind is not None:
            estimated = calendar.year_status(day.year) == "estimated"
            event = Event()
            event.add("uid", f"{day:%Y%m%d}-{kind}-{contract_id}@sla-clock")
            event.add("dtstamp", now.astimezone(UTC))
            event.add("dtstart", day)
            event.add("dtend", day + timedelta(days=1))
            event.add("summary", words[kind] + (words["estimated"] if estimated else ""))
            event.add("categories", [kind])
            event.add("transp", "TRANSPARENT")
            ical.add_component(event)
        day += timedelta(days=1)
    return ical.to_ical()
