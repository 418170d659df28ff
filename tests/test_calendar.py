"""Business calendar, table tests (the calendar rules and durations of docs/clock.md; the calendar is a library too).

Default calendar unless stated: Asia/Shanghai, CN holidays incl. make-up working days (调休),
Mon-Fri 09:00-12:00 and 13:00-17:00. Holiday facts come from python-holidays 0.109.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chalicelib.core.calendar import BusinessCalendar
from chalicelib.core.errors import ValidationError

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def sh(text):
    """'2026-02-13 16:30' -> aware datetime in Asia/Shanghai."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def d(text):
    return date.fromisoformat(text)


@pytest.fixture(scope="module")
def cal():
    return BusinessCalendar.from_config(None, timezone="Asia/Shanghai")


# --------------------------------------------------------------------------- holidays and make-up days


def test_high_priority_request_received_friday_1630_is_due_on_makeup_saturday(cal):
    assert cal.add(sh("2026-02-13 16:30"), 120) == sh("2026-02-14 10:30")


@pytest.mark.parametrize("day, working", [
    ("2026-02-13", True),   # Friday before the festival
    ("2026-02-14", True),   # Saturday, make-up working day
    ("2026-02-15", False),  # Sunday
    ("2026-02-16", False),  # Chinese New Year's Eve
    ("2026-02-17", False),
    ("2026-02-18", False),
    ("2026-02-19", False),
    ("2026-02-20", False),  # day off, substituted from 02-14
    ("2026-02-21", False),  # weekend
    ("2026-02-22", False),
    ("2026-02-23", False),  # Monday, day off substituted from 02-28
    ("2026-02-24", True),
    ("2026-02-28", True),   # Saturday, make-up working day
    ("2026-03-01", False),  # ordinary Sunday
])
def test_spring_festival_2026_days(cal, day, working):
    assert cal.is_working_day(d(day)) is working


@pytest.mark.parametrize("day, working", [
    ("2025-01-26", True),   # Sunday, make-up working day
    ("2025-01-27", True),
    ("2025-01-28", False),  # Chinese New Year's Eve
    ("2025-01-31", False),
    ("2025-02-03", False),  # day off, substituted from 01-26
    ("2025-02-04", False),  # day off, substituted from 02-08
    ("2025-02-05", True),
    ("2025-02-08", True),   # Saturday, make-up working day
    ("2025-02-09", False),
])
def test_spring_festival_2025_days(cal, day, working):
    assert cal.is_working_day(d(day)) is working


@pytest.mark.parametrize("day, working", [
    ("2025-09-28", True),   # Sunday, make-up working day
    ("2025-09-30", True),
    ("2025-10-01", False),
    ("2025-10-06", False),  # Mid-Autumn Festival
    ("2025-10-08", False),  # day off, substituted from 10-11
    ("2025-10-09", True),
    ("2025-10-11", True),   # Saturday, make-up working day
    ("2026-09-20", True),   # Sunday, make-up working day
    ("2026-09-25", False),  # Mid-Autumn Festival (Friday)
    ("2026-09-30", True),
    ("2026-10-01", False),
    ("2026-10-07", False),  # day off, substituted from 10-10
    ("2026-10-08", True),   # Thursday, first working day after the block
    ("2026-10-10", True),   # Saturday, make-up working day
    ("2026-10-11", False),
])
def test_national_day_2025_and_2026_days(cal, day, working):
    assert cal.is_working_day(d(day)) is working


@pytest.mark.parametrize("received, minutes, due", [
    # Spring Festival 2026
    ("2026-02-14 16:00", 120, "2026-02-24 10:00"),  # from the make-up Saturday across the whole festival
    ("2026-02-18 10:00", 120, "2026-02-24 11:00"),  # received during the festival
    ("2026-02-27 16:00", 120, "2026-02-28 10:00"),  # Friday -> make-up Saturday
    ("2026-02-13 09:00", 840, "2026-02-14 17:00"),  # two full days, ends at the end of the Saturday
    # Spring Festival 2025
    ("2025-01-24 16:00", 120, "2025-01-26 10:00"),  # Friday -> make-up Sunday
    ("2025-01-27 16:00", 120, "2025-02-05 10:00"),  # last day before the festival
    ("2025-02-07 16:30", 60, "2025-02-08 09:30"),   # Friday -> make-up Saturday
    # National Day 2025
    ("2025-09-26 16:00", 120, "2025-09-28 10:00"),  # Friday -> make-up Sunday
    ("2025-09-30 16:00", 120, "2025-10-09 10:00"),
    ("2025-10-10 16:30", 60, "2025-10-11 09:30"),   # Friday -> make-up Saturday
    # National Day 2026
    ("2026-09-18 16:00", 120, "2026-09-20 10:00"),  # Friday -> make-up Sunday
    ("2026-09-24 16:00", 120, "2026-09-28 10:00"),  # Mid-Autumn Friday 09-25 is a holiday
    ("2026-09-30 16:00", 120, "2026-10-08 10:00"),  # 10-08 is a Thursday, an ordinary working day
    ("2026-10-09 16:00", 120, "2026-10-10 10:00"),  # Friday -> make-up Saturday
    # New Year 2026: 01-01 and 01-02 off, Sunday 01-04 is a make-up day
    ("2025-12-31 16:00", 120, "2026-01-04 10:00"),
])
def test_deadlines_across_holidays_and_makeup_days(cal, received, minutes, due):
    assert cal.add(sh(received), minutes) == sh(due)


