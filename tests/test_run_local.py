"""`make run` (scripts/run_local.py): the real program end to end, its ticker, and the idempotent seed."""
import email
import http.client
import importlib.util
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from chalice import Chalice, Rate
from wcwidth import wcswidth

from chalicelib import tokens

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "run_local.py"


def load_script(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_local = load_script("run_local_under_test", SCRIPT)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(method, url, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def running(tmp_path):
    """scripts/run_local.py on free ports, its state and emails under tmp_path; yields (process,
    exports, stdout lines so far, drained_stderr(), environment)."""
    env = dict(os.environ, SLA_PORT=str(free_port()), SLA_MOTO_PORT=str(free_port()), PYTHONUNBUFFERED="1",
               SLA_RUN_STATE=str(tmp_path / "local.json"), SLA_EML_DIR=str(tmp_path / "outbox"),
               SLA_METRICS_FILE=str(tmp_path / "metrics.jsonl"))
    for key in ("SLA_ADMIN_TOKEN", "SLA_TABLE_PREFIX", "AWS_ENDPOINT_URL", "SLA_STAGE"):
        env.pop(key, None)  # the script's own defaults: a generated admin token, the local prefix
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines, stderr = queue.Queue(), []
    readers = [
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True),
        threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    exports, output, deadline = {}, [], time.monotonic() + 30
    while len(exports) < 4 and time.monotonic() < deadline and process.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        output.append(line)
        if line.startswith("export "):
            key, _, value = line[len("export ") :].strip().partition("=")
            exports[key] = value
    try:
        assert len(exports) == 4, "".join(output) + "".join(stderr)
        yield process, exports, output, lambda: [reader.join(5) for reader in readers] and "".join(stderr), env
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_make_run_serves_the_api_on_seeded_moto_and_stops_cleanly_on_ctrl_c(running):
    process, exports, output, drained_stderr, _ = running
    base = exports["SLA"]
    assert base.startswith("http://127.0.0.1:")
    for _ in range(50):  # the banner is printed once the socket listens: a few polls at most
        try:
            health = call("GET", f"{base}/health")
        except OSError:
            health = None
        if health == (200, {"status": "ok"}):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"GET /health never answered: {health}")

    status, contract = call("GET", f"{base}/contracts/demo", exports["ADMIN"])
    assert status == 200 and contract["version"] == 1 and contract["name"] == "XX系统技术支持"
    body = {"contract_id": "demo", "priority": "high", "channel": "portal", "subject": "系统无法登录",
            "requester": {"name": "张三", "email": "zhang@customer.example"}}
    status, created = call("POST", f"{base}/requests", exports["AGENT"], body)
    assert status == 201, created
    status, fetched = call("GET", f"{base}/requests/{created['request_id']}", exports["CLIENT"])
    assert status == 200, fetched
    assert fetched["contract_id"] == "demo" and fetched["status"] == "open"
    assert fetched["sla"]["first_response"]["due_at"] and fetched["events"][0]["type"] == "received"

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in drained_stderr()
    assert any("no scheduled functions yet" in line or "ticker: every" in line for line in output)
    assert any("make demo     posts to contract national-day" in line for line in output)
    [where] = [line for line in output if line.strip().startswith("calendar ")]
    assert f"{base}/contracts/demo/calendar" in where and f"{base}/contracts/demo/calendar.ics?token=" in where


def run_state(tmp_path):
    return json.loads((tmp_path / "local.json").read_text())


def first_ids(stdout):
    """The request ids the demo printed as it posted them, in order."""
    return re.findall(r"^  (?:urgent|high|medium|low) .* (req_[0-9a-f]{32})$", stdout, re.MULTILINE)


def test_make_demo_posts_a_fortnight_tallies_it_and_prints_the_report(running, tmp_path, capsys):
    process, exports, _, drained_stderr, env = running
    earlier = tmp_path / "outbox" / "20260101T000000Z"  # an earlier run's mail is not this run's
    earlier.mkdir()
    (earlier / "20260101T000000-req_old-acknowledgement.eml").write_bytes(b"Subject: old\r\n\r\nold\r\n")
    demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    finished = datetime.now(UTC)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Report 2026-10:" in demo.stdout and "2026-10-01  received  1" in demo.stdout
    assert '"_aws"' not in demo.stdout  # the scan's metrics went to the run's metrics file instead
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("ScanDue" in document and document["ScanDue"] for document in written)
    assert "What if (2026-10, 2 requests received)" in demo.stdout
    assert re.search(r"^  penalties CNY +[0-9,]+ +1,000 \(capped\)$", demo.stdout, re.M)  # only the candidate's
    # The subjects are padded by the columns they take, so the request ids line up under each other.
    listing = re.findall(r"^  (?:urgent|high|medium|low) .* req_\w+$", demo.stdout, re.M)
    assert len(listing) == 7 and len({wcswidth(line[:line.index("req_")]) for line in listing}) == 1
    assert "440 calls and chats of 2026-10-08: 440 accepted, 0 replaced" in demo.stdout
    [phone] = [line.split() for line in demo.stdout.splitlines() if line.strip().startswith("phone ")]
    assert phone[1] == "60s" and int(phone[2]) < 260  # calls outside the hotline's hours do not count
    folder = Path(run_state(tmp_path)["eml_dir"])
    assert folder.parent == tmp_path / "outbox" and folder != earlier
    sent = list(folder.glob("*.eml"))
    assert len(sent) > 10 and f"\n{len(sent)} emails in {folder}/: " in demo.stdout
    [kinds] = re.findall(rf"^{len(sent)} emails in .*/: (\d+ [a-z]+(?:, \d+ [a-z]+)*)$", demo.stdout, re.M)
    assert {"breach", "daily"} <= {count.split()[1] for count in kinds.split(", ")}
    # Sent when the import had settled, not a minute ahead of the clock: dated no later than now.
    dates = [parsedate_to_datetime(email.message_from_bytes(path.read_bytes())["Date"]) for path in sent]
    assert max(dates) <= finished
    # Every request was imported weeks late: its customer's notices were recorded, not sent.
    assert not [path for path in sent if "customer.example" in path.read_text("utf-8", "replace")]
    assert re.search(r"^  [1-9][0-9]* customer notices recorded as skipped, reason backdated", demo.stdout, re.M)
    # Run again, its posts are idempotent: the same requests (by Idempotency-Key), no event twice, the
    # interactions replacing themselves. (Scanning and tallying again are idempotent by their own tests.)
    demo_module = load_script("demo_under_test", ROOT / "scripts" / "demo.py")
    api, state = demo_module.Api(exports["SLA"]), demo_module.load_state(tmp_path / "local.json")
    assert list(demo_module.post_requests(api, state).values()) == first_ids(demo.stdout)
    demo_module.post_interactions(api, state)
    assert "440 accepted, 440 replaced" in capsys.readouterr().out
    # The demo posts to a contract of its own: the "demo" contract of the README's tour stays empty.
    assert state["contract_id"] == "national-day" and "to contract 'national-day'" in demo.stdout
    status, listing = call("GET", f"{exports['SLA']}/requests?limit=50", state["agent"])
    assert status == 200 and len(listing["items"]) == 7
    assert call("GET", f"{exports['SLA']}/requests?limit=50", exports["AGENT"]) == (200, {"items": [], "next": None})
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


def test_make_run_writes_the_metrics_and_replays_an_ses_bounce_against_its_moto(running, tmp_path):
    process, exports, output, drained_stderr, env = running
    assert any(str(tmp_path / "metrics.jsonl") in line for line in output)  # the banner names the file
    body = {"contract_id": "demo", "priority": "high", "channel": "portal", "subject": "系统无法登录",
            "requester": {"name": "张三", "email": "zhang@customer.example"}}
    status, created = call("POST", f"{exports['SLA']}/requests", exports["AGENT"], body)
    assert status == 201, created
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    received = [d for d in written if "RequestsReceived" in d]
    assert [(d["Stage"], d["ContractId"], d["Priority"], d["RequestsReceived"]) for d in received] == [
        ("local", "demo", "high", [1.0])]

    replay = subprocess.run([sys.executable, str(ROOT / "scripts" / "ses_event.py"), "bounce", created["request_id"]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "Bounce of acknowledgement (acknowledgement) to zhang@customer.example: recorded" in replay.stdout
    assert "metrics: SLAClock ContractId=demo Stage=local: NotificationsBounced=1" in replay.stdout
    status, document = call("GET", f"{exports['SLA']}/requests/{created['request_id']}", exports["AGENT"])
    shown = {n["key"]: n for n in document["notifications"]}
    assert shown["acknowledgement"]["bounce_type"] == "Permanent" and shown["acknowledgement"]["bounced_at"]
    assert shown["bounce|requester"]["status"] == "sent"  # the admins were told, through the same moto
    assert list(Path(run_state(tmp_path)["eml_dir"]).glob("*bounce_requester.eml"))
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in drained_stderr()


def raw_call(base, method, path, token=None):
    request = urllib.request.Request(base + path, method=method,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_make_run_answers_an_unknown_route_or_method_in_the_api_s_shape_without_echoing_the_token(running):
    process, exports, output, drained_stderr, _ = running
    base, token = exports["SLA"], exports["ADMIN"]
    for path in ("/nope", "/requests/req_1/nope?x=1", "/"):
        status, headers, body = raw_call(base, "GET", path, token)
        assert (status, json.loads(body)) == (404, {"Code": "NotFoundError", "Message": "no such route"}), body
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert token not in body.decode() and token not in json.dumps(headers)
    status, _, body = raw_call(base, "PATCH", "/health", token)  # a route without that method: the app's 405
    assert status == 405 and json.loads(body)["Code"] == "MethodNotAllowedError" and token not in body.decode()
    status, headers, body = raw_call(base, "TRACE", "/health", token)  # a method http.server does not know
    assert status == 405 and json.loads(body) == {"Code": "MethodNotAllowedError",
                                                  "Message": "unsupported method: TRACE"}
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=5)
    connection.request("POST", "/nope", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert connection.getresponse().read() == b'{"Code":"NotFoundError","Message":"no such route"}'
    connection.request("GET", "/health")  # the same connection: the refused request's body was consumed
    assert connection.getresponse().read() == b'{"status":"ok"}'
    connection.close()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert "Traceback" not in drained_stderr()


def test_each_run_keeps_its_emails_in_a_new_folder_named_after_its_start(tmp_path):
    started = datetime(2026, 11, 28, 20, 30, 5, tzinfo=run_local.UTC).astimezone()
    first = run_local.run_outbox(tmp_path / "outbox", started)
    again = run_local.run_outbox(tmp_path / "outbox", started)  # started within the same second
    assert (first.name, again.name) == ("20261128T203005Z", "20261128T203005Z-2")
    assert first.is_dir() and again.is_dir() and not any(first.iterdir())


def test_the_metrics_sink_prints_one_short_line_and_keeps_the_emf_document(tmp_path, capsys):
    sink = run_local.MetricsSink(tmp_path / "run" / "metrics.jsonl")
    document = {"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "SLAClock", "Dimensions": [["Stage"]],
                                                                "Metrics": [{"Name": "ScanDue", "Unit": "Count"}]}]},
                "Stage": "local", "ScanDue": [2.0]}
    sink(document)
    sink(document)
    assert capsys.readouterr().out == "metrics: SLAClock Stage=local: ScanDue=2\n" * 2
    kept = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in kept] == [document] * 2


