"""Business calendar: working days, working hours and business-time arithmetic.

Pure library (rules in docs/clock.md): no AWS, never reads the clock.

    cal = BusinessCalendar.from_config(contract.get("calendar"), timezone="Asia/Shanghai")
    cal.add(start, minutes)  -> aware datetime, the earliest instant at which the elapsed
                                business minutes since `start` reach `minutes`
    cal.between(a, b)        -> business minutes from a to b (negative if b < a)
    cal.add_microseconds / cal.between_microseconds: the same in whole microseconds, exact (the
                                SLA clock's unit: durations in seconds stay exact)

Country data.  The days off and make-up working days of `holidays` come from python-holidays, except
for the years given in `overrides` (the officially published schedule of that country and year, which
replaces the packaged one); the contract's extra_holidays / extra_workdays win over both.  A year's
schedule is "official" when it is overridden or listed in data/official_years.json (the years whose
published schedule the pinned python-holidays carries), else "estimated" (computed by rule).

How it stays fast.  For every local year that is touched, the calendar builds once (lazily,
then caches) the sorted working periods of that year as UTC epoch microseconds plus the
cumulative business microseconds before/after each period.  A "position" is the business
time elapsed since the start of the year; `add` and `between` are a bisect into those arrays
(O(log days)) plus one step per crossed year boundary.  Integer microseconds keep every
result exact (results are whole microseconds by construction).

Local period bounds are converted to UTC with zoneinfo (fold=0).  Inside a DST gap that
mapping is not monotonic, so while building a year every period is clamped to start no
earlier than the previous period's end and to lie inside its local year; a period that
collapses is dropped.  Periods therefore stay non-empty, sorted and non-overlapping in
every timezone.

Every returned datetime is aware and expressed in cal.tz.  Beware that Python compares and
subtracts two aware datetimes sharing a tzinfo as wall-clock times (fold ignored): around a DST
fall-back, compare instants in UTC (`.astimezone(UTC)` or `.timestamp()`).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import numbers
import re
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays

from chalicelib.core.errors import ValidationError

__all__ = ["DEFAULT_CONFIG", "DEFAULT_TIMEZONE", "DAY_KINDS", "ESTIMATED", "MAX_EMPTY_YEARS", "OFFICIAL",
           "BusinessCalendar", "is_supported_country", "official_package_years", "package_schedule", "parse_date",
           "schedule_status"]

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CONFIG = {
    "holidays": "CN",
    "workdays": [1, 2, 3, 4, 5],
    "hours": [["09:00", "12:00"], ["13:00", "17:00"]],
    "extra_holidays": [],
    "extra_workdays": [],
    "date_hours": {},
}

_DEFAULTS = copy.deepcopy(DEFAULT_CONFIG)  # DEFAULT_CONFIG is exported for display; never read mutably

# A calendar without a single working period for this many consecutive years is treated as
# having no working time at all: searches raise ValueError instead of looping forever.
MAX_EMPTY_YEARS = 50

_US_PER_S = 1_000_000
_US_PER_MIN = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_AVG_YEAR_US = 31_556_952 * _US_PER_S  # 365.2425 days
_MIN_YEAR = 2  # year 1 / 9999 have no neighbouring local midnight we can represent
_MAX_YEAR = 9998

OFFICIAL, ESTIMATED = "official", "estimated"
DAY_KINDS = ("workday", "weekend", "holiday", "makeup_workday")

# ASCII digits only, matched whole (fullmatch): "\d" takes any Unicode digit and "$" a trailing newline.
_TIME_RE = re.compile(r"([0-9]{2}):([0-9]{2})")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# --------------------------------------------------------------------------- validation


def _parse_time(value, *, is_end):
    """'HH:MM' -> minutes after local midnight; '24:00' only as an end. None if invalid."""
    if not isinstance(value, str):
        return None
    m = _TIME_RE.fullmatch(value)
    if not m:
        return None
    hh, mm = int(m.group(1)), int(m.group(2))
    if mm > 59 or hh > 24 or (hh == 24 and (mm != 0 or not is_end)):
        return None
    return hh * 60 + mm


def _parse_ranges(value, path):
    """A list of ["HH:MM", "HH:MM"] ranges, ordered and non-overlapping -> tuple of minute pairs."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError(path, 'must be a list of ["HH:MM", "HH:MM"] ranges')
    out = []
    prev_end = None
    for i, rng in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise ValidationError(where, 'must be a ["HH:MM", "HH:MM"] pair')
        start = _parse_time(rng[0], is_end=False)
        end = _parse_time(rng[1], is_end=True)
        if start is None:
            raise ValidationError(where, f"start {rng[0]!r} is not a time HH:MM between 00:00 and 23:59")
        if end is None:
            raise ValidationError(where, f"end {rng[1]!r} is not a time HH:MM between 00:01 and 24:00")
        if start >= end:
            raise ValidationError(where, f"start {rng[0]} must be before end {rng[1]}")
        if prev_end is not None and start < prev_end:
            raise ValidationError(where, "ranges must be ordered and must not overlap")
        out.append((start, end))
        prev_end = end
    return tuple(out)