def test_between_across_the_national_day_block(cal):
    assert cal.between(sh("2026-09-30 16:00"), sh("2026-10-08 10:00")) == 120
    assert cal.between(sh("2025-09-30 16:00"), sh("2025-10-09 10:00")) == 120


def test_between_across_spring_festival_counts_the_makeup_saturday(cal):
    # Fri 02-13 (7 h) + make-up Sat 02-14 (7 h); 02-15..02-23 are all off.
    assert cal.between(sh("2026-02-13 09:00"), sh("2026-02-24 09:00")) == 840


def test_between_is_negative_when_the_end_is_before_the_start(cal):
    assert cal.between(sh("2026-02-24 09:00"), sh("2026-02-13 09:00")) == -840


def test_between_across_a_year_boundary(cal):
    assert cal.between(sh("2025-12-31 16:00"), sh("2026-01-05 10:00")) == 60 + 420 + 60


# --------------------------------------------------------------------------- lunch break and end of day


@pytest.mark.parametrize("received, minutes, due", [
    ("2026-03-02 10:00", 120, "2026-03-02 12:00"),  # earliest instant: 12:00, not 13:00
    ("2026-03-02 11:30", 60, "2026-03-02 13:30"),   # the clock stops over lunch
    ("2026-03-02 12:30", 30, "2026-03-02 13:30"),   # received during lunch
    ("2026-03-02 12:30", 0, "2026-03-02 12:30"),    # add(t, 0) == t, even off the clock
    ("2026-03-06 16:00", 60, "2026-03-06 17:00"),   # Friday: 17:00 Friday, not 09:00 Monday
    ("2026-03-06 16:00", 61, "2026-03-09 09:01"),
    ("2026-03-06 18:00", 60, "2026-03-09 10:00"),   # received Friday evening
    ("2026-03-07 10:00", 30, "2026-03-09 09:30"),   # received on an ordinary Saturday
    ("2026-03-02 09:00", 0.5, "2026-03-02 09:00:30"),
])
def test_lunch_break_and_end_of_day(cal, received, minutes, due):
    assert cal.add(sh(received), minutes) == sh(due)


def test_between_skips_the_lunch_break(cal):
    assert cal.between(sh("2026-03-02 11:00"), sh("2026-03-02 14:00")) == 120
    assert cal.between(sh("2026-03-02 12:10"), sh("2026-03-02 12:50")) == 0


def test_fractional_minutes_round_to_whole_microseconds(cal):
    due = cal.add(sh("2026-03-02 09:00"), 1 / 3)
    assert due == sh("2026-03-02 09:00:20")
    tiny = cal.add(sh("2026-03-02 09:00"), 0.0000001)  # 6 microseconds
    assert cal.between(sh("2026-03-02 09:00"), tiny) == pytest.approx(1e-7, abs=1e-8)


# --------------------------------------------------------------------------- open / next_open / off-hours


def test_next_open_from_friday_evening_before_a_makeup_saturday(cal):
    assert cal.next_open(sh("2026-02-13 18:00")) == sh("2026-02-14 09:00")


@pytest.mark.parametrize("at, expected", [
    ("2026-03-06 18:00", "2026-03-09 09:00"),  # ordinary Friday evening -> Monday
    ("2026-03-02 12:15", "2026-03-02 13:00"),  # lunch
    ("2026-03-02 10:00", "2026-03-02 10:00"),  # open: itself
    ("2026-03-02 09:00", "2026-03-02 09:00"),
    ("2026-03-02 17:00", "2026-03-03 09:00"),
    ("2026-09-30 17:00", "2026-10-08 09:00"),  # before the National Day block
    ("2026-02-20 08:00", "2026-02-24 09:00"),  # inside the Spring Festival
])
def test_next_open(cal, at, expected):
    assert cal.next_open(sh(at)) == sh(expected)


