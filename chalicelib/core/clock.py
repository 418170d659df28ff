"""The SLA clock: a pure function of (policy, request, events, now).

`replay` walks a request's event timeline, enforcing the lifecycle (an impossible event raises
ConflictError), and returns the facts the clocks need. `evaluate` turns those facts into deadlines,
met/breached flags, remaining time, accrued penalty, milestones (warnings, breaches, penalty days)
and the next instant at which any of that changes (`next_check_at`, cached for the scanner).

`freeze` turns an SlaState into JSON of bounded size and `resolved_state` reads it back: a resolved
request keeps the state it was resolved with, whatever calendar data or contract versions come later.

No AWS, no clock reads: `now` is always an argument.
"""
from bisect import bisect_right
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta

from chalicelib.core.errors import ConflictError
from chalicelib.core.events import WITHOUT_CLOCK_EFFECT
from chalicelib.core.facts import AWAITING_CUSTOMER, FIRST_RESPONSE, OPEN, PROGRESS_UPDATE, RESOLUTION, RESOLVED
from chalicelib.core.facts import EVENT_TYPES as EVENT_TYPES  # the clock's inputs, importable with it
from chalicelib.core.facts import STATUSES as STATUSES
from chalicelib.core.facts import Event as Event
from chalicelib.core.facts import RequestFacts as RequestFacts

US_PER_MINUTE = 60_000_000
DAY_US = 24 * 60 * US_PER_MINUTE


@dataclass
class Timeline:
    """Facts of a replayed timeline: what the clocks run on."""

    status: str = OPEN
    priority: str = ""
    clock_start: datetime | None = None
    first_response_at: datetime | None = None
    stopped: list = field(default_factory=list)  # [start, end|None): clocks do not run (paused, resolved)
    progress_marks: list = field(default_factory=list)  # (at, "progress"|"resolve"|"reopen") after respond
    resolved_at: datetime | None = None
    resolves: list = field(default_factory=list)  # every resolve, reopened or not
    rated_since_resolve: bool = False
    ratings: list = field(default_factory=list)  # (at, score)
    last_at: datetime | None = None

    @property
    def paused(self):
        return self.status == AWAITING_CUSTOMER


def _conflict(event, why):
    raise ConflictError(f"cannot {event.type}: {why}")


def replay(request, events):
    """Walk the timeline; raise ConflictError on the first impossible event.

    Depends on the request's facts only, never on the contract, so a contract change cannot make a
    stored timeline impossible. Every instant is taken in UTC: aware datetimes sharing a tzinfo
    compare by wall time, which is wrong in the repeated hour when daylight saving time ends.
    """
    received = _utc(request.received_at)
    timeline = Timeline(priority=request.priority, clock_start=received if request.designated else None)
    for event in events:
        _apply(timeline, event)
    return timeline


def _utc(moment):
    return moment.astimezone(UTC)


def _stop(timeline, at):
    timeline.stopped.append([at, None])


def _resume(timeline, at):
    timeline.stopped[-1][1] = at


