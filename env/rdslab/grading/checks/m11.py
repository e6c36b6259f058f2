"""Checks for module 11 (operations runbook): the failover alert, its idempotence, its DLQ, and
the alarms that watch it.

11.1 forces a failover of ``billing-db`` (with the lab's realistic timing on for the duration,
then off again) and counts the alert emails SNS sends to on-call (``lab.events.emails()``).
11.2 invokes the learner's function itself with one event twice and another event once, as
EventBridge would after a duplicate delivery, counts the emails and looks for the claim in the
DynamoDB table. 11.3 breaks the rule's delivery by removing the function's permission for
EventBridge, makes RDS emit a failover event, reads the target's dead-letter queue and puts the
permission back (whatever happens). 11.4 reads the CloudWatch alarms.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ... import config
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from .m10 import (
    ACCOUNT,
    EVENTS,
    REGION,
    drain,
    function_arn,
    function_policy,
    principals,
    queue,
    queue_policy_problem,
    rule,
    rule_basics,
    settle,
    source_arns,
    targets,
)

INSTANCE = "billing-db"
TOPIC = "oncall-alerts"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}"
ONCALL = "oncall@example.com"
FUNCTION = "billing-failover-alert"
RULE = "billing-failover"
TABLE = "processed-events"
DLQ = "billing-failover-dlq"
SUBJECT = f"RDS failover: {INSTANCE}"
SETUP_HINT = (
    "Run the setup cell at the top of the notebook first: it creates billing-db and the topic."
)
COMPLETED_PATTERN = (
    '{"source": ["aws.rds"], "detail-type": ["RDS DB Instance Event"], '
    '"detail": {"EventID": ["RDS-EVENT-0049"]}}'
)


def _alerts(ctx: Context) -> list[dict[str, Any]]:
    """Emails SNS sent to on-call about billing-db (subject ``RDS failover: billing-db``)."""
    mails = ctx.lab.events.emails()
    rows = mails[(mails["to"] == ONCALL) & mails["subject"].str.contains(INSTANCE, regex=False)]
    return list(rows.to_dict("records"))


def _rule_and_function(ctx: Context, hint: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The rule, the function's ARN and the rule's target for it (LearnerErrors otherwise)."""
    fn_arn = function_arn(
        ctx,
        FUNCTION,
        f"Exercise 11.1, step 1: `lambda_client.create_function(FunctionName='{FUNCTION}', "
        "Runtime='python3.12', Role=role_arn, Handler=..., Code={'ZipFile': ...}, Environment=...)`.",
    )
    found = rule(ctx, RULE, hint)
    target = next((t for t in targets(ctx, RULE) if t.get("Arn") == fn_arn), None)
    if target is None:
        raise LearnerError(
            f"targets of `{RULE}` (list_targets_by_rule)",
            f"the function `{FUNCTION}` is not a target of the rule",
            f"`events.put_targets(Rule='{RULE}', Targets=[{{'Id': 'alert', 'Arn': <function ARN>}}])`.",
        )
    return found, fn_arn, target


def _diagnose(ctx: Context, rule_arn: str, since: int) -> str:
    """What the deliveries (from row ``since`` on) and the function's runs say."""
    log = ctx.lab.events.deliveries().iloc[since:]
    rows = log[log["via"] == rule_arn]
    says = [f"{r.event_id} {r.status}" for r in rows.itertuples()]
    runs = ctx.lab.lambda_invocations()
    errors: list[str] = []
    if len(runs) and "error" in runs:
        mine = runs[(runs["function"] == FUNCTION) & runs["error"].notna()]
        errors = sorted(set(mine["error"].astype(str)))
    return f"deliveries of `{RULE}`: {says or 'none'}" + (
        f"; your handler raised {errors} (see its CloudWatch Logs)" if errors else ""
    )


