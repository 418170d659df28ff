"""Signed webhooks per contract (see docs/api.md#webhooks), against a real HTTP server on loopback:
signatures, retries under one delivery id, exactly once, 24 h then failed, write-only secrets, and
the destinations refused at PUT and again after DNS resolution."""
import copy
import hashlib
import hmac
import importlib.util
import json
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import time_machine
from test_scanner import REQUEST, local

from chalicelib import scanner
from chalicelib.aws import metrics, store, webhooks
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import webhook_rules
from chalicelib.core.policy import Webhook
from conftest import DEMO_CONTRACT

_script = importlib.util.spec_from_file_location(
    "webhook_receiver", Path(__file__).resolve().parent.parent / "scripts" / "webhook_receiver.py")
receiver_script = importlib.util.module_from_spec(_script)
_script.loader.exec_module(receiver_script)

SECRET = "whsec-0123456789abcdef"
ALL_EVENTS = ["received", "warning", "breach", "progress_reminder", "resolved"]


class Receiver:
    """A webhook receiver on 127.0.0.1: records each delivery and answers with the next of `statuses`
    (200 once they run out); with `hold` set, it waits for `release` before answering."""

    def __init__(self):
        self.deliveries, self.statuses = [], []
        self.hold, self.release = False, threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.deliveries.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                            "status": status})
                if receiver.hold:
                    receiver.release.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/sla-hooks"
        # A short poll interval: shutdown() waits for one, and every test shuts a receiver down.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def events(self):
        return [json.loads(d["body"])["type"] for d in self.deliveries]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def local_webhooks(monkeypatch):
    """As `make run` and the tests run: plain http to loopback is allowed."""
    monkeypatch.setenv(webhooks.ALLOW_LOCAL_VARIABLE, "1")


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def clock():
    with time_machine.travel(local(23, 10), tick=False) as traveller:
        yield traveller


def contract(*hooks, **changes):
    return {**copy.deepcopy(DEMO_CONTRACT), "webhooks": list(hooks), **changes}


def hook(url, events=ALL_EVENTS, secret=SECRET):
    return {"url": url, "events": list(events), "secret": secret}


@pytest.fixture
def hooked(acme, receiver, clock):
    """The demo contract with the receiver subscribed to every event, from the test's start on (it gets
    what happens after it was added): (admin, agent, client)."""
    admin = acme[0]
    status, body = admin.put("/contracts/acme", contract(hook(receiver.url)))
    assert status == 200, body
    return acme


def create(agent):
    status, body = agent.post("/requests", REQUEST)
    assert status == 201, body
    return body["request_id"]


def scan(clock, moment=None):
    if moment is not None:
        clock.move_to(moment)
    return scanner.scan(local(23, 10) if moment is None else moment)


def verify(delivery, secret=SECRET):
    """What a receiver does (the README's snippet): the HMAC of "<t>.<body>" must match v1."""
    fields = dict(part.split("=", 1) for part in delivery["headers"]["SLA-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + delivery["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]), int(fields["t"])


def webhook_entries(request_id, event="received"):
    return [e for e in NotificationModel.query(request_id) if e.kind == "webhook" and e.key.endswith(f"|{event}")]


# --- delivery --------------------------------------------------------------------------------------


def test_a_new_request_is_posted_signed_by_the_next_scan(hooked, receiver, clock):
    _, agent, _ = hooked
    request_id = create(agent)
    assert receiver.deliveries == []  # the API leaves webhooks to the scanner: a slow receiver never slows it
    report = scanner.scan(local(23, 10))
    assert report.sent >= 1
    [delivery] = receiver.deliveries
    valid, t = verify(delivery)
    assert valid and t == int(local(23, 10).timestamp())
    assert not verify(delivery, secret="another-secret-0000")[0]
    body = json.loads(delivery["body"])
    assert body == {"id": delivery["headers"]["SLA-Delivery"], "type": "received", "request_id": request_id,
                    "contract_id": "acme", "at": "2026-11-23T10:00:00+08:00"}
    assert delivery["headers"]["Content-Type"] == "application/json; charset=utf-8"


