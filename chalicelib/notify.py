"""The dedupe outbox and SES delivery: every notification is created once and sent at most once.

1. `outbox_entry` turns a due Notification into an outbox item; the caller creates it with a
   conditional put (in the API's own write transaction, or `enqueue` for the scanner), so a
   notification exists once however many scanners find it.
2. `deliver` claims a short lease with a conditional update (only one sender at a time), sends
   through SES, then marks it sent. An SES error leaves it pending for the next scan; after
   MAX_ATTEMPTS it is marked failed, logged and shown on the request document.
   The only window for a duplicate is a crash between SES accepting and the mark: the lease then
   expires and the next scan sends again.
"""
import logging
import os
from datetime import timedelta
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PutError, UpdateError

from chalicelib.emails import Rendered, build_message
from chalicelib.logs import log_event
from chalicelib.tables import REGION, NotificationModel, shard_of

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=2)
RETRY_AFTER = timedelta(seconds=30)
RETENTION = timedelta(days=400)  # a year of history for reports, then DynamoDB TTL removes it
DEFAULT_SENDER = "sla-clock@localhost.localdomain"
logger = logging.getLogger("sla_clock.notify")
_ses = None


def ses():
    """One SES client per process (Lambda reuses it across invocations)."""
    global _ses
    if _ses is None:
        _ses = boto3.client("ses", region_name=REGION, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    return _ses


def outbox_entry(request, notification, policy, now):
    """The outbox item of a request's notification (alerts.Notification)."""
    return new_entry(request.request_id, request.contract_id, notification.key, notification.kind,
                     notification.recipients, notification.rendered(policy.notify.language), policy, now)


def new_entry(owner_id, contract_id, key, kind, recipients, rendered, policy, now):
    """An outbox item, pending. `owner_id` is the request id, or "contract#<id>" for contract mail."""
    return NotificationModel(
        owner_id,
        key,
        contract_id=contract_id,
        kind=kind,
        status="pending",
        recipients=list(recipients),
        sender=policy.notify.sender or os.environ.get("SLA_DEFAULT_SENDER", DEFAULT_SENDER),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attempts=0,
        created_at=now,
        pending_shard=shard_of(f"{owner_id}|{key}"),
        retry_at=now.timestamp(),
        expires_at=now + RETENTION,
    )


def enqueue(entry):
    """Create the entry unless it exists already; True when this call created it."""
    try:
        entry.save(condition=NotificationModel.key.does_not_exist())
        return True
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise


def deliver(entry, now):
    """Try to send one pending entry. Returns "sent", "pending" (will retry), "failed" or "busy"."""
    lease_free = NotificationModel.lease_until.does_not_exist() | (NotificationModel.lease_until < now.timestamp())
    try:
        entry.update(
            actions=[NotificationModel.lease_until.set((now + LEASE).timestamp())],
            condition=(NotificationModel.status == "pending") & lease_free,
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return "busy"  # sent, failed, or another sender holds the lease
        raise
    message = build_message(entry.sender, entry.recipients, _rendered(entry),
                            headers={"X-SLA-Notification": f"{entry.request_id}|{entry.key}"})
    attempts = int(entry.attempts) + 1
    try:
        answer = ses().send_raw_email(
            Source=entry.sender, Destinations=list(entry.recipients), RawMessage={"Data": message.as_bytes()}
        )
    except (ClientError, BotoCoreError) as exc:
        return _failed(entry, attempts, exc, now)
    entry.update(actions=[
        NotificationModel.status.set("sent"),
        NotificationModel.attempts.set(attempts),
        NotificationModel.sent_at.set(now),
        NotificationModel.message_id.set(answer.get("MessageId")),
        NotificationModel.last_error.remove(),
        NotificationModel.lease_until.remove(),
        NotificationModel.pending_shard.remove(),
        NotificationModel.retry_at.remove(),
    ])
    copy = _keep_copy(entry, message, now)
    log_event(logger, "notification sent", request_id=entry.request_id, key=entry.key, kind=entry.kind,
              to=list(entry.recipients), subject=entry.subject, attempts=attempts, eml=copy)
    return "sent"


def _rendered(entry):
    return Rendered(subject=entry.subject, text=entry.text, html=entry.html)


def _failed(entry, attempts, exc, now):
    error = f"{type(exc).__name__}: {exc}"[:1000]
    final = attempts >= MAX_ATTEMPTS
    actions = [
        NotificationModel.attempts.set(attempts),
        NotificationModel.last_error.set(error),
        NotificationModel.lease_until.remove(),
    ]
    if final:
        actions += [NotificationModel.status.set("failed"), NotificationModel.pending_shard.remove(),
                    NotificationModel.retry_at.remove()]
    else:
        actions.append(NotificationModel.retry_at.set((now + RETRY_AFTER).timestamp()))  # the next scan
    entry.update(actions=actions)
    log_event(logger, "notification failed" if final else "notification not sent, will retry",
              level=logging.ERROR if final else logging.WARNING, request_id=entry.request_id, key=entry.key,
              kind=entry.kind, attempts=attempts, error=error)
    return "failed" if final else "pending"


def deliver_quietly(entries, now):
    """Deliver right after an API write. Never raises: the notification stays pending for the scanner."""
    for entry in entries:
        try:
            deliver(entry, now)
        except Exception as exc:  # noqa: BLE001 - the API call must not fail because mail did
            log_event(logger, "notification delivery deferred", level=logging.WARNING,
                      request_id=entry.request_id, key=entry.key, error=f"{type(exc).__name__}: {exc}")


def pending_due(now, shards):
    """Keys of pending notifications whose retry time has come, shard by shard."""
    for shard in shards:
        yield from NotificationModel.pending.query(shard, NotificationModel.retry_at <= now.timestamp())


def of_request(request_id):
    return list(NotificationModel.query(request_id))


def latest_of(owner_id, key_prefix):
    """The entry of `owner_id` whose key is the greatest of those starting with `key_prefix`, or None."""
    found = NotificationModel.query(owner_id, NotificationModel.key.startswith(key_prefix),
                                    scan_index_forward=False, limit=1, consistent_read=True)
    return next(iter(found), None)


def _keep_copy(entry, message, now):
    """Locally (`make run`, SLA_EML_DIR), keep every accepted email as an .eml file; returns its path."""
    folder = os.environ.get("SLA_EML_DIR")
    if not folder:
        return None
    path = Path(folder) / f"{now:%Y%m%dT%H%M%S}-{entry.request_id}-{entry.key.replace('|', '_')}.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.as_bytes())
    return str(path)