def _apply(t, event):
    kind, at = event.type, _utc(event.at)
    if t.last_at is not None and at < t.last_at:
        _conflict(event, f"its time {event.at.isoformat()} precedes the previous event")
    if kind in WITHOUT_CLOCK_EFFECT:  # received: its effect is in the request's facts
        pass
    elif kind == "register":
        if t.clock_start is not None:
            _conflict(event, "the request is already on a designated channel")
        if t.status == RESOLVED:
            _conflict(event, "the request is resolved")
        t.clock_start = at
    elif kind == "reopen":
        if t.status != RESOLVED:
            _conflict(event, "the request is not resolved")
        t.status, t.resolved_at = OPEN, None
        _resume(t, at)
        if t.first_response_at is not None:
            t.progress_marks.append((at, "reopen"))
    elif kind == "rate":
        if t.status != RESOLVED:
            _conflict(event, "only a resolved request can be rated")
        if t.rated_since_resolve:
            _conflict(event, "the request was already rated since it was resolved")
        t.rated_since_resolve = True
        t.ratings.append((at, event.score))
    elif t.status == RESOLVED:
        _conflict(event, "the request is resolved")
    elif kind == "resolve":
        if t.status == AWAITING_CUSTOMER:
            _resume(t, at)
        if t.clock_start is not None and t.first_response_at is None:
            t.first_response_at = at  # resolving answers the customer too
        elif t.first_response_at is not None:
            t.progress_marks.append((at, "resolve"))
        t.status, t.resolved_at, t.rated_since_resolve = RESOLVED, at, False
        t.resolves.append(at)
        _stop(t, at)
    elif kind == "reprioritize":
        if event.priority == t.priority:
            _conflict(event, f"the priority is already {t.priority}")
        t.priority = event.priority
    elif t.clock_start is None:
        _conflict(event, "the request is not on a designated channel yet: post a register event first")
    elif kind == "respond":
        if t.first_response_at is not None:
            _conflict(event, "the request already has its first response")
        if t.status == AWAITING_CUSTOMER:
            _conflict(event, "the request is awaiting the customer")
        t.first_response_at = at
    elif kind == "progress":
        if t.first_response_at is None:
            _conflict(event, "the request has no first response yet")
        if t.status == AWAITING_CUSTOMER:
            _conflict(event, "the request is awaiting the customer")
        t.progress_marks.append((at, "progress"))
    elif kind == "await_customer":
        if t.status == AWAITING_CUSTOMER:
            _conflict(event, "the request is already awaiting the customer")
        t.status = AWAITING_CUSTOMER
        _stop(t, at)
    elif kind == "customer_reply":
        if t.status != AWAITING_CUSTOMER:
            _conflict(event, "the request is not awaiting the customer")
        t.status = OPEN
        _resume(t, at)
    else:  # pragma: no cover - intake rejects unknown types before replay
        raise ValueError(f"unknown event type {kind!r}")
    t.last_at = at


# --- meters: how a clock measures time (business calendar or wall clock) -----------------------
# Clocks count whole microseconds, so every target ("30s" as well as "5wd") and every sum of running
# intervals is exact; minutes appear only in what is shown (remaining_minutes).

_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(moment):
    return (moment - _EPOCH) // _ONE_US


def _from_epoch_us(microseconds):
    return _EPOCH + timedelta(microseconds=microseconds)


# Meters work on UTC epoch microseconds: a clock converts its instants once, not per interval.


class BusinessMeter:
    def __init__(self, calendar):
        self.measure, self.advance = calendar.between_epoch_us, calendar.add_epoch_us


class WallMeter:
    def measure(self, a, b):
        return b - a

    def advance(self, start, microseconds):
        return start + microseconds


WALL = WallMeter()


class RunningClock:
    """A clock that starts at `start` and stops during `stopped` intervals, measured by `meter`.
    Instants in and out are datetimes; inside, UTC epoch microseconds."""

    def __init__(self, meter, start, stopped):
        self.meter, self.start = meter, start
        self.stopped = [(a, b) for a, b in stopped if b is None or b > start]
        self._start = _epoch_us(start)
        self._stops = [(_epoch_us(a), None if b is None else _epoch_us(b)) for a, b in self.stopped]
        # Stops never overlap and come in time order (an open one last), so their ends ascend: a
        # cursor finds the first stop that still matters by bisection, not by walking every pause.
        self._ends = [b for _, b in self._stops if b is not None]

    def stopped_before(self, instant):
        """This clock without the stops that begin at or after `instant`: a metric met at `instant`
        keeps the deadline it had, whatever pause or resolution followed."""
        return RunningClock(self.meter, self.start, [(a, b) for a, b in self.stopped if a < instant])

    def _from(self, start):
        return self._start if start is None else _epoch_us(start)

    def _segments(self, cursor):
        """Running intervals from `cursor` on (epoch microseconds); the last may be open-ended (None)."""
        for index in range(bisect_right(self._ends, cursor), len(self._stops)):
            a, b = self._stops[index]
            if a > cursor:
                yield cursor, a
            if b is None:
                return
            cursor = max(cursor, b)
        yield cursor, None

    def elapsed(self, until, start=None):
        """Running time from `start` (default: the clock's) to `until`, in microseconds."""
        until, total = _epoch_us(until), 0
        for a, b in self._segments(self._from(start)):
            if a >= until:
                break
            total += self.meter.measure(a, until if b is None else min(b, until))
        return total

    def deadline(self, microseconds, start=None):
        """Earliest instant at which `microseconds` of running time have elapsed; None while stopped short."""
        remaining = microseconds
        for a, b in self._segments(self._from(start)):
            span = None if b is None else self.meter.measure(a, b)
            if span is None or remaining <= span:
                return _from_epoch_us(self.meter.advance(a, remaining))
            remaining -= span
        return None

    def deadlines(self, targets, start=None):
        """`deadline` of each of the ascending `targets`, in one walk over the running intervals;
        the list stops short where the clock does."""
        found = []
        targets = iter(targets)
        target = remaining = next(targets, None)
        for a, b in self._segments(self._from(start)):
            if target is None:
                break
            span = None if b is None else self.meter.measure(a, b)
            while target is not None and (span is None or remaining <= span):
                found.append(_from_epoch_us(self.meter.advance(a, remaining)))
                following = next(targets, None)
                if following is not None:
                    remaining += following - target  # still counted from `a`
                target = following
            if target is not None:
                remaining -= span
        return found


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Milestone:
    kind: str  # "warn", "breach" or "penalty_day"
    metric: str
    cycle: int  # 0 for first_response/resolution; progress cycles count from 1; penalty days from 1
    at: datetime
    threshold: float | None = None


