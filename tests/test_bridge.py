"""Data events end to end: CREATE EXTENSION aws_lambda, the dblink bridge, real handler code.

Every test goes through SQL exactly as a learner would, against a real server, with a DB
instance that has the IAM role and network path AWS requires (the default VPC is public with
an internet gateway, as on AWS).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
import zipfile

import boto3
import psycopg2
import pytest

PASSWORD = "Sup3rSecret!"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"

HANDLERS = {
    "echo": """
import json
def handler(event, context):
    print("event", json.dumps(event))
    return {"echo": event, "custom": (context.client_context.custom if context.client_context else None)}
""",
    "boom": """
def handler(event, context):
    raise ValueError("bad input: " + str(event.get("email")))
""",
    "slow": """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 2))
    return "done"
""",
    "to-queue": """
import json, os, boto3
def handler(event, context):
    boto3.client("sqs").send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps(event))
    return {"queued": True}
""",
    "welcome-email": """
import boto3
def handler(event, context):
    ses = boto3.client("ses")
    ses.send_email(
        Source="welcome@example.com",
        Destination={"ToAddresses": [event["email"]]},
        Message={"Subject": {"Data": "Welcome!"},
                 "Body": {"Text": {"Data": "Hello " + event["full_name"]}}},
    )
    return {"sent_to": event["email"]}
""",
    "broken-syntax": "def handler(event, context)\n    return 1\n",
    "not-json": """
def handler(event, context):
    return {1, 2, 3}
