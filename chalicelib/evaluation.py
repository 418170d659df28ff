"""Evaluating stored requests, for every use case: the policy of a contract version (parsed once per
warm Lambda), which version applies to a request, its SLA state at `now`, and the fields it keeps of
that state. Reads domain values through chalicelib.aws (StoredRequest, ContractVersion), asks the core,
and hands back what the caller writes (CachedFields): the store maps records and decides nothing about
SLAs. `state_of` is the one way to evaluate a stored request."""
import json
from dataclasses import replace
from functools import lru_cache

from chalicelib.aws import store
from chalicelib.core import alerts
from chalicelib.core.evaluation import cached_fields, request_state
from chalicelib.core.facts import RESOLVED, RequestFacts
from chalicelib.core.fields import printable_document
from chalicelib.core.policy import KeptTargets, kept_on_reopen, parse_contract


@lru_cache(maxsize=256)
def _policy(contract_id, version, document_json, overrides):
    # A version stored before text was checked may hold characters a submitted one may not: it is read
    # with them replaced rather than refused, so its tenant's requests go on (and its emails can be sent).
    document = printable_document(json.loads(document_json))
    return parse_contract(document, version=version, overrides=dict(overrides))[1]


def country_of(record):
    """The holidays country of a ContractVersion (None: the contract defines every day itself)."""
    return record.document["calendar"].get("holidays")


def country_overrides(country, memo=None):
    """The published schedules of `country` as ((year, (holidays, workdays)), ...), read from the table
    now, so an override written by any process applies to the very next call. `memo` ({country: ...})
    shares one read among the policies of one API call or scan."""
    if country is None:
        return ()
    if memo is not None and country in memo:
        return memo[country]
    found = store.published_overrides(country)
    if memo is not None:
        memo[country] = found
    return found


def policy_of(record, memo=None):
    """The Policy of a ContractVersion under the country's published schedules, parsed once per warm
    Lambda for each content of both (a new override is a new key: never served stale)."""
    overrides = country_overrides(country_of(record), memo)
    return _policy(record.contract_id, record.version, json.dumps(record.document, sort_keys=True), overrides)


def policy_for(request, memo=None):
    """A resolved request keeps the contract version it was resolved under; others follow the latest."""
    if request.status == RESOLVED:
        record = store.contract_version(request.contract_id, request.contract_version)
        if record is not None:
            return policy_of(record, memo)
    return policy_of(store.latest_record(request.contract_id), memo)


def resolved_policy(request, cache, latest):
    """The policy a resolved request was resolved under (`cache`: version -> policy, per run)."""
    version = request.contract_version
    if version == latest.version:
        return latest
    if version not in cache:
        cache[version] = policy_for(request)
    return cache[version]


def facts_of(request):
    """The RequestFacts of a StoredRequest."""
    return RequestFacts(priority=request.priority, designated=request.designated, received_at=request.received_at,
                        category=request.category, kept=_kept_of(request))


def _kept_of(request):
    return KeptTargets.from_document(request.kept_targets) if request.kept_targets is not None else None


def keep_targets_on_reopen(request, latest):
    """Before a resolved `request` is reopened under `latest`: the request with the targets it was
    resolved under kept when `latest` no longer defines its priority or category (ConflictError when it
    has none to keep), and the fields to write with the reopen."""
    kept = kept_on_reopen(latest, policy_for(request), request.current_priority, request.category,
                          _kept_of(request))
    document = kept.as_document() if kept is not None else None
    return replace(request, kept_targets=document), {"kept_targets": document}


def state_of(request, policy, now, events=None, timeline=None):
    """A StoredRequest's SLA state at `now` (core.evaluation.request_state: a resolved one keeps its
    outcome). `events`: the timeline to use instead of the request's (one more event being posted);
    `timeline`: those events replayed already (by a caller evaluating the request under several policies)."""
    events = request.events if events is None else events
    return request_state(facts_of(request), events, request.status, request.frozen_state, policy, now, timeline)


def cache_after_write(request, policy, state, now, written_for=None):
    """The CachedFields after an API write about the moment `written_for` (None: a change of terms),
    the scanner's next look as alerts.check_after_write decides it."""
    return cached_fields(state, check_now=alerts.check_after_write(policy, request, state, now, written_for))