def test_the_local_receiver_script_verifies_a_real_delivery_and_refuses_a_forged_one(hooked, receiver, clock):
    _, agent, _ = hooked
    create(agent)
    scan(clock, local(23, 10))
    [delivery] = receiver.deliveries
    header, body, now = delivery["headers"]["SLA-Signature"], delivery["body"], local(23, 10).timestamp()
    assert receiver_script.verify(SECRET, header, body, now) == (True, "verified")
    assert receiver_script.verify(SECRET, header, body.replace(b"received", b"resolved"), now)[0] is False
    assert receiver_script.verify("another-secret-0000", header, body, now)[0] is False
    assert receiver_script.verify(SECRET, header, body, now + 3600) == (False, "signed 3600 s ago")


def test_warnings_breaches_and_the_resolve_are_posted_with_their_metric_and_deadline(hooked, receiver, clock):
    _, agent, _ = hooked
    request_id = create(agent)
    scan(clock, local(23, 11, 40))  # high: first response due 12:00, 80 % gone at 11:36
    scan(clock, local(23, 12, 1))  # breached
    types = receiver.events()
    assert {"received", "warning", "breach"} <= set(types), types  # sent concurrently: in no set order
    breach = next(json.loads(d["body"]) for d in receiver.deliveries if json.loads(d["body"])["type"] == "breach")
    assert breach["metric"] == "first_response" and breach["due_at"] == "2026-11-23T12:00:00+08:00"
    assert breach["at"] == "2026-11-23T12:00:00+08:00"
    assert agent.post(f"/requests/{request_id}/events", {"type": "resolve", "note": "done"})[0] == 200
    scan(clock, local(23, 12, 2))
    resolved = json.loads(receiver.deliveries[-1]["body"])
    assert resolved["type"] == "resolved" and resolved["at"] == "2026-11-23T12:01:00+08:00"
    assert "metric" not in resolved and "due_at" not in resolved
    assert all(verify(d)[0] for d in receiver.deliveries)


def test_a_webhook_gets_only_the_events_it_subscribed_to(acme, receiver, clock):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["breach"])))[0] == 200
    create(agent)
    scan(clock, local(23, 10, 1))
    scan(clock, local(23, 12, 1))
    assert receiver.events() == ["breach"]


def test_a_contract_without_provider_addresses_still_posts_its_alerts(acme, receiver, clock):
    admin, agent, _ = acme
    quiet = contract(hook(receiver.url, ["breach"]))
    quiet["notify"] = {**quiet["notify"], "provider": [], "admins": []}
    assert admin.put("/contracts/acme", quiet)[0] == 200
    create(agent)
    scan(clock, local(23, 12, 1))
    assert receiver.events() == ["breach"]


def test_a_failed_attempt_is_retried_with_the_same_delivery_id(hooked, receiver, clock):
    _, agent, _ = hooked
    request_id = create(agent)
    receiver.statuses = [500]
    scan(clock, local(23, 10))
    [entry] = webhook_entries(request_id)
    assert (entry.status, entry.attempts, entry.last_error) == ("pending", 1, "HTTP 500 from the receiver")
    scan(clock, local(23, 10) + timedelta(seconds=20))  # the backoff (30 s) has not passed yet
    assert len(receiver.deliveries) == 1
    scan(clock, local(23, 10) + timedelta(seconds=31))
    first, second = receiver.deliveries
    assert first["headers"]["SLA-Delivery"] == second["headers"]["SLA-Delivery"]
    assert first["body"] == second["body"] and verify(second) == (True, int(local(23, 10, 0).timestamp()) + 31)
    [entry] = webhook_entries(request_id)
    assert (entry.status, entry.attempts, entry.last_error) == ("sent", 2, None)