@pytest.mark.parametrize("at, off", [
    ("2026-03-02 08:59", True),   # before the first period
    ("2026-03-02 09:00", False),
    ("2026-03-02 12:30", False),  # lunch is not off-hours
    ("2026-03-02 16:59", False),
    ("2026-03-02 17:00", True),   # at the end of the last period
    ("2026-03-02 23:00", True),
    ("2026-03-07 10:00", True),   # ordinary Saturday
    ("2026-02-14 10:00", False),  # make-up Saturday
    ("2026-10-01 10:00", True),   # National Day
])
def test_is_off_hours(cal, at, off):
    assert cal.is_off_hours(sh(at)) is off


@pytest.mark.parametrize("at, is_open", [
    ("2026-03-02 08:59", False),
    ("2026-03-02 09:00", True),
    ("2026-03-02 11:59", True),
    ("2026-03-02 12:00", False),
    ("2026-03-02 13:00", True),
    ("2026-03-02 17:00", False),
    ("2026-02-14 10:00", True),
])
def test_is_open(cal, at, is_open):
    assert cal.is_open(sh(at)) is is_open


def test_periods_of_a_makeup_saturday_a_holiday_and_a_sunday(cal):
    assert cal.periods(d("2026-02-14")) == [(sh("2026-02-14 09:00"), sh("2026-02-14 12:00")),
                                            (sh("2026-02-14 13:00"), sh("2026-02-14 17:00"))]
    assert cal.periods(d("2026-10-01")) == []
    assert cal.periods(d("2026-03-01")) == []


def test_is_working_day_accepts_an_aware_datetime_as_its_local_date(cal):
    # 2026-02-13 17:00 UTC is Saturday 2026-02-14 01:00 in Shanghai (make-up day).
    assert cal.is_working_day(datetime(2026, 2, 13, 17, 0, tzinfo=UTC)) is True


# --------------------------------------------------------------------------- per-contract extras


def test_extra_holiday_moves_the_deadline():
    cal = BusinessCalendar.from_config({"extra_holidays": ["2026-06-01"]})
    assert not cal.is_working_day(d("2026-06-01"))
    assert cal.add(sh("2026-05-29 16:00"), 120) == sh("2026-06-02 10:00")


def test_extra_workday_makes_a_saturday_a_working_day():
    cal = BusinessCalendar.from_config({"extra_workdays": ["2026-06-06"]})
    assert cal.is_working_day(d("2026-06-06"))
    assert cal.add(sh("2026-06-05 16:00"), 120) == sh("2026-06-06 10:00")


def test_extra_workday_wins_over_a_country_holiday_and_extra_holiday_over_a_makeup_day():
    cal = BusinessCalendar.from_config({"extra_workdays": ["2026-10-01"], "extra_holidays": ["2026-02-14"]})
    assert cal.is_working_day(d("2026-10-01"))
    assert not cal.is_working_day(d("2026-02-14"))
    assert cal.add(sh("2026-02-13 16:30"), 120) == sh("2026-02-24 10:30")


def test_date_hours_short_day_before_new_year():
    cal = BusinessCalendar.from_config({"date_hours": {"2026-12-31": [["09:00", "12:00"]]}})
    assert cal.periods(d("2026-12-31")) == [(sh("2026-12-31 09:00"), sh("2026-12-31 12:00"))]
    assert cal.is_off_hours(sh("2026-12-31 13:30"))
    # 60 minutes left on the short day, 2027-01-01 is New Year's Day, then a weekend.
    assert cal.add(sh("2026-12-31 11:00"), 120) == sh("2027-01-04 10:00")
    assert cal.between(sh("2026-12-31 09:00"), sh("2027-01-04 09:00")) == 180


def test_date_hours_do_not_make_a_holiday_a_working_day():
    cal = BusinessCalendar.from_config({"date_hours": {"2026-10-01": [["09:00", "12:00"]]}})
    assert not cal.is_working_day(d("2026-10-01"))
    assert cal.periods(d("2026-10-01")) == []


