"""Checks for module 05 (calling Lambda from SQL): the extension, grants, invoke, timeouts.

Every check connects to the DB instance ``invoke-db`` that the exercise notebook's setup cell
creates. 05.1 connects as ``app_user`` itself and calls Lambda; 05.2 reads the learner's table
and matches it against the instance's invocation log (the bridge log), so a row typed in by hand
does not count; 05.3 reads the learner's evidence table and the same log, where the call the
learner's session gave up on shows up as completed by Lambda.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice

INSTANCE = "invoke-db"
MASTER = "labadmin"
MASTER_PASSWORD = "LabPassw0rd-05"
DBNAME = "course"
APP_USER = "app_user"
APP_PASSWORD = "AppUser-Passw0rd"
INVOKE_SIGNATURES = (
    "aws_lambda.invoke(text, json, text, text, text, json, varchar)",
    "aws_lambda.invoke(text, jsonb, text, text, text, jsonb, varchar)",
    "aws_lambda.invoke(aws_commons._lambda_function_arn_1, json, text, text, json, varchar)",
    "aws_lambda.invoke(aws_commons._lambda_function_arn_1, jsonb, text, text, jsonb, varchar)",
)
SETUP_HINT = "Run the setup cell at the top of the notebook first: it creates `invoke-db`."
EXTENSION_HINT = (
    "As the master user, in database `course`: `CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE` "
    "(exercise 05.1)."
)


def _master(ctx: Context) -> Any:
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    return db, ctx.connect(db, MASTER, MASTER_PASSWORD, DBNAME)


def _one(ctx: Context, conn: Any, sql: str, params: Any = None) -> Any:
    rows = ctx.query(conn, sql, params)
    return rows[0][0] if rows else None


def _extension_installed(ctx: Context, conn: Any) -> bool:
    return bool(_one(ctx, conn, "SELECT count(*) FROM pg_extension WHERE extname = 'aws_lambda'"))


def _columns(ctx: Context, conn: Any, table: str) -> dict[str, str]:
    rows = ctx.query(
        conn,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    )
    return {name: kind for name, kind in rows}


def _bridge_log(ctx: Context, limit: int = 500) -> Any:
    return ctx.lab.bridge.log(INSTANCE, limit=limit)


# ---------------------------------------------------------------------------------- 05.1
@exercise("05.1", points=8, title="Install aws_lambda and let app_user invoke")
def grants(ctx: Context) -> Iterator[Criterion]:
    db, conn = _master(ctx)
    if not _extension_installed(ctx, conn):
        raise LearnerError(
            f"extensions of database `{DBNAME}` on {INSTANCE} (pg_extension)",
            "the extension aws_lambda is not installed in this database",
            EXTENSION_HINT,
        )
    yield Criterion(2, f"extension aws_lambda in database `{DBNAME}` (pg_extension)", True)
    role = ctx.query(
        conn,
        "SELECT rolcanlogin, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s",
        (APP_USER,),
    )
    if not role:
        raise LearnerError(
            f"database role `{APP_USER}` (pg_roles)",
            f"there is no role `{APP_USER}`",
            f"`CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'` as the master user.",
        )
    can_login, is_super, can_create_role = role[0]
    yield Criterion(
        1,
        f"role `{APP_USER}`: LOGIN {can_login}",
        bool(can_login),
        f"`{APP_USER}` cannot log in (NOLOGIN)",
        f"`ALTER ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'`.",
    )
    usage = _one(ctx, conn, "SELECT has_schema_privilege(%s, 'aws_lambda', 'USAGE')", (APP_USER,))
    yield Criterion(
        1,
        f"USAGE on schema aws_lambda for `{APP_USER}` (has_schema_privilege)",
        bool(usage),
        f"`{APP_USER}` has no USAGE on schema aws_lambda: its calls fail with "
        "`permission denied for schema aws_lambda`",
        f"`GRANT USAGE ON SCHEMA aws_lambda TO {APP_USER}` as the master user.",
    )
    missing = [
        sig
        for sig in INVOKE_SIGNATURES
        if not _one(ctx, conn, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (APP_USER, sig))
    ]
    yield Criterion(
        1,
        f"EXECUTE on the four aws_lambda.invoke functions for `{APP_USER}` (has_function_privilege)",
        not missing,
        f"no EXECUTE on {len(missing)} of them (e.g. {missing[0]}): calls fail with "
        "`permission denied for function invoke`"
        if missing
        else "",
        f"`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_lambda TO {APP_USER}` as the master user.",
    )
    try:
        app = ctx.connect(db, APP_USER, APP_PASSWORD, DBNAME)
    except LearnerError as exc:
        yield Criterion(2, exc.looked_at, False, exc.wrong, exc.hint)
        return
    import psycopg2

    try:
        status = _one(
            ctx,
            app,
            """SELECT status_code FROM aws_lambda.invoke('echo', '{"check": "05.1"}'::json)""",
        )
        outcome, wrong = status == 200, f"status_code {status}, not 200"
    except psycopg2.Error as exc:
        status, outcome = None, False
        wrong = f"the call failed: {exc.diag.message_primary} ({exc.diag.message_detail or 'no detail'})"
    yield Criterion(
        2,
        f"as `{APP_USER}`: SELECT status_code FROM aws_lambda.invoke('echo', ...) -> {status}",
        outcome,
        wrong,
        "Both GRANT statements are needed (USAGE on the schema, EXECUTE on its functions); "
        "the instance's IAM role and network path come from the setup cell.",
    )
    in_rds_superuser = _one(
        ctx, conn, "SELECT pg_has_role(%s, 'rds_superuser', 'member')", (APP_USER,)
    )
    public = _one(
        ctx,
        conn,
        """SELECT has_schema_privilege('public', 'aws_lambda', 'USAGE')
                  OR bool_or(a.privilege_type = 'EXECUTE')
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             LEFT JOIN LATERAL aclexplode(p.proacl) a ON a.grantee = 0
            WHERE n.nspname = 'aws_lambda'""",
    )
    broad = [
        what
        for what, flag in (
            ("it is a member of rds_superuser", in_rds_superuser),
            ("it is a superuser", is_super),
            ("it may create roles", can_create_role),
            ("PUBLIC (every user) may call aws_lambda", public),
        )
        if flag
    ]
    yield practice(
        1,
        f"what else `{APP_USER}` and PUBLIC were given",
        not broad,
        "more than the two privileges it needs: " + "; ".join(broad),
        "Grant exactly USAGE on the schema and EXECUTE on its functions, to app_user only: "
        "`REVOKE rds_superuser FROM app_user`, `REVOKE ... FROM PUBLIC`, `ALTER ROLE app_user NOCREATEROLE`.",
    )


# ---------------------------------------------------------------------------------- 05.2
EXPECTED_EVENT = {"course": "rds-lambda-lab", "exercise": "05.2"}


@exercise("05.2", points=7, title="Store a synchronous invoke's result in a table")
def echo_results(ctx: Context) -> Iterator[Criterion]:
    _, conn = _master(ctx)
    columns = _columns(ctx, conn, "echo_results")
    if not columns:
        raise LearnerError(
            f"table public.echo_results in database `{DBNAME}` of {INSTANCE}",
            "there is no table echo_results",
            "CREATE TABLE echo_results (status_code integer, payload jsonb, executed_version text), "
            "as the master user in database `course`.",
        )
    yield Criterion(1, "table public.echo_results", True)
    wanted = {"status_code": "integer", "payload": "jsonb", "executed_version": "text"}
    wrong_types = {k: columns.get(k, "missing") for k, v in wanted.items() if columns.get(k) != v}
    yield Criterion(
        1,
        "its columns: " + ", ".join(f"{k} {columns.get(k, 'missing')}" for k in wanted),
        not wrong_types,
        "expected status_code integer, payload jsonb, executed_version text; got "
        + ", ".join(f"{k} {v}" for k, v in wrong_types.items()),
        "Recreate the table with those column types (payload must be jsonb).",
    )
    if wrong_types:
        raise LearnerError(
            "the rows of echo_results",
            "not checked: the table does not have the three columns",
            "Fix the columns first, then insert the result of the invoke again.",
        )
    rows = ctx.query(conn, "SELECT status_code, payload, executed_version FROM echo_results")
    matching = [
        r
        for r in rows
        if r[0] == 200 and isinstance(r[1], dict) and r[1].get("echo") == EXPECTED_EVENT
    ]
    yield Criterion(
        3,
        f"rows of echo_results: {len(rows)}; with status_code 200 and payload->'echo' = "
        f"{json.dumps(EXPECTED_EVENT)}: {len(matching)}",
        bool(matching) and all(r[2] == "$LATEST" for r in matching),
        "no row holds the result of invoking echo with the payload the task gives"
        if not matching
        else "executed_version is not $LATEST (the unqualified function)",
        "INSERT INTO echo_results SELECT status_code, payload, executed_version FROM "
        'aws_lambda.invoke(\'echo\', \'{"course": "rds-lambda-lab", "exercise": "05.2"}\'::jsonb)',
    )
    log = _bridge_log(ctx)
    calls = log[
        (log.function_name.str.split(":").str[-1] == "echo")
        | (log.function_name.str.endswith("function:echo"))
    ]
    calls = calls[(calls.invocation_type == "RequestResponse") & (calls.state == "done")]
    seen = []
    for response in calls.response:
        try:
            seen.append(json.loads(response))
        except (TypeError, ValueError):
            continue
    stored = [r[1] for r in matching]
    from_lambda = any(payload in seen for payload in stored)
    yield Criterion(
        2,
        f"the instance's invocation log (lab.bridge.log): {len(calls)} synchronous call(s) of echo",
        from_lambda,
        "none of them returned the payload stored in echo_results: the row was not written from "
        "aws_lambda.invoke's result",
        "Fill the table from the invoke itself, in one statement: INSERT INTO echo_results "
        "SELECT status_code, payload, executed_version FROM aws_lambda.invoke(...).",
    )


# ---------------------------------------------------------------------------------- 05.3
@exercise("05.3", points=7, title="Fail fast: a session timeout for a slow function")
def fail_fast(ctx: Context) -> Iterator[Criterion]:
    _, conn = _master(ctx)
    columns = _columns(ctx, conn, "fail_fast")
    wanted = ("timeout_ms", "waited_ms", "error", "detail")
    if not columns or any(c not in columns for c in wanted):
        raise LearnerError(
            f"table public.fail_fast in database `{DBNAME}` of {INSTANCE}",
            "there is no table fail_fast"
            if not columns
            else f"fail_fast lacks column(s) {[c for c in wanted if c not in columns]}",
            "CREATE TABLE fail_fast (timeout_ms integer, waited_ms integer, error text, detail text), "
            "then insert what your timed call measured.",
        )
    rows = ctx.query(
        conn, "SELECT timeout_ms, waited_ms, error, detail FROM fail_fast ORDER BY waited_ms"
    )
    if not rows:
        raise LearnerError(
            "the rows of fail_fast",
            "the table is empty",
            "Insert one row: the request timeout you set, how long the call waited, and the "
            "error's message_primary and message_detail (commit, or use autocommit).",
        )
    timeout_ms, waited_ms, error, detail = rows[0]
    yield Criterion(1, f"fail_fast: {len(rows)} row(s)", True)
    timed_out = error == "invoke API failed" and "Timeout was reached" in (detail or "")
    yield Criterion(
        2,
        f"error {error!r}, detail {detail!r}",
        timed_out,
        "the recorded error is not the timeout of aws_lambda.invoke (`invoke API failed`, DETAIL "
        "`... Timeout was reached`)",
        'Call `slow` with {"seconds": 3} after `SET aws_lambda.request_timeout_ms = ...`, catch '
        "psycopg2.Error and store `e.diag.message_primary` and `e.diag.message_detail`.",
    )
    yield Criterion(
        1,
        f"timeout_ms: {timeout_ms}",
        timeout_ms is not None and 0 < timeout_ms <= 1000,
        "the requirement is a request timeout of at most 1000 ms",
        "`SET aws_lambda.request_timeout_ms = 500` (any value from 1 to 1000) in the session that "
        "calls slow, and store `current_setting('aws_lambda.request_timeout_ms')`.",
    )
    yield Criterion(
        1,
        f"waited_ms: {waited_ms}",
        waited_ms is not None and 0 < waited_ms < 3000,
        "the call waited 3 s or more: with the default request timeout (3000 ms) it would too",
        "Measure around the failing call only (time.monotonic() before and after), in the "
        "session where you SET the timeout.",
    )
    deadline = time.monotonic() + 8.0
    while True:
        log = _bridge_log(ctx)
        calls = log[
            (log.function_name.str.split(":").str[-1] == "slow")
            | log.function_name.str.endswith("function:slow")
        ]
        calls = calls[calls.invocation_type == "RequestResponse"]
        if calls.empty or calls.iloc[-1].state != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    done = calls[(calls.state == "done") & (calls.status_code == 200)]
    yield Criterion(
        2,
        f"the instance's invocation log (lab.bridge.log): {len(calls)} synchronous call(s) of slow, "
        f"{len(done)} completed by Lambda with 200",
        not done.empty and timed_out,
        "no synchronous call of slow that Lambda completed while your session had given up"
        if done.empty
        else "the call completed, but your table records no timeout",
        'Invoke slow synchronously (the default invocation type) with {"seconds": 3}: your session '
        "gives up after the timeout, Lambda finishes the function anyway.",
    )