def test_a_delivered_event_is_never_posted_again(hooked, receiver, clock):
    _, agent, _ = hooked
    create(agent)
    scan(clock, local(23, 10))
    scan(clock, local(23, 10, 1))
    assert receiver.events() == ["received"]


def test_concurrent_scans_post_each_event_once(hooked, receiver, clock):
    _, agent, _ = hooked
    for _ in range(3):
        create(agent)
    clock.move_to(local(23, 12, 1))
    reports = []
    scans = [threading.Thread(target=lambda: reports.append(scanner.scan(local(23, 12, 1)))) for _ in range(3)]
    for thread in scans:
        thread.start()
    for thread in scans:
        thread.join()
    ids = [d["headers"]["SLA-Delivery"] for d in receiver.deliveries]
    assert len(ids) == len(set(ids)) and ids
    assert sorted(receiver.events()).count("received") == 3 and receiver.events().count("breach") == 3
    assert sum(r.sent for r in reports) >= len(ids)  # emails and deliveries, each sent by one scan only


def test_after_24_hours_of_failures_the_delivery_is_failed_visible_and_counted(hooked, receiver, clock):
    _, agent, client = hooked
    request_id = create(agent)
    receiver.statuses = [503] * 10
    lines = []
    metrics.use_writer(lines.append)
    try:
        scan(clock, local(23, 10))
        scan(clock, local(23, 10) + timedelta(hours=23, minutes=59))
        [entry] = webhook_entries(request_id)
        assert (entry.status, entry.attempts) == ("pending", 2)
        scan(clock, local(23, 10) + timedelta(hours=24, minutes=1))
    finally:
        metrics.use_writer(None)
    [entry] = webhook_entries(request_id)
    assert (entry.status, entry.attempts) == ("failed", 3)
    shown = [n for n in agent.get(f"/requests/{request_id}")[1]["notifications"] if n["key"] == entry.key]
    assert shown == [{"key": entry.key, "kind": "webhook", "to": [receiver.url], "status": "failed", "reason": None,
                      "attempts": 3, "sent_at": None, "delivered_at": None, "bounced_at": None, "bounce_type": None,
                      "complained_at": None, "recipients_feedback": [], "last_error": "HTTP 503 from the receiver"}]
    assert "notifications" not in client.get(f"/requests/{request_id}")[1]
    assert any(line.get("WebhooksFailed") == [1.0] for line in lines)


def test_a_slow_receiver_is_cut_at_the_timeout(hooked, receiver, clock, monkeypatch):
    _, agent, _ = hooked
    request_id = create(agent)
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.3)
    receiver.hold = True  # answers only once released, long after the timeout
    started = time.monotonic()
    report = scan(clock, local(23, 10))
    assert time.monotonic() - started < 3
    assert report.pending == 1
    [entry] = webhook_entries(request_id)
    assert entry.status == "pending" and "no answer within 0.3 s" in entry.last_error


def test_a_webhook_removed_from_the_contract_is_superseded_not_posted(hooked, receiver, clock):
    admin, agent, _ = hooked
    request_id = create(agent)
    assert admin.put("/contracts/acme", contract())[0] == 200
    scan(clock, local(23, 10))
    assert receiver.deliveries == []
    [entry] = webhook_entries(request_id)
    assert entry.status == "superseded"


# --- secrets -----------------------------------------------------------------------------------------


def test_the_secret_is_never_shown_and_a_put_of_what_get_gave_keeps_it(hooked, receiver, clock):
    admin, agent, client = hooked
    for reader in (admin, agent):
        status, document = reader.get("/contracts/acme")
        assert status == 200 and SECRET not in json.dumps(document)
        assert document["webhooks"] == [{"url": receiver.url, "events": ALL_EVENTS, "secret": "****"}]
    assert "webhooks" not in client.get("/contracts/acme")[1]
    document = admin.get("/contracts/acme")[1]
    again = {k: v for k, v in document.items() if k not in ("contract_id", "version", "updated_at", "calendar_years")}
    status, answer = admin.put("/contracts/acme", again)
    assert status == 200 and SECRET not in json.dumps(answer) and answer["webhooks"][0]["secret"] == "****"
    create(agent)
    scan(clock, local(23, 10))
    assert verify(receiver.deliveries[0])[0]


