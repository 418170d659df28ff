"""SES feedback: what SES reports after it accepted an email, recorded on the notification it concerns.

The stage's SES configuration set publishes delivery, bounce and complaint events to an SNS topic
the `ses_events` function subscribes to. Both shapes SES writes are read: event publishing
(`"eventType"`, from a configuration set) and identity notifications (`"notificationType"`), which
carry the same `mail`, `delivery`, `bounce` and `complaint` objects.

- The notification is found by the SES message id `outbox.deliver` stored when SES accepted it.
- What SES reported is kept per recipient (the address, and for a bounce the server's answer) and
  for the email as a whole (`delivered_at`, `bounced_at` + `bounce_type`, `complained_at`), by the
  rules of core/feedback.py: the first delivery and complaint, the worst bounce with its time. A
  repeated or milder event changes nothing and is counted as a repeat. `NotificationsBounced` counts
  each email once, when its first bounce is recorded.
- An event for a message id we do not know (sent by something else, or resent after a crash, which
  keeps the last id only) is counted and ignored; so is an event of another type, or a message that
  is not an SES event at all.
- A permanent bounce of the requester's address tells the contract's admins, once per request: the
  customer cannot be notified of anything until someone reaches them another way.

Unreadable input (not JSON, nested too deep, a field of another shape than SES writes) is logged with
the SNS message id, counted in the `MalformedEvents` metric and dropped, as batches.read_each does for
the Connect stream too: retrying cannot fix it. A DynamoDB or SES failure raises, so Lambda retries
the event, which the once-only writes make safe; what still fails after Lambda's retries goes to the
function's on-failure queue (docs/deploy.md).
"""
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from chalicelib import evaluation
from chalicelib.aws import metrics, outbox, store
from chalicelib.batches import Unreadable, read_each
from chalicelib.core import delivery
from chalicelib.core.alerts import local_time
from chalicelib.core.emails import render_requester_bounce
from chalicelib.core.feedback import MAX_DIAGNOSTIC
from chalicelib.logs import log_event

# The SES event types recorded, and the object of the event that describes each.
RECORDED = {"Delivery": "delivery", "Bounce": "bounce", "Complaint": "complaint"}
REQUESTER_BOUNCE_KEY = "bounce|requester"
logger = logging.getLogger("sla_clock.ses_feedback")


@dataclass(frozen=True)
class SesEvent:
    type: str  # "Delivery", "Bounce" or "Complaint"
    message_id: str
    at: datetime  # when SES saw it happen
    reported: tuple = ()  # ((address, diagnostic), ...): the recipients it concerns, the server's answer to each
    bounce_type: str | None = None  # "Permanent", "Transient" or "Undetermined"


def parse(message, now):
    """The SesEvent in an SNS message (a JSON string), None for another type of event. Unreadable (a
    ValueError) when it is no SES event at all, or one whose fields have other shapes than SES writes.
    `now` stands in for a missing or unreadable timestamp."""
    try:
        document = json.loads(message)
    except (TypeError, ValueError):
        raise Unreadable("the SNS message is not JSON") from None
    except RecursionError:
        raise Unreadable("the SNS message is JSON nested too deep to read") from None
    if not isinstance(document, dict):
        raise Unreadable("the SNS message is not a JSON object")
    kind = document.get("eventType") or document.get("notificationType")
    if not isinstance(kind, str):
        raise Unreadable("neither eventType nor notificationType")
    if kind not in RECORDED:
        return None
    mail = document.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise Unreadable("no mail.messageId")
    name = RECORDED[kind]
    detail = document.get(name)
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        raise Unreadable(f"{name} is not an object")
    listed = detail.get({"Delivery": "recipients", "Bounce": "bouncedRecipients",
                         "Complaint": "complainedRecipients"}[kind])
    if listed is None:
        listed = []
    if not isinstance(listed, list):
        raise Unreadable(f"the recipients of {name} are not a list")
    if kind == "Delivery":
        reported = [(address, "") for address in listed]
    else:
        reported = [(r.get("emailAddress"), r.get("diagnosticCode") if kind == "Bounce" else "")
                    for r in listed if isinstance(r, dict)]
    bounce_type = detail.get("bounceType") if kind == "Bounce" else None
    return SesEvent(
        type=kind, message_id=message_id, at=_instant(detail.get("timestamp"), now),
        reported=tuple((address, str(diagnostic or "")[:MAX_DIAGNOSTIC]) for address, diagnostic in reported
                       if isinstance(address, str)),
        bounce_type=bounce_type if isinstance(bounce_type, str) else None,
    )


