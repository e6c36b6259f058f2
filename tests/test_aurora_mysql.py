"""Aurora MySQL end to end: a real MariaDB server per writer, lambda_sync / lambda_async and
mysql.lambda_async through the lab's agent to real handler code, with Aurora's privilege
(AWS_LAMBDA_ACCESS), IAM (aws_default_lambda_role + associated role) and network rules.

Every test goes through boto3 and SQL exactly as a learner would. Skipped only when this machine
has no MariaDB server (CI installs Debian's mariadb-server).
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import uuid
import zipfile
from typing import Any

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError
from rdslab.mysql import binaries
from test_events_support import service_queue_policy

try:
    binaries.find()
except binaries.MySQLBinariesError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"no MariaDB server on this machine: {exc}", allow_module_level=True)

import pymysql  # noqa: E402  (the lab's driver; after the skip so the reason is the server)

PASSWORD = "Sup3rSecret!"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
ACCESS_DENIED = (
    1227,
    "Access denied; you need (at least one of) the Invoke Lambda privilege(s) for this operation",
)
CREDENTIALS = "Lambda API returned error: Missing Credentials: Cannot instantiate Lambda Client"
NETWORK = "Lambda API returned error: Network Connection. Unable to connect to endpoint"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "rds.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
HANDLERS = {
    "echo": "def handler(event, context):\n    return {'echo': event}\n",
    "boom": "def handler(event, context):\n    raise ValueError('bad input: ' + str(event))\n",
    "slow": "import time\ndef handler(event, context):\n    time.sleep(2)\n    return 'done'\n",
    "to-queue": (
        "import json, os, boto3\ndef handler(event, context):\n"
        "    boto3.client('sqs').send_message(QueueUrl=os.environ['QUEUE_URL'],"
        " MessageBody=json.dumps(event))\n"
    ),
    # the function of AWS's documented trigger example (Aurora user guide, mysql.lambda_async),
    # without its MessageStructure='string', which SNS rejects ('json' is the only value)
    "SNS_publish_message": (
        "import os, boto3\ndef handler(event, context):\n"
        "    return boto3.client('sns').publish(TopicArn=os.environ['TOPIC_ARN'],"
        " Message=event['message'], Subject=event['subject'])\n"
    ),
}


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def role(iam: Any, name: str) -> str:
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.attach_role_policy(
        RoleName=name, PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaRole"
    )
    return arn


def cluster(
    rds: Any,
    name: str,
    role_arn: str | None = None,
    associate: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """An aurora-mysql cluster and its writer; with ``role_arn``, set up as AWS documents."""
    kwargs: dict[str, Any] = dict(
        DBClusterIdentifier=name,
        Engine="aurora-mysql",
        MasterUsername="admin",
        MasterUserPassword=PASSWORD,
        DatabaseName="shop",
    )
    if role_arn:
        rds.create_db_cluster_parameter_group(
            DBClusterParameterGroupName=f"{name}-params",
            DBParameterGroupFamily="aurora-mysql8.0",
            Description="lambda",
        )
        set_role(rds, f"{name}-params", role_arn)
        kwargs["DBClusterParameterGroupName"] = f"{name}-params"
    kwargs.update(extra)
    rds.create_db_cluster(**kwargs)
    if role_arn and associate:
        rds.add_role_to_db_cluster(DBClusterIdentifier=name, RoleArn=role_arn)
    rds.create_db_instance(
        DBInstanceIdentifier=f"{name}-1",
        DBClusterIdentifier=name,
        Engine="aurora-mysql",
        DBInstanceClass="db.r6g.large",
    )
    described = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    return {"host": described["Endpoint"], "port": described["Port"], "name": name}


def set_role(rds: Any, group: str, role_arn: str, method: str = "pending-reboot") -> None:
    rds.modify_db_cluster_parameter_group(
        DBClusterParameterGroupName=group,
        Parameters=[
            {
                "ParameterName": "aws_default_lambda_role",
                "ParameterValue": role_arn,
                "ApplyMethod": method,
            }
        ],
    )


def drop_cluster(rds: Any, name: str) -> None:
    try:
        rds.delete_db_instance(DBInstanceIdentifier=f"{name}-1", SkipFinalSnapshot=True)
        rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)
    except ClientError:
        pass


def connect(ep: dict[str, Any], user: str = "admin", password: str = PASSWORD, **kw: Any) -> Any:
    return pymysql.connect(
        host=ep["host"],
        port=ep["port"],
        user=user,
        password=password,
        database=kw.pop("database", "shop"),
        autocommit=True,
        connect_timeout=5,
        **kw,
    )


def one(conn: Any, sql: str, args: Any = None) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def sql_error(conn: Any, sql: str, args: Any = None) -> tuple[int, str]:
    with pytest.raises(pymysql.MySQLError) as err:
        one(conn, sql, args)
    return err.value.args[0], err.value.args[1]


def sync(conn: Any, fn: str, payload: Any) -> Any:
    (raw,) = one(conn, "SELECT lambda_sync(%s, %s)", (ARN.format(fn), json.dumps(payload)))
    return json.loads(raw)


@pytest.fixture(scope="module")
def env(lab: Any) -> Any:
    iam, lam, rds, sqs, sns = (boto3.client(s) for s in ("iam", "lambda", "rds", "sqs", "sns"))
    queue = sqs.create_queue(QueueName="amy-queue")["QueueUrl"]
    topic = sns.create_topic(Name="Sample_Topic")["TopicArn"]
    topic_queue = sqs.create_queue(QueueName="amy-topic")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=topic_queue, AttributeNames=["QueueArn"])
    sqs.set_queue_attributes(
        QueueUrl=topic_queue,
        Attributes={"Policy": service_queue_policy(queue_arn["Attributes"]["QueueArn"])},
    )
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    exec_role = iam.create_role(
        RoleName="amy-exec",
        AssumeRolePolicyDocument=json.dumps(
            {
                **TRUST,
                "Statement": [
                    {**TRUST["Statement"][0], "Principal": {"Service": "lambda.amazonaws.com"}}
                ],
            }
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(  # what the handlers do with the execution role's credentials
        RoleName="amy-exec",
        PolicyName="handlers",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"},
                    {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic},
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
            Timeout=10,
            Environment={"Variables": {"QUEUE_URL": queue, "TOPIC_ARN": topic}},
        )
    rds_role = role(iam, "amy-rds-lambda")
    ep = cluster(rds, "amy", rds_role)
    admin = connect(ep)
    one(admin, "SET ROLE AWS_LAMBDA_ACCESS")
    yield {
        "lab": lab,
        "rds": rds,
        "iam": iam,
        "ec2": boto3.client("ec2"),
        "sqs": sqs,
        "queue": queue,
        "topic_queue": topic_queue,
        "ep": ep,
        "admin": admin,
        "role": rds_role,
    }
    admin.close()
    drop_cluster(rds, "amy")


def messages(env: Any, queue: str, n: int, timeout: float = 10) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < n:
        for m in (
            env["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        ):
            got.append(json.loads(m["Body"]))
            env["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        time.sleep(0.05)
    return got


# --------------------------------------------------------------------------- the server
def test_writer_is_a_real_mariadb_server_behind_the_cluster_endpoint(env: Any) -> None:
    rds, ep = env["rds"], env["ep"]
    described = rds.describe_db_clusters(DBClusterIdentifier="amy")["DBClusters"][0]
    assert described["EngineVersion"] == "8.0.mysql_aurora.3.08.0"
    assert described["DBClusterMembers"][0]["DBClusterParameterGroupStatus"] == "in-sync"
    instance = rds.describe_db_instances(DBInstanceIdentifier="amy-1")["DBInstances"][0]
    assert instance["DBInstanceStatus"] == "available"
    assert instance["Endpoint"] == {
        "Address": "127.0.0.1",
        "Port": ep["port"],
        **{k: v for k, v in instance["Endpoint"].items() if k not in {"Address", "Port"}},
    }
    conn = connect(ep)
    assert one(conn, "SELECT CURRENT_USER(), DATABASE(), aurora_version()") == (
        "admin@%",
        "shop",
        "3.08.0",
    )
    assert "MariaDB" in one(conn, "SELECT VERSION()")[0]
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        connect(ep, password="wrong-password")
    # RDS keeps its own database: the outbox is out of the learner's reach
    errno, _ = sql_error(conn, "SELECT * FROM rdsadmin.lambda_requests")
    assert errno == 1142
    errno, _ = sql_error(conn, "GRANT SELECT ON rdsadmin.* TO 'admin'@'%'")
    assert errno == 1044
    server = env["lab"].mysql.get("amy-1")
    proc = psutil.Process(server.pid)
    if os.geteuid() == 0:
        assert proc.uids().real != 0, "MariaDB must not run as root"
    listening = {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}
    conn.close()


# --------------------------------------------------------------------------- invocations
def test_lambda_sync_returns_the_functions_result(env: Any) -> None:
    assert sync(env["admin"], "echo", {"operation": "ping"}) == {"echo": {"operation": "ping"}}
    start = time.monotonic()
    for i in range(5):
        assert sync(env["admin"], "echo", {"i": i}) == {"echo": {"i": i}}
    assert time.monotonic() - start < 2.0


def test_the_privilege_is_the_aws_lambda_access_role_and_it_must_be_active(env: Any) -> None:
    admin = env["admin"]
    one(admin, "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw-123'")
    one(admin, "GRANT SELECT, INSERT ON shop.* TO 'app'@'%'")
    app = connect(env["ep"], user="app", password="app-pw-123")
    call = "SELECT lambda_sync(%s, '{}')"
    assert sql_error(app, call, (ARN.format("echo"),)) == ACCESS_DENIED
    one(admin, "GRANT AWS_LAMBDA_ACCESS TO 'app'@'%'")
    assert sql_error(app, call, (ARN.format("echo"),)) == ACCESS_DENIED  # granted, not active
    one(app, "SET ROLE AWS_LAMBDA_ACCESS")
    assert json.loads(one(app, call, (ARN.format("echo"),))[0]) == {"echo": {}}
    one(app, "SET ROLE NONE")
    assert sql_error(app, "SELECT lambda_async(%s, '{}')", (ARN.format("echo"),)) == ACCESS_DENIED
    errno, message = sql_error(app, "CALL mysql.lambda_async(%s, '{}')", (ARN.format("echo"),))
    assert errno == 1370 and "mysql.lambda_async" in message  # EXECUTE on it, as documented
    app.close()


def test_lambda_async_fires_even_when_the_transaction_rolls_back(env: Any) -> None:
    conn = connect(env["ep"])
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    one(conn, "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item TEXT) ENGINE=InnoDB")
    one(
        conn,
        "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW "
        f"SET @r = lambda_async('{ARN.format('to-queue')}', JSON_OBJECT('item', NEW.item))",
    )
    conn.begin()
    one(conn, "INSERT INTO orders (item) VALUES ('gone')")
    assert one(conn, "SELECT @r") == (None,)
    conn.rollback()
    assert one(conn, "SELECT COUNT(*) FROM orders") == (0,)
    assert messages(env, env["queue"], 1) == [{"item": "gone"}]
    one(conn, "DROP TABLE orders")
    conn.close()


def test_a_failing_lambda_sync_aborts_the_insert_of_its_trigger(env: Any) -> None:
    conn = connect(env["ep"])
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    one(conn, "CREATE TABLE signups (id INT AUTO_INCREMENT PRIMARY KEY, email TEXT)")
    one(
        conn,
        "CREATE TRIGGER signups_ai AFTER INSERT ON signups FOR EACH ROW "
        f"SET @r = lambda_sync('{ARN.format('boom')}', JSON_OBJECT('email', NEW.email))",
    )
    errno, message = sql_error(conn, "INSERT INTO signups (email) VALUES ('x@y')")
    assert errno == 1873
    assert message.startswith("Lambda function returned error: Unhandled. {")
    assert "bad input" in message and "ValueError" in message
    assert one(conn, "SELECT COUNT(*) FROM signups") == (0,)
    one(conn, "DROP TABLE signups")
    conn.close()


@pytest.mark.parametrize(
    ("function", "payload", "message"),
    [
        ("no-such-fn", "{}", "Lambda API returned error: Resource Not Found. Function not found"),
        ("echo", "not json", "Lambda API returned error: Invalid Request Content."),
        ("arn:aws:sqs:us-east-1:123456789012:q", "{}", "Lambda API returned error: Validation."),
    ],
)
def test_api_errors_keep_aurora_s_errno_and_wording(
    env: Any, function: str, payload: str, message: str
) -> None:
    target = function if function.startswith("arn:") else ARN.format(function)
    errno, text = sql_error(env["admin"], "SELECT lambda_sync(%s, %s)", (target, payload))
    assert errno == 1873 and text.startswith(message), text


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_lambda_sync_inside_transactions_of_every_isolation_level(env: Any, isolation: str) -> None:
    conn = connect(env["ep"])
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    one(conn, f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")
    conn.begin()
    one(conn, "SELECT COUNT(*) FROM information_schema.TABLES")
    for i in range(3):
        assert sync(conn, "echo", {"i": i}) == {"echo": {"i": i}}
    conn.commit()
    conn.close()


def test_statement_timeout_and_kill_query_interrupt_the_wait(env: Any) -> None:
    conn = connect(env["ep"])
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    one(conn, "SET SESSION max_statement_time = 0.3")
    start = time.monotonic()
    errno, message = sql_error(conn, "SELECT lambda_sync(%s, '{}')", (ARN.format("slow"),))
    assert errno == 1969 and "max_statement_time" in message
    assert time.monotonic() - start < 1.5
    one(conn, "SET SESSION max_statement_time = 0")
    assert sync(conn, "echo", {"after": True}) == {"echo": {"after": True}}
    conn.close()


def test_many_sessions_at_once(env: Any) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        conn = connect(env["ep"])
        try:
            one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
            for i in range(5):
                if sync(conn, "echo", {"n": n, "i": i}) != {"echo": {"n": n, "i": i}}:
                    errors.append(f"{n}/{i}")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_the_documented_trigger_example_publishes_through_lambda(env: Any) -> None:
    """AWS's example, verbatim but for the region: Customer_Feedback AFTER INSERT ->
    SNS_Publish_Message -> mysql.lambda_async -> the Lambda function -> SNS."""
    conn = connect(env["ep"])
    one(conn, "DROP PROCEDURE IF EXISTS SNS_Publish_Message")
    one(
        conn,
        """CREATE PROCEDURE SNS_Publish_Message (IN subject VARCHAR(255),
                                      IN message TEXT) LANGUAGE SQL
