"""Structured JSON logs, one object per line, so CloudWatch Logs Insights can filter on fields."""
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


def _escaped(found):
    return f"\\u{ord(found.group()):04x}"


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
        return _RAW.sub(_escaped, json.dumps(entry, ensure_ascii=False, default=str))


class LevelFromSettings(logging.Filter):
    """Let through the records at or above SLA_LOG_LEVEL (default INFO), read when a record is
    handled: configuring the logs at import reads no setting."""

    def filter(self, record):
        level = logging.getLevelName(settings.current().log_level.upper())
        return record.levelno >= (level if isinstance(level, int) else logging.INFO)


def configure():
    """JSON lines on stderr for every `sla_clock.*` logger, filtered by SLA_LOG_LEVEL."""
    logger = logging.getLogger("sla_clock")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(LevelFromSettings())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG)


def log_event(logger, message, level=logging.INFO, exc_info=None, **fields):
    """One structured line; `exc_info=True` inside an `except` adds the traceback as "exception"."""
    logger.log(level, message, exc_info=exc_info, extra={"fields": fields})
