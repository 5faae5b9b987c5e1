"""Operability, read from template.yaml: every alarm reaches someone (AlarmEmail, AlarmTopicArn), every
CDNPurge metric an alarm or the dashboard names is one the code emits under the dimensions it uses, and
nothing EventBridge or SNS fails to deliver is dropped (dead-letter queue, retry policy, redrive, alarms).

The metric names the code emits are read from its source (every `add_metric(name=...)`, every provider
error's `metric_name`, every `..._METRIC` name constant, and the per-provider counters keyed by name in a
module that calls `add_metric`), so renaming a metric in the code without the template fails here instead of
leaving a flat graph and an alarm that can never fire.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from cdnpurge_local.provision import load_template
from cdnpurge_local.servers import REPO_ROOT
from cdnpurge_local.stack import TEMPLATE_PATH

NAMESPACE = "CDNPurge"
CODE_ROOTS = (REPO_ROOT / "layers" / "core" / "cdnpurge", REPO_ROOT / "functions")
METRIC_NAME = re.compile(r"^[A-Z][A-Za-z0-9]+$")
# SEARCH('{CDNPurge,provider,service} MetricName="Requests"', 'Sum', 60)
SEARCH = re.compile(r"SEARCH\('\{(?P<namespace>[^,}]+),(?P<dimensions>[^}]*)\}\s+MetricName=\"(?P<name>\w+)\"")
# SELECT SUM(Throttles) FROM SCHEMA("CDNPurge", provider, service) ...
INSIGHTS = re.compile(
    r'SELECT\s+\w+\((?P<name>\w+)\)\s+FROM\s+SCHEMA\("(?P<namespace>[^"]+)",\s*(?P<dimensions>[^)]*)\)'
)
ALARM_ACTIONS = [
    {"Fn::If": ["HasAlarmEmail", {"Ref": "AlarmEmailTopic"}, {"Ref": "AWS::NoValue"}]},
    {"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AWS::NoValue"}]},
]


@cache
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def resources() -> dict[str, Any]:
    return template()["Resources"]  # type: ignore[no-any-return]


def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources().items() if v["Type"] == resource_type}


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def emitted_metric_names(roots: tuple[Path, ...] = CODE_ROOTS) -> set[str]:
    """Metric names the code can emit, read from its syntax tree (see the module docstring)."""
    names: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            emits = False
            keys: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    if node.func.attr == "add_metric":
                        emits = True
                        names.update(s for kw in node.keywords if kw.arg == "name" and (s := _string(kw.value)))
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    # `metric_name = "..."` (provider errors) and `..._METRIC = "..."` constants passed to add_metric
                    if any(
                        isinstance(t, ast.Name) and (t.id == "metric_name" or t.id.endswith("_METRIC")) for t in targets
                    ):
                        names.update(s for s in [_string(node.value)] if s)
                if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                    key = _string(node.slice)
                    if key and METRIC_NAME.fullmatch(key):
                        keys.add(key)
            if emits:  # counters keyed by metric name, in a module that sends them as metrics
                names |= keys
    return names


@cache
def emitted() -> frozenset[str]:
    return frozenset(emitted_metric_names())


def dashboard() -> dict[str, Any]:
    body = resources()["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    # Resolve ${...} to a placeholder: only the JSON structure and the metric names matter here.
    return json.loads(re.sub(r"\$\{[^}]+\}", "resolved", body))  # type: ignore[no-any-return]


def dashboard_metrics() -> Iterator[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension names) for every metric the dashboard graphs."""
    for widget in dashboard()["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):
                match = SEARCH.search(line[0]["expression"])
                assert match, f"unparsed expression {line[0]['expression']!r}"
                dimensions = frozenset(d.strip() for d in match["dimensions"].split(","))
                yield match["namespace"], match["name"], dimensions
            else:
                fields = [f for f in line if not isinstance(f, dict)]
                assert "." not in fields, "spell metrics out: the '.' shorthand hides what is graphed"
                namespace, name, *pairs = fields
                yield namespace, name, frozenset(pairs[0::2])


def alarm_metrics() -> Iterator[tuple[str, str, str, frozenset[str]]]:
    """(alarm, namespace, metric, dimension names) for every metric an alarm watches."""
    for logical_id, alarm in of_type("AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        if "MetricName" in properties:
            dimensions = frozenset(d["Name"] for d in properties.get("Dimensions", []))
            yield logical_id, properties["Namespace"], properties["MetricName"], dimensions
        for query in properties.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                dimensions = frozenset(d["Name"] for d in metric.get("Dimensions", []))
                yield logical_id, metric["Namespace"], metric["MetricName"], dimensions
            elif (match := INSIGHTS.search(query.get("Expression", ""))) is not None:
                dimensions = frozenset(d.strip() for d in match["dimensions"].split(","))
                yield logical_id, match["namespace"], match["name"], dimensions


def test_the_metric_scan_finds_what_the_code_emits_and_nothing_else() -> None:
    # A scan that found nothing (or everything) would make the next tests vacuous.
    names = emitted()
    assert {"BatchAborted", "ProviderFailed", "LedgerUnavailable", "DeadLetterSendFailed"} <= names
    assert {"Requests", "Throttles", "RequestsFailed", "DuplicatesSkipped", "ChangeToPurgeSeconds"} <= names
    assert {"ProviderThrottled", "ProviderAuthFailed"} <= names
    assert {"TimeToFresh", "StaleAfterPurge", "Repurged", "Unverifiable", "VerificationFailed"} <= names
    assert {"WebhookAccepted", "WebhookRejected", "WebhookUnavailable"} <= names
    assert "Content-Type" not in names and "Requestz" not in names


def test_the_function_publishes_where_the_template_looks() -> None:
    variables = resources()["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
    assert variables["POWERTOOLS_SERVICE_NAME"] == "cdnpurge"


def test_every_cdnpurge_metric_the_dashboard_graphs_is_emitted() -> None:
    graphed = [(name, dimensions) for namespace, name, dimensions in dashboard_metrics() if namespace == NAMESPACE]
    assert graphed
    for name, dimensions in graphed:
        assert name in emitted(), f"the dashboard graphs {name}, which the code never emits"
        # Batch totals carry {service}; per-provider counts {provider, service} (Powertools adds service); the
        # webhook intake's per source {service, source}, a rejection's with its reason too.
        allowed = [{"service"}, {"provider", "service"}, {"service", "source"}, {"reason", "service", "source"}]
        assert dimensions in allowed, f"{name}: dimensions {sorted(dimensions)}"


def test_the_dashboard_covers_what_operators_need() -> None:
    graphed = {(namespace, name) for namespace, name, _ in dashboard_metrics()}
    per_provider = {name for namespace, name, dims in dashboard_metrics() if "provider" in dims}
    assert {"Requests", "Throttles", "RequestsFailed", "DuplicatesSkipped", "ChangeToPurgeSeconds"} <= per_provider
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "ConcurrentExecutions"),
    } <= graphed
    body = resources()["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for percentile in ("'p50'", "'p99'"):
        assert f'MetricName=\\"ChangeToPurgeSeconds\\"\', {percentile}' in body
        assert f'MetricName=\\"TimeToFresh\\"\', {percentile}' in body
    assert {"TimeToFresh", "StaleAfterPurge", "Repurged", "Unverifiable", "VerificationFailed"} <= per_provider
    # The alarm widget lists every alarm, so the dashboard's first row is the stack's state. An alarm that
    # exists only under a condition (the scheduled canary's) cannot be named in the dashboard's one string.
    always = {k: v for k, v in of_type("AWS::CloudWatch::Alarm").items() if "Condition" not in v}
    (alarm_widget,) = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(always)
    for logical_id in always:
        assert f"${{{logical_id}.Arn}}" in body, f"{logical_id} is missing from the dashboard"


def test_every_cdnpurge_metric_an_alarm_watches_is_emitted() -> None:
    watched = [(alarm, name, dims) for alarm, namespace, name, dims in alarm_metrics() if namespace == NAMESPACE]
    assert {name for _, name, _ in watched} >= {
        "BatchAborted",
        "LedgerUnavailable",
        "DeadLetterSendFailed",
        "ProviderFailed",
        "Throttles",
        "VerificationFailed",
    }
    for alarm, name, dimensions in watched:
        assert name in emitted(), f"{alarm} watches {name}, which the code never emits"
        # The webhook intake's refusals per source carry {reason, service, source}, as the handler emits them.
        allowed = ({"service"}, {"provider", "service"}, {"reason", "service", "source"})
        assert dimensions in allowed, f"{alarm}: dimensions {sorted(dimensions)}"


def test_every_alarm_notifies_the_alarm_email_and_the_alarm_topic() -> None:
    alarms = of_type("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 10
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == ALARM_ACTIONS, logical_id
    topic, subscription = resources()["AlarmEmailTopic"], resources()["AlarmEmailSubscription"]
    assert topic["Condition"] == subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmEmailTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def test_the_alarm_email_parameter_accepts_empty_or_an_address_only() -> None:
    pattern = re.compile(template()["Parameters"]["AlarmEmail"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("ops@example.com")
    assert not pattern.fullmatch("ops") and not pattern.fullmatch("ops@example.com, x@y.z")


def test_the_queue_age_alarm_fires_well_before_messages_reach_the_dead_letter_queue() -> None:
    alarm = resources()["PurgeQueueAgeAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert alarm["Threshold"] == {"Ref": "OldestMessageAlarmSeconds"}
    # A record that fails every receive reaches the DLQ after maxReceiveCount visibility timeouts.
    queue = resources()["PurgeQueue"]["Properties"]
    to_dead_letter = queue["VisibilityTimeout"] * queue["RedrivePolicy"]["maxReceiveCount"]
    assert template()["Parameters"]["OldestMessageAlarmSeconds"]["Default"] * 2 <= to_dead_letter


def test_throttling_is_alarmed_per_provider_without_naming_providers() -> None:
    alarm = resources()["ProviderThrottlingAlarm"]["Properties"]
    (query,) = alarm["Metrics"]
    assert "GROUP BY provider" in query["Expression"]  # one contributor per provider
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] >= 3  # sustained, not one burst


@pytest.mark.parametrize("rule", ["ObjectChangedRule", "ContentPublishedRule"])
def test_event_rule_targets_retry_then_dead_letter_with_permission_to_do_so(rule: str) -> None:
    for target in resources()[rule]["Properties"]["Targets"]:
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    statements = resources()["DeliveryDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (events,) = [s for s in statements if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert {"Fn::GetAtt": [rule, "Arn"]} in events["Condition"]["ArnEquals"]["aws:SourceArn"]


def test_the_sns_subscription_redrives_to_a_queue_sns_may_send_to() -> None:
    subscription = resources()["ContentPublishedSubscription"]["Properties"]
    assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}}
    statements = resources()["DeliveryDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (sns,) = [s for s in statements if s["Principal"] == {"Service": "sns.amazonaws.com"}]
    assert sns["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "ContentPublishedTopic"}


def test_undeliverable_events_are_alarmed() -> None:
    depth = resources()["DeliveryDeadLetterQueueAlarm"]["Properties"]
    queue_name = {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "QueueName"]}
    assert depth["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    lost = {(namespace, name) for alarm, namespace, name, _ in alarm_metrics() if alarm == "EventDeliveryFailedAlarm"}
    assert lost == {
        ("AWS/Events", "FailedInvocations"),
        ("AWS/Events", "InvocationsFailedToBeSentToDlq"),
        ("AWS/SNS", "NumberOfNotificationsFailedToRedriveToDlq"),
    }
    rules = {
        dimension["Value"]["Ref"]
        for alarm in ("EventDeliveryFailedAlarm", "CanaryDeliveryFailedAlarm")
        for query in resources()[alarm]["Properties"]["Metrics"]
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"]["Dimensions"]
        if dimension["Name"] == "RuleName"
    }
    assert rules == set(of_type("AWS::Events::Rule"))
    # The canary's rule and its alarm exist together, or not at all (CanarySchedule empty: off).
    assert resources()["CanaryRule"]["Condition"] == resources()["CanaryDeliveryFailedAlarm"]["Condition"]


def test_topics_are_encrypted_with_a_key_publishers_can_be_granted() -> None:
    for topic in of_type("AWS::SNS::Topic").values():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["TopicKey", "Arn"]}
    key = resources()["TopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = key["KeyPolicy"]["Statement"]
    (cross_account,) = [s for s in statements if isinstance(s, dict) and "Fn::If" in s]
    condition, granted, otherwise = cross_account["Fn::If"]
    assert (condition, otherwise) == ("HasPublisherAccounts", {"Ref": "AWS::NoValue"})
    assert granted["Principal"] == {"AWS": {"Ref": "PublisherAccountIds"}}
    # Publishers may only encrypt through SNS, never use the key directly.
    for statement in [s for s in statements if "Sid" in s] + [granted]:
        if statement["Sid"] == "AccountAdministersTheKey":
            continue
        assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"], statement["Sid"]
        assert statement["Condition"]["StringEquals"], statement["Sid"]
    policy = resources()["ContentPublishedTopicPolicy"]
    assert policy["Condition"] == "HasPublisherAccounts"
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (publish,) = [s for s in statements if s["Sid"] == "PublisherAccountsPublish"]
    assert (publish["Principal"], publish["Action"]) == ({"AWS": {"Ref": "PublisherAccountIds"}}, "sns:Publish")


def test_saved_queries_read_the_functions_log_group() -> None:
    queries = of_type("AWS::Logs::QueryDefinition")
    assert {q["Properties"]["Name"]["Fn::Sub"].split("/", 1)[1] for q in queries.values()} == {
        "what happened to one key",
        "slowest purges",
        "throttles by provider",
    }
    for query in queries.values():
        assert query["Properties"]["LogGroupNames"] == [{"Ref": "PurgeFunctionLogGroup"}]
    # The fields the queries read from the EMF documents are metrics the code emits.
    for field in ("ChangeToPurgeSeconds", "RequestSeconds", "Throttles", "Requests", "Retries"):
        assert field in emitted()


def test_every_alarm_says_when_it_is_over_to_the_same_destinations() -> None:
    for logical_id, alarm in of_type("AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["OKActions"] == ALARM_ACTIONS, logical_id


@pytest.mark.parametrize("alarm", ["DeadLetterQueueAlarm", "DeliveryDeadLetterQueueAlarm"])
def test_dead_letter_alarms_fire_on_new_dead_letters_not_on_old_ones(alarm: str) -> None:
    # Depth stays above zero for the queue's 14-day retention, holding the alarm in ALARM through a second
    # incident; messages sent in the period are each incident's own.
    properties = resources()[alarm]["Properties"]
    assert (properties["MetricName"], properties["Statistic"]) == ("NumberOfMessagesSent", "Sum")
    assert properties["Threshold"] == 0 and properties["ComparisonOperator"] == "GreaterThanThreshold"


def test_a_refused_configuration_reload_is_alarmed_and_graphed() -> None:
    alarm = resources()["ConfigReloadFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, "ConfigReloadFailed")
    assert "ConfigReloadFailed" in emitted()
    assert ("CDNPurge", "ConfigReloadFailed", frozenset({"service"})) in set(dashboard_metrics())


def test_the_queue_age_alarm_states_its_real_delay() -> None:
    alarm = resources()["PurgeQueueAgeAlarm"]["Properties"]
    minutes = alarm["EvaluationPeriods"] * alarm["Period"] // 60
    default = template()["Parameters"]["OldestMessageAlarmSeconds"]["Default"]
    assert f"OldestMessageAlarmSeconds + {minutes} minutes" in alarm["AlarmDescription"]
    assert f"({default // 60 + minutes} minutes by default)" in alarm["AlarmDescription"]


def test_the_trail_and_the_capacity_mode_are_switches() -> None:
    parameters = template()["Parameters"]
    assert parameters["TrailEnabled"]["AllowedValues"] == ["true", "false"]
    assert parameters["TableCapacityMode"]["AllowedValues"] == ["PAY_PER_REQUEST", "PROVISIONED"]
    assert resources()["PurgeTrailTable"]["Condition"] == "HasTrail"
    variables = resources()["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TRAIL_TABLE_NAME"] == {"Fn::If": ["HasTrail", {"Ref": "PurgeTrailTable"}, ""]}
    for table in ("IdempotencyTable", "PurgeTrailTable"):
        properties = resources()[table]["Properties"]
        assert properties["BillingMode"] == {"Ref": "TableCapacityMode"}
        assert properties["ProvisionedThroughput"]["Fn::If"][0] == "IsProvisioned"
        for index in properties.get("GlobalSecondaryIndexes", []):
            assert index["ProvisionedThroughput"]["Fn::If"][0] == "IsProvisioned"


def test_the_scheduled_canary_is_off_by_default_and_each_run_is_a_new_change() -> None:
    parameters = template()["Parameters"]
    assert parameters["CanarySchedule"]["Default"] == ""
    pattern = re.compile(parameters["CanarySchedule"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("rate(15 minutes)") and not pattern.fullmatch("15m")
    (target,) = resources()["CanaryRule"]["Properties"]["Targets"]
    # The scheduled event's own id becomes the published event's id: the ledger never sees a duplicate.
    assert target["InputTransformer"]["InputPathsMap"]["id"] == "$.id"
    assert '"id": <id>' in target["InputTransformer"]["InputTemplate"]["Fn::Sub"]
    statements = resources()["PurgeQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (events,) = [s for s in statements if s["Principal"] == {"Service": "events.amazonaws.com"}]
    assert {"Fn::If": ["HasCanary", {"Fn::GetAtt": ["CanaryRule", "Arn"]}, {"Ref": "AWS::NoValue"}]} in events[
        "Condition"
    ]["ArnEquals"]["aws:SourceArn"]


def test_the_rate_meter_is_a_switch_that_takes_its_permission_with_it() -> None:
    parameter = template()["Parameters"]["RateMeter"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("on", ["on", "off"])
    assert template()["Conditions"]["HasRateMeter"] == {"Fn::Equals": [{"Ref": "RateMeter"}, "on"]}
    variables = resources()["PurgeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["RATE_METER"] == {"Ref": "RateMeter"}
    statements = resources()["PurgeFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (meter,) = [s for s in statements if "Fn::If" in s and s["Fn::If"][1].get("Sid") == "SharedRateMeter"]
    assert meter["Fn::If"][0] == "HasRateMeter" and meter["Fn::If"][2] == {"Ref": "AWS::NoValue"}


def test_the_webhook_function_is_bounded_and_alarmed_like_the_purge_function() -> None:
    # Reserved concurrency from a parameter, 0 meaning unreserved (Lambda would refuse every invocation at 0)
    parameter = template()["Parameters"]["WebhookReservedConcurrency"]
    assert parameter["Default"] > 0 and parameter["MinValue"] == 0
    assert resources()["WebhookFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasWebhookReservedConcurrency", {"Ref": "WebhookReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert template()["Conditions"]["HasWebhookReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookReservedConcurrency"}, 0]}]
    }
    # Its errors and throttles, as the purge function's errors are
    function = {"Ref": "WebhookFunction"}
    watched = {
        (namespace, name)
        for alarm, namespace, name, _ in alarm_metrics()
        if resources()[alarm]["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": function}]
    }
    assert watched == {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")}
    # A spike of refused deliveries, one contributor per source, from the handler's own metric and service
    alarm = resources()["WebhookRejectedAlarm"]["Properties"]
    (query,) = alarm["Metrics"]
    assert "SUM(WebhookRejected)" in query["Expression"] and "GROUP BY source" in query["Expression"]
    assert "service = 'cdnpurge-webhook'" in query["Expression"]
    assert alarm["Threshold"] == {"Ref": "WebhookRejectedAlarmThreshold"}
    # Graphed beside the purge function's
    graphed = {(namespace, name) for namespace, name, _ in dashboard_metrics()}
    assert {("AWS/Lambda", "Throttles"), ("AWS/Lambda", "ConcurrentExecutions")} <= graphed
    body = resources()["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert '"FunctionName", "${WebhookFunction}"' in body
