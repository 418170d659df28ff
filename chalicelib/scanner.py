"""scan_deadlines: send what has come due, then move each request's next check.

One scan takes a share of the work (chalicelib/shards.py: with K scans a minute, its group's shards
of the due and pending indexes, its contracts' re-evaluation jobs, its share of the send rate; the
whole of each by default) and, within its time budget:
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
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from chalicelib import contracts, evaluation
from chalicelib.aws import metrics, outbox, store, timeouts, webhooks
from chalicelib.aws.store import SCAN_CONNECTIONS as CONNECTIONS
from chalicelib.budget import Budget
from chalicelib.core import alerts, delivery
from chalicelib.core.clock import RESOLVED
from chalicelib.core.evaluation import cached_fields
from chalicelib.logs import log_event
from chalicelib.pacing import TokenBucket
from chalicelib.shards import WHOLE

SHARDS = WHOLE.due_shards  # every shard of the due and pending indexes
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
    shards: list = field(default_factory=list)  # the due index's shards this scan took
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

    def __init__(self, now, workers, share):
        self.now, self.workers, self.share = now, workers, share
        self.report = ScanReport(shards=share.due_shards)
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


def scan(now, budget=None, workers=WORKERS, pace=None, share=WHOLE):
    """One scan of `share` (shards.Share: by default everything) at `now` within `budget`; sends paced
    by `pace` (a TokenBucket; by default at the share's part of the SES account's maximum send rate,
    read once per scan that has something to send)."""
    started = time.perf_counter()
    budget = budget or Budget(SCAN_SECONDS)
    work = _Scan(now, workers, share)
    lag = _lag_seconds(work)
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


def _lag_seconds(work):
    """How far behind the scanner is on its shards as it starts: now - the earliest next check that has
    come (0 when none has). One key read per shard of the due index."""
    now = work.now
    oldest = [at for at in (store.oldest_due(shard, now) for shard in work.share.due_shards) if at is not None]
    work.report.count("items_read", len(oldest))
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
    retries = list(outbox.pending_due(work.now, work.share.due_shards))  # all of them, before a visit creates more
    work.report.count("items_read", len(retries))
    run = _Run(pool, work, budget, pace)
    run.ready.extend(retries)
    while run.start_what_can_start():
        run.settle_the_next_done()
    _release(pool, work, run.unsent)


_NO_SLOT = object()  # this scan does not send the notification: the next one does


class _Run:
    """The scan's work in flight on the pool, handed out by the scan's own thread alone: batch reads of
    due requests, visits of those read, sends of the ready mail (each future -> the due keys, the due
    key or the ticket it handles)."""

    def __init__(self, pool, work, budget, pace):
        self.pool, self.work, self.budget, self.pace = pool, work, budget, pace
        self.ready = _Ready()
        self.due = _due_requests(work)  # keys not read yet; None once there is nothing more to read
        self.visit_budget = budget.share(DUE_SHARE)
        self.reads, self.visits, self.sends = {}, {}, {}
        self.fetched = collections.deque()  # due requests read, not yet visited: (key, request)
        self.unsent = []  # created by this scan (under its lease), then left for the next scan
        self.most_visits = max(1, work.workers // 2)
        self.emailing = True  # until no send slot is left in this scan

    def start_what_can_start(self):
        """Hand free workers sends first, then visits, then the next read. False once nothing is in flight."""
        self._start_sends()
        self._stop_visiting_when_the_budget_says()
        self._start_visits()
        self._start_a_read()
        return bool(self.reads or self.visits or self.sends)

    def settle_the_next_done(self):
        done, _ = wait([*self.reads, *self.visits, *self.sends], return_when=FIRST_COMPLETED)
        for future in done:
            if future in self.visits:
                self.ready.extend(_settle(self.visits.pop(future), future, self.work, "request") or ())
            elif future in self.reads:
                self.fetched.extend(_settle(self.reads.pop(future), future, self.work, "batch of due requests") or ())
            else:
                _settle(self.sends.pop(future), future, self.work, "notification")

    def _free(self):
        return len(self.reads) + len(self.visits) + len(self.sends) < self.work.workers

    def _slots_idle(self):
        """Whether the mail ready now leaves send slots of this scan unused (or none is paced yet)."""
        return self.emailing and (self.pace is None or len(self.ready) < self.pace.slots_left())

    def _start_sends(self):
        while self.ready and self._free():
            entry = self.ready.pop()
            slot = self._slot_for(entry)
            if slot is _NO_SLOT:
                self.unsent.append(entry)
                continue
            ticket = _Ticket(entry, slot)
            self.sends[self.pool.submit(_send, self.work, ticket)] = ticket

    def _slot_for(self, entry):
        """The send slot reserved for `entry` (None for a webhook: SES's rate is not a webhook's, the
        budget bounds it), or _NO_SLOT when this scan has no time left to send it."""
        if outbox.is_webhook(entry):
            if self.budget.fits(WEBHOOK_SECONDS):
                return None
            self.work.report.left_over = True
            return _NO_SLOT
        if not self.emailing:
            return _NO_SLOT
        self.pace = self.pace or _send_slots(self.budget, self.work.share)
        slot = self.pace.reserve() if self.pace is not None else None
        if slot is None:
            self.work.report.left_over, self.emailing = True, False
            return _NO_SLOT
        return slot

    def _stop_visiting_when_the_budget_says(self):
        """Past their share of the budget, visits go on only while the mail found leaves send slots
        idle: the rest of the budget is for sending what they found. None goes on after the budget."""
        if self.due is None and not self.fetched:
            return
        if self.budget.spent or self.visit_budget.spent and not self._slots_idle():
            self.work.report.left_over, self.due = True, None  # still due: the next scan visits them
            self.fetched.clear()

    def _start_visits(self):
        while self.fetched and len(self.visits) < self.most_visits and self._free():
            # What the visit creates is leased to this scan while the ready mail leaves it a send
            # slot; beyond that it is created free, for the next scan to take as a retry.
            lease = self._slots_idle()
            key, item = self.fetched.popleft()
            self.visits[self.pool.submit(_visit, self.work, key.request_id, item, lease)] = key

    def _start_a_read(self):
        """The next few due requests, read in one call while these are visited: no more ahead than the
        visits take, so what a visit sees is as fresh as a read of its own."""
        if self.due is None or self.reads or len(self.fetched) >= self.most_visits or not self._free():
            return
        keys = list(itertools.islice(self.due, self.most_visits))
        if keys:
            self.reads[self.pool.submit(_read_due, self.work, keys)] = keys
        else:
            self.due = None


def _send_slots(budget, share):
    """The scan's send slots, paced to its share of the account's rate. A slot opens only while a send
    that takes as long as an SES call can (timeouts.SES.worst: SES not answering) still ends within the
    budget. None when not even asking SES for the rate would."""
    if not budget.fits(timeouts.SES.worst):
        return None
    rate = outbox.max_send_rate()
    return TokenBucket(share.send_rate(rate), until=budget.ending_early(timeouts.SES.worst), grid=share.grid(rate))


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


def _due_requests(work):
    """Keys of due requests from the scan's shards, earliest next check first (each shard's query is sorted)."""
    def shard(name):
        for key in store.requests_due(name, work.now):
            work.report.count("items_read")
            yield key

    return heapq.merge(*(shard(name) for name in work.share.due_shards), key=lambda key: key.next_check_at)


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
    if retried:  # a retry, read by its claim
        work.report.count("items_read")
        entry = outbox.keys_only(candidate.request_id, candidate.key)
    claimed = not retried and entry.lease_until is not None  # created under this scan's lease
    if outbox.is_webhook(entry):
        outcome = _send_webhook(work, entry, retried, claimed)
    else:
        outcome = _send_email(work, candidate, entry, slot, retried, claimed)
    work.report.count(outcome)
    work.metrics.delivery(entry, outcome)


def _send_email(work, candidate, entry, slot, retried, claimed):
    """Claim and send one email. One created by this scan a moment ago goes as it was rendered; a
    retried provider alert is re-checked against its request's current state (delivery.rechecked)
    and superseded when it no longer holds, else sent as it reads now (deadline, time left,
    addresses). The pending index gives a retry's kind, so the re-check is made from its index row
    before the claim; a row without the kind (written before the index carried it) is re-checked
    once its claim has read the entry."""
    now = work.now
    recheck = retried and delivery.rechecked(candidate.kind)
    current, error = _rechecked(work, candidate) if recheck else (None, None)
    if not claimed and not outbox.claim(entry, now, read=retried):
        return "busy"
    if retried and not recheck and delivery.rechecked(entry.kind):
        recheck, (current, error) = True, _rechecked(work, entry)
    if recheck and error is None and current is None:
        return outbox.superseded(entry, now)
    stored = outbox.stored_email(entry)
    try:
        attempt = delivery.email(now=now, **(stored | _as_it_reads_now(current, error)))
    except Exception as exc:  # noqa: BLE001 - a failed attempt like any other: retried, then failed, never stuck
        return outbox.unprepared(entry, delivery.attempt(stored["created_at"], stored["attempts"], now), exc, now)
    return outbox.deliver(entry, now, attempt, slot)


def _rechecked(work, entry):
    """The re-check of a retried provider alert: (what _current found, None), or (None, the exception
    it raised), which the claimed attempt records as its failure."""
    try:
        return _current(work, entry.request_id, entry.key), None
    except Exception as exc:  # noqa: BLE001 - recorded as the attempt's failure once claimed
        return None, exc


def _as_it_reads_now(current, error):
    """The recipients and rendering of a re-checked alert as it reads now (nothing for mail sent as
    stored); the re-check's error is raised here, to be recorded as the attempt's."""
    if error is not None:
        raise error
    if current is None:
        return {}
    notification, policy = current
    return {"recipients": notification.recipients, "rendered": notification.rendered(policy.notify.language)}


def _send_webhook(work, entry, retried, claimed):
    """Claim and try one webhook delivery: superseded when the contract no longer lists its webhook
    for the event, or (a retried provider alert) the alert no longer holds."""
    if not claimed and not outbox.claim(entry, work.now, read=retried):
        return "busy"
    attempt = delivery.attempt(entry.created_at, entry.attempts, work.now)
    try:
        hook = _webhook_target(work, entry, retried)
    except Exception as exc:  # noqa: BLE001 - a failed attempt like any other: retried, then failed, never stuck
        return webhooks.unprepared(entry, attempt, exc, work.now)
    return webhooks.deliver(entry, work.now, attempt, hook, work.secrets)


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


def _webhook_target(work, entry, retried):
    """The webhook a delivery goes to: the contract's latest version must still list it for the
    event (its secret is the one stored now), and a retried provider alert must still hold."""
    hook = webhooks.subscribed(work.latest_policy(entry.contract_id), entry)
    if hook is None:
        return None
    if retried and delivery.rechecked(webhooks.event_of(entry)) and _current(
            work, entry.request_id, webhooks.alert_key_of(entry)) is None:
        return None
    return hook


def _reevaluate(work, budget):
    """Drain the share's re-evaluation jobs a page at a time while the budget lasts."""
    for job in store.pending_jobs():
        work.report.count("items_read")
        if not work.share.takes_job(job.subject):
            continue
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