def test_a_new_secret_signs_the_next_delivery(hooked, receiver, clock):
    admin, agent, _ = hooked
    rotated = "rotated-secret-abcdef0123"
    assert admin.put("/contracts/acme", contract(hook(receiver.url, secret=rotated)))[0] == 200
    create(agent)
    scan(clock, local(23, 10))
    assert verify(receiver.deliveries[0], rotated)[0] and not verify(receiver.deliveries[0])[0]


def test_the_mask_for_a_url_without_a_stored_secret_is_refused(hooked, receiver):
    admin = hooked[0]
    other = "https://hooks.customer.example/sla"
    status, body = admin.put("/contracts/acme", contract(hook(receiver.url, secret="****"), hook(other, secret="****")))
    assert status == 400 and body["Message"].startswith("webhooks[1].secret:")


# --- refusals ----------------------------------------------------------------------------------------


REFUSED_AT_PUT = [
    "https://10.0.0.1/hook", "https://172.16.5.4/hook", "https://172.31.255.1/hook", "https://192.168.1.10/hook",
    "https://169.254.169.254/latest/meta-data", "https://0.0.0.0/hook", "https://0.1.2.3/hook",
    "https://100.64.0.1/hook", "https://224.0.0.1/hook", "https://239.1.2.3/hook", "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook", "https://[fe80::1]/hook", "https://[ff02::1]/hook",
    "https://[::ffff:10.0.0.1]/hook", "https://[::ffff:8.8.8.8]/hook", "https://[2002:a00:1::1]/hook",
    "https://[64:ff9b::a00:1]/hook", "https://[::]/hook", "https://0x0a000001/hook", "https://10.1/hook",
    "http://hooks.customer.example/hook", "http://8.8.8.8/hook", "ftp://hooks.customer.example/hook",
    "https://user:pw@hooks.customer.example/hook", "https://intranet/hook", "not a url",
]


@pytest.mark.parametrize("url", REFUSED_AT_PUT)
def test_a_private_or_non_https_destination_is_refused_at_put_naming_the_url(acme, url):
    status, body = acme[0].put("/contracts/acme", contract(hook("https://hooks.customer.example/ok"), hook(url)))
    assert status == 400 and body["Message"].startswith("webhooks[1].url:"), body


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "https://127.0.0.1/hook", "https://[::1]/hook",
                                 "http://localhost:9000/hook", "https://127.1/hook"])
def test_loopback_is_refused_unless_local_webhooks_are_allowed(acme, monkeypatch, url):
    admin = acme[0]
    monkeypatch.delenv(webhooks.ALLOW_LOCAL_VARIABLE)
    status, body = admin.put("/contracts/acme", contract(hook(url)))
    assert status == 400 and body["Message"].startswith("webhooks[0].url:"), body
    monkeypatch.setenv(webhooks.ALLOW_LOCAL_VARIABLE, "1")
    assert admin.put("/contracts/acme", contract(hook(url)))[0] == 200


@pytest.mark.parametrize(("change", "field"), [
    ({"events": []}, "webhooks[0].events"),
    ({"events": ["breach", "late"]}, "webhooks[0].events[1]"),
    ({"events": ["breach", "breach"]}, "webhooks[0].events"),
    ({"secret": "short"}, "webhooks[0].secret"),
    ({"secret": 12345678901234567}, "webhooks[0].secret"),
    ({"secret_ref": "/sla-clock/prod/admin-token"}, "webhooks[0].secret_ref"),
    ({"url": None}, "webhooks[0].url"),
])
def test_a_bad_webhook_is_refused_naming_its_field(acme, change, field):
    status, body = acme[0].put("/contracts/acme", contract({**hook("https://hooks.customer.example/a"), **change}))
    assert status == 400 and body["Message"].startswith(f"{field}:"), body