def test_date_hours_empty_list_means_no_hours_that_day():
    cal = BusinessCalendar.from_config({"date_hours": {"2026-03-03": []}})
    assert cal.is_working_day(d("2026-03-03"))  # still a working day by the date rule ...
    assert cal.periods(d("2026-03-03")) == []   # ... without working time
    assert cal.is_off_hours(sh("2026-03-03 10:00"))
    assert cal.add(sh("2026-03-02 16:00"), 120) == sh("2026-03-04 10:00")


def test_holidays_null_means_no_country_holidays():
    cal = BusinessCalendar.from_config({"holidays": None})
    assert cal.is_working_day(d("2026-10-01"))      # Thursday, National Day in CN
    assert not cal.is_working_day(d("2026-02-14"))  # no make-up days either


def test_other_countries_from_python_holidays():
    cal = BusinessCalendar.from_config({"holidays": "US", "hours": [["09:00", "17:00"]]}, timezone="America/New_York")
    assert not cal.is_working_day(d("2026-07-03"))  # Independence Day (observed)
    ny = datetime(2026, 7, 2, 16, 0, tzinfo=NEW_YORK)
    assert cal.add(ny, 120) == datetime(2026, 7, 6, 10, 0, tzinfo=NEW_YORK)


def test_hours_may_end_at_midnight_and_days_may_be_round_the_clock():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [1, 2, 3, 4, 5, 6, 7],
                                        "hours": [["00:00", "24:00"]]})
    assert cal.add(sh("2026-03-02 23:30"), 60) == sh("2026-03-03 00:30")
    assert cal.between(sh("2026-03-02 00:00"), sh("2026-03-09 00:00")) == 7 * 24 * 60


def test_workdays_empty_with_extra_workdays_is_legal():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [], "extra_workdays": ["2026-03-07"]})
    assert cal.add(sh("2026-03-01 10:00"), 60) == sh("2026-03-07 10:00")
    assert cal.next_open(sh("2026-03-01 10:00")) == sh("2026-03-07 09:00")
    assert cal.between(sh("2026-03-01 10:00"), sh("2026-03-10 10:00")) == 420


# --------------------------------------------------------------------------- working days ("wd")


@pytest.mark.parametrize("start, n, expected", [
    ("2026-03-02 10:00", 2, "2026-03-04 10:00"),  # 10:00 Mon + 2wd = 10:00 Wed
    ("2026-03-02 09:00", 2, "2026-03-03 17:00"),  # 09:00 Mon + 2wd = 17:00 Tue (earliest instant)
    ("2026-03-02 09:00", 1, "2026-03-02 17:00"),
    ("2026-03-02 12:30", 1, "2026-03-03 12:00"),  # from the lunch break: the morning's offset
    ("2026-03-02 17:00", 1, "2026-03-03 17:00"),  # at the end of the day: a full day
    ("2026-03-02 08:00", 1, "2026-03-02 17:00"),  # before the day: offset 0 into Monday
    ("2026-03-07 10:00", 2, "2026-03-10 17:00"),  # Saturday start: offset 0 into Monday
    ("2026-03-06 16:30", 1, "2026-03-09 16:30"),  # Friday -> Monday
    ("2026-02-13 10:00", 1, "2026-02-14 10:00"),  # Friday -> make-up Saturday
    ("2026-02-13 10:00", 5, "2026-02-27 10:00"),  # 02-14, 02-24, 02-25, 02-26, 02-27
    ("2026-09-30 10:00", 1, "2026-10-08 10:00"),  # across National Day
    ("2026-12-29 11:00", 500, "2029-01-03 11:00"),  # across year boundaries (counted day by day)
    ("2026-03-02 10:00", 0, "2026-03-02 10:00"),  # n = 0 returns the start
    ("2026-03-07 10:00", 0, "2026-03-07 10:00"),
])
def test_working_days(cal, start, n, expected):
    assert cal.add_working_days(sh(start), n) == sh(expected)


def test_working_days_clamp_to_a_short_day():
    cal = BusinessCalendar.from_config({"date_hours": {"2026-12-31": [["09:00", "12:00"]]}})
    # 15:00 is 5 business hours into 12-30; 12-31 only has 3.
    assert cal.add_working_days(sh("2026-12-30 15:00"), 1) == sh("2026-12-31 12:00")
    assert cal.add_working_days(sh("2026-12-30 10:00"), 1) == sh("2026-12-31 10:00")


def test_working_days_skip_days_without_working_time():
    cal = BusinessCalendar.from_config({"date_hours": {"2026-03-03": []}})
    assert cal.add_working_days(sh("2026-03-02 10:00"), 1) == sh("2026-03-04 10:00")