def _instant(value, now):
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return now
    return moment if moment.tzinfo is not None else now


def consume(sns_records, now):
    """Record the SNS messages of a Lambda event (SNS invokes the function with one). Returns what
    became of each, in order: "recorded", "repeated" (already recorded), "unknown" (no notification
    has that message id), "ignored" (another event type) or "unreadable" (logged with the SNS message
    id, never its content, which holds addresses, and counted)."""
    readable, _ = read_each(sns_records, lambda record: parse(record["Sns"]["Message"], now), source="ses_events",
                            logger=logger, message="ses event unreadable", ids=_sns_ids)
    outcomes = ["unreadable"] * len(sns_records)
    for position, event in readable:
        outcomes[position] = _record(event, now)
    return outcomes


def _sns_ids(record):
    """What the log may say of an SNS record: its message id and the message's length."""
    sns = record.get("Sns") if isinstance(record, dict) else None
    sns = sns if isinstance(sns, dict) else {}
    message = sns.get("Message")
    return {"sns_message_id": sns.get("MessageId"), "length": len(message) if isinstance(message, str) else None}


def _record(event, now):
    """Record one SES event (None: another type of event) on its notification."""
    if event is None:
        return "ignored"
    entry = outbox.by_message_id(event.message_id)
    if entry is None:
        log_event(logger, "ses event for an unknown message", event=event.type, message_id=event.message_id)
        return "unknown"
    before, after, recorded = outbox.record_feedback(entry, event.type, event.at, event.reported, event.bounce_type)
    # Ids and what changed only: which address it was, and the server's answer (which often quotes the
    # address), are on the notification with the rest of the request's personal data, where agents see them.
    log_event(logger, f"ses {event.type.lower()} recorded" if recorded else f"ses {event.type.lower()} repeated",
              level=logging.WARNING if recorded and event.type != "Delivery" else logging.INFO,
              request_id=entry.request_id, key=entry.key, kind=entry.kind, message_id=event.message_id,
              recipients=len(event.reported), bounce_type=event.bounce_type, worst_bounce_type=after.bounce_type)
    if before.bounced_at is None and after.bounced_at is not None:
        metrics.emit("NotificationsBounced", contract_id=entry.contract_id)
    if event.type == "Bounce" and event.bounce_type == "Permanent":
        _tell_admins_of_requester_bounce(entry, event, now)  # also on a repeat: a retry finishes what failed
    return "recorded" if recorded else "repeated"


def _tell_admins_of_requester_bounce(entry, event, now):
    """When the requester's own address bounced for good: one email to the contract's admins per request."""
    item = store.get_request(entry.request_id)  # None for contract mail ("contract#<id>"), or a request gone
    if item is None:
        return
    requester = str((item.requester or {}).get("email", "")).lower()  # None: erased, nobody to tell about
    bounced, diagnostic = next(((a, d) for a, d in event.reported if a.lower() == requester), (None, ""))
    if not requester or bounced is None:
        return
    policy = evaluation.policy_of(store.latest_record(item.contract_id))
    if not policy.notify.admins:
        log_event(logger, "requester bounce: the contract names no admins", level=logging.WARNING,
                  request_id=item.request_id, contract_id=item.contract_id)
        return
    rendered = render_requester_bounce(policy.notify.language, {
        "contract_name": policy.name, "contract_id": item.contract_id, "request_id": item.request_id,
        "subject": item.subject, "requester_name": item.requester.get("name", ""), "address": bounced,
        "notification": entry.kind, "bounced_at": local_time(event.at, policy.calendar.tz),
        "diagnostic": diagnostic,
    })
    alert = outbox.new_entry(item.request_id, item.contract_id, REQUESTER_BOUNCE_KEY, "requester_bounce",
                             policy.notify.admins, rendered, policy, now)
    if outbox.enqueue(alert):
        outbox.deliver_quietly([(alert, delivery.email(now=now, **outbox.stored_email(alert)))], now)
