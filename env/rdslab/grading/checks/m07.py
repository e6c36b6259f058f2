"""Checks for module 07 (Aurora): a cluster's writer calls Lambda, on both Aurora engines.

07.1 reads ``describe_db_clusters`` (engine, version, members) and connects with psycopg2 to
the cluster (writer) endpoint it returns. 07.2 reads the cluster's ``AssociatedRoles`` and the
role's policies, asks ``lab.explain_path`` for the writer, looks for the learner's own call in
the writer's invocation log and makes a real ``aws_lambda.invoke(..., 'DryRun')`` through the
cluster endpoint (Lambda authorizes it without running the function). 07.3 behaves like a
tester, as module 06's checks do: it inserts an order inside a transaction that it rolls back
and reads what the function received. 07.4 (Aurora MySQL, a MariaDB server in the lab) reads the
cluster parameter group, the members' parameter status and ``AssociatedRoles``, asks
``lab.mysql.explain_path``, reads ``SHOW GRANTS`` with PyMySQL as the master user, and looks for
the application user's call in the writer's invocation log (``lab.mysql.log``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ... import config
from ...access import policy
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from ..practices import broad_grants
from .m03 import (
    get_role,
    identity_documents,
    invoke_decision,
    trust_decision,
    trusted_principals,
)

ACCOUNT = config.ACCOUNT_ID
REGION = config.REGION
FUNCTION = "order-events"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
ACTION = "lambda:InvokeFunction"
LOG_GROUP = f"/aws/lambda/{FUNCTION}"

PG_CLUSTER = "orders-pg"
PG_WRITER = "orders-pg-1"
PG_ROLE = "orders-pg-lambda"
MASTER = "labadmin"
PASSWORD = "LabPassw0rd-07"
DBNAME = "course"
MIN_AURORA_PG = (11, 9)
ORDER_FIELDS = {"order_id", "customer_email", "total_cents"}

MY_CLUSTER = "feedback-mysql"
MY_WRITER = "feedback-mysql-1"
MY_ROLE = "feedback-mysql-lambda"
MY_GROUP = "feedback-mysql-params"
MY_MASTER = "admin"
APP_USER = "app"
PARAMETER = "aws_default_lambda_role"

CLUSTER_HINT = (
    f"rds.create_db_cluster(DBClusterIdentifier='{PG_CLUSTER}', Engine='aurora-postgresql', "
    f"EngineVersion='16.6', MasterUsername='{MASTER}', MasterUserPassword='{PASSWORD}', "
    f"DatabaseName='{DBNAME}'), then rds.create_db_instance(DBInstanceIdentifier='{PG_WRITER}', "
    f"DBClusterIdentifier='{PG_CLUSTER}', Engine='aurora-postgresql', "
    "DBInstanceClass='db.r6g.large')."
)
DRY_RUN_SQL = (
    "SELECT status_code FROM aws_lambda.invoke("
    "aws_commons.create_lambda_function_arn(%s, %s), '{}'::json, 'DryRun')"
)
TRIGGER_HINT = (
    "CREATE FUNCTION notify_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM "
    "aws_lambda.invoke(aws_commons.create_lambda_function_arn('order-events', 'us-east-1'), "
    "json_build_object(...), invocation_type => 'Event'); RETURN NEW; END $$; then CREATE TRIGGER "
    "orders_notify AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION notify_order()."
)

# pg_trigger.tgtype bits (PostgreSQL's trigger.h)
ROW, BEFORE, INSERT, INSTEAD = 1, 2, 4, 64


# ---------------------------------------------------------------------------- helpers
def cluster_arn(identifier: str) -> str:
    return f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{identifier}"


def _cluster(ctx: Context, identifier: str, hint: str) -> dict[str, Any]:
    rds = ctx.client("rds")
    try:
        return dict(rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0])
    except rds.exceptions.DBClusterNotFoundFault:
        raise LearnerError(
            f"DB cluster `{identifier}` (describe_db_clusters)",
            f"there is no DB cluster named `{identifier}`",
            hint,
        ) from None


def _writer_endpoint(cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster endpoint as an instance-like dict for ``ctx.connect``."""
    return {
        "DBInstanceIdentifier": f"cluster {cluster['DBClusterIdentifier']} (writer endpoint)",
        "Endpoint": {"Address": cluster.get("Endpoint"), "Port": cluster.get("Port")},
    }


