"""scan_deadlines: send what has come due, then move each request's next check.

One scan, within its time budget:
1. Re-evaluation jobs (a contract or its holiday data changed): a page at a time, each open request
   of the contract gets its cached fields from the new version, so the scan below sees it.
2. Due requests, earliest check first, read a few at a time (one BatchGetItem per half the workers,
   just ahead of their visits): each is evaluated once and gets the notifications that came due since
   its last check (one catch-up alert per metric after a gap), created in the outbox, leased to this
   scan while a send slot is left for them (so sending needs no claim of its own).
3. Sending, at the same time as 2: every retry whose time has come is ready from the start, and each
   visit adds what it created. Whenever a worker is free, the most urgent ready notification (breach
   alerts first, earlier deadlines first) gets the next send slot, paced to the SES account's maximum
   send rate (chalicelib/pacing.py), until no slot is left early enough for a send to end within the
   budget even when SES does not answer (timeouts.SES.worst). Sending starts with the first visit's
   mail: the price is that in the first moments of a burst a notification found early may go before
   a more urgent one not found yet. A retried provider alert is re-checked
   against the request's current state: one that no longer holds is recorded as superseded, never sent.
   Webhook deliveries take no SES slot; each attempt is cut at its own timeout (webhooks.TIMEOUT) and
   starts only while that and the read of its secret (WEBHOOK_SECONDS) fit in what is left of the budget.

Reads grow with the work, not the table: the sparse `due_for_check` index holds only open requests
with a next check, sorted by it; the sparse `pending` index of the outbox holds only what is still
to send. A request or notification that raises is logged at ERROR with its ids, counted in
`errors`, and skipped: every other one is still handled. What the budget leaves is the next scan's.
Each scan ends with its metrics (chalicelib.aws.metrics): lag, due, errors, duration, and per contract
the breaches it found and the notifications it sent or failed.

Threads: the due requests and the sends run on a bounded pool of WORKERS threads, so their AWS
round trips overlap. botocore clients are thread-safe; the SES client and each model's PynamoDB
client (PynamoDB keeps a botocore session per thread, the client built from it is shared) are built
before the pool starts, so no two threads build one at once. The scan's own thread hands out the
work and alone holds the ready notifications; nothing else is shared but what `_Scan` guards: each
worker reads and writes its own items. Exactly-once does not rest on the
threads: a notification is created by a conditional put and sent under a lease (taken by that put,
or by a conditional update), so workers of one scan, or two scans at once, cannot send it twice.
"""
import collections
import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import NamedTuple

from chalicelib import contracts, evaluation
from chalicelib.aws import metrics, outbox, store, timeouts, webhooks
from chalicelib.aws.store import SCAN_CONNECTIONS as CONNECTIONS
from chalicelib.aws.store import SCAN_SHARDS as DUE_SHARDS
from chalicelib.budget import Budget
from chalicelib.core import alerts
from chalicelib.core.clock import RESOLVED
from chalicelib.core.emails import PROVIDER_KINDS
from chalicelib.core.evaluation import cached_fields
from chalicelib.logs import log_event
from chalicelib.pacing import TokenBucket

SHARDS = [str(n) for n in range(DUE_SHARDS)]
SCAN_SECONDS = 55.0  # of each minute: a scan starts every minute; its function times out at 70 s
REEVALUATION_SHARE = 0.5  # of the budget, at most: due requests and retries are never starved by it
DUE_SHARE = 0.6  # of what is left after re-evaluation: sending always keeps the rest
WORKERS = CONNECTIONS  # concurrent visits / sends, each using one HTTP connection of each client
# The longest a webhook attempt can take: reading its secret (once a scan) and the POST. One starts only
# when that much of the budget is left, as an email does only when an SES call's worst case is.
WEBHOOK_SECONDS = timeouts.SSM.worst + webhooks.TIMEOUT
logger = logging.getLogger("sla_clock.scanner")