def test_ses_event_without_a_running_service_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "ses_event.py"), "delivery", "req_x"], cwd=ROOT,
                          env=dict(os.environ, SLA_RUN_STATE=str(tmp_path / "none.json")), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "start `make run` first" in done.stderr


def test_ticker_invokes_every_scheduled_function_and_logs_failures(caplog):
    app = Chalice(app_name="ticker-test")
    seen = []

    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def scan(event):
        seen.append((event.detail_type, event.source, event.resources))

    @app.schedule("cron(5 16 * * ? *)")
    def broken(event):
        raise RuntimeError("boom")

    @app.lambda_function()
    def not_scheduled(event, context):
        raise AssertionError("only scheduled functions run")

    ticker = run_local.Ticker(app, interval=60, region="us-east-1")
    assert run_local.scheduled_functions(app) == [("scan", "rate(1 minute)"), ("broken", "cron(5 16 * * ? *)")]
    with caplog.at_level(logging.INFO, logger="run_local"):
        assert ticker.tick() == 1
        assert ticker.tick() == 1  # a failure is not fatal: the next tick runs everything again
    assert seen == [("Scheduled Event", "aws.events", ["arn:aws:events:us-east-1:123456789012:rule/scan"])] * 2
    assert "ticker: broken (cron(5 16 * * ? *)) failed" in caplog.text and "boom" in caplog.text
    assert "ticker: ran scan (rate(1 minute))" in caplog.text


