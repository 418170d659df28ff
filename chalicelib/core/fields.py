"""Field checks shared by every document the API accepts; each error names the field."""
import math
import re
from datetime import datetime

from email_validator import EmailNotValidError, validate_email

from chalicelib.core.errors import CursorError, ValidationError

MAX_CHANNEL = 64
_DIGITS = re.compile(r"[0-9]{1,9}")
FIRST_YEAR, LAST_YEAR = 2000, 2100  # the years the API's dates, months and calendars may name
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # fullmatch, ASCII digits: "\d" takes any Unicode digit
CONTRACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fullmatch: "$" would let a trailing newline in


def require_object(value, name):
    if not isinstance(value, dict):
        raise ValidationError(name, "must be a JSON object")
    return value


def reject_unknown(doc, allowed, prefix=""):
    """`prefix` is the dotted path of `doc` ("" at the top level)."""
    for key in doc:
        if key not in allowed:
            raise ValidationError(f"{prefix}.{key}" if prefix else str(key), "unknown key")


def text(value, name, max_len, min_len=1):
    """A string of min_len..max_len characters once surrounding white space is stripped."""
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    value = value.strip()
    if not min_len <= len(value) <= max_len:
        raise ValidationError(name, f"must be {min_len}–{max_len} characters")
    return value


def number(value, name, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(name, "must be a number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValidationError(name, f"must be {'>' if lo_open else '≥'} {lo}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ValidationError(name, f"must be {'<' if hi_open else '≤'} {hi}")
    return value


def whole_number(value, name, lo, hi):
    """A query-string whole number from lo to hi, in at most nine ASCII digits. (str.isdigit() takes
    "²" and "٣", which int() then refuses or reads as another number; int() also refuses 5,000 digits.)"""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or not lo <= int(value) <= hi:
        raise ValidationError(name, f"must be a whole number from {lo} to {hi}")
    return int(value)


def email_address(value, name):
    """A syntactically valid e-mail address (no DNS look-up) that SES can deliver to, normalized, in
    ASCII: an internationalised domain becomes punycode. A non-ASCII mailbox name (before the @) would
    need SMTPUTF8, which SES does not offer, so it is refused rather than accepted and never delivered."""
    if not isinstance(value, str):
        raise ValidationError(name, "must be an e-mail address string")
    try:
        validated = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(name, f"{value!r} is not a valid e-mail address: {exc}") from None
    if validated.ascii_email is None:
        raise ValidationError(name, f"{value!r}: the part before the @ must be ASCII; e-mail to an "
                                    "internationalised mailbox name cannot be delivered")
    return validated.ascii_email


def channel_name(value, name):
    return text(value, name, MAX_CHANNEL)


def instant(value, name):
    """An ISO-8601 timestamp with a UTC offset."""
    if not isinstance(value, str):
        raise ValidationError(name, "must be an ISO-8601 timestamp string with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(name, f"{value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(name, "must include a UTC offset, e.g. 2026-02-13T16:30:00+08:00")
    return parsed


def check_contract_id(contract_id, name="contract_id"):
    if not isinstance(contract_id, str) or not CONTRACT_ID.fullmatch(contract_id):
        raise ValidationError(name, "must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return contract_id


DEFAULT_LIMIT, MAX_LIMIT = 20, 100  # items in one page of a listing


def page_limit(params):
    """The `limit` parameter of a listing: 1–MAX_LIMIT items, DEFAULT_LIMIT without one."""
    return whole_number(params.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)


def page_start(params, decode, *args, name="next"):
    """Where a listing resumes: `decode`(the cursor in parameter `name`, *args), or None without one.
    A cursor the listing did not hand out is a 400 naming the parameter, an empty one included: a
    client that sends back the null `next` of a last page would otherwise read the first page again."""
    if name not in params:
        return None
    cursor = params[name]
    try:
        return decode(cursor, *args)
    except CursorError as exc:
        raise ValidationError(name, str(exc)) from None


def month(value, name):
    """(year, month) of a "YYYY-MM" value; the years are those whose months have bounds and listing keys."""
    match = _MONTH.fullmatch(value) if isinstance(value, str) else None
    if not match or not 1 <= int(match.group(2)) <= 12 or not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
        raise ValidationError(name, f"is required, as a month YYYY-MM from {FIRST_YEAR}-01 to {LAST_YEAR}-12")
    return int(match.group(1)), int(match.group(2))
