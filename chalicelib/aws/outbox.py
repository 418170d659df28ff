"""The dedupe outbox and SES delivery: every notification is created once, sent at most once, and ends.

1. `outbox_entry` turns a due Notification into an outbox item; the caller creates it with a
   conditional put (in the API's own write transaction, or `enqueue` for the scanner), so a
   notification exists once however many scanners find it.
2. `claim` takes a short lease with a conditional update (only one sender at a time; for a retry
   known only by its keys, the same update reads it). The caller then decides, with the delivery
   rules of chalicelib/core/delivery.py, whether the notification still tells the truth (else it is
   recorded `superseded`, not sent) and what this try is (`delivery.Attempt`: the addresses and
   rendering to send, when to retry it, whether it is the last); `deliver` sends it through SES and
   marks it sent. Its writes ask for nothing back (`tables.write`).
3. Every claimed attempt ends in a record. An SES error is classified (`classify`): a rejection of
   the message itself fails at once, with its reason; anything else (throttling, 5xx, timeouts,
   network, and the configuration errors an operator can fix, which are also logged at ERROR for
   the alarm) is retried when the attempt says (growing backoff until 24 hours after the
   notification was created), then marked failed. So is anything else that raises while the email is
   prepared, rendered, encoded or sent (UNEXPECTED, logged at ERROR with its trace; `unprepared` for
   what raised while the caller prepared it): no entry stays pending, retried every scan for ever. An
   email the attempt refuses (no recipient left, or more than SES takes in one message) fails at
   once, its reason recorded, where the failed-notification alarm shows it.
4. Sent means sent once: once SES accepted, the mark is what `mark_sent` retries, never the send.
   The only window for a duplicate is a crash (or a table refusing writes for longer than
   RECORD_PATIENCE) between SES accepting and the mark: the lease then expires and a later scan
   sends again.
5. Webhook deliveries (chalicelib/aws/webhooks.py) live in the same outbox: created once, claimed under
   the same lease (`claim`), retried with the same backoff for 24 hours (`not_sent`), then failed;
   marked sent by the same `mark_sent`.
6. `build_message` makes the MIME message SES sends (multipart text and HTML, attachments); locally
   (`make run`) `_keep_copy` also writes it to an .eml file.
7. The scanner paces its sends to the account's maximum send rate (`max_send_rate`, chalicelib/pacing.py):
   `deliver` waits for the send slot it is given, and reports a throttle to it.

An entry ends as `sent`, `failed` (with its `last_error`), `superseded`, or is created `skipped` (with its
`reason`, never sent); only `pending` is retried, and never past the last try its attempts allow.

Threads: one SES client per process (`ses()`), created before a scan starts its workers; botocore
clients are thread-safe, so the workers share it. Nothing else here is shared between threads: each
worker holds its own outbox items.
"""
import binascii
import functools
import logging
import re
import time
import uuid
from datetime import timedelta
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import quote_plus

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PynamoDBException, QueryError

from chalicelib import settings
from chalicelib.aws import metrics, timeouts
from chalicelib.aws.tables import (
    CONNECTIONS,
    NotificationModel,
    RecipientFeedbackAttribute,
    shard_of,
    write,
    written_if_it_holds,
)
from chalicelib.core.emails import CUSTOMER_KINDS, REPORT_URGENCY, Rendered
from chalicelib.core.feedback import Feedback, record
from chalicelib.core.fields import one_line
from chalicelib.core.webhook_rules import is_delivery
from chalicelib.logs import log_event, pseudonym

LEASE = timedelta(minutes=2)
RECORD_PATIENCE = 5.0  # seconds the record of an accepted send is retried (mark_sent)
FIRST_RECORD_PAUSE = 0.05  # seconds before its first retry; each pause doubles the last
RETENTION = timedelta(days=400)  # a year of history for reports, then DynamoDB TTL removes it
SEND_RATE_VARIABLE = "SLA_SES_MAX_SEND_RATE"
WEBHOOK_KIND = "webhook"  # outbox entries POSTed to a webhook (chalicelib/aws/webhooks.py)
SKIPPED = "skipped"  # created never to be sent (its `reason` says why)
SUPERSEDED = "superseded"  # no longer true (or its request's personal data was erased): never sent
logger = logging.getLogger("sla_clock.notify")
_ses = None
_sleep = time.sleep  # between the tries of a record (tests pass over it)
_last_quota_rate = 1.0  # SES's lowest maximum send rate, until GetSendQuota has answered once