BEGIN
  CALL mysql.lambda_async('arn:aws:lambda:us-east-1:123456789012:function:SNS_publish_message',
     CONCAT('{ "subject" : "', subject,
            '", "message" : "', message, '" }')
     );
END""",
    )
    one(
        conn,
        """CREATE TABLE `Customer_Feedback` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `customer_name` varchar(255) NOT NULL,
  `customer_feedback` varchar(1024) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
    )
    one(
        conn,
        """CREATE TRIGGER TR_Customer_Feedback_AI
  AFTER INSERT ON Customer_Feedback
  FOR EACH ROW
BEGIN
  SELECT CONCAT('New customer feedback from ', NEW.customer_name), NEW.customer_feedback INTO @subject, @feedback;
  CALL SNS_Publish_Message(@subject, @feedback);
END""",
    )
    one(
        conn,
        "insert into Customer_Feedback (customer_name, customer_feedback) "
        "VALUES ('Sample Customer', 'Good job guys!')",
    )
    (note,) = messages(env, env["topic_queue"], 1)
    assert note["Subject"] == "New customer feedback from Sample Customer"
    assert note["Message"] == "Good job guys!"
    # Aurora MySQL v3 has no mysql.lambda_async: the lab keeps it, and says so
    with conn.cursor() as cur:
        cur.execute("CALL mysql.lambda_async(%s, '{}')", (ARN.format("echo"),))
        cur.execute("SHOW WARNINGS")
        warnings = [w[2] for w in cur.fetchall()]
    assert any("Aurora MySQL version 3 does not have it" in w for w in warnings), warnings
    conn.close()


