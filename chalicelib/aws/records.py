"""Stored records <-> domain values: contract versions to Policy objects, request items to the
clock's facts and events, a state to the cached fields the indexes read, new requests and events to
their items. `state_of` is the one way to evaluate a stored request."""
import json
from datetime import date
from functools import lru_cache

from chalicelib.aws import store
from chalicelib.aws.tables import OPEN_KEY, EventModel, RequestModel, listing_key, shard_of, status_key, utc_key
from chalicelib.core import alerts
from chalicelib.core.clock import RESOLVED, Event, RequestFacts, evaluate_replayed, freeze, replay, resolved_state
from chalicelib.core.errors import NotFoundError
from chalicelib.core.fields import printable_document
from chalicelib.core.personal_data import requester_key
from chalicelib.core.policy import KeptTargets, kept_on_reopen, parse_contract


@lru_cache(maxsize=256)
def _policy(contract_id, version, document_json, overrides):
    # A version stored before text was checked may hold characters a submitted one may not: it is read
    # with them replaced rather than refused, so its tenant's requests go on (and its emails can be sent).
    document = printable_document(json.loads(document_json))
    return parse_contract(document, version=version, overrides=dict(overrides))[1]


def country_of(record):
    """The holidays country of a stored contract version (None: the contract defines every day itself)."""
    return record.document["calendar"].get("holidays")


def country_overrides(country, memo=None):
    """The published schedules of `country` as ((year, (holidays, workdays)), ...), read from the table
    now, so an override written by any process applies to the very next call. `memo` ({country: ...})
    shares one read among the policies of one API call or scan."""
    if country is None:
        return ()
    if memo is not None and country in memo:
        return memo[country]
    found = tuple(
        (int(o.year), (frozenset(map(date.fromisoformat, o.holidays)), frozenset(map(date.fromisoformat, o.workdays))))
        for o in store.calendar_overrides(country)
    )
    if memo is not None:
        memo[country] = found
    return found


def policy_of(record, memo=None):
    """The Policy of a stored contract version under the country's published schedules, parsed once
    per warm Lambda for each content of both (a new override is a new key: never served stale)."""
    overrides = country_overrides(country_of(record), memo)
    return _policy(record.contract_id, int(record.version), json.dumps(record.document, sort_keys=True), overrides)


def latest_record(contract_id):
    record = store.latest_contract(contract_id)
    if record is None:
        raise NotFoundError(f"no contract {contract_id!r}")
    return record


def facts_of(item):
    return RequestFacts(priority=item.priority, designated=item.designated, received_at=item.received_at,
                        category=item.category, kept=_kept_of(item))


def _kept_of(item):
    return KeptTargets.from_document(item.kept_targets) if item.kept_targets is not None else None


def keep_targets_on_reopen(item, latest):
    """Before a resolved `item` is reopened under `latest`: set on it the targets it was resolved under
    when `latest` no longer defines its priority or category (ConflictError when it has none to keep).
    Returns the fields to write with the reopen."""
    kept = kept_on_reopen(latest, policy_for(item), item.current_priority, item.category, _kept_of(item))
    item.kept_targets = kept.as_document() if kept is not None else None
    return {"kept_targets": item.kept_targets}


def clock_events(item):
    return [
        Event(
            seq=e["seq"], type=e["type"], at=e["at"],
            priority=e.get("priority"), score=e.get("score"), channel=e.get("channel"),
        )
        for e in item.timeline
    ]


def cache_fields(item, state, check_now=None, checked_until=None):
    """Derived fields kept on the item: listing filters and their indexes (status, breached, the next
    running deadline of the queue view), and the scanner's sparse index (an item leaves the index when
    it has nothing left to check).

    `check_now`: an instant when notifications are due already (a backdated request, a contract
    change): the scanner then visits at once instead of at the next future milestone.
    `checked_until`: the scanner has handled every milestone up to then; None after any other write,
    so the next visit looks at all of them again (the outbox keeps that from sending anything twice).
    """
    next_check = check_now or state.next_check_at
    next_due = state.next_due_at
    return {
        "checked_until": checked_until.timestamp() if checked_until else None,
        "status": state.status,
        "current_priority": state.priority,
        "contract_version": state.contract_version,
        "breached": state.breached,
        "next_check_at": next_check.timestamp() if next_check else None,
        "due_shard": shard_of(item.request_id) if next_check else None,
        # Resolved: when it last changed (a rating after the resolve still counts on its day).
        "closed_key": utc_key(state.last_event_at) if state.status == RESOLVED else OPEN_KEY,
        "contract_status": status_key(item.contract_id, state.status),
        "breached_contract": item.contract_id if state.breached else None,
        "next_due_at": next_due.timestamp() if next_due else None,
        "due_contract": item.contract_id if next_due else None,
        "frozen_state": freeze(state) if state.status == RESOLVED else None,
    }