def ses():
    """One SES client per process (Lambda reuses it across invocations), shared by the scanner's threads;
    a call gives up after timeouts.SES.worst seconds."""
    global _ses
    if _ses is None:
        current = settings.current()
        _ses = boto3.client("ses", region_name=current.region, endpoint_url=current.endpoint_url,
                            config=timeouts.SES.config(max_pool_connections=CONNECTIONS))
        _ses.meta.events.register("before-call.ses.SendRawEmail", _form_encoded_once)
    return _ses


def _form_encoded_once(params, **kwargs):
    """botocore form-encodes a query call's body each time the body is read, to sign it and again to
    send it, a Python loop over every character of the raw message's base64 each time. Encoded here
    once, and the base64 by three replacements, the same text is signed and sent."""
    body = params.get("body")
    if isinstance(body, dict):
        params["body"] = "&".join(f"{quote_plus(key)}={_form_value(value)}" for key, value in body.items())


_BASE64 = re.compile(r"[A-Za-z0-9+/=]*")


def _form_value(value):
    """`value` as urllib's quote_plus writes it in a form: of base64's alphabet it escapes just these three."""
    if isinstance(value, str) and _BASE64.fullmatch(value):
        return value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return quote_plus(value)


def configured_send_rate():
    """Emails per second from SLA_SES_MAX_SEND_RATE, read at call time; None when unset (or unusable,
    which is logged: the account's quota is used then)."""
    value = settings.current().ses_max_send_rate or ""
    if not value:
        return None
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not 0 < rate < float("inf"):
        log_event(logger, "ignoring an unusable send rate", level=logging.ERROR, variable=SEND_RATE_VARIABLE,
                  value=value)
        return None
    return rate


def max_send_rate():
    """Emails per second this scan may send: the configured rate when set, else the account's
    MaxSendRate from SES GetSendQuota (one call). When SES cannot say, the last rate it said
    in this process (SES's lowest, 1 a second, before it ever answered): sending slowly loses nothing."""
    global _last_quota_rate
    configured = configured_send_rate()
    if configured is not None:
        return configured
    try:
        _last_quota_rate = float(ses().get_send_quota()["MaxSendRate"]) or _last_quota_rate
    except (ClientError, BotoCoreError) as exc:
        level = logging.ERROR if classify(exc) == OPERATOR else logging.WARNING
        log_event(logger, "send quota unknown, keeping the last known rate", level=level,
                  rate=_last_quota_rate, error=f"{type(exc).__name__}: {exc}")
    return _last_quota_rate


def outbox_entry(request, notification, policy, now):
    """The outbox item of a request's notification (alerts.Notification); recorded as skipped, never
    sent, when the notification says why it is not sent."""
    entry = new_entry(request.request_id, request.contract_id, notification.key, notification.kind,
                      notification.recipients, notification.rendered(policy.notify.language), policy, now,
                      urgency=notification.urgency, skipped=notification.skipped)
    entry.due_at = notification.due_at.timestamp() if notification.due_at is not None else None
    return entry


def new_entry(owner_id, contract_id, key, kind, recipients, rendered, policy, now, urgency=REPORT_URGENCY,
              attachments=None, skipped=None):
    """An outbox item, pending. `owner_id` is the request id, or "contract#<id>" for contract mail.
    `attachments`: files sent with it (see build_message). `skipped`: the reason it is never sent (an
    alerts reason such as "backdated"): the item is then created SKIPPED, outside the pending index,
    so no sender ever claims it; it stays as the record of what was not sent and why."""
    return NotificationModel(
        owner_id,
        key,
        contract_id=contract_id,
        kind=kind,
        status=SKIPPED if skipped else "pending",
        reason=skipped,
        recipients=list(recipients),
        sender=policy.notify.sender or settings.current().default_sender,
        sender_name=policy.notify.sender_name,
        reply_to=policy.notify.reply_to if kind in CUSTOMER_KINDS else None,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attachments=attachments,
        attempts=0,
        created_at=now,
        pending_shard=None if skipped else shard_of(f"{owner_id}|{key}"),
        retry_at=None if skipped else now.timestamp(),
        urgency=urgency,
        expires_at=now + RETENTION,
    )


