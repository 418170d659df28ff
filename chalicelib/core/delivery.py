"""Delivery rules (see docs/clock.md): who is told of which kind, which customer notice is never sent,
which retry is checked again before it goes, how long to wait between tries and when to stop.

Pure: the use cases ask these rules and tell chalicelib/aws/outbox.py what to write and send; the outbox
keeps the records and leases and talks to SES, and decides none of this.
"""
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.core.emails import MAX_RECIPIENTS, RECHECKED_KINDS, Rendered, distinct_addresses

# Where each provider alert's addresses come from: its recipients, and the reason one with none left
# (the contract's lists were emptied since it was created) is not sent.
ADDRESSED_TO = {"warning": ("notify.provider",), "progress_reminder": ("notify.provider",),
                "breach": ("notify.provider", "notify.admins")}

# A customer notice about a moment longer ago than this when it is posted is history being imported:
# written to the customer now, it would promise a deadline long gone and tell of a reply they had
# weeks ago. It is recorded as skipped (reason BACKDATED), never sent.
NOTICE_HORIZON = timedelta(hours=1)
BACKDATED = "backdated"

# A notification not accepted is tried again after FIRST_RETRY, then after twice as long each time,
# never more than MAX_BACKOFF apart; the last try comes GIVE_UP_AFTER its creation, and then it fails.
FIRST_RETRY = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=15)
GIVE_UP_AFTER = timedelta(hours=24)


def addressees(kind, notify):
    """The addresses a provider alert of `kind` goes to, from the contract's notify lists (a breach
    escalates to the admins too), each mailbox once."""
    lists = {"notify.provider": notify.provider, "notify.admins": notify.admins}
    return tuple(distinct_addresses([address for name in ADDRESSED_TO[kind] for address in lists[name]]))


def nobody_to_tell(kind):
    """Why an email of `kind` that has no recipients (its contract's lists were emptied) is not sent."""
    lists = ADDRESSED_TO.get(kind)
    if not lists:
        return "no recipients"
    return f"no recipients: {' and '.join(lists)} {'are' if len(lists) > 1 else 'is'} empty"


def skip_reason(about, now):
    """Why a customer notice about the moment `about`, posted at `now`, is not sent: BACKDATED when
    `about` lies more than NOTICE_HORIZON before `now`; None when it is sent."""
    return BACKDATED if now - about > NOTICE_HORIZON else None


def rechecked(kind):
    """Whether a retry of `kind` (an email's kind, or the event a webhook delivery announces) is checked
    against its request's state before it goes: a provider alert may no longer hold (the deadline was
    met, the cycle moved on), and then it is superseded, never sent. Customer mail and reports tell of
    what happened: they go as they were written."""
    return kind in RECHECKED_KINDS


def retry_delay(attempts):
    """Backoff after `attempts` failed tries: 30 s, 1 min, 2 min, … capped at 15 min."""
    return min(MAX_BACKOFF, FIRST_RETRY * 2 ** min(attempts - 1, 16))


@dataclass(frozen=True)
class Attempt:
    """One try at a notification, decided before it is made: what to record if it is not accepted,
    and (for an email) what to send."""
    number: int  # 1 for the first try
    retry_at: datetime | None  # when a try that fails is made again; None: this is the last, a failure ends it
    recipients: tuple = ()  # an email's addresses, each mailbox once
    rendered: Rendered | None = None  # an email's subject and bodies
    refusal: str | None = None  # why the email cannot go to `recipients` (it then fails at once), or None


def attempt(created_at, attempts, now):
    """The try at `now` of a notification created at `created_at` and tried `attempts` times so far:
    retried with growing backoff, the last retry coming GIVE_UP_AFTER its creation at the latest."""
    number = int(attempts) + 1
    give_up_at = created_at + GIVE_UP_AFTER
    return Attempt(number, None if now >= give_up_at else min(now + retry_delay(number), give_up_at))


def email(kind, recipients, rendered, created_at, attempts, now):
    """The try at `now` of an email of `kind` to `recipients` (each mailbox once), reading `rendered`."""
    recipients = tuple(distinct_addresses(recipients or ()))
    return replace(attempt(created_at, attempts, now), recipients=recipients, rendered=rendered,
                   refusal=recipients_refusal(kind, recipients))


def recipients_refusal(kind, recipients):
    """Why an email of `kind` cannot go to `recipients` (none left, or more than SES takes in one
    message), or None. The contract is checked when it is stored; these are what an older version or
    an edit since the email was created can still leave."""
    count = len(recipients)
    if count == 0:
        return nobody_to_tell(kind)
    if count > MAX_RECIPIENTS:
        return (f"{count} recipients, more than the {MAX_RECIPIENTS} SES takes in one message: the contract's "
                "notify lists need shortening")
    return None
