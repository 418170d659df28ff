"""Signed webhooks, the pure part: which URLs and addresses a delivery may go to, the event body, its
delivery id and its signature. No network, no AWS, no environment: the caller says whether local
(loopback) destinations are allowed.
"""
import hashlib
import hmac
import ipaddress
import json
import socket
from urllib.parse import quote, urlsplit

from chalicelib.core.errors import ValidationError

EVENTS = ("received", "warning", "breach", "progress_reminder", "resolved")
MASK = "****"  # what a read shows instead of a secret; sent back in a PUT it keeps the stored one
MIN_SECRET, MAX_SECRET = 16, 256
MAX_URL = 2048
KEY_PREFIX = "webhook|"  # outbox keys of webhook deliveries
# What a request line may carry of a path and of a query as written (RFC 3986 pchar, "/", and "?" in
# the query); everything else, non-ASCII first, is sent percent-encoded (UTF-8). "%" stays: a URL may
# hold escapes already.
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv6 addresses that carry an IPv4 address in their last 32 bits
_LOOPBACK_NAMES = ("localhost",)


def address_refusal(address, allow_loopback=False):
    """Why a delivery may not connect to `address` (an IP address or its text), or None when it may:
    only public unicast addresses, plus loopback when `allow_loopback`."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"  # a public IPv4 address is reachable as itself
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and address_refusal(embedded) is not None:
            return f"an IPv6 address embedding {address_refusal(embedded)}"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or not ip.is_global or ip.is_reserved:
        return "a private or reserved address"
    return None


def literal_address(host):
    """The IP address `host` spells, including IPv4's legacy forms (127.1, 0x7f000001), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))  # pure: parses the text, no look-up
    except (OSError, UnicodeError, ValueError):
        return None


def is_loopback_name(host):
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def check_url(value, name, allow_local=False):
    """A webhook URL: https to a public host; with `allow_local` also http (or https) to loopback.
    A literal address is checked here; a name is checked again once resolved, at each delivery."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise ValidationError(name, f"must be a URL of at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(name, "must not contain white space or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(name, f"is not a valid URL ({exc})") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError(name, "must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(name, "must not carry a user name or password")
    if parts.fragment:
        raise ValidationError(name, "must not have a #fragment")
    if port == 0:
        raise ValidationError(name, "port 0 cannot be connected to")
    address = literal_address(host)
    loopback = address.is_loopback if address is not None else is_loopback_name(host)
    if parts.scheme == "http" and not (allow_local and loopback):
        raise ValidationError(name, "must be an https:// URL (plain http only to loopback, when local "
                                    "webhooks are allowed)")
    if address is not None:
        refusal = address_refusal(address, allow_loopback=allow_local)
        if refusal is not None:
            raise ValidationError(name, f"{host} is {refusal}: webhooks go to public addresses only")
    elif loopback:
        if not allow_local:
            raise ValidationError(name, f"{host} is a loopback name: webhooks go to public addresses only")
    elif "." not in host.strip("."):
        raise ValidationError(name, f"{host!r} is not a public host name (it has no domain)")
    if address is None:
        try:
            ascii_host(host)  # a name, loopback ones too, must have the form DNS and TLS are asked in
        except UnicodeError:
            raise ValidationError(name, f"{host!r} is not a valid host name") from None
    try:
        request_target(parts)
    except UnicodeError:
        raise ValidationError(name, "cannot be sent as written: it holds text that has no UTF-8 form") from None
    return value


def ascii_host(host):
    """The host as it goes on the wire (DNS, TLS, the Host header): an internationalised name in its
    IDNA (punycode) form, an ASCII name or address as it is. UnicodeError when it has none."""
    return host if host.isascii() else host.encode("idna").decode("ascii")


def request_target(parts):
    """The path and query of a URL (urlsplit's parts) as a request line carries them: ASCII, what
    the URL holds outside it percent-encoded as UTF-8. UnicodeError for text without a UTF-8 form
    (a lone surrogate)."""
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    return path + (f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else "")


def subscription_times(url, events, previous_hooks, now):
    """Since when the webhook at `url` gets each of its `events` (event -> ISO instant), as a new
    contract version stores it: what the latest stored version (`previous_hooks`, its stored webhooks)
    already sent to the same URL keeps its time, so sending the same webhook again, or with a new
    secret, starts nothing anew; an event new to the URL starts `now`. An event the previous version
    listed without a time (stored before times were recorded) stays without one."""
    previous = next((hook for hook in previous_hooks if hook["url"] == url), None)
    kept = (previous.get("subscribed_at") or {}) if previous else {}
    times = {}
    for event in events:
        if previous is None or event not in previous["events"]:
            times[event] = now.isoformat()
        elif event in kept:
            times[event] = kept[event]
    return times


def hook_id(url):
    """A short stable name for a webhook of a contract (its URL is unique within the contract)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]


def outbox_key(url, event_key):
    """The outbox key of one delivery: the webhook, then what it announces (unique within the request)."""
    return f"{KEY_PREFIX}{hook_id(url)}|{event_key}"


def is_delivery(key):
    """Is the outbox key that of a webhook delivery (not an email)?"""
    return key.startswith(KEY_PREFIX)


def event_key_of(outbox_key_):
    """What a delivery announces, as alerts and events key it: "breach|resolution|0", "received"."""
    return outbox_key_.split("|", 2)[2]


def delivery_id(request_id, key):
    """The SLA-Delivery id: the same for every attempt of one delivery, different for any other."""
    return "dlv_" + hashlib.sha256(f"{request_id}|{key}".encode()).hexdigest()[:32]


def event_body(delivery, event, request_id, contract_id, at, metric=None, due_at=None):
    """The JSON a delivery POSTs (instants as ISO-8601 strings); `metric` and `due_at` only when set."""
    document = {"id": delivery, "type": event, "request_id": request_id, "contract_id": contract_id, "at": at}
    if metric is not None:
        document["metric"] = metric
    if due_at is not None:
        document["due_at"] = due_at
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def signature(secret, timestamp, body):
    """The SLA-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