def enqueue(entry, leased=False):
    """Create the entry unless it exists already; True when this call created it. `leased`: created
    under the lease claim() would take, for a sender that tries it right away (deliver(claimed=True)),
    which saves the claim's round trip; release() gives the lease back if it goes unsent."""
    if leased:
        entry.lease_until = (entry.created_at + LEASE).timestamp()
    return written_if_it_holds(lambda: entry.save(condition=NotificationModel.key.does_not_exist()))


def deliver(entry, now, attempt, slot=None):
    """Send one claimed entry as `attempt` (a core.delivery.Attempt: the addresses and rendering to
    send now, and what its failure records) says. Returns "sent", "pending" (will retry) or "failed".

    `slot` (a pacing.Slot), when given: waited for right before calling SES, told of a throttle.
    Every outcome is recorded: whatever raises while encoding or sending is a failed attempt
    (`not_sent`), so no entry stays pending past its last try.
    """
    try:
        refreshed = _refresh(entry, attempt)
        message = None if attempt.refusal else build_message(
            entry.sender, entry.recipients, attempt.rendered,
            headers={"X-SLA-Notification": f"{entry.request_id}|{entry.key}"}, attachments=entry.attachments,
            sender_name=entry.sender_name, reply_to=entry.reply_to)
        raw = None if attempt.refusal else message.as_bytes()
    except Exception as exc:  # noqa: BLE001 - a failed attempt like any other: retried, then failed, never stuck
        return unprepared(entry, attempt, exc, now)
    if attempt.refusal:
        return not_sent(entry, attempt, attempt.refusal, REJECTED, now)
    # SES publishes delivery, bounce and complaint events of mail sent through the configuration set.
    configuration_set = settings.value("ses_configuration_set")
    if slot is not None:
        slot.wait()
    try:
        answer = ses().send_raw_email(
            Source=entry.sender, Destinations=list(entry.recipients), RawMessage={"Data": raw},
            **({"ConfigurationSetName": configuration_set} if configuration_set else {}),
        )
    except (ClientError, BotoCoreError) as exc:
        if slot is not None and is_rate_throttle(exc):
            slot.throttled()
        return not_sent(entry, attempt, describe(exc), classify(exc), now)
    except Exception as exc:  # noqa: BLE001 - no answer from SES: retried, as a timeout would be
        return not_sent(entry, attempt, describe(exc), UNEXPECTED, now, exc)
    mark_sent(entry, attempt.number, now, {"message_id": answer.get("MessageId"), **refreshed})
    copy = _keep_copy(entry, message, now, answer.get("MessageId"))
    # Pseudonyms of the recipients, never their addresses, and never the subject (it may name people).
    log_event(logger, "notification sent", request_id=entry.request_id, key=entry.key, kind=entry.kind,
              to_hashes=[pseudonym(address) for address in entry.recipients], attempts=attempt.number, eml=copy)
    return "sent"


def _refresh(entry, attempt):
    """Set on `entry` what `attempt` sends; returns the attributes that changed, which the mark of a
    sent entry stores."""
    rendered = attempt.rendered
    now_reads = {"recipients": list(attempt.recipients), "subject": rendered.subject, "text": rendered.text,
                 "html": rendered.html}
    refreshed = {name: value for name, value in now_reads.items() if getattr(entry, name) != value}
    for name, value in refreshed.items():
        setattr(entry, name, value)
    return refreshed


def stored_email(entry):
    """What a claimed entry holds to send, as core.delivery.email takes it: kind, recipients, rendering,
    creation time and the tries made so far."""
    return {"kind": entry.kind, "recipients": tuple(entry.recipients or ()), "rendered": rendering(entry),
            "created_at": entry.created_at, "attempts": int(entry.attempts)}