""",
}


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(lab):  # type: ignore[no-untyped-def]
    iam, lam, rds, sqs = (boto3.client(s) for s in ("iam", "lambda", "rds", "sqs"))
    ses = boto3.client("ses")
    ses.verify_email_identity(EmailAddress="welcome@example.com")
    queue_url = sqs.create_queue(QueueName="bridge-test-queue")["QueueUrl"]
    exec_role = iam.create_role(
        RoleName="bridge-test-exec",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(  # what the handlers do with the execution role's credentials
        RoleName="bridge-test-exec",
        PolicyName="handlers",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "ses:SendEmail",
                        "Resource": "arn:aws:ses:us-east-1:123456789012:identity/welcome@example.com",
                    },
                    {
                        "Effect": "Allow",
                        "Action": "sqs:SendMessage",
                        "Resource": "arn:aws:sqs:us-east-1:123456789012:bridge-test-queue",
                    },
                ],
            }
        ),
    )
    for name, source in HANDLERS.items():
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=exec_role,
            Handler="app.handler",
            Code={"ZipFile": _zip(source)},
            Timeout=5 if name != "slow" else 10,
            Environment={"Variables": {"QUEUE_URL": queue_url}},
        )
    rds_role = iam.create_role(
        RoleName="bridge-test-rds-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "rds.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="bridge-test-rds-lambda",
        PolicyName="invoke",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:*",
                    }
                ],
            }
        ),
    )
    rds.create_db_instance(
        DBInstanceIdentifier="bridge-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword=PASSWORD,
        DBName="course",
        AllocatedStorage=20,
    )
    rds.add_role_to_db_instance(
        DBInstanceIdentifier="bridge-db", RoleArn=rds_role, FeatureName="Lambda"
    )
    ep = rds.describe_db_instances(DBInstanceIdentifier="bridge-db")["DBInstances"][0]["Endpoint"]
    admin = psycopg2.connect(
        host=ep["Address"], port=ep["Port"], user="labadmin", password=PASSWORD, dbname="course"
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE")
    notices = list(admin.notices)
    yield {
        "ep": ep,
        "admin": admin,
        "queue_url": queue_url,
        "sqs": sqs,
        "lab": lab,
        "notices": notices,
        "lam": lam,
    }
    admin.close()
    rds.delete_db_instance(DBInstanceIdentifier="bridge-db", SkipFinalSnapshot=True)


def connect(env, **kw):  # type: ignore[no-untyped-def]
    params = dict(
        host=env["ep"]["Address"],
        port=env["ep"]["Port"],
        user="labadmin",
        password=PASSWORD,
        dbname="course",
    )
    params.update(kw)
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def one(conn, sql, params=None):  # type: ignore[no-untyped-def]
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def sql_error(conn, sql):  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg2.Error) as err:
        one(conn, sql)
    return err.value


def drain(env) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for _ in range(10):
        msgs = (
            env["sqs"]
            .receive_message(QueueUrl=env["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
            .get("Messages", [])
        )
        if not msgs:
            break
        for m in msgs:
            out.append(json.loads(m["Body"]))
            env["sqs"].delete_message(QueueUrl=env["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    return out


def wait_for_queue(env, n: int, timeout: float = 10) -> list[dict]:  # type: ignore[type-arg]
    got: list[dict] = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < n:
        got += drain(env)
        time.sleep(0.05)
    return got


# --------------------------------------------------------------------------- the extension
def test_create_extension_cascade_prints_rds_notice_and_creates_rds_objects(env) -> None:  # type: ignore[no-untyped-def]
    assert any('installing required extension "aws_commons"' in n for n in env["notices"])
    conn = env["admin"]
    with conn.cursor() as cur:
        cur.execute("SELECT extname FROM pg_extension ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["aws_commons", "aws_lambda", "plpgsql"]
        cur.execute("""SELECT pg_get_function_arguments(p.oid) FROM pg_proc p
                       JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = 'aws_lambda' ORDER BY 1""")
        signatures = [r[0] for r in cur.fetchall()]
    assert signatures == sorted(
        [
            "function_name aws_commons._lambda_function_arn_1, payload json, invocation_type text DEFAULT 'RequestResponse'::text, log_type text DEFAULT 'None'::text, context json DEFAULT NULL::json, qualifier character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text",
            "function_name aws_commons._lambda_function_arn_1, payload jsonb, invocation_type text DEFAULT 'RequestResponse'::text, log_type text DEFAULT 'None'::text, context jsonb DEFAULT NULL::jsonb, qualifier character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text",
            "function_name text, payload json, region text DEFAULT NULL::text, invocation_type text DEFAULT 'RequestResponse'::text, log_type text DEFAULT 'None'::text, context json DEFAULT NULL::json, qualifier character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text",
            "function_name text, payload jsonb, region text DEFAULT NULL::text, invocation_type text DEFAULT 'RequestResponse'::text, log_type text DEFAULT 'None'::text, context jsonb DEFAULT NULL::jsonb, qualifier character varying DEFAULT NULL::character varying, OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text",
        ]
    )
    assert one(
        conn, "SELECT aws_commons.create_lambda_function_arn('my-fn', 'us-west-2')::text"
    ) == ("(my-fn,us-west-2)",)
    assert one(conn, "SELECT (aws_commons.create_lambda_function_arn('my-fn')).region") == (None,)


def test_extension_gucs_have_rds_defaults(env) -> None:  # type: ignore[no-untyped-def]
    conn = env["admin"]
    assert one(conn, "SHOW aws_lambda.connect_timeout_ms") == ("1000",)
    assert one(conn, "SHOW aws_lambda.request_timeout_ms") == ("3000",)
    assert one(conn, "SHOW aws_lambda.endpoint_override") == ("",)


def test_only_rds_superuser_may_invoke_until_granted(env) -> None:  # type: ignore[no-untyped-def]
    admin = env["admin"]
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE app_user LOGIN PASSWORD 'app-user-pw'")
    app = connect(env, user="app_user", password="app-user-pw")
    err = sql_error(app, """SELECT * FROM aws_lambda.invoke('echo', '{}'::json)""")
    assert "permission denied for schema aws_lambda" in err.pgerror
    with admin.cursor() as cur:
        cur.execute("GRANT USAGE ON SCHEMA aws_lambda TO app_user")
    err = sql_error(app, """SELECT * FROM aws_lambda.invoke('echo', '{}'::json)""")
    assert "permission denied for function invoke" in err.pgerror
    with admin.cursor() as cur:
        cur.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_lambda TO app_user")
    assert not [n for n in admin.notices if "no privileges were granted" in n]
    assert one(app, """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""") == (200,)
    err = sql_error(
        app, "SELECT * FROM rdslab_bridge.call('echo', '{}', null, 'Event', 'None', null, null)"
    )
    assert "permission denied" in err.pgerror
    app.close()


# --------------------------------------------------------------------------- invocation types
def test_request_response_returns_the_handlers_result(env) -> None:  # type: ignore[no-untyped-def]
    conn = env["admin"]
    row = one(conn, """SELECT * FROM aws_lambda.invoke('echo', '{"id": 7}'::json)""")
    assert row == (200, {"echo": {"id": 7}, "custom": None}, "$LATEST", None)
    row = one(
        conn,
        """SELECT status_code, payload FROM aws_lambda.invoke(
        aws_commons.create_lambda_function_arn('echo', 'us-east-1'), '{"id": 8}'::jsonb)""",
    )
    assert row == (200, {"echo": {"id": 8}, "custom": None})
    row = one(
        conn,
        """SELECT payload->'custom' FROM aws_lambda.invoke(
        'arn:aws:lambda:us-east-1:123456789012:function:echo', '{}'::json,
        context => '{"custom": {"source": "sql"}}'::json)""",
    )
    assert row == ({"source": "sql"},)


def test_event_returns_202_at_once_and_dryrun_204_without_running(env) -> None:  # type: ignore[no-untyped-def]
    conn = env["admin"]
    drain(env)
    start = time.monotonic()
    assert one(
        conn,
        """SELECT * FROM aws_lambda.invoke('slow', '{"sleep": 2}'::json,
                        invocation_type => 'Event')""",
    ) == (202, None, None, None)
    assert time.monotonic() - start < 1.0
    assert one(
        conn,
        """SELECT * FROM aws_lambda.invoke('to-queue', '{"dry": true}'::json,
                        invocation_type => 'DryRun')""",
    ) == (204, None, None, None)
    one(
        conn,
        """SELECT * FROM aws_lambda.invoke('to-queue', '{"marker": 1}'::json, invocation_type => 'Event')""",
    )
    assert wait_for_queue(env, 1) == [{"marker": 1}]  # and never {"dry": true}


def test_log_type_tail_returns_the_base64_log_tail(env) -> None:  # type: ignore[no-untyped-def]
    row = one(
        env["admin"],
        """SELECT log_result FROM aws_lambda.invoke('echo', '{"t": 1}'::json,
                               log_type => 'Tail')""",
    )
    text = base64.b64decode(row[0]).decode()
    assert re.search(r"START RequestId: \S+ Version: \$LATEST", text)
    assert 'event {"t": 1}' in text
    assert re.search(r"REPORT RequestId: \S+\tDuration: [\d.]+ ms", text)
    assert len(base64.b64decode(row[0])) <= 4096


# --------------------------------------------------------------------------- errors
def test_function_error_is_lambda_invocation_failed_with_rds_detail(env) -> None:  # type: ignore[no-untyped-def]
    err = sql_error(
        env["admin"], """SELECT * FROM aws_lambda.invoke('boom', '{"email": "x@y"}'::json)"""
    )
    assert err.pgerror.startswith("ERROR:  lambda invocation failed")
    detail = err.diag.message_detail
    assert detail.startswith(f'"{ARN.format("boom")}" returned error "Unhandled", details: "')
    details = json.loads(detail.split('details: "', 1)[1][:-2])
    assert details["errorType"] == "ValueError" and details["errorMessage"] == "bad input: x@y"
    assert 'SQL function "invoke" statement 1' in err.pgerror


@pytest.mark.parametrize(
    ("sql", "message", "detail"),
    [
        (
            "SELECT * FROM aws_lambda.invoke('no-such-fn', '{}'::json)",
            "invoke API failed",
            "AWS Lambda client returned 'Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-fn'.",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('echo', '{}'::json, invocation_type => 'event')",
            "invoke API failed",
            "Value 'event' at 'invocationType' failed to satisfy constraint",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('echo', '{}'::json, log_type => 'tail')",
            "invoke API failed",
            "Value 'tail' at 'logType' failed to satisfy constraint",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('arn:aws:lambda:us-west-2:123456789012:function:echo', '{}'::json, 'us-east-1')",
            "invoke API failed",
            "conflicts with the region in the function ARN",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('echo:prod', '{}'::json, qualifier => 'dev')",
            "invoke API failed",
            "The derived qualifier from the function name does not match the specified qualifier.",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('arn:aws:sqs:us-east-1:123456789012:function', '{}'::json)",
            "invoke API failed",
            "failed to satisfy constraint",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('broken-syntax', '{}'::json)",
            "lambda invocation failed",
            "Runtime.UserCodeSyntaxError",
        ),
        (
            "SELECT * FROM aws_lambda.invoke('not-json', '{}'::json)",
            "lambda invocation failed",
            "Runtime.MarshalError",
        ),
    ],
    # ids without '::' (pytest-xdist's loadscope would split the module at a '::' in an id)
    ids=[
        "unknown-function",
        "lower-case-event",
        "lower-case-tail",
        "region-conflict",
        "qualifier-conflict",
        "not-a-lambda-arn",
        "syntax-error",
        "not-serialisable",
    ],
)
def test_bad_input_gets_rds_shaped_errors(env, sql, message, detail) -> None:  # type: ignore[no-untyped-def]
    err = sql_error(env["admin"], sql)
    assert err.diag.message_primary == message
    assert detail in err.diag.message_detail


def test_non_json_payload_is_rejected_by_postgresql_itself(env) -> None:  # type: ignore[no-untyped-def]
    err = sql_error(env["admin"], "SELECT * FROM aws_lambda.invoke('echo', 'not json'::json)")
    assert "invalid input syntax for type json" in err.pgerror


def test_payload_limits(env) -> None:  # type: ignore[no-untyped-def]
    conn = env["admin"]
    big_sync = json.dumps({"blob": "x" * (6 * 1024 * 1024 + 10)})
    err = sql_error(conn, f"SELECT * FROM aws_lambda.invoke('echo', '{big_sync}'::json)")
    assert err.diag.message_primary == "invoke API failed" and "6291456" in err.diag.message_detail
    big_async = json.dumps({"blob": "x" * (1024 * 1024 + 10)})
    err = sql_error(
        conn,
        f"SELECT * FROM aws_lambda.invoke('echo', '{big_async}'::json, invocation_type => 'Event')",
    )
    assert err.diag.message_primary == "invoke API failed" and "1048576" in err.diag.message_detail


def test_handler_timeout_and_request_timeout(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    env["lam"].update_function_configuration(FunctionName="slow", Timeout=1)
    try:
        err = sql_error(conn, """SELECT * FROM aws_lambda.invoke('slow', '{"sleep": 3}'::json)""")
        assert err.diag.message_primary == "lambda invocation failed"
        assert "Task timed out after 1.00 seconds" in err.diag.message_detail
    finally:
        env["lam"].update_function_configuration(FunctionName="slow", Timeout=10)
    with conn.cursor() as cur:
        cur.execute("SET aws_lambda.request_timeout_ms = 300")
    start = time.monotonic()
    err = sql_error(conn, """SELECT * FROM aws_lambda.invoke('slow', '{"sleep": 2}'::json)""")
    assert err.diag.message_primary == "invoke API failed"
    assert "Timeout was reached" in err.diag.message_detail
    assert time.monotonic() - start < 1.9
    conn.close()


def test_statement_timeout_and_cancel_are_honoured(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 300")
    start = time.monotonic()
    err = sql_error(conn, """SELECT * FROM aws_lambda.invoke('slow', '{"sleep": 2}'::json)""")
    assert "canceling statement due to statement timeout" in err.pgerror
    assert time.monotonic() - start < 1.5
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
    threading.Timer(0.3, conn.cancel).start()
    err = sql_error(conn, """SELECT * FROM aws_lambda.invoke('slow', '{"sleep": 2}'::json)""")
    assert "canceling statement due to user request" in err.pgerror
    assert one(conn, """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""") == (200,)
    conn.close()


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_invoke_inside_transactions_of_every_isolation_level(env, isolation) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        cur.execute("SELECT 1")
        for i in range(3):
            cur.execute(
                """SELECT payload FROM aws_lambda.invoke('echo', json_build_object('i', %s))""",
                (i,),
            )
            assert cur.fetchone()[0]["echo"] == {"i": i}
    conn.commit()
    conn.close()


def test_many_sessions_at_once(env) -> None:  # type: ignore[no-untyped-def]
    errors: list[str] = []

    def worker(n: int) -> None:
        conn = connect(env)
        try:
            for i in range(8):
                got = one(
                    conn,
                    "SELECT payload FROM aws_lambda.invoke('echo', json_build_object('n', %s, 'i', %s))",
                    (n, i),
                )
                if got[0]["echo"] != {"n": n, "i": i}:
                    errors.append(f"{n}/{i}: {got}")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_survives_its_loopback_connection_dying(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    assert one(conn, """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""") == (200,)
    server = env["lab"].databases.get("bridge-db")
    admin = server.admin_connect()
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rdslab-bridge'"
        )
        assert cur.rowcount >= 1
    admin.close()
    time.sleep(0.1)
    assert one(conn, """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""") == (200,)
    conn.close()


def test_agent_stopped_fails_fast(env) -> None:  # type: ignore[no-untyped-def]
    bridge = env["lab"].bridge
    bridge.pause()
    try:
        start = time.monotonic()
        err = sql_error(env["admin"], """SELECT * FROM aws_lambda.invoke('echo', '{}'::json)""")
        assert err.diag.message_primary == "invoke API failed"
        assert "Unable to connect to endpoint" in err.diag.message_detail
        assert time.monotonic() - start < 0.5
    finally:
        bridge.resume()
    assert one(
        env["admin"], """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)"""
    ) == (200,)


def test_invocation_log_is_queryable_and_bounded(env) -> None:  # type: ignore[no-untyped-def]
    bridge = env["lab"].bridge
    for _ in range(6):
        one(env["admin"], """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""")
    log = bridge.log("bridge-db", limit=5)
    assert list(log.columns[:5]) == [
        "id",
        "requested_at",
        "database_name",
        "user_name",
        "function_name",
    ]
    assert len(log) == 5 and set(log.state) <= {"done", "failed"}
    bridge.keep_rows, bridge.prune_every = 20, 10
    try:
        for _ in range(40):
            one(env["admin"], """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""")
        server = env["lab"].databases.get("bridge-db")
        admin = server.admin_connect("rdsadmin")
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM lab.invocations")
            assert cur.fetchone()[0] <= 20 + 10 + 2
        admin.close()
    finally:
        bridge.keep_rows, bridge.prune_every = 5000, 500


# --------------------------------------------------------------------------- the canonical scenario
@pytest.fixture
def registration(env):  # type: ignore[no-untyped-def]
    conn = connect(env)
    with conn.cursor() as cur:
        cur.execute("""
            CREATE TABLE registration (id serial PRIMARY KEY, email text NOT NULL, full_name text NOT NULL);
            CREATE FUNCTION welcome_sync() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM aws_lambda.invoke(aws_commons.create_lambda_function_arn('welcome-email', 'us-east-1'),
                                          json_build_object('email', NEW.email, 'full_name', NEW.full_name));
                RETURN NEW;
            END $$;
            CREATE FUNCTION queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM aws_lambda.invoke(aws_commons.create_lambda_function_arn('to-queue', 'us-east-1'),
                                          row_to_json(NEW), invocation_type => 'Event');
                RETURN NEW;
            END $$;
        """)
    yield conn
    with conn.cursor() as cur:
        cur.execute(
            "DROP TABLE registration; DROP FUNCTION welcome_sync(); DROP FUNCTION queue_event()"
        )
    conn.close()


def sent_emails(lab) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    from rdslab.aws import backend

    return [(m.destinations["ToAddresses"][0], m.subject) for m in backend("ses").sent_messages]


def test_registration_insert_sends_a_welcome_email(env, registration) -> None:  # type: ignore[no-untyped-def]
    before = len(sent_emails(env["lab"]))
    with registration.cursor() as cur:
        cur.execute(
            "CREATE TRIGGER welcome AFTER INSERT ON registration FOR EACH ROW EXECUTE FUNCTION welcome_sync()"
        )
        cur.execute(
            "INSERT INTO registration (email, full_name) VALUES ('ada@example.com', 'Ada Lovelace')"
        )
    emails = sent_emails(env["lab"])[before:]
    assert emails == [("ada@example.com", "Welcome!")]


def test_sync_failure_rolls_the_insert_back(env, registration) -> None:  # type: ignore[no-untyped-def]
    with registration.cursor() as cur:
        cur.execute(
            "CREATE TRIGGER welcome AFTER INSERT ON registration FOR EACH ROW EXECUTE FUNCTION welcome_sync()"
        )
    # SES rejects a message without a recipient domain: the handler raises, so the INSERT fails
    err = sql_error(
        registration,
        "INSERT INTO registration (email, full_name) VALUES ('', 'Nobody') RETURNING id",
    )
    assert err.diag.message_primary == "lambda invocation failed"
    assert one(registration, "SELECT count(*) FROM registration") == (0,)


def test_event_fires_even_when_the_transaction_rolls_back(env, registration) -> None:  # type: ignore[no-untyped-def]
    drain(env)
    with registration.cursor() as cur:
        cur.execute(
            "CREATE TRIGGER queue AFTER INSERT ON registration FOR EACH ROW EXECUTE FUNCTION queue_event()"
        )
    registration.autocommit = False
    with registration.cursor() as cur:
        cur.execute(
            "INSERT INTO registration (email, full_name) VALUES ('gone@example.com', 'Rolled Back')"
        )
    registration.rollback()
    registration.autocommit = True
    assert one(registration, "SELECT count(*) FROM registration") == (0,)
    got = wait_for_queue(env, 1)
    assert [m["email"] for m in got] == ["gone@example.com"]


def test_lab_wait_idle_covers_requests_still_in_the_outbox(env) -> None:  # type: ignore[no-untyped-def]
    drain(env)
    one(
        env["admin"],
        """SELECT * FROM aws_lambda.invoke('to-queue', '{"idle": 1}'::json, invocation_type => 'Event')""",
    )
    assert env["lab"].wait_idle(10)
    assert env["lab"].bridge.log("bridge-db", limit=1).state.tolist() == ["done"]
    assert drain(env) == [{"idle": 1}]  # delivered by the time wait_idle returned


# --------------------------------------------------------------------------- the Event fast path
# Once the agent has verified access for a function, an Event invoke is written to the WAL as a
# non-transactional logical message and relayed by the agent (rdslab/bridge_wal.py).
def verdict_lines(env) -> list[str]:  # type: ignore[no-untyped-def]
    """The agent's verdicts as a new session sees them (the server setting)."""
    conn = connect(env)
    try:
        return str(one(conn, "SHOW rdslab.lambda_access")[0]).split("|")
    finally:
        conn.close()


