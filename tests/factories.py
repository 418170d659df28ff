"""Requests written straight to the table, cached fields and all, for tests and benchmarks that need
hundreds or thousands of them (moto's transactions copy whole tables, so the API path is slow there)."""
import uuid

from chalicelib import service
from chalicelib.clock import evaluate
from chalicelib.tables import RequestModel, listing_key


def request_item(policy, contract_id, priority, received_at, now, events=(), requester="zhang@customer.example"):
    """A request received at `received_at` on a designated channel, with `events` [(type, at)]
    after it, evaluated at `now`."""
    request_id = "req_" + uuid.uuid4().hex
    item = RequestModel(
        request_id, contract_id=contract_id, listed_at=listing_key(received_at, request_id),
        priority=priority, channel="portal", designated=True, subject="批量请求", description=None,
        requester={"email": requester}, received_at=received_at, created_by="factory",
        timeline=[{"seq": seq, "type": kind, "at": at.isoformat()}
                  for seq, (kind, at) in enumerate([("received", received_at), *events], start=1)],
    )
    state = evaluate(policy, service.facts_of(item), service.clock_events(item), now)
    for name, value in service.cache_fields(item, state).items():
        setattr(item, name, value)
    return item


def insert(items):
    with RequestModel.batch_write() as batch:
        for item in items:
            batch.save(item)
    return items
