"""Checks for module 10 (EventBridge rules): patterns, a Lambda target's permission, an input
transformer.

Each check looks at the rule and its targets (``describe_rule``, ``list_targets_by_rule``), then
makes RDS emit events with identifiers of its own (the lab facility ``lab.events.inject``) and
looks at what reached the learner's target: the SQS queue's messages (10.1, 10.3; the check
empties the queue first and deletes what it reads), or the lab's delivery log and the function's
CloudWatch Logs (10.2). The helpers here are shared with module 11's checks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice

ACCOUNT = "123456789012"
REGION = "us-east-1"
EVENTS = "events.amazonaws.com"
SETUP_HINT = "Run the setup cell at the top of the notebook first."


# ---------------------------------------------------------------------------- shared helpers
def token(prefix: str = "chk") -> str:
    """A unique identifier for the check's own events (so nothing else is mistaken for them)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rule(ctx: Context, name: str, hint: str) -> dict[str, Any]:
    """``describe_rule`` on the default bus, or a LearnerError saying the rule is missing."""
    events = ctx.client("events")
    try:
        found = dict(events.describe_rule(Name=name))
    except events.exceptions.ResourceNotFoundException:
        raise LearnerError(
            f"EventBridge rule `{name}` on the default bus (describe_rule)",
            f"there is no rule named `{name}` on the default event bus",
            hint,
        ) from None
    return found


def pattern_of(found: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(found.get("EventPattern") or "{}"))
    except ValueError:
        return {}


def targets(ctx: Context, name: str) -> list[dict[str, Any]]:
    return list(ctx.client("events").list_targets_by_rule(Rule=name)["Targets"])


def queue(ctx: Context, name: str, hint: str) -> tuple[str, str]:
    """(url, arn) of an SQS queue, or a LearnerError."""
    sqs = ctx.client("sqs")
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise LearnerError(
            f"SQS queue `{name}` (get_queue_url)", f"there is no queue named `{name}`", hint
        ) from None
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def drain(ctx: Context, url: str) -> list[dict[str, Any]]:
    """Every message waiting in the queue (with attributes); each one is deleted once read."""
    sqs = ctx.client("sqs")
    out: list[dict[str, Any]] = []
    for _ in range(100):
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            out.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def settle(ctx: Context, timeout: float = 15) -> None:
    """Wait until the lab has delivered everything in flight (events and async invocations)."""
    ctx.lab.events.wait_idle(timeout)
    runtime = getattr(ctx.lab, "runtime", None)
    if runtime is not None and hasattr(runtime, "wait_idle"):
        runtime.wait_idle()
    ctx.lab.events.wait_idle(timeout)


def statements(policy: Any) -> list[dict[str, Any]]:
    if isinstance(policy, str):
        policy = json.loads(unquote(policy) if policy.startswith("%7B") else policy)
    raw = (policy or {}).get("Statement", [])
    return [raw] if isinstance(raw, dict) else list(raw)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def principals(st: dict[str, Any]) -> list[str]:
    who = st.get("Principal")
    if isinstance(who, dict):
        return [str(p) for p in _as_list(who.get("Service", [])) + _as_list(who.get("AWS", []))]
    return [str(p) for p in _as_list(who)]


def source_arns(st: dict[str, Any]) -> list[str]:
    """The ``aws:SourceArn`` values a statement's Condition requires (any operator)."""
    found: list[str] = []
    for conditions in (st.get("Condition") or {}).values():
        for key, value in (conditions or {}).items():
            if key.lower() == "aws:sourcearn":
                found += [str(v) for v in _as_list(value)]
    return found


def function_policy(ctx: Context, function_name: str) -> list[dict[str, Any]]:
    """The function's resource-based policy statements ([] when it has none)."""
    lam = ctx.client("lambda")
    try:
        return statements(lam.get_policy(FunctionName=function_name)["Policy"])
    except lam.exceptions.ResourceNotFoundException:
        return []