@dataclass
class MetricState:
    due_at: datetime | None
    met_at: datetime | None
    breached: bool
    remaining_minutes: float | None  # shown in minutes; computed from exact microseconds
    misses: int | None = None  # progress_update only
    running: bool = False  # still counting toward due_at (not met, not stopped for good)
    cycle: int = 0  # progress_update: the cycle that due_at belongs to (1, 2, …); 0 for the others
    provisional: bool = False  # due_at was computed over a year whose holiday schedule is only estimated


@dataclass
class SlaState:
    status: str
    priority: str
    clock_started_at: datetime | None
    paused: bool
    metrics: dict  # metric name -> MetricState, only the metrics the contract sets
    penalty: float
    milestones: list
    next_check_at: datetime | None
    contract_version: int
    ratings: list  # (at, score)
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None  # while resolved
    resolves: list = field(default_factory=list)  # every resolve instant
    last_event_at: datetime | None = None

    @property
    def breached(self):
        return any(m.breached for m in self.metrics.values())

    @property
    def next_due_at(self):
        """The next running deadline: the earliest due_at of the metrics still counting toward one,
        breached ones included. None while paused, before the clock starts, and once all are met."""
        running = [m.due_at for m in self.metrics.values() if m.running and m.due_at is not None]
        return min(running) if running else None


def _target(policy, meter, start, duration):
    """A duration as running time from `start`, in microseconds."""
    if duration.is_working_days:
        return meter.measure(_epoch_us(start), _epoch_us(policy.calendar.add_working_days(start, duration.count)))
    return duration.microseconds


def _minutes(microseconds):
    return microseconds / US_PER_MINUTE


def _first_response_target(policy, prio, meter, start):
    target = _target(policy, meter, start, prio.first_response)
    off_hours = policy.off_hours_first_response
    if off_hours is not None and not prio.around_the_clock and policy.calendar.is_off_hours(start):
        # No business time passes between an off-hours start and next_open, so measuring the
        # off-hours allowance from next_open equals measuring it from the start.
        opens = policy.calendar.next_open(start)
        target = min(target, _target(policy, meter, opens, off_hours))
    return target


def _single_metric(clock, name, target, met_at, now, warn_at):
    """first_response or resolution: one deadline, met once."""
    if met_at is not None:
        clock = clock.stopped_before(met_at)
    due = clock.deadline(target)
    end = met_at or now
    breached = due is not None and end > due
    state = MetricState(due, met_at, breached, _minutes(target - clock.elapsed(end)), running=met_at is None)
    milestones = []
    if breached:
        milestones.append(Milestone("breach", name, 0, due))
    if met_at is None:
        milestones += _warnings(clock, name, 0, target, warn_at)
    return state, milestones