def claim(entry, now, read=False):
    """Take the entry's short lease: True when this caller may try it now; False when it is sent,
    failed, superseded, or another sender holds the lease. `read`: `entry` holds only its keys (a
    retry found in the pending index); the lease's conditional update answers with the stored item,
    so claiming it reads it too."""
    lease_free = NotificationModel.lease_until.does_not_exist() | (NotificationModel.lease_until < now.timestamp())
    condition = (NotificationModel.status == "pending") & lease_free
    lease_until = (now + LEASE).timestamp()
    if read:
        return written_if_it_holds(
            lambda: entry.update(actions=[NotificationModel.lease_until.set(lease_until)], condition=condition))
    return written_if_it_holds(lambda: write(entry, {"lease_until": lease_until}, condition=condition))


def release(entry):
    """Give back the lease of an entry created leased (enqueue) that its creator did not try: the next
    scan may send it at once rather than after the lease. True when released; False when it is no
    longer pending under that lease."""
    held = (NotificationModel.status == "pending") & (NotificationModel.lease_until == entry.lease_until)
    return written_if_it_holds(lambda: write(entry, {"lease_until": None}, condition=held))


def mark_sent(entry, attempts, now, more=None):
    """A claimed entry was accepted (by SES, or a webhook's receiver): it leaves the pending index.
    Of the attributes only a pending entry needs, those it holds are removed: the entry is as its
    creation or its claim's read left it, and each action of an update costs CPU on both sides.

    The send cannot be taken back, so it is this write that is retried when it fails (after
    botocore's own retries): with growing pauses for up to RECORD_PATIENCE seconds, well within the
    lease, which keeps every other sender away meanwhile, and within the margin a scan's budget keeps
    for the item in hand. Only when the table refuses all that long does it raise, logged: the lease
    then runs out and a later scan sends the entry again, as after a crash between send and mark."""
    spent = {name: None for name in ("last_error", "lease_until", "pending_shard", "retry_at")
             if getattr(entry, name) is not None}
    fields = {"status": "sent", "attempts": attempts, "sent_at": now, **spent, **(more or {})}
    give_up, pause = time.monotonic() + RECORD_PATIENCE, FIRST_RECORD_PAUSE
    while True:
        try:
            write(entry, fields)
            return
        except (PynamoDBException, ClientError, BotoCoreError) as exc:
            if time.monotonic() + pause > give_up:
                log_event(logger, "notification sent but not recorded: it may be sent again", level=logging.ERROR,
                          request_id=entry.request_id, key=entry.key, kind=entry.kind, error=describe(exc))
                raise
            log_event(logger, "recording a sent notification failed, retrying", level=logging.WARNING,
                      request_id=entry.request_id, key=entry.key, error=describe(exc), pause=pause)
        _sleep(pause)
        pause *= 2


def rendering(entry):
    """The subject and bodies an outbox entry holds."""
    return Rendered(subject=entry.subject, text=entry.text, html=entry.html)


# Every email is automatic (RFC 3834): auto-responders (out-of-office replies) must not answer it, and
# Exchange, which reads its own header, is asked not to either. Non-delivery reports stay allowed: they
# are the bounces SES reports back (core.feedback), so "All" would hide a dead address.
AUTOMATIC = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "DR, RN, NRN, OOF, AutoReply"}


def build_message(sender, recipients, rendered, headers=None, attachments=(), sender_name=None, reply_to=None):
    """A multipart/alternative (text, HTML) UTF-8 message (an emails.Rendered) for SES send_raw_email:
    `msg.as_bytes()`. `attachments`: [{"filename", "content_type" ("text/csv"), "content" (text)}], sent as
    UTF-8 files after the body (the message becomes multipart/mixed).

    From is `sender` (an address) with `sender_name` as its display name, an RFC 2047 encoded word
    when it is not ASCII; SES's Source stays the bare address. `reply_to`: the Reply-To address, or
    None for none. Every message is marked automatic (AUTOMATIC).

    The message uses CRLF line ends and 7-bit-safe bodies (base64 for non-ASCII), as SMTP expects. It has
    no Date or Message-ID: SES sets both when it accepts a message, replacing any we would give.
    """
    recipients = list(recipients)
    if not recipients:
        raise ValueError("an email needs at least one recipient")
    message = EmailMessage(policy=SMTP)
    _put_header(message, "Subject", one_line(rendered.subject))  # an entry stored before text was checked, too
    written_name, address = parseaddr(sender)  # SLA_DEFAULT_SENDER may be written "Name <address>"
    _put_address(message, "From", Address(display_name=one_line(sender_name or written_name),
                                          addr_spec=address or sender))
    _put_header(message, "To", ", ".join(recipients), text=False)
    if reply_to:
        _put_address(message, "Reply-To", Address(addr_spec=reply_to))
    for name, value in (AUTOMATIC | (headers or {})).items():
        _put_header(message, name, str(value))
    if attachments or rendered.text.isascii() or rendered.html.isascii():
        message.set_content(rendered.text, subtype="plain", charset="utf-8", cte=_cte(rendered.text))
        message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte=_cte(rendered.html))
    else:  # the usual notification: both bodies in base64
        message.set_raw("MIME-Version", "1.0")
        message.set_raw("Content-Type", f'multipart/alternative; boundary="{"=" * 15}{uuid.uuid4().hex}=="')
        message.set_payload([_base64_text(rendered.text, "plain"), _base64_text(rendered.html, "html")])
    for attachment in attachments or ():
        maintype, subtype = attachment["content_type"].split("/", 1)
        message.add_attachment(attachment["content"].encode("utf-8"), maintype=maintype, subtype=subtype,
                               filename=attachment["filename"], params={"charset": "utf-8"})
    return message


