"""The access room, IAM half: role association, trust and policies decide the DB -> Lambda call.

Every instance sits in the default VPC (which reaches Lambda out of the box), so only IAM
decides. Each case builds roles and policies through boto3 and asserts ``check_invoke`` and
``explain_path``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import rdslab
from rdslab import access

ACCOUNT = "123456789012"
FN = "orders-handler"
FN_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FN}"
CREDENTIALS = "AWS Lambda client returned 'Unable to locate credentials'."
LAMBDA_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaRole"


def trust(service: str = "rds.amazonaws.com", condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def allow(
    resource: Any = FN_ARN,
    action: Any = "lambda:InvokeFunction",
    effect: str = "Allow",
    key: str = "Action",
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": effect, key: action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


@pytest.fixture(scope="module")
def clients() -> Any:
    rdslab.start()  # per-process singleton, stopped at exit (or by the session fixture)
    return boto3.client("rds"), boto3.client("iam")


def create_instance(rds: Any, identifier: str) -> str:
    rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword="Sup3rSecret!",
        AllocatedStorage=20,
    )
    return identifier


@pytest.fixture(scope="module")
def shared(clients: Any) -> Iterator[str]:
    """One instance for the cases that only change roles (each case gets a fresh role and the
    instance's associations are removed after it): creating a real server per case is slow."""
    identifier = create_instance(clients[0], f"iam-shared-{uuid.uuid4().hex[:8]}")
    yield identifier
    clients[0].delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)


