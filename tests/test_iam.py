"""IAM (issue 5): `.chalice/policy-<stage>.json` allow every AWS API the code calls, and little else.

A representative flow runs through the app under moto (every route, every scheduled function, SES
sends, the SSM admin token in prod) while every botocore call is recorded; each call is mapped to
the IAM actions and resource ARNs AWS authorizes it with and checked against the stage's policy by
a small Action/Resource matcher (wildcards, Allow/Deny). No network, no credentials.

Also here: the bootstrap admin token read from SSM Parameter Store (SecureString), once per process.
"""
import importlib.util
import json
import re
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3
import botocore.client
import pytest
import time_machine
import yaml
from chalice.app import ScheduledEventConfig
from chalice.test import Client

from chalicelib.aws import outbox, parameters, tables, webhooks
from chalicelib.aws.tables import NotificationModel
from conftest import ADMIN_TOKEN, DEMO_CONTRACT, JsonClient

ROOT = Path(__file__).resolve().parent.parent
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text("utf-8"))
STAGES = list(CONFIG["stages"])
ACCOUNT = "123456789012"  # moto's
UNSCOPED_ACTIONS = {"ses:GetSendQuota"}  # IAM supports no resource for these: they need "*"
REGION = "us-east-1"
SH = ZoneInfo("Asia/Shanghai")
REQUESTER = "zhang@customer.example"
_spec = importlib.util.spec_from_file_location("ses_event_script", ROOT / "scripts" / "ses_event.py")
ses_event_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ses_event_script)
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": REQUESTER}}


def policy(stage):
    return json.loads((ROOT / ".chalice" / CONFIG["stages"][stage]["iam_policy_file"]).read_text("utf-8"))


def stage_env(stage):
    return {**CONFIG.get("environment_variables", {}), **CONFIG["stages"][stage]["environment_variables"]}


# --- the matcher ----------------------------------------------------------------------------------------


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _wildcard(pattern, value, ignore_case=False):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def allowed(document, action, resource):
    """IAM's evaluation for one identity policy: an explicit Deny wins, else some Allow must match.
    Actions match case-insensitively, resources case-sensitively; `*` and `?` are wildcards."""
    verdict = False
    for statement in _as_list(document["Statement"]):
        unsupported = set(statement) - {"Sid", "Effect", "Action", "Resource"}
        assert not unsupported, f"the matcher does not evaluate {unsupported} (statement {statement.get('Sid')})"
        if not any(_wildcard(a, action, ignore_case=True) for a in _as_list(statement["Action"])):
            continue
        if not any(_wildcard(r, resource) for r in _as_list(statement["Resource"])):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