def event(conn, body: dict) -> int:  # type: ignore[no-untyped-def,type-arg]
    sql = "SELECT status_code FROM aws_lambda.invoke('to-queue', %s::json, invocation_type => 'Event')"
    return int(one(conn, sql, (json.dumps(body),))[0])


def outbox_rows(env, like: str) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """(payload, relayed from the WAL, waiting, state) of the outbox rows whose payload matches."""
    admin = env["lab"].databases.get("bridge-db").admin_connect("rdsadmin")
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT payload, wal_lsn IS NOT NULL, waiting, state FROM lab.invocations"
                " WHERE payload LIKE %s ORDER BY id",
                (like,),
            )
            return list(cur.fetchall())
    finally:
        admin.close()


def verified_event(env, conn) -> None:  # type: ignore[no-untyped-def]
    """One Event through the agent, so that the next ones may take the fast path."""
    assert event(conn, {"warm": True}) == 202
    assert env["lab"].wait_idle(10)
    assert "wal\tto-queue\t\t" in verdict_lines(env)
    drain(env)


def test_verified_events_travel_in_the_wal_and_arrive_once(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    drain(env)
    verified_event(env, conn)
    for i in range(3):
        assert event(conn, {"wal": i}) == 202
    conn.autocommit = False  # ... and one whose transaction rolls back
    assert event(conn, {"wal": 3}) == 202
    conn.rollback()
    conn.autocommit = True
    assert env["lab"].wait_idle(10)
    assert sorted(m["wal"] for m in drain(env)) == [0, 1, 2, 3]
    rows = outbox_rows(env, '{"wal": %')
    assert [(r[1], r[2], r[3]) for r in rows] == [(True, False, "done")] * 4
    # the slot that keeps this WAL has moved past it: nothing is kept that was relayed
    admin = env["lab"].databases.get("bridge-db").admin_connect("rdsadmin")
    with admin.cursor() as cur:
        cur.execute(
            "SELECT s.restart_lsn > (SELECT max(wal_lsn) FROM lab.invocations)"
            " FROM pg_replication_slots s WHERE s.slot_name = 'rdslab_bridge'"
        )
        assert cur.fetchone() == (True,)
    admin.close()
    conn.close()


def test_a_revoked_permission_is_seen_by_the_very_next_event(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verified_event(env, conn)
    iam = boto3.client("iam")
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "lambda:InvokeFunction", "Resource": ARN.format("*")}
        ],
    }
    iam.put_role_policy(
        RoleName="bridge-test-rds-lambda", PolicyName="deny", PolicyDocument=json.dumps(deny)
    )
    try:
        assert verdict_lines(env) == ["", ""]  # the agent forgot every verdict at once
        err = sql_error(
            conn,
            """SELECT * FROM aws_lambda.invoke('to-queue', '{"denied": 1}'::json, invocation_type => 'Event')""",
        )
        assert err.diag.message_primary == "invoke API failed"
        assert "explicit deny" in err.diag.message_detail
    finally:
        iam.delete_role_policy(RoleName="bridge-test-rds-lambda", PolicyName="deny")
    assert event(conn, {"allowed": 1}) == 202
    assert [m["allowed"] for m in wait_for_queue(env, 1)] == [1]
    conn.close()


