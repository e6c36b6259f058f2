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
