"""Use cases of contracts: read, write a new version, preview a request's deadlines, and the
background re-evaluation of open requests after a change. `now` is always an argument."""
import json

from chalicelib import evaluation
from chalicelib.aws import store, webhooks
from chalicelib.core.clock import Event, RequestFacts, evaluate
from chalicelib.core.documents import contract_document, preview_document
from chalicelib.core.errors import ConflictError
from chalicelib.core.fields import check_contract_id
from chalicelib.core.intake import parse_preview
from chalicelib.core.policy import parse_contract


def latest_contract_of(principal, contract_id):
    """The latest version of a contract the caller may see (400 bad id, 403 another's, 404 none)."""
    check_contract_id(contract_id)
    principal.require_contract(contract_id)
    return store.latest_record(contract_id)


def _contract_document(principal, record, now):
    """The stored document, with the status of this year's and next year's holiday schedule."""
    calendar = evaluation.policy_of(record).calendar
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
    document, _ = parse_contract(body, admitted_at=now, allow_local_webhooks=webhooks.local_allowed())
    if document["webhooks"]:  # the secrets go to Parameter Store; "****" keeps the latest version's
        document = webhooks.with_stored_secrets(contract_id, document, store.latest_contract(contract_id), now)
    _, policy = parse_contract(json.loads(json.dumps(document)))  # the stored form, as readers will parse it

    def write_next_version():
        previous = store.latest_contract(contract_id)
        if previous is not None:
            _refuse_dropping_what_open_requests_use(contract_id, previous, policy)
        stale_claims = _refuse_queues_of_other_contracts(contract_id, policy)
        version = previous.version + 1 if previous else 1
        return previous, store.save_contract_version(contract_id, version, document, principal.token_id, now,
                                                     policy.amazon_connect_queues, stale_claims)

    previous, record = store.retrying(write_next_version, "the contract")
    if previous is not None:
        store.release_queues(contract_id, set(_queues_of(previous)) - policy.amazon_connect_queues)
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


def _queues_of(record):
    return (record.document.get("amazon_connect") or {}).get("queue_ids") or []


def _refuse_queues_of_other_contracts(contract_id, policy):
    """An Amazon Connect queue feeds one contract: its contact records could not be told apart. The
    queue index says which contract claims each queue (one read of the version's queues, however many
    contracts there are); the first version to claim a queue keeps it (the claim commits with the
    version, so of two PUTs at once one wins and the other reads its claim when it tries again).
    Returns {queue id: contract id} of claims a contract left behind: its latest version no longer
    lists the queue (a PUT that died between its version and the release of the queues it dropped)."""
    stale = {}
    claims = store.queue_claims(policy.amazon_connect_queues) if policy.amazon_connect_queues else {}
    for queue_id, owner in sorted(claims.items()):
        if owner == contract_id:
            continue
        record = store.latest_contract(owner)
        if record is not None and queue_id in _queues_of(record):
            raise ConflictError(f"amazon_connect.queue_ids: queue {queue_id} already feeds contract {owner}")
        stale[queue_id] = owner
    return stale


def claim_listed_queues():
    """Fill the queue index for contracts stored before it existed (run once after upgrading): claim
    each queue that a contract's latest version lists and no contract claims yet, contracts in id order
    (so of two that list one queue, which a PUT refuses today, the first keeps it). Idempotent.
    Returns {queue id: contract id} of the claims written."""
    written = {}
    for contract_id in store.contract_ids():
        record = store.latest_contract(contract_id)
        queues = set(_queues_of(record)) if record is not None else set()
        for queue_id in sorted(queues - set(store.queue_claims(queues) if queues else {})):
            if store.claim_queue(queue_id, contract_id):
                written[queue_id] = contract_id
    return written


def schedule_reevaluation(contract_id, now):
    """Re-evaluate the contract's open requests in the background: the scanner drains the job a page
    at a time, so warnings and alerts follow the new version within a few scans."""
    store.start_job(store.REEVALUATE, contract_id, now)


def reevaluate_page(job, now):
    """One page of a re-evaluation job: refresh each open request's cached fields under the latest
    version and make it due at once when something already came due. Returns (requests, finished)."""
    policy = evaluation.policy_of(store.latest_record(job.subject))
    page, next_key = store.open_requests_page(job.subject, job.cursor)
    for request in page:
        state = evaluation.state_of(request, policy, now)
        store.refresh_cache(request, evaluation.cache_after_write(request, policy, state, now))
    return len(page), store.advance_job(job, next_key)


def preview(principal, contract_id, body, now):
    """POST /contracts/{id}/preview: the deadlines a request would get, checked like one; nothing stored."""
    policy = evaluation.policy_of(latest_contract_of(principal, contract_id))
    new = parse_preview(body, policy, principal.role, now)
    facts = RequestFacts(priority=new.priority, designated=new.channel is None or policy.is_designated(new.channel),
                         received_at=new.received_at, category=new.category)
    state = evaluate(policy, facts, [Event(seq=1, type="received", at=new.received_at)], now)
    return preview_document(state, policy)
