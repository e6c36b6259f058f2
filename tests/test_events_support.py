"""Shared helpers for the events room's tests (imported by the test_events_* modules).

A fake Lambda runtime with the runtime room's ``invoke_async`` interface: it checks the
function's resource policy the way Lambda does and records payloads instead of running code.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from typing import Any

import boto3
import pytest
import rdslab
from iamdocs import trust
from rdslab import aws
from rdslab.events.delivery import policy_allows


class FakeLambdaApiError(Exception):
    """Shaped like ``rdslab.runtime.LambdaApiError``."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class FakeRuntime:
    """Records async invokes; refuses them like Lambda when the resource policy says no."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_with: dict[str, list[FakeLambdaApiError]] = {}  # per function, raised first
        self._cond = threading.Condition()

    def invoke_async(
        self,
        function_name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        principal_service: str | None,
        source_arn: str | None,
    ) -> str:
        with self._cond:
            queued = self.fail_with.get(function_name.split(":")[-1])
            if queued:
                raise queued.pop(0)
        try:
            fn = aws.backend("lambda").get_function(function_name, qualifier)
        except Exception as exc:  # noqa: BLE001
            raise FakeLambdaApiError(404, "ResourceNotFoundException", str(exc)) from None
        if principal_service and not policy_allows(
            list(fn.policy.statements), principal_service, source_arn, fn.account_id
        ):
            raise FakeLambdaApiError(403, "AccessDeniedException", "not authorized")
        with self._cond:
            self.calls.append(
                {
                    "function": fn.function_name,
                    "payload": json.loads(payload),
                    "qualifier": qualifier,
                    "principal": principal_service,
                    "source_arn": source_arn,
                    "at": time.monotonic(),
                }
            )
            self._cond.notify_all()
        return str(uuid.uuid4())

    def for_function(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [c for c in self.calls if c["function"] == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 5) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c["function"] == name]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return [c for c in self.calls if c["function"] == name]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def events_lab() -> Any:
    """The running lab (another module may have stopped the session's lab: start a new one)."""
    return rdslab.start()


@pytest.fixture(scope="module")
def engine(events_lab: Any) -> Any:
    return events_lab.events


@pytest.fixture(scope="module")
def fake_runtime(engine: Any) -> Any:
    fake = FakeRuntime()
    engine.use_runtime(fake)
    yield fake
    engine.use_runtime(None)


@pytest.fixture(scope="module")
def clients(events_lab: Any) -> dict[str, Any]:
    return {
        name: boto3.client(name)
        for name in ("rds", "sns", "sqs", "events", "lambda", "logs", "iam")
    }


def service_queue_policy(arn: str) -> str:
    """The queue policy AWS requires before SNS or EventBridge may deliver to a queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["sns.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
                }
            ],
        }
    )


def make_queue(sqs: Any, name: str | None = None, policy: bool = True) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name or uid("q"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    if policy:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": service_queue_policy(arn)})
    return url, arn


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def make_function(clients: dict[str, Any], name: str | None = None) -> tuple[str, str]:
    iam, lam = clients["iam"], clients["lambda"]
    role_name = "rdslab-events-test-role"
    try:
        role = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust())["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return event\n")
    name = name or uid("fn")
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": buf.getvalue()},
    )["FunctionArn"]
    return name, arn


def create_instance(rds: Any, name: str, **extra: Any) -> dict[str, Any]:
    return rds.create_db_instance(
        DBInstanceIdentifier=name,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labuser",
        MasterUserPassword="lab-password-1",
        AllocatedStorage=20,
        **extra,
    )["DBInstance"]


def new_events(engine: Any, since: int) -> list[Any]:
    """Events emitted after sequence number ``since``."""
    return [e for e in engine.store.all() if e.seq > since]


def last_seq(engine: Any) -> int:
    events = engine.store.all()
    return max((e.seq for e in events), default=0)