def _base64_text(body, subtype):
    """A text/`subtype` UTF-8 part in base64 as EmailMessage.set_content(cte="base64") makes it (CRLF line
    ends, lines of 76 characters), without its header parsing."""
    part = EmailMessage(policy=SMTP)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "base64")
    data = b"\r\n".join(body.encode("utf-8").splitlines()) + b"\r\n"
    step = SMTP.max_line_length // 4 * 3
    part.set_payload("".join(binascii.b2a_base64(data[at:at + step]).decode("ascii")
                             for at in range(0, len(data), step)))
    return part


def _put_header(message, name, value, text=True):
    """Set header `name` as the SMTP policy writes it, without the policy's parse on setting and refold
    on writing, which cost more than the rest of a message: a short ASCII value as it is, other `text`
    as RFC 2047 encoded words folded within the line length. What is neither (a long ASCII value, an
    address list with a name to encode) is left to the policy. A line break is refused, as the policy
    refuses it (no header injection)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} may not contain a line break")
    if value.isascii() and len(name) + 2 + len(value) <= SMTP.max_line_length:
        message.set_raw(name, value)
    elif text and not value.isascii():
        message.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep=SMTP.linesep))
    else:
        message[name] = value


def _put_address(message, name, address):
    """An address header (a headerregistry.Address: checked as it is built) with its display name encoded."""
    _put_header(message, name, formataddr((address.display_name, address.addr_spec), charset="utf-8"))


def _cte(body):
    return None if body.isascii() else "base64"  # None: 7bit, or quoted-printable for long lines


def superseded(entry, now):
    """A claimed entry no longer tells the truth: recorded as superseded, never sent."""
    write(entry, {"status": "superseded", "superseded_at": now, "lease_until": None, "pending_shard": None,
                  "retry_at": None})
    log_event(logger, "notification superseded", request_id=entry.request_id, key=entry.key, kind=entry.kind)
    return "superseded"


# SES error codes (SendRawEmail) by what can be done about them. A code not listed here is retried:
# losing an alert to an unknown error is worse than retrying it for a day.
TRANSIENT = "transient"  # throttling, service errors, timeouts, network: retried quietly
OPERATOR = "operator"  # the account or identity needs an operator: retried, and logged at ERROR
REJECTED = "rejected"  # the message itself (recipient, content) is refused: failed at once
UNEXPECTED = "unexpected"  # an exception nobody planned for (a bug, odd data): retried, logged at ERROR with its trace
_OPERATOR_CODES = frozenset({
    "AccountSendingPausedException", "ConfigurationSetSendingPausedException", "ConfigurationSetDoesNotExist",
    "ConfigurationSetDoesNotExistException", "MailFromDomainNotVerifiedException", "AccessDenied",
    "AccessDeniedException", "SendingPausedException",
})
_IDENTITY_PHRASES = ("not verified", "not authorized", "did not have authority")
_REJECTED_CODES = frozenset({"MessageRejected", "InvalidParameterValue", "InvalidParameterValueException"})
_THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException"})


def is_rate_throttle(exc):
    """SES refused a send for going too fast (not for the daily quota, which slowing down does not help)."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code", "") in _THROTTLING_CODES and "quota" not in error.get("Message", "").lower()