def test_a_new_database_gets_the_native_functions(env: Any) -> None:
    conn = connect(env["ep"])
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    one(conn, "CREATE DATABASE reports")
    one(conn, "USE reports")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = one(
            conn,
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'reports'",
        )
        if found == (3,):
            break
        time.sleep(0.01)
    assert sync(conn, "echo", {"db": "reports"}) == {"echo": {"db": "reports"}}
    one(conn, "DROP DATABASE reports")
    conn.close()


def test_the_agent_away_fails_fast_and_the_log_is_kept(env: Any) -> None:
    agent = env["lab"].mysql.agent
    agent.pause()
    try:
        start = time.monotonic()
        errno, message = sql_error(
            env["admin"], "SELECT lambda_sync(%s, '{}')", (ARN.format("echo"),)
        )
        assert (errno, message) == (1873, NETWORK)
        assert time.monotonic() - start < 0.5
    finally:
        agent.resume()
    one(env["admin"], "SELECT 1")  # the session survives
    assert sync(env["admin"], "echo", {}) == {"echo": {}}
    one(env["admin"], "SELECT lambda_async(%s, '{}')", (ARN.format("echo"),))
    assert env["lab"].mysql.wait_idle(5)
    log = env["lab"].mysql.log("amy-1", limit=5)
    assert len(log) == 5 and list(log.columns[:5]) == [
        "id",
        "requested_at",
        "database_name",
        "user_name",
        "function_name",
    ]
    assert set(log.state) <= {"done", "failed"}


