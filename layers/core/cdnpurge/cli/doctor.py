"""`cdnpurge doctor --stack NAME`: does the deployed stack work, end to end? One line per check, each with a fix.

A stack can deploy cleanly and purge nothing: S3 sends events to EventBridge only in the bucket's own region;
EventBridge delivery can be off on the bucket; the configuration in SSM can be invalid; a secret unreadable;
the alarms can notify an email nobody confirmed; purging can be paused and forgotten. Each check reads the
real thing (the stack through CloudFormation, then the bucket, rule, parameter, secrets, topics, queues,
event source mapping and metrics it names) and says what to run when it fails. Read-only: nothing is written.

Exit status: 0 every check passed (warnings allowed), 1 some check failed, 2 usage or AWS error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Final

from cdnpurge.cli.command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Commands, Context, add_command
from cdnpurge.cli.deployed import (
    ALARM_EMAIL_TOPIC,
    DEAD_LETTER_QUEUE,
    FUNCTION,
    OBJECT_CHANGED_RULE,
    QUEUE,
    WEBHOOK_FUNCTION,
    DeployedStack,
    StackReadError,
    client_in,
    event_source_mapping,
    queue_arn,
    read_pause,
    read_stack,
)
from cdnpurge.cli.notifications import EVENTBRIDGE
from cdnpurge.cli.output import external
from cdnpurge.core.answers import MAX_ANSWER_COUNT, answer_number

NO_COUNT: Final = "SQS answered no message count"
# How far back the functions' errors are counted.
ERRORS_WINDOW_SECONDS: Final = 3600

DOCTOR_EXAMPLES = """\
examples:
  cdnpurge doctor --stack cdnpurge                  after every deploy, and first thing on a bad night
  cdnpurge doctor --stack cdnpurge --format json    for a pipeline step (a list of checks)

Checks: the stack settled; stack and bucket in one region; the bucket's EventBridge delivery; the S3 rule's
source, bucket and state; the configuration in SSM; every provider's secrets readable and its credentials
accepted (each provider's documented harmless call, docs/providers.md; CloudFront: the distribution read and the
function's role granted it in CloudFrontDistributionArns); alarm destinations (email confirmed); alarms firing
now, the webhook intake's included; the purge queue and dead-letter queue; purging paused or not; the purge
and webhook functions' errors in the last hour. Read-only. Needs read access to each (cloudformation:Describe*,
s3:GetBucketLocation/GetBucketNotification, events:DescribeRule, ssm:GetParameter, secretsmanager:
GetSecretValue, sns:ListSubscriptionsByTopic, cloudwatch:DescribeAlarms/GetMetricStatistics, sqs:
GetQueueAttributes, lambda:ListEventSourceMappings, cloudfront:GetDistribution). Exit status: 0 all passed,
1 a check failed, 2 usage.
"""


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One check's verdict, what was found, and what to do about it (empty when nothing)."""

    name: str
    verdict: Verdict
    found: str
    fix: str = ""


