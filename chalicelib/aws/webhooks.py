"""Signed webhooks, the part that touches AWS and the network: secrets in SSM Parameter Store, the
outbox entries of each delivery, and the HTTP POST of one attempt (the rules are webhook_rules.py).

Secrets: each webhook's secret is a SecureString parameter `/sla-clock/<stage>/webhooks/<contract>/<hook>`
(encrypted with the account's AWS managed key for SSM); the stored contract names it with its version
("name:3"), so a contract version keeps the secret it was written with, and a read never holds it.

Delivery: through the notification outbox (chalicelib/outbox.py), so a delivery is created once, sent
under a lease, retried with the same backoff for 24 hours, then failed. One attempt takes at most
TIMEOUT seconds in all, from the name look-up to the response's status line. The name is resolved
once, every address it resolves to must be allowed (webhook_rules.address_refusal), and the
connection goes to the address checked: no second look-up a rebinding DNS server could answer
differently. Redirects are not followed: only a 2xx answer counts as delivered.
"""
import logging
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import settings
from chalicelib.aws import metrics, outbox, parameters
from chalicelib.core.documents import iso
from chalicelib.core.emails import CUSTOMER_URGENCY, Rendered
from chalicelib.core.errors import ValidationError
from chalicelib.core.webhook_rules import (
    MASK,
    address_refusal,
    ascii_host,
    check_url,
    delivery_id,
    event_body,
    event_key_of,
    hook_id,
    literal_address,
    outbox_key,
    request_target,
    signature,
    subscription_times,
)
from chalicelib.logs import log_event

TIMEOUT = 5.0  # seconds an attempt may take in all: a slow receiver never holds a scan's worker longer
ALLOW_LOCAL_VARIABLE = settings.VARIABLES["allow_local_webhooks"]  # "1": also http to loopback (make run, tests)
USER_AGENT = "SLA-Clock-Webhooks/1"
MAX_STATUS_LINE = 8192
_STATUS_LINE = re.compile(r"HTTP/1\.[01] ([0-9]{3})(?: .*)?")
logger = logging.getLogger("sla_clock.webhooks")
_tls = None


class DeliveryError(Exception):
    """An attempt that got no HTTP answer: refused destination, no connection, timeout, garbled reply."""


def local_allowed():
    return settings.current().local_webhooks_allowed


# --- secrets ---------------------------------------------------------------------------------------


def parameter_name(contract_id, url):
    """Where the secret of a contract's webhook lives: one parameter per contract and URL, per stage."""
    return f"/sla-clock/{metrics.stage()}/webhooks/{contract_id}/{hook_id(url)}"


def with_stored_secrets(contract_id, document, previous, now):
    """The submitted (normalized) `document` as it is stored: each webhook's secret is written to
    Parameter Store and replaced by "secret_ref", and since when it gets each event is recorded
    (webhook_rules.subscription_times). A secret of MASK keeps the one `previous` (the latest stored
    version, or None) holds for the same URL. Every refusal comes before any write."""
    hooks = document.get("webhooks") or []
    previous_hooks = (previous.document.get("webhooks") or []) if previous else []
    kept = {hook["url"]: hook["secret_ref"] for hook in previous_hooks}
    for i, hook in enumerate(hooks):
        if hook["secret"] == MASK and hook["url"] not in kept:
            raise ValidationError(f"webhooks[{i}].secret", f'is write-only: "{MASK}" keeps the stored secret of '
                                                           "the same url, and this url has none yet")
    stored = []
    for hook in hooks:
        ref = kept[hook["url"]] if hook["secret"] == MASK else _store_secret(contract_id, hook["url"], hook["secret"])
        stored.append({"url": hook["url"], "events": hook["events"], "secret_ref": ref,
                       "subscribed_at": subscription_times(hook["url"], hook["events"], previous_hooks, now)})
    return {**document, "webhooks": stored}


def _store_secret(contract_id, url, secret):
    name = parameter_name(contract_id, url)
    answer = parameters.client().put_parameter(Name=name, Value=secret, Type="SecureString", Overwrite=True,
                                 Description=f"SLA Clock webhook secret of contract {contract_id}")
    return f"{name}:{answer['Version']}"


