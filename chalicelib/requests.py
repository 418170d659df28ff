"""Use cases of requests: create, post events, read, list (newest first, or the queue view by due
time) and page a request's events. `now` is always an argument."""
import hashlib
import json
import uuid
from datetime import timedelta

from chalicelib import evaluation
from chalicelib.aws import metrics, outbox, records, store, webhooks
from chalicelib.core import alerts, delivery
from chalicelib.core.clock import RESOLVED, STATUSES, Event
from chalicelib.core.documents import event_document, notification_document, request_document
from chalicelib.core.durations import parse_duration
from chalicelib.core.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.core.events import TYPES, Details
from chalicelib.core.facts import StoredEvent
from chalicelib.core.fields import (
    check_contract_id,
    page_limit,
    page_start,
    reject_unknown,
    require_object,
    whole_number,
)
from chalicelib.core.intake import contract_id_of, parse_event, parse_new_request

MAX_LISTING_PAGES = 5  # pages of `limit` items one listing call reads at most
EVENTS_PAGE = 100  # the newest events a request document shows; the default page of its events
MAX_EVENTS_PAGE = 1000
NOTIFICATIONS_PAGE = 100  # likewise for its notifications, newest by creation time
# Far beyond any agreement's need, and far below DynamoDB's item size limit however the packed
# timeline compresses: past it an event is refused with 409 instead of failing in DynamoDB.
MAX_EVENTS = 20_000


def _visible_request(principal, request_id):
    """The StoredRequest `request_id` when the caller may see it."""
    request = store.get_request(request_id) if isinstance(request_id, str) and len(request_id) <= 64 else None
    if request is None or not (principal.is_admin or principal.contract_id == request.contract_id):
        # Another contract's request answers exactly like a missing one.
        raise NotFoundError(f"no request {request_id!r}")
    return request


def get_request(principal, request_id, now):
    request = _visible_request(principal, request_id)
    policy = evaluation.policy_for(request)
    state = evaluation.state_of(request, policy, now)
    return _single_document(principal, request, state, policy, _events_page(request))


def _single_document(principal, request, state, policy, events_page, written=()):
    """A request on its own: with its newest events, the cursor to older ones, and for agents and
    admins its newest notifications and the cursor to older ones (clients never see them: they name
    the provider's and admins' addresses). `written`: the outbox entries this call created."""
    events, events_next = events_page
    notifications, notifications_next = (None, None) if principal.is_client else \
        _notifications_page(request.request_id, written=written)
    return request_document(request, state, policy, events=events, events_next=events_next,
                            notifications=notifications, notifications_next=notifications_next)


def _notifications_page(request_id, start=None, limit=NOTIFICATIONS_PAGE, written=()):
    """(notifications, cursor): up to `limit` of a request's notifications created before the index
    key `start` (default: the newest), oldest first, and the cursor to the older ones (None when there
    are none: one more than `limit` is read to know). `written`, the entries the calling write just
    created, are the newest, shown as its send left them: the index follows the table a moment later."""
    fresh = sorted(written, key=lambda entry: (entry.created_at, entry.key), reverse=True)
    shown = {entry.key for entry in fresh}
    stored = outbox.newest_of_request(request_id, limit + 1, start)
    newest = fresh + [entry for entry in stored if entry.key not in shown]
    page = newest[:limit]
    return page[::-1], store.notifications_cursor(page[-1]) if len(newest) > limit else None


def list_notifications(principal, request_id, params):
    """GET /requests/{id}/notifications (agents and admins): a page of the request's notifications
    (the newest without `next`), oldest first within the page, and the cursor to the older ones."""
    params = params or {}
    reject_unknown(params, ("next", "limit"))
    limit = whole_number(params.get("limit", str(NOTIFICATIONS_PAGE)), "limit", 1, MAX_EVENTS_PAGE)
    start = page_start(params, store.decode_notifications_cursor, request_id)
    request = _visible_request(principal, request_id)
    notifications, notifications_next = _notifications_page(request.request_id, start, limit)
    tz = evaluation.policy_for(request).calendar.tz
    return {"items": [notification_document(entry, tz) for entry in notifications], "next": notifications_next}


