"""How a stored request is evaluated and what it keeps of the result: a resolved request keeps the
outcome it was resolved with unless a reopen follows; any other is evaluated under its policy. The
use cases read a request's facts and events through the store, ask these, and write what they return."""
from chalicelib.core.clock import evaluate_replayed, freeze, replay, resolved_state
from chalicelib.core.facts import RESOLVED, CachedFields


def request_state(facts, events, status, frozen, policy, now, timeline=None):
    """A request's SLA state at `now`: a resolved request's (`status`) is the outcome it was resolved
    with (`frozen`, as stored), whatever calendar data or contract versions came later; any other is
    evaluated under `policy`. `timeline`: `events` replayed already (by a caller evaluating the request
    under several policies)."""
    # Frozen or not, the timeline is replayed: an impossible one raises ConflictError.
    timeline = replay(facts, events) if timeline is None else timeline
    if status == RESOLVED and frozen is not None and events[-1].type != "reopen":
        return resolved_state(frozen, timeline)  # only a reopen unfreezes
    return evaluate_replayed(policy, facts, timeline, now)


def cached_fields(state, check_now=None, checked_until=None):
    """What a request keeps of `state` (see CachedFields).

    `check_now`: an instant when notifications are due already (a backdated request, a contract
    change): the scanner then visits at once instead of at the next future milestone.
    `checked_until`: the scanner has handled every milestone up to then; None after any other write,
    so the next visit looks at all of them again (the outbox keeps that from sending anything twice).
    """
    resolved = state.status == RESOLVED
    return CachedFields(
        status=state.status,
        priority=state.priority,
        contract_version=state.contract_version,
        breached=state.breached,
        next_check_at=check_now or state.next_check_at,
        next_due_at=state.next_due_at,
        # Resolved: when it last changed (a rating after the resolve still counts on its day).
        closed_at=state.last_event_at if resolved else None,
        frozen_state=freeze(state) if resolved else None,
        checked_until=checked_until,
    )
