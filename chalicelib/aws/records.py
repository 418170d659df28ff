"""Stored records <-> domain values: request items to the clock's events and from the fields cached
of their state, new requests and events to their items, published calendar overrides to data, and
the keys that resume listings. Which rules apply to these values is decided above (chalicelib.evaluation)."""
from datetime import date

from chalicelib.aws import store
from chalicelib.aws.tables import OPEN_KEY, EventModel, RequestModel, listing_key, shard_of, status_key, utc_key
from chalicelib.core.errors import NotFoundError
from chalicelib.core.events import CLOCK_DETAILS
from chalicelib.core.facts import RESOLVED, Event
from chalicelib.core.personal_data import requester_key


def published_overrides(country):
    """The published schedules of `country` as ((year, (holidays, workdays)), ...), read now."""
    return tuple(
        (int(o.year), (frozenset(map(date.fromisoformat, o.holidays)), frozenset(map(date.fromisoformat, o.workdays))))
        for o in store.calendar_overrides(country)
    )


def latest_record(contract_id):
    record = store.latest_contract(contract_id)
    if record is None:
        raise NotFoundError(f"no contract {contract_id!r}")
    return record


def clock_events(item):
    return [
        Event(seq=e["seq"], type=e["type"], at=e["at"], **{name: e[name] for name in CLOCK_DETAILS if name in e})
        for e in item.timeline
    ]


def cached_attributes(item, cached):
    """The attributes of `item` that hold `cached` (a CachedFields): listing filters and their indexes
    (status, breached, the next running deadline of the queue view), and the scanner's sparse index
    (an item leaves the index when it has nothing left to check)."""
    next_check, next_due = cached.next_check_at, cached.next_due_at
    return {
        "checked_until": cached.checked_until.timestamp() if cached.checked_until else None,
        "status": cached.status,
        "current_priority": cached.priority,
        "contract_version": cached.contract_version,
        "breached": cached.breached,
        "next_check_at": next_check.timestamp() if next_check else None,
        "due_shard": shard_of(item.request_id) if next_check else None,
        "closed_key": utc_key(cached.closed_at) if cached.status == RESOLVED else OPEN_KEY,
        "contract_status": status_key(item.contract_id, cached.status),
        "breached_contract": item.contract_id if cached.breached else None,
        "next_due_at": next_due.timestamp() if next_due else None,
        "due_contract": item.contract_id if next_due else None,
        "frozen_state": cached.frozen_state,
    }


def event_record(request_id, event, by, note, details=None):
    """The stored form of one event of a request (its own item: who posted it, the note, and its
    `details`, an events.Details)."""
    return EventModel(request_id, event.seq, type=event.type, at=event.at, by=by, note=note,
                      details=details.stored() if details is not None else None)


def new_request_record(request_id, contract_id, new, designated, received_event, created_by):
    """The item of a new request (`new`: the parsed body, `designated`: received on a designated
    channel), its timeline holding `received_event`."""
    return RequestModel(
        request_id,
        contract_id=contract_id,
        listed_at=listing_key(new.received_at, request_id),
        priority=new.priority,
        category=new.category,
        channel=new.channel,
        designated=designated,
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
