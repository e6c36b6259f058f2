"""``rdslab bench invoke``: the SQL->Lambda path against boto3, and the cost of an Event trigger.

All figures come from one lab in one run, so the ratios compare like with like.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import zipfile
from typing import Any

PASSWORD = "Bench-Passw0rd"


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _setup() -> tuple[Any, Any, Any]:
    import boto3
    import psycopg2

    import rdslab

    lab = rdslab.start()
    iam, lam, rds = (boto3.client(s) for s in ("iam", "lambda", "rds"))
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ],
    }
    exec_role = iam.create_role(RoleName="bench-exec", AssumeRolePolicyDocument=json.dumps(trust))
    lam.create_function(
        FunctionName="bench-echo",
        Runtime="python3.12",
        Handler="app.handler",
        Role=exec_role["Role"]["Arn"],
        Code={"ZipFile": _zip("def handler(event, context):\n    return event\n")},
    )
    trust["Statement"][0]["Principal"] = {"Service": "rds.amazonaws.com"}
    role = iam.create_role(RoleName="bench-rds", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName="bench-rds",
        PolicyName="invoke",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "lambda:InvokeFunction",
                        "Resource": "arn:aws:lambda:*:*:function:bench-*",
                    }
                ],
            }
        ),
    )
    rds.create_db_instance(
        DBInstanceIdentifier="bench-db",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword=PASSWORD,
        DBName="bench",
        AllocatedStorage=20,
    )
    rds.add_role_to_db_instance(
        DBInstanceIdentifier="bench-db", RoleArn=role["Role"]["Arn"], FeatureName="Lambda"
    )
    ep = rds.describe_db_instances(DBInstanceIdentifier="bench-db")["DBInstances"][0]["Endpoint"]
    conn = psycopg2.connect(
        host=ep["Address"], port=ep["Port"], user="labadmin", password=PASSWORD, dbname="bench"
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION aws_lambda CASCADE")
    return lab, lam, conn


def invoke(n: int = 200, inserts: int = 2000) -> dict[str, Any]:
    lab, lam, conn = _setup()
    cur = conn.cursor()
    sql = "SELECT status_code FROM aws_lambda.invoke('bench-echo', '{\"n\": 1}'::json)"
    for _ in range(20):  # warm both paths
        cur.execute(sql)
        lam.invoke(FunctionName="bench-echo", Payload=b'{"n": 1}')
    sql_times, boto_times = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        cur.execute(sql)
        cur.fetchone()
        sql_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lam.invoke(FunctionName="bench-echo", Payload=b'{"n": 1}')["Payload"].read()
        boto_times.append(time.perf_counter() - t0)

    cur.execute("CREATE TABLE plain (id serial PRIMARY KEY, email text)")
    cur.execute("CREATE TABLE with_trigger (id serial PRIMARY KEY, email text)")
    cur.execute("""CREATE FUNCTION notify_lambda() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                     PERFORM aws_lambda.invoke('bench-echo', row_to_json(NEW), invocation_type => 'Event');
                     RETURN NEW;
                   END $$""")
    cur.execute(
        "CREATE TRIGGER t AFTER INSERT ON with_trigger FOR EACH ROW EXECUTE FUNCTION notify_lambda()"
    )
    # the two tables take turns, in rounds that each start from an idle lab (the Event trigger's
    # invocations of the previous round delivered), so that a change in the machine's load
    # during the run weighs on both alike
    spent = {"plain": 0.0, "with_trigger": 0.0}
    for table in spent:
        cur.execute(f"INSERT INTO {table} (email) VALUES ('warm@example.com')")
    rounds = 5
    for r in range(rounds):
        for table in spent:
            lab.wait_idle(60)
            t0 = time.perf_counter()
            for i in range(inserts // rounds):
                cur.execute(
                    f"INSERT INTO {table} (email) VALUES (%s)", (f"user{r}.{i}@example.com",)
                )
            spent[table] += time.perf_counter() - t0
    rates = {table: (inserts // rounds) * rounds / t for table, t in spent.items()}

    colds, warms = [], []
    for i in range(5):
        lam.update_function_configuration(
            FunctionName="bench-echo", Environment={"Variables": {"ROUND": str(i)}}
        )
        t0 = time.perf_counter()
        lam.invoke(FunctionName="bench-echo", Payload=b"{}")
        colds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lam.invoke(FunctionName="bench-echo", Payload=b"{}")
        warms.append(time.perf_counter() - t0)
    lab.runtime.wait_idle() if hasattr(lab.runtime, "wait_idle") else time.sleep(1)
    conn.close()
    lab.stop()
    result = {
        "sql_sync_p50_ms": 1000 * statistics.median(sql_times),
        "sql_sync_p95_ms": 1000 * _pct(sql_times, 0.95),
        "boto3_p50_ms": 1000 * statistics.median(boto_times),
        "boto3_p95_ms": 1000 * _pct(boto_times, 0.95),
        "plain_inserts_per_s": rates["plain"],
        "event_trigger_inserts_per_s": rates["with_trigger"],
        "cold_invoke_ms": 1000 * statistics.median(colds),
        "warm_invoke_ms": 1000 * statistics.median(warms),
    }
    result["sql_vs_boto3_p50_ratio (target <= 1.2)"] = (
        result["sql_sync_p50_ms"] / result["boto3_p50_ms"]
    )
    result["event_trigger_vs_plain_ratio (target >= 0.35)"] = (
        result["event_trigger_inserts_per_s"] / result["plain_inserts_per_s"]
    )
    result["cold_vs_warm_ratio"] = result["cold_invoke_ms"] / result["warm_invoke_ms"]
    return result