def test_working_days_reject_negative_and_non_integer_counts(cal):
    with pytest.raises(ValueError):
        cal.add_working_days(sh("2026-03-02 10:00"), -1)
    with pytest.raises(TypeError):
        cal.add_working_days(sh("2026-03-02 10:00"), 1.5)


# --------------------------------------------------------------------------- time zones and DST


def test_results_are_in_the_calendar_timezone_whatever_the_input_zone(cal):
    due = cal.add(datetime(2026, 2, 13, 8, 30, tzinfo=UTC), 120)  # 16:30 in Shanghai
    assert due == sh("2026-02-14 10:30")
    assert due.tzinfo is SH and due.utcoffset() == timedelta(hours=8)
    assert cal.add(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), 0).tzinfo is SH
    assert cal.next_open(datetime(2026, 3, 2, 2, 0, tzinfo=UTC)).tzinfo is SH
    assert cal.add_working_days(datetime(2026, 3, 2, 2, 0, tzinfo=UTC), 1).tzinfo is SH


def test_dst_days_are_23_and_25_hours_long_in_berlin():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [1, 2, 3, 4, 5, 6, 7],
                                        "hours": [["00:00", "24:00"]]}, timezone="Europe/Berlin")
    spring = datetime(2026, 3, 29, tzinfo=BERLIN)
    autumn = datetime(2026, 10, 25, tzinfo=BERLIN)
    assert cal.between(spring, spring + timedelta(days=1)) == 23 * 60
    assert cal.between(autumn, autumn + timedelta(days=1)) == 25 * 60
    assert cal.add(datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN), 60) == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)


def test_a_period_inside_the_dst_gap_collapses_and_is_skipped():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [7], "hours": [["02:00", "03:00"]]},
                                       timezone="Europe/Berlin")
    assert cal.periods(d("2026-03-29")) == []  # 02:00-03:00 does not exist that night
    assert len(cal.periods(d("2026-03-22"))) == 1
    assert cal.add(datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), 30) == datetime(2026, 4, 5, 2, 30, tzinfo=BERLIN)