def parse_date(value, path):
    """A "YYYY-MM-DD" string -> date; ValidationError naming `path` otherwise."""
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(path, f"{value!r} is not a date YYYY-MM-DD")


def _parse_dates(value, path):
    if not isinstance(value, (list, tuple)):
        raise ValidationError(path, "must be a list of dates YYYY-MM-DD")
    return frozenset(parse_date(v, f"{path}[{i}]") for i, v in enumerate(value))


def _parse_workdays(value, path):
    if not isinstance(value, (list, tuple)):
        raise ValidationError(path, "must be a list of ISO weekday numbers (Monday = 1 ... Sunday = 7)")
    seen = set()
    for i, v in enumerate(value):
        where = f"{path}[{i}]"
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValidationError(where, "must be an integer ISO weekday 1..7 (Monday = 1)")
        if not 1 <= v <= 7:
            raise ValidationError(where, f"{v} is not an ISO weekday 1..7 (Monday = 1)")
        if v in seen:
            raise ValidationError(where, f"weekday {v} is listed twice")
        seen.add(v)
    return frozenset(seen)


def is_supported_country(value):
    return isinstance(value, str) and value in _holidays.list_supported_countries()


def _parse_country(value, path):
    if value is None:
        return None
    if not is_supported_country(value):
        raise ValidationError(path, f"{value!r} is not a country code supported by python-holidays (e.g. \"CN\") "
                                    "nor null")
    return value


def _parse_timezone(value):
    if value is None:
        value = DEFAULT_TIMEZONE
    if not isinstance(value, str) or not value:
        raise ValidationError("timezone", "must be an IANA timezone name such as \"Asia/Shanghai\"")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValidationError("timezone", f"unknown timezone {value!r}") from None


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=2048)
def package_schedule(code, year):
    """(public holidays, make-up working days) of `code` falling in `year` as python-holidays has
    them, as frozensets."""
    h = _holidays.country_holidays(code, years=year)
    hol = frozenset(d for d in h.keys() if d.year == year)
    makeup = frozenset(d for d in getattr(h, "weekend_workdays", ()) if d.year == year)
    return hol, makeup


def _load_official_years():
    data = json.loads((resources.files(__package__) / "data" / "official_years.json").read_text("utf-8"))
    return data["holidays_version"], {code: frozenset(years) for code, years in data["countries"].items()}


PACKAGE_DATA_VERSION, _OFFICIAL_YEARS = _load_official_years()


def official_package_years(code):
    """The years whose published schedule for `code` the pinned python-holidays carries."""
    return _OFFICIAL_YEARS.get(code, frozenset())