def test_a_deleted_function_is_seen_by_the_very_next_event(env) -> None:  # type: ignore[no-untyped-def]
    lam, conn = env["lam"], connect(env)
    config = lam.get_function(FunctionName="to-queue")["Configuration"]
    code = _zip(HANDLERS["to-queue"])
    lam.create_function(
        FunctionName="short-lived",
        Runtime="python3.12",
        Role=config["Role"],
        Handler="app.handler",
        Code={"ZipFile": code},
        Environment=config["Environment"],
    )
    sql = """SELECT status_code FROM aws_lambda.invoke('short-lived', '{"n": 1}'::json, invocation_type => 'Event')"""
    assert one(conn, sql) == (202,)
    assert env["lab"].wait_idle(10)
    assert "wal\tshort-lived\t\t" in verdict_lines(env)
    lam.delete_function(FunctionName="short-lived")
    err = sql_error(conn, sql)  # not a 202 from a stale verdict: Lambda says the function is gone
    assert err.diag.message_primary == "invoke API failed"
    assert "Function not found" in err.diag.message_detail
    drain(env)
    conn.close()


def test_events_written_while_the_agent_is_away_are_delivered_once_it_is_back(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verified_event(env, conn)
    bridge = env["lab"].bridge
    bridge.pause()
    try:
        assert event(conn, {"away": 1}) == 202  # the message waits in the WAL (the slot keeps it)
        time.sleep(0.2)
        assert drain(env) == []
    finally:
        bridge.resume()
    assert [m["away"] for m in wait_for_queue(env, 1)] == [1]
    bridge.pause()  # a new link starts from the slot, which the relay advanced: nothing twice
    bridge.resume()
    assert event(conn, {"away": 2}) == 202
    assert env["lab"].wait_idle(10)
    assert [m["away"] for m in drain(env)] == [2]
    conn.close()


def test_without_pg_walinspect_verified_events_go_through_the_outbox(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verdicts = env["lab"].bridge.links["bridge-db"].verdicts
    verdicts.transport = "dblink"
    verdicts.clear()
    try:
        for i in range(2):
            assert event(conn, {"dblink": i}) == 202
            assert env["lab"].wait_idle(10)
        assert "dblink\tto-queue\t\t" in verdict_lines(env)
        rows = outbox_rows(env, '{"dblink": %')
        # the first waited for the agent's verdict, the second did not; neither used the WAL
        assert [(r[1], r[2], r[3]) for r in rows] == [(False, True, "done"), (False, False, "done")]
        assert sorted(m["dblink"] for m in drain(env)) == [0, 1]
    finally:
        verdicts.transport = "wal"
        verdicts.clear()
    conn.close()


def test_drop_database_is_not_blocked_by_the_agent(env) -> None:  # type: ignore[no-untyped-def]
    with env["admin"].cursor() as cur:
        cur.execute("CREATE DATABASE scratch")
    scratch = connect(env, dbname="scratch")
    with scratch.cursor() as cur:
        cur.execute("CREATE EXTENSION aws_lambda CASCADE")
    for i in range(2):
        assert event(scratch, {"scratch": i}) == 202
        assert env["lab"].wait_idle(10)
    scratch.close()
    with env["admin"].cursor() as cur:
        cur.execute("DROP DATABASE scratch")  # the agent reads the WAL from rdsadmin only
    assert sorted(m["scratch"] for m in drain(env)) == [0, 1]


def test_a_latin1_database_and_a_stray_message_do_not_stop_the_relay(env) -> None:  # type: ignore[no-untyped-def]
    drain(env)
    with env["admin"].cursor() as cur:
        cur.execute(
            "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    latin = connect(env, dbname="latin")
    with latin.cursor() as cur:
        cur.execute("CREATE EXTENSION aws_lambda CASCADE")
    server = env["lab"].databases.get("bridge-db")
    superuser = server.admin_connect("latin")
    with superuser.cursor() as cur:  # a message with our prefix that the extension did not write
        cur.execute("SELECT pg_logical_emit_message(false, 'rdslab_invoke', 'not a request')")
    superuser.close()
    for i in range(2):  # the second one travels in the WAL, in LATIN1
        assert event(latin, {"name": "Zoë", "i": i}) == 202
        assert env["lab"].wait_idle(10)
    got = sorted(drain(env), key=lambda m: m["i"])
    assert got == [{"name": "Zoë", "i": 0}, {"name": "Zoë", "i": 1}]
    assert outbox_rows(env, '%"i": 1}')[0][1] is True  # (relayed from the WAL)
    latin.close()
    with env["admin"].cursor() as cur:
        cur.execute("DROP DATABASE latin")


def test_a_failing_relay_pass_is_retried_and_loses_nothing(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verified_event(env, conn)
    admin = env["lab"].databases.get("bridge-db").admin_connect("rdsadmin")
    with admin.cursor() as cur:
        cur.execute("DROP EXTENSION pg_walinspect")  # every relay pass now fails
    try:
        assert event(conn, {"retry": 1}) == 202
        time.sleep(0.2)
        assert drain(env) == []
        assert "bridge-db" in env["lab"].bridge.links  # the agent kept its link
        assert one(conn, """SELECT status_code FROM aws_lambda.invoke('echo', '{}'::json)""") == (
            200,
        )
    finally:
        with admin.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_walinspect")
        admin.close()
    assert [m["retry"] for m in wait_for_queue(env, 1)] == [1]
    conn.close()


def test_an_endpoint_override_always_goes_through_the_agent(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verified_event(env, conn)
    with conn.cursor() as cur:
        cur.execute("SET aws_lambda.endpoint_override = 'http://127.0.0.1:9'")  # nothing listens
    err = sql_error(
        conn,
        """SELECT * FROM aws_lambda.invoke('to-queue', '{"override": 1}'::json, invocation_type => 'Event')""",
    )
    assert err.diag.message_primary == "invoke API failed"
    assert "Unable to connect to endpoint" in err.diag.message_detail
    conn.close()


def test_events_in_the_wal_survive_a_reboot(env) -> None:  # type: ignore[no-untyped-def]
    conn = connect(env)
    verified_event(env, conn)
    rds, bridge = boto3.client("rds"), env["lab"].bridge
    bridge.pause()
    try:
        assert event(conn, {"reboot": 1}) == 202
        conn.close()
        env["admin"].close()
        rds.reboot_db_instance(DBInstanceIdentifier="bridge-db")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            db = rds.describe_db_instances(DBInstanceIdentifier="bridge-db")["DBInstances"][0]
            if db["DBInstanceStatus"] == "available":
                break
            time.sleep(0.1)
    finally:
        bridge.resume()
    env["admin"] = connect(env)
    assert [m["reboot"] for m in wait_for_queue(env, 1)] == [1]
