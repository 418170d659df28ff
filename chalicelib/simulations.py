"""POST /contracts/{id}/simulations: a month replayed under a candidate contract (see docs/whatif.md).

Reads the month's requests once, through the listing index, evaluates each under the terms in force
and under the candidate with the pure clock, and compares them (chalicelib.core.whatif). Nothing is
stored and nothing is sent: the candidate is checked like a PUT but never saved.
"""
import json
from dataclasses import replace

from chalicelib import contracts, evaluation
from chalicelib.aws import store, webhooks
from chalicelib.core import fields
from chalicelib.core.clock import RESOLVED, evaluate_replayed
from chalicelib.core.clock import replay as replay_timeline
from chalicelib.core.documents import iso
from chalicelib.core.errors import ValidationError
from chalicelib.core.fields import missing, reject_unknown, require, require_object
from chalicelib.core.policy import parse_contract
from chalicelib.core.tally import Evaluated, month_bounds
from chalicelib.core.whatif import Side, compare

# The most requests one call replays. Reading and evaluating 10,000 takes about 2 s of CPU on the
# bench's VM (bench/README.md); the API function's 512 MB buy about 0.3 of a vCPU, so that is 6 to 8 s
# plus DynamoDB's time, of the 29 s API Gateway allows. A busier month is narrowed with `priorities`.
MAX_REQUESTS = 10_000
CONTRACT_REQUIRED = "is required: the full contract document to replay the month under"


def simulate(principal, contract_id, body, now):
    body = require_object(body, "body")
    reject_unknown(body, ("contract", "month", "priorities"))
    record = contracts.latest_contract_of(principal, contract_id)
    require(missing(body, ("contract", "month"), null=True),
            {"contract": CONTRACT_REQUIRED, "month": fields.MONTH_REQUIRED})
    memo = {}  # one read of the country's published schedules for both policies
    latest = evaluation.policy_of(record, memo)
    tz = latest.calendar.tz
    month = fields.month(body.get("month"), "month")
    start, end = month_bounds(month, tz)
    if start > now:
        raise ValidationError("month", "must not lie in the future")
    candidate = candidate_policy(body.get("contract"), now, memo)
    priorities = _priorities(body.get("priorities"), set(latest.priorities) | set(candidate.priorities))
    at = min(now, end)  # the end of the month, or now for the running month
    items = store.requests_received_between(contract_id, start, end, priorities)
    replayed = replay(items, latest, candidate, month, at, priorities)
    return {"contract_id": contract_id, "month": f"{month[0]:04d}-{month[1]:02d}", "evaluated_at": iso(at, tz),
            "priorities": priorities, **replayed}


def replay(items, latest, candidate, month, at, priorities=None):
    """The month's stored requests (`items`, read lazily) evaluated at `at` under the terms in force
    (`latest`; resolved requests as frozen) and under `candidate`, compared. 400 past MAX_REQUESTS."""
    # Warnings change no breach and no penalty: evaluating without them is faster and gives the same numbers.
    latest, candidate = replace(latest, warn_at=()), replace(candidate, warn_at=())
    current_side, candidate_side = Side(latest, []), Side(candidate, [])
    pinned = {}
    for count, item in enumerate(items, start=1):
        if count > MAX_REQUESTS:
            raise ValidationError("month", _too_many(month, priorities))
        request_id, received_at = item.request_id, item.received_at
        facts, events = evaluation.facts_of(item), item.events
        timeline = replay_timeline(facts, events)  # one replay serves both sides
        policy = latest if item.status != RESOLVED else evaluation.resolved_policy(item, pinned, latest)
        current_side.requests.append(Evaluated(request_id, received_at, evaluation.state_of(
            item, policy, at, events, timeline), policy.penalties, facts.category))
        candidate_side.requests.append(Evaluated(request_id, received_at, evaluate_replayed(
            candidate, facts, timeline, at), candidate.penalties, facts.category))
    return {"requests": len(current_side.requests),
            **compare(month, latest.calendar.tz, current_side, candidate_side)}


def candidate_policy(document, now, memo=None):
    """The candidate's Policy under its country's published schedules, after exactly the checks a PUT
    makes; a refusal names the field inside `contract` (`contract.priorities.high.first_response`)."""
    try:
        normalized, _ = parse_contract(document, admitted_at=now, allow_local_webhooks=webhooks.local_allowed())
    except ValidationError as exc:
        raise ValidationError.several([("contract" if field == "contract" else f"contract.{field}", message)
                                       for field, message in exc.problems]) from None
    # Parsed again in its stored form with the published schedules, as every reader of a version is.
    overrides = evaluation.country_overrides(normalized["calendar"].get("holidays"), memo)
    return parse_contract(json.loads(json.dumps(normalized)), overrides=dict(overrides))[1]


def _priorities(value, known):
    """The priorities to narrow the month to (None: all): names the current or the candidate terms define."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p in known for p in value):
        raise ValidationError("priorities",
                              f"must be a non-empty list of the contracts' priorities: {', '.join(sorted(known))}")
    return sorted(set(value))


def _too_many(month, priorities):
    which = f"of priority {', '.join(priorities)} " if priorities else ""
    return (f"{month[0]:04d}-{month[1]:02d} has more than {MAX_REQUESTS:,} requests {which}to replay, the most one "
            "call evaluates; narrow it with \"priorities\", e.g. [\"high\"], and replay the priorities in turn")
