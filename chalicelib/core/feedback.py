"""What SES reported about an email after accepting it: per recipient, and for the email as a whole.

Each fact is kept once, at the time SES first reported it: the first delivery, the first complaint,
and the worst bounce (Permanent > Undetermined > Transient) with the time that kind was first seen.
A repeated event, or a bounce no worse than the one kept, changes nothing. The email's own summary
follows the same rule over all its recipients: its bounce is the worst any recipient had.

Pure: the caller reads the stored feedback, applies an event with `record`, and stores the result.
"""
from dataclasses import dataclass, replace
from datetime import datetime

# SES's bounce types, mildest first. A type SES does not document is kept as none (the bounce still is).
BOUNCE_SEVERITY = {"Transient": 1, "Undetermined": 2, "Permanent": 3}
DELIVERY, BOUNCE, COMPLAINT = "Delivery", "Bounce", "Complaint"
MAX_DIAGNOSTIC = 500  # characters of a receiving server's answer kept for one recipient


@dataclass(frozen=True)
class Feedback:
    """What SES reported about one recipient (`address`) of an email, or, without an address, about
    the email as a whole. `diagnostic`: the receiving server's answer to the bounce kept."""

    address: str | None = None
    delivered_at: datetime | None = None
    bounced_at: datetime | None = None
    bounce_type: str | None = None
    complained_at: datetime | None = None
    diagnostic: str | None = None

    def with_event(self, kind, at, bounce_type=None, diagnostic=None):
        """This feedback once SES reported `kind` at `at`; itself when that adds nothing."""
        if kind == DELIVERY:
            return self if self.delivered_at is not None else replace(self, delivered_at=at)
        if kind == COMPLAINT:
            return self if self.complained_at is not None else replace(self, complained_at=at)
        if kind != BOUNCE:
            raise ValueError(f"not an SES feedback event: {kind!r}")
        bounce_type = bounce_type if bounce_type in BOUNCE_SEVERITY else None
        if self.bounced_at is not None and severity(bounce_type) <= severity(self.bounce_type):
            return self
        kept = (diagnostic or "")[:MAX_DIAGNOSTIC] if self.address is not None else ""
        return replace(self, bounced_at=at, bounce_type=bounce_type, diagnostic=kept or None)


def severity(bounce_type):
    return BOUNCE_SEVERITY.get(bounce_type, 0)


def record(summary, recipients_feedback, recipients, kind, at, reported, bounce_type=None):
    """The email's feedback after an SES event of `kind` at `at`: (summary, recipients_feedback).

    `summary`: the Feedback of the whole email; `recipients_feedback`: a Feedback per recipient SES
    reported on, in the order of `recipients` (the email's addresses). `reported`: ((address,
    diagnostic), ...) as the event lists them; an address that is not one of `recipients` (in any
    letter case) is not kept, so the list never outgrows the email's recipients. The summary takes the
    event even when it names no recipient of ours. Unchanged parts come back as the same objects."""
    by_address = {f.address.lower(): f for f in recipients_feedback}
    diagnostics = {}
    for address, diagnostic in reported:
        diagnostics.setdefault(address.lower(), diagnostic)
    changed = False
    for recipient in recipients:
        name = recipient.lower()
        if name not in diagnostics:
            continue
        before = by_address.get(name) or Feedback(address=recipient)
        after = before.with_event(kind, at, bounce_type, diagnostics[name])
        if after != by_address.get(name):
            by_address[name], changed = after, True
    if changed:
        order = [r.lower() for r in recipients]
        recipients_feedback = tuple(sorted(by_address.values(), key=lambda f: _position(order, f.address)))
    return summary.with_event(kind, at, bounce_type), recipients_feedback


def _position(order, address):
    name = address.lower()
    return order.index(name) if name in order else len(order)
