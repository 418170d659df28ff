"""Business metrics (issue 12): the CloudWatch EMF lines the functions print on stdout (namespace,
dimensions, values), and that the dashboard and alarms read exactly what they print."""
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import botocore.client
import yaml
from botocore.exceptions import ClientError
from chalice.test import Client

from app import app
from chalicelib.aws import metrics
from conftest import local

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = yaml.safe_load((ROOT / "infra" / "resources.yaml").read_text("utf-8"))
REQUEST = {"contract_id": "acme", "priority": "urgent", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


def emf(text):
    """The EMF documents among printed lines."""
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def lines(documents):
    """{(namespace, dimension sets, dimension values): {metric: (unit, value)}} of EMF documents (lines
    with the same dimensions merged: the tally and its email write one each)."""
    found = {}
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        dimensions = tuple(tuple(names) for names in directive["Dimensions"])
        values = tuple((name, document[name]) for name in directive["Dimensions"][0])
        line = found.setdefault((directive["Namespace"], dimensions, values), {})
        assert not set(line) & {m["Name"] for m in directive["Metrics"]}, "a metric printed twice"
        line.update({m["Name"]: (m["Unit"], document[m["Name"]]) for m in directive["Metrics"]})
    return found


def scan(capsys, clock, moment):
    """scan_deadlines as EventBridge invokes it at `moment`: (its report, the EMF documents it printed)."""
    capsys.readouterr()
    clock.move_to(moment)
    with Client(app) as lambda_client:
        report = lambda_client.lambda_.invoke("scan_deadlines", lambda_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[], region="us-east-1")).payload
    return report, emf(capsys.readouterr().out)


SCAN = ("SLAClock", (("Stage",),), (("Stage", "dev"),))
PER_CONTRACT = ("SLAClock", (("ContractId", "Stage"), ("Stage",)), (("ContractId", "acme"), ("Stage", "dev")))


def breaches(metric, priority):
    return ("SLAClock", (("ContractId", "Metric", "Priority", "Stage"), ("Metric", "Priority", "Stage")),
            (("ContractId", "acme"), ("Metric", metric), ("Priority", priority), ("Stage", "dev")))


def test_a_scan_prints_its_lag_due_errors_and_duration_and_per_contract_warnings_and_breaches(acme, mailbox, clock,
                                                                                              capsys):
    _, agent, _ = acme
    assert agent.post("/requests", REQUEST)[0] == 201  # urgent, 24x7: warnings at 10:15 and 10:24, due 10:30
    backdated = {**REQUEST, "received_at": "2026-11-23T09:00:00+08:00"}  # due 09:30: breached already
    assert agent.post("/requests", backdated)[0] == 201

    report, printed = scan(capsys, clock, local(23, 10, 2))
    assert report["due"] == 1 and report["sent"] == 1
    found = lines(printed)
    assert set(found) == {SCAN, PER_CONTRACT, breaches("first_response", "urgent")}
    assert found[SCAN]["ScanDue"] == ("Count", [1.0]) and found[SCAN]["ScanErrors"] == ("Count", [0.0])
    # The backdated one is checked once its import settled, at 10:01: a minute late.
    assert found[SCAN]["ScanLagSeconds"] == ("Seconds", [60.0])
    unit, [duration] = found[SCAN]["ScanDuration"]
    assert unit == "Milliseconds" and duration == report["duration_ms"] > 0
    assert found[breaches("first_response", "urgent")] == {"Breaches": ("Count", [1.0])}
    assert found[PER_CONTRACT] == {"NotificationsSent": ("Count", [1.0])}

    report, printed = scan(capsys, clock, local(23, 10, 25))  # 10:15 and 10:24 came: one warning, the 80 %
    found = lines(printed)
    assert found[SCAN]["ScanLagSeconds"] == ("Seconds", [600.0])  # due since 10:15
    assert found[PER_CONTRACT] == {"NotificationsSent": ("Count", [1.0]), "WarningsSent": ("Count", [1.0])}
    assert not [key for key in found if "Metric" in dict(key[2])]  # no new breach

    report, printed = scan(capsys, clock, local(23, 10, 26))
    assert lines(printed) == {SCAN: {"ScanDue": ("Count", [0.0]), "ScanErrors": ("Count", [0.0]),
                                     "ScanLagSeconds": ("Seconds", [0.0]),
                                     "ScanDuration": ("Milliseconds", [report["duration_ms"]])}}