def _pg_writer(ctx: Context, hint: str) -> Any:
    cluster = _cluster(ctx, PG_CLUSTER, hint)
    return cluster, ctx.connect(_writer_endpoint(cluster), MASTER, PASSWORD, DBNAME)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text or "")[:2])


def _broad(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What the permission policies grant beyond lambda:InvokeFunction on order-events."""
    problems: list[str] = []
    for label, doc in docs:
        for text in broad_grants(doc, action=ACTION, resource=FUNCTION_ARN):
            problems.append(f"{label}: {text}")
        for st in policy.statements(doc):
            if str(st.get("Effect", "")).lower() != "allow":
                continue
            actions = st.get("Action", [])
            for action in actions if isinstance(actions, list) else [actions]:
                if str(action).lower() != ACTION.lower() and "*" not in str(action):
                    problems.append(f'{label}: "Action": "{action}" is not needed to invoke')
    return sorted(set(problems))


def _trust_criterion(ctx: Context, role: dict[str, Any], source_arn: str) -> Criterion:
    """1 point: the role's trust policy lets rds.amazonaws.com assume it."""
    trust = trust_decision(role, source_arn)
    return Criterion(
        1,
        f"trust policy of `{role['RoleName']}`: may rds.amazonaws.com assume it?",
        trust.allowed,
        f"no: it trusts {', '.join(trusted_principals(role)) or 'nobody'}",
        "'Principal': {'Service': 'rds.amazonaws.com'}, 'Action': 'sts:AssumeRole' "
        "(iam.update_assume_role_policy).",
    )


def _least_privilege(ctx: Context, role_name: str) -> Criterion:
    """1 practice point: the role's policies allow lambda:InvokeFunction on order-events only."""
    hint = (
        f"iam.put_role_policy(RoleName='{role_name}', PolicyName=..., PolicyDocument=...) with one "
        f"statement: 'Action': '{ACTION}', 'Resource': '{FUNCTION_ARN}' (no '*', no AWSLambdaRole)."
    )
    looked = f"least privilege: the policies of `{role_name}` allow only {ACTION} on {FUNCTION}"
    iam = ctx.client("iam")
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        return practice(1, looked, False, f"there is no IAM role `{role_name}`", hint)
    docs = identity_documents(ctx, role_name)
    allowed = invoke_decision(docs, role["Arn"], FUNCTION_ARN).allowed
    wide = _broad(docs) if allowed else []
    wrong = "; ".join(wide) if wide else f"no policy of the role allows {ACTION} on {FUNCTION_ARN}"
    return practice(1, looked, allowed and not wide, wrong, hint)


def _received(ctx: Context, needle: str) -> list[dict[str, Any]]:
    """Events order-events logged as `received {...}` that contain ``needle``."""
    return ctx.logged_events(LOG_GROUP, needle)


def _wait_bridge(ctx: Context, identifier: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = ctx.lab.bridge.log(identifier, limit=50)
        if log.empty or not log.state.isin(["pending", "running"]).any():
            break
        time.sleep(0.05)
    ctx.lab.wait_idle(max(1.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------------- 07.1
@exercise("07.1", points=6, title="An Aurora PostgreSQL cluster, its writer and the extension")
def pg_cluster(ctx: Context) -> Iterator[Criterion]:
    cluster = _cluster(ctx, PG_CLUSTER, CLUSTER_HINT)
    engine, version = cluster.get("Engine"), cluster.get("EngineVersion", "")
    yield Criterion(
        1,
        f"DB cluster `{PG_CLUSTER}`: engine {engine}",
        engine == "aurora-postgresql",
        f"the engine is {engine!r}, not 'aurora-postgresql'",
        "Delete the cluster (and its instances) and create it again with Engine='aurora-postgresql'.",
    )
    yield Criterion(
        1,
        f"its EngineVersion {version!r}: does Aurora PostgreSQL {version} have aws_lambda?",
        engine == "aurora-postgresql" and _version(version) >= MIN_AURORA_PG,
        f"Aurora PostgreSQL has the aws_lambda extension from 11.9 on; {version!r} is older",
        "Create the cluster with a supported version, e.g. EngineVersion='16.6' (or upgrade it with "
        "modify_db_cluster(EngineVersion=..., AllowMajorVersionUpgrade=True, ApplyImmediately=True)).",
    )
    members = cluster.get("DBClusterMembers") or []
    writer = next((m for m in members if m.get("IsClusterWriter")), None)
    status = None
    if writer is not None:
        status = ctx.db_instance(writer["DBInstanceIdentifier"]).get("DBInstanceStatus")
    yield Criterion(
        1,
        "its members (DBClusterMembers): "
        + (
            ", ".join(
                f"{m['DBInstanceIdentifier']} ({'writer' if m.get('IsClusterWriter') else 'reader'})"
                for m in members
            )
            or "none"
        )
        + (f"; writer status {status}" if writer else ""),
        writer is not None
        and writer["DBInstanceIdentifier"] == PG_WRITER
        and status == "available",
        f"`{PG_WRITER}` is not the cluster's available writer"
        if members
        else "the cluster has no instance: no server runs it yet",
        f"rds.create_db_instance(DBInstanceIdentifier='{PG_WRITER}', DBClusterIdentifier="
        f"'{PG_CLUSTER}', Engine='aurora-postgresql', DBInstanceClass='db.r6g.large'), then the "
        "db_instance_available waiter.",
    )
    if writer is None:
        raise LearnerError(
            f"a connection to the cluster endpoint of `{PG_CLUSTER}`",
            "not tried: the cluster has no writer",
            "Create the writer instance first (see above).",
        )
    conn = ctx.connect(_writer_endpoint(cluster), MASTER, PASSWORD, DBNAME)
    yield Criterion(
        1,
        f"a psycopg2 connection to the cluster endpoint {cluster['Endpoint']}:{cluster['Port']} as "
        f"{MASTER}, database {DBNAME}",
        True,
    )
    installed = ctx.query(conn, "SELECT extversion FROM pg_extension WHERE extname = 'aws_lambda'")
    yield Criterion(
        2,
        f"extension aws_lambda in database `{DBNAME}` (pg_extension): "
        + (installed[0][0] if installed else "not installed"),
        bool(installed),
        "the extension is not installed in this database",
        "Connect to the cluster endpoint (Endpoint and Port of describe_db_clusters) and run "
        "CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE.",
    )


# ---------------------------------------------------------------------------------- 07.2
@exercise("07.2", points=8, title="The role on the cluster, and a call from the writer")
def pg_role(ctx: Context) -> Iterator[Criterion]:
    cluster = _cluster(ctx, PG_CLUSTER, "Exercise 07.2 uses the cluster of 07.1: do 07.1 first.")
    role = get_role(
        ctx,
        PG_ROLE,
        f"iam.create_role(RoleName='{PG_ROLE}', AssumeRolePolicyDocument=...) trusted by "
        "rds.amazonaws.com (module 03).",
    )
    yield _trust_criterion(ctx, role, cluster_arn(PG_CLUSTER))
    yield _least_privilege(ctx, PG_ROLE)
    roles = cluster.get("AssociatedRoles") or []
    listed = ", ".join(f"{r['RoleArn']} ({r.get('FeatureName')}, {r.get('Status')})" for r in roles)
    mine = next((r for r in roles if r["RoleArn"] == role["Arn"]), None)
    ok = mine is not None and mine.get("FeatureName") == "Lambda" and mine.get("Status") == "ACTIVE"
    if mine is not None and not ok:
        wrong = f"the role is associated for feature {mine.get('FeatureName')!r}, not 'Lambda'"
        hint = (
            f"rds.remove_role_from_db_cluster(DBClusterIdentifier='{PG_CLUSTER}', RoleArn=..., "
            f"FeatureName={mine.get('FeatureName')!r}), then add it again with FeatureName='Lambda'."
        )
    else:
        wrong = f"`{PG_ROLE}` is not associated with the cluster `{PG_CLUSTER}`"
        hint = (
            f"rds.add_role_to_db_cluster(DBClusterIdentifier='{PG_CLUSTER}', RoleArn='{role['Arn']}', "
            "FeatureName='Lambda'): Aurora's roles belong to the cluster, not to its instances."
        )
    yield Criterion(
        2,
        f"describe_db_clusters('{PG_CLUSTER}') AssociatedRoles: {listed or 'none'}",
        ok,
        wrong,
        hint,
    )
    explanation = ctx.lab.explain_path(PG_WRITER, FUNCTION)
    yield Criterion(
        1,
        f"lab.explain_path('{PG_WRITER}', '{FUNCTION}'): "
        + ("reachable" if explanation.ok else f"FAILS at {explanation.first_missing.step}"),
        explanation.ok,
        explanation.missing or "the path is not complete",
        explanation.hint or "Read the whole explanation: it names the missing step.",
    )
    log = ctx.lab.bridge.log(PG_WRITER, limit=200)
    mine_calls = log[
        log.function_name.astype(str).str.contains(FUNCTION, regex=False)
        & (log.user_name == MASTER)
        & log.state.eq("done")
    ]
    yield Criterion(
        1,
        f"your calls of {FUNCTION} from the writer (lab.bridge.log('{PG_WRITER}')): "
        + (", ".join(sorted(set(mine_calls.invocation_type))) or "none that succeeded"),
        not mine_calls.empty,
        f"no successful aws_lambda.invoke of {FUNCTION} by {MASTER} on the writer",
        "Connect to the cluster endpoint and run SELECT status_code FROM aws_lambda.invoke("
        "aws_commons.create_lambda_function_arn('order-events', 'us-east-1'), '{}'::json, "
        "invocation_type => 'DryRun'): 204 means the call is allowed.",
    )
    import psycopg2

    conn = ctx.connect(_writer_endpoint(cluster), MASTER, PASSWORD, DBNAME)
    try:
        rows = ctx.query(conn, DRY_RUN_SQL, (FUNCTION, REGION))
        status, what = (rows[0][0] if rows else None), ""
    except psycopg2.Error as exc:
        status = None
        what = f"ERROR: {exc.diag.message_primary}" + (
            f" DETAIL: {exc.diag.message_detail}" if exc.diag.message_detail else ""
        )
    yield Criterion(
        2,
        f"the check's own aws_lambda.invoke('{FUNCTION}', ..., 'DryRun') through the cluster "
        f"endpoint: {f'status_code {status}' if status is not None else 'failed'}",
        status == 204,
        f"the writer cannot call {FUNCTION}: {what or status}",
        "Install the extension on the writer (07.1): CREATE EXTENSION IF NOT EXISTS aws_lambda "
        "CASCADE."
        if "does not exist" in what
        else f"Read the DETAIL, then run lab.explain_path('{PG_WRITER}', '{FUNCTION}'): it names "
        "the first missing step.",
    )


# ---------------------------------------------------------------------------------- 07.3
def _order_trigger(ctx: Context, conn: Any) -> tuple[str, str]:
    exists = ctx.query(conn, "SELECT to_regclass('public.orders') IS NOT NULL")[0][0]
    if not exists:
        raise LearnerError(
            f"table public.orders on the writer of `{PG_CLUSTER}`",
            "there is no table `orders`",
            "Create it with the CREATE TABLE of the task, on the cluster endpoint.",
        )
    rows = ctx.query(
        conn,
        """SELECT t.tgname, p.proname, t.tgtype, t.tgenabled
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = 'public.orders'::regclass AND NOT t.tgisinternal
            ORDER BY t.tgname""",
    )
    for name, function, tgtype, enabled in rows:
        if tgtype & ROW and tgtype & INSERT and not tgtype & (BEFORE | INSTEAD) and enabled != "D":
            return name, function
    found = ", ".join(f"{n} (tgtype {t})" for n, _, t, _ in rows)
    raise LearnerError(
        "triggers on public.orders (pg_trigger)",
        f"no enabled AFTER INSERT ... FOR EACH ROW trigger (found: {found or 'none'})",
        TRIGGER_HINT,
    )


@exercise("07.3", points=8, title="An order trigger on the writer")
def pg_trigger(ctx: Context) -> Iterator[Criterion]:
    import psycopg2

    _, conn = _pg_writer(ctx, "Exercise 07.3 uses the cluster of 07.1: do 07.1 and 07.2 first.")
    name, function = _order_trigger(ctx, conn)
    yield Criterion(2, f"trigger {name} on orders: AFTER INSERT FOR EACH ROW -> {function}()", True)
    email = f"check-07-3-{uuid.uuid4().hex[:8]}@example.com"
    card = f"4111-{uuid.uuid4().hex[:4]}"
    log = ctx.lab.bridge.log(PG_WRITER, limit=1)
    before = int(log.id.iloc[-1]) if not log.empty else 0
    conn.autocommit = False
    new_id, error = None, None
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (customer_email, total_cents, card_number) "
                "VALUES (%s, 4200, %s) RETURNING id",
                (email, card),
            )
            new_id = cur.fetchone()[0]
    except psycopg2.Error as exc:
        error = exc.diag.message_primary + (
            f" ({exc.diag.message_detail[:200]})" if exc.diag.message_detail else ""
        )
    finally:
        conn.rollback()
        conn.autocommit = True
    yield Criterion(
        1,
        f"the check's INSERT of an order for {email} (rolled back afterwards)",
        error is None,
        f"the INSERT failed: {error}",
        "Keep the columns of the task (customer_email, total_cents, card_number); insert a row "
        "yourself and read the error (module 05 explains the two kinds).",
    )
    calls = ctx.lab.bridge.log(PG_WRITER, limit=200)
    calls = calls[(calls.id > before) & calls.function_name.astype(str).str.contains(FUNCTION)]
    kinds = sorted(set(calls.invocation_type))
    yield Criterion(
        1,
        f"calls of {FUNCTION} the INSERT made (lab.bridge.log('{PG_WRITER}')): {kinds or 'none'}",
        error is None and kinds == ["Event"],
        "the trigger did not invoke the function with invocation_type 'Event'",
        "Pass invocation_type => 'Event' to aws_lambda.invoke: an order must not wait for, or "
        "fail with, the notification.",
    )
    _wait_bridge(ctx, PG_WRITER)
    events = _received(ctx, email)
    if not events:
        raise LearnerError(
            f"log group {LOG_GROUP}: a `received ...` line for {email}",
            "the function received no event for the check's order",
            "The trigger function must call aws_lambda.invoke for 'order-events' with a payload "
            "that holds the order's customer_email.",
        )
    event = events[-1]
    yield Criterion(
        2,
        f"the event {FUNCTION} received: {json.dumps(event, sort_keys=True)}",
        event.get("order_id") == new_id and event.get("customer_email") == email,
        f"order_id is not the new row's id ({new_id}) or customer_email is missing",
        "json_build_object('order_id', NEW.id, 'customer_email', NEW.customer_email, "
        "'total_cents', NEW.total_cents).",
    )
    raw = json.dumps(event)
    yield practice(
        1,
        "the card number in the event",
        card not in raw and "card_number" not in event,
        "the event carries the card number: it is now in the function's logs",
        "Build the payload with json_build_object and leave card_number out (not row_to_json(NEW)).",
    )
    extra = sorted(set(event) - ORDER_FIELDS)
    yield practice(
        1,
        f"its fields: {sorted(event)}",
        not extra and ORDER_FIELDS <= set(event),
        f"fields the task does not ask for: {extra}"
        if extra
        else f"missing fields: {sorted(ORDER_FIELDS - set(event))}",
        "Send exactly order_id, customer_email and total_cents.",
    )


# ---------------------------------------------------------------------------------- 07.4
def _mysql_connect(ctx: Context, cluster: dict[str, Any]) -> Any:
    try:
        import pymysql
    except ImportError:
        raise LearnerError(
            "the Python MySQL driver",
            "PyMySQL is not installed",
            "pip install pymysql (the Aurora MySQL part of the lab needs it)",
        ) from None
    try:
        conn = pymysql.connect(
            host=cluster.get("Endpoint"),
            port=cluster.get("Port"),
            user=MY_MASTER,
            password=PASSWORD,
            database=DBNAME,
            autocommit=True,
            connect_timeout=5,
        )
    except pymysql.MySQLError as exc:
        raise LearnerError(
            f"a PyMySQL connection to the cluster endpoint of `{MY_CLUSTER}` as {MY_MASTER}",
            f"could not connect: {exc.args[-1]}",
            "Run the setup cell; if you rebooted the writer, wait for it "
            "(rds.get_waiter('db_instance_available')).",
        ) from None
    ctx._connections.append(conn)  # closed with the context
    return conn


@exercise("07.4", points=8, title="Aurora MySQL: parameter, association, AWS_LAMBDA_ACCESS")
def aurora_mysql(ctx: Context) -> Iterator[Criterion]:
    rds = ctx.client("rds")
    cluster = _cluster(
        ctx, MY_CLUSTER, "Run the setup cell at the top: it creates the Aurora MySQL cluster."
    )
    group = cluster.get("DBClusterParameterGroup") or ""
    value = None
    try:
        params = rds.describe_db_cluster_parameters(
            DBClusterParameterGroupName=group, Source="user"
        )["Parameters"]
        value = next(
            (p.get("ParameterValue") for p in params if p["ParameterName"] == PARAMETER), None
        )
    except rds.exceptions.DBParameterGroupNotFoundFault:
        params = []
    iam = ctx.client("iam")
    role_arn = None
    if value:
        try:
            role_arn = iam.get_role(RoleName=value.rsplit("/", 1)[-1])["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role_arn = None
    yield Criterion(
        1,
        f"cluster parameter group of `{MY_CLUSTER}`: {group}; {PARAMETER} = {value or 'not set'}",
        role_arn is not None and role_arn == value and value.endswith(f"/{MY_ROLE}"),
        "the cluster uses a default parameter group, which cannot be changed"
        if group.startswith("default.")
        else f"{PARAMETER} does not name the role `{MY_ROLE}` in the cluster's parameter group",
        f"rds.create_db_cluster_parameter_group(DBClusterParameterGroupName='{MY_GROUP}', "
        "DBParameterGroupFamily='aurora-mysql8.0', Description=...), "
        f"modify_db_cluster_parameter_group(... ParameterName='{PARAMETER}', ParameterValue=<role "
        f"ARN>, ApplyMethod='pending-reboot'), modify_db_cluster(DBClusterIdentifier='{MY_CLUSTER}', "
        f"DBClusterParameterGroupName='{MY_GROUP}').",
    )
    members = cluster.get("DBClusterMembers") or []
    statuses = {m["DBInstanceIdentifier"]: m.get("DBClusterParameterGroupStatus") for m in members}
    yield Criterion(
        1,
        f"the writer's parameter status (DBClusterMembers): {statuses.get(MY_WRITER, 'no writer')}",
        role_arn is not None and statuses.get(MY_WRITER) == "in-sync",
        "the writer still runs without the parameter"
        if role_arn is not None
        else f"not checked: {PARAMETER} is not set yet",
        f"rds.reboot_db_instance(DBInstanceIdentifier='{MY_WRITER}'): a pending-reboot parameter "
        "applies when the writer restarts.",
    )
    roles = cluster.get("AssociatedRoles") or []
    listed = ", ".join(r["RoleArn"] for r in roles)
    associated = any(r["RoleArn"].endswith(f"/{MY_ROLE}") for r in roles)
    yield Criterion(
        1,
        f"describe_db_clusters('{MY_CLUSTER}') AssociatedRoles: {listed or 'none'}",
        associated,
        f"`{MY_ROLE}` is not associated with the cluster",
        f"rds.add_role_to_db_cluster(DBClusterIdentifier='{MY_CLUSTER}', RoleArn=<the role's ARN>): "
        "the parameter names the role, the association lets RDS use it.",
    )
    yield _least_privilege(ctx, MY_ROLE)
    explanation = ctx.lab.mysql.explain_path(MY_WRITER, FUNCTION)
    yield Criterion(
        1,
        f"lab.mysql.explain_path('{MY_WRITER}', '{FUNCTION}'): "
        + ("reachable" if explanation.ok else f"FAILS at {explanation.first_missing.step}"),
        explanation.ok,
        explanation.missing or "the path is not complete",
        explanation.hint or "Read the whole explanation: it names the missing step.",
    )
    conn = _mysql_connect(ctx, cluster)
    with conn.cursor() as cur:
        try:
            cur.execute(f"SHOW GRANTS FOR '{APP_USER}'@'%'")
            grants = [row[0] for row in cur.fetchall()]
        except Exception as exc:  # noqa: BLE001 - no such user: a learner's state
            grants = [f"(none: {exc.args[-1]})"]
    granted = any("AWS_LAMBDA_ACCESS" in g for g in grants)
    yield Criterion(
        1,
        f"SHOW GRANTS FOR '{APP_USER}'@'%': "
        + ("AWS_LAMBDA_ACCESS granted" if granted else "no AWS_LAMBDA_ACCESS"),
        granted,
        f"the user `{APP_USER}` does not have the role AWS_LAMBDA_ACCESS",
        f"As the master user: GRANT AWS_LAMBDA_ACCESS TO '{APP_USER}'@'%'.",
    )
    log = ctx.lab.mysql.log(MY_WRITER, limit=200)
    calls = log[
        log.user_name.astype(str).str.startswith(f"{APP_USER}@")
        & log.function_name.astype(str).str.contains(FUNCTION, regex=False)
    ]
    done = calls[calls.state == "done"]
    yield Criterion(
        2,
        f"calls of {FUNCTION} by `{APP_USER}` (lab.mysql.log('{MY_WRITER}')): "
        f"{len(done)} succeeded, {len(calls) - len(done)} failed",
        not done.empty,
        f"no successful lambda_sync/lambda_async of {FUNCTION} by {APP_USER}"
        + (f"; last error: {calls.error_message.iloc[-1]}" if not calls.empty else ""),
        f"Connect as {APP_USER} (password in the task), SET ROLE AWS_LAMBDA_ACCESS, then "
        f"SELECT lambda_sync('{FUNCTION_ARN}', '{{\"order_id\": 0}}').",
    )