def test_the_same_url_twice_is_refused(acme):
    url = "https://hooks.customer.example/a"
    status, body = acme[0].put("/contracts/acme", contract(hook(url), hook(url)))
    assert status == 400 and body["Message"].startswith("webhooks[1].url:")


def test_a_name_that_resolves_to_a_private_address_is_refused_without_connecting(acme, clock, monkeypatch):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", contract(hook("https://hooks.customer.example/sla")))[0] == 200
    request_id = create(agent)
    original = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "hooks.customer.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 443)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 443))]
        return original(host, *args, **kwargs)

    connected = []
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connected.append(address))
    scan(clock, local(23, 10))
    assert connected == []
    [entry] = webhook_entries(request_id)
    assert entry.status == "pending" and "10.0.0.1" in entry.last_error and "refused" in entry.last_error


def test_a_name_the_resolver_is_slow_to_answer_is_cut_at_the_timeout(acme, clock, monkeypatch):
    admin, agent, _ = acme
    assert admin.put("/contracts/acme", contract(hook("https://slow.customer.example/sla")))[0] == 200
    request_id = create(agent)
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.3)
    original, answered = socket.getaddrinfo, threading.Event()

    def stuck_resolver(host, *args, **kwargs):
        if host == "slow.customer.example":  # a resolver retrying a dead name server: no timeout of its own
            answered.wait(timeout=30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck_resolver)
    try:
        started = time.monotonic()
        report = scan(clock, local(23, 10))
        assert time.monotonic() - started < 3 and report.pending == 1
    finally:
        answered.set()
    [entry] = webhook_entries(request_id)
    assert entry.status == "pending"
    assert entry.last_error == "DeliveryError: no answer within 0.3 s (resolving slow.customer.example)"


def test_a_stored_loopback_webhook_is_not_posted_once_local_webhooks_are_off(hooked, receiver, clock, monkeypatch):
    _, agent, _ = hooked
    request_id = create(agent)
    monkeypatch.delenv(webhooks.ALLOW_LOCAL_VARIABLE)
    scan(clock, local(23, 10))
    assert receiver.deliveries == []
    [entry] = webhook_entries(request_id)
    assert entry.status == "pending" and "https" in entry.last_error


def test_a_what_if_of_a_contract_with_a_loopback_webhook_is_checked_like_its_put(hooked, receiver, clock):
    """The candidate passes the same destination rules as a PUT: loopback only when local webhooks are on."""
    admin = hooked[0]
    create(hooked[1])
    candidate = contract(hook(receiver.url))
    status, body = admin.post("/contracts/acme/simulations", {"contract": candidate, "month": "2026-11"})
    assert status == 200, body
    status, body = admin.post("/contracts/acme/simulations",
                              {"contract": contract(hook("http://10.0.0.7/hook")), "month": "2026-11"})
    assert status == 400 and body["Message"].startswith("contract.webhooks[0].url"), body
    assert receiver.deliveries == []  # a what-if sends nothing


# --- what a webhook receives: only what happens after it was added -----------------------------------


def announced(receiver):
    """(type, request_id, the moment announced) of each delivery, in arrival order."""
    bodies = [json.loads(delivery["body"]) for delivery in receiver.deliveries]
    return [(body["type"], body["request_id"], body["at"]) for body in bodies]


def test_adding_a_webhook_delivers_what_happens_after_it_never_the_backlog(acme, receiver, clock):
    admin, agent, _ = acme
    old = create(agent)  # Monday 10:00; high: first response due 12:00, resolution 8 h (half gone at 15:00)
    scan(clock, local(23, 12, 1))  # its warnings and first-response breach came and went: email only
    clock.move_to(local(23, 14))
    assert admin.put("/contracts/acme", contract(hook(receiver.url)))[0] == 200
    scan(clock, local(23, 14, 1))  # the re-evaluation after the change sees every past milestone again
    assert receiver.deliveries == []
    new = create(agent)
    scan(clock, local(23, 15, 1))  # the old request's resolution warning of 15:00 came after the webhook
    found = announced(receiver)
    assert ("received", new, "2026-11-23T14:01:00+08:00") in found
    assert ("warning", old, "2026-11-23T15:00:00+08:00") in found
    assert all(at >= "2026-11-23T14:00:00+08:00" for _, _, at in found), found
    assert not [entry for entry in NotificationModel.query(old) if entry.kind == "webhook"
                and entry.key.split("|", 2)[2] in ("received", "breach|first_response|0")]


