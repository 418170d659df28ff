"""infra/: the CloudFormation merged into `chalice package` (issue 5).

- infra/resources.yaml is exactly what infra/generate.py makes of the code now (a model, stage or
  function changed without `make infra` fails here, so in CI);
- the generator handles any PynamoDB model, not a fixed list;
- the template's tables, deployed by moto's CloudFormation, are the tables PynamoDB expects (names, keys,
  attributes, GSIs and projections), and the app runs a request through them;
- the "notification failed" metric filter matches the log line the code really writes.
"""
import copy
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import yaml
from chalice.test import Client
from moto import mock_aws
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, LocalSecondaryIndex
from pynamodb.models import Model

from chalicelib import logs, settings
from chalicelib.aws import metrics, outbox, tables
from chalicelib.aws.tables import NotificationModel
from chalicelib.core import delivery
from conftest import ADMIN_TOKEN, DEMO_CONTRACT, JsonClient

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "resources.yaml"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text("utf-8"))
REQUEST = {"contract_id": "acme", "priority": "high", "channel": "portal", "subject": "系统无法登录",
           "requester": {"name": "张三", "email": "zhang@customer.example"}}


@pytest.fixture(scope="module")
def generate():
    import importlib.util

    spec = importlib.util.spec_from_file_location("infra_generate", ROOT / "infra" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def template():
    return yaml.safe_load(TEMPLATE.read_text("utf-8"))


def table_resources(template):
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == "AWS::DynamoDB::Table"}


# --- one source of truth ---------------------------------------------------------------------------


def test_the_checked_in_template_is_what_the_generator_makes_of_the_code_now(generate):
    assert TEMPLATE.read_text("utf-8") == generate.render(), (
        "infra/resources.yaml is stale: a model, a stage or a Lambda function changed. Run `make infra` and commit it.")


def test_every_model_has_exactly_one_table_and_nothing_else_is_a_table(template):
    names = sorted(r["Properties"]["TableName"]["Fn::Sub"][0] for r in table_resources(template).values())
    assert names == sorted("${Prefix}" + m.Meta.table for m in tables.MODELS)