# --------------------------------------------------------------------------- IAM and network
def test_the_role_needs_the_cluster_parameter_applied_and_the_association(env: Any) -> None:
    rds, name = env["rds"], f"amy-iam-{uuid.uuid4().hex[:4]}"
    role_arn = role(env["iam"], f"{name}-role")
    ep = cluster(rds, name)  # no aws_default_lambda_role, no associated role
    conn = connect(ep)
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    call = ("SELECT lambda_sync(%s, '{}')", (ARN.format("echo"),))
    assert sql_error(conn, *call) == (1873, CREDENTIALS)
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=f"{name}-params",
        DBParameterGroupFamily="aurora-mysql8.0",
        Description="lambda",
    )
    set_role(rds, f"{name}-params", role_arn)
    rds.modify_db_cluster(DBClusterIdentifier=name, DBClusterParameterGroupName=f"{name}-params")
    members = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0][
        "DBClusterMembers"
    ]
    assert members[0]["DBClusterParameterGroupStatus"] == "pending-reboot"
    assert sql_error(conn, *call) == (1873, CREDENTIALS)  # not applied yet
    explanation = env["lab"].mysql.explain_path(f"{name}-1", "echo")
    assert "pending-reboot" in explanation.missing
    assert (
        rds.reboot_db_instance(DBInstanceIdentifier=f"{name}-1")["DBInstance"]["DBInstanceStatus"]
        == "rebooting"
    )
    conn = connect(ep)
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    assert sql_error(conn, *call) == (1873, CREDENTIALS)  # applied, but not associated
    assert "not associated" in env["lab"].mysql.explain_path(f"{name}-1", "echo").missing
    rds.add_role_to_db_cluster(DBClusterIdentifier=name, RoleArn=role_arn)
    assert json.loads(one(conn, *call)[0]) == {"echo": {}}
    env["iam"].detach_role_policy(
        RoleName=f"{name}-role", PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaRole"
    )
    errno, message = sql_error(conn, *call)
    assert errno == 1873 and message.startswith("Lambda API returned error: Access Denied. User: ")
    assert "is not authorized to perform: lambda:InvokeFunction" in message
    # the parameter is dynamic: ApplyMethod='immediate' takes effect without a reboot
    set_role(rds, f"{name}-params", "arn:aws:iam::123456789012:role/other", "immediate")
    members = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0][
        "DBClusterMembers"
    ]
    assert members[0]["DBClusterParameterGroupStatus"] == "in-sync"
    assert sql_error(conn, *call) == (1873, CREDENTIALS)
    conn.close()
    drop_cluster(rds, name)


