"""`make run`: the whole SLA Clock on this machine, no AWS account needed.

1. Fake AWS credentials; `SLA_ADMIN_TOKEN` (random when unset), `SLA_TABLE_PREFIX` (default "sla-local-").
2. An embedded moto server on 127.0.0.1 (`SLA_MOTO_PORT`, default: a free port) stands in for DynamoDB
   and SES; `AWS_ENDPOINT_URL` points at it before `chalicelib.aws.tables` is imported.
3. Tables, the demo contract (seed/demo-contract.json as contract "demo", its SES sender verified),
   one agent and one client token; the tokens and ready-to-paste `export` lines are printed. The same
   document as contract "national-day", with tokens of its own, for `make demo` (in the run state only),
   so that the demo's fortnight and what you try by hand never count in each other's reports.
4. The API through chalice's local server, in this process, on 127.0.0.1 (`SLA_PORT`, default 8000),
   answering a path no route has as the deployed API does (`LocalRequestHandler`).
5. A ticker runs every `@app.schedule` function every `SLA_TICK_SECONDS` (default 60): `chalice local`
   never runs them. A failing run is logged; the next tick runs again. `scan_deadlines` runs once per
   shard group at once (`SLA_SCAN_SHARDS`, default 2 here), as the deployed scan's hand-offs do.
6. The metrics the functions would send to CloudWatch (EMF) are printed as one short line each
   ("metrics: SLAClock Stage=local ContractId=demo: RequestsReceived=1") and written in full, one
   JSON document a line, to `SLA_METRICS_FILE` (default .run/metrics.jsonl), named in the banner.
   `scripts/ses_event.py bounce <request_id>` replays an SES event against this server's moto.
7. Every email SES accepted is kept as an .eml file in a folder of this run's own, under `SLA_EML_DIR`
   (default outbox/): outbox/<UTC start time>/, named in the banner and in the run state.
8. Webhooks may go to plain http on loopback (`SLA_ALLOW_LOCAL_WEBHOOKS=1`): `scripts/webhook_receiver.py`
   receives and checks them.

Ctrl-C or SIGTERM stops everything and exits 0. Everything lives in memory: a restart starts afresh.
"""
import email
import email.policy
import functools
import json
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

from chalice.local import ChaliceRequestHandler, RouteMatcher

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ACCOUNT = "123456789012"  # moto's default account
log = logging.getLogger("run_local")


class StartupError(Exception):
    """A problem the user can fix (a busy port): reported in one line, exit code 1."""


def prepare_environment(environ, chalice_env):
    """Fake AWS credentials; local defaults, then .chalice/config.json's variables, never overriding a set one.

    (`chalice local` applies config.json with os.environ.update, which would force its "sla-dev-"
    table prefix over ours: we serve the app ourselves and keep the local prefix.)
    Returns the admin token when one had to be generated, else None.
    """
    environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # never a real account
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        environ.pop(key, None)
    environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    environ.setdefault("SLA_TABLE_PREFIX", "sla-local-")
    environ.setdefault("SLA_STAGE", "local")  # the metrics' Stage dimension
    environ.setdefault("SLA_METRICS_FILE", str(ROOT / ".run" / "metrics.jsonl"))
    environ.setdefault("SLA_EML_DIR", str(ROOT / "outbox"))  # each run's emails in a subfolder (git-ignored)
    environ.setdefault("SLA_ALLOW_LOCAL_WEBHOOKS", "1")  # webhooks may go to a receiver on this machine
    environ.setdefault("SLA_SCAN_SHARDS", "2")  # the ticker runs each shard group's scan, as prod does
    for key, value in chalice_env.items():
        environ.setdefault(key, value)
    if environ.get("SLA_ADMIN_TOKEN"):
        return None
    environ["SLA_ADMIN_TOKEN"] = secrets.token_urlsafe(24)
    return environ["SLA_ADMIN_TOKEN"]


