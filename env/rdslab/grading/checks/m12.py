"""Checks for module 12 (data or service events): the capstone, both flows built from scratch.

The exercise notebook's setup cell creates the Multi-AZ instance ``orders-db`` (database
``shop``, a security group with no outbound rule, the ``orders`` table and the application user
``shop_app``). The learner builds the rest.

12.1 reads Lambda, IAM, RDS and EC2 through boto3, asks ``lab.explain_path`` hop by hop, and makes
a real ``aws_lambda.invoke(..., 'DryRun')`` from SQL. 12.2 inserts a test order **as shop_app**,
waits until the call the database queued has been delivered, reads the instance's invocation log
(``lab.bridge.log``) and the ``ORDER`` line ``fulfil-order`` printed in CloudWatch Logs, then
deletes the test order. 12.3 evaluates the rules that target ``ops-alerts`` against sample RDS
events with the lab's EventBridge matcher, reads the queue policy with the lab's IAM evaluator,
then forces a failover, stops and starts ``orders-db`` and looks for the deliveries to the
queue (``lab.events.deliveries()``). "Practice" criteria withhold points for working but broad
answers: a wildcard in the database's role, outbound traffic beyond TCP 443, an application
user allowed to call Lambda itself, a rule that also fires on other events, a queue policy that
any rule could use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from ... import config
from ...access import policy
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from ..practices import broad_grants, role_policies

ACCOUNT = config.ACCOUNT_ID
REGION = config.REGION
INSTANCE = "orders-db"
INSTANCE_ARN = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{INSTANCE}"
MASTER = "labadmin"
MASTER_PASSWORD = "Orders-Passw0rd-12"
DBNAME = "shop"
APP_USER = "shop_app"
APP_PASSWORD = "ShopApp-Passw0rd-12"
FUNCTION = "fulfil-order"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
HANDLER = "fulfil_order.lambda_handler"
QUEUE = "ops-alerts"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
ACTION = "lambda:InvokeFunction"
PAYLOAD_KEYS = ("order_id", "quantity", "sku")

SETUP_HINT = "Run the setup cell at the top of the notebook first: it creates orders-db."
TRUST_FIX = (
    "iam.update_assume_role_policy(RoleName=..., PolicyDocument=json.dumps({'Version': "
    "'2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': '%s'}, "
    "'Action': 'sts:AssumeRole'}]}))"
)
STOP_ID = "RDS-EVENT-0087"
FAILOVER_IDS = ("RDS-EVENT-0013", "RDS-EVENT-0015", "RDS-EVENT-0049")
NOISE_IDS = ("RDS-EVENT-0088", "RDS-EVENT-0006", "RDS-EVENT-0001", "RDS-EVENT-0002")
OTHER_INSTANCE = "inventory-db"


# ---------------------------------------------------------------------------- helpers
def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    return json.loads(unquote(text) if text.startswith("%7B") else text)


def _trusts(role: dict[str, Any], service: str, source_arn: str | None = None) -> bool:
    values = {"aws:sourceaccount": [ACCOUNT]}
    if source_arn:
        values["aws:sourcearn"] = [source_arn]
    request = policy.Context(
        values=values,
        known=frozenset({"aws:sourcearn", "aws:sourceaccount"}),
        principal={"Service": [service]},
    )
    doc = _document(role.get("AssumeRolePolicyDocument") or "{}")
    return policy.evaluate(
        [policy.Source("trust policy", doc)], "sts:AssumeRole", None, request
    ).allowed


def _principals(role: dict[str, Any]) -> str:
    doc = _document(role.get("AssumeRolePolicyDocument") or "{}")
    found = []
    for st in policy.statements(doc):
        principal = st.get("Principal")
        if isinstance(principal, dict):
            for values in principal.values():
                found += values if isinstance(values, list) else [values]
        elif principal is not None:
            found.append(str(principal))
    return ", ".join(str(p) for p in found) or "nobody"


def _master(ctx: Context) -> tuple[dict[str, Any], Any]:
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    return db, ctx.connect(db, MASTER, MASTER_PASSWORD, DBNAME)


def _one(ctx: Context, conn: Any, sql: str, params: Any = None) -> Any:
    rows = ctx.query(conn, sql, params)
    return rows[0][0] if rows else None


def _short_name(function_name: Any) -> str:
    """``fulfil-order`` from a name, a partial or full ARN, with or without a qualifier."""
    text = str(function_name or "")
    if ":function:" in text:
        text = text.split(":function:", 1)[1]
    return text.split(":", 1)[0]


def _settle(ctx: Context, timeout: float = 15.0) -> None:
    """Wait until the calls orders-db queued are handed to Lambda, and Lambda has run them."""
    lab = ctx.lab
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = lab.bridge.log(INSTANCE, limit=50)
        if log.empty or not log["state"].isin(["pending", "running"]).any():
            break
        time.sleep(0.05)
    lab.events.wait_idle(timeout=max(1.0, deadline - time.monotonic()))
    lab.runtime.wait_idle(timeout=max(1.0, deadline - time.monotonic()))


def _hop_criterion(
    points: float, explanation: Any, steps: tuple[str, ...], title: str
) -> Criterion:
    hops = [h for h in explanation.hops if h.step in steps or (not steps and h.layer == "network")]
    failed = [h for h in hops if h.ok is False]
    skipped = [h for h in hops if h.ok is None and h.step != "Lambda endpoint"]
    looked = f"lab.explain_path('{INSTANCE}', '{FUNCTION}'): {title}"
    if failed:
        hop = failed[0]
        return Criterion(points, f"{looked}: FAIL at {hop.step}", False, hop.detail, hop.hint or "")
    if not hops or (skipped and not explanation.ok):
        first = explanation.first_missing
        where = first.step if first is not None else "an earlier step"
        return Criterion(
            points,
            f"{looked}: not evaluated",
            False,
            f"not evaluated: the path already fails at {where}",
            (first.hint if first is not None and first.hint else "Fix the earlier step first."),
        )
    return Criterion(points, f"{looked}: ok", True)


# ---------------------------------------------------------------------------------- 12.1
@exercise("12.1", points=10, title="Ready for data events: function, IAM, network, extension")
def ready(ctx: Context) -> Iterator[Criterion]:
    lam, iam, ec2 = ctx.client("lambda"), ctx.client("iam"), ctx.client("ec2")
    try:
        config_ = lam.get_function(FunctionName=FUNCTION)["Configuration"]
    except lam.exceptions.ResourceNotFoundException:
        raise LearnerError(
            f"Lambda function `{FUNCTION}` (lambda.get_function)",
            f"there is no function named `{FUNCTION}`",
            "Create its execution role, then `lam.create_function(FunctionName='fulfil-order', "
            "Runtime='python3.12', Handler='fulfil_order.lambda_handler', Role=..., "
            "Code={'ZipFile': zip_code(FULFIL_ORDER_CODE)})` (step 1 of the task).",
        ) from None
    runtime, handler = config_.get("Runtime"), config_.get("Handler")
    yield Criterion(
        1,
        f"function `{FUNCTION}`: Runtime {runtime}, Handler {handler}",
        runtime == "python3.12" and handler == HANDLER,
        f"expected Runtime python3.12 and Handler {HANDLER} (the file in the zip is "
        "fulfil_order.py, the function lambda_handler)",
        "lam.update_function_configuration(FunctionName='fulfil-order', Runtime='python3.12', "
        f"Handler='{HANDLER}'), and deploy FULFIL_ORDER_CODE with zip_code().",
    )
    exec_name = str(config_.get("Role", "")).rsplit("/", 1)[-1]
    try:
        exec_role = iam.get_role(RoleName=exec_name)["Role"]
        exec_ok, exec_trust = _trusts(exec_role, "lambda.amazonaws.com"), _principals(exec_role)
    except iam.exceptions.NoSuchEntityException:
        exec_ok, exec_trust = False, "the role does not exist"
    yield Criterion(
        1,
        f"the function's execution role `{exec_name}` trusts: {exec_trust}",
        exec_ok,
        "Lambda cannot assume the function's execution role: it must trust lambda.amazonaws.com",
        "The execution role is the function's own identity, so it trusts the Lambda service: "
        + TRUST_FIX % "lambda.amazonaws.com",
    )

    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    explanation = ctx.lab.explain_path(INSTANCE, FUNCTION)
    yield _hop_criterion(1, explanation, ("role association",), "a role associated for Lambda")
    trust_hop = _hop_criterion(1, explanation, ("trust policy",), "the role trusts RDS")
    if not trust_hop.passed:
        assoc = next(
            (r for r in db.get("AssociatedRoles") or [] if r.get("FeatureName") == "Lambda"), None
        )
        if assoc is not None:
            try:
                role = iam.get_role(RoleName=assoc["RoleArn"].rsplit("/", 1)[-1])["Role"]
                trust_hop = Criterion(
                    trust_hop.points,
                    trust_hop.looked_at + f" (it trusts: {_principals(role)})",
                    False,
                    trust_hop.wrong,
                    "The role the *database* assumes must trust rds.amazonaws.com, not "
                    "lambda.amazonaws.com (that is the function's execution role): "
                    + TRUST_FIX
                    % "rds.amazonaws.com",
                )
            except iam.exceptions.NoSuchEntityException:
                pass
    yield trust_hop
    yield _hop_criterion(
        1, explanation, ("identity policy",), f"the role allows {ACTION} on {FUNCTION}"
    )
    yield _hop_criterion(1, explanation, (), "the network path from orders-db to Lambda")

    conn = ctx.connect(db, MASTER, MASTER_PASSWORD, DBNAME)
    installed = _one(ctx, conn, "SELECT count(*) FROM pg_extension WHERE extname = 'aws_lambda'")
    if not installed:
        raise LearnerError(
            f"extensions of database `{DBNAME}` on {INSTANCE} (pg_extension)",
            "the extension aws_lambda is not installed in database shop",
            "As labadmin, in database shop: `CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE`.",
        )
    yield Criterion(1, f"extension aws_lambda in database `{DBNAME}`", True)
    import psycopg2

    try:
        status = _one(
            ctx,
            conn,
            "SELECT status_code FROM aws_lambda.invoke(aws_commons.create_lambda_function_arn("
            "%s, %s), '{}'::json, 'DryRun')",
            (FUNCTION, REGION),
        )
        dry, what = status == 204, f"status_code {status}"
    except psycopg2.Error as exc:
        detail = f" DETAIL: {exc.diag.message_detail}" if exc.diag.message_detail else ""
        dry, what = False, f"ERROR: {exc.diag.message_primary}.{detail}"
    yield Criterion(
        1,
        f"SQL on {INSTANCE}: aws_lambda.invoke('{FUNCTION}', ..., 'DryRun'): {what}",
        dry,
        f"the database cannot call {FUNCTION} yet: {what}",
        f"Read the DETAIL, then `lab.explain_path('{INSTANCE}', '{FUNCTION}')` names the first "
        "missing step.",
    )

    assoc = next(
        (r for r in db.get("AssociatedRoles") or [] if r.get("FeatureName") == "Lambda"), None
    )
    problems: list[str] = []
    if assoc is not None:
        role_name = assoc["RoleArn"].rsplit("/", 1)[-1]
        try:
            docs = role_policies(iam, role_name)
        except iam.exceptions.NoSuchEntityException:
            docs = []
        for doc in docs:
            problems += broad_grants(doc, action=ACTION, resource=FUNCTION_ARN)
            for st in policy.statements(doc):
                if str(st.get("Effect", "")).lower() != "allow":
                    continue
                if "NotAction" in st or "NotResource" in st:
                    problems.append("NotAction/NotResource allows far more than one call")
                for action in (
                    st.get("Action", [])
                    if isinstance(st.get("Action"), list)
                    else [st.get("Action")]
                ):
                    if action and str(action).lower() != ACTION.lower() and "*" not in str(action):
                        problems.append(f'"Action": "{action}" is not needed to invoke')
    problems = sorted(set(problems))
    yield practice(
        1,
        f"least privilege of the role orders-db assumes: {ACTION} on the ARN of {FUNCTION} only",
        dry and not problems,
        "; ".join(problems)
        if problems
        else "not checked: the database cannot call the function yet",
        f"One statement: 'Action': '{ACTION}', 'Resource': '{FUNCTION_ARN}'. No '*', no "
        "AWSLambdaRole, no other actions.",
    )

    group_ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups") or []]
    wide: list[str] = []
    if group_ids:
        for group in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]:
            for rule in group.get("IpPermissionsEgress", []):
                proto = rule.get("IpProtocol")
                ports = (rule.get("FromPort"), rule.get("ToPort"))
                if proto != "tcp" or ports != (443, 443):
                    shown = "all traffic" if proto == "-1" else f"{proto} {ports[0]}-{ports[1]}"
                    wide.append(f"{group['GroupId']} allows outbound {shown}")
    yield practice(
        1,
        f"outbound rules of {', '.join(group_ids) or 'no security group'}: only TCP 443",
        explanation.ok and not wide,
        "; ".join(wide) if wide else "not checked: the network path does not work yet",
        "The call to Lambda is HTTPS: allow outbound TCP 443 only "
        "(ec2.revoke_security_group_egress for the wider rule).",
    )


# ---------------------------------------------------------------------------------- 12.2
_TRIGGERS = """
SELECT t.tgname, t.tgtype, t.tgenabled, p.proname, p.prosecdef, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = 'public.orders'::regclass AND NOT t.tgisinternal
"""
TEST_ORDER = {"customer_email": "check-12.2@example.com", "total_cents": 4200, "quantity": 3}


def _received_orders(ctx: Context) -> list[dict[str, Any]]:
    logs = ctx.client("logs")
    try:
        found = logs.filter_log_events(
            logGroupName=f"/aws/lambda/{FUNCTION}", filterPattern="ORDER"
        )["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    out = []
    for event in found:
        text = event.get("message", "")
        if not text.startswith("ORDER "):
            continue
        try:
            out.append(json.loads(text[len("ORDER ") :]))
        except ValueError:
            continue
    return out


@exercise("12.2", points=10, title="The data flow: each new order notifies fulfil-order")
def data_flow(ctx: Context) -> Iterator[Criterion]:
    import psycopg2

    db, conn = _master(ctx)
    triggers = ctx.query(conn, _TRIGGERS)
    # tgtype bits: 1 = FOR EACH ROW, 2 = BEFORE, 4 = INSERT, 64 = INSTEAD OF
    good = [t for t in triggers if t[1] & 1 and t[1] & 4 and not t[1] & (2 | 64) and t[2] != "D"]
    if not good:
        listed = "; ".join(t[5] for t in triggers) or "none"
        raise LearnerError(
            f"triggers on public.orders in database `{DBNAME}` (pg_trigger): {listed}",
            "no enabled AFTER INSERT ... FOR EACH ROW trigger on orders",
            "CREATE TRIGGER ... AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION <your "
            "trigger function>() (as labadmin, in database shop).",
        )
    yield Criterion(1, f"trigger on orders: {good[0][5]}", True)

    sku = f"CHECK-{int(time.time() * 1000) % 10_000_000:07d}"
    mark = ctx.lab.bridge.log(INSTANCE, limit=1)
    last_id = int(mark["id"].iloc[-1]) if not mark.empty else 0
    app = ctx.connect(db, APP_USER, APP_PASSWORD, DBNAME, fallback_word="")
    try:
        try:
            order_id = _one(
                ctx,
                app,
                "INSERT INTO orders (customer_email, sku, quantity, total_cents) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (
                    TEST_ORDER["customer_email"],
                    sku,
                    TEST_ORDER["quantity"],
                    TEST_ORDER["total_cents"],
                ),
            )
        except psycopg2.Error as exc:
            detail = f" DETAIL: {exc.diag.message_detail}" if exc.diag.message_detail else ""
            hint = "Read the error: it is what the application would get."
            if "permission denied" in str(exc):
                hint = (
                    "The trigger function runs with the privileges of the user who inserts. "
                    "Declare it SECURITY DEFINER (owned by labadmin, with SET search_path) so "
                    "that shop_app needs no right on aws_lambda."
                )
            elif "invocationType" in str(exc):
                hint = "Invocation types are case-sensitive: 'Event', 'RequestResponse', 'DryRun'."
            raise LearnerError(
                f"as {APP_USER}: INSERT INTO orders (...) VALUES (..., '{sku}', ...)",
                f"the INSERT failed: {exc.diag.message_primary}.{detail}",
                hint,
            ) from None
        yield Criterion(
            2, f"as {APP_USER}: INSERT INTO orders ... RETURNING id -> order {order_id}", True
        )
        _settle(ctx)
        log = ctx.lab.bridge.log(INSTANCE, limit=200)
        new = log[log["id"] > last_id]
        calls = new[new["function_name"].map(_short_name) == FUNCTION]
        others = sorted({_short_name(f) for f in new["function_name"]} - {FUNCTION})
        yield Criterion(
            1,
            f"lab.bridge.log('{INSTANCE}'): calls made by that INSERT: {len(calls)} to {FUNCTION}"
            + (f", others to {', '.join(others)}" if others else ""),
            len(calls) == 1,
            f"expected exactly one call to {FUNCTION}, got {len(calls)}",
            "One AFTER INSERT ... FOR EACH ROW trigger on orders whose function calls "
            f"aws_lambda.invoke for '{FUNCTION}' once (look for duplicate triggers).",
        )
        if calls.empty:
            raise LearnerError(
                f"what {FUNCTION} received",
                "not checked: the INSERT did not call the function",
                f"The trigger function must call aws_lambda.invoke for '{FUNCTION}'.",
            )
        call = calls.iloc[-1]
        kind = call["invocation_type"]
        yield Criterion(
            2,
            f"its invocation type: {kind} (status {call['status_code']}, {call['state']})",
            kind == "Event" and call["state"] == "done",
            f"{kind}: the INSERT waits for fulfil-order and fails when it fails"
            if kind != "Event"
            else f"the call did not succeed: {call['error_message']} {call['error_detail']}",
            "Pass invocation_type => 'Event' (case-sensitive): the order is saved at once and "
            "fulfilment runs after, outside the transaction.",
        )
        got = [
            e
            for e in _received_orders(ctx)
            if e.get("order_id") == order_id or e.get("sku") == sku or e.get("id") == order_id
        ]
        expected = {"order_id": order_id, "sku": sku, "quantity": TEST_ORDER["quantity"]}
        if not got:
            wrong = f"no ORDER line about order {order_id} in /aws/lambda/{FUNCTION}"
            hint = (
                "Deploy the handler given in the setup (FULFIL_ORDER_CODE prints the event it "
                "receives) and send order_id, sku and quantity."
            )
            ok = False
        else:
            payload = got[-1]
            extra = sorted(set(payload) - set(expected))
            missing = sorted(set(expected) - set(payload))
            differ = sorted(k for k in expected if k in payload and payload[k] != expected[k])
            ok = not (extra or missing or differ)
            parts = []
            if extra:
                parts.append(f"extra keys {', '.join(extra)} (more than fulfilment needs)")
            if missing:
                parts.append(f"missing keys {', '.join(missing)}")
            if differ:
                parts.append(
                    "wrong values "
                    + ", ".join(f"{k}={payload[k]!r} (expected {expected[k]!r})" for k in differ)
                )
            wrong = "; ".join(parts)
            hint = (
                "Build the payload field by field: json_build_object('order_id', NEW.id, 'sku', "
                "NEW.sku, 'quantity', NEW.quantity), not row_to_json(NEW), which also sends the "
                "customer's email and the amount."
            )
        yield Criterion(
            3,
            f"what {FUNCTION} received (its ORDER log line): "
            + (json.dumps(got[-1], sort_keys=True) if got else "nothing"),
            ok,
            wrong,
            hint,
        )
        may_call = _one(
            ctx,
            conn,
            "SELECT has_schema_privilege(%s, 'aws_lambda', 'USAGE') "
            "OR pg_has_role(%s, 'rds_superuser', 'member')",
            (APP_USER, APP_USER),
        )
        yield practice(
            1,
            f"may {APP_USER} call aws_lambda.invoke itself? {'yes' if may_call else 'no'}",
            not may_call,
            f"{APP_USER} can invoke any function the instance's role allows, with any payload",
            "Make the trigger function SECURITY DEFINER (owned by labadmin, with SET search_path "
            f"= pg_catalog, public) and REVOKE USAGE ON SCHEMA aws_lambda FROM {APP_USER}.",
        )
    finally:
        try:
            ctx.query(conn, "DELETE FROM orders WHERE sku = %s", (sku,))
        except psycopg2.Error:
            pass


# ---------------------------------------------------------------------------------- 12.3
def _sample(event_id: str, source_id: str) -> dict[str, Any]:
    """An EventBridge event as RDS would put it on the default bus (never emitted)."""
    from ...events import bridge_eb, catalog
    from ...events.store import RdsEvent

    d = catalog.lookup(event_id)
    ev = RdsEvent(
        event_id=d.event_id,
        source_type=d.source_type,
        source_id=source_id,
        source_arn=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{source_id}",
        message=catalog.render_message(d, name=source_id),
        categories=list(d.categories),
        account=ACCOUNT,
        region=REGION,
    )
    return bridge_eb.envelope(ev)


def _queue_policy_allows(doc: dict[str, Any] | None, service: str, source_arn: str) -> bool:
    if not doc:
        return False
    request = policy.Context(
        values={"aws:sourcearn": [source_arn], "aws:sourceaccount": [ACCOUNT]},
        known=frozenset({"aws:sourcearn", "aws:sourceaccount"}),
        principal={"Service": [service]},
    )
    return policy.evaluate(
        [policy.Source("queue policy", doc)], "sqs:SendMessage", QUEUE_ARN, request
    ).allowed


@exercise("12.3", points=10, title="The service flow: an ops alert on stop or failover")
def service_flow(ctx: Context) -> Iterator[Criterion]:
    from ...events import patterns

    sqs, events, rds = ctx.client("sqs"), ctx.client("events"), ctx.client("rds")
    try:
        queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        raise LearnerError(
            f"SQS queue `{QUEUE}` (sqs.get_queue_url)",
            f"there is no queue named `{QUEUE}`",
            f"sqs.create_queue(QueueName='{QUEUE}')",
        ) from None
    rules = []
    for rule in events.list_rules()["Rules"]:  # the default bus: where RDS puts its events
        arns = [t["Arn"] for t in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]]
        if QUEUE_ARN in arns:
            rules.append(rule)
    enabled = [r for r in rules if r.get("State") == "ENABLED" and r.get("EventPattern")]
    if not enabled:
        raise LearnerError(
            f"EventBridge rules on the default bus with target {QUEUE_ARN}: "
            + (", ".join(f"{r['Name']} ({r.get('State')})" for r in rules) or "none"),
            "no enabled rule with an event pattern delivers to the queue",
            "events.put_rule(Name='orders-db-ops-alerts', EventPattern=json.dumps({...})), then "
            f"events.put_targets(Rule='orders-db-ops-alerts', Targets=[{{'Id': 'ops', 'Arn': '{QUEUE_ARN}'}}]).",
        )
    names = ", ".join(r["Name"] for r in enabled)
    yield Criterion(1, f"enabled rule(s) targeting {QUEUE}: {names}", True)

    rule_patterns = [json.loads(r["EventPattern"]) for r in enabled]

    def alerts(event_id: str, source_id: str = INSTANCE) -> bool:
        event = _sample(event_id, source_id)
        return any(patterns.matches(p, event) for p in rule_patterns)

    yield Criterion(
        1,
        f"their patterns, asked about {STOP_ID} (DB instance stopped) of {INSTANCE}",
        alerts(STOP_ID),
        "no alert when orders-db is stopped",
        f"Match detail.EventID {STOP_ID}. Note its category is 'notification' (shared with "
        "'started' and more), not 'availability'.",
    )
    failover_hits = [i for i in FAILOVER_IDS if alerts(i)]
    yield Criterion(
        1,
        f"their patterns, asked about the Multi-AZ failover events {', '.join(FAILOVER_IDS)}: "
        f"match {', '.join(failover_hits) or 'none'}",
        bool(failover_hits),
        "no alert when orders-db fails over",
        "Match detail.EventCategories ['failover'] or the failover EventIDs.",
    )
    other = [i for i in (STOP_ID, *FAILOVER_IDS) if alerts(i, OTHER_INSTANCE)]
    yield Criterion(
        1,
        f"their patterns, asked about the same events of another instance ({OTHER_INSTANCE})",
        not other,
        f"another instance's {', '.join(other)} would page the orders team too",
        f"Add detail.SourceIdentifier ['{INSTANCE}'] (or resources ['{INSTANCE_ARN}']).",
    )

    raw = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy"])
    doc = json.loads(raw.get("Attributes", {}).get("Policy") or "null")
    allowed = [r for r in enabled if _queue_policy_allows(doc, "events.amazonaws.com", r["Arn"])]
    yield Criterion(
        1,
        f"the queue policy of {QUEUE}: may events.amazonaws.com send for {names}?",
        len(allowed) == len(enabled),
        "no statement lets EventBridge send messages for the rule: the alerts are dropped, "
        "in the lab as on AWS",
        "sqs.set_queue_attributes(QueueUrl=..., Attributes={'Policy': json.dumps({... 'Principal': "
        "{'Service': 'events.amazonaws.com'}, 'Action': 'sqs:SendMessage', 'Resource': "
        f"'{QUEUE_ARN}', 'Condition': {{'ArnEquals': {{'aws:SourceArn': <rule ARN>}}}}}})}})",
    )

    # the real thing: fail over, stop, start; then look at what reached the queue
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    waiter = rds.get_waiter("db_instance_available")
    if db.get("DBInstanceStatus") == "stopped":
        rds.start_db_instance(DBInstanceIdentifier=INSTANCE)
    waiter.wait(DBInstanceIdentifier=INSTANCE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    engine = ctx.lab.events
    engine.wait_idle()
    before = engine.deliveries()
    last = int(before["id"].max()) if not before.empty else 0
    calls_before = len(ctx.lab.bridge.log(INSTANCE, limit=10_000))
    rds.reboot_db_instance(DBInstanceIdentifier=INSTANCE, ForceFailover=True)
    waiter.wait(DBInstanceIdentifier=INSTANCE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    rds.stop_db_instance(DBInstanceIdentifier=INSTANCE)
    rds.start_db_instance(DBInstanceIdentifier=INSTANCE)
    waiter.wait(DBInstanceIdentifier=INSTANCE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    engine.wait_idle(timeout=15)
    rows = engine.deliveries()
    rows = rows[(rows["id"] > last) & (rows["target"] == QUEUE_ARN)]
    delivered = rows[rows["status"] == "Delivered"]
    ids = sorted(set(delivered["event_id"]))
    waiting = int(
        sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    calls_after = len(ctx.lab.bridge.log(INSTANCE, limit=10_000))
    got_stop = STOP_ID in ids
    got_failover = any(i in ids for i in FAILOVER_IDS)
    yield Criterion(
        3,
        f"the check forced a failover, stopped and started {INSTANCE}: alerts delivered to "
        f"{QUEUE}: {', '.join(ids) or 'none'} ({waiting} message(s) waiting in the queue; "
        f"calls from {INSTANCE} to Lambda meanwhile: {calls_after - calls_before})",
        got_stop and got_failover and waiting >= len(delivered),
        "missing: "
        + ", ".join(
            w
            for w, ok in (("the stop alert", got_stop), ("the failover alert", got_failover))
            if not ok
        )
        if not (got_stop and got_failover)
        else "the deliveries are not in the queue any more (did something consume them?)",
        "Check the pattern against the events of lab.events.timeline() and the rule's target; "
        "lab.events.deliveries() shows each delivery and its status.",
    )

    noise = [i for i in NOISE_IDS if alerts(i)]
    yield practice(
        1,
        f"noise: do the patterns also match {', '.join(NOISE_IDS)} of {INSTANCE}? "
        f"{', '.join(noise) or 'no'}",
        got_stop and got_failover and not noise,
        f"the queue also gets {', '.join(noise)}: alerts nobody needs teach people to ignore the ones that matter"
        if noise
        else "not checked: the stop or failover alert does not arrive yet",
        "Match the stop and failover event IDs (or the failover category) only, not every "
        "'notification' or 'availability' event.",
    )
    any_rule = _queue_policy_allows(
        doc, "events.amazonaws.com", f"arn:aws:events:{REGION}:999999999999:rule/some-other-rule"
    )
    others = _queue_policy_allows(doc, "sns.amazonaws.com", enabled[0]["Arn"])
    yield practice(
        1,
        f"the queue policy of {QUEUE}: only EventBridge, only for the alert rule",
        bool(allowed) and not any_rule and not others,
        "not checked: the queue policy does not allow the rule yet"
        if not allowed
        else "any EventBridge rule (of any account) could send to the queue"
        if any_rule
        else "other services than EventBridge may send to the queue",
        "Principal {'Service': 'events.amazonaws.com'} and a Condition "
        "{'ArnEquals': {'aws:SourceArn': <the rule's ARN>}}.",
    )