class Secrets:
    """Secrets read once per scan (a reference names one version of a parameter)."""

    def __init__(self):
        self._found = {}

    def __call__(self, ref):
        if ref not in self._found:
            self._found[ref] = parameters.client().get_parameter(Name=ref, WithDecryption=True)["Parameter"]["Value"]
        return self._found[ref]


# --- outbox entries --------------------------------------------------------------------------------


def entries(request, policy, event, event_key, at, now, metric=None, due_at=None, urgency=CUSTOMER_URGENCY):
    """The outbox entries announcing `event` (keyed `event_key` within the request, e.g. "received",
    "resolved|7", "breach|resolution|0") to each webhook of `policy` subscribed to it."""
    tz, found = policy.calendar.tz, []
    for hook in policy.webhooks_for(event, at):
        key = outbox_key(hook.url, event_key)
        body = event_body(delivery_id(request.request_id, key), event, request.request_id, request.contract_id,
                          iso(at, tz), metric, iso(due_at, tz))
        entry = outbox.new_entry(request.request_id, request.contract_id, key, outbox.WEBHOOK_KIND, [hook.url],
                                 Rendered(subject=event, text=body, html=""), policy, now, urgency=urgency)
        entry.due_at = due_at.timestamp() if due_at is not None else None
        found.append(entry)
    return found


def for_alert(request, policy, notification, now):
    """The entries of a provider alert (alerts.Notification: a warning, breach or progress reminder)."""
    return entries(request, policy, notification.kind, notification.key, notification.at, now,
                   notification.metric, notification.due_at, notification.urgency)


def event_of(entry):
    """The event type a delivery announces: "received", "breach", …"""
    return event_key_of(entry.key).split("|", 1)[0]


def alert_key_of(entry):
    """The provider alert key a delivery announces ("breach|resolution|0")."""
    return event_key_of(entry.key)


def subscribed(policy, entry):
    """The webhook of `policy` the entry goes to, while it still exists and wants the entry's event."""
    return next((hook for hook in policy.webhooks_for(event_of(entry)) if hook.url == entry.recipients[0]), None)


# --- one attempt -----------------------------------------------------------------------------------


def deliver(entry, now, attempt, hook, secrets):
    """Try one claimed delivery as `attempt` (core.delivery.Attempt) says: POST it to `hook` (its
    policy.Webhook), or record it superseded when `hook` is None (it no longer applies); `secrets(ref)`
    the secret of a ref. Returns "sent", "pending", "failed" or "superseded", as outbox.deliver."""
    if hook is None:
        return outbox.superseded(entry, now)
    try:
        status = _post_signed(entry, hook, secrets, now)
    except Exception as exc:  # noqa: BLE001 - a failed attempt like any other: retried, then failed, never stuck
        return unprepared(entry, attempt, exc, now)
    if not 200 <= status < 300:
        return outbox.not_sent(entry, attempt, f"HTTP {status} from the receiver", outbox.TRANSIENT, now)
    outbox.mark_sent(entry, attempt.number, now)
    log_event(logger, "webhook delivered", request_id=entry.request_id, key=entry.key, url=hook.url, status=status,
              attempts=attempt.number)
    return "sent"


def unprepared(entry, attempt, exc, now):
    """A claimed delivery's `attempt` raised `exc` (finding its webhook, reading its secret, posting):
    no answer, a refused address or an AWS error is retried quietly; anything else is UNEXPECTED."""
    expected = (DeliveryError, ValidationError, OSError, ClientError, BotoCoreError)
    kind = outbox.TRANSIENT if isinstance(exc, expected) else outbox.UNEXPECTED
    return outbox.not_sent(entry, attempt, outbox.describe(exc), kind, now, None if kind == outbox.TRANSIENT else exc)


def _post_signed(entry, hook, secrets, now):
    """POST the entry's body to `hook`, signed now; the HTTP status."""
    body = entry.text.encode("utf-8")
    headers = {"SLA-Delivery": delivery_id(entry.request_id, entry.key),
               "SLA-Signature": signature(secrets(hook.secret_ref), int(now.timestamp()), body)}
    return post(hook.url, body, headers, local_allowed())