def run_outbox(root, started):
    """A new folder under `root` for the emails of the run that started at `started`, named after that
    time in UTC, so each run (and `make demo`) sees only its own mail. A second run started within the
    same second gets a numbered one."""
    name = f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    for attempt in range(1, 100):
        folder = Path(root) / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder
    raise StartupError(f"cannot make a new folder for this run's emails under {root}")


def port_from_env(name, default):
    """The port in env var `name`, checked free on 127.0.0.1 (0 = let the OS choose)."""
    try:
        port = int(os.environ.get(name) or default)
    except ValueError:
        raise StartupError(f"{name} must be a port number, not {os.environ[name]!r}") from None
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as err:
            raise StartupError(f"cannot listen on {HOST}:{port} ({err.strerror}); set {name} to another port") from None
    return port


def tick_seconds():
    raw = os.environ.get("SLA_TICK_SECONDS") or "60"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise StartupError(f"SLA_TICK_SECONDS must be a positive number of seconds, not {raw!r}")
    return seconds


def scheduled_functions(app):
    """(name, schedule expression) of every `@app.schedule` function registered on `app`."""
    from chalice.app import ScheduledEventConfig

    found = []
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            found.append((source.name, expression if isinstance(expression, str) else expression.to_string()))
    return found


def scheduled_event(name, region, now):
    """The event EventBridge hands a scheduled Lambda."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{name}"], "detail": {},
    }


def invocations(name, event):
    """The events a scheduled function runs on each time its rule fires: one, but scan_deadlines once
    per shard group (deployed, the scheduled scan hands the other groups to Lambda; here they run side by
    side in this process)."""
    if name != "scan_deadlines":
        return [event]
    from chalicelib import shards

    return shards.group_events(event, shards.configured_count())


class Ticker(threading.Thread):
    """Every `interval` seconds, invoke each scheduled function of `app` as EventBridge would."""

    def __init__(self, app, interval, region):
        super().__init__(name="ticker", daemon=True)
        self.app, self.interval, self.region = app, interval, region
        self.stopped = threading.Event()

    def tick(self):
        """One round over every scheduled function; errors are logged, never raised. Returns failures."""
        failures = 0
        for name, expression in scheduled_functions(self.app):
            started = time.monotonic()
            events = invocations(name, scheduled_event(name, self.region, datetime.now(UTC)))
            failed = self._run_side_by_side(name, events)
            for error in failed:
                log.error("ticker: %s (%s) failed", name, expression, exc_info=error)
            if not failed:
                log.info("ticker: ran %s (%s) in %.0f ms", name, expression, (time.monotonic() - started) * 1000)
            failures += len(failed)
        return failures

    def _run_side_by_side(self, name, events):
        """Invoke `name` once per event, each in a thread of its own as Lambda would; the exceptions raised."""
        from chalice.local import LambdaContext

        failed = []

        def invoke(event):
            try:
                self.app.handler_map[name](event, LambdaContext(name, memory_size=128, max_runtime_ms=900_000))
            except Exception as exc:  # noqa: BLE001 - logged by the tick; the next tick runs again
                failed.append(exc)

        threads = [threading.Thread(target=invoke, args=(event,), name=f"ticker-{name}") for event in events]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return failed

    def run(self):
        while not self.stopped.wait(self.interval):
            self.tick()

    def stop(self):
        self.stopped.set()
        self.join(timeout=10)


class MetricsSink:
    """Where `make run` sends the metrics Lambda would print: one short console line each, and the full
    EMF documents appended to a file (JSON lines) to look at or feed to other tools."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")  # a new run starts a new file, as its data starts afresh
        self._lock = threading.Lock()

    def __call__(self, document):
        from chalicelib.aws.metrics import one_line

        line = json.dumps(document, ensure_ascii=False)
        with self._lock:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
            print(f"metrics: {one_line(document)}", flush=True)