def test_a_notification_ses_rejects_is_counted_failed_for_its_contract(acme, mailbox, clock, capsys, monkeypatch):
    _, agent, _ = acme
    assert agent.post("/requests", REQUEST)[0] == 201
    original = botocore.client.BaseClient._make_api_call

    def rejecting(client, operation, params):
        if operation == "SendRawEmail":
            raise ClientError({"Error": {"Code": "MessageRejected", "Message": "Email address is not valid"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", rejecting)
    report, printed = scan(capsys, clock, local(23, 10, 16))
    assert report["failed"] == 1
    assert lines(printed)[PER_CONTRACT] == {"NotificationsFailed": ("Count", [1.0])}


def test_a_new_request_is_counted_by_contract_and_priority_once_whatever_the_retries(acme, mailbox, clock, capsys):
    _, agent, _ = acme
    capsys.readouterr()
    for _ in range(2):
        assert agent.post("/requests", REQUEST, headers={"Idempotency-Key": "k-1"})[0] == 201
    found = lines(emf(capsys.readouterr().out))
    received = ("SLAClock", (("ContractId", "Priority", "Stage"), ("Priority", "Stage")),
                (("ContractId", "acme"), ("Priority", "urgent"), ("Stage", "dev")))
    assert found == {received: {"RequestsReceived": ("Count", [1.0])},
                     PER_CONTRACT: {"NotificationsSent": ("Count", [1.0])}}  # the acknowledgement, once


def test_the_tally_prints_its_duration_per_contract(acme, mailbox, clock, capsys):
    admin, _, _ = acme
    capsys.readouterr()
    status, body = admin.post("/contracts/acme/tallies", {"date": "2026-11-22"})
    assert status == 200, body
    found = lines(emf(capsys.readouterr().out))
    unit, [duration] = found[PER_CONTRACT]["TallyDuration"]
    assert unit == "Milliseconds" and duration > 0
    assert found[PER_CONTRACT]["NotificationsSent"] == ("Count", [1.0])  # the daily report to the admins


def test_the_alarms_and_the_dashboard_read_exactly_what_the_functions_print(acme, mailbox, clock, capsys):
    """Every alarm and dashboard line on SLAClock names a metric and a dimension set some line carries."""
    admin, agent, _ = acme
    capsys.readouterr()
    assert agent.post("/requests", {**REQUEST, "received_at": "2026-11-23T09:00:00+08:00"})[0] == 201
    assert agent.post("/requests", REQUEST)[0] == 201
    assert agent.post("/requests", {**REQUEST, "received_at": "2026-11-20T09:00:00+08:00"})[0] == 201  # skipped
    printed = emf(capsys.readouterr().out)
    printed += scan(capsys, clock, local(23, 10, 1))[1]  # a breach
    printed += scan(capsys, clock, local(23, 10, 16))[1]  # a warning
    assert admin.post("/contracts/acme/tallies", {"date": "2026-11-22"})[0] == 200
    printed += emf(capsys.readouterr().out)
    printed += metrics.emit("NotificationsBounced", contract_id="acme")  # as ses_events writes it
    printed += metrics.emit("NotificationsFailed", contract_id="acme")  # as a scan writes it
    printed += metrics.emit("MalformedEvents", Source="ses_events")  # as the event-source consumers write it
    for outcome in ("sent", "failed"):  # as a scan writes what became of a webhook delivery
        collector = metrics.Collector()
        collector.delivery(SimpleNamespace(key="webhook|0123456789ab|received", kind="webhook", contract_id="acme"),
                           outcome)
        printed += collector.flush()
    published = {(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], metric["Name"], tuple(sorted(names)))
                 for d in printed for metric in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                 for names in d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]}

    alarms = [r["Properties"] for r in TEMPLATE["Resources"].values()
              if r.get("Type") == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "SLAClock"]
    assert {a["MetricName"] for a in alarms} == {"ScanLagSeconds", "ScanErrors", "NotificationsFailed",
                                                 "NotificationsBounced", "WebhooksFailed"}
    for alarm in alarms:
        names = tuple(sorted(d["Name"] for d in alarm["Dimensions"]))
        assert ("SLAClock", alarm["MetricName"], names) in published, alarm["MetricName"]

    body = json.loads(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0])
    shown = [line for widget in body["widgets"] if widget["type"] == "metric"
             for line in widget["properties"]["metrics"]]
    ours = [line for line in shown if line[0] == "SLAClock"]
    assert {line[1] for line in ours} == {"WarningsSent", "NotificationsSent", "NotificationsFailed",
                                          "NotificationsBounced", "ScanLagSeconds", "ScanDuration", "ScanDue",
                                          "ScanErrors", "TallyDuration", "WebhooksDelivered", "WebhooksFailed"}
    for line in ours:
        dimensions = line[2:-1] if isinstance(line[-1], dict) else line[2:]  # name, value, ..., {options}
        names = tuple(sorted(dimensions[0::2]))
        assert ("SLAClock", line[1], names) in published, line
    searches = [re.fullmatch(r"SEARCH\('\{(\w+),([\w,]+)\} MetricName=\"(\w+)\" Stage=\"\$\{Stage\}\"', 'Sum', 300\)",
                             line[0]["expression"]) for line in shown if isinstance(line[0], dict)]
    assert {(m[3], m[2]) for m in searches} == {("Breaches", "Metric,Priority,Stage"),
                                                ("RequestsReceived", "Priority,Stage"),
                                                ("NotificationsSkipped", "ContractId,Reason,Stage"),
                                                ("MalformedEvents", "Source,Stage")}
    for match in searches:
        assert (match[1], match[3], tuple(match[2].split(","))) in published, match[0]


