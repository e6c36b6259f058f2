"""The Lambda runtime room: asynchronous invocation (retries, event age, destinations, DLQ),
event invoke configs, service invocations checked against the resource policy, and cleanup."""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
import zipfile

import boto3
import psutil
import pytest
import rdslab
import requests
from botocore.exceptions import ClientError
from iamdocs import trust
from rdslab import config
from rdslab.runtime import LambdaApiError, LambdaRuntime

ACCOUNT = "123456789012"
# Appends one line per attempt (time, request id) to $OUT, then fails or succeeds.
RECORDER = """
import json, os, time
def lambda_handler(event, context):
    with open(os.environ["OUT"], "a") as f:
        f.write(json.dumps([time.time(), context.aws_request_id]) + "\\n")
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError(event.get("message", "it failed"))
    return {"ok": event}
"""


def make_zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lambda_function.py", source)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lab():
    lab = rdslab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def role(lab) -> str:
    name = f"runtime-async-{uuid.uuid4().hex[:8]}"
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust())["Role"][
        "Arn"
    ]


@pytest.fixture
def lam(lab):
    return boto3.client("lambda")


@pytest.fixture
def sqs(lab):
    return boto3.client("sqs")


@pytest.fixture
def deploy(lam, role, tmp_path):
    out = tmp_path / "attempts.log"

    def _deploy(source: str = RECORDER, **kwargs) -> str:
        name = f"fn-{uuid.uuid4().hex[:10]}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="lambda_function.lambda_handler",
            Code={"ZipFile": make_zip(source)},
            Environment={"Variables": {"OUT": str(out)}},
            **kwargs,
        )
        return name

    _deploy.out = out  # type: ignore[attr-defined]
    return _deploy


def attempts(deploy) -> list[list]:
    if not deploy.out.exists():
        return []
    return [json.loads(line) for line in deploy.out.read_text().splitlines()]


def make_queue(sqs) -> tuple[str, str]:
    from test_events_support import service_queue_policy

    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # an EventBridge destination's rule delivers here, which needs the queue policy
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": service_queue_policy(arn)})
    return url, arn


def receive(sqs, url: str) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])


def send_event(lam, name: str, event: dict) -> str:
    response = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode()
    )
    assert response["StatusCode"] == 202
    return response["ResponseMetadata"]["RequestId"]


def test_retries_count_and_timing(lab, lam, deploy, monkeypatch):
    monkeypatch.setattr(config.TIME, "factor", 1 / 300)  # 1 min -> 0.2 s, 2 min -> 0.4 s
    name = deploy()
    request_id = send_event(lam, name, {"fail": True})
    assert lab.runtime.drain(10) == 0
    rows = attempts(deploy)
    assert [r[1] for r in rows] == [request_id] * 3  # same request id on every attempt
    gap1, gap2 = rows[1][0] - rows[0][0], rows[2][0] - rows[1][0]
    assert 0.19 <= gap1 < 0.7, gap1
    assert 0.39 <= gap2 < 0.9, gap2
    runs = [
        r for r in lab.runtime.invocations() if r["request_id"] == request_id and "attempt" in r
    ]
    assert [(r["attempt"], r["error"]) for r in runs] == [
        (1, "RuntimeError"),
        (2, "RuntimeError"),
        (3, "RuntimeError"),
    ]


def test_max_retry_attempts_zero_and_on_failure_record(lab, lam, sqs, deploy):
    url, queue_arn = make_queue(sqs)
    name = deploy()
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )
    event = {"fail": True, "message": "bad row"}
    request_id = send_event(lam, name, event)
    assert lab.runtime.drain(10) == 0
    assert len(attempts(deploy)) == 1
    [message] = receive(sqs, url)
    record = json.loads(message["Body"])
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "bad row"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_on_success_destinations(lab, lam, sqs, deploy):
    url, queue_arn = make_queue(sqs)
    name = deploy()
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn}}
    )
    request_id = send_event(lam, name, {"n": 1})
    assert lab.runtime.drain(10) == 0
    [message] = receive(sqs, url)
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": {"n": 1}}

    # EventBridge destination: the default bus, source "lambda", routed by a rule to SQS
    events = boto3.client("events")
    url2, queue2 = make_queue(sqs)
    rule = f"r-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["lambda"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue2}])
    bus = f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
    lam.update_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": bus}}
    )
    send_event(lam, name, {"n": 2})
    assert lab.runtime.drain(10) == 0
    assert lab.wait_idle(10)  # the bus routes the record to its targets in the background
    [message] = receive(sqs, url2)
    envelope = json.loads(message["Body"])
    assert envelope["source"] == "lambda"
    assert envelope["detail-type"] == "Lambda Function Invocation Result - Success"
    assert envelope["detail"]["responsePayload"] == {"ok": {"n": 2}}


def test_lambda_destination(lab, lam, deploy):
    receiver = deploy()
    sender = deploy("def lambda_handler(event, context):\n    raise ValueError('nope')\n")
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{receiver}"
    lam.put_function_event_invoke_config(
        FunctionName=sender,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": arn}},
    )
    send_event(lam, sender, {"x": 1})
    deadline = time.monotonic() + 10
    while not attempts(deploy) and time.monotonic() < deadline:
        lab.runtime.drain(1)
    assert len(attempts(deploy)) == 1  # the receiver ran once with the invocation record