def register(commands: Commands) -> None:
    parser = add_command(
        commands,
        "doctor",
        run,
        help="check that a deployed stack works end to end (region, notifications, config, secrets, alarms)",
        description="Read the deployed stack and check, one line each with a fix, everything that must hold "
        "for a change in the bucket to be purged and for someone to hear when it is not.",
        epilog=DOCTOR_EXAMPLES,
    )
    parser.add_argument("--stack", required=True, help="the stack's name (as deployed with sam deploy)")
    parser.add_argument("-f", "--format", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace, context: Context) -> int:
    out = context.out
    try:
        stack = read_stack(client_in(context, "cloudformation"), args.stack)
    except StackReadError as exc:
        print(f"cdnpurge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    checks = list(diagnose(stack, lambda service: client_in(context, service, stack.region), now=context.wall_clock()))
    if args.format == "json":
        json.dump({"stack": stack.name, "region": stack.region, "checks": [asdict(c) for c in checks]}, out, indent=2)
        out.write("\n")
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            # What a check found quotes AWS's answers (an alarm's name, a pause reason, a rule's pattern): one
            # field each, so none can print a row of its own that reads "ok".
            print(f"{check.verdict.value:<4}  {check.name:<{width}}  {external(check.found)}", file=out)
            if check.fix and check.verdict is not Verdict.OK:
                print(f"{'':<4}  {'':<{width}}  fix: {external(check.fix)}", file=out)
        failed = sum(1 for c in checks if c.verdict is Verdict.FAIL)
        warned = sum(1 for c in checks if c.verdict is Verdict.WARN)
        print(f"{stack.name}: {len(checks)} checks, {failed} failed, {warned} warning(s)", file=out)
    return EXIT_FAILED if any(c.verdict is Verdict.FAIL for c in checks) else EXIT_OK


def diagnose(stack: DeployedStack, client: Callable[[str], Any], *, now: float) -> Iterator[Check]:
    """Every check, in the order an operator would follow the data: stack, bucket, rule, config, secrets,
    alarms, queues, pause, function. A check that raises is reported as failed with the error, and the
    rest still run."""
    memo: dict[str, Any] = {}

    def configuration() -> tuple[Check, Any]:
        if "configuration" not in memo:
            memo["configuration"] = _configuration(stack, client("ssm"))
        return memo["configuration"]  # type: ignore[no-any-return]

    def secrets() -> tuple[Check, dict[str, Any] | None]:
        if "secrets" not in memo:
            memo["secrets"] = _secrets(stack, configuration()[1], client("secretsmanager"))
        return memo["secrets"]  # type: ignore[no-any-return]

    steps: tuple[tuple[str, Callable[[], Check]], ...] = (
        ("stack", lambda: _stack(stack)),
        ("region", lambda: _region(stack, client("s3"))),
        ("eventbridge", lambda: _eventbridge(stack, client("s3"))),
        ("s3 rule", lambda: _rule(stack, client("events"))),
        ("configuration", lambda: configuration()[0]),
        ("secrets", lambda: secrets()[0]),
        ("credentials", lambda: _credentials(stack, configuration()[1], secrets()[1])),
        ("alarm destinations", lambda: _destinations(stack, client("sns"))),
        ("alarms", lambda: _alarms(stack, client("cloudwatch"))),
        ("purge queue", lambda: _queue(stack, client("sqs"))),
        ("dead letters", lambda: _dead_letters(stack, client("sqs"))),
        ("paused", lambda: _paused(stack, client("lambda"), client("sqs"), client("ssm"))),
        ("function errors", lambda: function_errors(stack, client("cloudwatch"), now, FUNCTION)),
        ("webhook errors", lambda: function_errors(stack, client("cloudwatch"), now, WEBHOOK_FUNCTION)),
    )
    for name, step in steps:
        try:
            yield step()
        except StackReadError as exc:
            yield Check(name, Verdict.FAIL, str(exc), "deploy the stack from this version's template.yaml")
        except Exception as exc:
            from cdnpurge.runtime.aws_errors import aws_problem

            problem = aws_problem(exc)
            if problem is None:
                raise
            yield Check(name, Verdict.FAIL, f"cannot check: {problem}", "grant the caller the read access listed")


def _stack(stack: DeployedStack) -> Check:
    if stack.settled:
        return Check("stack", Verdict.OK, f"{stack.name} {stack.status} in {stack.region}")
    return Check(
        "stack",
        Verdict.FAIL,
        f"{stack.name} is {stack.status}",
        "wait for the update to finish, or read its events: aws cloudformation describe-stack-events",
    )


def _bucket(stack: DeployedStack) -> str:
    bucket = stack.parameters.get("ContentBucketName")
    if not bucket:
        raise StackReadError(f"stack {stack.name} has no ContentBucketName parameter: is it a cdnpurge stack?")
    return bucket


def _region(stack: DeployedStack, s3: Any) -> Check:
    bucket = _bucket(stack)
    # GetBucketLocation answers null for us-east-1 (AWS documents the empty LocationConstraint).
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if location == "EU":  # the legacy name of eu-west-1
        location = "eu-west-1"
    if location == stack.region:
        return Check("region", Verdict.OK, f"bucket {bucket} and the stack are both in {location}")
    return Check(
        "region",
        Verdict.FAIL,
        f"bucket {bucket} is in {location}, the stack in {stack.region}: S3 sends its events to EventBridge "
        "in the bucket's region only, so nothing is ever purged",
        f"deploy the stack in {location}: sam deploy --region {location} (and delete this one)",
    )


def _eventbridge(stack: DeployedStack, s3: Any) -> Check:
    bucket = _bucket(stack)
    if EVENTBRIDGE in s3.get_bucket_notification_configuration(Bucket=bucket):
        return Check("eventbridge", Verdict.OK, f"bucket {bucket} sends its events to EventBridge")
    return Check(
        "eventbridge",
        Verdict.FAIL,
        f"bucket {bucket} does not send events to EventBridge: no change is seen",
        f"cdnpurge enable-eventbridge --bucket {bucket}",
    )


def _rule(stack: DeployedStack, events: Any) -> Check:
    bucket = _bucket(stack)
    rule = events.describe_rule(Name=stack.physical(OBJECT_CHANGED_RULE))
    pattern = json.loads(rule.get("EventPattern") or "{}")
    problems = []
    if pattern.get("source") != ["aws.s3"]:
        problems.append(f"source is {pattern.get('source')}, not ['aws.s3']")
    named = pattern.get("detail", {}).get("bucket", {}).get("name", [])
    if bucket not in named:
        problems.append(f"matches bucket(s) {named}, not {bucket}")
    if rule.get("State") != "ENABLED":
        problems.append(f"is {rule.get('State')}")
    if problems:
        return Check(
            "s3 rule",
            Verdict.FAIL,
            f"rule {rule['Name']}: " + "; ".join(problems),
            "redeploy the stack (sam deploy): the rule was changed outside CloudFormation",
        )
    return Check("s3 rule", Verdict.OK, f"rule {rule['Name']} sends bucket {bucket}'s object events to the queue")


def _configuration(stack: DeployedStack, ssm: Any) -> tuple[Check, Any]:
    from cdnpurge.core.config import ConfigError, parse_config

    name = stack.parameters.get("ConfigParameterName", "/cdnpurge/core/config")
    try:
        text = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except Exception as exc:
        if "ParameterNotFound" not in type(exc).__name__ and "ParameterNotFound" not in str(exc):
            raise
        fix = f"aws ssm put-parameter --name {name} --type String --value file://purge.yaml"
        return Check("configuration", Verdict.FAIL, f"SSM parameter {name} does not exist", fix), None
    try:
        config = parse_config(text, source=f"ssm:{name}", require_credentials=True)
    except ConfigError as exc:
        fix = "fix it (cdnpurge validate -c purge.yaml), then put the parameter again; the function keeps the last "
        return Check("configuration", Verdict.FAIL, str(exc), fix + "good one"), None
    found = f"ssm:{name}: {len(config.providers)} provider(s), {len(config.rules)} rule(s)"
    return Check("configuration", Verdict.OK, found), config


def _secrets(stack: DeployedStack, config: Any, secretsmanager: Any) -> tuple[Check, dict[str, Any] | None]:
    """Every credential the configuration names, read as the function reads it; the values by provider when
    all were read (never shown)."""
    from cdnpurge.core.credentials import CredentialError, resolve

    if config is None:
        return Check("secrets", Verdict.WARN, "not checked: the configuration does not load"), None
    prefix = stack.parameters.get("SecretsPrefix", "cdnpurge/")
    problems: list[str] = []
    resolved: dict[str, Any] = {}

    def reader(secret: str) -> Any:
        return secretsmanager.get_secret_value(SecretId=secret)["SecretString"]

    for settings in config.providers:
        for name, ref in settings.credentials.items():
            if ref.env is not None:
                problems.append(f"providers.{settings.name}.credentials.{name}: env {ref.env} is not set in the Lambda")
            elif ref.inline:
                problems.append(f"providers.{settings.name}.credentials.{name}: an inline value in the configuration")
            elif ref.secret is not None and not ref.secret.startswith(prefix):
                problems.append(
                    f"providers.{settings.name}.credentials.{name}: secret {ref.secret} is outside SecretsPrefix "
                    f"{prefix}: the function may not read it"
                )
        try:
            owner = f"providers.{settings.name}"
            resolved[settings.name] = resolve(settings.credentials, owner=owner, environ={}, secret_reader=reader)
        except CredentialError as exc:
            problems.append(str(exc))
    if problems:
        fix = f"store each as a Secrets Manager secret named {prefix}... and reference it with `secret:`"
        return Check("secrets", Verdict.FAIL, "; ".join(dict.fromkeys(problems)), fix), None
    read = sum(len(values) for values in resolved.values())
    return Check("secrets", Verdict.OK, f"{read} credential(s) of {len(resolved)} provider(s) readable"), resolved


def _credentials(stack: DeployedStack, config: Any, resolved: dict[str, Any] | None) -> Check:
    """Each provider asked, with a harmless call where its API has one, whether it accepts its credentials; for
    CloudFront (the function's IAM role, no token), also whether the role may invalidate the distribution."""
    from cdnpurge.core.registry import REGISTRY
    from cdnpurge.runtime.credential_check import Acceptance, CredentialCheck, check_credentials
    from cdnpurge.runtime.providers.cloudfront import CloudFrontSettings

    if config is None or resolved is None:
        return Check("credentials", Verdict.WARN, "not checked: the configuration or its secrets do not load")
    results = []
    distributions: dict[str, str] = {}
    for settings in config.providers:
        values = resolved[settings.name]
        provider = REGISTRY[settings.kind](settings, values, None)
        result = check_credentials(provider, [value.get_secret_value() for value in values.values()])
        if isinstance(settings, CloudFrontSettings):
            distributions[settings.name] = settings.distribution_id
            ungranted = role_cannot_invalidate(stack, settings.distribution_id)
            if ungranted is not None:
                detail = ungranted if result.acceptance is Acceptance.ACCEPTED else f"{ungranted}; {result.detail}"
                result = CredentialCheck(result.provider, Acceptance.REFUSED, detail)
        results.append(result)
    found = "; ".join(f"{r.provider} {r.acceptance.value} ({r.detail})" for r in results)
    refused = [r.provider for r in results if r.acceptance is Acceptance.REFUSED]
    if refused:
        fixes = []
        tokens = [name for name in refused if name not in distributions]
        if tokens:
            fixes.append(
                f"put a valid token in the secret of {', '.join(tokens)} (aws secretsmanager put-secret-value)"
            )
        for name in (name for name in refused if name in distributions):
            fixes.append(
                f"list distribution/{distributions[name]} in CloudFrontDistributionArns (sam deploy "
                "--parameter-overrides) and let whoever runs doctor call cloudfront:GetDistribution on it"
            )
        return Check("credentials", Verdict.FAIL, found, "; ".join(fixes))
    unknown = [r for r in results if r.acceptance is Acceptance.UNKNOWN]
    if unknown:
        return Check("credentials", Verdict.WARN, found, "ask again later; `cdnpurge canary` purges for real")
    return Check("credentials", Verdict.OK, found, "`cdnpurge canary` purges for real where none was asked")


def role_cannot_invalidate(stack: DeployedStack, distribution_id: str) -> str | None:
    """Why the function's role may not invalidate `distribution_id`, or None: its InvalidateCloudFront statement
    names the ARNs of the stack's CloudFrontDistributionArns (IAM wildcards `*` and `?`), and the default is a
    placeholder that grants nothing. Read from the stack, no call: the role is not the operator's to assume."""
    wanted = f"distribution/{distribution_id}"
    listed = [arn.strip() for arn in stack.parameters.get("CloudFrontDistributionArns", "").split(",") if arn.strip()]
    if any(fnmatchcase(wanted, arn.rpartition(":")[2]) for arn in listed if "[" not in arn):
        return None
    return f"the function's role may not invalidate it: CloudFrontDistributionArns names no {wanted}"


def _destinations(stack: DeployedStack, sns: Any) -> Check:
    email, topic = stack.parameters.get("AlarmEmail", ""), stack.parameters.get("AlarmTopicArn", "")
    if not email and not topic:
        return Check(
            "alarm destinations",
            Verdict.FAIL,
            "neither AlarmEmail nor AlarmTopicArn is set: every alarm notifies no one",
            "sam deploy --parameter-overrides AlarmEmail=oncall@example.com (or AlarmTopicArn=<pager topic>)",
        )
    found = [f"topic {topic}"] if topic else []
    if email:
        subscriptions = [
            subscription
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=stack.physical(ALARM_EMAIL_TOPIC)
            )
            for subscription in page["Subscriptions"]
            if subscription["Protocol"] == "email"
        ]
        # AWS lists an unconfirmed subscription with SubscriptionArn "PendingConfirmation".
        if not any(s["SubscriptionArn"] != "PendingConfirmation" for s in subscriptions):
            return Check(
                "alarm destinations",
                Verdict.FAIL if not topic else Verdict.WARN,
                f"the email subscription for {email} is not confirmed: alarms do not reach it",
                f"follow the link in the 'AWS Notification - Subscription Confirmation' email sent to {email}",
            )
        found.append(f"email {email} (confirmed)")
    return Check("alarm destinations", Verdict.OK, "alarms notify " + " and ".join(found))