class LocalRequestHandler(ChaliceRequestHandler):
    """chalice local's request handler, answering what no route serves as the deployed API does (the
    gateway responses of infra/generate.py), in the API's {"Code", "Message"} shape.

    chalice local answers a path no route has with API Gateway's 403, whose message quotes the request's
    Authorization header back, bearer token included. Here it is a 404 that repeats nothing of the
    request. A known path with a method it lacks still reaches the app, which answers 405; a method the
    server does not know at all (TRACE, ...) is a 405 too, not http.server's HTML page.
    """

    # Headers and body leave in separate writes; with Nagle's algorithm on, each answer on a kept-alive
    # connection then waits out the client's delayed ACK (about 40 ms on Linux) before its body goes.
    disable_nagle_algorithm = True

    def __init__(self, request, client_address, server, app_object, config, routes):
        self.routes = routes
        super().__init__(request, client_address, server, app_object=app_object, config=config)

    def _generic_handle(self):  # chalice's one handler behind every do_<METHOD>
        try:
            self.routes.match_route(self.path)
        except ValueError:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the connection stays usable
            self.answer(404, "NotFoundError", "no such route")
        else:
            super()._generic_handle()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a method it has no do_<METHOD> for, a malformed request line,
        oversized headers), before chalice sees the request: the body is unread, so the connection closes."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:
            self.answer(405, "MethodNotAllowedError", f"unsupported method: {self.command}")
        else:  # its own message would quote the request line
            self.answer(code, "BadRequestError", HTTPStatus(code).phrase.lower())

    def answer(self, status, code, message):
        from chalicelib.http import JSON_CONTENT_TYPE, render_json  # the app, loaded by now, renders the same

        body = render_json({"Code": code, "Message": message}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    @classmethod
    def install(cls, server, app, config):
        """Serve `server` (chalice.local's LocalDevServer) with this handler (socketserver reads
        RequestHandlerClass for each request)."""
        server.server.RequestHandlerClass = functools.partial(
            cls, app_object=app, config=config, routes=RouteMatcher(list(app.routes)))


class MailSummary(logging.Handler):
    """One console line per email SES accepted, next to the JSON log, so a new user sees mail arrive.
    The log line names neither recipients nor subject (personal data): they are read from the email's
    local copy."""

    def emit(self, record):
        path = getattr(record, "fields", {}).get("eml")
        if record.getMessage() != "notification sent" or not path:
            return
        with open(path, "rb") as copy:
            mail = email.message_from_binary_file(copy, policy=email.policy.default)
        print(f"mail: {record.fields['kind']:<17} to {mail['To']}: {mail['Subject']}  [{path}]", flush=True)


def write_run_state(urls, seeded, demo_seeded):
    """Where the running service is and its tokens, for `make demo` (SLA_RUN_STATE, default
    .run/local.json: git-ignored, owner-only): `demo_seeded` is the contract `make demo` posts to."""
    path = Path(os.environ.get("SLA_RUN_STATE") or ROOT / ".run" / "local.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"api": urls["api"], "moto": urls["moto"], "table_prefix": os.environ["SLA_TABLE_PREFIX"],
             "region": os.environ["AWS_DEFAULT_REGION"], "eml_dir": os.environ["SLA_EML_DIR"],
             "metrics_file": os.environ["SLA_METRICS_FILE"],
             "contract_id": seeded["contract_id"], "admin": os.environ["SLA_ADMIN_TOKEN"],
             "agent": seeded["agent"], "client": seeded["client"],
             "make_demo": {"contract_id": demo_seeded["contract_id"], "agent": demo_seeded["agent"]}}
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def banner(urls, admin_token, generated, seeded, demo_seeded):
    q = shlex.quote
    lines = [
        "",
        "SLA Clock is running locally. Ctrl-C stops it; all data lives in memory.",
        f"  API URL       {urls['api']}",
        f"  AWS (moto)    {urls['moto']}   tables {os.environ['SLA_TABLE_PREFIX']}*",
        f"  contract      {seeded['contract_id']} (seed/demo-contract.json, version {seeded['version']}), "
        f"SES sender {seeded['sender']} verified",
        f"  make demo     posts to contract {demo_seeded['contract_id']} (the same terms), apart from your requests",
        f"  admin token   {admin_token}" + ("   (generated; set SLA_ADMIN_TOKEN to choose one)" if generated else ""),
        f"  agent token   {seeded['agent']}",
        f"  client token  {seeded['client']}",
        f"  emails        written to {os.environ['SLA_EML_DIR']}/ and listed here as they are sent",
        f"  metrics       one line each here (\"metrics: ...\"); the EMF documents in {os.environ['SLA_METRICS_FILE']}",
        "  SES events    .venv/bin/python scripts/ses_event.py bounce|delivery|complaint <request_id>",
        "  webhooks      .venv/bin/python scripts/webhook_receiver.py --secret <secret>  (see docs/local.md)",
        f"  calendar      {urls['api']}/contracts/{seeded['contract_id']}/calendar (JSON, any token) and "
        f"{urls['api']}/contracts/{seeded['contract_id']}/calendar.ics?token=$CLIENT (subscribe)",
        "",
        "Paste into another shell:",
        f"export SLA={urls['api']}",
        f"export ADMIN={q(admin_token)}",
        f"export AGENT={q(seeded['agent'])}",
        f"export CLIENT={q(seeded['client'])}",
        "",
    ]
    print("\n".join(lines), flush=True)


def serve(stack):
    """Start everything, registering each stop on `stack`; returns once the API is listening."""
    from chalice.cli.factory import CLIFactory

    config = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name="dev")
    generated = prepare_environment(os.environ, config.environment_variables)
    api_port = port_from_env("SLA_PORT", 8000)
    moto_port = port_from_env("SLA_MOTO_PORT", 0)
    interval = tick_seconds()
    os.environ["SLA_EML_DIR"] = str(run_outbox(os.environ["SLA_EML_DIR"], datetime.now(UTC)))

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address=HOST, port=moto_port, verbose=False)
    moto.start()
    stack.callback(moto.stop)
    moto_host, moto_port = moto.get_host_and_port()
    moto_url = f"http://{moto_host}:{moto_port}"
    os.environ["AWS_ENDPOINT_URL"] = moto_url

    import seed
    from chalicelib.aws import tables

    tables.create_all()
    seeded = seed.seed_demo(datetime.now(UTC))
    demo_seeded = seed.seed_demo(datetime.now(UTC), seed.MAKE_DEMO_ID)

    from chalice.deploy.validate import validate_routes
    from chalice.local import create_local_server

    from app import app
    from chalicelib.aws import metrics

    logging.getLogger("sla_clock.notify").addHandler(MailSummary())
    metrics.use_writer(MetricsSink(os.environ["SLA_METRICS_FILE"]))
    validate_routes(app.routes)  # as `chalice local` does: what would not deploy should not run
    try:
        server = create_local_server(app, config, HOST, api_port)
    except OSError as err:
        raise StartupError(f"cannot listen on {HOST}:{api_port} ({err.strerror}); set SLA_PORT") from None
    stack.callback(server.server.server_close)
    LocalRequestHandler.install(server, app, config)
    thread = threading.Thread(target=server.server.serve_forever, name="api", daemon=True)
    thread.start()
    stack.callback(server.shutdown)

    ticker = Ticker(app, interval, os.environ["AWS_DEFAULT_REGION"])
    names = [f"{name} ({expression})" for name, expression in scheduled_functions(app)]
    log.info("ticker: every %gs: %s", ticker.interval, ", ".join(names) or "no scheduled functions yet")
    ticker.start()
    stack.callback(ticker.stop)

    urls = {"api": f"http://{HOST}:{server.port}", "moto": moto_url}
    write_run_state(urls, seeded, demo_seeded)
    banner(urls, os.environ["SLA_ADMIN_TOKEN"], generated is not None, seeded, demo_seeded)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore", "pynamodb"):  # moto's access log, "Found credentials..."
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: shells start background jobs ignoring it
        signal.signal(signum, _interrupt)
    with ExitStack() as stack:
        try:
            serve(stack)
            threading.Event().wait()  # until Ctrl-C / SIGTERM
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
        except StartupError as err:
            print(f"run_local: {err}", file=sys.stderr, flush=True)
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the shutdown
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