def test_the_repeated_hour_in_new_york_counts_twice():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [7], "hours": [["00:00", "24:00"]]},
                                       timezone="America/New_York")
    start = datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK)
    due = cal.add(start, 120)
    assert due.replace(tzinfo=None) == datetime(2025, 11, 2, 1, 30) and due.utcoffset() == timedelta(hours=-5)
    assert cal.between(start, due) == 120


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("config, field", [
    ("CN", "calendar"),
    ([], "calendar"),
    ({"bogus": 1}, "calendar.bogus"),
    ({"holidays": "XX"}, "calendar.holidays"),
    ({"holidays": 86}, "calendar.holidays"),
    ({"holidays": "cn"}, "calendar.holidays"),
    ({"workdays": "12345"}, "calendar.workdays"),
    ({"workdays": None}, "calendar.workdays"),
    ({"workdays": [0]}, "calendar.workdays[0]"),
    ({"workdays": [1, 8]}, "calendar.workdays[1]"),
    ({"workdays": [1, True]}, "calendar.workdays[1]"),
    ({"workdays": [1.0]}, "calendar.workdays[0]"),
    ({"workdays": [1, 2, 1]}, "calendar.workdays[2]"),
    ({"hours": "09:00-17:00"}, "calendar.hours"),
    ({"hours": [["09:00", "12:00"], ["11:00", "17:00"]]}, "calendar.hours[1]"),  # overlap
    ({"hours": [["13:00", "17:00"], ["09:00", "12:00"]]}, "calendar.hours[1]"),  # not ordered
    ({"hours": [["12:00", "09:00"]]}, "calendar.hours[0]"),                      # start after end
    ({"hours": [["09:00", "09:00"]]}, "calendar.hours[0]"),                      # empty
    ({"hours": [["9:00", "12:00"]]}, "calendar.hours[0]"),
    ({"hours": [["09:60", "12:00"]]}, "calendar.hours[0]"),
    ({"hours": [["09:00", "24:01"]]}, "calendar.hours[0]"),
    ({"hours": [["24:00", "24:00"]]}, "calendar.hours[0]"),
    ({"hours": [["09:00"]]}, "calendar.hours[0]"),
    ({"hours": [[9, 17]]}, "calendar.hours[0]"),
    ({"hours": [["09:00", "12:00"], "13:00-17:00"]}, "calendar.hours[1]"),
    ({"extra_holidays": "2026-06-01"}, "calendar.extra_holidays"),
    ({"extra_holidays": ["2026-06-01", "2026-01-01", "2026-13-01"]}, "calendar.extra_holidays[2]"),
    ({"extra_holidays": ["2026-02-30"]}, "calendar.extra_holidays[0]"),
    ({"extra_holidays": ["20260601"]}, "calendar.extra_holidays[0]"),
    ({"extra_workdays": [None]}, "calendar.extra_workdays[0]"),
    ({"date_hours": []}, "calendar.date_hours"),
    ({"date_hours": {"2026-12-31": "short"}}, "calendar.date_hours.2026-12-31"),
    ({"date_hours": {"31/12/2026": [["09:00", "12:00"]]}}, "calendar.date_hours.31/12/2026"),
    ({"date_hours": {"2026-12-31": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "calendar.date_hours.2026-12-31[1]"),
    ({"date_hours": {"2026-12-31": [["12:00", "09:00"]]}}, "calendar.date_hours.2026-12-31[0]"),
])
def test_invalid_calendar_is_rejected_naming_the_field(config, field):
    with pytest.raises(ValidationError) as info:
        BusinessCalendar.from_config(config)
    assert info.value.field == field
    assert str(info.value).startswith(field + ": ")


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../etc/passwd", 8])
def test_unknown_timezone_is_rejected_naming_the_field(tz):
    with pytest.raises(ValidationError) as info:
        BusinessCalendar.from_config(None, timezone=tz)
    assert info.value.field == "timezone"


@pytest.mark.parametrize("config", [
    None,
    {},
    {"holidays": None},
    {"holidays": "DE", "workdays": [1, 2, 3, 4, 5, 6], "hours": [["08:00", "12:00"], ["12:00", "18:00"]]},
    {"hours": [["18:00", "24:00"]]},
    {"workdays": [], "extra_workdays": ["2026-03-07"]},
    {"date_hours": {"2026-12-31": []}},
])
def test_valid_calendars_are_accepted(config):
    assert isinstance(BusinessCalendar.from_config(config), BusinessCalendar)


def test_defaults_match_the_design_document(cal):
    explicit = BusinessCalendar.from_config({"holidays": "CN", "workdays": [1, 2, 3, 4, 5],
                                             "hours": [["09:00", "12:00"], ["13:00", "17:00"]],
                                             "extra_holidays": [], "extra_workdays": [], "date_hours": {}},
                                            timezone="Asia/Shanghai")
    assert explicit is cal  # identical configurations share one immutable calendar (warm caches)
    assert cal.tz == SH


# --------------------------------------------------------------------------- programming errors


@pytest.mark.parametrize("call", [
    lambda c, t: c.add(t, 60),
    lambda c, t: c.between(t, t),
    lambda c, t: c.next_open(t),
    lambda c, t: c.is_open(t),
    lambda c, t: c.is_off_hours(t),
    lambda c, t: c.add_working_days(t, 1),
])
def test_naive_datetimes_are_a_programming_error(cal, call):
    with pytest.raises(ValueError):
        call(cal, datetime(2026, 3, 2, 10, 0))


@pytest.mark.parametrize("minutes", [-1, float("nan"), float("inf"), True])
def test_add_rejects_negative_or_non_finite_minutes(cal, minutes):
    with pytest.raises(ValueError):
        cal.add(sh("2026-03-02 10:00"), minutes)


def test_a_calendar_without_any_working_time_raises_instead_of_searching_forever():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": []})
    start = sh("2026-03-02 10:00")
    with pytest.raises(ValueError, match="no working time"):
        cal.add(start, 1)
    with pytest.raises(ValueError, match="no working time"):
        cal.next_open(start)
    with pytest.raises(ValueError, match="no working time"):
        cal.add_working_days(start, 1)
    assert cal.between(start, start + timedelta(days=400)) == 0


def test_working_time_that_runs_out_raises_too():
    cal = BusinessCalendar.from_config({"holidays": None, "workdays": [], "extra_workdays": ["2026-03-07"]})
    assert cal.add(sh("2026-03-07 16:00"), 60) == sh("2026-03-07 17:00")
    with pytest.raises(ValueError):
        cal.add(sh("2026-03-07 16:00"), 61)


def test_long_spans_are_consistent_across_years(cal):
    start = sh("2025-06-15 10:17:03.250001")
    minutes = 5 * 250 * 420  # about five years of business time
    due = cal.add(start, minutes)
    assert due.year == 2030
    assert cal.between(start, due) == pytest.approx(minutes, abs=1e-6)