def test_sending_the_same_webhook_again_with_a_new_secret_does_not_restart_it(acme, receiver, clock):
    admin, agent, _ = acme
    clock.move_to(local(23, 9))
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["received"])))[0] == 200
    clock.move_to(local(23, 11))
    rotated = contract(hook(receiver.url, ["received"], secret="rotated-secret-0001"))
    assert admin.put("/contracts/acme", rotated)[0] == 200
    imported = [agent.post("/requests", {**REQUEST, "received_at": local(23, hour).isoformat()})[1]["request_id"]
                for hour in (8, 10)]  # before the webhook was added; after it, before the new secret
    scan(clock, local(23, 11, 1))
    assert [(kind, request_id) for kind, request_id, _ in announced(receiver)] == [("received", imported[1])]
    assert verify(receiver.deliveries[0], secret="rotated-secret-0001")[0]


def test_an_event_added_to_a_webhook_is_delivered_from_then_on_the_others_keep_their_start(acme, receiver, clock):
    admin, agent, _ = acme
    clock.move_to(local(23, 9))
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["received"])))[0] == 200
    create(agent)  # 09:00: a warning at 10:36 (80 % of the 2 h to first response, due 11:00)
    clock.move_to(local(23, 10, 50))
    assert admin.put("/contracts/acme", contract(hook(receiver.url, ["received", "warning", "breach"])))[0] == 200
    stored = store.latest_contract("acme").document["webhooks"][0]["subscribed_at"]
    assert {event: datetime.fromisoformat(at) for event, at in stored.items()} == {
        "received": local(23, 9), "warning": local(23, 10, 50), "breach": local(23, 10, 50)}
    scan(clock, local(23, 10, 51))  # the re-evaluation after the change: the 10:36 warning is older
    scan(clock, local(23, 11, 1))
    assert [kind for kind, _, _ in announced(receiver)] == ["received", "breach"]


def test_subscription_times_keep_what_the_previous_version_sent_to_the_url_and_start_the_rest_now():
    now, then = local(23, 12), local(20, 9)
    previous = [{"url": "https://a.example/h", "events": ["received", "breach"], "secret_ref": "p:1",
                 "subscribed_at": {"received": then.isoformat(), "breach": then.isoformat()}},
                {"url": "https://legacy.example/h", "events": ["breach"], "secret_ref": "p:2"}]
    times = webhook_rules.subscription_times
    assert times("https://a.example/h", ["breach", "resolved"], previous, now) == {
        "breach": then.isoformat(), "resolved": now.isoformat()}
    assert times("https://b.example/h", ["breach"], previous, now) == {"breach": now.isoformat()}
    # stored before the times were: what it had stays unbounded, as it always was; a new event starts now
    assert times("https://legacy.example/h", ["breach", "warning"], previous, now) == {"warning": now.isoformat()}


def test_a_webhook_receives_an_event_announcing_a_moment_at_or_after_its_subscription():
    since = local(23, 12)
    hook_ = Webhook("https://a.example/h", frozenset({"breach", "received"}), "p:1", (("breach", since),))
    assert hook_.receives("breach", since) and hook_.receives("breach", since + timedelta(seconds=1))
    assert not hook_.receives("breach", since - timedelta(seconds=1))
    assert hook_.receives("received", since - timedelta(days=30))  # no time recorded: no bound
    assert not hook_.receives("warning", since)