def test_tables_are_on_demand_recoverable_and_protected_in_prod(template):
    assert template["Conditions"]["IsProd"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    for resource in table_resources(template).values():
        properties = resource["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["DeletionProtectionEnabled"] == {"Fn::If": ["IsProd", True, False]}


def test_ttl_is_on_exactly_the_tables_whose_model_has_a_ttl_attribute(template):
    by_name = {r["Properties"]["TableName"]["Fn::Sub"][0][len("${Prefix}"):]: r["Properties"]
               for r in table_resources(template).values()}
    expected = {m.Meta.table: m._ttl_attribute().attr_name
                for m in tables.MODELS if m._ttl_attribute() is not None}
    assert {"idempotency", "outbox"} <= set(expected)
    actual = {name: p["TimeToLiveSpecification"]["AttributeName"] for name, p in by_name.items()
              if "TimeToLiveSpecification" in p}
    assert actual == expected
    assert all(p["TimeToLiveSpecification"]["Enabled"] for p in by_name.values() if "TimeToLiveSpecification" in p)


def test_table_prefixes_and_ses_names_come_from_the_chalice_stages(template):
    stages = CONFIG["stages"]
    assert template["Parameters"]["Stage"]["AllowedValues"] == list(stages)
    assert template["Mappings"]["StageSettings"] == {
        stage: {"TablePrefix": env["SLA_TABLE_PREFIX"], "SesConfigurationSet": env["SLA_SES_CONFIGURATION_SET"],
                "SesEventsTopic": env["SLA_SES_EVENTS_TOPIC"],
                "LogRetentionInDays": stages[stage]["log_retention_in_days"]}
        for stage, env in ((stage, values["environment_variables"]) for stage, values in stages.items())}
    for stage, values in stages.items():
        assert values["environment_variables"]["SLA_STAGE"] == stage  # the metrics' Stage dimension


def test_every_chalice_function_has_an_error_alarm_and_a_blocked_notification_filter(template, generate):
    functions = generate.functions()
    names = {name for name, _ in functions}
    assert {"APIHandler", "ScanDeadlines", "SesEvents"} <= names  # the API, each schedule, the SNS subscriber
    resources = template["Resources"]
    for function, log_group in functions:
        alarm = resources[f"{function}ErrorsAlarm"]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
        assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        metric_filter = resources[f"{function}NotificationBlockedFilter"]["Properties"]
        assert metric_filter["LogGroupName"] == {"Ref": log_group}
        assert metric_filter["MetricTransformations"][0]["MetricName"] == "NotificationsBlocked"
    blocked = resources["NotificationsBlockedAlarm"]["Properties"]
    assert blocked["Namespace"] == metric_filter["MetricTransformations"][0]["MetricNamespace"]
    assert resources["NotificationsConfigurationSet"]["Type"] == "AWS::SES::ConfigurationSet"
    assert {"AlarmTopicArn", "NotificationsConfigurationSetName", "ContractsTableName", "DashboardURL",
            "SesEventsTopicArn"} <= set(template["Outputs"])


def test_api_gateway_answers_an_unknown_route_and_its_own_errors_in_the_api_s_shape(template):
    """What API Gateway answers itself takes the {"Code", "Message"} shape, with codes the API documents;
    a path no route has is a 404 that quotes nothing of the request (API Gateway's own 403 for a request
    with a bearer token quotes its Authorization header)."""
    from chalice.package import TemplateDeepMerger

    codes = set(openapi_spec()["components"]["schemas"]["Error"]["properties"]["Code"]["enum"])
    responses = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"]
    assert set(responses) == {"MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE", "THROTTLED", "REQUEST_TOO_LARGE",
                              "UNSUPPORTED_MEDIA_TYPE", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response_type, response in responses.items():
        assert response["responseParameters"] == {"gatewayresponse.header.Content-Type": "'application/json'"}
        [(content_type, body)] = response["responseTemplates"].items()
        assert content_type == "application/json"
        assert "method.request" not in body and "$input" not in body  # nothing of the request is echoed
        answer = json.loads(body.replace("$context.error.messageString", json.dumps("Too Many Requests")))
        assert set(answer) == {"Code", "Message"} and answer["Code"] in codes, response_type
    for unknown_route in ("MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE"):
        assert responses[unknown_route]["statusCode"] == "404"
        assert json.loads(responses[unknown_route]["responseTemplates"]["application/json"]) == {
            "Code": "NotFoundError", "Message": "no such route"}
    assert not [kind for kind, response in responses.items() if "statusCode" in response and kind not in (
        "MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE")]  # API Gateway's own status everywhere else
    # `chalice package --merge-template` merges them into the API definition it generates from app.py
    generated = {"Resources": {"RestAPI": {"Type": "AWS::Serverless::Api", "Properties": {
        "DefinitionBody": {"swagger": "2.0", "paths": {"/health": {"get": {}}}}}}}}
    merged = TemplateDeepMerger().merge(template, generated)["Resources"]["RestAPI"]["Properties"]
    assert merged["DefinitionBody"]["paths"] == {"/health": {"get": {}}}
    assert merged["DefinitionBody"]["x-amazon-apigateway-gateway-responses"] == responses


def openapi_spec():
    return yaml.safe_load((ROOT / "chalicelib" / "openapi.yaml").read_text("utf-8"))


class WidgetsByOwner(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_owner"
        projection = IncludeProjection(["title", "colour"])

    owner = UnicodeAttribute(hash_key=True)
    made_at = NumberAttribute(range_key=True)


class WidgetsByMadeAt(LocalSecondaryIndex):
    class Meta:
        index_name = "by_made_at"
        projection = IncludeProjection(["title"])

    widget_id = UnicodeAttribute(hash_key=True)
    made_at = NumberAttribute(range_key=True)


class WidgetModel(Model):
    """A model the generator has never seen: GSI with an INCLUDE projection, an LSI, TTL, a stream."""

    class Meta(tables._Meta):
        table = "widget_parts"
        stream_view_type = "NEW_IMAGE"

    widget_id = UnicodeAttribute(hash_key=True)
    part = UnicodeAttribute(range_key=True)
    owner = UnicodeAttribute()
    made_at = NumberAttribute()
    gone_at = TTLAttribute()
    by_owner = WidgetsByOwner()
    by_made_at = WidgetsByMadeAt()


def test_the_generator_handles_any_model(generate):
    name, resource = generate.table_resource(WidgetModel)
    properties = resource["Properties"]
    assert name == "WidgetPartsTable"
    assert properties["TableName"]["Fn::Sub"][0] == "${Prefix}widget_parts"
    assert properties["KeySchema"] == [{"AttributeName": "widget_id", "KeyType": "HASH"},
                                       {"AttributeName": "part", "KeyType": "RANGE"}]
    assert properties["AttributeDefinitions"] == [
        {"AttributeName": n, "AttributeType": t} for n, t in
        (("made_at", "N"), ("owner", "S"), ("part", "S"), ("widget_id", "S"))]
    assert properties["GlobalSecondaryIndexes"] == [{
        "IndexName": "by_owner",
        "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "made_at", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["colour", "title"]}}]
    assert properties["LocalSecondaryIndexes"][0]["IndexName"] == "by_made_at"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "gone_at", "Enabled": True}
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_generator_refuses_a_provisioned_table_or_a_foreign_name(generate):
    class Provisioned(Model):
        class Meta:
            table_name = "sla-dev-provisioned"

        key = UnicodeAttribute(hash_key=True)

    class Foreign(Model):
        class Meta:
            billing_mode = "PAY_PER_REQUEST"
            table_name = "someone-elses-table"

        key = UnicodeAttribute(hash_key=True)

    with pytest.raises(SystemExit, match="PAY_PER_REQUEST"):
        generate.table_resource(Provisioned)
    with pytest.raises(SystemExit, match="SLA_TABLE_PREFIX"):
        generate.table_resource(Foreign)


def test_a_packaged_template_is_pinned_to_its_stage(generate, template, tmp_path):
    packaged = tmp_path / "sam.yaml"
    packaged.write_text(yaml.safe_dump(template), "utf-8")
    generate.pin_stage(packaged, "prod")
    pinned = yaml.safe_load(packaged.read_text("utf-8"))
    assert pinned["Parameters"]["Stage"]["Default"] == "prod"
    [rule] = pinned["Rules"]["PackagedStage"]["Assertions"]
    assert rule["Assert"] == {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}
    with pytest.raises(SystemExit):
        generate.pin_stage(packaged, "staging")


def test_the_kinesis_consumer_reads_the_stream_parameter_and_only_when_it_names_one(generate, template, tmp_path):
    from app import CONTACT_RECORD_STREAM

    packaged = copy.deepcopy(template)  # with the function as `chalice package` writes it
    packaged["Resources"]["ConnectContactRecords"] = {"Type": "AWS::Serverless::Function", "Properties": {
        "Handler": "app.connect_contact_records", "Events": {"ConnectContactRecordsKinesisEventSource": {
            "Type": "Kinesis", "Properties": {
                "Stream": {"Fn::Sub": "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/"
                                      + CONTACT_RECORD_STREAM},
                "BatchSize": 100, "StartingPosition": "LATEST", "MaximumBatchingWindowInSeconds": 0}}}}}
    path = tmp_path / "sam.yaml"
    path.write_text(yaml.safe_dump(packaged), "utf-8")
    generate.contact_stream(path)
    result = yaml.safe_load(path.read_text("utf-8"))
    assert "Events" not in result["Resources"]["ConnectContactRecords"]["Properties"]
    mapping = result["Resources"]["ConnectContactRecordsKinesisEventSource"]
    assert mapping["Type"] == "AWS::Lambda::EventSourceMapping"
    assert (mapping["Condition"], mapping["DependsOn"]) == ("HasContactRecordStream", "ContactRecordStreamPolicy")
    assert mapping["Properties"] == {
        "EventSourceArn": {"Fn::Sub": "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/"
                                      "${ConnectContactRecordStream}"},
        "FunctionName": {"Ref": "ConnectContactRecords"}, "BatchSize": 100, "StartingPosition": "LATEST",
        "MaximumBatchingWindowInSeconds": 0, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 10, "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["ConnectContactRecordsFailedQueue",
                                                                           "Arn"]}}}}
    assert result["Parameters"]["ConnectContactRecordStream"]["Default"] == ""
    assert result["Conditions"]["HasContactRecordStream"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ConnectContactRecordStream"}, ""]}]}


# --- the tables, deployed by CloudFormation, run the app ----------------------------------------------


def tables_stack(template, stage_prefixes):
    """The template's tables and everything they refer to, as a stack of its own; extra stages may map
    to other prefixes (the test process's models use SLA_TABLE_PREFIX=test-sla-)."""
    resources = table_resources(template)
    refs = [{"Ref": name} for name in resources]
    stack = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": copy.deepcopy(template["Parameters"]),
        "Mappings": copy.deepcopy(template["Mappings"]),
        "Conditions": copy.deepcopy(template["Conditions"]),
        "Resources": copy.deepcopy(resources),
        "Outputs": {name: o for name, o in template["Outputs"].items() if o["Value"] in refs},
    }
    for stage, prefix in stage_prefixes.items():
        stack["Mappings"]["StageSettings"][stage] = {"TablePrefix": prefix}
        stack["Parameters"]["Stage"]["AllowedValues"].append(stage)
    return stack


def deploy(template, stage, **prefixes):
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    body = json.dumps(tables_stack(template, prefixes))
    cloudformation.create_stack(StackName=f"sla-clock-{stage}", TemplateBody=body,
                                Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}])
    [stack] = cloudformation.describe_stacks(StackName=f"sla-clock-{stage}")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _normalized_schema(model):
    """PynamoDB's own view of the table (what create_all would create), order-free."""
    schema = model._get_schema()

    def keys(entries):
        return sorted((e["AttributeName"], e["KeyType"]) for e in entries)

    return {
        "attributes": sorted((d["AttributeName"], d["AttributeType"]) for d in schema["attribute_definitions"]),
        "keys": keys(schema["key_schema"]),
        "gsis": sorted((i["index_name"], tuple(keys(i["key_schema"])), i["projection"]["ProjectionType"],
                        tuple(sorted(i["projection"].get("NonKeyAttributes", []))))
                       for i in schema["global_secondary_indexes"]),
    }