class Lab:
    """The shared instance (or an own instance / Aurora cluster) and one role, unique names."""

    def __init__(self, rds: Any, iam: Any, shared: str) -> None:
        self.rds, self.iam = rds, iam
        self.tag = uuid.uuid4().hex[:8]
        self.db = shared
        self.own = False
        self.role = f"rds-lambda-{self.tag}"
        self.cluster: str | None = None

    def instance(self) -> str:
        """Use an instance of this test's own (the shared one is used unless this is called)."""
        self.db, self.own = create_instance(self.rds, f"iam-{self.tag}"), True
        return self.db

    def aurora(self) -> str:
        self.cluster, self.db, self.own = f"cl-{self.tag}", f"iam-{self.tag}", True
        self.rds.create_db_cluster(
            DBClusterIdentifier=self.cluster,
            Engine="aurora-postgresql",
            MasterUsername="labadmin",
            MasterUserPassword="Sup3rSecret!",
        )
        self.rds.create_db_instance(
            DBInstanceIdentifier=self.db,
            DBClusterIdentifier=self.cluster,
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
        return self.db

    def make_role(
        self,
        trust_policy: str | None = None,
        statements: list[dict[str, Any]] | None = None,
        managed: str | None = None,
    ) -> str:
        arn = self.iam.create_role(
            RoleName=self.role, AssumeRolePolicyDocument=trust_policy or trust()
        )["Role"]["Arn"]
        if statements:
            self.iam.put_role_policy(
                RoleName=self.role,
                PolicyName="invoke",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )
        if managed:
            self.iam.attach_role_policy(RoleName=self.role, PolicyArn=managed)
        return arn

    def associate(self, arn: str, feature: str = "Lambda") -> None:
        if self.cluster:
            self.rds.add_role_to_db_cluster(
                DBClusterIdentifier=self.cluster, RoleArn=arn, FeatureName=feature
            )
        else:
            self.rds.add_role_to_db_instance(
                DBInstanceIdentifier=self.db, RoleArn=arn, FeatureName=feature
            )

    def setup(self, feature: str = "Lambda", **role: Any) -> str:
        arn = self.make_role(**role)
        self.associate(arn, feature)
        return arn

    def cleanup(self) -> None:
        if self.own:
            self.rds.delete_db_instance(DBInstanceIdentifier=self.db, SkipFinalSnapshot=True)
            return
        db = self.rds.describe_db_instances(DBInstanceIdentifier=self.db)["DBInstances"][0]
        for role in db.get("AssociatedRoles", []):
            self.rds.remove_role_from_db_instance(
                DBInstanceIdentifier=self.db,
                RoleArn=role["RoleArn"],
                FeatureName=role["FeatureName"],
            )


@pytest.fixture
def lab(clients: Any, shared: str) -> Iterator[Lab]:
    lab = Lab(*clients, shared)
    yield lab
    lab.cleanup()


def denied(
    lab: Lab,
    resource: str = FN_ARN,
    why: str = "because no identity-based policy allows the lambda:InvokeFunction action",
) -> str:
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{lab.role}/{lab.db}"
    return (
        f"AWS Lambda client returned 'User: {principal} is not authorized to perform: "
        f"lambda:InvokeFunction on resource: {resource} {why}'."
    )


# ------------------------------------------------------------------ cases
def removed(lab: Lab) -> None:
    arn = lab.setup(managed=LAMBDA_ROLE)
    assert access.check_invoke(lab.db, FN_ARN).ok
    lab.rds.remove_role_from_db_instance(
        DBInstanceIdentifier=lab.db, RoleArn=arn, FeatureName="Lambda"
    )
    roles = lab.rds.describe_db_instances(DBInstanceIdentifier=lab.db)["DBInstances"][0][
        "AssociatedRoles"
    ]
    assert roles == []


def aurora_cluster_role(lab: Lab) -> None:
    lab.aurora()
    lab.associate(lab.make_role(managed=LAMBDA_ROLE))


def aurora_role_removed(lab: Lab) -> None:
    aurora_cluster_role(lab)
    assert access.check_invoke(lab.db, FN_ARN).ok
    cluster = lab.rds.describe_db_clusters(DBClusterIdentifier=lab.cluster)["DBClusters"][0]
    (role,) = cluster["AssociatedRoles"]
    assert role["FeatureName"] == "Lambda"
    lab.rds.remove_role_from_db_cluster(
        DBClusterIdentifier=lab.cluster, RoleArn=role["RoleArn"], FeatureName="Lambda"
    )


def aurora_without_cluster_role(lab: Lab) -> None:
    lab.aurora()
    lab.make_role(managed=LAMBDA_ROLE)


@dataclass
class Case:
    build: Callable[[Lab], Any]
    ok: bool
    step: str | None = None  # explain_path's first missing step
    detail: Callable[[Lab], str] | str | None = None
    words: str = ""  # must appear in Verdict.missing
    function: str = FN_ARN


CASES = {
    "no role": Case(
        lambda lab: None, False, "role association", CREDENTIALS, "No IAM role is associated with"
    ),
    "wrong feature name": Case(
        lambda lab: lab.setup(feature="s3Import", managed=LAMBDA_ROLE),
        False,
        "role association",
        CREDENTIALS,
        "for feature 's3Import'",
    ),
    "wrong trust principal": Case(
        lambda lab: lab.setup(trust_policy=trust("ec2.amazonaws.com"), managed=LAMBDA_ROLE),
        False,
        "trust policy",
        CREDENTIALS,
        "does not allow sts:AssumeRole",
    ),
    "trust SourceArn of another instance": Case(
        lambda lab: lab.setup(
            trust_policy=trust(
                condition={
                    "ArnLike": {"aws:SourceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:someone-else"}
                }
            ),
            managed=LAMBDA_ROLE,
        ),
        False,
        "trust policy",
        CREDENTIALS,
    ),
    "trust SourceArn of this instance": Case(
        lambda lab: lab.setup(
            trust_policy=trust(
                condition={
                    "ArnLike": {"aws:SourceArn": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:iam-*"},
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                }
            ),
            managed=LAMBDA_ROLE,
        ),
        True,
    ),
    "policy on another function": Case(
        lambda lab: lab.setup(statements=[allow(FN_ARN.replace(FN, "other-fn"))]),
        False,
        "identity policy",
        denied,
        "No policy of",
    ),
    "exact function ARN": Case(lambda lab: lab.setup(statements=[allow()]), True),
    "wildcard resource": Case(
        lambda lab: lab.setup(statements=[allow("arn:aws:lambda:*:*:function:orders-*")]), True
    ),
    "question-mark wildcard": Case(
        lambda lab: lab.setup(
            statements=[allow("arn:aws:lambda:us-east-1:*:function:orders-handle?")]
        ),
        True,
    ),
    "case-insensitive action": Case(
        lambda lab: lab.setup(statements=[allow(action="LAMBDA:invoke*")]), True
    ),
    "explicit deny": Case(
        lambda lab: lab.setup(statements=[allow(effect="Deny", resource="*")], managed=LAMBDA_ROLE),
        False,
        "identity policy",
        lambda lab: denied(lab, why="with an explicit deny in an identity-based policy"),
        "explicitly denies",
    ),
    "managed AWSLambdaRole": Case(lambda lab: lab.setup(managed=LAMBDA_ROLE), True),
    "removed role": Case(removed, False, "role association", CREDENTIALS, "No IAM role"),
    "Aurora cluster-level role": Case(aurora_cluster_role, True),
    "Aurora cluster role removed": Case(
        aurora_role_removed, False, "role association", CREDENTIALS, "add_role_to_db_cluster"
    ),
    "Aurora without cluster role": Case(
        aurora_without_cluster_role,
        False,
        "role association",
        CREDENTIALS,
        "add_role_to_db_cluster",
    ),
    "NotAction allows lambda": Case(
        lambda lab: lab.setup(statements=[allow("*", "iam:*", key="NotAction")]), True
    ),
    "NotAction excludes lambda": Case(
        lambda lab: lab.setup(statements=[allow("*", "lambda:*", key="NotAction")]),
        False,
        "identity policy",
        denied,
    ),
    "NotResource excludes the function": Case(
        lambda lab: lab.setup(
            statements=[{"Effect": "Allow", "Action": "lambda:*", "NotResource": FN_ARN}]
        ),
        False,
        "identity policy",
        denied,
    ),
    "unqualified grant, alias invoked": Case(
        lambda lab: lab.setup(statements=[allow()]),
        False,
        "identity policy",
        lambda lab: denied(lab, FN_ARN + ":prod"),
        function=FN_ARN + ":prod",
    ),
    "name:* grant, alias invoked": Case(
        lambda lab: lab.setup(statements=[allow(FN_ARN + ":*")]), True, function=FN_ARN + ":prod"
    ),
    "condition the lab cannot evaluate": Case(
        lambda lab: lab.setup(
            statements=[allow(condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]
        ),
        False,
        "identity policy",
        denied,
        "cannot evaluate",
    ),
    "condition on a known key": Case(
        lambda lab: lab.setup(
            statements=[allow(condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})]
        ),
        True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_iam_case(lab: Lab, name: str) -> None:
    case = CASES[name]
    case.build(lab)
    verdict = access.check_invoke(lab.db, case.function)
    explanation = access.explain_path(lab.db, case.function)
    assert verdict.ok is case.ok, explanation
    assert explanation.verdict == verdict
    if case.ok:
        assert (verdict.kind, verdict.detail, verdict.missing) == (None, None, None)
        assert explanation.first_missing is None
        return
    assert verdict.kind == "iam"
    expected = case.detail(lab) if callable(case.detail) else case.detail
    assert verdict.detail == expected
    assert explanation.first_missing is not None
    assert explanation.first_missing.step == case.step, explanation
    assert case.words in (verdict.missing or ""), verdict.missing
    assert explanation.hint


def test_qualifier_argument_and_names(lab: Lab) -> None:
    lab.setup(statements=[allow(FN_ARN + ":*")])
    assert not access.check_invoke(lab.db, FN).ok  # unqualified ARN is not covered by name:*
    assert access.check_invoke(lab.db, FN, qualifier="7").ok
    assert access.check_invoke(lab.db, f"{FN}:prod").ok
    assert access.check_invoke(lab.db, f"{ACCOUNT}:function:{FN}:prod").ok


def test_permissions_boundary(lab: Lab) -> None:
    lab.setup(managed=LAMBDA_ROLE)
    boundary = lab.iam.create_policy(
        PolicyName=f"boundary-{lab.tag}",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    lab.iam.put_role_permissions_boundary(RoleName=lab.role, PermissionsBoundary=boundary)
    verdict = access.check_invoke(lab.db, FN_ARN)
    assert verdict.detail == denied(
        lab, why="because no permissions boundary allows the lambda:InvokeFunction action"
    )


def test_deleted_role(lab: Lab) -> None:
    lab.setup(statements=[allow()])
    lab.iam.delete_role_policy(RoleName=lab.role, PolicyName="invoke")
    lab.iam.delete_role(RoleName=lab.role)
    verdict = access.check_invoke(lab.db, FN_ARN)
    assert (verdict.kind, verdict.detail) == ("iam", CREDENTIALS)
    assert "does not exist in IAM" in (verdict.missing or "")


def test_credentials_fail_before_network(lab: Lab) -> None:
    """With no role and no network path, the credentials failure is what SQL sees."""
    lab.instance()
    lab.rds.modify_db_instance(
        DBInstanceIdentifier=lab.db, PubliclyAccessible=False, ApplyImmediately=True
    )
    explanation = access.explain_path(lab.db, FN)
    assert explanation.verdict.detail == CREDENTIALS
    assert [h.step for h in explanation.hops if h.ok is False] == [
        "role association",
        "internet gateway",
    ]


def test_remove_role_errors_when_not_associated(lab: Lab) -> None:
    with pytest.raises(lab.rds.exceptions.ClientError) as info:
        lab.rds.remove_role_from_db_instance(
            DBInstanceIdentifier=lab.db,
            FeatureName="Lambda",
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/nothing",
        )
    assert info.value.response["Error"]["Code"] == "DBInstanceRoleNotFound"


def test_aws_managed_policy_is_listed(clients: Any) -> None:
    _, iam = clients
    policy = iam.get_policy(PolicyArn=LAMBDA_ROLE)["Policy"]
    assert policy["PolicyName"] == "AWSLambdaRole"


# ------------------------------------------------------------------ the evaluator alone
def _decide(statements: list[dict[str, Any]], resource: str = FN_ARN, **values: str) -> str:
    from rdslab.access import policy

    ctx = policy.Context(
        values={k.replace("_", ":", 1).lower(): [v] for k, v in values.items()},
        known=frozenset({"aws:principalaccount", "aws:sourcevpce"}),
    )
    doc = {"Version": "2012-10-17", "Statement": statements}
    return policy.evaluate([policy.Source("p", doc)], "lambda:InvokeFunction", resource, ctx).effect


@pytest.mark.parametrize(
    ("statements", "resource", "values", "effect"),
    [
        ([allow(), allow(effect="Deny")], FN_ARN, {}, "deny"),  # explicit deny wins
        (
            [allow("arn:aws:lambda:us-east-1:123456789012:function:orders.handler")],
            FN_ARN,
            {},
            "implicit-deny",
        ),  # "." is literal, not a regex wildcard
        (
            [allow("arn:aws:lambda:us-east-1:123456789012:function:orders-handler:*")],
            FN_ARN,
            {},
            "implicit-deny",
        ),
        (
            [allow("arn:aws:lambda:us-east-1:123456789012:function:orders-handler*")],
            FN_ARN + ":prod",
            {},
            "allow",
        ),
        ([allow(condition={"StringNotEquals": {"aws:SourceVpce": "vpce-1"}})], FN_ARN, {}, "allow"),
        (
            [allow(condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})],
            FN_ARN,
            {},
            "implicit-deny",
        ),  # known key absent: positive operator is false
        ([allow(condition={"Null": {"aws:SourceVpce": "true"}})], FN_ARN, {}, "allow"),
        (
            [allow(condition={"StringEquals": {"aws:PrincipalAccount": ["1", "123456789012"]}})],
            FN_ARN,
            {"aws_PrincipalAccount": "123456789012"},
            "allow",
        ),
        (
            [
                allow(),
                allow(effect="Deny", condition={"IpAddress": {"aws:SourceIp": "1.2.3.4/32"}}),
            ],
            FN_ARN,
            {},
            "allow",
        ),  # unevaluable Deny is skipped (and reported)
    ],
)
def test_policy_evaluator(
    statements: list[dict[str, Any]], resource: str, values: dict[str, str], effect: str
) -> None:
    assert _decide(statements, resource, **values) == effect