# ---------------------------------------------------------------------------------- 11.1
@exercise("11.1", points=8, title="The failover alert, end to end")
def failover_alert(ctx: Context) -> Iterator[Criterion]:
    ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    found, _, _ = _rule_and_function(
        ctx,
        f"`events.put_rule(Name='{RULE}', EventPattern=json.dumps(...))` for the failover-completed "
        "event of DB instances, then put_targets with the function.",
    )
    yield rule_basics(found, RULE)
    yield Criterion(1, f"targets of `{RULE}`: the function `{FUNCTION}`", True)
    rule_arn = found["Arn"]
    grants = [st for st in function_policy(ctx, FUNCTION) if EVENTS in principals(st)]
    permission_hint = (
        f"`lambda_client.add_permission(FunctionName='{FUNCTION}', StatementId='events-{RULE}', "
        f"Action='lambda:InvokeFunction', Principal='{EVENTS}', SourceArn=<the rule's ARN>)`."
    )
    yield Criterion(
        1,
        f"the resource-based policy of `{FUNCTION}`: {len(grants)} statement(s) for {EVENTS}",
        bool(grants),
        f"no statement lets {EVENTS} invoke the function",
        permission_hint,
    )
    yield practice(
        1,
        f"the SourceArn of those statements (this rule only: {rule_arn})",
        bool(grants) and all(source_arns(st) == [rule_arn] for st in grants),
        "no statement to look at"
        if not grants
        else "a statement without SourceArn (or with another one) lets other rules invoke the function",
        permission_hint,
    )

    settle(ctx)
    before = len(_alerts(ctx))
    delivered_before = len(ctx.lab.events.deliveries())
    emitted_before = len(ctx.lab.events.store.all())
    saved = config.TIME.realistic_events
    config.TIME.realistic_events = True  # delays and any order, as on AWS
    try:
        ctx.client("rds").reboot_db_instance(DBInstanceIdentifier=INSTANCE, ForceFailover=True)
        settle(ctx, timeout=30)
    finally:
        config.TIME.realistic_events = saved
    settle(ctx)
    alerts = _alerts(ctx)[before:]
    emitted = ctx.lab.events.store.all()[emitted_before:]
    completed = [e for e in emitted if e.event_id == "RDS-EVENT-0049" and e.source_id == INSTANCE]
    iso = completed[0].iso_ms if completed else ""
    looked = (
        "the check forced a failover of billing-db (0013, 0006, 0049, delivered with realistic "
        f"delays and order); alert emails to {ONCALL} with subject '{SUBJECT}': {len(alerts)}"
    )
    if not alerts:
        wrong = "no alert arrived: " + _diagnose(ctx, rule_arn, delivered_before)
        hint = (
            f"The rule must match {COMPLETED_PATTERN}; the function needs the permission; the handler "
            f"publishes to `{TOPIC}` with Subject '{SUBJECT}' (f'RDS failover: {{SourceIdentifier}}')."
        )
    else:
        wrong = (
            f"{len(alerts)} alerts for one failover: the rule matches more than the failover-completed "
            "event (the category `failover` also holds 0013, failover started)"
        )
        hint = f"Match one event ID: {COMPLETED_PATTERN}."
    yield Criterion(3, looked, len(alerts) == 1, wrong, hint)
    body = alerts[0]["body"].split("\n--\n")[0] if alerts else ""
    yield Criterion(
        1,
        f"the alert says when the failover happened (detail.Date {iso or '?'}): {body[:200]!r}",
        bool(alerts) and bool(iso) and iso in body,
        "not checked: no alert"
        if not alerts
        else "the alert does not contain the event's detail.Date: delivered minutes late, it would "
        "mislead whoever reads it",
        "Put `detail['Date']` in the message (the time RDS gives, not the time the handler runs).",
    )


# ---------------------------------------------------------------------------------- 11.2
def _envelope(date: datetime, event_id: str | None = None) -> dict[str, Any]:
    arn = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{INSTANCE}"
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "RDS DB Instance Event",
        "source": "aws.rds",
        "account": ACCOUNT,
        "time": date.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {
            "EventCategories": ["failover"],
            "SourceType": "DB_INSTANCE",
            "SourceArn": arn,
            "Date": date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}Z",
            "Message": "A Multi-AZ failover has completed.",
            "SourceIdentifier": INSTANCE,
            "EventID": "RDS-EVENT-0049",
        },
    }


