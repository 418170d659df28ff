"""Use cases behind the API: load, check, call the pure core, store. `now` is always an argument."""
import hashlib
import json
import random
import re
import time
import uuid
from datetime import date, timedelta
from functools import lru_cache

from chalicelib import alerts, auth, metrics, notify, store
from chalicelib.clock import (
    RESOLVED,
    STATUSES,
    Event,
    RequestFacts,
    evaluate,
    evaluate_replayed,
    freeze,
    replay,
    resolved_state,
)
from chalicelib.documents import (
    contract_document,
    event_document,
    preview_document,
    request_document,
    token_document,
)
from chalicelib.durations import parse_duration
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.fields import instant, reject_unknown, require_object, whole_number
from chalicelib.intake import contract_id_of, parse_event, parse_new_request, parse_preview
from chalicelib.policy import parse_contract
from chalicelib.tables import OPEN_KEY, EventModel, RequestModel, listing_key, shard_of, status_key, utc_key

CONTRACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: "$" would let a trailing newline in
WRITE_ATTEMPTS = 12
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_LISTING_PAGES = 5  # pages of `limit` items one listing call reads at most
EVENTS_PAGE = 100  # the newest events a request document shows; the default page of its events
MAX_EVENTS_PAGE = 1000
# Far beyond any agreement's need, and far below DynamoDB's item size limit however the packed
# timeline compresses: past it an event is refused with 409 instead of failing in DynamoDB.
MAX_EVENTS = 20_000


