"""Delivery machinery: a background scheduler, the delivery log, metrics, and Lambda invokes.

Nothing here blocks the API call that caused an event: work is queued on the scheduler and run
by one background thread in due-time order (ties in submission order), which keeps the default
mode's "in order, within a second" promise. Realistic mode only changes the due times.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .. import aws
from .store import utcnow

log = logging.getLogger("rdslab.events")


# ---------------------------------------------------------------------------- scheduler
class Scheduler:
    """A heap of due tasks run by one daemon thread."""

    def __init__(self, name: str = "rdslab-events") -> None:
        self._heap: list[tuple[float, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], None], *, delay: float = 0.0, label: str = "") -> None:
        """Run ``fn`` after ``delay`` seconds (0: as soon as the queue reaches it)."""
        with self._cond:
            if self._stopped:
                log.warning("event delivery stopped; dropped %s", label)
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), label, fn))
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, label, fn = heapq.heappop(self._heap)
                self._busy += 1
            try:
                fn()
            except Exception:  # noqa: BLE001 - one bad delivery must not stop the others
                log.exception("event delivery task %s failed", label)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._heap and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def pending(self) -> list[str]:
        with self._cond:
            return [label for _, _, label, _ in sorted(self._heap)]

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify_all()

    def stop(self) -> list[str]:
        """Stop the thread; return the labels of tasks that never ran."""
        with self._cond:
            left = [label for _, _, label, _ in sorted(self._heap)]
            self._heap.clear()
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2)
        return left


# ---------------------------------------------------------------------------- delivery log
@dataclass
class Delivery:
    """One message on its way to one target."""

    id: int
    channel: str  # "sns" | "eventbridge"
    target: str  # subscription endpoint / target ARN
    kind: str  # sqs | lambda | email | logs | sns | ...
    event_id: str | None
    source_id: str | None
    emitted_at: datetime
    via: str = ""  # topic ARN or rule ARN
    status: str = "Pending"
    attempts: int = 0
    delivered_at: datetime | None = None
    detail: str = ""


class DeliveryLog:
    """Every delivery the lab made or tried, for ``lab.events.deliveries()``."""

    def __init__(self) -> None:
        self._rows: list[Delivery] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, **fields: Any) -> Delivery:
        with self._lock:
            row = Delivery(id=next(self._ids), **fields)
            self._rows.append(row)
            return row

    def close(self, row: Delivery, status: str, detail: str = "") -> None:
        with self._lock:
            row.status = status
            row.detail = detail
            row.delivered_at = utcnow()

    def rows(self) -> list[Delivery]:
        with self._lock:
            return list(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


# ---------------------------------------------------------------------------- metrics
class Metrics:
    """CloudWatch-like counters (also written to the lab's CloudWatch: AWS/SNS, AWS/Events)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str, str], float] = {}
        self._lock = threading.Lock()

    def add(self, namespace: str, metric: str, dim_name: str, dim_value: str, n: float = 1) -> None:
        key = (namespace, metric, dim_name, dim_value)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n
        try:
            aws.backend("cloudwatch").put_metric_data(
                namespace,
                [
                    {
                        "MetricName": metric,
                        "Dimensions": [{"Name": dim_name, "Value": dim_value}],
                        "Value": n,
                        "Unit": "Count",
                        # naive UTC: moto compares it with the naive request times
                        "Timestamp": utcnow().replace(tzinfo=None),
                    }
                ],
            )
        except Exception:  # noqa: BLE001 - metrics are best effort
            log.debug("could not record metric %s", key, exc_info=True)

    def get(self, metric: str, dim_value: str | None = None) -> float:
        with self._lock:
            return sum(
                v
                for (_, m, _, d), v in self._counts.items()
                if m == metric and dim_value in (None, d)
            )

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"namespace": ns, "metric": m, "dimension": f"{dn}={dv}", "value": v}
                for (ns, m, dn, dv), v in sorted(self._counts.items())
            ]

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


# ---------------------------------------------------------------------------- lambda
class DeliveryError(Exception):
    """A target refused or failed a delivery."""

    def __init__(self, status: str, message: str, *, retryable: bool, eb_code: str) -> None:
        super().__init__(message)
        self.status = status  # shown in deliveries()
        self.retryable = retryable
        self.eb_code = eb_code  # EventBridge DLQ ERROR_CODE


class AsyncRuntime(Protocol):
    """What the runtime room provides (``lab.runtime``)."""

    def invoke_async(
        self,
        function_name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        principal_service: str | None,
        source_arn: str | None,
    ) -> str: ...


def split_function_arn(arn: str) -> tuple[str, str | None]:
    """``arn:...:function:f:alias`` -> (``arn:...:function:f``, ``alias``)."""
    parts = arn.split(":")
    if len(parts) == 8 and parts[5] == "function":
        return ":".join(parts[:7]), parts[7]
    return arn, None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_allows(
    statements: list[dict[str, Any]], principal: str, source_arn: str | None, account: str
) -> bool:
    """Does a function's resource policy let ``principal`` (a service) invoke it from ``source_arn``?"""
    for st in statements:
        if st.get("Effect", "Allow") != "Allow":
            continue
        actions = [a.lower() for a in _as_list(st.get("Action", []))]
        if not {"lambda:invokefunction", "lambda:*", "*"}.intersection(actions):
            continue
        who = st.get("Principal")
        if isinstance(who, dict):
            services = _as_list(who.get("Service", [])) + _as_list(who.get("AWS", []))
        else:
            services = _as_list(who)
        if principal not in services and "*" not in services:
            continue
        ok = True
        for operator, conditions in (st.get("Condition") or {}).items():
            for key, expected in conditions.items():
                expected_values = _as_list(expected)
                if key.lower() == "aws:sourcearn":
                    like = operator.lower().endswith("like")
                    ok &= source_arn is not None and any(
                        fnmatch.fnmatchcase(source_arn, e) if like else source_arn == e
                        for e in expected_values
                    )
                elif key.lower() == "aws:sourceaccount":
                    ok &= account in expected_values
        if ok:
            return True
    return False


