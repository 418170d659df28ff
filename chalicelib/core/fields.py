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


def missing(doc, keys, prefix="", null=False):
    """The paths of the `keys` the object `doc` lacks (`null`: a null value counts as lacking), each
    prefixed by `prefix`, the dotted path of `doc` ("" at the top level)."""
    return [f"{prefix}.{key}" if prefix else key for key in keys
            if key not in doc or (null and doc[key] is None)]


def require(paths, messages=None):
    """A ValidationError naming every path of `paths` (missing fields) at once, up to
    ValidationError.MAX_NAMED of them, as "is required" or its entry in `messages` (path -> message)."""
    if paths:
        raise ValidationError.several([(path, (messages or {}).get(path, "is required")) for path in paths])


def reject_unknown(doc, allowed, prefix=""):
    """`prefix` is the dotted path of `doc` ("" at the top level)."""
    for key in doc:
        if key not in allowed:
            raise ValidationError(f"{prefix}.{key}" if prefix else str(key), "unknown key")


# Text AWS cannot carry, and text that breaks a line. No field holds control characters (Unicode
# category Cc: C0, DEL, C1) or lone surrogates (which no UTF-8 encoder writes: not boto3's, SES's nor a
# log's), except that tab, LF and CR may break the lines of the MULTILINE fields (CR: the CRLF of a
# Windows client). Every other field is one line: it may end up in an email's Subject or a CSV cell, so
# U+2028 and U+2029, which break lines too, are refused there as well.
MULTILINE = ("description", "note")
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSAFE_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def unsafe_character(value, multiline=False):
    """The first character of the string `value` that a field may not hold (`multiline`: one of the
    MULTILINE fields), or None."""
    found = (_UNSAFE if multiline else _UNSAFE_IN_A_LINE).search(value)
    return found.group() if found else None


def check_characters(value, name, multiline=False):
    """`value`, or a ValidationError naming `name` when it holds a character no field may hold."""
    char = unsafe_character(value, multiline)
    if char is None:
        return value
    code = f"U+{ord(char):04X}"
    if 0xD800 <= ord(char) <= 0xDFFF:
        raise ValidationError(name, f"holds a lone surrogate ({code}), which is not text")
    if multiline:
        raise ValidationError(name, f"must not hold control characters other than tab and line breaks ({code})")
    raise ValidationError(name, f"must be one line without control characters ({code})")


def check_document(document, name="body"):
    """Every string of a parsed JSON document (object keys too) passes check_characters, a string under
    a MULTILINE key as a multiline one; else a ValidationError naming its JSON path (`requester.name`,
    `webhooks[0].url`; `name` for the document itself). Iterative: the document may be deep."""
    stack = [(document, "", False)]
    while stack:
        value, path, multiline = stack.pop()
        if isinstance(value, str):  # white space around it is trimmed where it is read (text())
            check_characters(value.strip(), path or name, multiline)
        elif isinstance(value, dict):
            for key, child in value.items():
                where = f"{path}.{key}" if path else str(key)
                if unsafe_character(key) is not None:
                    raise ValidationError(path or name, f"the key {ascii(key)} must be one line without "
                                                        "control characters or lone surrogates")
                stack.append((child, where, key in MULTILINE))
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]", multiline) for i, child in enumerate(value))


def printable(value, multiline=False):
    """`value` with each character unsafe_character() refuses replaced: by a space when it is white
    space (tab, line breaks), else by U+FFFD. For text stored before the rule, on its way to an email."""
    pattern = _UNSAFE if multiline else _UNSAFE_IN_A_LINE
    return pattern.sub(lambda found: " " if found.group().isspace() else "\ufffd", value)


def one_line(value):
    """`value` on one line, safe in an email header: white space runs become one space, any other
    character unsafe_character() refuses U+FFFD."""
    return " ".join(printable(value).split())


def printable_document(value, multiline=False):
    """A parsed JSON document with printable() applied to every string, keys too (under a MULTILINE key
    as multiline text): a document stored before text was checked reads as one that passes
    check_document, so it stays readable and its text can go into an email."""
    if isinstance(value, str):
        return printable(value, multiline)
    if isinstance(value, dict):
        return {printable(key): printable_document(child, key in MULTILINE) for key, child in value.items()}
    if isinstance(value, list):
        return [printable_document(child, multiline) for child in value]
    return value


def text(value, name, max_len, min_len=1, multiline=False):
    """A string of min_len..max_len characters once surrounding white space is stripped, one line
    without control characters (`multiline`: tab and line breaks allowed)."""
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    value = check_characters(value.strip(), name, multiline)
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


MONTH_REQUIRED = f"is required, as a month YYYY-MM from {FIRST_YEAR}-01 to {LAST_YEAR}-12"


def month(value, name):
    """(year, month) of a "YYYY-MM" value; the years are those whose months have bounds and listing keys."""
    if value is None:
        raise ValidationError(name, MONTH_REQUIRED)
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string, a month YYYY-MM")
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        shown = value if len(value) <= 20 else value[:20] + "…"
        raise ValidationError(name, f"{shown} is not a month (YYYY-MM)")
    if not FIRST_YEAR <= int(match.group(1)) <= LAST_YEAR:
        raise ValidationError(name, f"{value} is outside the months from {FIRST_YEAR}-01 to {LAST_YEAR}-12")
    return int(match.group(1)), int(match.group(2))
