"""Which notifications are due (see docs/clock.md), as a pure function of the policy, the request and its
SLA state at `now`. Each carries a dedupe key unique within its request: the outbox creates it once.
"""
from dataclasses import dataclass
from datetime import timedelta

from chalicelib.core.delivery import addressees, skip_reason
from chalicelib.core.emails import CUSTOMER_URGENCY, URGENCY, distinct_addresses, format_minutes, render
from chalicelib.core.events import ADMINS, PROVIDER, REQUESTER, TYPES
from chalicelib.core.facts import FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION

# A write about a moment longer ago than this is an import of history (a backdated request or event).
IMPORT_AGE = timedelta(minutes=1)
# An import posts a request and then its events one call at a time: the scanner looks only once the
# writes have paused this long, so it never alerts on a timeline whose respond is still on its way.
IMPORT_SETTLES = timedelta(minutes=1)


@dataclass(frozen=True)
class Notification:
    key: str  # unique within the request: "acknowledgement", "event|3", "warning|resolution|0|0.8", …
    kind: str  # a template kind of chalicelib.core.emails
    recipients: tuple
    context: dict
    metric: str | None = None  # provider alerts: what they announce, re-checked before sending
    cycle: int | None = None
    due_at: object = None  # the deadline named (a datetime): earlier deadlines are sent first
    at: object = None  # provider alerts: when it happened (the breach, the threshold passed, the lapse)
    skipped: str | None = None  # why it is recorded but never sent (delivery.BACKDATED); None: it is sent

    @property
    def urgency(self):
        return URGENCY.get(self.kind, CUSTOMER_URGENCY)

    def rendered(self, language):
        return render(self.kind, language, self.context)


def local_time(moment, tz):
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M} ({tz.key})" if moment is not None else ""


def _base_context(policy, request, state):
    return {
        "contract_name": policy.name,
        "request_id": request.request_id,
        "subject": request.subject or "",  # None once the request's personal data is erased
        "priority": state.priority,
        "requester_name": (request.requester or {}).get("name", ""),
    }


def _commitment(state):
    """What the customer is waiting for next: the first response until it is sent, then the
    resolution (a met one shows the margin it was met with)."""
    for name in (FIRST_RESPONSE, RESOLUTION):
        metric = state.metrics.get(name)
        if metric is not None and metric.met_at is None:
            return metric
    return state.metrics.get(RESOLUTION) or state.metrics.get(FIRST_RESPONSE)


def _customer_context(policy, request, state, note):
    tz, language = policy.calendar.tz, policy.notify.language
    first_response, commitment = state.metrics.get(FIRST_RESPONSE), _commitment(state)
    return _base_context(policy, request, state) | {
        "received_at": local_time(request.received_at, tz),
        "first_response_due": local_time(first_response.due_at if first_response else None, tz),
        # No deadline while paused or before the clock starts: it depends on what happens next.
        "deadline": local_time(commitment.due_at if commitment else None, tz) or "—",
        "remaining": format_minutes(commitment.remaining_minutes if commitment else None, language),
        "provisional": bool(commitment and commitment.due_at and commitment.provisional),
        "note": note or "",
    }


def acknowledgement(policy, request, state, now):
    """The requester's receipt for an accepted request (skipped when it was received long before `now`)."""
    context = _customer_context(policy, request, state, "")
    return Notification("acknowledgement", TYPES["received"].email, (request.requester["email"],), context,
                        skipped=skip_reason(request.received_at, now))


def event_notice(policy, request, state, event, note, now):
    """The email a posted `event` (a clock Event) sends, as its type declares (core/events.py), or None.
    One written to the requester is skipped when the event happened long before `now`, and is not
    written once the request's personal data is erased: there is no one left to write to."""
    declared = TYPES[event.type]
    email_to = tuple(who for who in declared.email_to if who != REQUESTER or request.requester is not None)
    if declared.email is None or not email_to:
        return None
    context = _customer_context(policy, request, state, note)
    return Notification(f"event|{event.seq}", declared.email, _addresses(policy, request, email_to), context,
                        skipped=skip_reason(event.at, now) if REQUESTER in email_to else None)


def _addresses(policy, request, email_to):
    """The addresses of `email_to` (events.REQUESTER, PROVIDER, ADMINS), each mailbox once."""
    lists = {PROVIDER: tuple(policy.notify.provider), ADMINS: tuple(policy.notify.admins)}
    found = [address for who in email_to
             for address in ((request.requester["email"],) if who == REQUESTER else lists[who])]
    return tuple(distinct_addresses(found))


def _provider_context(policy, request, state, metric, deadline, remaining, **extra):
    return _base_context(policy, request, state) | {
        "metric": metric,
        "deadline": local_time(deadline, policy.calendar.tz),
        "remaining": format_minutes(remaining, policy.notify.language),
        "provisional": state.metrics[metric].provisional,
        "threshold": "",
        "cycle": "",
        "missed": "",
    } | extra


