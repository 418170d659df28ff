"""The rules of SES feedback (chalicelib/core/feedback.py), whatever order SES's events arrive in: the
worst bounce wins, each fact is kept once, and only the email's own recipients are kept."""
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.feedback import BOUNCE_SEVERITY, Feedback, record

RECIPIENTS = ["a@x.example", "B@x.example"]
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
EVENTS = st.lists(st.tuples(
    st.sampled_from(["Delivery", "Bounce", "Complaint"]),
    st.sampled_from(["Permanent", "Undetermined", "Transient", None, "Weird"]),
    st.lists(st.sampled_from(["a@x.example", "b@X.example", "stranger@y.example"]), max_size=3),
), max_size=12)


def at(minute):
    return None if minute is None else START + timedelta(minutes=minute)


def applied(events):
    summary, per_recipient = Feedback(), ()
    for minute, (kind, bounce_type, addresses) in enumerate(events):
        summary, per_recipient = record(summary, per_recipient, RECIPIENTS, kind, at(minute),
                                        [(address, f"answer {minute}") for address in addresses], bounce_type)
    return summary, per_recipient


@given(EVENTS)
def test_the_worst_bounce_is_kept_with_the_time_it_first_arrived_and_each_fact_once(events):
    summary, per_recipient = applied(events)
    bounces = [(minute, BOUNCE_SEVERITY.get(bounce_type, 0)) for minute, (kind, bounce_type, _) in enumerate(events)
               if kind == "Bounce"]
    if not bounces:
        assert summary.bounced_at is None and summary.bounce_type is None
    else:
        worst = max(level for _, level in bounces)
        first = min(minute for minute, level in bounces if level == worst)
        assert BOUNCE_SEVERITY.get(summary.bounce_type, 0) == worst and summary.bounced_at == at(first)
    firsts = {kind: min((m for m, (k, _, _) in enumerate(events) if k == kind), default=None)
              for kind in ("Delivery", "Complaint")}
    assert summary.delivered_at == at(firsts["Delivery"]) and summary.complained_at == at(firsts["Complaint"])
    assert [f.address for f in per_recipient] == [r for r in RECIPIENTS
                                                  if any(r.lower() in [a.lower() for a in e[2]] for e in events)]
    assert applied(events + events[-1:]) == (summary, per_recipient)  # the last event again changes nothing


def test_a_recipient_keeps_the_answer_to_its_worst_bounce():
    summary, per_recipient = applied([("Bounce", kind, ["a@x.example"]) for kind in ("Transient", "Permanent",
                                                                                     "Transient")])
    [recipient] = per_recipient
    assert (recipient.bounce_type, recipient.diagnostic, recipient.bounced_at) == (
        "Permanent", "answer 1", at(1))
    assert summary.diagnostic is None  # the email's summary holds no address's answer