def _described(description):
    return {
        "attributes": sorted((d["AttributeName"], d["AttributeType"]) for d in description["AttributeDefinitions"]),
        "keys": sorted((e["AttributeName"], e["KeyType"]) for e in description["KeySchema"]),
        "gsis": sorted((i["IndexName"], tuple(sorted((e["AttributeName"], e["KeyType"]) for e in i["KeySchema"])),
                        i["Projection"]["ProjectionType"], tuple(sorted(i["Projection"].get("NonKeyAttributes", []))))
                       for i in description.get("GlobalSecondaryIndexes", [])),
    }


class Lines(logging.Handler):
    """The JSON lines a logger writes, formatted exactly as CloudWatch Logs receives them."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def reads(alarm, document):
    """Does `alarm` read a metric this EMF document publishes: same namespace and metric name, and its
    dimension names exactly one of the document's dimension sets?"""
    names = {dimension["Name"] for dimension in alarm.get("Dimensions", [])}
    return any(directive["Namespace"] == alarm["Namespace"]
               and alarm["MetricName"] in [metric["Name"] for metric in directive["Metrics"]]
               and any(set(dimensions) == names for dimensions in directive["Dimensions"])
               for directive in document["_aws"]["CloudWatchMetrics"])


def filter_matches(pattern, line):
    """CloudWatch Logs JSON filter patterns of the form { ($.a = "x") && ($.b = "y") }."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    terms = [t.strip() for t in body[1:-1].split("&&")]
    event = json.loads(line)
    for term in terms:
        match = re.fullmatch(r'\(\s*\$\.(\w+)\s*=\s*"([^"]*)"\s*\)', term)
        assert match, f"unsupported term {term!r}"
        if event.get(match[1]) != match[2]:
            return False
    return True


def test_the_template_tables_deployed_by_cloudformation_run_the_app(template):
    with mock_aws():
        outputs = deploy(template, "test", test=settings.current().table_prefix)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for model in tables.MODELS:  # names, keys, attributes, GSIs and projections as PynamoDB expects
            name = model.Meta.table_name
            logical = [key for key, value in outputs.items() if value == name]
            assert logical, f"no stack output names {name}"
            description = dynamodb.describe_table(TableName=name)["Table"]
            assert _described(description) == _normalized_schema(model), name
            assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            assert description["DeletionProtectionEnabled"] is False
        assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(m.Meta.table_name for m in tables.MODELS)

        from app import app

        lines = Lines()
        logging.getLogger("sla_clock.notify").addHandler(lines)
        try:
            with Client(app) as chalice_client:
                admin = JsonClient(chalice_client.http, ADMIN_TOKEN)
                assert admin.put("/contracts/acme", DEMO_CONTRACT)[0] == 201
                status, created = admin.post("/requests", REQUEST, headers={"Idempotency-Key": "cfn-1"})
                assert status == 201, created
                request_id = created["request_id"]
                status, document = admin.get(f"/requests/{request_id}")
                assert status == 200 and document["priority"] == "high" and document["status"] == "open"
                assert document["sla"]["first_response"]["due_at"]
                status, listing = admin.get("/requests?contract_id=acme")  # the by_contract index
                assert status == 200 and [item["request_id"] for item in listing["items"]] == [request_id]
                assert admin.post("/requests", REQUEST, headers={"Idempotency-Key": "cfn-1"})[1] == created
                assert admin.post(f"/requests/{request_id}/events", {"type": "respond", "note": "收到"})[0] == 200
                response = chalice_client.lambda_.invoke(
                    "scan_deadlines", chalice_client.events.generate_cw_event(
                        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[],
                        region="us-east-1"))
                assert "due" in response.payload  # the due_for_check and pending indexes answered

            # SES has no verified identity here: the acknowledgement is blocked, retried for a day, then failed,
            # which the metric behind NotificationsFailedAlarm counts.
            [entry] = [e for e in outbox.of_request(request_id) if e.key == "acknowledgement"]
            written = []
            metrics.use_writer(written.append)
            try:
                late = datetime.now(UTC) + delivery.GIVE_UP_AFTER
                outbox.deliver_quietly([(entry, delivery.email(now=late, **outbox.stored_email(entry)))], late)
            finally:
                metrics.use_writer(None)
            assert NotificationModel.get(request_id, "acknowledgement").status == "failed"
        finally:
            logging.getLogger("sla_clock.notify").removeHandler(lines)

    alarm = template["Resources"]["NotificationsFailedAlarm"]["Properties"]
    assert [document[alarm["MetricName"]] for document in written if reads(alarm, document)] == [[1.0]]
    blocked_pattern = template["Resources"]["APIHandlerNotificationBlockedFilter"]["Properties"]["FilterPattern"]
    blocked = [line for line in lines.lines if json.loads(line)["message"] == "notification blocked"]
    assert blocked and all(filter_matches(blocked_pattern, line) for line in blocked)
    assert not any(filter_matches(blocked_pattern, line) for line in lines.lines if line not in blocked)


def text_filter_matches(pattern, line):
    """CloudWatch Logs text filter patterns: every (quoted) term occurs in the line."""
    return all(term in line for term in re.findall(r'"([^"]+)"', pattern))


def test_a_route_that_raises_is_counted_by_the_unhandled_exception_filter(template, client, monkeypatch,
                                                                        crash_expected):
    from app import app
    from chalicelib import contracts

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(contracts, "get_contract", broken)
    lines = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(f"{record.name} - {record.levelname} - {record.getMessage()}")  # Chalice's format

    capture = Capture()
    app.log.addHandler(capture)
    try:
        status, body = client.as_token(ADMIN_TOKEN).get("/contracts/acme")
    finally:
        app.log.removeHandler(capture)
    assert status == 500
    pattern = template["Resources"]["APIHandlerUnhandledExceptionsFilter"]["Properties"]["FilterPattern"]
    assert [line for line in lines if text_filter_matches(pattern, line)], lines
    alarm = template["Resources"]["APIUnhandledExceptionsAlarm"]["Properties"]
    assert alarm["MetricName"] == "UnhandledExceptions"


def test_in_prod_the_tables_have_deletion_protection(template):
    with mock_aws():
        outputs = deploy(template, "prod")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        prefix = CONFIG["stages"]["prod"]["environment_variables"]["SLA_TABLE_PREFIX"]
        assert outputs["ContractsTableName"] == f"{prefix}contracts"
        for name in dynamodb.list_tables()["TableNames"]:
            assert name.startswith(prefix)
            assert dynamodb.describe_table(TableName=name)["Table"]["DeletionProtectionEnabled"] is True


# --- dashboard and alarms ----------------------------------------------------------------------------


BUSINESS_ALARMS = {  # alarm: (metric, statistic, threshold, comparison, missing data)
    "ScanLagAlarm": ("ScanLagSeconds", "Maximum", 300, "GreaterThanThreshold", "breaching"),
    "ScanErrorsAlarm": ("ScanErrors", "Sum", 1, "GreaterThanOrEqualToThreshold", "notBreaching"),
    "NotificationsFailedAlarm": ("NotificationsFailed", "Sum", 1, "GreaterThanOrEqualToThreshold", "notBreaching"),
    "NotificationsBouncedAlarm": ("NotificationsBounced", "Sum", 1, "GreaterThanOrEqualToThreshold",
                                  "notBreaching"),
    "WebhooksFailedAlarm": ("WebhooksFailed", "Sum", 1, "GreaterThanOrEqualToThreshold", "notBreaching"),
}


def test_the_business_alarms_watch_the_stage_s_metrics_and_go_to_the_alarm_topic(template):
    resources = template["Resources"]
    for name, (metric, statistic, threshold, comparison, missing) in BUSINESS_ALARMS.items():
        alarm = resources[name]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("SLAClock", metric, statistic), name
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
            threshold, comparison, missing), name
        assert alarm["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}], name
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
    api = resources["API5xxAlarm"]["Properties"]
    assert (api["Namespace"], api["MetricName"], api["Threshold"]) == ("AWS/ApiGateway", "5XXError", 1)
    # API Gateway names a REST API's metrics after the API: the template names it per stage.
    assert api["Dimensions"] == [{"Name": "ApiName", "Value": resources["RestAPI"]["Properties"]["Name"]},
                                 {"Name": "Stage", "Value": CONFIG["stages"]["prod"]["api_gateway_stage"]}]
    assert resources["RestAPI"]["Properties"]["Name"] == {"Fn::Sub": "sla-clock-${Stage}"}
    assert "NotificationFailedFilter" not in json.dumps(resources)  # counted once, by the functions themselves


def test_ses_events_reach_the_function_through_the_configuration_set_s_topic(template, generate):
    resources = template["Resources"]
    destination = resources["NotificationsSnsEventDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "NotificationsConfigurationSet"}
    assert sorted(destination["EventDestination"]["MatchingEventTypes"]) == ["bounce", "complaint", "delivery"]
    assert destination["EventDestination"]["SnsDestination"] == {"TopicARN": {"Ref": "SesEventsTopic"}}
    topic = resources["SesEventsTopic"]["Properties"]
    assert topic["TopicName"] == {"Fn::FindInMap": ["StageSettings", {"Ref": "Stage"}, "SesEventsTopic"]}
    assert resources["NotificationsConfigurationSet"]["Properties"]["Name"] == {
        "Fn::FindInMap": ["StageSettings", {"Ref": "Stage"}, "SesConfigurationSet"]}
    [statement] = resources["SesEventsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"} and statement["Action"] == "sns:Publish"
    # Chalice subscribes the function to the topic by name: the topic exists first.
    assert generate.sns_subscribers() == [("SesEvents", "SesEventsRole")]
    assert resources["SesEvents"] == {"DependsOn": "SesEventsTopic"}


def dashboard_stack(template):
    """The dashboard and the topics as a stack of their own, the functions' log groups named as
    literals (moto's CloudFormation creates neither Chalice's functions, nor CloudWatch alarms, nor
    topic policies)."""
    keep = {name: r for name, r in template["Resources"].items()
            if r.get("Type") in ("AWS::CloudWatch::Dashboard", "AWS::SNS::Topic")}
    body = json.dumps({"AWSTemplateFormatVersion": "2010-09-09", **{key: template[key] for key in (
        "Parameters", "Mappings", "Conditions")}, "Resources": keep})
    return re.sub(r'\{"Ref": "(\w+LogGroup)"\}', r'"/aws/lambda/\1"', body)


def test_the_dashboard_deployed_by_cloudformation_shows_every_widget_of_the_stage(template, generate):
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudformation.create_stack(StackName="sla-clock-prod", TemplateBody=dashboard_stack(template),
                                    Parameters=[{"ParameterKey": "Stage", "ParameterValue": "prod"}])
        [stack] = cloudformation.describe_stacks(StackName="sla-clock-prod")["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        body = json.loads(cloudwatch.get_dashboard(DashboardName="sla-clock-prod")["DashboardBody"])
        topics = boto3.client("sns", region_name="us-east-1").list_topics()["Topics"]
    assert any(t["TopicArn"].endswith(":" + CONFIG["stages"]["prod"]["environment_variables"]["SLA_SES_EVENTS_TOPIC"])
               for t in topics)
    widgets = {w["properties"]["title"]: w for w in body["widgets"]}
    assert {"Breaches by metric and priority", "Warnings and notifications", "Scan lag and duration",
            "Tally duration (ms)", "API 4xx and 5xx", "Latest failed notifications"} <= set(widgets)
    assert all(w["properties"]["region"] == "us-east-1" for w in body["widgets"])
    text = json.dumps(body)
    assert "${" not in text and '"Stage", "prod"' in text and '"ApiName", "sla-clock-prod"' in text
    [[search]] = widgets["Breaches by metric and priority"]["properties"]["metrics"]
    search = search["expression"]
    assert search.startswith("SEARCH('{SLAClock,Metric,Priority,Stage}") and 'Stage="prod"' in search
    query = widgets["Latest failed notifications"]["properties"]["query"]
    assert all(f"SOURCE '/aws/lambda/{log_group}'" in query for _, log_group in generate.functions())
    assert 'message = "notification failed"' in query and "sort @timestamp desc" in query


# --- stages ---------------------------------------------------------------------------------------------


def test_every_stage_uses_its_own_policy_prefix_and_log_retention(generate):
    assert CONFIG["autogen_policy"] is False
    assert set(CONFIG["stages"]) == {"dev", "prod"}
    names = {name for name, _, _ in generate._lambda_functions()}
    for stage, values in CONFIG["stages"].items():
        env = {**CONFIG.get("environment_variables", {}), **values["environment_variables"]}
        assert "iam_policy_file" not in values  # no policy shared by the functions
        for function in names:  # one policy a function: .chalice/policy-<stage>-<function>.json
            policy_file = values["lambda_functions"][function]["iam_policy_file"]
            assert policy_file == f"policy-{stage}-{function}.json"
            assert (ROOT / ".chalice" / policy_file).is_file()
        assert env["SLA_TABLE_PREFIX"] == f"sla-{stage}-"
        assert env["SLA_LOG_LEVEL"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert values["log_retention_in_days"] > 0


# --- the packaged template: what the event sources give up on, roles, the API stage ------------------


@pytest.fixture(scope="module")
def packaged(generate, tmp_path_factory):
    """{stage: the template `make package STAGE=<stage>` writes to build/sam.yaml}, made the same way
    in-process (chalice package, then pin-stage and contact-stream) with an empty zip for the code."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy.packager import LambdaDeploymentPackager

    found = {}
    code = tmp_path_factory.mktemp("code") / "deployment.zip"
    code.write_bytes(b"")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setattr(LambdaDeploymentPackager, "create_deployment_package", lambda *args: str(code))
        for stage in CONFIG["stages"]:
            out = tmp_path_factory.mktemp(f"package-{stage}")
            factory = CLIFactory(str(ROOT), environ={"AWS_DEFAULT_REGION": "us-east-1"})
            config = factory.create_config_obj(chalice_stage_name=stage)
            packager = factory.create_app_packager(config, factory.create_package_options(), "cloudformation",
                                                   "yaml", str(TEMPLATE))
            packager.package_app(config, str(out), stage)
            generate.pin_stage(out / "sam.yaml", stage)
            generate.contact_stream(out / "sam.yaml")
            found[stage] = yaml.safe_load((out / "sam.yaml").read_text("utf-8"))
    return found


