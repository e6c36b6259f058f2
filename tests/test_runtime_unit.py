"""The Lambda runtime room's pure helpers: resource-policy evaluation and log formatting."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from rdslab.runtime import logs, policy

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


def fn_with(*statements: dict) -> SimpleNamespace:
    return SimpleNamespace(policy=SimpleNamespace(statements=list(statements)))


def allow(**extra) -> dict:
    st = {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": ARN,
    }
    st.update(extra)
    return st


def test_policy_principal_resource_and_conditions():
    def check(
        fn, qualifier=None, service="sns.amazonaws.com", source=TOPIC, account="123456789012"
    ):
        return policy.allows_service(fn, ARN, qualifier, service, source, account)

    assert not check(fn_with())
    assert check(fn_with(allow()))  # no condition: any topic may invoke
    assert not check(fn_with(allow()), service="events.amazonaws.com")
    assert not check(fn_with(allow()), qualifier="live")  # a qualifier has its own resource
    assert check(fn_with(allow(Resource=ARN + ":live")), qualifier="live")
    arn_like = allow(
        Condition={"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:123456789012:al*"}}
    )
    assert check(fn_with(arn_like))
    assert not check(fn_with(arn_like), source="arn:aws:sns:us-east-1:123456789012:other")
    assert not check(fn_with(arn_like), source=None)
    account = allow(Condition={"StringEquals": {"AWS:SourceAccount": "111111111111"}})
    assert not check(fn_with(account))
    assert check(fn_with(account), account="111111111111")
    assert not check(fn_with(allow(), allow(Effect="Deny")))
    assert check(fn_with(allow(Action=["lambda:*"], Principal="*")))
    assert not check(fn_with(allow(Action="lambda:GetFunction")))


def test_log_helpers():
    assert logs.split_events("a\n[ERROR] X: y\rTraceback\r  File\nlast\n") == [
        "a",
        "[ERROR] X: y\nTraceback\n  File",
        "last",
    ]
    line = logs.report_line("r1", 12.345, 128, 40, 101.5)
    assert line == (
        "REPORT RequestId: r1\tDuration: 12.35 ms\tBilled Duration: 114 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 101.50 ms"
    )
    assert logs.report_line("r1", 0.2, 128, 40, None).endswith("Max Memory Used: 40 MB")
    assert "Billed Duration: 1 ms" in logs.report_line("r1", 0.2, 128, 40, None)
    assert logs.report_line("r1", 3000, 128, 40, None, "timeout").endswith("\tStatus: timeout")
    tail = base64.b64decode(logs.tail(["x" * 5000, "END RequestId: r1"]))
    assert len(tail) == 4096 and tail.endswith(b"END RequestId: r1\n")


def test_lambda_refuses_what_aws_refuses() -> None:
    """create_function/update_function_configuration: role trust, ranges, reserved variables."""
    import io
    import json
    import zipfile

    import boto3
    import pytest
    import rdslab
    from botocore.exceptions import ClientError

    rdslab.start()
    iam, lam = boto3.client("iam"), boto3.client("lambda")

    def role(name: str, service: str) -> str:
        doc = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}
            ],
        }
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(doc))["Role"][
            "Arn"
        ]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(e, c):\n    return e\n")
    code = {"ZipFile": buf.getvalue()}
    wrong = role("validation-rds-role", "rds.amazonaws.com")
    right = role("validation-exec-role", "lambda.amazonaws.com")
    kwargs = dict(
        FunctionName="validation-fn", Runtime="python3.12", Handler="app.handler", Code=code
    )
    with pytest.raises(ClientError) as err:
        lam.create_function(Role=wrong, **kwargs)
    assert (
        err.value.response["Error"]["Message"]
        == "The role defined for the function cannot be assumed by Lambda."
    )
    with pytest.raises(ClientError) as err:
        lam.create_function(Role=right, Timeout=1000, **kwargs)
    assert (
        "Member must have value less than or equal to 900" in err.value.response["Error"]["Message"]
    )
    lam.create_function(Role=right, **kwargs)
    with pytest.raises(ClientError) as err:
        lam.update_function_configuration(
            FunctionName="validation-fn", Environment={"Variables": {"AWS_REGION": "eu-west-1"}}
        )
    assert (
        "Reserved keys used in this request: AWS_REGION" in err.value.response["Error"]["Message"]
    )