def schedule_status(code, year, overridden):
    """"official" when the days off of `code` in `year` are the published ones (an override, or a year
    the pinned package carries), "estimated" when python-holidays computes them by rule."""
    return OFFICIAL if overridden or year in official_package_years(code) else ESTIMATED


def _overrides_key(country, overrides):
    """Hashable, canonical form of {year: (holidays, workdays)}; none without a country."""
    if country is None or not overrides:
        return ()
    return tuple(sorted((int(year), (frozenset(hol), frozenset(work))) for year, (hol, work) in overrides.items()))


def _to_us(t):
    """Aware datetime -> UTC epoch microseconds (exact)."""
    if not isinstance(t, datetime):
        raise TypeError(f"expected an aware datetime, got {type(t).__name__}")
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t.isoformat()}: pass an aware datetime")
    try:
        return (t - _EPOCH) // _ONE_US
    except TypeError:  # a tzinfo whose utcoffset() is None: naive after all
        raise ValueError(f"naive datetime {t.isoformat()}: pass an aware datetime") from None


class _Year:
    """Working periods of one local year, in UTC epoch microseconds.

    starts/ends[i]: period i;  cum[i]/cend[i]: business us from the year start to the start/end of period i;
    pk[i]: index of the working day of period i;  wfirst/wlast[k]: first/last period of working day k
    (only days with working time count);  day_first[doy]: first period of day-of-year doy (sentinel at the end).
    """

    __slots__ = ("year", "ord0", "lo", "hi", "starts", "ends", "cum", "cend", "total", "pk", "wfirst", "wlast",
                 "day_first")

    def pos(self, u):
        """Business us from the start of the year to instant u (lo <= u < hi)."""
        i = bisect_right(self.starts, u) - 1
        if i < 0:
            return 0
        if u >= self.ends[i]:
            return self.cend[i]
        return self.cum[i] + u - self.starts[i]


# --------------------------------------------------------------------------- the calendar