def _statements(role_resource, *extra_policies):
    inline = [s for policy in role_resource["Properties"].get("Policies", [])
              for s in policy["PolicyDocument"]["Statement"]]
    return inline + [s for policy in extra_policies for s in policy["Properties"]["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("stage", list(CONFIG["stages"]))
def test_what_the_event_sources_give_up_on_goes_to_encrypted_alarmed_queues(packaged, stage):
    resources = packaged[stage]["Resources"]
    mapping = resources["ConnectContactRecordsKinesisEventSource"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10 and 0 < mapping["MaximumRecordAgeInSeconds"] <= 3600
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["ConnectContactRecordsFailedQueue", "Arn"]}
    invoke = resources["SesEventsEventInvokeConfig"]
    assert invoke["Type"] == "AWS::Lambda::EventInvokeConfig"
    assert invoke["Properties"]["FunctionName"] == {"Ref": "SesEvents"}
    assert invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["SesEventsFailedQueue", "Arn"]}
    assert invoke["Properties"]["MaximumRetryAttempts"] == 2
    for queue, condition in (("SesEventsFailedQueue", None), ("ConnectContactRecordsFailedQueue",
                                                                 "HasContactRecordStream")):
        resource = resources[queue]
        assert (resource["Type"], resource.get("Condition")) == ("AWS::SQS::Queue", condition)
        assert resource["Properties"]["SqsManagedSseEnabled"] is True
        assert resource["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
        alarm = resources[f"{queue}Alarm"]["Properties"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert packaged[stage]["Outputs"][f"{queue}Url"]["Value"] == {"Ref": queue}
    # each function's role may send to its own queue, and only that one
    def attached(role):
        return [r for r in resources.values() if r.get("Type") == "AWS::IAM::Policy"
                and {"Ref": role} in r["Properties"]["Roles"]]

    sends = {role: [s["Resource"] for s in _statements(resources[role], *attached(role))
                    if "sqs:SendMessage" in s["Action"]]
             for role in resources if resources[role].get("Type") == "AWS::IAM::Role"}
    assert sends.pop("SesEventsRole") == [{"Fn::GetAtt": ["SesEventsFailedQueue", "Arn"]}]
    assert sends.pop("ConnectContactRecordsRole") == [{"Fn::GetAtt": ["ConnectContactRecordsFailedQueue", "Arn"]}]
    assert not any(sends.values())


@pytest.mark.parametrize("stage", list(CONFIG["stages"]))
def test_every_function_has_a_role_of_its_own_with_its_own_policy(packaged, stage, generate):
    resources = packaged[stage]["Resources"]
    functions = {name: r for name, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"}
    assert set(functions) == {"APIHandler", "ScanDeadlines", "NightlyTally", "NightlyTallyContinue", "SesEvents",
                              "ConnectContactRecords"}
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(roles)  # no role shared
    chalice_names = {logical_id: name for name, logical_id, _ in generate._lambda_functions()}
    for function, resource in functions.items():
        assert resource["Properties"]["Tracing"] == "Active"
        role = resources[resource["Properties"]["Role"]["Fn::GetAtt"][0]]
        [policy] = role["Properties"]["Policies"]
        expected = json.loads((ROOT / ".chalice" / f"policy-{stage}-{chalice_names[function]}.json").read_text())
        assert policy["PolicyDocument"] == expected, function
        actions = {a for s in expected["Statement"] for a in s["Action"]}
        assert {"xray:PutTraceSegments", "logs:PutLogEvents"} <= actions
    connect = {a for s in _statements(resources["ConnectContactRecordsRole"]) for a in s["Action"]}
    assert not connect & {"ses:SendRawEmail", "ses:SendEmail", "ssm:PutParameter", "ssm:GetParameter",
                          "dynamodb:UpdateItem", "dynamodb:Scan"}  # its puts and deletes are transaction items


@pytest.mark.parametrize("stage", list(CONFIG["stages"]))
def test_the_api_stage_has_access_logs_tracing_and_default_throttling(packaged, stage):
    template = packaged[stage]
    api = template["Resources"]["RestAPI"]["Properties"]
    assert api["TracingEnabled"] is True
    [method] = api["MethodSettings"]
    assert (method["ResourcePath"], method["HttpMethod"]) == ("/*", "*")
    assert 0 < method["ThrottlingRateLimit"] <= method["ThrottlingBurstLimit"] <= 1000
    assert "DataTraceEnabled" not in method  # execution logs would hold request bodies
    access = api["AccessLogSetting"]
    assert access["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    line = json.loads(access["Format"].replace("$context.error.messageString", json.dumps('say "no"')))
    assert line["error"] == 'say "no"'  # API Gateway quotes and escapes it
    assert {"requestId", "status", "resource", "latencyMs"} <= set(line)
    assert not any("querystring" in value.lower() or "header" in value.lower() for value in line.values())
    group = template["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Fn::FindInMap": ["StageSettings", {"Ref": "Stage"}, "LogRetentionInDays"]}
    assert template["Mappings"]["StageSettings"][stage]["LogRetentionInDays"] == \
        CONFIG["stages"][stage]["log_retention_in_days"]