def _events_page(request, before=None, limit=EVENTS_PAGE):
    """(events, cursor): the newest events before seq `before` (default: the newest of all), up to
    `limit`, oldest first, and the cursor to the ones before them (None when there are none)."""
    events = store.events_before(request.request_id, before, limit)
    oldest = events[0].seq if events else 1
    return events, store.events_cursor(request.request_id, oldest) if oldest > 1 else None


def list_events(principal, request_id, params):
    """GET /requests/{id}/events: a page of the request's events (newest first without `next`),
    oldest first within the page, and the cursor to the events before it."""
    params = params or {}
    reject_unknown(params, ("next", "limit"))
    limit = whole_number(params.get("limit", str(EVENTS_PAGE)), "limit", 1, MAX_EVENTS_PAGE)
    before = page_start(params, store.decode_events_cursor, request_id)
    request = _visible_request(principal, request_id)
    events, events_next = _events_page(request, before, limit)
    tz = evaluation.policy_for(request).calendar.tz
    erased = request.personal_data_erased_at is not None
    return {"items": [event_document(event, tz, erased) for event in events], "next": events_next}


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

    return store.retrying(answer, "the Idempotency-Key")


def _create_request(principal, body, now, idempotency=None):
    contract_id = check_contract_id(contract_id_of(body))
    principal.require_contract(contract_id)
    policy = evaluation.policy_of(store.latest_record(contract_id))
    new = parse_new_request(body, policy, principal.role, now)
    request_id = "req_" + uuid.uuid4().hex
    received = Event(seq=1, type="received", at=new.received_at)
    designated = policy.is_designated(new.channel)
    request = records.new_request(request_id, contract_id, new, designated, received, principal.token_id)
    state = evaluation.state_of(request, policy, now)
    cached = evaluation.cache_after_write(request, policy, state, now, written_for=new.received_at)
    entries = [outbox.outbox_entry(request, alerts.acknowledgement(policy, request, state, now), policy, now),
               *webhooks.entries(request, policy, TYPES["received"].webhook, "received", new.received_at, now)]
    store.create_request(request, cached, entries, now, idempotency)
    metrics.emit("RequestsReceived", contract_id=contract_id, Priority=new.priority)
    _deliver(entries, now)
    first = StoredEvent(seq=1, type="received", at=new.received_at, by=principal.token_id)
    return _single_document(principal, request, state, policy, ([first], None), written=entries)


def post_event(principal, request_id, body, now):
    """Append one event. Concurrent posts are serialized by the request's version: reload, retry."""
    require_object(body, "body")

    def append():
        request = _visible_request(principal, request_id)
        reopening = body.get("type") == "reopen"
        if reopening:
            policy = evaluation.policy_of(store.latest_record(request.contract_id))
        else:
            policy = evaluation.policy_for(request)
        events = request.events
        if len(events) >= MAX_EVENTS:
            raise ConflictError(f"the request has {MAX_EVENTS:,} events, the most one request keeps; open a new one")
        new = parse_event(body, policy, principal.role, now, last_at=events[-1].at)
        details = Details.of(new.type, new)
        event = Event(seq=events[-1].seq + 1, type=new.type, at=new.at, **details.for_clock)
        # A reopen under a version that dropped the request's priority or category keeps the targets
        # it was resolved under: it never runs without a clock, whoever reopens it.
        kept = {}
        if reopening and request.status == RESOLVED:
            request, kept = evaluation.keep_targets_on_reopen(request, policy)
        state = evaluation.state_of(request, policy, now, (*events, event))  # ConflictError: nothing written
        # Once a request's personal data is erased, no note is kept on it either.
        note = new.note if request.personal_data_erased_at is None else None
        notice = alerts.event_notice(policy, request, state, event, note, now)
        entries = [outbox.outbox_entry(request, notice, policy, now)] if notice else []
        announced = TYPES[event.type].webhook
        if announced is not None:
            entries += webhooks.entries(request, policy, announced, f"{announced}|{event.seq}", event.at, now)
        cached = evaluation.cache_after_write(request, policy, state, now, written_for=new.at)
        store.append_event(request, event, principal.token_id, note, cached, entries, fields=kept, details=details)
        _deliver(entries, now)
        return _single_document(principal, request, state, policy, _events_page(request), written=entries)

    return store.retrying(append, "the request")