def _warnings(clock, name, cycle, target, warn_at, start=None):
    found = []
    for fraction in warn_at:
        at = clock.deadline(round(target * fraction), start)
        if at is not None:
            found.append(Milestone("warn", name, cycle, at, fraction))
    return found


def _progress_metric(clock, policy, target_of, timeline, now):
    """Progress cycles: each runs from the previous respond/progress (or the lapsed deadline)."""
    milestones, misses, cycle, last_met = [], 0, 1, None
    cycle_start, running = timeline.first_response_at, True

    def lapse_until(limit):
        nonlocal cycle_start, cycle, misses
        while True:
            due = clock.deadline(target_of(cycle_start), cycle_start)
            if due is None or due >= limit:
                return
            misses += 1
            milestones.append(Milestone("breach", PROGRESS_UPDATE, cycle, due))
            cycle_start, cycle = due, cycle + 1

    for at, mark in timeline.progress_marks:
        if running:
            lapse_until(at)
            if mark in ("progress", "resolve"):
                last_met, cycle = at, cycle + 1
                cycle_start = at
                running = mark == "progress"
        elif mark == "reopen":
            running, cycle_start, cycle = True, at, cycle + 1
    due = remaining = None
    if running:
        lapse_until(now)
        target = target_of(cycle_start)
        due = clock.deadline(target, cycle_start)
        remaining = _minutes(target - clock.elapsed(now, cycle_start))
        milestones += _warnings(clock, PROGRESS_UPDATE, cycle, target, policy.warn_at, cycle_start)
    state = MetricState(due, last_met, misses > 0, remaining, misses, running, cycle)
    return state, milestones


