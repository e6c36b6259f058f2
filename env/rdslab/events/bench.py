"""Benchmark: how long from a ``reboot_db_instance`` call until a Lambda handler has the event,
via an RDS event subscription (SNS) and via an EventBridge rule, in the default compressed time.

``run()`` uses a recording runtime (it checks the resource policy like Lambda, then notes the
arrival time instead of running code) unless ``runtime`` is given; target: median <= 0.5 s.
"""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
import uuid
import zipfile
from typing import Any

TARGET_SECONDS = 0.5


class RecordingRuntime:
    """``invoke_async`` that records when each payload arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, dict[str, Any]]] = []
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
        from .. import aws
        from .delivery import _LambdaError, policy_allows

        fn = aws.backend("lambda").get_function(function_name, qualifier)
        if principal_service and not policy_allows(
            list(fn.policy.statements), principal_service, source_arn, fn.account_id
        ):
            raise _LambdaError(403, "AccessDeniedException", "not authorized")
        with self._cond:
            self.arrivals.append(
                (time.perf_counter(), principal_service or "", json.loads(payload))
            )
            self._cond.notify_all()
        return str(uuid.uuid4())

    def wait(self, count: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        with self._cond:
            while len(self.arrivals) < count:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def _function(lam: Any, iam: Any, name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return str(
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": buf.getvalue()},
        )["FunctionArn"]
    )


def run(reboots: int = 5, runtime: Any = None) -> dict[str, Any]:
    """Median seconds from reboot_db_instance to the handler, via SNS and via EventBridge."""
    import boto3

    from .. import lab as lab_module

    lab = lab_module.start()
    engine = lab.events
    recorder = RecordingRuntime() if runtime is None else None
    previous = engine._runtime
    engine.use_runtime(recorder or runtime)
    tag = uuid.uuid4().hex[:8]
    db, fn, topic_name, rule, sub = (
        f"bench-{k}-{tag}" for k in ("db", "fn", "topic", "rule", "es")
    )
    rds, sns, events = boto3.client("rds"), boto3.client("sns"), boto3.client("events")
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    sns_times: list[float] = []
    eb_times: list[float] = []
    try:
        rds.create_db_instance(
            DBInstanceIdentifier=db, Engine="postgres", DBInstanceClass="db.t3.micro",
            MasterUsername="bench", MasterUserPassword="bench-password-1", AllocatedStorage=20,
        )  # fmt: skip
        fn_arn = _function(lam, iam, fn)
        topic = sns.create_topic(Name=topic_name)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn)
        rds.create_event_subscription(
            SubscriptionName=sub,
            SnsTopicArn=topic,
            SourceType="db-instance",
            SourceIds=[db],
            EventCategories=["availability"],
        )
        pattern = {
            "source": ["aws.rds"],
            "detail": {"SourceIdentifier": [db], "EventID": ["RDS-EVENT-0006"]},
        }
        rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps(pattern))["RuleArn"]
        events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": fn_arn}])
        for principal, source in (("sns.amazonaws.com", topic), ("events.amazonaws.com", rule_arn)):
            lam.add_permission(
                FunctionName=fn, StatementId=principal.split(".")[0], Action="lambda:InvokeFunction",
                Principal=principal, SourceArn=source,
            )  # fmt: skip
        engine.wait_idle(5)
        if recorder is None:
            raise ValueError("timing a real runtime needs a handler that reports arrival times")
        for _ in range(reboots):
            seen = len(recorder.arrivals)
            start = time.perf_counter()
            rds.reboot_db_instance(DBInstanceIdentifier=db)
            recorder.wait(seen + 2, timeout=10)
            for at, principal, _ in recorder.arrivals[seen:]:
                (sns_times if principal.startswith("sns") else eb_times).append(at - start)
            engine.wait_idle(5)
    finally:
        engine.use_runtime(previous)
        for cleanup in (
            lambda: rds.delete_event_subscription(SubscriptionName=sub),
            lambda: events.remove_targets(Rule=rule, Ids=["fn"]),
            lambda: events.delete_rule(Name=rule),
            lambda: rds.delete_db_instance(DBInstanceIdentifier=db, SkipFinalSnapshot=True),
            lambda: lam.delete_function(FunctionName=fn),
            lambda: iam.delete_role(RoleName=fn),
        ):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
    result = {
        "reboots": reboots,
        "sns_median_s": statistics.median(sns_times) if sns_times else None,
        "eventbridge_median_s": statistics.median(eb_times) if eb_times else None,
        "sns_deliveries": len(sns_times),
        "eventbridge_deliveries": len(eb_times),
        "target_s": TARGET_SECONDS,
    }
    result["ok"] = (
        all(
            v is not None and v <= TARGET_SECONDS
            for v in (result["sns_median_s"], result["eventbridge_median_s"])
        )
        and len(sns_times) == len(eb_times) == reboots
    )
    return result


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run(), indent=2))