def due_notifications(policy, request, state, now, since=None):
    """Provider warnings, breach alerts and progress reminders that came due in (since, now]; every
    milestone up to `now` when `since` is None (a request never checked, or re-checked after a change).

    Each goes by email to its recipients and to the contract's webhooks subscribed to its kind; one
    that would go nowhere is left out.
    Collapsed per metric, so a request checked after a long gap gets one catch-up alert, not one per
    missed cycle: the latest breach of each metric (saying how many progress cycles were missed in
    all), the reminder for the cycle running now, and the highest warning of the running cycle only.
    """
    breaches, warnings = {}, {}
    for milestone in state.milestones:
        if milestone.at > now:
            break
        # Strictly before: a breach lands exactly on its deadline, which a scan at that very instant
        # could not see yet (the outbox keeps a second look from sending anything twice).
        if since is not None and milestone.at < since:
            continue
        if milestone.kind == "breach":
            breaches[milestone.metric] = milestone  # milestones are sorted: the latest wins
        elif milestone.kind == "warn":
            warnings[milestone.metric] = milestone
    found = []
    for milestone in breaches.values():
        found.append(_breach(policy, request, state, milestone))
        if milestone.metric == PROGRESS_UPDATE:
            found.append(_reminder(policy, request, state, milestone, now))
    found += [_warning(policy, request, state, milestone, now) for milestone in warnings.values()]
    return [n for n in found if n is not None and (n.recipients or policy.webhooks_for(n.kind, n.at))]


def check_after_write(policy, request, state, now, written_for=None):
    """When the scanner should next look at a request just written about the moment `written_for`
    (None: a change of terms): at once (`now`) when the clock says something is due already (the
    outbox makes a second look harmless), but for an import no sooner than IMPORT_SETTLES from now;
    None: at its next milestone (state.next_check_at)."""
    check_now = now if due_notifications(policy, request, state, now) else None
    if written_for is not None and now - written_for > IMPORT_AGE:
        next_check = check_now or state.next_check_at
        if next_check is not None and next_check < now + IMPORT_SETTLES:
            check_now = now + IMPORT_SETTLES
    return check_now


def current_notification(policy, request, state, key, now):
    """The provider alert stored under `key`, rebuilt from the request's state at `now` (the current
    deadline, time left and addresses), or None when it no longer tells the truth: a breach that the
    timeline no longer shows, a warning or reminder whose cycle is not running toward its deadline."""
    kind, *parts = key.split("|")
    if kind == "breach":
        metric, cycle = parts[0], int(parts[1])
        milestone = next((m for m in state.milestones
                          if m.kind == "breach" and m.metric == metric and m.cycle == cycle and m.at <= now), None)
        return _breach(policy, request, state, milestone) if milestone else None
    if kind == "warning":
        metric, cycle, threshold = parts[0], int(parts[1]), float(parts[2])
        milestone = next((m for m in state.milestones if m.kind == "warn" and m.metric == metric
                          and m.cycle == cycle and m.threshold == threshold and m.at <= now), None)
        return _warning(policy, request, state, milestone, now) if milestone else None
    if kind == "progress_reminder":
        lapsed = [m for m in state.milestones if m.kind == "breach" and m.metric == PROGRESS_UPDATE and m.at <= now]
        # Only the reminder after the latest lapse is current: an older one names a cycle that lapsed too.
        return _reminder(policy, request, state, lapsed[-1], now) if lapsed and lapsed[-1].cycle == int(
            parts[0]) else None
    raise ValueError(f"not a provider alert key: {key!r}")


def _running_toward_deadline(metric, cycle, now):
    """A warning or reminder is worth sending only while its cycle still runs toward a known deadline:
    not once met or lapsed, and not while paused (the deadline then depends on the customer)."""
    return (metric is not None and metric.running and metric.due_at is not None and metric.due_at > now
            and metric.cycle == cycle)


def _warning(policy, request, state, milestone, now):
    metric = state.metrics.get(milestone.metric)
    if not _running_toward_deadline(metric, milestone.cycle, now):
        return None
    context = _provider_context(policy, request, state, milestone.metric, metric.due_at, metric.remaining_minutes,
                                threshold=f"{milestone.threshold:.0%}", cycle=str(milestone.cycle))
    key = f"warning|{milestone.metric}|{milestone.cycle}|{milestone.threshold}"
    return Notification(key, "warning", addressees("warning", policy.notify), context, milestone.metric,
                        milestone.cycle, metric.due_at, milestone.at)


def _breach(policy, request, state, milestone):
    """The alert for a missed deadline; for progress it says how many cycles were missed in all."""
    name, cycle, metric = milestone.metric, milestone.cycle, state.metrics[milestone.metric]
    context = _provider_context(policy, request, state, name, milestone.at, metric.remaining_minutes,
                                cycle=str(cycle) if name == PROGRESS_UPDATE else "",
                                missed=str(metric.misses) if name == PROGRESS_UPDATE else "")
    return Notification(f"breach|{name}|{cycle}", "breach", addressees("breach", policy.notify), context, name, cycle,
                        milestone.at, milestone.at)


def _reminder(policy, request, state, lapse, now):
    """After the progress cycle `lapse` (its breach milestone) lapsed: the update due in the cycle running now."""
    metric = state.metrics.get(PROGRESS_UPDATE)
    if metric is None or not _running_toward_deadline(metric, metric.cycle, now):
        return None
    context = _provider_context(policy, request, state, PROGRESS_UPDATE, metric.due_at, metric.remaining_minutes,
                                cycle=str(metric.cycle))
    return Notification(f"progress_reminder|{lapse.cycle}", "progress_reminder",
                        addressees("progress_reminder", policy.notify), context, PROGRESS_UPDATE, metric.cycle,
                        metric.due_at, lapse.at)