def check_contract_id(contract_id, name="contract_id"):
    if not isinstance(contract_id, str) or not CONTRACT_ID.fullmatch(contract_id):
        raise ValidationError(name, "must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return contract_id


def _retrying(write, what):
    """Run a read-check-write until it stops losing races to concurrent writers (store.StaleWrite),
    with jittered exponential backoff as DynamoDB advises; give up with 409 after WRITE_ATTEMPTS."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return write()
        except store.StaleWrite:
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
    raise ConflictError(f"{what} is being changed concurrently; retry")


# --- contracts -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _policy(contract_id, version, document_json, overrides):
    return parse_contract(json.loads(document_json), version=version, overrides=dict(overrides))[1]


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


def latest_contract_of(principal, contract_id):
    """The latest version of a contract the caller may see (400 bad id, 403 another's, 404 none)."""
    check_contract_id(contract_id)
    principal.require_contract(contract_id)
    return latest_record(contract_id)


def _contract_document(principal, record, now):
    """The stored document, with the status of this year's and next year's holiday schedule."""
    calendar = policy_of(record).calendar
    year = now.astimezone(calendar.tz).year
    return contract_document(record, {str(y): calendar.year_status(y) for y in (year, year + 1)},
                             for_client=principal.is_client)


def get_contract(principal, contract_id, now):
    return _contract_document(principal, latest_contract_of(principal, contract_id), now)


def put_contract(principal, contract_id, body, now):
    """Create or replace a contract. Returns (document, created).

    Everything that can refuse the document runs before the write, so a refused one stores nothing:
    the limits of a new document, and the parse every later reader makes of the stored form. Costs
    the same however many requests are open: they are re-evaluated under the new version in the
    background (`schedule_reevaluation`), while reads evaluate with the latest version at once.
    """
    check_contract_id(contract_id)
    document, _ = parse_contract(body, admitted_at=now)
    _, policy = parse_contract(json.loads(json.dumps(document)))  # the stored form, as readers will parse it

    def write_next_version():
        previous = store.latest_contract(contract_id)
        if previous is not None:
            _refuse_dropping_what_open_requests_use(contract_id, previous, policy)
        _refuse_queues_of_other_contracts(contract_id, policy)
        version = int(previous.version) + 1 if previous else 1
        return previous, store.save_contract_version(contract_id, version, document, principal.token_id, now)

    previous, record = _retrying(write_next_version, "the contract")
    if previous is not None:
        schedule_reevaluation(contract_id, now)
    return _contract_document(principal, record, now), previous is None


# What an open request uses of its contract: the look-up that finds one, its attribute, and the way out.
_IN_USE = {
    "priorities": (store.an_open_request_with_priority, "current_priority", "has priority",
                   "reprioritize or resolve it first"),
    "categories": (store.an_open_request_in_category, "category", "is in category", "resolve it first"),
}


def _refuse_dropping_what_open_requests_use(contract_id, previous, policy):
    """A version may not drop a priority or category that open requests still use: they would lose
    their targets (or silently fall back to the priority's). Only a version that drops one pays for
    the look-up."""
    for field, (look_up, attribute, says, way_out) in _IN_USE.items():
        dropped = set(previous.document.get(field) or {}) - set(getattr(policy, field))
        stuck = look_up(contract_id, dropped) if dropped else None
        if stuck is not None:
            raise ConflictError(f"{field}: open request {stuck.request_id} {says} {getattr(stuck, attribute)!r}, "
                                f"which this version drops; {way_out}")


def _refuse_queues_of_other_contracts(contract_id, policy):
    """An Amazon Connect queue feeds one contract: its contact records could not be told apart. Only a
    version that lists queues pays for reading the other contracts."""
    if not policy.amazon_connect_queues:
        return
    for other in store.contract_ids():
        record = store.latest_contract(other) if other != contract_id else None
        listed = (record.document.get("amazon_connect") or {}).get("queue_ids") or [] if record else []
        shared = sorted(policy.amazon_connect_queues.intersection(listed))
        if shared:
            raise ConflictError(f"amazon_connect.queue_ids: queue {shared[0]} already feeds contract {other}")


def schedule_reevaluation(contract_id, now):
    """Re-evaluate the contract's open requests in the background: the scanner drains the job a page
    at a time, so warnings and alerts follow the new version within a few scans."""
    store.start_job(store.REEVALUATE, contract_id, now)


def reevaluate_page(job, now):
    """One page of a re-evaluation job: refresh each open request's cached fields under the latest
    version and make it due at once when something already came due. Returns (requests, finished)."""
    policy = policy_of(latest_record(job.subject))
    items, next_key = store.open_requests_page(job.subject, job.cursor)
    for item in items:
        state = state_of(item, policy, now)
        store.refresh_cache(item, _cache_after_write(item, policy, state, now))
    return len(items), store.advance_job(job, next_key)


# --- requests ------------------------------------------------------------------------------------


def facts_of(item):
    return RequestFacts(priority=item.priority, designated=item.designated, received_at=item.received_at,
                        category=item.category)


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


# A write about a moment this long ago is an import of history (a backdated request or event).
BACKDATED = timedelta(minutes=1)
# An import posts a request and then its events one call at a time: the scanner looks only once the
# writes have paused this long, so it never alerts on a timeline whose respond is still on its way.
IMPORT_SETTLES = timedelta(minutes=1)


def _cache_after_write(item, policy, state, now, written_for=None):
    """Cached fields after an API write: due at once when the clock says something is due already
    (the scanner's outbox makes a second look harmless), or, when the write was about a moment in the
    past (`written_for`, an import), no sooner than IMPORT_SETTLES from now."""
    due_already = alerts.due_notifications(policy, item, state, now)
    check_now = now if due_already else None
    if written_for is not None and now - written_for > BACKDATED:
        next_check = check_now or state.next_check_at
        if next_check is not None and next_check < now + IMPORT_SETTLES:
            check_now = now + IMPORT_SETTLES
    return cache_fields(item, state, check_now=check_now)


def policy_for(item, memo=None):
    """A resolved request keeps the contract version it was resolved under; others follow the latest."""
    if item.status == RESOLVED:
        record = store.contract_version(item.contract_id, int(item.contract_version))
        if record is not None:
            return policy_of(record, memo)
    return policy_of(latest_record(item.contract_id), memo)


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


def _visible_request(principal, request_id):
    item = store.get_request(request_id) if isinstance(request_id, str) and len(request_id) <= 64 else None
    if item is None or not (principal.is_admin or principal.contract_id == item.contract_id):
        # Another contract's request answers exactly like a missing one.
        raise NotFoundError(f"no request {request_id!r}")
    return item


def _event_model(request_id, event, by, note):
    details = {k: v for k, v in (("priority", event.priority), ("score", event.score), ("channel", event.channel))
               if v is not None}
    return EventModel(request_id, event.seq, type=event.type, at=event.at, by=by, note=note, details=details or None)


def get_request(principal, request_id, now):
    item = _visible_request(principal, request_id)
    policy = policy_for(item)
    state = state_of(item, policy, now)
    return _single_document(principal, item, state, policy, _events_page(item))


def _single_document(principal, item, state, policy, events_page):
    """A request on its own: with its newest events, the cursor to older ones, and for agents and
    admins the state of its notifications (clients never see them: they name the provider's and
    admins' addresses)."""
    events, events_next = events_page
    notifications = None if principal.is_client else notify.of_request(item.request_id)
    return request_document(item, state, policy, events=events, events_next=events_next,
                            notifications=notifications)


def _events_page(item, before=None, limit=EVENTS_PAGE):
    """(events, cursor): the newest events before seq `before` (default: the newest of all), up to
    `limit`, oldest first, and the cursor to the ones before them (None when there are none)."""
    events = store.events_before(item.request_id, before, limit)
    oldest = events[0].seq if events else 1
    return events, store.events_cursor(item.request_id, oldest) if oldest > 1 else None


def list_events(principal, request_id, params):
    """GET /requests/{id}/events: a page of the request's events (newest first without `next`),
    oldest first within the page, and the cursor to the events before it."""
    params = params or {}
    reject_unknown(params, ("next", "limit"))
    limit = whole_number(params.get("limit", str(EVENTS_PAGE)), "limit", 1, MAX_EVENTS_PAGE)
    before = store.decode_events_cursor(params["next"], request_id) if "next" in params else None
    item = _visible_request(principal, request_id)
    events, events_next = _events_page(item, before, limit)
    tz = policy_for(item).calendar.tz
    return {"items": [event_document(event, tz) for event in events], "next": events_next}


def create_request(principal, body, idempotency_key, now):
    """POST /requests. Returns (status, document); honours Idempotency-Key per token for 24 h.

    The key's record commits in the request's own transaction, so a key names a committed request
    or nothing: a retry after any failure finds the request, or creates it; a failed attempt never
    locks the key. Two attempts at once both build the request, one commits, and the other answers
    with it.
    """
    if idempotency_key is None:
        return 201, _create_request(principal, body, now)
    if not 1 <= len(idempotency_key) <= 255:
        raise ValidationError("Idempotency-Key", "must be 1–255 characters")
    key = hashlib.sha256(f"{principal.token_id}\n{idempotency_key}".encode()).hexdigest()
    # The same JSON document, however it is spaced or ordered, is the same request.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fingerprint = hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def answer():
        record = store.idempotency_record(key, now)
        if record is None:
            document = _create_request(principal, body, now, idempotency=(key, fingerprint))
            store.save_first_answer(key, document)
            return 201, document
        if record.fingerprint != fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request body")
        if record.response_body is not None:
            return 201, record.response_body
        # Committed, but its creator's answer was never built: the request as it stands.
        return 201, get_request(principal, record.request_id, now)

    return _retrying(answer, "the Idempotency-Key")


def _create_request(principal, body, now, idempotency=None):
    contract_id = check_contract_id(contract_id_of(body))
    principal.require_contract(contract_id)
    record = latest_record(contract_id)
    policy = policy_of(record)
    new = parse_new_request(body, policy, principal.role, now)
    request_id = "req_" + uuid.uuid4().hex
    event = _event_model(request_id, Event(seq=1, type="received", at=new.received_at), principal.token_id, None)
    item = RequestModel(
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
        received_at=new.received_at,
        created_by=principal.token_id,
        timeline=[store.compact_event(event)],
    )
    state = evaluate(policy, facts_of(item), clock_events(item), now)
    for name, value in _cache_after_write(item, policy, state, now, written_for=new.received_at).items():
        setattr(item, name, value)
    outbox = [notify.outbox_entry(item, alerts.acknowledgement(policy, item, state), policy, now)]
    store.create_request(item, event, outbox, now, idempotency)
    metrics.emit("RequestsReceived", contract_id=contract_id, Priority=new.priority)
    notify.deliver_quietly(outbox, now)
    return _single_document(principal, item, state, policy, ([event], None))


def post_event(principal, request_id, body, now):
    """Append one event. Concurrent posts are serialized by the request's version: reload, retry."""
    require_object(body, "body")

    def append():
        item = _visible_request(principal, request_id)
        reopening = body.get("type") == "reopen"
        policy = policy_of(latest_record(item.contract_id)) if reopening else policy_for(item)
        events = clock_events(item)
        if len(events) >= MAX_EVENTS:
            raise ConflictError(f"the request has {MAX_EVENTS:,} events, the most one request keeps; open a new one")
        new = parse_event(body, policy, principal.role, now, last_at=events[-1].at)
        event = Event(seq=events[-1].seq + 1, type=new.type, at=new.at,
                      priority=new.priority, score=new.score, channel=new.channel)
        state = state_of(item, policy, now, events + [event])  # ConflictError: nothing written
        model = _event_model(item.request_id, event, principal.token_id, new.note)
        notice = alerts.customer_notice(policy, item, state, event.type, event.seq, new.note)
        outbox = [notify.outbox_entry(item, notice, policy, now)] if notice else []
        store.append_event(item, model, _cache_after_write(item, policy, state, now, written_for=new.at), outbox)
        notify.deliver_quietly(outbox, now)
        return _single_document(principal, item, state, policy, _events_page(item))

    return _retrying(append, "the request")


def preview(principal, contract_id, body, now):
    """POST /contracts/{id}/preview: the deadlines a request would get, checked like one; nothing stored."""
    policy = policy_of(latest_contract_of(principal, contract_id))
    new = parse_preview(body, policy, principal.role, now)
    facts = RequestFacts(priority=new.priority, designated=new.channel is None or policy.is_designated(new.channel),
                         received_at=new.received_at, category=new.category)
    state = evaluate(policy, facts, [Event(seq=1, type="received", at=new.received_at)], now)
    return preview_document(state, policy)


def _bool_param(params, name):
    value = params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ValidationError(name, "must be true or false")
    return value == "true"


LISTING_PARAMS = ("contract_id", "status", "breached", "priority", "category", "sort", "due_within", "limit", "next")
SORTS = ("received", "due")


def list_requests(principal, params, now):
    """GET /requests: a contract's requests, filtered, a page at a time with an opaque cursor: newest
    first, or with sort=due by the next running deadline, soonest first (the queue view)."""
    params = params or {}
    reject_unknown(params, LISTING_PARAMS)
    contract_id = params.get("contract_id") or principal.contract_id
    if contract_id is None:
        raise ValidationError("contract_id", "is required for admin tokens")
    check_contract_id(contract_id)
    principal.require_contract(contract_id)
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError("status", f"must be one of {', '.join(STATUSES)}")
    breached = _bool_param(params, "breached")
    limit = whole_number(params.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    sort = params.get("sort", "received")
    if sort not in SORTS:
        raise ValidationError("sort", f"must be one of {', '.join(SORTS)}")
    if "due_within" in params and sort != "due":
        raise ValidationError("due_within", "works with sort=due only")
    memo = {}
    latest = policy_of(latest_record(contract_id), memo)
    priority = params.get("priority")
    if priority is not None and priority not in latest.priorities:
        raise ValidationError("priority", f"must be one of the contract's priorities: {', '.join(latest.priorities)}")
    category = _category_param(latest, params.get("category"))
    due_by = now + _wall_duration(params["due_within"], "due_within") if "due_within" in params else None

    def document_of(item):
        """The item's document when it passes every filter, else None. The indexes are as of each
        request's last evaluation; the clock's answer now decides."""
        if status is not None and item.status != status:
            return None
        policy = latest if item.status != RESOLVED else policy_for(item, memo)
        state = state_of(item, policy, now)
        if breached is not None and state.breached != breached:
            return None
        if priority is not None and state.priority != priority:
            return None
        if category is not None and getattr(item, "category", None) != category:
            return None
        if due_by is not None and (state.next_due_at is None or state.next_due_at > due_by):
            return None
        return request_document(item, state, policy)

    if sort == "due":
        return _queue(contract_id, params.get("next"), limit, status, due_by, document_of)
    start = store.decode_cursor(params["next"]) if params.get("next") else None
    if start is not None and start["contract_id"]["S"] != contract_id:
        raise ValidationError("next", "belongs to another listing")

    # Each filter reads its own index (breached, else status), so a page costs about `limit` items.
    # What the index cannot narrow (breached=false, status and breached together, priority) is read
    # at most MAX_LISTING_PAGES pages per call: then `next` continues even if the page came back short.
    def read(start_key):
        return store.requests_of_contract(contract_id, start_key, page_size=limit, status=status,
                                          breached_only=breached is True)

    items, resume = _gather([("listing", read, _listing_key)], start, limit, document_of)
    return {"items": items, "next": store.encode_cursor(resume[1] if resume else None)}


def _queue(contract_id, cursor, limit, status, due_by, document_of):
    """sort=due: first the requests with a running deadline from the deadline index, soonest first,
    then (unless `due_by` keeps only those due by then) the others, newest first."""
    owner, phase, start = store.decode_queue_cursor(cursor) if cursor else (contract_id, "due", None)
    # The key must also be one of the index this listing reads: DynamoDB refuses any other with an error.
    if phase == "due" and start is not None:
        own_key = start["due_contract"]["S"] == contract_id
    elif phase == "rest" and start is not None:
        name, value = ("contract_status", status_key(contract_id, status)) if status else ("contract_id", contract_id)
        own_key = start.get(name, {}).get("S") == value
    else:
        own_key = True
    if owner != contract_id or not own_key:
        raise ValidationError("next", "belongs to another listing")

    def read_due(start_key):
        return store.requests_by_deadline(contract_id, start_key, page_size=limit, due_by=due_by)

    def read_rest(start_key):
        return store.requests_without_deadline(contract_id, start_key, page_size=limit, status=status)

    sources = [("due", read_due, _deadline_key)]
    if due_by is None:
        sources.append(("rest", read_rest, _without_deadline_key(status)))
    phases = [name for name, _, _ in sources]
    if phase not in phases:
        raise ValidationError("next", "belongs to another listing")
    items, resume = _gather(sources[phases.index(phase):], start, limit, document_of)
    return {"items": items, "next": store.encode_queue_cursor(contract_id, *resume) if resume else None}


def _gather(sources, start, limit, document_of):
    """Up to `limit` documents from `sources`, read in order a page at a time, the first from key
    `start`, at most MAX_LISTING_PAGES pages in all. sources: [(phase, read_page(start key) ->
    (items, last key), key_of(item))]; `document_of(item)` is the item's document, or None to skip it.
    Returns (documents, where the next call resumes: (phase, start key or None for the start of that
    source)), or None when every source is read to its end."""
    documents, pages = [], 0
    for position, (phase, read_page, key_of) in enumerate(sources):
        following = (sources[position + 1][0], None) if position + 1 < len(sources) else None
        while True:
            if pages == MAX_LISTING_PAGES:
                return documents, (phase, start)
            page, last = read_page(start)
            pages += 1
            for offset, item in enumerate(page):
                document = document_of(item)
                if document is None:
                    continue
                documents.append(document)
                if len(documents) == limit:
                    if offset < len(page) - 1:
                        return documents, (phase, key_of(item))
                    return documents, ((phase, last) if last else following)
            if last is None:
                break
            start = last
        start = None
    return documents, None


def _listing_key(item):
    return {name: {"S": getattr(item, name)} for name in ("request_id", "contract_id", "listed_at")}


def _deadline_key(item):
    return {"request_id": {"S": item.request_id}, "due_contract": {"S": item.due_contract},
            "next_due_at": {"N": RequestModel.next_due_at.serialize(item.next_due_at)}}


def _without_deadline_key(status):
    """The key of an item in the index requests_without_deadline reads for `status`."""
    def key_of(item):
        partition = ("contract_status", item.contract_status) if status else ("contract_id", item.contract_id)
        return {"request_id": {"S": item.request_id}, partition[0]: {"S": partition[1]},
                "listed_at": {"S": item.listed_at}}

    return key_of


def _wall_duration(value, name):
    """A wall-clock duration parameter such as 30m or 2h, as a timedelta."""
    duration = parse_duration(value, name)
    if duration.is_working_days:
        raise ValidationError(name, "must be wall-clock seconds, minutes or hours, e.g. 30m or 2h")
    return timedelta(seconds=duration.seconds)


def _category_param(policy, value):
    """The `category` filter: one of the contract's categories. A contract that defines none has no
    category to filter on."""
    if value is None:
        return None
    categories = getattr(policy, "categories", None) or {}
    if value not in categories:
        known = ", ".join(sorted(categories))
        raise ValidationError("category", f"must be one of the contract's categories: {known}" if known
                              else "the contract defines no categories")
    return value


# --- tokens --------------------------------------------------------------------------------------


MAX_TOKEN_LIFETIME = timedelta(days=3653)  # ten years: a later expiry is a typo, not a plan


def issue_token(principal, body, now):
    body = require_object(body, "body")
    reject_unknown(body, ("role", "contract_id", "expires_at"))
    role = body.get("role")
    if role not in auth.ROLES:
        raise ValidationError("role", f"must be one of {', '.join(auth.ROLES)}")
    contract_id = body.get("contract_id")
    if role == "admin":
        if contract_id is not None:
            raise ValidationError("contract_id", "admin tokens are not scoped to a contract")
    else:
        if contract_id is None:
            raise ValidationError("contract_id", f"is required for {role} tokens")
        check_contract_id(contract_id)
        latest_record(contract_id)
    expires_at = body.get("expires_at")
    if expires_at is not None:
        expires_at = instant(expires_at, "expires_at")
        if expires_at <= now:
            raise ValidationError("expires_at", "must lie in the future")
        if expires_at > now + MAX_TOKEN_LIFETIME:
            raise ValidationError("expires_at", f"must lie within {MAX_TOKEN_LIFETIME.days} days")
    record, token = auth.issue_token(role, contract_id, principal.token_id, now, expires_at)
    return token_document(record, token)


def list_tokens(params):
    """GET /tokens: the stored tokens, a page at a time; never a secret, nor its hash."""
    params = params or {}
    reject_unknown(params, ("limit", "next"))
    limit = whole_number(params.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    start = store.decode_key(params["next"], store.TOKEN_KEY) if params.get("next") else None
    records, last = auth.tokens_page(limit, start)
    return {"items": [token_document(record) for record in records], "next": store.encode_cursor(last)}