def classify(exc):
    """TRANSIENT, OPERATOR or REJECTED for an SES (botocore) error."""
    if not isinstance(exc, ClientError):
        return TRANSIENT  # connection errors, read timeouts and the like never reached a decision
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if code in _OPERATOR_CODES or any(phrase in message.lower() for phrase in _IDENTITY_PHRASES):
        return OPERATOR  # an unverified or unauthorized sender (or sandbox recipient) is MessageRejected too
    if code in _REJECTED_CODES:
        return REJECTED
    if code in _THROTTLING_CODES and "quota" in message.lower():
        return OPERATOR  # the daily quota: retried, but someone should raise it
    if status >= 500 or code in _THROTTLING_CODES | {"ServiceUnavailable", "InternalFailure", "RequestTimeout"}:
        return TRANSIENT
    return OPERATOR


def describe(exc):
    """An exception as an entry's last_error shows it: its type and message."""
    return f"{type(exc).__name__}: {exc}"


def unprepared(entry, attempt, exc, now):
    """A claimed email's attempt raised `exc` before SES was called (while its request or contract was
    read, or it was rendered or encoded): an AWS call that failed is retried quietly; anything else is
    UNEXPECTED. Returns "pending" or "failed", as not_sent."""
    kind = TRANSIENT if isinstance(exc, (ClientError, BotoCoreError, PynamoDBException)) else UNEXPECTED
    return not_sent(entry, attempt, describe(exc), kind, now, exc)


def not_sent(entry, attempt, error, kind, now, exc=None):
    """A claimed entry's `attempt` (core.delivery.Attempt) was not accepted (`error`, classified as
    TRANSIENT, OPERATOR, UNEXPECTED or REJECTED): retried when the attempt says, or failed once rejected
    or when it was the last. `exc`: the exception, whose trace an UNEXPECTED error logs. Returns
    "pending" or "failed"."""
    error = error[:1000]
    attempts = attempt.number
    final = kind == REJECTED or attempt.retry_at is None
    fields = {"attempts": attempts, "last_error": error, "lease_until": None}
    if final:
        fields.update(status="failed", pending_shard=None, retry_at=None)
    else:
        fields["retry_at"] = attempt.retry_at.timestamp()
    write(entry, fields)
    trace = {}
    if final:
        message, level = "notification failed", logging.ERROR
    elif kind in (OPERATOR, UNEXPECTED):
        # Alarmed: an operator can fix the account, and an unexpected error is a bug to look at.
        message, level = "notification blocked", logging.ERROR
        trace = {"exc_info": exc} if exc is not None and kind == UNEXPECTED else {}
    else:
        message, level = "notification not sent, will retry", logging.WARNING
    log_event(logger, message, level=level, request_id=entry.request_id, key=entry.key, kind=entry.kind,
              attempts=attempts, error=error, error_class=kind, **trace)
    return "failed" if final else "pending"


def erase(entry, changes, now):
    """Store what erasing its request's personal data changes on an email (`changes`, from
    core.personal_data.notification_erasure). Superseding holds only while it is pending: False when
    it was sent meanwhile (read it again and erase what it holds now)."""
    fields = {name: value for name, value in changes.items() if name not in ("feedback", "status")}
    if "feedback" in changes:
        kept = {f.address: f.diagnostic for f in changes["feedback"]}
        fields["recipients_feedback"] = [
            RecipientFeedbackAttribute(**{**f.as_dict(), "diagnostic": kept[f.address]})
            for f in entry.recipients_feedback or () if f.address in kept] or None
    condition = None
    if changes.get("status") == SUPERSEDED:
        fields.update(status=SUPERSEDED, superseded_at=now, lease_until=None, pending_shard=None, retry_at=None)
        condition = NotificationModel.status == "pending"
    return written_if_it_holds(lambda: write(entry, fields, condition=condition))


def is_webhook(entry):
    """A webhook delivery (outbox key "webhook|…"), told apart on the pending index's projection too."""
    return is_delivery(entry.key)