def _penalty_days(clock, due, resolved_at, now):
    """Started 24 h periods of wall-clock lateness (outside pauses) past `due`, and when each began.

    While unresolved, the start of the next day is included too: it is the next instant to check.
    """
    if resolved_at is not None:
        clock = clock.stopped_before(resolved_at)
    wall = RunningClock(WALL, due, clock.stopped)
    late = wall.elapsed(resolved_at or now)
    days = -(-late // DAY_US) if late > 0 else 0
    return days, wall.deadlines([k * DAY_US for k in range(days if resolved_at else days + 1)])


def evaluate(policy, request, events, now):
    """SLA state of a request at `now`. Raises ConflictError if the timeline is impossible."""
    return evaluate_replayed(policy, request, replay(request, events), now)


def evaluate_replayed(policy, request, timeline, now):
    """`evaluate` of the Timeline `replay` gave for `request`: one replay serves every policy the
    request is evaluated under (a what-if evaluates each request under two)."""
    now = _utc(now)
    prio = policy.targets(timeline.priority, request.category, request.kept)
    if prio is None:
        # A contract update may not drop a priority that open requests use (store checks it), and a
        # reopen keeps the targets it was resolved under; a request stuck without one anyway has no
        # targets rather than an error on every read.
        return _state(timeline, policy, {}, [], 0.0, now)
    meter = WALL if prio.around_the_clock else BusinessMeter(policy.calendar)
    metrics, milestones, penalty = {}, [], 0.0
    start = timeline.clock_start
    if start is None:
        for name in _metric_names(prio):
            metrics[name] = MetricState(None, None, False, None, misses=0 if name == PROGRESS_UPDATE else None)
    else:
        fr_clock = RunningClock(meter, start, timeline.stopped)
        target = _first_response_target(policy, prio, meter, start)
        fr, found = _single_metric(fr_clock, FIRST_RESPONSE, target, timeline.first_response_at, now, policy.warn_at)
        metrics[FIRST_RESPONSE] = fr
        milestones += found
        if fr.breached:
            penalty += policy.penalties.late_first_response

        if prio.progress_every is not None:
            if timeline.first_response_at is None:
                metrics[PROGRESS_UPDATE] = MetricState(None, None, False, None, misses=0)
            else:
                clock = RunningClock(meter, timeline.first_response_at, timeline.stopped)

                def target_of(cycle_start):
                    return _target(policy, meter, cycle_start, prio.progress_every)

                progress, found = _progress_metric(clock, policy, target_of, timeline, now)
                metrics[PROGRESS_UPDATE] = progress
                milestones += found
                penalty += policy.penalties.late_progress * progress.misses

        if prio.resolution is not None:
            res_start = start if policy.resolution_from == "received" else timeline.first_response_at
            if res_start is None:
                metrics[RESOLUTION] = MetricState(None, None, False, None)
            else:
                clock = RunningClock(meter, res_start, timeline.stopped)
                target = _target(policy, meter, res_start, prio.resolution)
                res, found = _single_metric(clock, RESOLUTION, target, timeline.resolved_at, now, policy.warn_at)
                metrics[RESOLUTION] = res
                milestones += found
                if res.breached:
                    days, starts = _penalty_days(clock, res.due_at, timeline.resolved_at, now)
                    penalty += policy.penalties.late_resolution_per_day * days
                    milestones += [Milestone("penalty_day", RESOLUTION, k, at) for k, at in enumerate(starts, 1)]

    _mark_provisional(policy.calendar, prio, start, metrics)
    return _state(timeline, policy, metrics, milestones, penalty, now)


def _mark_provisional(calendar, prio, start, metrics):
    """A deadline is provisional when its calendar span, clock start to deadline, touches an estimated
    year. A wall-clock (24x7) duration does not depend on holidays; working days always do."""
    durations = {FIRST_RESPONSE: prio.first_response, PROGRESS_UPDATE: prio.progress_every,
                 RESOLUTION: prio.resolution}
    for name, metric in metrics.items():
        depends = not prio.around_the_clock or durations[name].is_working_days
        if depends and metric.due_at is not None:
            metric.provisional = calendar.touches_estimated_year(start, metric.due_at)


def _state(timeline, policy, metrics, milestones, penalty, now):
    # A running deadline that is exactly `now` breaches just after it: it stays a checkpoint, or a scan
    # landing on it would leave the request with nothing left to check.
    future = [m.at for m in milestones if m.at > now] + [
        s.due_at for s in metrics.values() if s.running and s.due_at and s.due_at >= now]
    return SlaState(
        status=timeline.status,
        priority=timeline.priority,
        clock_started_at=timeline.clock_start,
        paused=timeline.paused,
        metrics=metrics,
        penalty=penalty,
        milestones=sorted(milestones, key=lambda m: m.at),
        next_check_at=min(future) if future and timeline.status != RESOLVED else None,
        contract_version=policy.version,
        ratings=list(timeline.ratings),
        first_response_at=timeline.first_response_at,
        resolved_at=timeline.resolved_at,
        resolves=list(timeline.resolves),
        last_event_at=timeline.last_at,
    )


def _metric_names(prio):
    yield FIRST_RESPONSE
    if prio.progress_every is not None:
        yield PROGRESS_UPDATE
    if prio.resolution is not None:
        yield RESOLUTION


# --- frozen outcomes -----------------------------------------------------------------------------
#
# A frozen outcome is stored on the request's item, which DynamoDB caps at 400 KB, so its size must not
# follow the request's age. What grows with age is the milestones: one progress breach per lapsed
# cycle and one penalty day per started day late (an urgent request on a 10-minute cycle lapses 144
# times a day). They are stored as runs instead: consecutive milestones of one series (kind, metric,
# warning threshold) whose cycles count up by one and whose instants lie a constant step apart are
# one [first cycle, first instant, step, count]. On a 24x7 clock a run breaks only at a pause, so a
# year of neglect is a handful of runs; on business hours at most one run per opening of the calendar.
# Runs rather than counts or per-day totals, because the consumers need each milestone: the tally and
# the what-if put every missed cycle and penalty day on its local day (in the contract's timezone at
# tally time, the monthly cap in day order), the outbox re-checks a pending breach alert by its cycle.
# `resolved_state` expands the runs back, so every reader sees exactly the milestones it was resolved
# with. Every resolve instant and the ratings are facts of the timeline (stored beside it already):
# they are read from it, not stored twice.

# Milestones as `evaluate` lists them for one instant: ties keep this order when runs are expanded.
_SERIES_ORDER = (("breach", FIRST_RESPONSE), ("warn", FIRST_RESPONSE), ("breach", PROGRESS_UPDATE),
                 ("warn", PROGRESS_UPDATE), ("breach", RESOLUTION), ("warn", RESOLUTION),
                 ("penalty_day", RESOLUTION))
_INSTANTS = ("clock_started_at", "next_check_at", "first_response_at", "resolved_at", "last_event_at")
_FROM_THE_TIMELINE = ("ratings", "resolves")


def _instant(value):
    return value.astimezone(UTC).isoformat() if value is not None else None


def _parse_instant(value):
    return datetime.fromisoformat(value) if value is not None else None


def _series_rank(milestone):
    key = (milestone.kind, milestone.metric)
    return _SERIES_ORDER.index(key) if key in _SERIES_ORDER else len(_SERIES_ORDER)


def _milestone_runs(milestones):
    """[{"kind", "metric", "threshold", "runs": [[cycle, at, step_us, count], ...]}] of time-ordered
    `milestones`, series in _SERIES_ORDER."""
    series, runs = [], None
    for m in sorted(milestones, key=_series_rank):  # stable: each series stays in time order
        if not series or (series[-1]["kind"], series[-1]["metric"], series[-1]["threshold"]) != (
                m.kind, m.metric, m.threshold):
            series.append({"kind": m.kind, "metric": m.metric, "threshold": m.threshold, "runs": []})
            runs, last = series[-1]["runs"], None
        at = _epoch_us(m.at)
        if last is not None:
            cycle, _, step, count = runs[-1]
            if m.cycle == cycle + count and (count == 1 or at - last == step):
                runs[-1][2], runs[-1][3] = at - last, count + 1
                last = at
                continue
        runs.append([m.cycle, _instant(m.at), 0, 1])
        last = at
    return series


def _expand(series):
    """The time-ordered milestones `_milestone_runs` made `series` of."""
    found = []
    for s in series:
        for cycle, first, step, count in s["runs"]:
            start = _epoch_us(_parse_instant(first))
            found += [Milestone(s["kind"], s["metric"], cycle + n, _from_epoch_us(start + n * step), s["threshold"])
                      for n in range(count)]
    return sorted(found, key=lambda m: m.at)  # stable: a tie keeps the series order


def freeze(state):
    """An SlaState as a JSON-able dict of bounded size (instants as ISO UTC strings, milestones as
    runs, no facts of the timeline); `resolved_state` reads it back."""
    # Field by field: asdict would deep-copy every milestone first.
    doc = {f.name: getattr(state, f.name) for f in fields(state)
           if f.name not in ("metrics", "milestones") + _FROM_THE_TIMELINE}
    for key in _INSTANTS:
        doc[key] = _instant(getattr(state, key))
    doc["metrics"] = {name: {**asdict(m), "due_at": _instant(m.due_at), "met_at": _instant(m.met_at)}
                      for name, m in state.metrics.items()}
    doc["milestone_runs"] = _milestone_runs(state.milestones)
    return doc


def _stored_milestones(doc):
    if "milestone_runs" in doc:
        return _expand(doc["milestone_runs"])
    # Frozen before runs: one entry per milestone.
    return [Milestone(**{**m, "at": _parse_instant(m["at"])}) for m in doc["milestones"]]


def resolved_state(frozen, timeline):
    """A resolved request's state: the outcome frozen when it was resolved (deadlines, breaches,
    penalty, milestones), with the facts of its replayed timeline (every resolve, ratings given since,
    the last event)."""
    doc = {key: value for key, value in frozen.items()
           if key not in ("milestones", "milestone_runs") + _FROM_THE_TIMELINE}
    return SlaState(**{
        **doc,
        **{key: _parse_instant(doc[key]) for key in _INSTANTS},
        "metrics": {name: MetricState(**{**m, "due_at": _parse_instant(m["due_at"]),
                                         "met_at": _parse_instant(m["met_at"])})
                    for name, m in doc["metrics"].items()},
        "milestones": _stored_milestones(frozen),
        "ratings": list(timeline.ratings),
        "resolves": list(timeline.resolves),
        "last_event_at": timeline.last_at,
    })
