"""JSON documents the API returns (see docs/api.md). Pure: records, calendars and SLA state in, dicts out."""
import math
from datetime import UTC, datetime, timedelta

from chalicelib.core.facts import PROGRESS_UPDATE
from chalicelib.core.webhook_rules import MASK


def iso(dt, tz):
    return dt.astimezone(tz).isoformat() if dt is not None else None


def outage_document(outage, tz):
    """An outage (start and end stored as UTC ISO strings) with its times in the contract's timezone."""
    return {"start": datetime.fromisoformat(outage.start).astimezone(tz).isoformat(),
            "end": datetime.fromisoformat(outage.end).astimezone(tz).isoformat(), "description": outage.description}


def _minutes(value, breached):
    """Whole minutes, floored: 0.4 left is 0, 0.4 late is -1. A breached metric always shows a
    negative number, even in a lunch break right after its deadline when no business time has run."""
    if value is None:
        return None
    minutes = math.floor(value + 1e-9)
    return min(minutes, -1) if breached else minutes


def money(value):
    """An amount as JSON shows it: whole amounts as integers, others to the cent."""
    return int(value) if float(value).is_integer() else round(value, 2)


def metric_document(name, state, tz):
    doc = {
        "due_at": iso(state.due_at, tz),
        "met_at": iso(state.met_at, tz),
        "breached": state.breached,
        "remaining_minutes": _minutes(state.remaining_minutes, state.breached and state.met_at is None),
        "provisional": state.provisional,
    }
    if name == PROGRESS_UPDATE:
        doc["misses"] = state.misses
    return doc


def request_document(item, state, policy, events=None, events_next=None, notifications=None,
                     notifications_next=None):
    """`events`: the newest events, oldest first; `events_next` the cursor to the older ones (or None).
    `notifications` and `notifications_next` likewise (the newest by creation time)."""
    tz = policy.calendar.tz
    doc = {
        "request_id": item.request_id,
        "contract_id": item.contract_id,
        "priority": state.priority,
        "category": item.category,
        "status": state.status,
        "channel": item.channel,
        "subject": item.subject,
        "description": item.description,
        "requester": item.requester,
        "received_at": iso(item.received_at, tz),
        "clock_started_at": iso(state.clock_started_at, tz),
        "sla": {name: metric_document(name, metric, tz) for name, metric in state.metrics.items()},
        "paused": state.paused,
        "breached": state.breached,
        "penalty": {"amount": money(state.penalty), "currency": policy.penalties.currency},
        "rating": state.ratings[-1][1] if state.ratings else None,
        "contract_version": state.contract_version,
        "next_check_at": iso(state.next_check_at, tz),
        "next_due_at": iso(state.next_due_at, tz),
        "personal_data_erased_at": iso(item.personal_data_erased_at, tz),
    }
    if events is not None:
        doc["events"] = [event_document(event, tz, erased=item.personal_data_erased_at is not None)
                         for event in events]
        doc["events_next"] = events_next
    if notifications is not None:
        doc["notifications"] = [notification_document(entry, tz) for entry in notifications]
        doc["notifications_next"] = notifications_next
    return doc


def notification_document(entry, tz):
    """Where each email of the request stands; a failed one says why, and so does a skipped one
    (`reason`). Delivery, bounce and complaint come from SES's events after it accepted the email:
    null until SES reports one; for the email, the first delivery and complaint and the worst bounce
    of any recipient; in `recipients_feedback`, each recipient's own, for those SES reported on."""
    return {
        "key": entry.key,
        "kind": entry.kind,
        "to": list(entry.recipients),
        "status": entry.status,
        "reason": entry.reason,
        "attempts": int(entry.attempts),
        "sent_at": iso(entry.sent_at, tz),
        "delivered_at": iso(entry.delivered_at, tz),
        "bounced_at": iso(entry.bounced_at, tz),
        "bounce_type": entry.bounce_type,
        "complained_at": iso(entry.complained_at, tz),
        "recipients_feedback": [{
            "address": f.address, "delivered_at": iso(f.delivered_at, tz), "bounced_at": iso(f.bounced_at, tz),
            "bounce_type": f.bounce_type, "complained_at": iso(f.complained_at, tz), "diagnostic": f.diagnostic,
        } for f in entry.recipients_feedback or ()],
        "last_error": entry.last_error,
    }