def cache_after_write(item, policy, state, now, written_for=None):
    """Cached fields after an API write about the moment `written_for` (None: a change of terms), the
    scanner's next look as alerts.check_after_write decides it."""
    return cache_fields(item, state, check_now=alerts.check_after_write(policy, item, state, now, written_for))


def policy_for(item, memo=None):
    """A resolved request keeps the contract version it was resolved under; others follow the latest."""
    if item.status == RESOLVED:
        record = store.contract_version(item.contract_id, int(item.contract_version))
        if record is not None:
            return policy_of(record, memo)
    return policy_of(latest_record(item.contract_id), memo)


def resolved_policy(item, cache, latest):
    """The policy a resolved request was resolved under (`cache`: version -> policy, per run)."""
    version = int(item.contract_version)
    if version == latest.version:
        return latest
    if version not in cache:
        cache[version] = policy_for(item)
    return cache[version]


def state_of(item, policy, now, events=None, timeline=None):
    """A request's SLA state at `now`: a resolved request's is the outcome it was resolved with,
    whatever calendar data or contract versions came later; any other is evaluated under `policy`.
    `events`: the timeline to use instead of the item's (one more event being posted); `timeline`:
    those events replayed already (by a caller evaluating the request under several policies)."""
    events = clock_events(item) if events is None else events
    facts = facts_of(item)
    # Frozen or not, the timeline is replayed: an impossible one raises ConflictError.
    timeline = replay(facts, events) if timeline is None else timeline
    if item.status == RESOLVED and item.frozen_state is not None and events[-1].type != "reopen":
        return resolved_state(item.frozen_state, timeline)  # only a reopen unfreezes
    return evaluate_replayed(policy, facts, timeline, now)


def event_record(request_id, event, by, note):
    """The stored form of one event of a request (its own item: who posted it, and the note)."""
    details = {k: v for k, v in (("priority", event.priority), ("score", event.score), ("channel", event.channel))
               if v is not None}
    return EventModel(request_id, event.seq, type=event.type, at=event.at, by=by, note=note, details=details or None)




def new_request_record(request_id, contract_id, new, policy, received_event, created_by):
    """The item of a new request (`new`: the parsed body), its timeline holding `received_event`."""
    return RequestModel(
        request_id,
        contract_id=contract_id,
        listed_at=listing_key(new.received_at, request_id),
        priority=new.priority,
        category=new.category,
        channel=new.channel,
        designated=policy.is_designated(new.channel),
        subject=new.subject,
        description=new.description,
        requester=new.requester,
        requester_key=requester_key(contract_id, new.requester["email"]),
        personal_contract=contract_id,
        received_at=new.received_at,
        created_by=created_by,
        timeline=[store.compact_event(received_event)],
    )


def listing_key_of(item):
    """The key of a request in the listing index: a listing cursor resumes after it."""
    return {name: {"S": getattr(item, name)} for name in ("request_id", "contract_id", "listed_at")}


def deadline_key_of(item):
    """The key of a request in the deadline index: a queue cursor resumes after it."""
    return {"request_id": {"S": item.request_id}, "due_contract": {"S": item.due_contract},
            "next_due_at": {"N": RequestModel.next_due_at.serialize(item.next_due_at)}}


def without_deadline_key_of(status):
    """The key of an item in the index requests_without_deadline reads for `status`."""
    def key_of(item):
        partition = ("contract_status", item.contract_status) if status else ("contract_id", item.contract_id)
        return {"request_id": {"S": item.request_id}, partition[0]: {"S": partition[1]},
                "listed_at": {"S": item.listed_at}}

    return key_of