def _alarms(stack: DeployedStack, cloudwatch: Any) -> Check:
    # CloudFormation names an unnamed alarm <stack>-<logical id>-<suffix>.
    prefix = f"{stack.name}-"
    firing = sorted(
        alarm["AlarmName"].removeprefix(prefix).rsplit("-", 1)[0]
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, StateValue="ALARM")
        for kind in ("MetricAlarms", "CompositeAlarms")
        for alarm in page.get(kind, [])
        # The state again: moto answers a prefix query with every state (AWS applies both filters).
        if alarm["AlarmName"].removeprefix(prefix).count("-") == 1 and alarm.get("StateValue") == "ALARM"
    )
    if firing:
        return Check(
            "alarms",
            Verdict.FAIL,
            f"{len(firing)} in ALARM: {', '.join(firing)}",
            "see docs/runbook.md for each alarm: what it means, what to run, how to know it is over",
        )
    return Check("alarms", Verdict.OK, "none in ALARM")


def _queue_counts(sqs: Any, url: str) -> tuple[int, int] | None:
    """(waiting, in flight) as SQS counts them; None when its answer names no count."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    waiting, in_flight = (
        _count(attributes.get(name))
        for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )
    return None if waiting is None or in_flight is None else (waiting, in_flight)


def _count(value: object) -> int | None:
    """A count in an AWS answer (SQS writes them as text, CloudWatch as floats), bounded like every number an
    answer holds (`cdnpurge.core.answers`); None when it names no number."""
    number = answer_number(value, low=0, high=MAX_ANSWER_COUNT)
    return None if number is None else int(number)


def _queue(stack: DeployedStack, sqs: Any) -> Check:
    counts = _queue_counts(sqs, stack.physical(QUEUE))
    if counts is None:
        return Check("purge queue", Verdict.WARN, NO_COUNT)
    waiting, in_flight = counts
    return Check("purge queue", Verdict.OK, f"{waiting} waiting, {in_flight} in flight")


def _dead_letters(stack: DeployedStack, sqs: Any) -> Check:
    url = stack.physical(DEAD_LETTER_QUEUE)
    counts = _queue_counts(sqs, url)
    if counts is None:
        return Check("dead letters", Verdict.WARN, NO_COUNT)
    dead = sum(counts)
    if not dead:
        return Check("dead letters", Verdict.OK, "the dead-letter queue is empty")
    return Check(
        "dead letters",
        Verdict.WARN,
        f"{dead} message(s) in the dead-letter queue (kept 14 days)",
        f'cdnpurge redrive --dlq-url {url} --queue-url "$QUEUE" --dry-run (see why, fix it, then run without)',
    )


def _paused(stack: DeployedStack, lambda_client: Any, sqs: Any, ssm: Any) -> Check:
    mapping = event_source_mapping(lambda_client, stack.physical(FUNCTION), queue_arn(sqs, stack.physical(QUEUE)))
    state = str(mapping.get("State", "?"))
    record = read_pause(ssm, stack.name)
    if state in ("Enabled", "Enabling", "Creating", "Updating"):
        if record is not None:
            return Check(
                "paused",
                Verdict.WARN,
                f"purging runs (mapping {state}) but a pause record remains: {record.describe()}",
                f"cdnpurge resume --stack {stack.name} (clears it)",
            )
        return Check("paused", Verdict.OK, f"purging runs (event source mapping {state})")
    why = record.describe() if record else "no reason recorded (disabled outside `cdnpurge pause`)"
    return Check(
        "paused",
        Verdict.FAIL,
        f"purging is PAUSED (mapping {state}): {why}; changes wait in the queue",
        f"cdnpurge resume --stack {stack.name}",
    )


# Per function the doctor reads the errors of: its check's name and where to look when it has some.
_ERRORS_CHECKS: Final = {
    FUNCTION: (
        "function errors",
        'Logs Insights, saved query "what happened to one key", or filter the log group for "batch aborted"',
    ),
    WEBHOOK_FUNCTION: (
        "webhook errors",
        "filter the webhook function's log group (WebhookFunctionLogGroup) for ERROR; a failed delivery is "
        "retried by the CMS, a 5xx it keeps getting is a fault here",
    ),
}


def function_errors(stack: DeployedStack, cloudwatch: Any, now: float, logical_id: str) -> Check:
    """The failed invocations of the stack's function `logical_id` (the purge function, the webhook intake) in
    the last hour, from Lambda's own `Errors` metric."""
    from datetime import UTC, datetime

    name, where_to_look = _ERRORS_CHECKS[logical_id]
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": stack.physical(logical_id)}],
        StartTime=datetime.fromtimestamp(now - ERRORS_WINDOW_SECONDS, UTC),
        EndTime=datetime.fromtimestamp(now, UTC),
        Period=ERRORS_WINDOW_SECONDS,
        Statistics=["Sum"],
    )["Datapoints"]
    sums = [_count(point.get("Sum")) for point in points]
    if None in sums:
        return Check(name, Verdict.WARN, "CloudWatch answered a datapoint without a number of errors")
    errors = sum(count for count in sums if count is not None)
    if not errors:
        return Check(name, Verdict.OK, "no failed invocation in the last hour")
    return Check(name, Verdict.FAIL, f"{errors} failed invocation(s) in the last hour", where_to_look)