def test_the_matcher():
    document = {"Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:Get*", "s3:PutObject"], "Resource": "arn:aws:dynamodb:*:*:table/a-*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bucket/?.txt"},
        {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:*:*:table/a-secret"},
    ]}
    assert allowed(document, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/a-x")
    assert allowed(document, "DynamoDB:getitem", "arn:aws:dynamodb:us-east-1:1:table/a-x/index/i")
    assert not allowed(document, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/A-x")
    assert not allowed(document, "dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:1:table/a-x")
    assert not allowed(document, "dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:1:table/a-secret")
    assert allowed(document, "s3:PutObject", "arn:aws:s3:::bucket/1.txt")
    assert not allowed(document, "s3:PutObject", "arn:aws:s3:::bucket/12.txt")
    with pytest.raises(AssertionError, match="Condition"):
        allowed({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}, "a:b", "c")


# --- AWS calls -> IAM actions on resources ----------------------------------------------------------------


TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                         "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _table_arn(stage, table, index=None):
    """The ARN of `table`, one of the stage's own tables (the models read the stage's prefix)."""
    assert table.startswith(stage_env(stage)["SLA_TABLE_PREFIX"]), table
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def required_permissions(stage, service, operation, params):
    """[(action, [resource ARNs, any one of which suffices])] AWS checks for one API call.

    DynamoDB transactions have no IAM action of their own: each item is authorized as the single-item
    action it performs (PutItem, UpdateItem, DeleteItem, ConditionCheckItem, GetItem) on its table.
    SES authorizes the sending identity (the address, or its domain when only that is verified) and
    the configuration set, if one is named."""
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needs = []
            for item in params["TransactItems"]:
                [(kind, body)] = item.items()
                needs.append((f"dynamodb:{TRANSACT_ITEM_ACTIONS[kind]}", [_table_arn(stage, body["TableName"])]))
            return needs
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", [_table_arn(stage, t)]) for t in params["RequestItems"]]
        return [(f"dynamodb:{operation}", [_table_arn(stage, params["TableName"], params.get("IndexName"))])]
    if service == "ses" and operation in ("SendRawEmail", "SendEmail"):
        address = parseaddr(params.get("Source") or params.get("FromArn", ""))[1]
        assert address, f"{operation} without a Source: the policy cannot be checked ({params.keys()})"
        identities = [f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{address}",
                      f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{address.rpartition('@')[2]}"]
        needs = [(f"ses:{operation}", identities)]
        if params.get("ConfigurationSetName"):
            needs.append((f"ses:{operation}",
                          [f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{params['ConfigurationSetName']}"]))
        return needs
    if service == "ses" and operation == "GetSendQuota":
        return [("ses:GetSendQuota", ["*"])]  # an account-level read: IAM scopes it to no resource
    if service == "ssm" and operation in ("GetParameter", "PutParameter"):
        name = params["Name"].lstrip("/").split(":", 1)[0]  # "name:3" selects a version of parameter "name"
        return [(f"ssm:{operation}", [f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}"])]
    raise AssertionError(f"the code calls {service}:{operation}, which this test cannot map to IAM yet: add it "
                         "here and to .chalice/policy-*.json")


class Recorder:
    """Every botocore API call made while active: (service, operation, params)."""

    def __init__(self):
        self.calls = []

    def install(self, monkeypatch):
        original = botocore.client.BaseClient._make_api_call
        calls = self.calls

        def recording(client, operation_name, api_params):
            calls.append((client.meta.service_model.service_name, operation_name, api_params))
            return original(client, operation_name, api_params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)

    def operations(self):
        return {(service, operation) for service, operation, _ in self.calls}


# --- the representative flow -------------------------------------------------------------------------------


def local(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


def deliver_ses_events(chalice_client, request_id):
    """SES's delivery and then a permanent bounce of the request's acknowledgement, as the SNS topic of
    the configuration set hands them to `ses_events`: the bounce mails the contract's admins."""
    entry = NotificationModel.get(request_id, "acknowledgement")
    for kind in ("delivery", "bounce"):
        message = json.dumps(ses_event_script.ses_event(kind, entry.message_id, [REQUESTER], datetime.now(UTC)))
        answer = chalice_client.lambda_.invoke("ses_events", chalice_client.events.generate_sns_event(message=message))
        assert answer.payload == {"outcome": "recorded"}


def run_schedules(app, chalice_client):
    """Every scheduled function of the app, as EventBridge would invoke it."""
    names = [source.name for source in app.event_sources if isinstance(source, ScheduledEventConfig)]
    assert "scan_deadlines" in names
    for name in names:
        event = chalice_client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={},
            resources=[f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"], region=REGION)
        chalice_client.lambda_.invoke(name, event)
    return names


COVERED_ROUTES = {
    ("/health", "GET"), ("/contracts/{contract_id}", "PUT"), ("/contracts/{contract_id}", "GET"),
    ("/requests", "POST"), ("/requests", "GET"), ("/requests/{request_id}", "GET"),
    ("/requests/{request_id}/events", "POST"), ("/tokens", "POST"), ("/tokens/{token_id}", "DELETE"),
    ("/calendars/{country}/{year}", "PUT"), ("/calendars/{country}/{year}", "GET"),
    ("/calendars/{country}/{year}", "DELETE"), ("/contracts/{contract_id}/calendar", "GET"),
    ("/contracts/{contract_id}/calendar.ics", "GET"), ("/contracts/{contract_id}/preview", "POST"),
    ("/contracts/{contract_id}/simulations", "POST"),
    ("/contracts/{contract_id}/interactions", "POST"),
}
CHANNELS = {"phone": {"answer_within": "60s", "target": 0.9}}
QUEUE = "7d2e9b10-hotline"
CONTACT_RECORD = {"ContactId": "c-2", "Channel": "VOICE", "DisconnectTimestamp": "2026-11-23T01:32:00Z",
                  "Queue": {"ARN": f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/i-1/queue/{QUEUE}",
                            "EnqueueTimestamp": "2026-11-23T01:31:00Z"},
                  "Agent": {"ConnectedToAgentTimestamp": "2026-11-23T01:31:20Z"}}
WEBHOOK = {"url": "https://hooks.customer.example/sla", "events": ["received", "breach"],
           "secret": "whsec-0123456789abcdef"}
SCHEDULE = {"holidays": ["2027-01-01"], "workdays": ["2027-02-20"], "source": "illustrative"}


def representative_flow(app, chalice_client, traveller):
    """Contracts, tokens, requests with idempotency, every event type, listings, scans that warn and
    alert, every scheduled function, and every other route once. Returns the routes it called."""
    admin = JsonClient(chalice_client.http, ADMIN_TOKEN)
    assert admin.get("/health")[0] == 200
    assert admin.put("/contracts/acme", {**DEMO_CONTRACT, "interactions": CHANNELS,
                                         "amazon_connect": {"queue_ids": [QUEUE]}, "webhooks": [WEBHOOK]})[0] == 201
    assert admin.get("/contracts/acme")[0] == 200
    tokens = {}
    for role in ("agent", "client"):
        status, body = admin.post("/tokens", {"role": role, "contract_id": "acme"})
        assert status == 201, body
        tokens[role] = body
    agent, client = admin.as_token(tokens["agent"]["token"]), admin.as_token(tokens["client"]["token"])

    status, first = agent.post("/requests", REQUEST, headers={"Idempotency-Key": "iam-1"})
    assert status == 201, first
    assert agent.post("/requests", REQUEST, headers={"Idempotency-Key": "iam-1"}) == (201, first)
    request_id = first["request_id"]
    status, second = client.post("/requests", {**REQUEST, "priority": "urgent"})
    assert status == 201, second
    for body in ({"type": "respond", "note": "已收到"}, {"type": "progress", "note": "排查中"},
                 {"type": "await_customer", "note": "请提供截图"}):
        assert agent.post(f"/requests/{request_id}/events", body)[0] == 200
    assert client.post(f"/requests/{request_id}/events", {"type": "customer_reply"})[0] == 200
    assert agent.post(f"/requests/{request_id}/events", {"type": "reprioritize", "priority": "medium"})[0] == 200
    assert agent.post(f"/requests/{request_id}/events", {"type": "resolve", "note": "已修复"})[0] == 200
    assert client.post(f"/requests/{request_id}/events", {"type": "rate", "score": 5})[0] == 200
    assert client.post(f"/requests/{request_id}/events", {"type": "reopen"})[0] == 200
    assert agent.get(f"/requests/{request_id}")[0] == 200
    status, listing = agent.get("/requests?status=open&limit=1")
    assert status == 200 and listing["next"]
    assert agent.get(f"/requests?limit=1&next={listing['next']}")[0] == 200
    assert admin.get("/requests?contract_id=acme&breached=true")[0] == 200
    assert admin.put("/calendars/CN/2027", SCHEDULE)[0] == 201  # re-evaluates the contracts using CN
    assert client.get("/calendars/CN/2027")[0] == 200
    assert agent.get("/contracts/acme/calendar?from=2027-01-01&to=2027-01-31")[0] == 200
    assert chalice_client.http.get(f"/contracts/acme/calendar.ics?token={tokens['client']['token']}").status_code == 200
    assert client.post("/contracts/acme/preview", {"priority": "high"})[0] == 200
    assert agent.post("/contracts/acme/simulations", {"contract": DEMO_CONTRACT, "month": "2026-11"})[0] == 200
    assert admin.delete("/calendars/CN/2027")[0] == 204
    calls = {"items": [{"id": "c-1", "channel": "phone", "offered_at": "2026-11-23T09:30:00+08:00",
                        "answered_at": "2026-11-23T09:30:40+08:00"}]}
    assert agent.post("/contracts/acme/interactions", calls)[1] == {"accepted": 1, "replaced": 0}
    assert agent.post("/contracts/acme/interactions", calls)[1] == {"accepted": 1, "replaced": 1}
    records = chalice_client.events.generate_kinesis_event([json.dumps(CONTACT_RECORD).encode()])
    assert chalice_client.lambda_.invoke("connect_contact_records", records).payload["stored"] == 1

    for moment in (local(23, 10, 20), local(23, 10, 40), local(23, 11, 5), local(23, 15), local(24, 0, 10)):
        traveller.move_to(moment)  # warnings, breach alerts, progress reminders; the nightly jobs
        run_schedules(app, chalice_client)
    deliver_ses_events(chalice_client, request_id)

    called = set(COVERED_ROUTES)
    fill = {"contract_id": "acme", "request_id": request_id, "token_id": tokens["client"]["token_id"]}
    for path, methods in app.routes.items():  # routes added since this flow was written: each once
        for method in methods:
            if (path, method) in called:
                continue
            concrete = re.sub(r"\{(\w+)\}", lambda m: fill.get(m[1], "x"), path)
            status, _ = admin.call(method, concrete, {} if method in ("POST", "PUT", "PATCH") else None)
            assert status < 500, (method, path)
            called.add((path, method))
    assert admin.delete(f"/tokens/{tokens['client']['token_id']}")[0] == 204
    return called


@pytest.fixture
def traveller():
    with time_machine.travel(local(23, 10), tick=False) as moving:
        yield moving


@pytest.fixture
def fresh_ssm_cache(monkeypatch):
    monkeypatch.setattr(parameters, "_values", {})


@pytest.fixture
def send_rate_from_ses(monkeypatch):
    """Scans read the send rate from SES (no rate configured), and moto's quota is roomy enough that
    they never wait: its sandbox answer, 1 a second, would make the flow's scans pace for real."""
    from moto.ses.models import SESBackend

    monkeypatch.setattr(outbox, "configured_send_rate", lambda: None)
    original = SESBackend.get_send_quota

    def roomy(backend):
        quota = original(backend)
        quota.max_send_rate = 1000
        return quota

    monkeypatch.setattr(SESBackend, "get_send_quota", roomy)


@pytest.mark.parametrize("stage", STAGES)
def test_every_aws_call_of_a_representative_flow_is_allowed_by_the_stage_policy(
        stage, aws, mailbox, traveller, monkeypatch, fresh_ssm_cache, send_rate_from_ses):
    env = stage_env(stage)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tables.create_all()  # the stage's own tables, as its functions name them
    if "SLA_ADMIN_TOKEN_PARAMETER" in env:
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=env["SLA_ADMIN_TOKEN_PARAMETER"], Value=ADMIN_TOKEN, Type="SecureString")
        monkeypatch.delenv("SLA_ADMIN_TOKEN")
    from app import app

    posted = []  # webhook deliveries answered here: the flow needs their secrets, not the network
    monkeypatch.setattr(webhooks, "post", lambda url, body, headers, allow_local: posted.append(url) or 204)
    recorder = Recorder()
    recorder.install(monkeypatch)
    with Client(app, stage_name=stage) as chalice_client:  # the stage's variables inside each call
        called = representative_flow(app, chalice_client, traveller)
    assert called >= {(path, method) for path, methods in app.routes.items() for method in methods}

    operations = recorder.operations()
    assert {("dynamodb", op) for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query",
                                        "TransactWriteItems", "BatchGetItem", "BatchWriteItem")} <= operations
    assert ("ses", "SendRawEmail") in operations and len(mailbox.messages()) >= 5
    assert any(params.get("IndexName") == "by_message_id" for _, _, params in recorder.calls)  # ses_events
    assert mailbox.to("sla-admin@provider.example")  # the requester's bounce reached the admins
    sends = [params for service, operation, params in recorder.calls if operation == "SendRawEmail"]
    assert {params.get("ConfigurationSetName") for params in sends} == {env["SLA_SES_CONFIGURATION_SET"]}
    assert ("ses", "GetSendQuota") in operations  # each scan reads the account's send rate
    parameters = {params["Name"] for service, operation, params in recorder.calls if service == "ssm"}
    assert (env.get("SLA_ADMIN_TOKEN_PARAMETER") in parameters) == ("SLA_ADMIN_TOKEN_PARAMETER" in env)
    assert {("ssm", "PutParameter"), ("ssm", "GetParameter")} <= operations and posted  # webhook secrets

    document = policy(stage)
    refused = []
    for service, operation, params in recorder.calls:
        for action, resources in required_permissions(stage, service, operation, params):
            if not any(allowed(document, action, resource) for resource in resources):
                refused.append(f"{service}:{operation} needs {action} on {resources[0]}")
    assert not refused, f"policy-{stage}.json refuses:\n" + "\n".join(sorted(set(refused)))


@pytest.mark.parametrize("stage", STAGES)
def test_lambda_can_write_its_logs(stage):
    """The runtime's CloudWatch Logs calls for each function of the stack `sla-clock-<stage>` (the name
    the README's "Deploy to AWS" deploys under; `chalice deploy` names functions sla-clock-<stage>-<name> too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("infra_generate", ROOT / "infra" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    document = policy(stage)
    for function, _ in generate.functions():
        for name in (f"sla-clock-{stage}-{function}-AbCdEf123456", f"sla-clock-{stage}-{function}"):
            group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{name}"
            assert allowed(document, "logs:CreateLogGroup", group)
            for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
                assert allowed(document, action, f"{group}:log-stream:2026/11/23/[$LATEST]0123456789abcdef")
    other = "prod" if stage == "dev" else "dev"
    assert not allowed(document, "logs:PutLogEvents",
                       f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/sla-clock-{other}-X:log-stream:s")


# --- least privilege ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_policy_names_only_the_stage_s_own_resources(stage):
    document = policy(stage)
    env = stage_env(stage)
    prefix = env["SLA_TABLE_PREFIX"]
    other = next(s for s in STAGES if s != stage)
    other_prefix = stage_env(other)["SLA_TABLE_PREFIX"]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        if "*" in _as_list(statement["Resource"]):  # only actions no resource can scope
            assert set(_as_list(statement["Action"])) <= UNSCOPED_ACTIONS, statement["Sid"]
        assert not any(a.endswith("*") for a in _as_list(statement["Action"])), statement["Sid"]
    assert allowed(document, "dynamodb:Query", f"{table}{prefix}requests/index/due_for_check")
    assert not allowed(document, "dynamodb:GetItem", f"{table}{other_prefix}requests")
    assert not allowed(document, "dynamodb:GetItem", f"{table}someone-elses-table")
    for action in ("DeleteTable", "CreateTable", "UpdateTable", "Scan", "PartiQLSelect", "ExportTableToPointInTime"):
        assert not allowed(document, f"dynamodb:{action}", f"{table}{prefix}requests"), action
    assert allowed(document, "dynamodb:Scan", f"{table}{prefix}contracts")  # the nightly tally lists contracts
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/sla-clock/"
    for action in ("ssm:GetParameter", "ssm:PutParameter"):  # webhook secrets: the stage's own only
        assert allowed(document, action, f"{parameter}{stage}/webhooks/acme/0123456789ab")
        assert not allowed(document, action, f"{parameter}{other}/webhooks/acme/0123456789ab")
    assert not allowed(document, "ssm:PutParameter", f"{parameter}{stage}/admin-token")
    sender = env["SLA_DEFAULT_SENDER"]
    domain = sender.rpartition("@")[2]
    for action in ("ses:SendEmail", "ses:SendRawEmail"):
        assert allowed(document, action, f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{domain}")
        assert allowed(document, action, f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{sender}")
        assert allowed(document, action, f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/sla-clock-{stage}")
        assert not allowed(document, action, f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/elsewhere.example")
        assert not allowed(document, action, f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{domain}.evil.example")
    parameter = env.get("SLA_ADMIN_TOKEN_PARAMETER")
    ssm = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/"
    if parameter:
        assert allowed(document, "ssm:GetParameter", ssm + parameter.lstrip("/"))
    assert not allowed(document, "ssm:GetParameter", ssm + "other/secret")
    assert not allowed(document, "ssm:GetParameters", ssm + "sla-clock/prod/admin-token")


# --- the admin token from SSM Parameter Store ---------------------------------------------------------


def test_prod_reads_the_admin_token_from_ssm_never_from_a_plain_variable():
    prod = {**CONFIG.get("environment_variables", {}), **CONFIG["stages"]["prod"]["environment_variables"]}
    assert prod["SLA_ADMIN_TOKEN_PARAMETER"].startswith("/")
    assert "SLA_ADMIN_TOKEN" not in prod
    assert "SLA_ADMIN_TOKEN" not in CONFIG["stages"]["dev"]["environment_variables"]


PARAMETER = "/sla-clock/test/admin-token"


@pytest.fixture
def ssm_admin(aws, monkeypatch, fresh_ssm_cache):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name=PARAMETER, Value="from-ssm-secret", Type="SecureString")
    monkeypatch.setenv("SLA_ADMIN_TOKEN_PARAMETER", PARAMETER)
    monkeypatch.delenv("SLA_ADMIN_TOKEN")
    return ssm


def test_with_a_parameter_name_the_admin_token_comes_from_ssm_decrypted_once(ssm_admin, client, monkeypatch):
    recorder = Recorder()
    recorder.install(monkeypatch)
    admin = client.as_token("from-ssm-secret")
    assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
    assert admin.get("/contracts/acme")[0] == 200
    assert client.as_token(ADMIN_TOKEN).get("/contracts/acme")[0] == 401  # the plain variable is not used
    gets = [params for service, op, params in recorder.calls if (service, op) == ("ssm", "GetParameter")]
    assert gets == [{"Name": PARAMETER, "WithDecryption": True}]  # once per warm Lambda
    ssm_admin.put_parameter(Name=PARAMETER, Value="rotated", Type="SecureString", Overwrite=True)
    assert admin.get("/contracts/acme")[0] == 200  # cached until the next cold start


def test_a_missing_parameter_refuses_the_admin_but_not_stored_tokens_and_is_retried(
        aws, client, monkeypatch, fresh_ssm_cache):
    monkeypatch.setenv("SLA_ADMIN_TOKEN_PARAMETER", PARAMETER)
    status, body = client.as_token(ADMIN_TOKEN).get("/contracts/acme")
    assert status == 401 and body["Code"] == "UnauthorizedError"
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAMETER, Value="late", Type="SecureString")
    assert client.as_token("late").put("/contracts/acme", DEMO_CONTRACT)[0] == 201


def test_without_a_parameter_name_the_plain_variable_is_used(aws, client, monkeypatch, fresh_ssm_cache):
    monkeypatch.delenv("SLA_ADMIN_TOKEN_PARAMETER", raising=False)
    recorder = Recorder()
    recorder.install(monkeypatch)
    assert client.as_token(ADMIN_TOKEN).put("/contracts/acme", DEMO_CONTRACT)[0] == 201
    assert not any(service == "ssm" for service, _, _ in recorder.calls)


# --- the Amazon Connect stream -----------------------------------------------------------------------------


def _substituted(value, names):
    """A policy document with every {"Fn::Sub": "..."} resolved from `names`."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m[1]], value["Fn::Sub"])
    if isinstance(value, dict):
        return {key: _substituted(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, names) for item in value]
    return value


def test_the_contact_record_consumer_may_read_the_stream_its_parameter_names_and_no_other():
    """Lambda's event source mapping reads the stream with the consumer's role: the stack adds a policy for
    exactly the stream named by ConnectContactRecordStream (and none when it names none)."""
    template = yaml.safe_load((ROOT / "infra" / "resources.yaml").read_text("utf-8"))
    resource = template["Resources"]["ContactRecordStreamPolicy"]
    assert resource["Condition"] == "HasContactRecordStream"
    assert resource["Properties"]["Roles"] == [{"Ref": "ConnectContactRecordsRole"}]
    document = _substituted(resource["Properties"]["PolicyDocument"], {
        "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
        "ConnectContactRecordStream": "connect-contact-records"})
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/connect-contact-records"
    for action in ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                   "kinesis:GetShardIterator", "kinesis:ListShards"):
        assert allowed(document, action, stream), action
    assert allowed(document, "kinesis:ListStreams", f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/*")
    assert not allowed(document, "kinesis:GetRecords", f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/someone-else")
    for action in ("kinesis:PutRecord", "kinesis:DeleteStream"):
        assert not allowed(document, action, stream), action
