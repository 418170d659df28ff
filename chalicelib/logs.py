"""Structured JSON logs, one object per line, so CloudWatch Logs Insights can filter on fields."""
import json
import logging
import os
import sys
from datetime import UTC, datetime


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
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure():
    """JSON lines on stderr for every `sla_clock.*` logger; level from SLA_LOG_LEVEL (default INFO)."""
    logger = logging.getLogger("sla_clock")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get("SLA_LOG_LEVEL", "INFO").upper())


def log_event(logger, message, level=logging.INFO, exc_info=None, **fields):
    """One structured line; `exc_info=True` inside an `except` adds the traceback as "exception"."""
    logger.log(level, message, exc_info=exc_info, extra={"fields": fields})