def test_no_network_path_to_lambda(env: Any) -> None:
    ec2, rds, name = env["ec2"], env["rds"], f"amy-net-{uuid.uuid4().hex[:4]}"
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName=f"{name}-subnets", DBSubnetGroupDescription="private", SubnetIds=subnets
    )
    ep = cluster(rds, name, env["role"], DBSubnetGroupName=f"{name}-subnets")
    conn = connect(ep)
    one(conn, "SET ROLE AWS_LAMBDA_ACCESS")
    env["lab"].mysql.agent.connect_timeout = 0.05
    try:
        assert sql_error(conn, "SELECT lambda_async(%s, '{}')", (ARN.format("echo"),)) == (
            1873,
            NETWORK,
        )
    finally:
        env["lab"].mysql.agent.connect_timeout = 1.0
    assert env["lab"].mysql.explain_path(f"{name}-1", "echo").verdict.kind == "network"
    conn.close()
    drop_cluster(rds, name)


# --------------------------------------------------------------------------- lifecycle
def test_reboot_stop_start_and_delete(env: Any) -> None:
    rds, lab, name = env["rds"], env["lab"], f"amy-life-{uuid.uuid4().hex[:4]}"
    ep = cluster(rds, name)
    conn = connect(ep)
    one(conn, "CREATE TABLE kept (v INT)")
    one(conn, "INSERT INTO kept VALUES (42)")
    pid = lab.mysql.get(f"{name}-1").pid
    rds.reboot_db_instance(DBInstanceIdentifier=f"{name}-1")
    with pytest.raises(pymysql.err.OperationalError):
        one(conn, "SELECT 1")
    assert lab.mysql.get(f"{name}-1").pid != pid
    with pytest.raises(ClientError) as err:
        rds.stop_db_instance(DBInstanceIdentifier=f"{name}-1")
    assert err.value.response["Error"]["Code"] == "InvalidParameterCombination"
    assert rds.stop_db_cluster(DBClusterIdentifier=name)["DBCluster"]["Status"] == "stopping"
    assert rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]["Status"] == (
        "stopped"
    )
    with pytest.raises(pymysql.err.OperationalError):
        connect(ep)
    assert rds.start_db_cluster(DBClusterIdentifier=name)["DBCluster"]["Status"] == "starting"
    assert one(connect(ep), "SELECT v FROM kept") == (42,)
    server = lab.mysql.get(f"{name}-1")
    pid, directory = server.pid, server.directory
    rds.delete_db_instance(DBInstanceIdentifier=f"{name}-1", SkipFinalSnapshot=True)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not directory.exists()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", ep["port"]))
    rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True)


