"""Contract durations: "<n>s" seconds, "<n>m" minutes, "<n>h" hours, "<n>wd" working days."""
import re
from dataclasses import dataclass
from functools import cached_property

from chalicelib.core.errors import ValidationError

_DURATION = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|wd)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
US_PER_SECOND = 1_000_000


@dataclass(frozen=True)
class Duration:
    count: int
    unit: str  # "s", "m", "h" or "wd"

    @property
    def is_working_days(self):
        return self.unit == "wd"

    @property
    def seconds(self):
        """Exact length in whole seconds of an "s"/"m"/"h" duration; "wd" has no fixed length."""
        if self.is_working_days:
            raise ValueError("a working-day duration has no fixed length in seconds")
        return self.count * _SECONDS[self.unit]

    @cached_property  # read for every deadline the clock computes
    def microseconds(self):
        """`seconds` in the clock's unit, exactly."""
        return self.seconds * US_PER_SECOND

    def __str__(self):
        return f"{self.count}{self.unit}"


def parse_duration(text, field):
    """Parse a contract duration, raising ValidationError naming `field` when it is not one."""
    if not isinstance(text, str):
        raise ValidationError(field, 'must be a duration string such as "30s", "30m", "2h" or "5wd"')
    match = _DURATION.match(text.strip())
    if not match:
        raise ValidationError(
            field, f'{text!r} is not a duration: use a positive whole number and s, m, h or wd, e.g. "30s", "30m", '
                   '"2h", "5wd"'
        )
    return Duration(int(match.group(1)), match.group(2))
