"""Checks for module 09 (event subscriptions and SNS): subscriptions, SNS to SQS, Lambda, email.

Each check reads the configuration through boto3 (``describe_event_subscriptions``, SNS
subscriptions, the queue's and the function's resource policies) and then makes RDS emit events
(reboots, a stop and a start, and the lab facilities ``lab.events.backup`` / ``inject`` for what
RDS does by itself) to see where they arrive: the lab's delivery log (``lab.events.deliveries()``),
the function's CloudWatch log, the email outbox (``lab.events.emails()``).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ... import config
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice

INSTANCE = "orders-db"
OTHER = "reports-db"
TOPIC = "db-alerts"
QUEUE = "db-alerts-queue"
SUBSCRIPTION = "orders-db-availability"
FUNCTION = "rds-event-summary"
MAIL_TOPIC = "dba-mail"
MAIL_SUBSCRIPTION = "dba-notices"
EMAIL = "dba@example.com"
PREFIX = f"arn:aws:sns:{config.REGION}:{config.ACCOUNT_ID}"
STRANGER = f"{PREFIX}:some-other-topic"
SETUP_HINT = "Run the setup cell at the top of the notebook first."
WAIT = 30.0


def _topic(ctx: Context, name: str, hint: str) -> str:
    arn = f"{PREFIX}:{name}"
    sns = ctx.client("sns")
    try:
        sns.get_topic_attributes(TopicArn=arn)
    except sns.exceptions.NotFoundException:
        raise LearnerError(f"SNS topic {arn}", f"there is no SNS topic `{name}`", hint) from None
    return arn


def _subscription(ctx: Context, name: str, hint: str) -> dict[str, Any]:
    rds = ctx.client("rds")
    try:
        return dict(
            rds.describe_event_subscriptions(SubscriptionName=name)["EventSubscriptionsList"][0]
        )
    except rds.exceptions.SubscriptionNotFoundFault:
        raise LearnerError(
            f"event subscription `{name}` (describe_event_subscriptions)",
            f"there is no event subscription named `{name}`",
            hint,
        ) from None


def _sns_subscriptions(ctx: Context, topic_arn: str) -> list[dict[str, Any]]:
    sns = ctx.client("sns")
    out: list[dict[str, Any]] = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        out += page["Subscriptions"]
    return out


def _mark(ctx: Context) -> int:
    rows = ctx.lab.events.deliveries()
    return int(rows.id.max()) if len(rows) else 0


def _after(ctx: Context, mark: int) -> Any:
    rows = ctx.lab.events.deliveries()
    return rows[rows.id > mark]


def _settle(ctx: Context) -> None:
    """Let every delivery (and the Lambda runs it queued) finish."""
    ctx.lab.events.wait_idle(WAIT)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _queue_policy_allows(policy: str | None, queue_arn: str, topic_arn: str) -> bool:
    """Does the queue policy let SNS, publishing from ``topic_arn``, send to the queue?"""
    from fnmatch import fnmatchcase

    if not policy:
        return False
    doc = json.loads(policy)
    for st in _as_list(doc.get("Statement")):
        if st.get("Effect") != "Allow":
            continue
        actions = [a.lower() for a in _as_list(st.get("Action"))]
        if not {"sqs:sendmessage", "sqs:*", "*"} & set(actions):
            continue
        who = st.get("Principal")
        if isinstance(who, dict):
            names = _as_list(who.get("Service")) + _as_list(who.get("AWS"))
        else:
            names = _as_list(who)
        if "sns.amazonaws.com" not in names and "*" not in names:
            continue
        if not any(fnmatchcase(queue_arn, r) for r in _as_list(st.get("Resource")) or [queue_arn]):
            continue
        ok = True
        for operator, tests in (st.get("Condition") or {}).items():
            for key, expected in tests.items():
                if key.lower() != "aws:sourcearn":
                    continue
                values = [str(v) for v in _as_list(expected)]
                like = operator.lower().endswith("like")
                ok &= any(fnmatchcase(topic_arn, v) if like else topic_arn == v for v in values)
        if ok:
            return True
    return False


def _event_id(text: Any) -> str | None:
    found = re.search(r"RDS-EVENT-\d{4}", str(text or ""))
    return found.group(0) if found else None


# ---------------------------------------------------------------------------------- 09.1
@exercise("09.1", points=10, title="An event subscription for one instance, delivered to SQS")
def subscription_to_queue(ctx: Context) -> Iterator[Criterion]:
    rds, sns, sqs = ctx.client("rds"), ctx.client("sns"), ctx.client("sqs")
    ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    sub = _subscription(
        ctx,
        SUBSCRIPTION,
        f'`rds.create_event_subscription(SubscriptionName="{SUBSCRIPTION}", SnsTopicArn=..., '
        'SourceType="db-instance", EventCategories=[...], SourceIds=[...])`.',
    )
    topic_arn = f"{PREFIX}:{TOPIC}"
    name = f"event subscription {SUBSCRIPTION}"
    yield Criterion(
        1,
        f"{name}: SnsTopicArn {sub['SnsTopicArn']}, Status {sub['Status']}",
        sub["SnsTopicArn"] == topic_arn and sub["Status"] == "active",
        f"it must publish to the topic {topic_arn} and be active (status {sub['Status']!r})",
        f'Create the topic with `sns.create_topic(Name="{TOPIC}")` and pass its ARN as SnsTopicArn '
        "(`modify_event_subscription(..., SnsTopicArn=...)` changes it).",
    )
    yield Criterion(
        1,
        f"{name}: SourceType {sub.get('SourceType')!r}",
        sub.get("SourceType") == "db-instance",
        "without SourceType the subscription covers every source type (clusters, snapshots...)"
        if not sub.get("SourceType")
        else f"SourceType is {sub.get('SourceType')!r}, not 'db-instance'",
        'SourceType="db-instance".',
    )
    categories = sorted(sub["EventCategoriesList"])
    yield Criterion(
        1,
        f"{name}: EventCategoriesList {categories}",
        set(categories) == {"availability", "failover"},
        "no categories means every category (backups, notifications, configuration changes...)"
        if not categories
        else f"the task asks for exactly availability and failover, not {categories}",
        'EventCategories=["availability", "failover"] (a reboot is availability; a failover is failover).',
    )
    yield Criterion(
        1,
        f"{name}: SourceIdsList {sub['SourceIdsList']}",
        sub["SourceIdsList"] == [INSTANCE],
        "no source IDs means every DB instance in the account"
        if not sub["SourceIdsList"]
        else f"it must cover {INSTANCE} only",
        f'SourceIds=["{INSTANCE}"].',
    )
    yield Criterion(
        1,
        f"{name}: Enabled {sub['Enabled']}",
        bool(sub["Enabled"]),
        "the subscription is disabled: RDS sends nothing",
        f'`rds.modify_event_subscription(SubscriptionName="{SUBSCRIPTION}", Enabled=True)`.',
    )
    try:
        queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise LearnerError(
            f"SQS queue {QUEUE}",
            f"there is no queue `{QUEUE}`",
            f'`sqs.create_queue(QueueName="{QUEUE}")`, then subscribe it to the topic.',
        ) from None
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn", "Policy"]
    )["Attributes"]
    queue_arn = attributes["QueueArn"]
    topic_arn = _topic(
        ctx, TOPIC, f'`sns.create_topic(Name="{TOPIC}")`, then subscribe the queue to it.'
    )
    mine = [
        s
        for s in _sns_subscriptions(ctx, topic_arn)
        if s["Protocol"] == "sqs" and s["Endpoint"] == queue_arn
    ]
    raw = bool(mine) and all(
        sns.get_subscription_attributes(SubscriptionArn=s["SubscriptionArn"])["Attributes"].get(
            "RawMessageDelivery", "false"
        )
        == "true"
        for s in mine
    )
    yield Criterion(
        1,
        f"SNS subscriptions of {TOPIC} to {queue_arn}: {len(mine)}, RawMessageDelivery {raw}",
        len(mine) == 1 and raw,
        "the queue is not subscribed to the topic"
        if not mine
        else "more than one subscription of the queue"
        if len(mine) > 1
        else "the messages arrive wrapped in SNS's envelope",
        '`sns.subscribe(TopicArn=..., Protocol="sqs", Endpoint=<queue ARN>, '
        'Attributes={"RawMessageDelivery": "true"})`.',
    )
    policy = attributes.get("Policy")
    allowed = _queue_policy_allows(policy, queue_arn, topic_arn)
    yield Criterion(
        1,
        f"the queue's policy (get_queue_attributes Policy): {'present' if policy else 'none'}",
        allowed,
        "it does not let sns.amazonaws.com send messages from the topic: SQS drops them, "
        "in the lab as on AWS",
        'set_queue_attributes(QueueUrl=..., Attributes={"Policy": ...}) with a statement allowing '
        '"Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage" on the queue ARN, '
        'with "Condition": {"ArnEquals": {"aws:SourceArn": <topic ARN>}}.',
    )
    yield practice(
        1,
        "the queue's policy, for a topic other than db-alerts",
        allowed and not _queue_policy_allows(policy, queue_arn, STRANGER),
        "any SNS topic could send to the queue: the statement has no aws:SourceArn condition"
        if allowed
        else "not checked: the policy does not allow the topic yet",
        'Add "Condition": {"ArnEquals": {"aws:SourceArn": <the db-alerts topic ARN>}}.',
    )
    mark = _mark(ctx)
    rds.reboot_db_instance(DBInstanceIdentifier=INSTANCE, ForceFailover=True)
    rds.reboot_db_instance(DBInstanceIdentifier=OTHER)
    ctx.lab.events.backup(INSTANCE)
    _settle(ctx)
    rows = _after(ctx, mark)
    rows = rows[(rows.channel == "sns") & (rows.kind == "sqs") & (rows.target == queue_arn)]
    got = [(r.event_id, r.source_id) for r in rows.itertuples() if r.status == "Delivered"]
    expected = [
        ("RDS-EVENT-0013", INSTANCE),
        ("RDS-EVENT-0006", INSTANCE),
        ("RDS-EVENT-0049", INSTANCE),
    ]
    extra = sorted(set(got) - set(expected))
    lacking = [e for e in expected if e not in got]
    wrong = []
    if lacking:
        wrong.append("missing: " + ", ".join(f"{e} ({s})" for e, s in lacking))
    if extra:
        wrong.append("not asked for: " + ", ".join(f"{e} ({s})" for e, s in extra))
    failed = [
        f"{r.event_id}: {r.status} {r.detail}" for r in rows.itertuples() if r.status != "Delivered"
    ]
    if failed:
        wrong.append("failed deliveries: " + "; ".join(failed))
    yield Criterion(
        2,
        f"the check rebooted {INSTANCE} with ForceFailover=True and {OTHER}, and ran {INSTANCE}'s automated "
        f"backup (lab facility); delivered to your queue (lab.events.deliveries()): "
        + (", ".join(f"{e} ({s})" for e, s in got) or "nothing"),
        sorted(got) == sorted(expected),
        "; ".join(wrong),
        "The queue should get exactly the failover (0013, 0049) and the restart (0006) of orders-db: "
        "check the subscription's SourceType, EventCategories, SourceIds and Enabled, and the queue's "
        "SNS subscription.",
    )


# ---------------------------------------------------------------------------------- 09.2
def _function(ctx: Context, hint: str) -> dict[str, Any]:
    lam = ctx.client("lambda")
    try:
        return dict(lam.get_function(FunctionName=FUNCTION)["Configuration"])
    except lam.exceptions.ResourceNotFoundException:
        raise LearnerError(
            f"Lambda function {FUNCTION} (get_function)",
            f"there is no function `{FUNCTION}`",
            hint,
        ) from None


def _statements(ctx: Context) -> list[dict[str, Any]]:
    lam = ctx.client("lambda")
    try:
        policy = lam.get_policy(FunctionName=FUNCTION)["Policy"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return list(_as_list(json.loads(policy).get("Statement")))


def _invocations(ctx: Context, since: datetime) -> Any:
    import pandas as pd

    rows = ctx.lab.lambda_invocations()
    if rows.empty:
        return rows
    times = pd.to_datetime(rows["time"], utc=True)
    return rows[(rows["function"] == FUNCTION) & (times >= pd.Timestamp(since))]


@exercise("09.2", points=8, title="Let SNS invoke rds-event-summary, from db-alerts only")
def sns_permission(ctx: Context) -> Iterator[Criterion]:
    from ...events.delivery import policy_allows

    rds = ctx.client("rds")
    fn = _function(
        ctx,
        f'`lam.create_function(FunctionName="{FUNCTION}", Runtime="python3.12", Role=..., '
        'Handler="summary.lambda_handler", Code={"ZipFile": zip_source("summary.py", STARTER)})`.',
    )
    fn_arn = fn["FunctionArn"]
    topic_arn = _topic(ctx, TOPIC, "Exercise 09.2 uses the topic of 09.1: do 09.1 first.")
    subscribed = [
        s
        for s in _sns_subscriptions(ctx, topic_arn)
        if s["Protocol"] == "lambda" and s["Endpoint"] == fn_arn
    ]
    yield Criterion(
        2,
        f"SNS subscriptions of {TOPIC} with protocol lambda to {fn_arn}: {len(subscribed)}",
        len(subscribed) == 1,
        "the function is not subscribed to the topic"
        if not subscribed
        else "it is subscribed more than once: every message would run it twice",
        '`sns.subscribe(TopicArn=<db-alerts ARN>, Protocol="lambda", Endpoint=<function ARN>)`.',
    )
    statements = _statements(ctx)
    allowed = policy_allows(statements, "sns.amazonaws.com", topic_arn, config.ACCOUNT_ID)
    yield Criterion(
        2,
        f"the function's resource policy (get_policy): {len(statements)} statement(s); "
        f"sns.amazonaws.com may invoke it from {TOPIC}: {allowed}",
        allowed,
        "SNS is not allowed to invoke the function: its deliveries are refused (AccessDenied), "
        "and nobody is told",
        f'`lam.add_permission(FunctionName="{FUNCTION}", StatementId="sns-db-alerts", '
        'Action="lambda:InvokeFunction", Principal="sns.amazonaws.com", SourceArn=<db-alerts ARN>)`.',
    )
    started = datetime.now(UTC)
    mark = _mark(ctx)
    rds.reboot_db_instance(DBInstanceIdentifier=INSTANCE)
    _settle(ctx)
    rows = _after(ctx, mark)
    rows = rows[(rows.kind == "lambda") & (rows.target == fn_arn) & (rows.via == topic_arn)]
    statuses = Counter(rows.status)
    runs = _invocations(ctx, started)
    from_sns = runs[runs["source"] == "sns.amazonaws.com"] if "source" in runs else runs.iloc[0:0]
    if rows.empty:
        wrong = (
            "SNS delivered nothing to the function: is it subscribed to db-alerts, and does the event "
            "subscription of 09.1 send orders-db's restarts to db-alerts?"
        )
    else:
        refused = rows[rows.status != "Delivered"]
        wrong = (
            f"SNS tried and was refused: {refused.iloc[0].status}: {refused.iloc[0].detail}"
            if not refused.empty
            else "the invocation was not recorded"
        )
    yield Criterion(
        2,
        f"the check rebooted {INSTANCE}: SNS deliveries to the function {dict(statuses)}, "
        f"invocations by sns.amazonaws.com {len(from_sns)}",
        statuses.get("Delivered", 0) >= 1 and len(from_sns) >= 1,
        wrong,
        "Subscribe the function to db-alerts and grant sns.amazonaws.com lambda:InvokeFunction "
        "(add_permission).",
    )
    grants = [
        st
        for st in statements
        if st.get("Effect", "Allow") == "Allow"
        and policy_allows([st], "sns.amazonaws.com", topic_arn, config.ACCOUNT_ID)
    ]
    open_to_all = policy_allows(statements, "sns.amazonaws.com", STRANGER, config.ACCOUNT_ID)
    yield practice(
        1,
        f"could another topic ({STRANGER}) invoke the function? {open_to_all}",
        allowed and not open_to_all,
        "yes: without a SourceArn condition any SNS topic (in any account) may invoke it"
        if allowed
        else "not checked: SNS may not invoke the function yet",
        "Grant with SourceArn=<the db-alerts topic ARN> (remove_permission the broad statement, "
        "add_permission again).",
    )
    broad = [
        st.get("Sid", "?")
        for st in grants
        if st.get("Principal") == "*"
        or "*" in _as_list((st.get("Principal") or {}).get("Service"))
        or any(a.lower() in ("lambda:*", "*") for a in _as_list(st.get("Action")))
    ]
    yield practice(
        1,
        "the statements that let SNS in: principal and action",
        allowed and not broad,
        f"statement(s) {broad} grant a wildcard principal or action"
        if broad
        else "not checked: SNS may not invoke the function yet",
        'Principal="sns.amazonaws.com" and Action="lambda:InvokeFunction", nothing wider.',
    )


# ---------------------------------------------------------------------------------- 09.3
def _summaries(ctx: Context, start_ms: int) -> list[dict[str, Any]]:
    logs = ctx.client("logs")
    group = f"/aws/lambda/{FUNCTION}"
    out: list[dict[str, Any]] = []
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, startTime=start_ms
        )
        for page in pages:
            for event in page["events"]:
                text = event["message"].strip()
                if not text.startswith("{"):
                    continue
                try:
                    doc = json.loads(text)
                except ValueError:
                    continue
                if isinstance(doc, dict) and "event_id" in doc:
                    out.append(doc)
    except logs.exceptions.ResourceNotFoundException:
        return []
    return out


@exercise("09.3", points=8, title="A handler that parses RDS's message")
def parse_message(ctx: Context) -> Iterator[Criterion]:
    rds = ctx.client("rds")
    fn = _function(ctx, "Exercise 09.3 updates the function of 09.2: do 09.2 first.")
    fn_arn = fn["FunctionArn"]
    started = datetime.now(UTC)
    start_ms = int(time.time() * 1000)
    mark = _mark(ctx)
    rds.reboot_db_instance(DBInstanceIdentifier=INSTANCE, ForceFailover=True)
    ctx.lab.events.inject(INSTANCE, "0034")  # a failover RDS skipped: it emits this by itself
    _settle(ctx)
    rows = _after(ctx, mark)
    rows = rows[(rows.kind == "lambda") & (rows.target == fn_arn) & (rows.status == "Delivered")]
    timeline = ctx.lab.events.timeline()
    timeline = timeline[(timeline.date >= started) & (timeline.source_id == INSTANCE)]
    delivered = Counter(rows.event_id)
    expected = []
    for ev in timeline.itertuples():
        if delivered[ev.event_id] > 0:
            delivered[ev.event_id] -= 1
            stamp = ev.date.strftime("%Y-%m-%d %H:%M:%S.") + f"{ev.date.microsecond // 1000:03d}"
            expected.append(
                {
                    "event_id": ev.event_id,
                    "source_id": ev.source_id,
                    "event_message": ev.message,
                    "event_time": stamp,
                }
            )
    if not expected:
        raise LearnerError(
            f"SNS deliveries to {FUNCTION} after the check rebooted {INSTANCE} with a failover",
            "SNS delivered nothing to the function",
            "Do 09.1 and 09.2 first: the event subscription, the function's SNS subscription and its "
            "permission.",
        )
    runs = _invocations(ctx, started)
    done = runs[runs["attempt"].notna()] if "attempt" in runs else runs.iloc[0:0]
    errors = [e for e in done["error"] if e] if "error" in done else []
    yield Criterion(
        2,
        f"the check rebooted {INSTANCE} with ForceFailover=True and RDS skipped a failover "
        f"(RDS-EVENT-0034, lab facility): {len(expected)} events delivered to {FUNCTION}, "
        f"{len(done)} runs, {len(errors)} with an error",
        len(done) >= len(expected) and not errors,
        f"the handler raised {errors[0]} ({len(errors)} failed runs: Lambda retries each event twice)"
        if errors
        else "the function did not run for every event",
        f'Read its log: `logs.filter_log_events(logGroupName="/aws/lambda/{FUNCTION}")`; the '
        "message is the JSON *string* record['Sns']['Message'] (json.loads it).",
    )
    summaries = _summaries(ctx, start_ms)
    yield Criterion(
        1,
        f"summary lines in /aws/lambda/{FUNCTION} (JSON objects with an event_id): {len(summaries)}",
        len(summaries) == len(expected),
        f"{len(summaries)} line(s) for {len(expected)} events: print exactly one json.dumps(summary) "
        "line per record",
        "For each record in event['Records']: print(json.dumps({...})) once.",
    )
    got_ids = Counter(str(s.get("event_id")) for s in summaries)
    want_ids = Counter(e["event_id"] for e in expected)
    urls = [s.get("event_id") for s in summaries if "://" in str(s.get("event_id"))]
    yield Criterion(
        2,
        f"event_id values: {sorted(got_ids.elements())}",
        got_ids == want_ids,
        "event_id holds the whole docs URL of `Event ID`"
        if urls
        else f"expected {sorted(want_ids.elements())}",
        "`Event ID` is a URL ending in #RDS-EVENT-nnnn: "
        "re.search(r'RDS-EVENT-\\d{4}', message['Event ID']).group(0).",
    )
    pairs = Counter((str(s.get("source_id")), str(s.get("event_message"))) for s in summaries)
    want_pairs = Counter((e["source_id"], e["event_message"]) for e in expected)
    yield Criterion(
        2,
        "source_id and event_message of each summary",
        pairs == want_pairs,
        f"expected {sorted(want_pairs.elements())}, got {sorted(pairs.elements())}",
        "source_id = message['Source ID'], event_message = message['Event Message'], where "
        "message = json.loads(record['Sns']['Message']).",
    )
    times = Counter(str(s.get("event_time")) for s in summaries)
    want_times = Counter(e["event_time"] for e in expected)
    yield Criterion(
        1,
        "event_time of each summary (RDS's `Event Time`, YYYY-MM-DD HH:MM:SS.mmm)",
        times == want_times,
        f"expected {sorted(want_times.elements())}, got {sorted(times.elements())}",
        "event_time = message['Event Time'], unchanged (it is not the SNS Timestamp).",
    )


# ---------------------------------------------------------------------------------- 09.4
def _created(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


@exercise("09.4", points=8, title="Change what the DBA team is emailed")
def dba_mail(ctx: Context) -> Iterator[Criterion]:
    rds = ctx.client("rds")
    orders = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    ctx.db_instance(OTHER, hint=SETUP_HINT)
    mail_topic = _topic(ctx, MAIL_TOPIC, "The setup cell creates the topic dba-mail: run it again.")
    sub = _subscription(
        ctx,
        MAIL_SUBSCRIPTION,
        "The setup cell creates it; if you deleted it, run the setup cell again (the task is to "
        "change it, not to replace it).",
    )
    emails = [
        s
        for s in _sns_subscriptions(ctx, mail_topic)
        if s["Protocol"] == "email" and s["Endpoint"].lower() == EMAIL
    ]
    yield Criterion(
        1,
        f"email subscriptions of {MAIL_TOPIC} to {EMAIL}: {len(emails)}",
        len(emails) == 1,
        "nobody receives this topic's messages by email"
        if not emails
        else "the address is subscribed more than once",
        f'`sns.subscribe(TopicArn=<dba-mail ARN>, Protocol="email", Endpoint="{EMAIL}")`.',
    )
    categories = sorted(sub["EventCategoriesList"])
    yield Criterion(
        1,
        f"event subscription {MAIL_SUBSCRIPTION}: EventCategoriesList {categories}",
        set(categories) == {"low storage", "notification"},
        f"the task asks for low storage and notification, not {categories}",
        f'`rds.modify_event_subscription(SubscriptionName="{MAIL_SUBSCRIPTION}", '
        'EventCategories=["low storage", "notification"])` (stop and start are notification).',
    )
    yield Criterion(
        1,
        f"event subscription {MAIL_SUBSCRIPTION}: SourceIdsList {sub['SourceIdsList']}",
        sub["SourceIdsList"] == [INSTANCE],
        f"it must cover {INSTANCE} only",
        "`rds.add_source_identifier_to_subscription(...)` for orders-db and "
        "`rds.remove_source_identifier_from_subscription(...)` for reports-db.",
    )
    outbox = ctx.lab.events.emails()
    seen = len(outbox)
    rds.stop_db_instance(DBInstanceIdentifier=INSTANCE)
    rds.start_db_instance(DBInstanceIdentifier=INSTANCE)
    rds.get_waiter("db_instance_available").wait(
        DBInstanceIdentifier=INSTANCE, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    ctx.lab.events.inject(INSTANCE, "0089")  # low storage: RDS's storage monitor (lab facility)
    rds.reboot_db_instance(DBInstanceIdentifier=OTHER)
    ctx.lab.events.inject(OTHER, "0089")
    _settle(ctx)
    outbox = ctx.lab.events.emails()
    new = outbox.iloc[seen:]
    new = new[new["to"].str.lower() == EMAIL]
    received = []
    for body in new["body"]:
        try:
            message = json.loads(body.split("\n\n--\n")[0])
        except ValueError:
            continue
        received.append((_event_id(message.get("Event ID")), message.get("Source ID")))
    action = (
        f"the check stopped and started {INSTANCE}, rebooted {OTHER}, and low storage was reported "
        "for both (lab facility)"
    )
    listed = ", ".join(f"{e} ({s})" for e, s in received) or "none"
    notices = [("RDS-EVENT-0087", INSTANCE), ("RDS-EVENT-0088", INSTANCE)]
    yield Criterion(
        2,
        f"{action}; emails to {EMAIL} (lab.events.emails()): {listed}",
        all(n in received for n in notices),
        f"missing the stop and start notices of {INSTANCE} (RDS-EVENT-0087, RDS-EVENT-0088)",
        "Subscribe the address to dba-mail, and let dba-notices cover orders-db with the category "
        "notification.",
    )
    yield Criterion(
        1,
        f"emails to {EMAIL} about {INSTANCE}'s low storage (RDS-EVENT-0089)",
        ("RDS-EVENT-0089", INSTANCE) in received,
        "missing",
        "Keep the category low storage, and add orders-db to the subscription.",
    )
    about_other = [e for e, s in received if s == OTHER]
    yield Criterion(
        1,
        f"emails to {EMAIL} about {OTHER}: {about_other}",
        bool(received) and not about_other,
        f"{OTHER} is still covered" if about_other else "not checked: no email arrived at all",
        f"Remove {OTHER} from the subscription (remove_source_identifier_from_subscription).",
    )
    created = _created(sub["SubscriptionCreationTime"])
    instance_created = orders.get("InstanceCreateTime")
    in_place = (
        created is not None
        and instance_created is not None
        and created < instance_created.astimezone(UTC)
    )
    changed = sub["SourceIdsList"] == [INSTANCE]
    yield practice(
        1,
        f"{MAIL_SUBSCRIPTION} was changed, not replaced: created {sub['SubscriptionCreationTime']} "
        f"(before {INSTANCE})",
        changed and in_place,
        "it was deleted and created again: between the two calls RDS sent the DBA team nothing"
        if changed
        else "not checked: the subscription does not cover orders-db yet",
        "Change a live subscription in place: modify_event_subscription, "
        "add_source_identifier_to_subscription, remove_source_identifier_from_subscription.",
    )
