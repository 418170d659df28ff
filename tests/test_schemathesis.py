"""schemathesis against the real local server (scripts/run_local.py, what `make run` starts: chalice's
local server on loopback, moto for DynamoDB and SES), bounded: a fixed seed, a fixed number of
examples per operation, one worker. It reads the spec the server serves at /openapi.json, sends
generated and spec-example calls to every operation, and follows the spec's links statefully
(create a request -> read it, list its events, post an event; issue a token -> revoke it). No answer
may be a 5xx, nor off-spec (status, content type, body schema), nor ignore a missing token.

The numbers of the last run are in docs/api.md; the same command runs by hand against `make run`."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from test_run_local import running  # noqa: F401 - the fixture: scripts/run_local.py on free ports

TESTS = Path(__file__).resolve().parent
SEED = 1
EXAMPLES = 5  # per operation and phase
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "ignored_auth")
BUDGET_S = 120


def schemathesis_command(base, admin_token, report):
    return [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(TESTS / "schemathesis.toml"),
        "run", f"{base}/openapi.json", "--url", base, "-H", f"Authorization: Bearer {admin_token}",
        "--seed", str(SEED), "--max-examples", str(EXAMPLES), "--phases", "examples,fuzzing,stateful",
        "--checks", ",".join(CHECKS), "--workers", "1", "--generation-database", "none", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]


def test_schemathesis_finds_no_server_error_and_no_off_spec_answer_in_two_minutes(running, tmp_path):  # noqa: F811
    process, exports, _, drained_stderr, env = running
    report_path = tmp_path / "schemathesis.json"
    started = time.monotonic()
    run = subprocess.run(schemathesis_command(exports["SLA"], exports["ADMIN"], report_path), cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(TESTS), "SCHEMATHESIS_HOOKS": "schemathesis_hooks"},
                         capture_output=True, text=True, timeout=BUDGET_S + 60)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == [] and report["errors"] == [], report
    assert report["test_cases"]["with_failures"] == 0
    from app import app

    every_operation = sum(len(methods) for methods in app.routes.values())
    assert report["operations"]["tested"] == every_operation - 1  # all but GET /openapi.json, the spec itself
    assert report["test_cases"]["generated"] >= 200
    assert elapsed < BUDGET_S, f"schemathesis took {elapsed:.0f} s"
    assert re.search(r"API Links:\s+([1-9]\d*) covered", run.stdout), run.stdout[-3000:]

    process.terminate()
    process.wait(timeout=20)
    access = drained_stderr()
    # The stateful chain reached real requests: read back and given an event through the links.
    assert re.search(r'"POST /requests HTTP/1.1" 201', access)
    assert re.search(r'"GET /requests/req_[0-9a-f]{32} HTTP/1.1" 200', access)
    assert re.search(r'"POST /requests/req_[0-9a-f]{32}/events HTTP/1.1" 200', access)
    assert not re.search(r'HTTP/1.1" 5\d\d', access)


def test_the_hooks_steer_calls_to_the_seeded_contract_and_never_replace_it():
    import schemathesis
    import schemathesis_hooks as hooks

    from chalicelib import openapi

    schema = schemathesis.openapi.from_dict(openapi.document())

    def context(method, path):
        return schemathesis.HookContext(operation=schema[path][method])

    put = context("PUT", "/contracts/{contract_id}")
    assert hooks.map_path_parameters(put, {"contract_id": "x1"}) == {"contract_id": "x1"}
    report = context("GET", "/contracts/{contract_id}/reports")
    assert hooks.map_path_parameters(report, {"contract_id": "x1"}) == {"contract_id": "demo"}
    listing = context("GET", "/requests")
    assert hooks.map_query(listing, {"contract_id": "x1", "limit": 3}) == {"contract_id": "demo", "limit": 3}
    create = context("POST", "/requests")
    assert hooks.map_body(create, {"contract_id": "zz", "priority": "p", "subject": "s"}) == \
        {"contract_id": "demo", "priority": "high", "subject": "s"}
    assert hooks.map_body(create, ["not", "an", "object"]) == ["not", "an", "object"]
    event = context("POST", "/requests/{request_id}/events")
    assert hooks.map_body(event, {"type": "respond", "priority": "p"}) == {"type": "respond", "priority": "p"}
