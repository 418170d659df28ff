"""scan_deadlines (DESIGN.md §4–5): send what has come due, then move each request's next check.

Reads grow with the work, not the table: the sparse `due_for_check` index holds only open requests
with a next check, sorted by it, so a query per shard returns exactly the due ones; the sparse
`pending` index of the outbox returns exactly the notifications to retry.
"""
import logging
import time
from dataclasses import asdict, dataclass

from chalicelib import alerts, notify, service, store
from chalicelib.clock import evaluate
from chalicelib.logs import log_event
from chalicelib.tables import DUE_SHARDS, NotificationModel

SHARDS = [str(n) for n in range(DUE_SHARDS)]
logger = logging.getLogger("sla_clock.scanner")


@dataclass
class ScanReport:
    due: int = 0  # requests whose next check had come
    created: int = 0  # notifications created by this scan
    sent: int = 0
    pending: int = 0  # not sent this time, retried by a later scan
    failed: int = 0  # gave up after notify.MAX_ATTEMPTS
    busy: int = 0  # another scanner held the lease, or already sent
    items_read: int = 0
    duration_ms: float = 0.0

    def count(self, outcome):
        setattr(self, outcome, getattr(self, outcome) + 1)


def scan(now):
    started = time.perf_counter()
    report = ScanReport()
    contracts = {}  # contract_id -> latest version, read once per scan
    calendars = {}  # country -> published schedules, read once per scan
    for shard in SHARDS:
        for key in store.requests_due(shard, now):
            report.items_read += 1
            _check(key.request_id, now, report, contracts, calendars)
    for key in notify.pending_due(now, SHARDS):
        report.items_read += 1
        entry = NotificationModel.get(key.request_id, key.key, consistent_read=True)
        report.items_read += 1
        report.count(notify.deliver(entry, now))
    report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log_event(logger, "scan finished", level=logging.ERROR if report.failed else logging.INFO,
              at=now.isoformat(), **asdict(report))
    return report


def _check(request_id, now, report, contracts, calendars):
    item = store.get_request(request_id)
    report.items_read += 1
    if item is None or item.next_check_at is None or item.next_check_at > now.timestamp():
        return  # an event or another scanner moved it meanwhile
    report.due += 1
    if item.contract_id not in contracts:
        contracts[item.contract_id] = store.latest_contract(item.contract_id)
        report.items_read += 1
    policy = service.policy_of(contracts[item.contract_id], calendars)  # the index holds open requests only
    state = evaluate(policy, service.facts_of(item), service.clock_events(item), now)
    for notification in alerts.due_notifications(policy, item, state, now):
        entry = notify.outbox_entry(item, notification, policy, now)
        if notify.enqueue(entry):
            report.created += 1
            report.count(notify.deliver(entry, now))
    store.refresh_cache(item, service.cache_fields(item.request_id, state))
