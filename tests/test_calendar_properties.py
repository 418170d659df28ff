"""Business calendar, property tests (hypothesis).

Generated calendars: timezone Asia/Shanghai, Europe/Berlin or America/New_York; country CN, DE, US or
none; random weekdays; random working-hour ranges (touching ranges, ranges inside the DST gap or the
repeated hour, ranges ending at 24:00 all happen); an optional date_hours override. Generated instants
cluster around the 2025-2026 DST transitions and the CN holiday blocks.

The reference functions at the end recompute business time day by day from `periods()`; the calendar
itself answers from its per-year bisect arrays.
"""

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.calendar import BusinessCalendar

US = timedelta(microseconds=1)

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANCHORS = [  # local dates around which instants are generated (DST transitions, CN holiday blocks)
    datetime(2025, 3, 9), datetime(2025, 3, 30), datetime(2025, 10, 26), datetime(2025, 11, 2),
    datetime(2026, 3, 8), datetime(2026, 3, 29), datetime(2026, 10, 25), datetime(2026, 11, 1),
    datetime(2026, 2, 14), datetime(2025, 10, 1), datetime(2026, 12, 31),
]


@st.composite
def hour_ranges(draw, min_size=1):
    """Ordered, non-overlapping ["HH:MM", "HH:MM"] ranges on a 15-minute grid (0..24:00)."""
    n = draw(st.integers(min_size, 3))
    marks = sorted(draw(st.lists(st.integers(0, 96), min_size=2 * n, max_size=2 * n)))
    ranges = [(marks[i], marks[i + 1]) for i in range(0, 2 * n, 2) if marks[i] < marks[i + 1]]
    if len(ranges) < min_size:
        ranges = [(36, 68)]  # 09:00-17:00

    def hhmm(q):
        return f"{q * 15 // 60:02d}:{q * 15 % 60:02d}"

    return [[hhmm(s), hhmm(e)] for s, e in ranges]