def _invoke(ctx: Context, event: dict[str, Any]) -> str:
    """Invoke the function as EventBridge would hand it an event; '' or the function's error."""
    answer = ctx.client("lambda").invoke(FunctionName=FUNCTION, Payload=json.dumps(event))
    payload = answer["Payload"].read()
    settle(ctx)
    if answer.get("FunctionError"):
        try:
            error = json.loads(payload)
            return f"{error.get('errorType')}: {error.get('errorMessage')}"
        except ValueError:
            return payload.decode("utf-8", "replace")[:300]
    return ""


@exercise("11.2", points=8, title="An idempotent alert handler")
def idempotent(ctx: Context) -> Iterator[Criterion]:
    function_arn(ctx, FUNCTION, "Create the function in exercise 11.1, then update it here.")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=random.randint(5, 500))
    first = _envelope(base + timedelta(milliseconds=random.randint(1, 999)))
    other = _envelope(base + timedelta(seconds=7, milliseconds=random.randint(1, 999)))
    date = first["detail"]["Date"]

    count = len(_alerts(ctx))
    error = _invoke(ctx, first)
    got = len(_alerts(ctx)) - count
    yield Criterion(
        2,
        f"the check invoked `{FUNCTION}` with a failover event of billing-db (Date {date}): "
        f"{got} alert(s)",
        got == 1 and not error,
        f"the handler failed: {error}" if error else f"{got} alerts instead of 1",
        "The handler must still alert once for a new event (exercise 11.1); read its CloudWatch "
        f"Logs (/aws/lambda/{FUNCTION}).",
    )
    count = len(_alerts(ctx))
    error = _invoke(ctx, first)
    again = len(_alerts(ctx)) - count
    yield Criterion(
        3,
        f"the same event delivered again (same id, same detail): {again} more alert(s)",
        again == 0 and not error,
        f"the handler failed on the duplicate: {error}"
        if error
        else "the duplicate paged on-call again",
        f'Before publishing, claim the key f"{{SourceIdentifier}}|{{EventID}}|{{Date}}" with '
        f"dynamodb.put_item(TableName='{TABLE}', ..., "
        "ConditionExpression='attribute_not_exists(event_key)'); on "
        "ConditionalCheckFailedException return without publishing.",
    )
    count = len(_alerts(ctx))
    error = _invoke(ctx, other)
    third = len(_alerts(ctx)) - count
    yield Criterion(
        1,
        f"another failover event (Date {other['detail']['Date']}): {third} alert(s)",
        third == 1 and not error,
        f"the handler failed: {error}"
        if error
        else "a new event was taken for a duplicate: the key is too coarse",
        "The key must tell events apart: SourceIdentifier, EventID and Date (or EventBridge's id).",
    )
    ddb = ctx.client("dynamodb")
    try:
        items = ddb.scan(TableName=TABLE)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        yield Criterion(
            2,
            f"DynamoDB table `{TABLE}` (scan)",
            False,
            f"there is no table `{TABLE}`: where does the handler remember what it handled?",
            f"`dynamodb.create_table(TableName='{TABLE}', KeySchema=[{{'AttributeName': 'event_key', "
            "'KeyType': 'HASH'}], AttributeDefinitions=[{'AttributeName': 'event_key', "
            "'AttributeType': 'S'}], BillingMode='PAY_PER_REQUEST')`.",
        )
        return
    claimed = [i for i in items if date in json.dumps(i) or first["id"] in json.dumps(i)]
    yield Criterion(
        2,
        f"DynamoDB table `{TABLE}`: {len(items)} item(s); about the check's first event: {len(claimed)}",
        bool(claimed),
        "the table holds no key for the check's event: memory inside the function is lost when "
        "Lambda recycles the environment, and not shared between environments",
        f"Keep the keys in `{TABLE}` (conditional put_item), not in a Python variable.",
    )