def function_arn(ctx: Context, name: str, hint: str) -> str:
    lam = ctx.client("lambda")
    try:
        return str(lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except lam.exceptions.ResourceNotFoundException:
        raise LearnerError(
            f"Lambda function `{name}` (get_function)", f"there is no function named `{name}`", hint
        ) from None


def queue_policy_problem(ctx: Context, url: str, rule_arn: str) -> str:
    """Why the queue's policy would not let this rule send on AWS ("" when it would)."""
    attrs = ctx.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    text = attrs.get("Attributes", {}).get("Policy")
    if not text:
        return "the queue has no policy: on AWS, EventBridge may not send to it"
    grants = [
        st
        for st in statements(text)
        if st.get("Effect") == "Allow"
        and (EVENTS in principals(st) or "*" in principals(st))
        and any(
            str(a).lower() in ("sqs:sendmessage", "sqs:*", "*") for a in _as_list(st.get("Action"))
        )
    ]
    if not grants:
        return f"no statement lets {EVENTS} call sqs:SendMessage"
    for st in grants:
        if "*" in principals(st):
            return 'a statement allows "Principal": "*" (anyone)'
        if any(str(a) != "sqs:SendMessage" for a in _as_list(st.get("Action"))):
            return f"a statement allows {st.get('Action')} rather than just sqs:SendMessage"
        arns = source_arns(st)
        if not arns:
            return "the statement has no aws:SourceArn condition: any EventBridge rule could send"
        if any(a != rule_arn for a in arns):
            return f"aws:SourceArn is {arns}, not this rule's ARN {rule_arn}"
    return ""


QUEUE_POLICY_HINT = (
    "Set the queue's Policy attribute (sqs.set_queue_attributes) to a statement that allows "
    '{"Service": "events.amazonaws.com"} the action "sqs:SendMessage" on the queue, with '
    '"Condition": {"ArnEquals": {"aws:SourceArn": <the rule ARN>}}.'
)
FAILOVER_PATTERN = (
    '{"source": ["aws.rds"], "detail-type": ["RDS DB Instance Event"], '
    '"detail": {"EventCategories": ["failover"]}}'
)


def rule_basics(found: dict[str, Any], name: str) -> Criterion:
    state = found.get("State")
    pattern = found.get("EventPattern")
    return Criterion(
        1,
        f"rule `{name}`: State {state}, EventPattern {pattern}",
        state == "ENABLED" and bool(pattern),
        "the rule is disabled" if state != "ENABLED" else "the rule has no event pattern",
        f"`events.enable_rule(Name='{name}')`" if state != "ENABLED" else
        f"Create it with `events.put_rule(Name='{name}', EventPattern=json.dumps(...))`.",
    )  # fmt: skip


def event_ids_in(messages: list[dict[str, Any]], marker: str) -> list[tuple[str, str]]:
    """(SourceIdentifier, EventID) of the EventBridge events in ``messages`` that carry ``marker``."""
    out = []
    for m in messages:
        body = m.get("Body", "")
        if marker not in body:
            continue
        try:
            detail = json.loads(body).get("detail") or {}
            out.append((str(detail.get("SourceIdentifier")), str(detail.get("EventID"))))
        except (ValueError, AttributeError):
            out.append(("?", body[:80]))
    return out


# ---------------------------------------------------------------------------------- 10.1
RULE_1 = "instance-failovers"
QUEUE_1 = "failover-events"


@exercise("10.1", points=7, title="A rule for DB instance failovers only")
def failovers_only(ctx: Context) -> Iterator[Criterion]:
    hint = (
        f"`events.put_rule(Name='{RULE_1}', EventPattern=json.dumps(...))` with a pattern on "
        "source, detail-type and detail.EventCategories, then `events.put_targets(...)` with the queue."
    )
    found = rule(ctx, RULE_1, hint)
    yield rule_basics(found, RULE_1)
    url, arn = queue(ctx, QUEUE_1, f"Create the queue: `sqs.create_queue(QueueName='{QUEUE_1}')`.")
    arns = [t.get("Arn") for t in targets(ctx, RULE_1)]
    if arn not in arns:
        raise LearnerError(
            f"targets of `{RULE_1}` (list_targets_by_rule): {arns}",
            f"the queue `{QUEUE_1}` ({arn}) is not a target of the rule",
            f"`events.put_targets(Rule='{RULE_1}', Targets=[{{'Id': 'queue', 'Arn': <queue ARN>}}])`.",
        )
    yield Criterion(1, f"targets of `{RULE_1}`: the queue `{QUEUE_1}`", True)

    drain(ctx, url)
    mark = token()
    db, cluster = f"{mark}-db", f"{mark}-cluster"
    wanted = {(db, "RDS-EVENT-0013"), (db, "RDS-EVENT-0049")}
    for source, event_id in [
        (db, "0013"), (db, "0006"), (db, "0049"), (db, "0087"), (db, "0089"),
        (cluster, "0072"), (cluster, "0071"),
    ]:  # fmt: skip
        ctx.lab.events.inject(source, event_id)
    settle(ctx)
    got = set(event_ids_in(drain(ctx, url), mark))
    shown = ", ".join(f"{s.rsplit('-', 1)[-1]} {e}" for s, e in sorted(got)) or "nothing"
    looked = (
        f"the check emitted instance events 0013, 0006, 0049, 0087, 0089 and cluster failover "
        f"events 0072, 0071; your queue received: {shown}"
    )
    missing = wanted - got
    yield Criterion(
        2,
        looked,
        not missing,
        f"the instance's failover events {sorted(e for _, e in missing)} did not arrive",
        "Match the category, lower case and in an array: "
        f"{FAILOVER_PATTERN}. Strings match exactly and case-sensitively.",
    )
    others = {(s, e) for s, e in got if s == db} - wanted
    yield Criterion(
        1,
        "instance events in other categories (0006 availability, 0087 notification, 0089 low storage)",
        not others,
        f"they arrived too: {sorted(e for _, e in others)}",
        'Filter on detail.EventCategories: ["failover"] (fields in a pattern must all match).',
    )
    clusters = {(s, e) for s, e in got if s == cluster}
    yield Criterion(
        1,
        "cluster failover events (0072, 0071: category failover, detail-type RDS DB Cluster Event)",
        not clusters,
        f"they arrived too: {sorted(e for _, e in clusters)}",
        'Add "detail-type": ["RDS DB Instance Event"] to the pattern.',
    )
    problem = queue_policy_problem(ctx, url, found["Arn"])
    yield practice(
        1,
        f"the policy of queue `{QUEUE_1}` (what AWS needs before EventBridge may send)",
        not problem,
        problem,
        QUEUE_POLICY_HINT,
    )


# ---------------------------------------------------------------------------------- 10.2
RULE_2 = "failovers-to-logger"
LOGGER = "rds-event-logger"


@exercise("10.2", points=7, title="A Lambda target with a least-privilege permission")
def lambda_target(ctx: Context) -> Iterator[Criterion]:
    fn_arn = function_arn(ctx, LOGGER, SETUP_HINT)
    found = rule(
        ctx,
        RULE_2,
        f"`events.put_rule(Name='{RULE_2}', EventPattern=json.dumps(...))`, then put_targets with "
        f"the function's ARN.",
    )
    yield rule_basics(found, RULE_2)
    arns = [t.get("Arn") for t in targets(ctx, RULE_2)]
    if fn_arn not in arns:
        raise LearnerError(
            f"targets of `{RULE_2}` (list_targets_by_rule): {arns}",
            f"the function `{LOGGER}` is not a target of the rule",
            f"`events.put_targets(Rule='{RULE_2}', Targets=[{{'Id': 'logger', 'Arn': '{fn_arn}'}}])`.",
        )
    yield Criterion(1, f"targets of `{RULE_2}`: the function `{LOGGER}`", True)
    grants = [
        st
        for st in function_policy(ctx, LOGGER)
        if st.get("Effect", "Allow") == "Allow" and EVENTS in principals(st)
    ]
    permission_hint = (
        f"`lambda_client.add_permission(FunctionName='{LOGGER}', StatementId='events-{RULE_2}', "
        f"Action='lambda:InvokeFunction', Principal='{EVENTS}', SourceArn=<the rule's ARN>)`."
    )
    yield Criterion(
        1,
        f"the resource-based policy of `{LOGGER}` (get_policy): {len(grants)} statement(s) for {EVENTS}",
        bool(grants),
        f"no statement lets {EVENTS} invoke the function: Lambda refuses every delivery",
        permission_hint,
    )

    mark = token()
    ctx.lab.events.inject(mark, "0049")
    settle(ctx)
    log = ctx.lab.events.deliveries()
    rows = log[
        (log["target"] == fn_arn) & (log["source_id"] == mark) & (log["via"] == found["Arn"])
    ]
    statuses = rows["status"].tolist()
    yield Criterion(
        2,
        f"the check emitted RDS-EVENT-0049 for a DB instance; deliveries of `{RULE_2}` to the "
        f"function (lab.events.deliveries): {statuses or 'none'}",
        statuses == ["Delivered"],
        "no delivery: the rule's pattern does not match a DB instance failover event"
        if not statuses
        else f"the delivery ended {statuses[-1]}: {rows['detail'].iloc[-1]}",
        f"Use the pattern {FAILOVER_PATTERN}, and the permission: " + permission_hint
        if not statuses
        else permission_hint,
    )
    logs = ctx.client("logs")
    try:
        found_logs = logs.filter_log_events(logGroupName=f"/aws/lambda/{LOGGER}")["events"]
    except logs.exceptions.ResourceNotFoundException:
        found_logs = []
    seen = any(mark in e.get("message", "") for e in found_logs)
    yield Criterion(
        1,
        f"CloudWatch Logs of `{LOGGER}`: the handler logged the check's event",
        seen,
        "the handler did not log the check's event (it did not run)",
        "Once the delivery succeeds the handler runs; fix the criteria above first.",
    )
    rule_arn = found["Arn"]
    broad = [st.get("Sid", "?") for st in grants if not source_arns(st)]
    wild = [
        st.get("Sid", "?") for st in grants if any("*" in a or "?" in a for a in source_arns(st))
    ]
    exact = any(source_arns(st) == [rule_arn] for st in grants)
    yield practice(
        1,
        f"the SourceArn of the statements for {EVENTS} (least privilege: this rule only)",
        bool(grants) and not broad and not wild and exact,
        "no statement to look at"
        if not grants
        else f"statement(s) {broad} have no SourceArn: any EventBridge rule could invoke the function"
        if broad
        else f"statement(s) {wild} allow a wildcard SourceArn: many rules could invoke the function"
        if wild
        else f"no statement names this rule's ARN {rule_arn} as its SourceArn",
        permission_hint
        if not grants
        else f"Remove the broad statement (`lambda_client.remove_permission(FunctionName='{LOGGER}', "
        f"StatementId=...)`) and add one with SourceArn='{rule_arn}'.",
    )


# ---------------------------------------------------------------------------------- 10.3
RULE_3 = "failover-pager"
QUEUE_3 = "pager"
SHAPE = '{"instance": <SourceIdentifier>, "event": <EventID>, "at": <Date>, "summary": "<SourceIdentifier>: <Message>"}'


@exercise("10.3", points=6, title="An input transformer that shapes the pager message")
def input_transformer(ctx: Context) -> Iterator[Criterion]:
    rule(
        ctx,
        RULE_3,
        f"`events.put_rule(Name='{RULE_3}', EventPattern=json.dumps(...))` for DB instance "
        "failover events, then put_targets with the queue and an InputTransformer.",
    )
    url, arn = queue(ctx, QUEUE_3, f"Create the queue: `sqs.create_queue(QueueName='{QUEUE_3}')`.")
    target = next((t for t in targets(ctx, RULE_3) if t.get("Arn") == arn), None)
    if target is None:
        raise LearnerError(
            f"targets of `{RULE_3}` (list_targets_by_rule)",
            f"the queue `{QUEUE_3}` is not a target of the rule",
            "`events.put_targets(Rule=..., Targets=[{'Id': 'pager', 'Arn': <queue ARN>, "
            "'InputTransformer': {'InputPathsMap': {...}, 'InputTemplate': '...'}}])`.",
        )
    transformer = target.get("InputTransformer") or {}
    yield Criterion(
        1,
        f"the target `{QUEUE_3}` of `{RULE_3}`: InputTransformer {json.dumps(transformer) if transformer else 'none'}",
        bool(transformer.get("InputTemplate")),
        "the target has no input transformer: the queue gets the whole event",
        "Give the target an InputTransformer with InputPathsMap (JSONPath like $.detail.EventID) "
        "and InputTemplate.",
    )
    drain(ctx, url)
    mark = token()
    ev = ctx.lab.events.inject(mark, "0049")
    settle(ctx)
    bodies = [m["Body"] for m in drain(ctx, url) if mark in m.get("Body", "")]
    if not bodies:
        raise LearnerError(
            f"queue `{QUEUE_3}` after the check emitted RDS-EVENT-0049 for DB instance `{mark}`",
            "no message about the check's event arrived",
            f"The rule must match DB instance failover events ({FAILOVER_PATTERN}) and target the queue.",
        )
    body = bodies[0]
    try:
        doc = json.loads(body)
        ok = isinstance(doc, dict)
    except ValueError:
        doc, ok = None, False
    yield Criterion(
        1,
        f"the delivered message: {body[:300]}",
        ok,
        "it is not a JSON object",
        'Put quotes around placeholders only inside JSON strings: `"summary": "<db>: <msg>"`; '
        "a bare `<db>` is inserted with its own quotes.",
    )
    if not ok:
        yield Criterion(
            4,
            "its fields",
            False,
            "not checked: the message is not JSON",
            "Fix the template first.",
        )
        return
    expected = {
        "instance": mark,
        "event": ev.event_id,
        "at": ev.iso_ms,
        "summary": f"{mark}: {ev.message}",
    }
    keys = sorted(doc)
    yield Criterion(
        1,
        f"its keys: {keys}",
        keys == sorted(expected),
        f"expected exactly {sorted(expected)}",
        f"The template must produce {SHAPE}.",
    )
    wrong = {k: doc.get(k) for k in ("instance", "event", "at") if doc.get(k) != expected[k]}
    yield Criterion(
        2,
        "instance, event and at: detail.SourceIdentifier, detail.EventID and detail.Date",
        not wrong,
        f"wrong value(s): {wrong}; expected { ({k: expected[k] for k in wrong}) }",
        "InputPathsMap: {'db': '$.detail.SourceIdentifier', 'id': '$.detail.EventID', "
        "'date': '$.detail.Date', ...}, and in the template `\"instance\": <db>` (no quotes).",
    )
    yield Criterion(
        1,
        f"summary: {doc.get('summary')!r}",
        doc.get("summary") == expected["summary"],
        f"expected {expected['summary']!r}",
        'Inside a string, placeholders are inserted as text: `"summary": "<db>: <msg>"` with '
        "'msg': '$.detail.Message'.",
    )
