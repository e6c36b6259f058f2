"""Access and network, end to end through SQL: a learner who skips any single step gets the
failure AWS would give from ``aws_lambda.invoke`` inside a trigger, and the INSERT leaves no
row; the learner who follows every step gets a working invoke."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

import boto3
import psycopg2
import pytest

PASSWORD = "Sup3rSecret!"
FN = "arn:aws:lambda:us-east-1:123456789012:function:access-echo"
CREDENTIALS = "AWS Lambda client returned 'Unable to locate credentials'."
NETWORK = "AWS Lambda client returned 'Unable to connect to endpoint'."
NOT_AUTHORIZED = "is not authorized to perform: lambda:InvokeFunction on resource: " + FN


def trust(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def policy(effect: str = "Allow", resource: str = FN) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": effect, "Action": "lambda:InvokeFunction", "Resource": resource}
            ],
        }
    )


@pytest.fixture(scope="module")
def aws(lab):  # type: ignore[no-untyped-def]
    clients = {s: boto3.client(s) for s in ("iam", "lambda", "rds", "ec2")}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return event\n")
    role = clients["iam"].create_role(
        RoleName="access-sql-exec", AssumeRolePolicyDocument=trust("lambda.amazonaws.com")
    )
    clients["lambda"].create_function(
        FunctionName="access-echo",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    return clients


class Case:
    """One DB instance, a role and a trigger; ``steps`` decide what the learner did."""

    counter = 0

    def __init__(self, aws: dict[str, Any]) -> None:
        Case.counter += 1
        self.aws = aws
        self.db = f"acc-sql-{Case.counter}"
        self.role_name = f"rds-lambda-{Case.counter}"

    def role(
        self, service: str = "rds.amazonaws.com", doc: str | None = None, managed: str | None = None
    ) -> str:
        iam = self.aws["iam"]
        arn = iam.create_role(RoleName=self.role_name, AssumeRolePolicyDocument=trust(service))[
            "Role"
        ]["Arn"]
        if doc:
            iam.put_role_policy(RoleName=self.role_name, PolicyName="invoke", PolicyDocument=doc)
        if managed:
            iam.attach_role_policy(RoleName=self.role_name, PolicyArn=managed)
        return str(arn)

    def instance(self, **extra: Any) -> None:
        self.aws["rds"].create_db_instance(
            DBInstanceIdentifier=self.db,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            MasterUsername="labadmin",
            MasterUserPassword=PASSWORD,
            DBName="app",
            AllocatedStorage=20,
            **extra,
        )

    def associate(self, role_arn: str, feature: str = "Lambda") -> None:
        self.aws["rds"].add_role_to_db_instance(
            DBInstanceIdentifier=self.db, RoleArn=role_arn, FeatureName=feature
        )

    def connect(self) -> Any:
        ep = self.aws["rds"].describe_db_instances(DBInstanceIdentifier=self.db)["DBInstances"][0][
            "Endpoint"
        ]
        conn = psycopg2.connect(
            host=ep["Address"], port=ep["Port"], user="labadmin", password=PASSWORD, dbname="app"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("""
                CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE;
                SET aws_lambda.connect_timeout_ms = 200;
                CREATE TABLE registration (id serial PRIMARY KEY, email text);
                CREATE FUNCTION welcome() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM aws_lambda.invoke('access-echo', row_to_json(NEW));
                    RETURN NEW;
                END $$;
                CREATE TRIGGER welcome AFTER INSERT ON registration
                    FOR EACH ROW EXECUTE FUNCTION welcome();""")
        return conn

    def insert(self, conn: Any) -> tuple[str | None, str | None, float]:
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO registration (email) VALUES ('ada@example.com')")
            return None, None, time.monotonic() - start
        except psycopg2.Error as err:
            return err.diag.message_primary, err.diag.message_detail, time.monotonic() - start

    def rows(self, conn: Any) -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM registration")
            return int(cur.fetchone()[0])


def all_steps(c: Case) -> None:
    c.instance()
    c.associate(c.role(doc=policy()))


def no_role(c: Case) -> None:
    c.instance()
    c.role(doc=policy())


def wrong_feature(c: Case) -> None:
    c.instance()
    c.associate(c.role(doc=policy()), feature="s3Import")


def wrong_trust(c: Case) -> None:
    c.instance()
    c.associate(c.role(service="lambda.amazonaws.com", doc=policy()))


def other_function(c: Case) -> None:
    c.instance()
    c.associate(c.role(doc=policy(resource=FN.replace("access-echo", "other-fn"))))


def explicit_deny(c: Case) -> None:
    c.instance()
    arn = c.role(managed="arn:aws:iam::aws:policy/service-role/AWSLambdaRole")
    c.aws["iam"].put_role_policy(
        RoleName=c.role_name, PolicyName="deny", PolicyDocument=policy("Deny")
    )
    c.associate(arn)


def managed_policy(c: Case) -> None:
    c.instance()
    c.associate(c.role(managed="arn:aws:iam::aws:policy/service-role/AWSLambdaRole"))


def removed_role(c: Case) -> None:
    all_steps(c)
    arn = c.aws["iam"].get_role(RoleName=c.role_name)["Role"]["Arn"]
    c.aws["rds"].remove_role_from_db_instance(
        DBInstanceIdentifier=c.db, RoleArn=arn, FeatureName="Lambda"
    )


def private_subnet_no_nat(c: Case) -> None:
    ec2, rds = c.aws["ec2"], c.aws["rds"]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName=f"private-{c.db}",
        SubnetIds=subnets,
        DBSubnetGroupDescription="private only",
    )
    c.instance(DBSubnetGroupName=f"private-{c.db}")
    c.associate(c.role(doc=policy()))


def no_egress_443(c: Case) -> None:
    ec2 = c.aws["ec2"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName=f"locked-{c.db}", Description="no egress", VpcId=vpc)[
        "GroupId"
    ]
    ec2.revoke_security_group_egress(
        GroupId=sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    c.instance(VpcSecurityGroupIds=[sg], PubliclyAccessible=True)
    c.associate(c.role(doc=policy()))


CASES: list[tuple[str, Callable[[Case], None], str | None, str | None]] = [
    ("all steps", all_steps, None, None),
    ("managed AWSLambdaRole", managed_policy, None, None),
    ("no role associated", no_role, "invoke API failed", CREDENTIALS),
    ("wrong feature name", wrong_feature, "invoke API failed", CREDENTIALS),
    ("trust for lambda.amazonaws.com", wrong_trust, "invoke API failed", CREDENTIALS),
    ("policy for another function", other_function, "invoke API failed", NOT_AUTHORIZED),
    ("explicit deny", explicit_deny, "invoke API failed", "with an explicit deny"),
    ("role removed", removed_role, "invoke API failed", CREDENTIALS),
    ("private subnet without NAT", private_subnet_no_nat, "invoke API failed", NETWORK),
    ("security group without egress 443", no_egress_443, "invoke API failed", NETWORK),
]


@pytest.mark.parametrize(("name", "setup", "message", "detail"), CASES, ids=[c[0] for c in CASES])
def test_each_missing_step_fails_like_aws_and_keeps_data_consistent(
    aws, name, setup, message, detail
) -> None:  # type: ignore[no-untyped-def]
    case = Case(aws)
    setup(case)
    conn = case.connect()
    got_message, got_detail, elapsed = case.insert(conn)
    if message is None:
        assert (got_message, got_detail) == (None, None)
        assert case.rows(conn) == 1
    else:
        assert got_message == message
        assert detail in got_detail
        assert case.rows(conn) == 0, "a failed synchronous invoke must roll the INSERT back"
        if detail == NETWORK:
            assert elapsed >= 0.2, "the SDK waits aws_lambda.connect_timeout_ms before giving up"
    conn.close()
    aws["rds"].delete_db_instance(DBInstanceIdentifier=case.db, SkipFinalSnapshot=True)