def test_ticker_without_scheduled_functions_does_nothing():
    ticker = run_local.Ticker(Chalice(app_name="empty"), interval=0.01, region="us-east-1")
    assert ticker.tick() == 0
    ticker.start()
    ticker.stop()
    assert not ticker.is_alive()


def test_seed_is_idempotent_and_its_tokens_work(aws):
    seed = load_script("seed_under_test", ROOT / "scripts" / "seed.py")
    now = datetime.now(UTC)
    first = seed.seed_demo(now)
    again = seed.seed_demo(now)
    assert (first["version"], first["changed"]) == (1, True)
    assert (again["version"], again["changed"]) == (1, False)  # same document: no new contract version
    assert first["agent"] != again["agent"]
    assert tokens.authenticate(f"Bearer {first['agent']}") == tokens.Principal(
        first["agent"].split(".")[0], "agent", "demo"
    )
    assert tokens.authenticate(f"Bearer {again['client']}").role == "client"
    changed = dict(seed.demo_document(), name="changed")
    assert seed.ensure_contract("demo", changed, now) == (2, True)


def test_environment_defaults_never_override_what_is_set():
    env = {"AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAREAL", "SLA_ADMIN_TOKEN": "mine"}
    assert run_local.prepare_environment(env, {"SLA_TABLE_PREFIX": "sla-dev-", "OTHER": "x"}) is None
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and "AWS_PROFILE" not in env
    assert (env["SLA_TABLE_PREFIX"], env["OTHER"], env["SLA_ADMIN_TOKEN"]) == ("sla-local-", "x", "mine")
    fresh = {}
    generated = run_local.prepare_environment(fresh, {})
    assert generated and fresh["SLA_ADMIN_TOKEN"] == generated and len(generated) >= 24
