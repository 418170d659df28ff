"""batches.read_each: how the Kinesis and SNS consumers read a Lambda batch. The consumers' own tests
(test_connect.py, test_ses_events.py) go end to end; these pin the shared rules on their own."""
import json
import logging
from datetime import UTC, datetime

import pytest

from chalicelib import ses_feedback
from chalicelib.batches import Unreadable, read_each

PHONE = "+8613912345678"
logger = logging.getLogger("sla_clock.test_batches")


def malformed_events(capsys):
    """(value, Source) of each MalformedEvents metric printed (Lambda's stdout becomes EMF metrics)."""
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return [(d["MalformedEvents"], d["Source"]) for d in documents if "MalformedEvents" in d]


def read(record):
    if record == "garbled":
        raise Unreadable("not JSON")
    if record == "odd":
        raise ValueError(f"invalid literal: {PHONE!r}")  # Python's own words may quote the record
    if record == "deep":
        raise RecursionError("maximum recursion depth exceeded")
    return record.upper()


def test_unreadable_records_are_skipped_logged_by_position_and_counted_once_per_batch(capsys, caplog):
    caplog.set_level(logging.WARNING, logger="sla_clock.test_batches")
    readable, unreadable = read_each(["a", "garbled", "b", "odd", "deep"], read, source="probe", logger=logger,
                                     message="record skipped", ids=lambda record: {"record_id": len(record)})
    assert readable == [(0, "A"), (2, "B")] and unreadable == 3
    warnings = [r.fields for r in caplog.records if r.getMessage() == "record skipped"]
    assert [(w["position"], w["record_id"], w["error"]) for w in warnings] == [
        (1, 7, "not JSON"), (3, 3, "unreadable (ValueError)"), (4, 4, "unreadable (RecursionError)")]
    assert PHONE not in caplog.text
    assert malformed_events(capsys) == [([3.0], "probe")]


def test_a_batch_read_whole_writes_no_metric(capsys):
    assert read_each(["a"], read, source="probe", logger=logger, message="record skipped",
                     ids=lambda record: {}) == ([(0, "A")], 0)
    assert malformed_events(capsys) == []


@pytest.mark.parametrize("record", [{"Sns": {"MessageId": "m-1"}}, {"Sns": "x"}, {}, None],
                         ids=["no-message", "envelope-a-string", "no-envelope", "none"])
def test_an_sns_record_of_another_shape_is_unreadable_not_raised(capsys, caplog, record):
    caplog.set_level(logging.WARNING, logger="sla_clock.ses_feedback")
    assert ses_feedback.consume([record], datetime.now(UTC)) == ["unreadable"]
    [warning] = [r.fields for r in caplog.records if r.getMessage() == "ses event unreadable"]
    assert warning["position"] == 0 and warning["error"]
    assert malformed_events(capsys) == [([1.0], "ses_events")]
