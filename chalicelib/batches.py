"""Reading a Lambda event-source batch, shared by the consumers of the Connect contact-record stream
(connect.py) and of the SES events topic (ses_feedback.py).

Each record is read on its own. One that cannot be read will never read better, so it is dropped,
not retried: it is logged with its ids and its place in the batch, never its content (which holds
phone numbers and addresses), and the batch's count of them goes to the `MalformedEvents` metric,
with the consumer as its `Source`. What the consumer then does with the records it could read (one
write per contract, say) is its own business; the records it could not store go back to Lambda in
`partial_failure`'s answer.
"""
import logging

from chalicelib.aws import metrics
from chalicelib.logs import log_event


class Unreadable(ValueError):
    """A record a consumer cannot read: its words say why, and never quote the record."""


def read_each(records, read, *, source, logger, message, ids, explained=(Unreadable,)):
    """[(position, value)] of the records `read` could read, in batch order, and how many it could not.

    A record whose `read` raises is logged at WARNING as `message` with `ids(record)` (a dict of
    log fields), its position and why: in the exception's own words for the `explained` types, by
    the exception's type for anything else (whose words might quote the record)."""
    readable, unreadable = [], 0
    for position, record in enumerate(records):
        try:
            readable.append((position, read(record)))
        except Exception as exc:  # noqa: BLE001 - reading is pure: a retry would fail the same way forever
            unreadable += 1
            why = str(exc) if isinstance(exc, explained) else f"unreadable ({type(exc).__name__})"
            log_event(logger, message, level=logging.WARNING, **ids(record), position=position, error=why[:500])
    if unreadable:
        metrics.emit("MalformedEvents", unreadable, Source=source)
    return readable, unreadable


def partial_failure(item_identifiers):
    """Lambda's answer for a batch of a mapping with ReportBatchItemFailures: the records to deliver again
    (a Kinesis or DynamoDB stream's sequence numbers, an SQS queue's message ids); none: all done."""
    return {"batchItemFailures": [{"itemIdentifier": identifier} for identifier in item_identifiers]}