def test_a_metric_that_cannot_be_written_never_fails_the_scan(acme, mailbox, clock, capsys, monkeypatch, caplog):
    from aws_lambda_powertools.metrics import EphemeralMetrics

    def broken(self, **kwargs):
        raise ValueError("no metrics today")

    monkeypatch.setattr(EphemeralMetrics, "add_metric", broken)
    report, printed = scan(capsys, clock, local(23, 10, 1))
    assert report["errors"] == 0 and printed == []
    assert "metrics not written" in caplog.text


def test_the_emf_can_be_switched_off_with_powertools_own_variable(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert metrics.emit("ScanDue", 3)[0]["ScanDue"] == [3.0]
    assert capsys.readouterr().out == ""


def test_a_console_line_for_make_run():
    collector = metrics.Collector()
    collector.add("Breaches", contract_id="demo", Priority="high", Metric="resolution")
    collector.add("Breaches", contract_id="demo", Priority="high", Metric="resolution")
    collector.add("ScanLagSeconds", 12.5, metrics.SECONDS)
    written = []
    metrics.use_writer(written.append)
    try:
        collector.flush()
    finally:
        metrics.use_writer(None)
    assert sorted(metrics.one_line(document) for document in written) == [
        "SLAClock ContractId=demo Metric=resolution Priority=high Stage=local: Breaches=2",
        "SLAClock Stage=local: ScanLagSeconds=12.5",
    ]
    assert collector.flush() == []  # flushed: nothing is written twice


def test_powertools_is_loaded_only_by_what_writes_a_metric():
    """A cold start that serves a read never imports it; the first metric written does."""
    code = """
import sys
from chalice.test import Client
from app import app
with Client(app) as client:
    assert client.http.get("/health").status_code == 200
print("after a read:", "aws_lambda_powertools" in sys.modules)
from chalicelib.aws import metrics
metrics.emit("ScanDue", 0)
print("after a metric:", "aws_lambda_powertools" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})
    assert done.returncode == 0, done.stderr
    assert "after a read: False" in done.stdout and "after a metric: True" in done.stdout


def test_the_stage_dimension_is_the_stage_the_function_runs_in(monkeypatch):
    monkeypatch.setenv("SLA_STAGE", "prod")
    [document] = metrics.emit("RequestsReceived", contract_id="acme", Priority="high")
    assert (document["Stage"], document["ContractId"], document["Priority"]) == ("prod", "acme", "high")
    monkeypatch.delenv("SLA_STAGE")
    assert metrics.emit("ScanDue", 0)[0]["Stage"] == "local"
