"""What is personal in a request and its notifications, and what erasing it leaves (see docs/privacy.md).

A requester's personal data: their name and address, the request's `subject` and `description`, the
`note` of each event, and what the request's emails hold about them: the rendered content (which
quotes the subject and the name), the address among the recipients, and SES's feedback on it (the
address, and a bounce's diagnostic, which often quotes it). The SLA facts (times, priorities,
categories, outcomes, penalties) are not personal and stay: every report reads the same afterwards.

Pure: the use case reads the items, asks here what to change, and stores it.
"""
import hashlib
import re
from dataclasses import dataclass

from chalicelib.core.emails import RECHECKED_KINDS

ERASED = "[erased]"  # stands where an address was quoted in text that is otherwise kept
REQUEST_FIELDS = ("subject", "description", "requester")  # null once erased


def requester_key(contract_id, address):
    """The requester index's key of an address within a contract: the SHA-256 of the contract id and
    the address in lower case (addresses are one mailbox whatever their case). The contract id salts
    it, so the same address in two contracts gives two unrelated keys; the key is removed when the
    request is erased, so no hash of an erased address stays behind."""
    return hashlib.sha256(f"{contract_id}\n{address.lower()}".encode()).hexdigest()


def same_address(a, b):
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


def scrub(text, address):
    """`text` with every spelling of `address` (any case) replaced by ERASED; None stays None."""
    if text is None or not address:
        return text
    return re.sub(re.escape(address), ERASED, text, flags=re.IGNORECASE)


@dataclass(frozen=True)
class FeedbackKept:
    """One recipient's SES feedback as erasure leaves it (another recipient's, its diagnostic scrubbed)."""
    address: str
    diagnostic: str | None


def notification_erasure(entry, address):
    """The attributes to change on an email of an erased request (`entry`: its outbox item), None for
    none. Its rendered content goes (it quotes the subject and the requester's name), and so does the
    address among its recipients and SES's feedback on it; SES's later events about it are no longer
    matched to it (`message_id` goes: they would carry the address back). A pending one is superseded,
    unless it is a provider alert still addressed to someone: the scanner renders those anew from the
    request as it reads then, erased. Changes to the feedback of other recipients are returned under
    "feedback" as FeedbackKept, for the store to map."""
    recipients = [r for r in entry.recipients or () if not same_address(r, address)]
    feedback = [FeedbackKept(f.address, scrub(f.diagnostic, address))
                for f in entry.recipients_feedback or () if not same_address(f.address, address)]
    changes = {"subject": "", "text": "", "html": "", "attachments": None, "recipients": recipients,
               "last_error": scrub(entry.last_error, address), "message_id": None}
    stored = [FeedbackKept(f.address, f.diagnostic) for f in entry.recipients_feedback or ()]
    if feedback != stored:
        changes["feedback"] = feedback
    if entry.status == "pending" and not (entry.kind in RECHECKED_KINDS and recipients):
        changes["status"] = "superseded"
    if all(getattr(entry, name) == value for name, value in changes.items() if name not in ("feedback", "status")) \
            and "feedback" not in changes and "status" not in changes:
        return None
    return changes