@st.composite
def calendars(draw):
    tz = draw(st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York"]))
    config = {
        "holidays": draw(st.sampled_from([None, "CN", "DE", "US"])),
        "workdays": sorted(draw(st.sets(st.integers(1, 7), min_size=1))),
        "hours": draw(hour_ranges()),
    }
    if draw(st.booleans()):
        day = (draw(st.sampled_from(ANCHORS)) + timedelta(days=draw(st.integers(-3, 3)))).date()
        config["date_hours"] = {day.isoformat(): draw(hour_ranges(min_size=0))}
    return BusinessCalendar.from_config(config, timezone=tz)


@st.composite
def instants(draw, tz):
    """An aware instant within +-6 days of an anchor, in `tz` (either fold) or in UTC, microseconds included."""
    local = draw(st.sampled_from(ANCHORS)) + timedelta(
        minutes=draw(st.integers(-6 * 1440, 6 * 1440)), microseconds=draw(st.sampled_from([0, 0, 1, 250_000, 999_999])))
    t = local.replace(tzinfo=tz, fold=draw(st.integers(0, 1)))
    return t if draw(st.booleans()) else t.astimezone(UTC)


minutes_st = st.one_of(st.integers(0, 3000), st.floats(0, 30_000, allow_nan=False, allow_infinity=False),
                       st.sampled_from([30, 60, 120, 240, 480, 120_000]))


# Python compares, subtracts and adds aware datetimes that share a tzinfo as wall-clock times (fold
# ignored), which is wrong in the repeated hour. Every comparison and arithmetic below is done in UTC.
def u(t):
    return t.astimezone(UTC)


def before(t):
    """The instant one microsecond before t."""
    return u(t) - US


def us(minutes):
    return round(minutes * 60_000_000)


def is_period_end(cal, t):
    """t is not open but the microsecond before it is: t is the end of a working period."""
    return not cal.is_open(t) and cal.is_open(before(t))


# --------------------------------------------------------------------------- add / between


@PROPS
@given(st.data(), calendars(), minutes_st)
def test_between_inverts_add(data, cal, minutes):
    a = data.draw(instants(cal.tz))
    assert abs(cal.between(a, cal.add(a, minutes)) - minutes) <= 1e-6


@PROPS
@given(st.data(), calendars(), minutes_st, minutes_st)
def test_add_is_monotonic_in_minutes(data, cal, m1, m2):
    a = data.draw(instants(cal.tz))
    m1, m2 = sorted([m1, m2])
    assert u(cal.add(a, m1)) <= u(cal.add(a, m2))


@PROPS
@given(st.data(), calendars(), minutes_st)
def test_add_is_monotonic_in_start(data, cal, minutes):
    a1, a2 = sorted([data.draw(instants(cal.tz)), data.draw(instants(cal.tz))], key=u)
    assert u(cal.add(a1, minutes)) <= u(cal.add(a2, minutes))


@PROPS
@given(st.data(), calendars(), minutes_st)
def test_deadline_is_in_working_time_or_exactly_at_a_period_end_and_is_the_earliest(data, cal, minutes):
    a = data.draw(instants(cal.tz))
    due = cal.add(a, minutes)
    assert due.tzinfo is cal.tz
    if us(minutes) == 0:
        assert u(due) == u(a)
        return
    assert u(due) > u(a)
    assert cal.is_open(due) or is_period_end(cal, due)
    # earliest instant: one microsecond earlier the business time has not been reached yet
    assert round(cal.between(a, before(due)) * 60_000_000) < us(minutes)


@PROPS
@given(st.data(), calendars())
def test_between_is_additive(data, cal):
    a, b, c = (data.draw(instants(cal.tz)) for _ in range(3))
    assert abs(cal.between(a, b) + cal.between(b, c) - cal.between(a, c)) <= 1e-6
    assert cal.between(a, b) == -cal.between(b, a)


@PROPS
@given(st.data(), calendars())
def test_between_matches_a_day_by_day_sum_of_periods(data, cal):
    a = data.draw(instants(cal.tz))
    b = u(a) + timedelta(minutes=data.draw(st.integers(0, 15 * 1440)), microseconds=data.draw(st.integers(0, 999_999)))
    assert abs(cal.between(a, b) - reference_between(cal, a, b)) <= 1e-6


# --------------------------------------------------------------------------- periods, open, off-hours


@PROPS
@given(st.data(), calendars())
def test_periods_are_non_empty_ordered_and_disjoint_across_dst(data, cal):
    first = data.draw(instants(cal.tz)).astimezone(cal.tz).date()
    previous_end = None
    for day in (first + timedelta(days=i) for i in range(-1, 8)):
        periods = cal.periods(day)
        if not cal.is_working_day(day):
            assert periods == []
        for start, end in periods:
            assert start.tzinfo is cal.tz and end.tzinfo is cal.tz
            assert u(start) < u(end)
            assert previous_end is None or u(previous_end) <= u(start)
            assert cal.is_open(start) and cal.is_open(before(end))
            if previous_end is not None:  # open just before the start only if the periods touch
                assert not cal.is_open(before(start)) or u(start) == u(previous_end)
            previous_end = end


@PROPS
@given(st.data(), calendars())
def test_next_open_is_the_first_open_instant(data, cal):
    t = data.draw(instants(cal.tz))
    nxt = cal.next_open(t)
    assert nxt.tzinfo is cal.tz
    assert u(nxt) >= u(t)
    assert cal.is_open(nxt)
    assert cal.between(t, nxt) == 0
    assert cal.is_open(t) == (u(nxt) == u(t))
    assert u(nxt) == u(t) or not cal.is_open(before(nxt))


@PROPS
@given(st.data(), calendars())
def test_open_instants_are_never_off_hours(data, cal):
    t = data.draw(instants(cal.tz))
    if cal.is_open(t):
        assert not cal.is_off_hours(t)
    day = t.astimezone(cal.tz).date()
    periods = cal.periods(day)
    expected = not periods or u(t) < u(periods[0][0]) or u(t) >= u(periods[-1][1])
    assert cal.is_off_hours(t) == expected


# --------------------------------------------------------------------------- working days


@PROPS
@given(st.data(), calendars(), st.integers(0, 12))
def test_working_days_land_in_working_time_and_match_a_day_by_day_count(data, cal, n):
    a = data.draw(instants(cal.tz))
    due = cal.add_working_days(a, n)
    assert due.tzinfo is cal.tz
    if n == 0:
        assert u(due) == u(a)
        return
    assert u(due) > u(a)
    assert cal.is_open(due) or is_period_end(cal, due)
    local_day = due.astimezone(cal.tz).date()
    assert any(cal.is_working_day(day) and ps and u(ps[0][0]) < u(due) <= u(ps[-1][1])
               for day in (local_day, local_day - timedelta(days=1)) for ps in [cal.periods(day)])
    assert u(due) == u(reference_add_working_days(cal, a, n))
    assert u(cal.add_working_days(a, n + 1)) > u(due)


# --------------------------------------------------------------------------- reference model


def _overlap(a, b, start, end):
    """Elapsed time of [a, b] inside [start, end]."""
    lo, hi = max(u(a), u(start)), min(u(b), u(end))
    return (hi - lo) if hi > lo else timedelta(0)


def reference_between(cal, a, b):
    total = timedelta(0)
    day = a.astimezone(cal.tz).date() - timedelta(days=1)
    while day <= b.astimezone(cal.tz).date():
        for start, end in cal.periods(day):
            total += _overlap(a, b, start, end)
        day += timedelta(days=1)
    return total / timedelta(minutes=1)


def reference_add_working_days(cal, a, n):
    """A `wd` duration: same business offset into the n-th following working day, clamped, earliest instant."""
    day = a.astimezone(cal.tz).date() - timedelta(days=1)
    days = []  # working days with working time, from the start's working day on
    while len(days) < n + 1:
        periods = cal.periods(day)
        if periods and (days or u(periods[-1][1]) > u(a)):
            days.append(periods)
        day += timedelta(days=1)
        assert day < date(2035, 1, 1)
    offset = sum((_overlap(days[0][0][0], a, s, e) for s, e in days[0]), timedelta(0))
    if offset == timedelta(0):
        return days[n - 1][-1][1]  # offset 0 into day n is the end of day n-1
    for start, end in days[n]:
        length = _overlap(start, end, start, end)
        if offset <= length:
            return u(start) + offset
        offset -= length
    return days[n][-1][1]  # clamped to the day's length
