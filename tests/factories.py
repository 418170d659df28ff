"""Requests written straight to the table, cached fields and all, for tests and benchmarks that need
hundreds or thousands of them (moto's transactions copy whole tables, so the API path is slow there)."""
import random
import uuid
from datetime import timedelta
from itertools import accumulate

import aws_limits

from chalicelib import evaluation
from chalicelib.aws import records
from chalicelib.aws.tables import EventModel, RequestModel, listing_key
from chalicelib.core.clock import evaluate
from chalicelib.core.evaluation import cached_fields
from chalicelib.core.facts import Event

# A long-running request: progress updates, and now and then a wait for the customer.
LONG_RUNNING = ("progress",) * 8 + ("await_customer", "customer_reply")


def request_item(policy, contract_id, priority, received_at, now, events=(), requester="zhang@customer.example"):
    """A request received at `received_at` on a designated channel, with `events` [(type, at)]
    after it, evaluated at `now`."""
    request_id = "req_" + uuid.uuid4().hex
    item = RequestModel(
        request_id, contract_id=contract_id, listed_at=listing_key(received_at, request_id),
        priority=priority, channel="portal", designated=True, subject="批量请求", description=None,
        requester={"email": requester}, received_at=received_at, created_by="factory",
        timeline=tuple(Event(seq, kind, at)
                       for seq, (kind, at) in enumerate([("received", received_at), *events], start=1)),
    )
    request = records.stored_request(item)
    state = evaluate(policy, evaluation.facts_of(request), request.events, now)
    for name, value in records.cached_attributes(request, cached_fields(state)).items():
        setattr(item, name, value)
    return item


def due_breach(policy, contract_id, deadline):
    """An urgent request (the demo contract's 30 minutes to first response, round the clock) whose first
    response breached at `deadline`, last checked after its warnings: from `deadline` on, its breach
    alert is all it has due."""
    return _checked(policy, contract_id, deadline, deadline - timedelta(minutes=1))


def due_warning(policy, contract_id, deadline):
    """An urgent request whose first response falls due at `deadline`, last checked before its 50 %
    warning: between that warning (15 minutes before `deadline`) and the 80 % one (6 minutes before),
    the 50 % warning is all it has due."""
    return _checked(policy, contract_id, deadline, deadline - timedelta(minutes=16))


def _checked(policy, contract_id, deadline, checked_at):
    """An urgent request received 30 minutes before `deadline`, as the scanner leaves it after a visit
    at `checked_at`: every milestone up to then handled."""
    item = request_item(policy, contract_id, "urgent", deadline - timedelta(minutes=30), checked_at)
    item.checked_until = checked_at.timestamp()
    return item


def item_bytes(model):
    """An item's size as DynamoDB counts it against its 400 KB limit."""
    return aws_limits.item_size(model.serialize())


def insert(items):
    with RequestModel.batch_write() as batch:
        for item in items:
            batch.save(item)
    return items


def long_request(policy, contract_id, size, last_at, every=timedelta(minutes=45)):
    """A high-priority request with `size` events at irregular times (`every` apart on average,
    microseconds and all), the last at `last_at`, never ending paused: received, respond, then
    LONG_RUNNING over and over. Written with its event records."""
    rng = random.Random(size)
    gaps = [timedelta(seconds=rng.uniform(1, 2 * every.total_seconds())) for _ in range(size - 1)]
    received_at = last_at - sum(gaps, timedelta())
    times = list(accumulate(gaps, initial=received_at))[1:]
    times[-1] = last_at  # exactly, whatever the rounding of the sum
    kinds = ["respond", *(LONG_RUNNING[n % len(LONG_RUNNING)] for n in range(size - 2))]
    if kinds[-1] == "await_customer":
        kinds[-1] = "progress"
    item = request_item(policy, contract_id, "high", received_at, last_at, list(zip(kinds, times, strict=True)))
    insert([item])
    with EventModel.batch_write() as batch:
        for event in item.timeline:
            batch.save(EventModel(item.request_id, event.seq, type=event.type, at=event.at, by="factory",
                                  note=f"note {event.seq}"))
    return item