def test_dead_letter_queue(lab, lam, sqs, deploy, role):
    url, queue_arn = make_queue(sqs)
    # Lambda refuses a DLQ its execution role may not send to
    with pytest.raises(ClientError) as err:
        deploy(DeadLetterConfig={"TargetArn": queue_arn})
    assert err.value.response["Error"]["Message"] == (
        "The provided execution role does not have permissions to call SendMessage on SQS"
    )
    statement = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}
    boto3.client("iam").put_role_policy(
        RoleName=role.split("/")[-1],
        PolicyName=f"dlq-{uuid.uuid4().hex[:6]}",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    name = deploy(DeadLetterConfig={"TargetArn": queue_arn})
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {
        "TargetArn": queue_arn
    }
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    event = {"fail": True, "message": "é" + "x" * 2000}
    request_id = send_event(lam, name, event)
    assert lab.runtime.drain(10) == 0
    assert len(attempts(deploy)) == 2
    [message] = receive(sqs, url)
    assert json.loads(message["Body"]) == event
    attrs = message["MessageAttributes"]
    assert attrs["RequestID"] == {"StringValue": request_id, "DataType": "String"}
    assert attrs["ErrorCode"] == {"StringValue": "200", "DataType": "Number"}
    assert attrs["ErrorMessage"]["DataType"] == "String"
    assert attrs["ErrorMessage"]["StringValue"] == ("é" + "x" * 2000).encode()[:1024].decode()


def test_event_age_exceeded(lab, lam, sqs, deploy):
    url, queue_arn = make_queue(sqs)
    name = deploy()
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=60,  # 0.1 s of lab time: the 2nd attempt (after 1 min) is too late
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )
    send_event(lam, name, {"fail": True, "sleep": 0.05})
    assert lab.runtime.drain(10) == 0
    assert len(attempts(deploy)) == 1
    [message] = receive(sqs, url)
    context = json.loads(message["Body"])["requestContext"]
    assert (context["condition"], context["approximateInvokeCount"]) == ("EventAgeExceeded", 1)


def test_event_invoke_config_api(lam, deploy):
    name = deploy()
    lam.publish_version(FunctionName=name)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 0 and "MaximumEventAgeInSeconds" not in got
    updated = lam.update_function_event_invoke_config(
        FunctionName=name, MaximumEventAgeInSeconds=120
    )
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 120)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=2)
    assert lam.get_function_event_invoke_config(FunctionName=name, Qualifier="1")[
        "FunctionArn"
    ].endswith(":1")
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["MaximumRetryAttempts"] for c in listed) == [0, 2]
    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(ClientError) as err:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError):
        lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=3)


def test_invoke_async_checks_the_resource_policy(lab, lam, deploy):
    name = deploy()
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke_async(
            name, b"{}", principal_service="sns.amazonaws.com", source_arn=topic
        )
    assert (err.value.http_status, err.value.code) == (403, "AccessDeniedException")
    lam.add_permission(
        FunctionName=name,
        StatementId="sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn=topic,
    )
    request_id = lab.runtime.invoke_async(
        name, b'{"via": "sns"}', principal_service="sns.amazonaws.com", source_arn=topic
    )
    assert lab.runtime.drain(10) == 0
    assert [r[1] for r in attempts(deploy)] == [request_id]
    for service, source in (
        ("sns.amazonaws.com", f"arn:aws:sns:us-east-1:{ACCOUNT}:other"),
        ("events.amazonaws.com", topic),
    ):
        with pytest.raises(LambdaApiError) as err:
            lab.runtime.invoke_async(name, b"{}", principal_service=service, source_arn=source)
        assert err.value.http_status == 403
    lam.add_permission(
        FunctionName=name,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/*",
        SourceAccount="111111111111",
    )
    with pytest.raises(LambdaApiError):  # the SourceAccount condition does not hold
        lab.runtime.invoke_async(
            name,
            b"{}",
            principal_service="events.amazonaws.com",
            source_arn=f"arn:aws:events:us-east-1:{ACCOUNT}:rule/r1",
        )
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke_async(
            "nope", b"{}", principal_service="sns.amazonaws.com", source_arn=topic
        )
    assert err.value.http_status == 404
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke_async(name, b"x" * 1048577)
    assert err.value.http_status == 413


def test_shutdown_with_events_in_flight(lab, deploy, caplog):
    name = deploy()
    runtime = LambdaRuntime(lab.endpoint)
    for _ in range(2):
        runtime.invoke_async(name, b'{"sleep": 5}')
    time.sleep(0.3)
    pids = runtime.worker_pids()
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="rdslab.runtime"):
        runtime.shutdown()
    assert time.perf_counter() - started < 4
    assert "2 asynchronous event(s) not finished" in caplog.text
    assert pids and not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )


def test_moto_reset_clears_workers(lab, deploy):
    name = deploy()
    lab.runtime.invoke(name, b"{}")
    assert lab.runtime.workers()["workers"] >= 1
    requests.post(f"{lab.endpoint}/moto-api/reset", timeout=120).raise_for_status()
    assert lab.runtime.workers()["workers"] == 0
    assert lab.runtime.invocations() == []