class BusinessCalendar:
    """Working days and hours of a contract, in one IANA timezone. Immutable; safe to share."""

    def __init__(self, *, tz, country, workdays, hours, extra_holidays, extra_workdays, date_hours, overrides=()):
        """Use `from_config`; this takes already validated values."""
        self.tz = tz
        self._country = country
        self._overrides = dict(overrides)  # year -> (holidays, make-up workdays) replacing the package's
        self._workdays = frozenset(workdays)
        self._hours = tuple(hours)
        self._extra_holidays = frozenset(extra_holidays)
        self._extra_workdays = frozenset(extra_workdays)
        self._date_hours = dict(date_hours)
        self._years = {}
        self._hot = None
        self._estimated = {}  # year -> is its country schedule estimated

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_config(cls, config=None, timezone=DEFAULT_TIMEZONE, overrides=None):
        """Validate a contract's `calendar` object (None = all defaults) and build the calendar.

        `overrides`: {year: (holidays, workdays)}, the published schedules of the calendar's country
        (`holidays`) that replace python-holidays' data for those years; ignored without a country.
        Raises ValidationError naming the field ("calendar.hours[1]", "timezone", ...).
        Identical configurations (overrides included) share one (immutable) instance, so its per-year
        caches stay warm; different override contents never share one.
        """
        tz = _parse_timezone(timezone)
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise ValidationError("calendar", "must be an object")
        for key in config:
            if key not in _DEFAULTS:
                raise ValidationError(f"calendar.{key}", "unknown key")
        country = _parse_country(config.get("holidays", _DEFAULTS["holidays"]), "calendar.holidays")
        workdays = _parse_workdays(config.get("workdays", _DEFAULTS["workdays"]), "calendar.workdays")
        hours = _parse_ranges(config.get("hours", _DEFAULTS["hours"]), "calendar.hours")
        extra_holidays = _parse_dates(config.get("extra_holidays", []), "calendar.extra_holidays")
        extra_workdays = _parse_dates(config.get("extra_workdays", []), "calendar.extra_workdays")
        raw_date_hours = config.get("date_hours", {})
        if not isinstance(raw_date_hours, dict):
            raise ValidationError("calendar.date_hours", 'must be an object {"YYYY-MM-DD": [["HH:MM", "HH:MM"], ...]}')
        date_hours = {}
        for key, value in raw_date_hours.items():
            path = f"calendar.date_hours.{key}"
            date_hours[parse_date(key, path)] = _parse_ranges(value, path)
        return _cached_calendar(tz.key, country, workdays, hours, extra_holidays, extra_workdays,
                                tuple(sorted(date_hours.items())), _overrides_key(country, overrides))

    @property
    def workdays(self):
        """ISO weekdays that are working days unless a holiday says otherwise."""
        return self._workdays

    def __repr__(self):
        return f"<BusinessCalendar {self.tz.key} holidays={self._country} workdays={sorted(self._workdays)}>"

    # ----------------------------------------------------------------- days

    def is_working_day(self, d):
        """Is the local date `d` a working day (weekday/make-up day, not a holiday; extras win)?

        An aware datetime is also accepted and means its local date in this calendar's timezone.
        """
        if isinstance(d, datetime):
            _to_us(d)  # rejects naive datetimes
            d = d.astimezone(self.tz).date()
        if d in self._extra_workdays:
            return True
        if d in self._extra_holidays:
            return False
        if self._country is not None:
            hol, makeup = self._country_days(d.year)
            if d in hol:
                return False
            if d in makeup:
                return True
        return d.isoweekday() in self._workdays

    def day_kind(self, d):
        """"workday", "makeup_workday" (working although its weekday is not), "holiday" (a country or
        extra holiday) or "weekend" (a day off by its weekday alone), for the local date `d`."""
        if self.is_working_day(d):
            return "workday" if d.isoweekday() in self._workdays else "makeup_workday"
        if d in self._extra_holidays or (self._country is not None and d in self._country_days(d.year)[0]):
            return "holiday"
        return "weekend"

    def year_status(self, year):
        """The status of this calendar's country schedule for `year` (see `schedule_status`). A calendar
        without a country is official: the contract defines every day itself."""
        if self._country is None:
            return OFFICIAL
        return schedule_status(self._country, year, overridden=year in self._overrides)

    def touches_estimated_year(self, a, b):
        """Does the span between instants `a` and `b` touch a local year whose schedule is estimated?"""
        first, last = sorted((a.astimezone(self.tz).year, b.astimezone(self.tz).year))
        return any(self._is_estimated(y) for y in range(first, last + 1))

    def _is_estimated(self, year):
        # Asked for every deadline the clock computes; the answer never changes for this calendar.
        found = self._estimated.get(year)
        if found is None:
            found = self._estimated[year] = self.year_status(year) == ESTIMATED
        return found

    def _country_days(self, year):
        found = self._overrides.get(year)
        return found if found is not None else package_schedule(self._country, year)

    def periods(self, d):
        """Working periods of the local date `d` as aware (start, end) pairs in cal.tz; [] if none.

        An aware datetime is also accepted and means its local date in this calendar's timezone.
        """
        if isinstance(d, datetime):
            _to_us(d)
            d = d.astimezone(self.tz).date()
        Y = self._year(d.year)
        doy = d.toordinal() - Y.ord0
        return [(self._dt(Y.starts[i]), self._dt(Y.ends[i])) for i in range(Y.day_first[doy], Y.day_first[doy + 1])]

    # ----------------------------------------------------------------- instants

    def is_open(self, t):
        """Is `t` inside a working period [start, end)?"""
        u = _to_us(t)
        Y = self._year_at(u)
        i = bisect_right(Y.starts, u) - 1
        return i >= 0 and u < Y.ends[i]

    def next_open(self, t):
        """`t` itself if open, else the start of the next working period (aware, in cal.tz)."""
        u = _to_us(t)
        Y = self._year_at(u)
        i = bisect_right(Y.starts, u) - 1
        if i >= 0 and u < Y.ends[i]:
            return t.astimezone(self.tz)
        i += 1
        empty = 0
        while i >= len(Y.starts):
            Y, empty = self._next_year(Y, empty)
            i = 0
        return self._dt(Y.starts[i])

    def is_off_hours(self, t):
        """True on a non-working day, or before the first / at-or-after the end of the last period of
        the local day of `t`. A break inside the day (lunch) is not off-hours."""
        u = _to_us(t)
        d = t.astimezone(self.tz).date()
        Y = self._year(d.year)
        doy = d.toordinal() - Y.ord0
        first, stop = Y.day_first[doy], Y.day_first[doy + 1]
        return first == stop or u < Y.starts[first] or u >= Y.ends[stop - 1]

    # ----------------------------------------------------------------- arithmetic

    def add(self, start, minutes):
        """Earliest instant at which the business minutes elapsed since `start` reach `minutes` (>= 0).

        add(t, 0) == t. A deadline lands inside or at the end of a working period, never at the start
        of the next one: 10:00 + 120 min with a 12:00-13:00 break is 12:00.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, numbers.Real) or not math.isfinite(minutes):
            raise ValueError(f"minutes must be a finite number, got {minutes!r}")
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes!r}")
        return self._add(start, round(minutes * _US_PER_MIN))

    def add_microseconds(self, start, microseconds):
        """`add` with the business time given exactly, as a whole number of microseconds (>= 0): the
        clock's unit, so a "30s" or "7s" target is never a rounded fraction of a minute."""
        if isinstance(microseconds, bool) or not isinstance(microseconds, int) or microseconds < 0:
            raise ValueError(f"microseconds must be a whole number >= 0, got {microseconds!r}")
        return self._add(start, microseconds)

    def _add(self, start, delta):
        u = _to_us(start)
        return start.astimezone(self.tz) if delta == 0 else self._dt(self.add_epoch_us(u, delta))

    def add_epoch_us(self, u, delta):
        """`add_microseconds` on UTC epoch microseconds, in and out: for callers that convert their
        instants once (the SLA clock)."""
        if delta == 0:
            return u
        Y = self._hot
        if Y is None or not Y.lo <= u < Y.hi:
            Y = self._year_at(u)
        target = Y.pos(u) + delta
        empty = 0
        while target > Y.total:
            target -= Y.total
            Y, empty = self._next_year(Y, empty)
        i = bisect_left(Y.cend, target)
        return Y.starts[i] + target - Y.cum[i]

    def between(self, a, b):
        """Business minutes from `a` to `b` (negative if b < a)."""
        return self.between_microseconds(a, b) / _US_PER_MIN

    def between_microseconds(self, a, b):
        """Business time from `a` to `b` in whole microseconds (negative if b < a): exact."""
        return self.between_epoch_us(_to_us(a), _to_us(b))

    def between_epoch_us(self, ua, ub):
        """`between_microseconds` of two instants given as UTC epoch microseconds."""
        sign = 1
        if ub < ua:
            ua, ub, sign = ub, ua, -1
        Ya = self._year_at(ua)
        if ub < Ya.hi:
            return sign * (Ya.pos(ub) - Ya.pos(ua))
        Yb = self._year_at(ub)
        total = Ya.total - Ya.pos(ua) + Yb.pos(ub)
        for y in range(Ya.year + 1, Yb.year):
            total += self._year(y).total
        return sign * total

    def add_working_days(self, start, n):
        """The `<n>wd` duration: the same business-time offset into the n-th following working day,
        clamped to that day's length, as the earliest instant (09:00 Mon + 2wd = 17:00 Tue).

        The offset of a start outside working hours is 0 into the next working day. Days without any
        working time (e.g. date_hours = []) are not counted. n = 0 returns `start`.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        u = _to_us(start)
        if n == 0:
            return start.astimezone(self.tz)
        Y = self._year_at(u)
        i = bisect_right(Y.ends, u)  # first period ending after u: its day is the start's working day
        if i < len(Y.ends):
            k = Y.pk[i]
            offset = max(0, Y.pos(u) - Y.cum[Y.wfirst[k]])
        else:
            k, offset = len(Y.wfirst), 0  # next year's first working day
        if offset == 0:
            # Offset 0 into day k+n is the same business instant as the end of day k+n-1.
            Y, k = self._advance_working_days(Y, k, n - 1)
            return self._dt(Y.ends[Y.wlast[k]])
        Y, k = self._advance_working_days(Y, k, n)
        first, last = Y.wfirst[k], Y.wlast[k]
        if offset >= Y.cend[last] - Y.cum[first]:
            return self._dt(Y.ends[last])
        target = Y.cum[first] + offset
        i = bisect_left(Y.cend, target, first, last + 1)
        return self._dt(Y.starts[i] + target - Y.cum[i])

    # ----------------------------------------------------------------- limits

    @property
    def regular_day_minutes(self):
        """Business minutes of a regular working day (the `hours` ranges): the yardstick for "n working
        days' worth" of business time."""
        return sum(end - start for start, end in self._hours)

    def require_working_time(self, today, window_days=60, years_back=2, years_ahead=3):
        """Raise ValidationError, naming the field to blame, unless every `window_days` consecutive local
        dates hold some working time: from `years_back` years before `today` to `years_ahead` after it,
        and in any other year holding a day off (extra_holidays, or date_hours without hours).

        The weekly pattern (workdays x hours) must itself have working time: beyond the listed dates it
        is all there is. The years not checked have only that pattern and the country's holidays, which
        leave working time every week, so a calendar that passes never makes add/next_open search
        endlessly. Reads the per-year arrays the arithmetic builds anyway (and keeps), one pass per year.
        """
        if not self._hours:
            raise ValidationError("calendar.hours", "must give a working day some working hours: a calendar must "
                                                    f"have working time in every {window_days}-day window")
        if not self._workdays:
            raise ValidationError("calendar.workdays", "must name at least one weekday: make-up and extra working "
                                                       "days alone leave most of the years without working time")
        years = set(range(max(today.year - years_back, _MIN_YEAR), min(today.year + years_ahead, _MAX_YEAR) + 1))
        days_off = [*self._extra_holidays, *(d for d, ranges in self._date_hours.items() if not ranges)]
        years.update(d.year for d in days_off if _MIN_YEAR <= d.year <= _MAX_YEAR)
        for y in sorted(years):
            Y = self._year(y)
            if y - 1 not in years:
                idle_from = Y.ord0  # ordinal of the first date of the current run without working time
            for doy in range(len(Y.day_first) - 1):
                if Y.day_first[doy + 1] == Y.day_first[doy]:
                    continue  # no working period that day
                if Y.ord0 + doy - idle_from >= window_days:
                    self._blame_idle(date.fromordinal(idle_from), date.fromordinal(Y.ord0 + doy - 1), window_days)
                idle_from = Y.ord0 + doy + 1
            if y + 1 not in years and Y.ord0 + len(Y.day_first) - 1 - idle_from >= window_days:
                self._blame_idle(date.fromordinal(idle_from), date(y, 12, 31), window_days)

    def _blame_idle(self, first, last, window_days):
        """The field that left `first`..`last` without working time, as a ValidationError."""
        where = (f"from {first.isoformat()} to {last.isoformat()}: a calendar must have working time in every "
                 f"{window_days}-day window")
        if any(first <= d <= last for d in self._extra_holidays):
            raise ValidationError("calendar.extra_holidays", f"leave no working time {where}")
        if any(first <= d <= last and not ranges for d, ranges in self._date_hours.items()):
            raise ValidationError("calendar.date_hours", f"leave no working time {where}")
        raise ValidationError("calendar", f"has no working time {where}")

    # ----------------------------------------------------------------- internals

    def _dt(self, u):
        """UTC epoch microseconds -> aware datetime in cal.tz."""
        s, us = divmod(u, _US_PER_S)
        t = datetime.fromtimestamp(s, self.tz)
        return t.replace(microsecond=us) if us else t

    def _advance_working_days(self, Y, k, n):
        """(year, index) of the working day n working days after day k of year Y (k may be len(...))."""
        k += n
        empty = 0
        while k >= len(Y.wfirst):
            k -= len(Y.wfirst)
            Y, empty = self._next_year(Y, empty)
        return Y, k

    def _next_year(self, Y, empty):
        """The year after Y, counting consecutive years without working time (guard against endless search)."""
        empty = empty + 1 if Y.total == 0 else 0
        if empty >= MAX_EMPTY_YEARS:
            raise ValueError(f"the calendar has no working time in {MAX_EMPTY_YEARS} consecutive years "
                             f"(up to {Y.year})")
        return self._year(Y.year + 1), empty

    def _year_at(self, u):
        """The local year containing instant u."""
        Y = self._hot
        if Y is not None and Y.lo <= u < Y.hi:
            return Y
        Y = self._year(1970 + u // _AVG_YEAR_US)
        while u < Y.lo:
            Y = self._year(Y.year - 1)
        while u >= Y.hi:
            Y = self._year(Y.year + 1)
        self._hot = Y
        return Y

    def _year(self, y):
        Y = self._years.get(y)
        if Y is None:
            Y = self._years[y] = self._build_year(y)
        return Y

    def _build_year(self, y):
        if not _MIN_YEAR <= y <= _MAX_YEAR:
            raise ValueError(f"year {y} is outside the supported range {_MIN_YEAR}..{_MAX_YEAR}")
        tz = self.tz
        first_day = date(y, 1, 1)
        ord0 = first_day.toordinal()
        ndays = date(y + 1, 1, 1).toordinal() - ord0
        lo = _to_us(datetime(y, 1, 1, tzinfo=tz))
        hi = _to_us(datetime(y + 1, 1, 1, tzinfo=tz))
        starts, ends, cum, cend, pk, wfirst, wlast, day_first = [], [], [], [], [], [], [], []
        prev_end = lo
        acc = 0
        for doy in range(ndays):
            day_first.append(len(starts))
            d = date.fromordinal(ord0 + doy)
            if not self.is_working_day(d):
                continue
            midnight = datetime(d.year, d.month, d.day, tzinfo=tz)
            n_before = len(starts)
            for start_min, end_min in self._date_hours.get(d, self._hours):
                # Wall-clock arithmetic on an aware datetime, then fold=0 conversion to UTC.
                s = _to_us(midnight + timedelta(minutes=start_min))
                e = _to_us(midnight + timedelta(minutes=end_min))
                s = max(s, prev_end)
                e = min(e, hi)
                if e <= s:
                    continue  # collapsed by a DST transition
                starts.append(s)
                ends.append(e)
                cum.append(acc)
                acc += e - s
                cend.append(acc)
                pk.append(len(wfirst))
                prev_end = e
            if len(starts) > n_before:
                wfirst.append(n_before)
                wlast.append(len(starts) - 1)
        day_first.append(len(starts))
        Y = _Year()
        Y.year, Y.ord0, Y.lo, Y.hi = y, ord0, lo, hi
        Y.starts, Y.ends, Y.cum, Y.cend, Y.total = starts, ends, cum, cend, acc
        Y.pk, Y.wfirst, Y.wlast, Y.day_first = pk, wfirst, wlast, day_first
        return Y


@functools.lru_cache(maxsize=256)
def _cached_calendar(tz_key, country, workdays, hours, extra_holidays, extra_workdays, date_hours, overrides):
    return BusinessCalendar(tz=ZoneInfo(tz_key), country=country, workdays=workdays, hours=hours,
                            extra_holidays=extra_holidays, extra_workdays=extra_workdays,
                            date_hours=dict(date_hours), overrides=overrides)
