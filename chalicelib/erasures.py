"""Erasing a requester's personal data (see docs/privacy.md): on request, by an admin
(POST /contracts/{id}/erasures), and by a contract's retention, in the nightly run. One code path:
`erase_request`. What is personal, and what erasing it leaves, is core.personal_data's to say; the
SLA facts stay, so every report reads the same afterwards.

A request is erased in an order that survives an interruption: first every copy (event notes, its
emails, the answer an Idempotency-Key keeps), then the request itself, under its version, which also
takes it out of the requester and retention indexes. Until that last write the request is still
found, and erasing it again finishes the work. A write to the request in between (an event) makes
that write fail: the erasure reads it again and starts over, so a notice that event created is
erased too. After the request is erased its emails are erased once more: a scan that read the
request just before may have created an alert from it.
"""
import functools
import logging
from datetime import timedelta

from chalicelib import contracts
from chalicelib.aws import outbox, store
from chalicelib.core.documents import erasure_document
from chalicelib.core.fields import (
    email_address,
    missing,
    page_limit,
    page_start,
    reject_unknown,
    require,
    require_object,
)
from chalicelib.core.personal_data import notification_erasure, requester_key, same_address
from chalicelib.logs import log_event

RETENTION_PAGE = 50  # requests one contract's retention erases a night at most; the rest on the next nights
ON_REQUEST, RETENTION = "request", "retention"
logger = logging.getLogger("sla_clock.erasures")


def erase_on_request(principal, contract_id, body, now):
    """POST /contracts/{id}/erasures {"email"} (admins): erase that requester's personal data in every
    request of the contract. Answers how many requests this call erased (0 when none, or all erased
    before) and keeps an audit record of it, without the address."""
    body = require_object(body, "body")
    reject_unknown(body, ("email",))
    require(missing(body, ("email",)))
    address = email_address(body["email"], "email")
    contracts.latest_contract_of(principal, contract_id)  # 404 for an unknown contract
    erased = 0
    for request_id in store.requests_of_requester(requester_key(contract_id, address)):
        erased += erase_request(request_id, now, contract_id, address)
    store.save_erasure(contract_id, principal.token_id, ON_REQUEST, erased, now)
    log_event(logger, "personal data erased", contract_id=contract_id, reason=ON_REQUEST, requests=erased,
              by=principal.token_id)
    return {"requests": erased}


def list_erasures(principal, contract_id, params):
    """GET /contracts/{id}/erasures (admins): the contract's erasure records, newest first."""
    params = params or {}
    reject_unknown(params, ("limit", "next"))
    limit = page_limit(params)
    start = page_start(params, store.decode_erasures_cursor, contract_id)
    contracts.latest_contract_of(principal, contract_id)
    records, last = store.erasures_page(contract_id, limit, start)
    return {"items": [erasure_document(record) for record in records], "next": store.encode_cursor(last)}


def apply_retention(contract_id, policy, now):
    """Erase the personal data of up to RETENTION_PAGE of the contract's requests resolved more than
    `retention.personal_data_days` before `now` (those erased leave the index the page is read from:
    the next night goes on with the rest). A request that cannot be erased is logged and left for the
    next night; the others are erased all the same. Returns how many were erased."""
    if policy.retention_days is None:
        return 0
    cutoff = now - timedelta(days=policy.retention_days)
    erased = failed = 0
    for request_id in store.requests_with_personal_data_closed_before(contract_id, cutoff, RETENTION_PAGE):
        try:
            erased += erase_request(request_id, now, contract_id)
        except Exception as exc:  # noqa: BLE001 - one request's failure must not keep the others
            failed += 1
            log_event(logger, "retention erasure failed", level=logging.ERROR, exc_info=True, contract_id=contract_id,
                      request_id=request_id, error=f"{type(exc).__name__}: {exc}"[:1000])
    if erased:
        store.save_erasure(contract_id, RETENTION, RETENTION, erased, now)
    if erased or failed:
        log_event(logger, "personal data erased", contract_id=contract_id, reason=RETENTION, requests=erased,
                  failed=failed, cutoff=cutoff.isoformat())
    return erased


def erase_request(request_id, now, contract_id, address=None):
    """Erase one request's personal data; True when this call erased it, False when it was erased
    before (or is not the contract's, or not `address`'s when one is given)."""

    def attempt():
        item = store.get_request(request_id)
        if item is None or item.contract_id != contract_id or item.personal_data_erased_at is not None:
            return False
        requester_address = (item.requester or {}).get("email")
        if address is not None and not same_address(requester_address, address):
            return False
        store.erase_notes(request_id)
        _erase_emails(request_id, requester_address, now)
        if item.idempotency_key is not None:
            store.forget_first_answer(item.idempotency_key, request_id)
        store.update_request_fields(item, {"subject": None, "description": None, "requester": None,
                                          "requester_key": None, "personal_contract": None,
                                          "personal_data_erased_at": now})
        _erase_emails(request_id, requester_address, now)
        return True

    return store.retrying(attempt, "the request")


def _erase_emails(request_id, address, now):
    """Erase what the request's emails hold (webhook deliveries hold no personal data: ids and times)."""
    for entry in outbox.of_request(request_id):
        if outbox.is_webhook(entry):
            continue
        changes = notification_erasure(entry, address)
        if changes is not None and not outbox.erase(entry, changes, now):
            entry = outbox.stored_entry(request_id, entry.key)  # sent meanwhile: erase what it holds now
            changes = notification_erasure(entry, address)
            if changes is not None:
                outbox.erase(entry, changes, now)


def index_stored_requests():
    """Give the requests stored before the requester and retention indexes existed their keys, so
    erasures and retention find them (once, after upgrading; running it again changes nothing).
    Returns how many were indexed."""
    return sum(store.retrying(functools.partial(_index, request_id), "the request")
               for request_id in store.requests_without_personal_keys())


def _index(request_id):
    item = store.get_request(request_id)
    if item is None or item.requester is None or item.requester_key is not None:
        return 0
    store.update_request_fields(item, {"requester_key": requester_key(item.contract_id, item.requester["email"]),
                                       "personal_contract": item.contract_id})
    return 1