# ---------------------------------------------------------------------------------- 11.3
def _restore(ctx: Context, removed: list[dict[str, Any]]) -> list[str]:
    """Put removed statements back; returns what could not be restored."""
    lam = ctx.client("lambda")
    failed = []
    for st in removed:
        kwargs: dict[str, Any] = {
            "FunctionName": FUNCTION,
            "StatementId": st.get("Sid") or f"events-{RULE}",
            "Action": "lambda:InvokeFunction",
            "Principal": EVENTS,
        }
        arns = source_arns(st)
        if arns:
            kwargs["SourceArn"] = arns[0]
        for conditions in (st.get("Condition") or {}).values():
            for key, value in (conditions or {}).items():
                if key.lower() == "aws:sourceaccount":
                    kwargs["SourceAccount"] = value if isinstance(value, str) else value[0]
        try:
            lam.add_permission(**kwargs)
        except Exception as exc:  # noqa: BLE001 - report it; never leave silently
            failed.append(f"{kwargs['StatementId']} ({exc})")
    return failed


@exercise("11.3", points=7, title="A dead-letter queue for the alert's target")
def target_dlq(ctx: Context) -> Iterator[Criterion]:
    found, fn_arn, target = _rule_and_function(ctx, "Build the alert in exercise 11.1 first.")
    url, arn = queue(ctx, DLQ, f"Create the queue: `sqs.create_queue(QueueName='{DLQ}')`.")
    dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
    put_hint = (
        f"`events.put_targets(Rule='{RULE}', Targets=[{{'Id': ..., 'Arn': <function ARN>, "
        "'RetryPolicy': {'MaximumRetryAttempts': 10, 'MaximumEventAgeInSeconds': 3600}, "
        "'DeadLetterConfig': {'Arn': <queue ARN>}}])` (same Id: it replaces the target)."
    )
    yield Criterion(
        2,
        f"the target `{FUNCTION}` of `{RULE}`: DeadLetterConfig {dead_letter or 'none'}",
        dead_letter == arn,
        f"the target's dead-letter queue is not `{DLQ}` ({arn})",
        put_hint,
    )
    policy = target.get("RetryPolicy") or {}
    age, attempts = policy.get("MaximumEventAgeInSeconds"), policy.get("MaximumRetryAttempts")
    yield Criterion(
        1,
        f"its RetryPolicy: MaximumEventAgeInSeconds {age}, MaximumRetryAttempts {attempts}",
        age is not None and attempts is not None and int(age) <= 3600 and int(attempts) <= 10,
        "without a RetryPolicy EventBridge keeps trying for 24 hours (185 attempts): an alert a day "
        "late is no alert; the task asks for at most one hour and at most 10 retries",
        put_hint,
    )
    problem = queue_policy_problem(ctx, url, found["Arn"])
    yield practice(
        1,
        f"the policy of queue `{DLQ}` (EventBridge must be allowed to send, from this rule)",
        not problem,
        problem,
        "Give the DLQ the same kind of queue policy as any SQS target: events.amazonaws.com, "
        "sqs:SendMessage, aws:SourceArn = the rule's ARN.",
    )
    if dead_letter != arn:
        yield Criterion(
            3,
            "a delivery that cannot be made",
            False,
            "not tested: the target has no dead-letter queue yet",
            put_hint,
        )
        return

    lam = ctx.client("lambda")
    removed = [st for st in function_policy(ctx, FUNCTION) if EVENTS in principals(st)]
    drain(ctx, url)
    restored_problems: list[str] = []
    try:
        for st in removed:
            lam.remove_permission(FunctionName=FUNCTION, StatementId=st["Sid"])
        ev = ctx.lab.events.inject(INSTANCE, "0049")
        settle(ctx)
        dead = [m for m in drain(ctx, url) if ev.iso_ms in m.get("Body", "")]
    finally:
        restored_problems = _restore(ctx, removed)
    attrs = (
        {k: v.get("StringValue") for k, v in (dead[0].get("MessageAttributes") or {}).items()}
        if dead
        else {}
    )
    yield Criterion(
        3,
        f"the check removed {EVENTS}'s permission from `{FUNCTION}` ({len(removed)} statement(s)), "
        f"made RDS emit RDS-EVENT-0049 for billing-db, read `{DLQ}` and put the permission back: "
        f"{len(dead)} message(s) about that event, ERROR_CODE {attrs.get('ERROR_CODE')}",
        bool(dead) and attrs.get("ERROR_CODE") == "NO_PERMISSIONS" and not restored_problems,
        "the event that could not be delivered did not reach the DLQ"
        if not dead
        else f"the permission could not be put back: {restored_problems}; add it again yourself"
        if restored_problems
        else f"unexpected attributes: {attrs}",
        put_hint
        if not dead
        else f"`lambda_client.add_permission(FunctionName='{FUNCTION}', ...)` as in exercise 11.1.",
    )


