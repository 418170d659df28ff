"""The checked-in list of years whose official CN schedule the pinned python-holidays carries
(chalicelib/core/data/official_years.json), pinned against the package itself and against chinese_calendar, an
independent transcription of the State Council's notices. A python-holidays upgrade that adds (or changes)
a year fails here until the list is checked and updated."""
import re
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import holidays
import pytest

from chalicelib.core import calendar
from chalicelib.core.calendar import official_package_years, package_schedule

ROOT = Path(__file__).resolve().parent.parent
FIRST_COMPARED = 2004  # chinese_calendar starts in 2004
# Make-up working days chinese_calendar lacks and python-holidays has, each with the notice that settles it.
MISSING_FROM_CHINESE_CALENDAR = {
    date(2005, 12, 31),  # 国办发明电〔2005〕35号 (the 2006 schedule): "12月31日（星期六）上班"
}


def chinese_calendar_years():
    return {d.year for d in chinese_calendar.holidays} | {d.year for d in chinese_calendar.workdays}


def days_off_on_weekdays(days):
    return {d for d in days if d.isoweekday() <= 5}


def package_agrees_with_chinese_calendar(year):
    holidays_, makeup = package_schedule("CN", year)
    theirs_makeup = {d for d in set(chinese_calendar.workdays) | MISSING_FROM_CHINESE_CALENDAR if d.year == year}
    theirs_off = {d for d in chinese_calendar.holidays if d.year == year}
    return set(makeup) == theirs_makeup and days_off_on_weekdays(holidays_) == days_off_on_weekdays(theirs_off)


def test_the_list_describes_the_pinned_package_version():
    pinned = re.search(r"^holidays==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert calendar.PACKAGE_DATA_VERSION == pinned == holidays.__version__, (
        "python-holidays changed: re-run tests/test_official_years.py, update chalicelib/core/data/official_years.json "
        "(its years and holidays_version)")


def test_every_year_chinese_calendar_and_the_package_both_know_is_listed_exactly_when_they_agree():
    listed = official_package_years("CN")
    last = max(chinese_calendar_years())
    compared = range(FIRST_COMPARED, last + 1)
    agreeing = {year for year in compared if package_agrees_with_chinese_calendar(year)}
    assert agreeing == {year for year in listed if year in compared}
    assert last >= 2026


def test_a_year_the_package_publishes_beyond_chinese_calendar_shows_up():
    """python-holidays marks a published year with make-up working days; years computed by rule have none.
    A package upgrade that brings next year's schedule before chinese_calendar does fails here."""
    with_makeup_days = {year for year in range(1950, date.today().year + 10) if package_schedule("CN", year)[1]}
    assert with_makeup_days == set(official_package_years("CN"))


def test_2027_is_estimated_in_the_pinned_package():
    """Why overrides exist: in November 2026 neither source has the 2027 schedule."""
    assert 2027 not in official_package_years("CN") and 2027 not in chinese_calendar_years()
    holidays_2027, makeup_2027 = package_schedule("CN", 2027)
    assert not makeup_2027 and holidays_2027


@pytest.mark.parametrize("year", [2025, 2026])
def test_the_known_years_match_day_by_day(year):
    holidays_, makeup = package_schedule("CN", year)
    day = date(year, 1, 1)
    while day.year == year:
        ours = day in makeup or (day.isoweekday() <= 5 and day not in holidays_)
        assert ours == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)