def event_document(event, tz, erased=False):
    """`erased`: the request's personal data was erased, its notes with it (they read null)."""
    doc = {"seq": event.seq, "type": event.type, "at": iso(event.at, tz), "by": event.by}
    if erased:
        doc["note"] = None
    elif event.note is not None:
        doc["note"] = event.note
    doc.update(event.details or {})
    return doc


def erasure_document(record):
    """The audit record of an erasure: who, when, why and how many requests (never whose data)."""
    return {"erased_at": iso(record.erased_at, UTC), "erased_by": record.erased_by, "reason": record.reason,
            "requests": int(record.requests)}


def contract_document(record, calendar_years, for_client=False):
    """A stored contract version with `calendar_years` ({"2026": "official", "2027": "estimated"}, the
    holiday schedules in use). Client tokens get the `notify` block without the provider's and admins'
    addresses (and the sender): only the language their customers are written in; and no webhooks.
    Webhook secrets are write-only: every reader sees MASK."""
    document = dict(record.document)
    if for_client:
        document["notify"] = {"language": document["notify"]["language"]}
        document.pop("webhooks", None)
    else:
        document["webhooks"] = [{"url": hook["url"], "events": hook["events"], "secret": MASK}
                                for hook in document.get("webhooks") or []]
    return {
        "contract_id": record.contract_id,
        "version": int(record.version),
        "updated_at": record.updated_at.astimezone(UTC).isoformat(),
        **document,
        "calendar_years": calendar_years,
    }


def preview_document(state, policy):
    """The deadlines a request would get: when its clock starts and each metric's first due_at."""
    tz = policy.calendar.tz
    return {
        "clock_started_at": iso(state.clock_started_at, tz),
        "sla": {name: {"due_at": iso(metric.due_at, tz), "provisional": metric.provisional}
                for name, metric in state.metrics.items()},
    }


def token_document(record, token=None):
    """A token's record; `token` (the secret) only in the answer that issues it."""
    doc = {
        "token_id": record.token_id,
        "role": record.role,
        "contract_id": record.contract_id,
        "created_at": iso(record.created_at, UTC),
        "expires_at": iso(record.expires_at, UTC),
        "last_used_at": iso(record.last_used_at, UTC),
    }
    if token is not None:
        doc["token"] = token
    return doc


def calendar_year_document(country, year, status, holidays, workdays, override=None):
    """A country-year's holiday schedule: the published override when there is one (`override`, the
    stored record), else the packaged `holidays` / `workdays`."""
    if override is not None:
        holidays, workdays = override.holidays, override.workdays
    return {
        "country": country,
        "year": year,
        "status": status,
        "source": "override" if override is not None else "package",
        "holidays": sorted(str(d) for d in holidays),
        "workdays": sorted(str(d) for d in workdays),
        "reference": override.source if override is not None else None,
        "updated_at": override.updated_at.astimezone(UTC).isoformat() if override is not None else None,
    }


def _clock(moment, day):
    """HH:MM of a period bound on local date `day`; the midnight that ends the day is 24:00."""
    return "24:00" if moment.date() > day else f"{moment:%H:%M}"


def calendar_days_document(calendar, first, last):
    """Each local date from `first` to `last` (inclusive): working or not, why, its hours, and whether
    its country's schedule for that year is official or estimated."""
    days, day = [], first
    while day <= last:
        days.append({
            "date": day.isoformat(),
            "working": calendar.is_working_day(day),
            "kind": calendar.day_kind(day),
            "hours": [[_clock(start, day), _clock(end, day)] for start, end in calendar.periods(day)],
            "status": calendar.year_status(day.year),
        })
        day += timedelta(days=1)
    return {"timezone": calendar.tz.key, "days": days}
