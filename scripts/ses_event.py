"""Replay an SES event against `make run`: what SES publishes once it delivered one of a request's
emails, bounced it, or received a complaint about it.

    .venv/bin/python scripts/ses_event.py bounce REQUEST_ID [--transient] [--key KEY] [--to ADDRESS]
    .venv/bin/python scripts/ses_event.py delivery REQUEST_ID
    .venv/bin/python scripts/ses_event.py complaint REQUEST_ID [--format notification]

Where the running service is comes from .run/local.json (SLA_RUN_STATE): this process uses the same
moto server and tables, finds the email (the latest one sent to the requester, unless --key names
another), and calls the app's `ses_events` function with the SNS message SES would send, as Lambda
would. It prints the outcome and the email as agents see it on the request. A permanent bounce of the
requester's address also mails the contract's admins, once per request (see the outbox folder).
"""
import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"delivery": "Delivery", "bounce": "Bounce", "complaint": "Complaint"}


def ses_event(kind, message_id, addresses, at, bounce_type="Permanent", shape="event", source="sla@provider.example"):
    """The JSON document SES publishes for `kind` ("delivery", "bounce" or "complaint") of the message
    `message_id`: event publishing (shape "event", `eventType`) or an identity notification (shape
    "notification", `notificationType`)."""
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    addresses = list(addresses)
    if kind == "delivery":
        detail = {"timestamp": stamp, "recipients": addresses, "processingTimeMillis": 812,
                  "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "a8-70.smtp-out.amazonses.com"}
    elif kind == "bounce":
        permanent = bounce_type == "Permanent"
        detail = {"bounceType": bounce_type, "bounceSubType": "General" if permanent else "MailboxFull",
                  "timestamp": stamp, "feedbackId": f"feedback-{uuid.uuid4()}",
                  "bouncedRecipients": [{
                      "emailAddress": address, "action": "failed", "status": "5.1.1" if permanent else "4.2.2",
                      "diagnosticCode": "smtp; 550 5.1.1 user unknown" if permanent else "smtp; 452 4.2.2 mailbox full",
                  } for address in addresses]}
    else:
        detail = {"timestamp": stamp, "feedbackId": f"feedback-{uuid.uuid4()}", "complaintFeedbackType": "abuse",
                  "complainedRecipients": [{"emailAddress": address} for address in addresses]}
    mail = {"timestamp": stamp, "messageId": message_id, "source": source, "destination": addresses}
    return {"eventType" if shape == "event" else "notificationType": KINDS[kind], "mail": mail, kind: detail}


def sns_lambda_event(message, region="us-east-1", topic="sla-clock-local-ses-events"):
    """The event Lambda hands a function subscribed to an SNS topic, carrying `message` (a dict)."""
    arn = f"arn:aws:sns:{region}:123456789012:{topic}"
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{arn}:{uuid.uuid4()}",
        "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": arn, "Subject": None,
                "Message": json.dumps(message), "Timestamp": datetime.now(UTC).isoformat(), "MessageAttributes": {}},
    }]}


def pick(entries, requester, key=None):
    """The email to report on: the one stored under `key`, else the latest sent to the requester."""
    sent = [e for e in entries if e.message_id]
    if key is not None:
        return next((e for e in sent if e.key == key), None)
    to_requester = [e for e in sent if requester in e.recipients]
    return max(to_requester, key=lambda e: e.sent_at, default=None)


def use_running_service(state_path):
    """Point this process at the service `make run` started: its moto server, tables and email folder."""
    state = json.loads(Path(state_path).read_text("utf-8"))
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION=state["region"], AWS_ENDPOINT_URL=state["moto"],
                      SLA_TABLE_PREFIX=state["table_prefix"], SLA_EML_DIR=state["eml_dir"], SLA_STAGE="local")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("request_id")
    parser.add_argument("--key", help="the notification's key (default: the latest email to the requester)")
    parser.add_argument("--to", help="the address it concerns (default: every recipient of the email)")
    parser.add_argument("--transient", action="store_true", help="a transient bounce (mailbox full)")
    parser.add_argument("--format", choices=("event", "notification"), default="event",
                        help="event publishing (eventType, the default) or identity notification (notificationType)")
    args = parser.parse_args(argv)
    state_path = os.environ.get("SLA_RUN_STATE") or ROOT / ".run" / "local.json"
    if not Path(state_path).is_file():
        print(f"ses_event: no {state_path}: start `make run` first", file=sys.stderr)
        return 1
    state = use_running_service(state_path)
    from chalice.local import LambdaContext

    import app
    from chalicelib import ses_feedback
    from chalicelib.aws import metrics, outbox, store
    from chalicelib.core.documents import notification_document

    metrics.use_writer(lambda document: print("metrics:", metrics.one_line(document)))
    item = store.get_request(args.request_id)
    if item is None:
        print(f"ses_event: no request {args.request_id}", file=sys.stderr)
        return 1
    entry = pick(outbox.of_request(item.request_id), item.requester.get("email"), args.key)
    if entry is None:
        print(f"ses_event: request {item.request_id} has no email SES accepted"
              + (f" under the key {args.key!r}" if args.key else " for its requester"), file=sys.stderr)
        return 1
    addresses = [args.to] if args.to else list(entry.recipients)
    document = ses_event(args.kind, entry.message_id, addresses, datetime.now(UTC),
                         bounce_type="Transient" if args.transient else "Permanent", shape=args.format,
                         source=entry.sender)
    answer = app.ses_events(sns_lambda_event(document, state["region"]),
                            LambdaContext("ses_events", memory_size=128, max_runtime_ms=30_000))
    print(f"{KINDS[args.kind]} of {entry.key} ({entry.kind}) to {', '.join(addresses)}: {answer['outcome']}")
    refreshed = [e for e in outbox.of_request(item.request_id)
                 if e.key in (entry.key, ses_feedback.REQUESTER_BOUNCE_KEY)]
    for current in refreshed:
        print(json.dumps(notification_document(current, UTC), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
