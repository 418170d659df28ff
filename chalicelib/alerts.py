"""Which notifications are due (DESIGN.md §4), as a pure function of the policy, the request and its
SLA state at `now`. Each carries a dedupe key unique within its request: the outbox creates it once.
"""
from dataclasses import dataclass

from chalicelib.clock import FIRST_RESPONSE, PROGRESS_UPDATE, RESOLUTION
from chalicelib.emails import format_minutes, render

CUSTOMER_EVENTS = ("respond", "progress", "resolve", "await_customer")


@dataclass(frozen=True)
class Notification:
    key: str  # unique within the request: "acknowledgement", "event|3", "warning|resolution|0|0.8", …
    kind: str  # a template kind of chalicelib.emails
    recipients: tuple
    context: dict

    def rendered(self, language):
        return render(self.kind, language, self.context)


def local_time(moment, tz):
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M} ({tz.key})" if moment is not None else ""


def _base_context(policy, request, state):
    return {
        "contract_name": policy.name,
        "request_id": request.request_id,
        "subject": request.subject,
        "priority": state.priority,
        "requester_name": request.requester.get("name", ""),
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


def acknowledgement(policy, request, state):
    """The requester's receipt for an accepted request."""
    context = _customer_context(policy, request, state, "")
    return Notification("acknowledgement", "acknowledgement", (request.requester["email"],), context)


def customer_notice(policy, request, state, event_type, seq, note):
    """The requester's notice of a respond / progress / resolve / await_customer event, or None."""
    if event_type not in CUSTOMER_EVENTS:
        return None
    context = _customer_context(policy, request, state, note)
    return Notification(f"event|{seq}", event_type, (request.requester["email"],), context)


def _provider_context(policy, request, state, metric, deadline, remaining, **extra):
    return _base_context(policy, request, state) | {
        "metric": metric,
        "deadline": local_time(deadline, policy.calendar.tz),
        "remaining": format_minutes(remaining, policy.notify.language),
        "provisional": state.metrics[metric].provisional,
        "threshold": "",
        "cycle": "",
    } | extra


def due_notifications(policy, request, state, now):
    """Provider warnings, breach alerts and progress reminders whose moment has come at `now`."""
    provider = tuple(policy.notify.provider)
    escalation = tuple(dict.fromkeys(provider + tuple(policy.notify.admins)))
    found = []
    for milestone in state.milestones:
        if milestone.at > now:
            break
        metric = state.metrics.get(milestone.metric)
        if metric is None:
            continue
        # A warning is worth sending only while its metric runs toward a known deadline: not once
        # met or breached, and not while paused (the deadline then depends on the customer).
        running = metric.running and not metric.breached and metric.due_at is not None and metric.due_at > now
        if milestone.kind == "warn" and running:
            context = _provider_context(
                policy, request, state, milestone.metric, metric.due_at, metric.remaining_minutes,
                threshold=f"{milestone.threshold:.0%}", cycle=str(milestone.cycle),
            )
            key = f"warning|{milestone.metric}|{milestone.cycle}|{milestone.threshold}"
            found.append(Notification(key, "warning", provider, context))
        elif milestone.kind == "breach":
            found += _breach(policy, request, state, milestone, metric, provider, escalation)
    return [n for n in found if n.recipients]


def _breach(policy, request, state, milestone, metric, provider, escalation):
    name, cycle = milestone.metric, milestone.cycle
    if name in (FIRST_RESPONSE, RESOLUTION):
        context = _provider_context(policy, request, state, name, milestone.at, metric.remaining_minutes)
        return [Notification(f"breach|{name}|{cycle}", "breach", escalation, context)]
    assert name == PROGRESS_UPDATE
    # A lapsed cycle: the alert names the missed deadline; the reminder, the update now due.
    alert = _provider_context(policy, request, state, name, milestone.at, metric.remaining_minutes, cycle=str(cycle))
    reminder = _provider_context(policy, request, state, name, metric.due_at, metric.remaining_minutes,
                                 cycle=str(cycle + 1))
    return [
        Notification(f"breach|{name}|{cycle}", "breach", escalation, alert),
        Notification(f"progress_reminder|{cycle}", "progress_reminder", provider, reminder),
    ]