@dataclass
class ScanReport:
    due: int = 0  # requests whose next check had come and were evaluated
    reevaluated: int = 0  # open requests refreshed under a new contract version
    created: int = 0  # notifications created by this scan
    sent: int = 0
    pending: int = 0  # not sent this time, retried by a later scan
    failed: int = 0  # rejected by SES, or still failing 24 h after it was created
    superseded: int = 0  # no longer true when its turn came: recorded, not sent
    busy: int = 0  # another scanner held the lease, or already sent
    errors: int = 0  # requests or notifications that could not be handled (logged at ERROR)
    left_over: bool = False  # the budget ran out with work left for the next scan
    items_read: int = 0
    duration_ms: float = 0.0

    def __post_init__(self):
        self._lock = threading.Lock()  # workers count concurrently

    def as_dict(self):
        return asdict(self)

    def count(self, outcome, n=1):
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + n)


class _Scan:
    """What one scan shares between its items: the report, contracts read once, fresh states."""

    def __init__(self, now, workers):
        self.now, self.workers, self.report = now, workers, ScanReport()
        self.contracts = {}  # contract_id -> Future of its latest policy (or of the error reading it)
        self.calendars = {}  # country -> published schedules: read by the first workers to need them
        self._contracts_lock = threading.Lock()
        self.fresh = {}  # (request_id, key) of notifications created by this scan: no re-check needed
        self.metrics = metrics.Collector()
        self.secrets = webhooks.Secrets()  # webhook secrets, read once per scan

    def latest_policy(self, contract_id):
        """Each contract is read once per scan, by the first worker to ask; others asking for it wait
        for that read, and workers on other contracts go on meanwhile."""
        with self._contracts_lock:
            policy = self.contracts.get(contract_id)
            first = policy is None
            if first:
                policy = self.contracts[contract_id] = Future()
        if first:
            self.report.count("items_read")
            try:
                policy.set_result(evaluation.policy_of(store.latest_record(contract_id), self.calendars))
            except Exception as exc:  # noqa: BLE001 - a broken contract fails its own requests only
                policy.set_exception(exc)
        return policy.result()

    def policy_for(self, request):
        """The latest version for open requests (the index holds only those), the pinned one once resolved."""
        if request.status == RESOLVED:
            self.report.count("items_read")
            return evaluation.policy_for(request)
        return self.latest_policy(request.contract_id)


def scan(now, budget=None, workers=WORKERS, pace=None):
    """One scan at `now` within `budget`; sends paced by `pace` (a TokenBucket; by default at the SES
    account's maximum send rate, read once per scan that has something to send)."""
    started = time.perf_counter()
    budget = budget or Budget(SCAN_SECONDS)
    work = _Scan(now, workers)
    lag = _lag_seconds(now, work.report)
    outbox.ses()  # the shared clients exist before any worker thread needs one
    store.connect_for_scan()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
        _reevaluate(work, budget.share(REEVALUATION_SHARE))
        _visit_and_send(pool, work, budget, pace)
    report = work.report
    report.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    level = logging.ERROR if report.failed or report.errors else logging.INFO
    log_event(logger, "scan finished", level=level, at=now.isoformat(), lag_seconds=lag, **report.as_dict())
    _emit_metrics(work, lag)
    return report


def _lag_seconds(now, report):
    """How far behind the scanner is as it starts: now - the earliest next check that has come (0 when
    none has). One key read per shard of the due index."""
    oldest = [at for at in (store.oldest_due(shard, now) for shard in SHARDS) if at is not None]
    report.count("items_read", len(oldest))
    return round(max(0.0, now.timestamp() - min(oldest)), 3) if oldest else 0.0


