"""Pacing: a scan sends no faster than SES accepts, however many workers it runs.

SES refuses mail beyond the account's maximum send rate with a throttle. The outbox retries a
throttled notification, so nothing is lost, but finding the limit by being refused costs each of
those notifications a retry delay. Instead a scan's workers share one TokenBucket: the scan reserves
a send slot for each notification, in urgency order, before handing it to a worker, and the worker
waits for its slot right before calling SES.

Slots are spaced 1/rate apart and never bunch (the bucket holds one token: no burst), so no second
holds more slots than the rate; a send may go after its slot, never before. A slot is never reserved
past the end of the scan's time budget: what has no slot is left, untouched, to the next scan. A
throttle all the same (another scan or the API sending at the same time, a lowered quota) halves the
rate for the rest of the scan.

Sharded scans (chalicelib/shards.py) send at once from several Lambdas. Each gets a share of the
account's rate on one grid: the account's slots are the instants n/rate of the wall clock, and a
scan takes only the slots whose n falls to its shard groups (n mod K). The shares never hold the
same instant, so together they send no faster than one bucket at the full rate would.
"""
import math
import threading
import time

SLOWEST = 1.0  # sends per second a throttle never pushes the rate below (unless it started lower)


class TokenBucket:
    """Send slots shared by a scan's threads. `until` (a Budget): no slot at or after its end.
    `clock` and `sleep` are injectable so tests run on a fake clock and never really sleep. `grid`
    (a Grid): slots open only at the instants of this scan's share of the account's rate."""

    def __init__(self, per_second, until=None, clock=time.monotonic, sleep=time.sleep, grid=None):
        if not per_second > 0:
            raise ValueError(f"a send rate must be positive, not {per_second!r}")
        self._interval = 1.0 / per_second
        self._until, self._clock, self._sleep, self._grid = until, clock, sleep, grid
        self._next = None  # when the next free slot opens (clock time)
        self._slowed_at = None
        self._lock = threading.Lock()  # workers and the scan's dispatcher share the slots

    @property
    def per_second(self):
        return 1.0 / self._interval

    def reserve(self):
        """The next free send slot, or None when it would open only once the budget is spent."""
        with self._lock:
            now = self._clock()
            at = now if self._next is None else max(now, self._next)
            if self._grid is not None:
                at = self._grid.first_at_or_after(at)
            if self._until is not None and at - now >= self._until.left():
                return None
            self._next = at + self._interval
            return Slot(self, at)

    def slots_left(self):
        """How many more slots open before the budget ends (unbounded without a budget)."""
        with self._lock:
            if self._until is None:
                return math.inf
            now = self._clock()
            first = now if self._next is None else max(now, self._next)
            return max(0, math.ceil((self._until.left() - (first - now)) / self._interval))

    def slow_down(self):
        """SES throttled a send: half the rate for the rest of the scan, at most once a second (the
        sends already on their way may be throttled too, and that is the same news)."""
        with self._lock:
            now = self._clock()
            if self._slowed_at is not None and now - self._slowed_at < 1.0:
                return
            self._slowed_at = now
            self._interval = min(self._interval * 2, max(self._interval, 1.0 / SLOWEST))
            self._next = max(self._next if self._next is not None else now, now + self._interval)

    def _wait_until(self, at):
        delay = at - self._clock()
        if delay > 0:
            self._sleep(delay)


class Slot:
    """One reserved send: `wait()` right before calling SES, `throttled()` when SES throttled it anyway."""

    def __init__(self, bucket, at):
        self._bucket, self.at = bucket, at

    def wait(self):
        self._bucket._wait_until(self.at)

    def throttled(self):
        self._bucket.slow_down()


class Grid:
    """The send instants of one share of an account's rate: n / `per_second` seconds after the epoch on
    the wall clock (the same in every Lambda, to the milliseconds NTP keeps it), for every n whose
    remainder mod `of` is in `groups`; shares with disjoint groups never hold the same instant. Given
    and answered on the bucket's clock, which is `offset` seconds behind the wall clock (by default
    the monotonic clock's, measured now)."""

    def __init__(self, per_second, groups, of, offset=None):
        self.per_second, self.groups, self.of = per_second, frozenset(groups), of
        self.offset = time.time() - time.monotonic() if offset is None else offset

    def first_at_or_after(self, at):
        # An instant already on the grid stays on it, whatever the float error of its round trip.
        n = math.ceil((at + self.offset) * self.per_second - 1e-3)
        while n % self.of not in self.groups:
            n += 1
        return n / self.per_second - self.offset