def test_without_mariadb_the_create_fails_clearly_and_the_lab_goes_on(
    env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    rds, manager = env["rds"], env["lab"].mysql.manager
    monkeypatch.setenv("RDSLAB_MYSQL_BINDIR", str(tmp_path))
    monkeypatch.setattr(manager, "_ready", None)
    binaries.find.cache_clear()
    try:
        rds.create_db_cluster(
            DBClusterIdentifier="amy-none",
            Engine="aurora-mysql",
            MasterUsername="admin",
            MasterUserPassword=PASSWORD,
        )
        with pytest.raises(ClientError) as err:
            rds.create_db_instance(
                DBInstanceIdentifier="amy-none-1",
                DBClusterIdentifier="amy-none",
                Engine="aurora-mysql",
                DBInstanceClass="db.r6g.large",
            )
    finally:
        binaries.find.cache_clear()
    error = err.value.response["Error"]
    assert error["Code"] == "InternalFailure"
    assert "apt-get install mariadb-server" in error["Message"]
    with pytest.raises(ClientError):
        rds.describe_db_instances(DBInstanceIdentifier="amy-none-1")
    rds.delete_db_cluster(DBClusterIdentifier="amy-none", SkipFinalSnapshot=True)
    assert sync(env["admin"], "echo", {"still": "here"}) == {"echo": {"still": "here"}}


def test_lab_wide_access_check_and_explain_path_follow_aurora_mysql_rules(env: Any) -> None:
    """rdslab.access (used by lessons' explain_path) applies the aws_default_lambda_role rule."""
    from rdslab import access

    good = access.check_invoke("amy-1", ARN.format("echo"))
    assert good.ok, good.missing
    rds = env["rds"]
    cluster(rds, "amy-norole")  # no parameter, no association
    try:
        bad = access.check_invoke("amy-norole-1", ARN.format("echo"))
        assert not bad.ok and bad.kind == "iam"
        assert "aws_default_lambda_role" in (bad.missing or "")
        assert "aws_default_lambda_role" in str(env["lab"].explain_path("amy-norole-1", "echo"))
    finally:
        drop_cluster(rds, "amy-norole")


def test_lambda_async_rejects_a_body_that_is_not_json_every_time(env: Any) -> None:
    conn = env["admin"]
    one(conn, "SELECT lambda_async(%s, %s)", (ARN.format("echo"), json.dumps({"ok": 1})))
    for _ in range(2):  # also once the function's access is known (the fast path)
        errno, message = sql_error(
            conn, "SELECT lambda_async(%s, %s)", (ARN.format("echo"), '{"a": "bad "quote""}')
        )
        assert errno == 1873 and "Invalid Request Content" in message