def _emit_metrics(work, lag):
    """The scan's numbers (every scan, zeros included: a missing lag means no scan ran) and what this
    scan counted per contract (breaches, notifications sent and failed)."""
    report, collector = work.report, work.metrics
    collector.add("ScanDue", report.due)
    collector.add("ScanErrors", report.errors)
    collector.add("ScanLagSeconds", lag, metrics.SECONDS)
    collector.add("ScanDuration", report.duration_ms, metrics.MILLISECONDS)
    collector.flush()


def _visit_and_send(pool, work, budget, pace):
    """Visit the due requests and send what is ready, at once, on the pool's workers.

    The retries whose time has come are ready from the start; each visit adds what it created. Whenever
    a worker is free, the most urgent ready notification gets the next send slot (`pace`, by default
    at the account's send rate, asked for when the first is ready), so sending starts with the first
    visit's mail and never waits for the last visit. Visits hold at most half the workers while there
    is mail to send; once their share of the budget is spent, they take a new request only while the
    ready mail leaves send slots idle, and none after the budget. Sending stops when no slot is left
    before the budget ends. A request or notification that raises is counted and
    logged; the others go on.
    """
    retries = list(outbox.pending_due(work.now, SHARDS))  # all of them, before a visit creates more
    work.report.count("items_read", len(retries))
    ready = _Ready()
    ready.extend(retries)
    due = _due_requests(work.now, work.report)
    visit_budget = budget.share(DUE_SHARE)
    visits, sends, reads = {}, {}, {}  # in flight: future -> the due key, ticket or keys it handles
    fetched = collections.deque()  # due requests read, not yet visited: (key, request)
    unsent = []  # created by this scan (under its lease), then left for the next scan
    most_visits = max(1, work.workers // 2)
    emailing = True

    def free():
        return len(visits) + len(sends) + len(reads) < work.workers

    def slots_idle():
        """Whether the mail ready now leaves send slots of this scan unused (or none is paced yet)."""
        return emailing and (pace is None or len(ready) < pace.slots_left())

    while True:
        while ready and free():
            entry, slot = ready.pop(), None
            if outbox.is_webhook(entry):  # SES's rate is not a webhook's: the budget bounds it
                if not budget.fits(WEBHOOK_SECONDS):
                    work.report.left_over = True
                    unsent.append(entry)
                    continue
            elif not emailing:
                unsent.append(entry)  # no send slot left in this scan: the next one sends it
                continue
            else:
                pace = pace or _send_slots(budget)
                slot = pace.reserve() if pace is not None else None
                if slot is None:
                    work.report.left_over, emailing = True, False
                    unsent.append(entry)
                    continue
            ticket = _Ticket(entry, slot)
            sends[pool.submit(_send, work, ticket)] = ticket
        # Past their share of the budget, visits go on only while the mail found leaves send slots
        # idle: the rest of the budget is for sending what they found.
        if (due is not None or fetched) and (budget.spent or visit_budget.spent and not slots_idle()):
            work.report.left_over, due = True, None  # still due: the next scan visits them
            fetched.clear()
        while fetched and len(visits) < most_visits and free():
            # What the visit creates is leased to this scan while the ready mail leaves it a send
            # slot; beyond that it is created free, for the next scan to take as a retry.
            lease = slots_idle()
            key, item = fetched.popleft()
            visits[pool.submit(_visit, work, key.request_id, item, lease)] = key
        # The next few due requests are read in one call while these are visited: no more ahead
        # than the visits take, so what a visit sees is as fresh as a read of its own.
        if due is not None and not reads and len(fetched) < most_visits and free():
            keys = list(itertools.islice(due, most_visits))
            if keys:
                reads[pool.submit(_read_due, work, keys)] = keys
            else:
                due = None
        if not visits and not sends and not reads:
            _release(pool, work, unsent)
            return
        done, _ = wait([*visits, *sends, *reads], return_when=FIRST_COMPLETED)
        for future in done:
            if future in visits:
                ready.extend(_settle(visits.pop(future), future, work, "request") or ())
            elif future in reads:
                fetched.extend(_settle(reads.pop(future), future, work, "batch of due requests") or ())
            else:
                _settle(sends.pop(future), future, work, "notification")


def _send_slots(budget):
    """The scan's send slots, paced to the account's rate. A slot opens only while a send that takes
    as long as an SES call can (timeouts.SES.worst: SES not answering) still ends within the budget.
    None when not even asking SES for the rate would."""
    if not budget.fits(timeouts.SES.worst):
        return None
    return TokenBucket(outbox.max_send_rate(), until=budget.ending_early(timeouts.SES.worst))


def _release(pool, work, entries):
    """Give back the leases of what this scan created and left unsent, so the next scan may send it at
    once; an entry retried by another reader meanwhile keeps that reader's lease. (One that is not
    given back, as when the scan dies, waits for its lease to run out.)"""
    mine = [entry for entry in entries if (entry.request_id, entry.key) in work.fresh and entry.lease_until]
    for entry, future in [(entry, pool.submit(outbox.release, entry)) for entry in mine]:
        _settle(entry, future, work, "notification")


def _settle(item, future, work, what):
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - isolation: one bad item never stops the scan
        work.report.count("errors")
        ids = {"request_id": getattr(item, "request_id", None), "key": getattr(item, "key", None)}
        log_event(logger, f"scan could not handle a {what}", level=logging.ERROR, exc_info=exc,
                  error=f"{type(exc).__name__}: {exc}", **ids)
        return None


def _due_requests(now, report):
    """Keys of due requests from every shard, earliest next check first (each shard's query is sorted)."""
    def shard(name):
        for key in store.requests_due(name, now):
            report.count("items_read")
            yield key

    return heapq.merge(*(shard(name) for name in SHARDS), key=lambda key: key.next_check_at)


def _read_due(work, keys):
    """The due requests of `keys`, (key, request as stored now), read in one BatchGetItem. When the
    batch fails (one damaged item spoils it), each is given without its request: its visit reads it
    alone, so only the damaged one fails."""
    try:
        found = store.get_requests([key.request_id for key in keys])
    except Exception as exc:  # noqa: BLE001 - isolation: every request of the batch is still visited
        log_event(logger, "scan could not read a batch of due requests; each is read alone",
                  level=logging.WARNING, error=f"{type(exc).__name__}: {exc}")
        return [(key, None) for key in keys]
    work.report.count("items_read", len(found))
    return [(key, found[key.request_id]) for key in keys if key.request_id in found]


def _visit(work, request_id, item, lease):
    """Evaluate one due request (`item`, just read; None: read it now); create what came due since its
    last check (under this scan's lease when `lease`). Returns the new entries."""
    now, report = work.now, work.report
    if item is None:
        item = store.get_request(request_id)
        report.count("items_read")
    if item is None or item.next_check_at is None or item.next_check_at > now:
        return []  # an event or another scanner moved it meanwhile
    policy = work.latest_policy(item.contract_id)
    state = evaluation.state_of(item, policy, now)
    report.count("due")
    created = []
    for notification in alerts.due_notifications(policy, item, state, now, item.checked_until):
        email = [outbox.outbox_entry(item, notification, policy, now)] if notification.recipients else []
        for position, entry in enumerate(email + webhooks.for_alert(item, policy, notification, now)):
            if outbox.enqueue(entry, leased=lease):
                created.append(entry)
                work.fresh[(entry.request_id, entry.key)] = entry
                # A breach counts once: with its first entry (the email; the first webhook's when none).
                if notification.kind == "breach" and position == 0:
                    work.metrics.add("Breaches", contract_id=item.contract_id, Priority=state.priority,
                                     Metric=notification.metric)
    report.count("created", len(created))
    store.refresh_cache(item, cached_fields(state, checked_until=now))
    return created


class _Ready:
    """Notifications ready to send, the most urgent first: breach alerts, then reminders and customer
    mail, then warnings; within each, the earliest deadline first. Each one once (a retry found by
    two reads, or created twice, is queued once)."""

    def __init__(self):
        self._heap, self._queued, self._order = [], set(), itertools.count()

    def __len__(self):
        return len(self._heap)

    def extend(self, entries):
        never = float("inf")
        for entry in entries:
            if (entry.request_id, entry.key) not in self._queued:
                self._queued.add((entry.request_id, entry.key))
                urgency = int(entry.urgency if entry.urgency is not None else 4)
                due_at = entry.due_at if entry.due_at is not None else never
                heapq.heappush(self._heap, (urgency, due_at, next(self._order), entry))

    def pop(self):
        return heapq.heappop(self._heap)[-1]


class _Ticket(NamedTuple):
    """A notification to send and the send slot reserved for it."""
    entry: object
    slot: object

    @property
    def request_id(self):
        return self.entry.request_id

    @property
    def key(self):
        return self.entry.key


def _send(work, ticket):
    candidate, slot = ticket
    entry = work.fresh.get((candidate.request_id, candidate.key))
    retried = entry is None
    if retried:  # a retry, read by its claim and re-checked
        work.report.count("items_read")
        entry = outbox.keys_only(candidate.request_id, candidate.key)
    claimed = not retried and entry.lease_until is not None  # created under this scan's lease
    if outbox.is_webhook(entry):
        outcome = webhooks.deliver(entry, work.now, lambda e: _webhook_target(work, e, retried), work.secrets,
                                   read=retried, claimed=claimed)
    else:  # created by this scan a moment ago: sent as it was rendered
        prepare = (lambda e: _current_email(work, e)) if retried else None
        outcome = outbox.deliver(entry, work.now, prepare, slot, read=retried, claimed=claimed)
    work.report.count(outcome)
    work.metrics.delivery(entry, outcome)


def _current(work, request_id, key):
    """The provider alert `key` of a request as it reads now (and the policy it was read under), or
    None when it no longer holds."""
    item = store.get_request(request_id)
    work.report.count("items_read")
    if item is None:
        return None
    policy = work.policy_for(item)
    state = evaluation.state_of(item, policy, work.now)
    notification = alerts.current_notification(policy, item, state, key, work.now)
    return (notification, policy) if notification is not None else None


def _current_email(work, entry):
    """A retried provider alert email as it reads now, or None when it no longer holds; other mail
    as stored."""
    if entry.kind not in PROVIDER_KINDS:
        return entry.recipients, outbox.rendering(entry)
    current = _current(work, entry.request_id, entry.key)
    if current is None:
        return None
    notification, policy = current
    return notification.recipients, notification.rendered(policy.notify.language)


def _webhook_target(work, entry, retried):
    """The webhook a delivery goes to: the contract's latest version must still list it for the
    event (its secret is the one stored now), and a retried provider alert must still hold."""
    hook = webhooks.subscribed(work.latest_policy(entry.contract_id), entry)
    if hook is None:
        return None
    if retried and webhooks.event_of(entry) in PROVIDER_KINDS and _current(
            work, entry.request_id, webhooks.alert_key_of(entry)) is None:
        return None
    return hook


def _reevaluate(work, budget):
    """Drain re-evaluation jobs a page at a time while the budget lasts."""
    for job in store.pending_jobs():
        work.report.count("items_read")
        while not budget.spent:
            try:
                page, done = contracts.reevaluate_page(job, work.now)
            except Exception as exc:  # noqa: BLE001 - one contract's job never blocks another's
                work.report.count("errors")
                log_event(logger, "re-evaluation failed", level=logging.ERROR, exc_info=exc,
                          contract_id=job.subject, error=f"{type(exc).__name__}: {exc}")
                break
            work.report.count("reevaluated", page)
            work.report.count("items_read", page)
            if done:
                break
        if budget.spent:
            work.report.left_over = True
            return