def _deliver(entries, now):
    """Send what a write just created; what it recorded as skipped is counted (NotificationsSkipped,
    by reason), never sent."""
    for entry in entries:
        if entry.status == outbox.SKIPPED:
            metrics.emit("NotificationsSkipped", contract_id=entry.contract_id, Reason=entry.reason)
    outbox.deliver_quietly([(entry, delivery.email(now=now, **outbox.stored_email(entry))) for entry in entries
                            if entry.status != outbox.SKIPPED and not outbox.is_webhook(entry)], now)


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
    limit = page_limit(params)
    sort = params.get("sort", "received")
    if sort not in SORTS:
        raise ValidationError("sort", f"must be one of {', '.join(SORTS)}")
    if "due_within" in params and sort != "due":
        raise ValidationError("due_within", "works with sort=due only")
    memo = {}
    latest = evaluation.policy_of(store.latest_record(contract_id), memo)
    priority = params.get("priority")
    if priority is not None and priority not in latest.priorities:
        raise ValidationError("priority", f"must be one of the contract's priorities: {', '.join(latest.priorities)}")
    category = _category_param(latest, params.get("category"))
    due_by = now + _wall_duration(params["due_within"], "due_within") if "due_within" in params else None

    def document_of(request):
        """The request's document when it passes every filter, else None. The indexes are as of each
        request's last evaluation; the clock's answer now decides."""
        if status is not None and request.status != status:
            return None
        policy = latest if request.status != RESOLVED else evaluation.policy_for(request, memo)
        state = evaluation.state_of(request, policy, now)
        if breached is not None and state.breached != breached:
            return None
        if priority is not None and state.priority != priority:
            return None
        if category is not None and request.category != category:
            return None
        if due_by is not None and (state.next_due_at is None or state.next_due_at > due_by):
            return None
        return request_document(request, state, policy)

    if sort == "due":
        return _queue(contract_id, params, limit, status, due_by, document_of)
    start = page_start(params, store.decode_cursor, contract_id)

    # Each filter reads its own index (breached, else status), so a page costs about `limit` items.
    # What the index cannot narrow (breached=false, status and breached together, priority) is read
    # at most MAX_LISTING_PAGES pages per call: then `next` continues even if the page came back short.
    def read(start_key):
        return store.requests_of_contract(contract_id, start_key, page_size=limit, status=status,
                                          breached_only=breached is True)

    items, resume = _gather([("listing", read, records.listing_key_of)], start, limit, document_of)
    return {"items": items, "next": store.encode_cursor(resume[1] if resume else None)}


def _queue(contract_id, params, limit, status, due_by, document_of):
    """sort=due: first the requests with a running deadline from the deadline index, soonest first,
    then (unless `due_by` keeps only those due by then) the others, newest first."""
    phase, start = page_start(params, store.decode_queue_cursor, contract_id, status) or ("due", None)

    def read_due(start_key):
        return store.requests_by_deadline(contract_id, start_key, page_size=limit, due_by=due_by)

    def read_rest(start_key):
        return store.requests_without_deadline(contract_id, start_key, page_size=limit, status=status)

    sources = [("due", read_due, records.deadline_key_of)]
    if due_by is None:
        sources.append(("rest", read_rest, records.without_deadline_key_of(status)))
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