def deliver_quietly(attempts, now):
    """Deliver emails right after an API write: `attempts` is [(entry, core.delivery.Attempt)], each
    claimed here and sent as its attempt says. Never raises: the notification stays pending for the
    scanner. Webhook deliveries are the scanner's: a slow receiver must not slow the API.

    The API waits for SES at most timeouts.SES.worst seconds (one attempt, then the entry's lease is
    given back with its retry time). Once one email was not sent the others are not tried: SES is
    failing, and each try would make the caller wait again. They wait, pending, for the scan."""
    collector = metrics.Collector()
    for entry, attempt in attempts:
        try:
            outcome = deliver(entry, now, attempt) if claim(entry, now) else "busy"
        except Exception as exc:  # noqa: BLE001 - the API call must not fail because mail did
            log_event(logger, "notification delivery deferred", level=logging.WARNING,
                      request_id=entry.request_id, key=entry.key, error=f"{type(exc).__name__}: {exc}")
            break
        collector.delivery(entry, outcome)
        if outcome == "pending":
            break
    collector.flush()


def pending_due(now, shards):
    """Keys (with urgency, deadline and kind) of pending notifications whose retry time has come.

    While the index is replaced (a stage upgraded to a new projection of it: deleted, created, then
    backfilled) DynamoDB refuses to read it: no retry is found meanwhile. They wait, pending, for a
    scan after the backfill; what a scan creates is still sent."""
    try:
        for shard in shards:
            yield from NotificationModel.pending.query(shard, NotificationModel.retry_at <= now.timestamp())
    except (QueryError, ValueError) as exc:
        if not _index_not_readable(exc):
            raise
        log_event(logger, "pending index not readable yet, retries wait", level=logging.WARNING, error=str(exc))


def keys_only(request_id, key):
    """An entry known by its keys alone (a retry in the pending index): `deliver(..., read=True)`
    reads the rest with its claim."""
    return NotificationModel(request_id, key)


def stored_entry(request_id, key):
    """One outbox entry, read consistently (its status may have changed a moment ago)."""
    return NotificationModel.get(request_id, key, consistent_read=True)


def of_request(request_id):
    return list(NotificationModel.query(request_id, consistent_read=True))


def newest_of_request(request_id, limit, start_key=None):
    """Up to `limit` of a request's notifications, newest first, from the creation-time index: those
    after `start_key` (an index key, where a previous page ended) or the newest of all. Exactly one
    Query of at most `limit` items, whatever the number of entries; each holds what its document shows.

    While DynamoDB builds the index (a stage upgraded to it: CloudFormation does not wait for the
    backfill) it refuses to read it; the request's every entry is read instead, in the same order."""
    try:
        results = NotificationModel.by_request_created.query(request_id, scan_index_forward=False, limit=limit,
                                                              last_evaluated_key=start_key)
        return [NotificationModel.from_raw_data(raw) for raw in next(results.page_iter)["Items"]]
    except QueryError as exc:
        if not _index_not_readable(exc):
            raise
        log_event(logger, "notifications index not readable yet, reading every entry", level=logging.WARNING,
                  request_id=request_id, error=exc.cause_response_message)
    newest = sorted(of_request(request_id), key=_index_position, reverse=True)
    if start_key is not None:
        after = (start_key["created_at"]["S"], start_key["key"]["S"])
        newest = [entry for entry in newest if _index_position(entry) < after]
    return newest[:limit]


def _index_not_readable(exc):
    """Whether a Query failed because DynamoDB does not serve the index yet: it is being built (CloudFormation
    does not wait for the backfill) or does not exist yet (DynamoDB says so, or PynamoDB, from the table's
    description it read when the process started)."""
    if isinstance(exc, ValueError):
        return "has no index" in str(exc)
    message = exc.cause_response_message or ""
    return exc.cause_response_code == "ValidationException" and any(
        phrase in message for phrase in ("backfilling global secondary index", "specified index"))


def _index_position(entry):
    """Where an entry sorts in the creation-time index: by time, then by key."""
    return NotificationModel.created_at.serialize(entry.created_at), entry.key


def by_message_id(message_id):
    """The entry SES accepted under `message_id`, or None (never ours, or expired)."""
    for key in NotificationModel.by_message_id.query(message_id, limit=1):
        try:
            return NotificationModel.get(key.request_id, key.key, consistent_read=True)
        except NotificationModel.DoesNotExist:
            return None
    return None


