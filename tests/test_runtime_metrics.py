"""AWS/Lambda metrics in the lab's CloudWatch, read with the same boto3 calls as on AWS."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from iamdocs import allow, trust

HANDLER = """
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("it failed")
    return {"ok": True}
"""


@pytest.fixture
def lam(lab):  # type: ignore[no-untyped-def]
    return boto3.client("lambda")


@pytest.fixture
def sqs(lab):  # type: ignore[no-untyped-def]
    return boto3.client("sqs")


@pytest.fixture
def role(lab) -> str:  # type: ignore[no-untyped-def]
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust())["Role"][
        "Arn"
    ]


@pytest.fixture
def deploy(lam, role):  # type: ignore[no-untyped-def]
    def _deploy(**kwargs) -> str:  # type: ignore[no-untyped-def]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", HANDLER)
        name = f"fn-{uuid.uuid4().hex[:10]}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": buf.getvalue()},
            **kwargs,
        )
        return name

    return _deploy


# --------------------------------------------------------------------------- AWS/Lambda metrics
def lambda_metric(name: str, metric: str, statistic: str = "Sum") -> float:
    """What CloudWatch holds for one function over the last hour, as a learner would ask."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": name}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=[statistic],
    )["Datapoints"]
    return sum(p[statistic] for p in points)


def test_lambda_publishes_its_metrics_to_cloudwatch(lab, lam, deploy):
    name = deploy()
    lam.invoke(FunctionName=name, Payload=b"{}")
    lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}).encode())
    lam.invoke(FunctionName=name, Payload=b"{}", InvocationType="DryRun")  # not an invocation
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": True}).encode()
    )
    assert lab.runtime.drain(10) == 0
    # 2 synchronous runs + 2 attempts of the Event; errors: 1 + 2
    assert lambda_metric(name, "Invocations") == 4
    assert lambda_metric(name, "Errors") == 3
    assert lambda_metric(name, "AsyncEventsReceived") == 1
    assert lambda_metric(name, "Duration", "Maximum") > 0
    # no concurrency left: a synchronous call is throttled, and counted
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    # boto3 retried a throttled call: every attempt was throttled
    tries = 1 + err.value.response["ResponseMetadata"]["RetryAttempts"]
    assert lambda_metric(name, "Throttles") == tries


def test_a_dead_letter_queue_that_is_gone_counts_as_dead_letter_errors(lab, lam, sqs, deploy, role):
    url = sqs.create_queue(QueueName=f"dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("iam").put_role_policy(
        RoleName=role.split("/")[-1],
        PolicyName=f"dlq-{uuid.uuid4().hex[:6]}",
        PolicyDocument=allow("sqs:SendMessage", queue_arn),
    )
    name = deploy(DeadLetterConfig={"TargetArn": queue_arn})
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )
    sqs.delete_queue(QueueUrl=url)  # the safety net itself is broken
    lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": True}).encode()
    )
    assert lab.runtime.drain(10) == 0
    assert lambda_metric(name, "DeadLetterErrors") == 1
    assert lambda_metric(name, "DestinationDeliveryFailures") == 1