def post(url, body, headers, allow_local):
    """POST `body` (bytes) to `url` with `headers`; the HTTP status. Raises DeliveryError (or
    ValidationError for a URL the rules refuse now) when there is no answer within TIMEOUT."""
    check_url(url, "url", allow_local)
    parts = urlsplit(url)
    host, https = parts.hostname, parts.scheme == "https"
    if literal_address(host) is None:
        host = ascii_host(host)  # an internationalised name is looked up, verified and named in punycode
    port = parts.port or (443 if https else 80)
    deadline = time.monotonic() + TIMEOUT
    family, kind, proto, address = _resolve(host, port, allow_local, deadline)
    with socket.socket(family, kind, proto) as raw:
        raw.settimeout(_left(deadline))
        raw.connect(address)
        connection = _tls_context().wrap_socket(raw, server_hostname=host) if https else raw
        with connection:
            connection.settimeout(_left(deadline))
            connection.sendall(_request(parts, host, port, body, headers))
            return _status(connection, deadline)


def _resolve(host, port, allow_local, deadline):
    """Resolve `host` once, before the deadline; every address must be allowed. Returns the address
    info to connect to."""
    try:
        found = _look_up(host, port, deadline)
    except (socket.gaierror, UnicodeError) as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc}") from None
    if not found:
        raise DeliveryError(f"{host} resolves to no address")
    for *_, sockaddr in found:
        refusal = address_refusal(sockaddr[0].split("%", 1)[0], allow_loopback=allow_local)
        if refusal is not None:
            raise DeliveryError(f"{host} resolves to {sockaddr[0]}, {refusal}: refused")
    family, kind, proto, _, sockaddr = found[0]
    return family, kind, proto, sockaddr


def _look_up(host, port, deadline):
    """socket.getaddrinfo, waited for until the deadline only: the resolver has no timeout of its own
    and may retry for half a minute. The look-up runs on a daemon thread, which a slow one is left
    to finish (its answer unused) without holding the worker or the process."""
    answer, done = {}, threading.Event()

    def look_up():
        try:
            answer["found"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            answer["error"] = exc
        finally:
            done.set()

    threading.Thread(target=look_up, name="webhook-dns", daemon=True).start()
    if not done.wait(_left(deadline)):
        raise DeliveryError(f"no answer within {TIMEOUT:g} s (resolving {host})")
    if "error" in answer:
        raise answer["error"]
    return answer["found"]


def _tls_context():
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()  # verifies the certificate and the host name
    return _tls


def _left(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeliveryError(f"no answer within {TIMEOUT:g} s")
    return left


def _request(parts, host, port, body, headers):
    """The request's bytes: its line and headers in ASCII (the path and query percent-encoded, the
    host in punycode), then the body."""
    address = literal_address(host)
    shown = f"[{host}]" if address is not None and address.version == 6 else host
    default_port = 443 if parts.scheme == "https" else 80
    lines = [f"POST {request_target(parts)} HTTP/1.1", f"Host: {shown}" + (f":{port}" if port != default_port else ""),
             f"User-Agent: {USER_AGENT}", "Content-Type: application/json; charset=utf-8",
             f"Content-Length: {len(body)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _status(connection, deadline):
    """The status code of the answer's status line, read before the deadline (the rest is not read)."""
    received = b""
    while b"\r\n" not in received:
        if len(received) > MAX_STATUS_LINE:
            raise DeliveryError("the answer has no HTTP status line")
        connection.settimeout(_left(deadline))
        try:
            chunk = connection.recv(1024)
        except TimeoutError:
            raise DeliveryError(f"no answer within {TIMEOUT:g} s") from None
        if not chunk:
            raise DeliveryError("the receiver closed the connection without an answer")
        received += chunk
    line = received.split(b"\r\n", 1)[0].decode("latin-1")
    matched = _STATUS_LINE.fullmatch(line)
    if matched is None:
        raise DeliveryError(f"not an HTTP answer: {line[:80]!r}")
    return int(matched[1])