class FallbackRuntime:
    """Used until the runtime room exists: checks the resource policy like Lambda does, then
    hands the event to moto's Lambda backend on a separate thread."""

    def invoke_async(
        self,
        function_name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        principal_service: str | None,
        source_arn: str | None,
    ) -> str:
        backend = aws.backend("lambda")
        try:
            fn = backend.get_function(function_name, qualifier)
        except Exception as exc:  # noqa: BLE001 - moto raises several "not found" types
            raise _LambdaError(404, "ResourceNotFoundException", str(exc)) from None
        if principal_service is not None and not policy_allows(
            list(fn.policy.statements), principal_service, source_arn, fn.account_id
        ):
            raise _LambdaError(
                403,
                "AccessDeniedException",
                f"{principal_service} is not authorized to perform: lambda:InvokeFunction"
                f" on resource: {fn.function_arn}",
            )
        import uuid

        request_id = str(uuid.uuid4())

        def run() -> None:
            try:
                backend.invoke(
                    function_name, qualifier, payload, {"X-Amz-Invocation-Type": "Event"}, {}
                )
            except Exception:  # noqa: BLE001
                log.warning("fallback Lambda invoke of %s failed", function_name, exc_info=True)

        threading.Thread(target=run, daemon=True, name="rdslab-events-invoke").start()
        return request_id


class _LambdaError(Exception):
    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


def lambda_error(exc: BaseException) -> DeliveryError | None:
    """Map a runtime's LambdaApiError (duck-typed: ``http_status``, ``code``) to a DeliveryError."""
    status = getattr(exc, "http_status", None)
    code = str(getattr(exc, "code", "") or type(exc).__name__)
    if status is None:
        return None
    message = str(exc)
    if status == 403 or "AccessDenied" in code:
        return DeliveryError("AccessDenied", message, retryable=False, eb_code="NO_PERMISSIONS")
    if status == 404:
        return DeliveryError("ResourceNotFound", message, retryable=False, eb_code="NO_RESOURCE")
    if status == 429:
        return DeliveryError("Throttled", message, retryable=True, eb_code="THROTTLING")
    if status >= 500:
        return DeliveryError("Failed", message, retryable=True, eb_code="ERROR_FROM_TARGET")
    return DeliveryError("Failed", message, retryable=False, eb_code="INVALID_PARAMETER")


def invoke_lambda(
    runtime: AsyncRuntime, function_arn: str, payload: bytes, principal: str, source_arn: str
) -> str:
    """Queue an async invoke through the runtime; raise DeliveryError when Lambda refuses."""
    name, qualifier = split_function_arn(function_arn)
    try:
        return runtime.invoke_async(
            name, payload, qualifier=qualifier, principal_service=principal, source_arn=source_arn
        )
    except Exception as exc:  # noqa: BLE001 - the runtime's error type is duck-typed
        mapped = lambda_error(exc)
        if mapped is None:
            raise DeliveryError(
                "Failed", str(exc), retryable=True, eb_code="INTERNAL_ERROR"
            ) from exc
        raise mapped from exc


def send_sqs(
    queue_arn: str,
    body: str,
    attributes: dict[str, Any] | None = None,
    group_id: str | None = None,
    dedup_id: str | None = None,
    *,
    service: str | None = None,
    source_arn: str | None = None,
) -> None:
    """Send to a queue by ARN as ``service`` (whose queue policy must allow it, for
    ``source_arn``); a missing queue is a non-retryable NO_RESOURCE error."""
    parts = queue_arn.split(":")
    if len(parts) < 6:
        raise DeliveryError(
            "Failed", f"not a queue ARN: {queue_arn}", retryable=False, eb_code="INVALID_PARAMETER"
        )
    account, region, name = parts[4], parts[3], parts[5]
    from moto.sqs import sqs_backends

    if service is not None:
        from .queue_policy import allows

        queue = sqs_backends[account][region].queues.get(name)
        policy = getattr(queue, "policy", None) if queue is not None else None
        if isinstance(policy, dict):
            policy = json.dumps(policy)
        if queue is not None and not allows(policy, service, queue_arn, source_arn):
            raise DeliveryError(
                "AccessDenied",
                f"The queue policy of {queue_arn} does not allow {service} to send "
                f"messages{' for ' + source_arn if source_arn else ''}",
                retryable=False,
                eb_code="NO_PERMISSIONS",
            )

    try:
        sqs_backends[account][region].send_message(
            name,
            body,
            message_attributes=attributes or {},
            group_id=group_id,
            deduplication_id=dedup_id,
            validate_group_id=False,
        )
    except Exception as exc:  # noqa: BLE001
        missing = "QueueDoesNotExist" in type(exc).__name__ or "NonExistentQueue" in str(exc)
        if missing:
            raise DeliveryError(
                "ResourceNotFound",
                f"Queue {queue_arn} does not exist",
                retryable=False,
                eb_code="NO_RESOURCE",
            ) from exc
        raise DeliveryError("Failed", str(exc), retryable=True, eb_code="SDK_CLIENT_ERROR") from exc