FEEDBACK_TRIES = 5  # conflicting changes of one entry's SES feedback before the event is left to Lambda's retry


def record_feedback(entry, kind, at, reported, bounce_type=None):
    """Record an SES event of `kind` (core.feedback) on `entry`, read consistently (by_message_id):
    `reported` ((address, diagnostic), ...) the recipients it names. Returns (before, after, recorded):
    the email's summary Feedback before and after the event, and whether the event changed anything
    (for the email or one of its recipients); when it did not, nothing is written.

    The write holds only while nobody changed the feedback since it was read (`feedback_changes`):
    on a conflict (another event of the same email at the same moment) the entry is read again and
    the event applied anew. A DynamoDB error raises (Lambda retries the event; a repeat changes nothing)."""
    for _ in range(FEEDBACK_TRIES):
        summary, recipients_feedback = feedback_of(entry)
        after, updated = record(summary, recipients_feedback, entry.recipients, kind, at, reported, bounce_type)
        if after == summary and updated == recipients_feedback:
            return summary, summary, False
        changes = entry.feedback_changes
        fields = {name: getattr(after, name) for name in SUMMARY_FIELDS
                  if getattr(after, name) != getattr(summary, name)}
        if updated != recipients_feedback:
            fields["recipients_feedback"] = [RecipientFeedbackAttribute(**vars(f)) for f in updated]
        fields["feedback_changes"] = int(changes or 0) + 1
        unchanged = (NotificationModel.feedback_changes.does_not_exist() if changes is None
                     else NotificationModel.feedback_changes == changes)
        if written_if_it_holds(functools.partial(write, entry, fields, condition=unchanged)):
            return summary, after, True
        entry.refresh(consistent_read=True)
    raise RuntimeError(f"the SES feedback of {entry.request_id}|{entry.key} changed under {FEEDBACK_TRIES} "
                       "tries in a row")


SUMMARY_FIELDS = ("delivered_at", "bounced_at", "bounce_type", "complained_at")


def feedback_of(entry):
    """The SES feedback stored on `entry`: (summary Feedback, (Feedback per recipient, ...))."""
    summary = Feedback(**{name: getattr(entry, name) for name in SUMMARY_FIELDS})
    return summary, tuple(Feedback(**r.as_dict()) for r in entry.recipients_feedback or ())


def exists(owner_id, key):
    """Was the notification `key` of `owner_id` created (whatever became of it)? One consistent read."""
    try:
        NotificationModel.get(owner_id, key, consistent_read=True, attributes_to_get=["key"])
        return True
    except DoesNotExist:
        return False


def latest_of(owner_id, key_prefix):
    """The entry of `owner_id` whose key is the greatest of those starting with `key_prefix`, or None."""
    found = NotificationModel.query(owner_id, NotificationModel.key.startswith(key_prefix),
                                    scan_index_forward=False, limit=1, consistent_read=True)
    return next(iter(found), None)


_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")


def _keep_copy(entry, message, now, ses_message_id):
    """Locally (`make run`, SLA_EML_DIR), keep every accepted email as an .eml file; returns its path.

    The file is the message as SES received it plus the two headers SES adds on acceptance, so a mail
    client shows and threads it as a recipient would: Date (the send time) and Message-ID (the MessageId
    SES answered, in the form SES gives it in us-east-1; a made-up one only if it answered none). The
    message sent carries neither: SES replaces both when it accepts a message. The name keeps to letters,
    digits, '-', '_' and '.', which every file system accepts (owner ids hold '#', keys '|').
    """
    folder = settings.value("eml_dir")
    if not folder:
        return None
    message["Date"] = format_datetime(now)
    if ses_message_id:
        message["Message-ID"] = f"<{ses_message_id}@email.amazonses.com>"
    else:
        message["Message-ID"] = make_msgid(domain=parseaddr(entry.sender)[1].rpartition("@")[2] or "localhost")
    name = _UNSAFE_IN_FILE_NAMES.sub("_", f"{now:%Y%m%dT%H%M%S}-{entry.request_id}-{entry.key}")
    path = Path(folder) / f"{name}.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.as_bytes())
    return str(path)