# ---------------------------------------------------------------------------------- 11.4
def _alarm_problem(alarm: dict[str, Any] | None) -> str:
    if alarm is None:
        return "there is no such alarm"
    problems = []
    op, threshold = alarm.get("ComparisonOperator"), float(alarm.get("Threshold", 99))
    fires_at_one = (op == "GreaterThanOrEqualToThreshold" and threshold <= 1) or (
        op == "GreaterThanThreshold" and threshold < 1
    )
    if not fires_at_one:
        problems.append(f"{op} {threshold:g} does not fire on the first one")
    if TOPIC_ARN not in (alarm.get("AlarmActions") or []):
        problems.append(f"AlarmActions {alarm.get('AlarmActions')} do not notify {TOPIC}")
    if int(alarm.get("Period", 0)) > 300:
        problems.append(f"Period {alarm.get('Period')} s: you hear about it late (at most 300)")
    return "; ".join(problems)


def _find(alarms: list[dict[str, Any]], namespace: str, metric: str, dim: tuple[str, str]) -> Any:
    for alarm in alarms:
        dims = {(d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])}
        if (
            alarm.get("Namespace") == namespace
            and alarm.get("MetricName") == metric
            and dim in dims
        ):
            return alarm
    return None


@exercise("11.4", points=4, title="Alarms that watch the alert path")
def alarms(ctx: Context) -> Iterator[Criterion]:
    found = ctx.client("cloudwatch").describe_alarms()["MetricAlarms"]
    failed = _find(found, "AWS/Events", "FailedInvocations", ("RuleName", RULE))
    problem = _alarm_problem(failed)
    yield Criterion(
        2,
        f"an alarm on AWS/Events FailedInvocations, RuleName={RULE}: "
        f"{failed['AlarmName'] if failed else 'none'} (describe_alarms)",
        not problem,
        problem,
        "`cloudwatch.put_metric_alarm(AlarmName=..., Namespace='AWS/Events', "
        f"MetricName='FailedInvocations', Dimensions=[{{'Name': 'RuleName', 'Value': '{RULE}'}}], "
        "Statistic='Sum', Period=300, EvaluationPeriods=1, Threshold=1, "
        "ComparisonOperator='GreaterThanOrEqualToThreshold', AlarmActions=[<topic ARN>])`.",
    )
    depth = _find(found, "AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", DLQ))
    problem = _alarm_problem(depth)
    yield Criterion(
        2,
        f"an alarm on AWS/SQS ApproximateNumberOfMessagesVisible, QueueName={DLQ}: "
        f"{depth['AlarmName'] if depth else 'none'}",
        not problem,
        problem,
        "Namespace='AWS/SQS', MetricName='ApproximateNumberOfMessagesVisible', "
        f"Dimensions=[{{'Name': 'QueueName', 'Value': '{DLQ}'}}], Statistic='Maximum', "
        "Threshold=1, ComparisonOperator='GreaterThanOrEqualToThreshold', AlarmActions=[<topic ARN>].",
    )
