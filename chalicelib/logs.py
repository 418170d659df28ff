"""Structured JSON logs, one object per line, so CloudWatch Logs Insights can filter on fields.

No line holds an email address in clear (docs/privacy.md): call sites log `pseudonym(address)`, and
the formatter masks whatever else looks like an address (an AWS error quoting a recipient, a trace)
the same way, so lines about one address can still be found together. Names, subjects, descriptions
and notes are never passed to a log call at all: free text cannot be recognised, only left out.
"""
import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime

from chalicelib import settings

# What JSON leaves raw with ensure_ascii=False but a log line must not carry: DEL and the C1 controls
# (terminal escapes), the Unicode line separators, and lone surrogates (which no UTF-8 stream can write).
# JSON escapes the C0 controls itself. These characters occur only inside the line's strings.
_RAW = re.compile(r"[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


# Anything shaped like local@domain.tld, in any script (RFC 6531 allows non-ASCII on both sides).
# Wider than what the API accepts as an address on purpose: masking a non-address costs nothing. The
# first character is no quote or dot, so an address quoted in a message ('a@b.example') is masked as
# the same pseudonym as the address alone.
_ADDRESS = re.compile(r"[\w!#$%&*+/=?^{|}~-][\w.!#$%&'*+/=?^`{|}~-]*@[\w-]+(?:\.[\w-]+)+")
PSEUDONYM_HEX = 12  # 48 bits: two addresses of one stage share a pseudonym about once in 10^14 pairs


def _escaped(found):
    return f"\\u{ord(found.group()):04x}"


def pseudonym(address):
    """What a log line says instead of an email address: "addr:" and a short hex digest of the address
    (case-folded), salted with the stage's name. The same address gives the same pseudonym in every
    line and function of a stage, so an operator can follow one person's mail through the logs, and
    one who knows an address computes its pseudonym to search for it. A salted hash, not a keyed one:
    whoever may read the logs may read the tables too, and no key means nothing to fetch, rotate or
    lose on the log path. It is a pseudonym, not anonymity: someone holding the logs and a guessed
    address can confirm the guess, which is why the logs are kept no longer than the tables need."""
    salt = f"sla-clock:{settings.value('stage')}:"
    digest = hashlib.sha256((salt + str(address).strip().lower()).encode("utf-8", "surrogatepass")).hexdigest()
    return f"addr:{digest[:PSEUDONYM_HEX]}"


def masked(text):
    """`text` with every substring shaped like an email address replaced by its pseudonym."""
    return _ADDRESS.sub(lambda found: pseudonym(found.group()), text)


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # The last line of defence: an address a call site did not pseudonymise, in any field or trace.
        return masked(_RAW.sub(_escaped, json.dumps(entry, ensure_ascii=False, default=str)))


class LevelFromSettings(logging.Filter):
    """Let through the records at or above SLA_LOG_LEVEL (default INFO), read when a record is
    handled: configuring the logs at import reads no setting."""

    def filter(self, record):
        level = logging.getLevelName(settings.current().log_level.upper())
        return record.levelno >= (level if isinstance(level, int) else logging.INFO)


def configure(*others):
    """JSON lines on stderr for every `sla_clock.*` logger, filtered by SLA_LOG_LEVEL. `others` (Chalice's
    app logger, which logs the trace of an exception escaping a route) keep their handlers and levels
    but write the same masked JSON lines."""
    for other in others:
        for handler in other.handlers:
            handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sla_clock")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(LevelFromSettings())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG)


def _masked_value(value):
    if isinstance(value, str):
        return masked(value)
    if isinstance(value, list | tuple):
        return [_masked_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked_value(item) for key, item in value.items()}
    return value


def log_event(logger, message, level=logging.INFO, exc_info=None, **fields):
    """One structured line; `exc_info=True` inside an `except` adds the traceback as "exception". Any
    address in the message or a field (an AWS error quoting a recipient) is already its pseudonym in
    the record, for every handler; the formatter masks the traceback."""
    logger.log(level, masked(message), exc_info=exc_info, extra={"fields": _masked_value(fields)})
