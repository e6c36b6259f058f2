"""``LambdaRuntime``: the room's public object (``lab.runtime``). It owns the worker pool, the
async queue and the invocation log, and implements Invoke's three invocation types on top of
``Invoker``. The boto3 path (``motofix``) and in-process callers (bridge, events) both come here.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import config
from . import logs, metrics, policy
from .api import InvokeResult, LambdaApiError
from .asyncq import AsyncEvent, AsyncQueue
from .destinations import Destinations
from .invoke import Invoker, Target, lambda_storage
from .pool import Pool

log = logging.getLogger("rdslab.runtime")


def _remove_stale_run_dirs() -> None:
    """Remove the worker log directories of lab processes that died without stopping."""
    for path in config.state_dir().glob("lambda-run-*-*"):
        try:
            pid = int(path.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, PermissionError, IndexError):
            continue


class LambdaRuntime:
    """Runs Lambda handlers for the lab (see the package docstring)."""

    def __init__(
        self,
        endpoint: str,
        *,
        max_per_version: int = 4,
        max_total: int = 16,
        idle_seconds: float = 300.0,
        async_threads: int = 4,
    ) -> None:
        self.endpoint = endpoint
        _remove_stale_run_dirs()
        self.run_dir = Path(
            tempfile.mkdtemp(prefix=f"lambda-run-{os.getpid()}-", dir=config.state_dir())
        )
        self.pool = Pool(self.run_dir, max_per_version, max_total, idle_seconds)
        self.invoker = Invoker(self.pool, endpoint)
        self.destinations = Destinations(endpoint, self._destination_invoke)
        self._records: deque[dict[str, Any]] = deque(maxlen=1000)
        self._records_lock = threading.Lock()
        self.queue = AsyncQueue(self.invoker, self.destinations, self._record, async_threads)
        self._stopped = False
        # wait_idle of the rooms that hand Event invokes from SQL to Lambda (the SQL bridges):
        # an Event that returned 202 in SQL counts as queued here, as it does on AWS
        self.upstream: list[Callable[[float], bool]] = []

    # ------------------------------------------------------------------ the Invoke API
    def invoke(
        self,
        function_name: str,
        payload: bytes,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
        client_context: str | None = None,
        qualifier: str | None = None,
        region: str | None = None,
    ) -> InvokeResult:
        """Lambda's Invoke. Function errors are results (``function_error="Unhandled"``); an
        API error (unknown function, payload too large, bad JSON...) raises LambdaApiError."""
        return self.invoke_request(
            function_name,
            payload,
            invocation_type=invocation_type,
            log_type=log_type,
            client_context=client_context,
            qualifier=qualifier,
            region=region,
        )

    def invoke_request(
        self,
        function_name: str,
        payload: bytes | str | None,
        *,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
        client_context: str | None = None,
        qualifier: str | None = None,
        region: str | None = None,
        default_region: str | None = None,
    ) -> InvokeResult:
        """``invoke`` plus ``default_region`` (the HTTP path: the endpoint's region is a default
        that a full ARN overrides, while an explicit ``region`` must agree with the ARN)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        payload = payload or b""
        cc = Invoker.check_request(payload, invocation_type, log_type, client_context)
        target = self.invoker.resolve(function_name, qualifier, region, default_region)
        return self.invoke_target(target, payload, invocation_type, log_type, cc)

    def invoke_target(
        self,
        target: Target,
        payload: bytes,
        invocation_type: str = "RequestResponse",
        log_type: str = "None",
        client_context: Any = None,
    ) -> InvokeResult:
        """Invoke an already resolved function (also used for moto's own internal callers)."""
        request_id = str(uuid.uuid4())
        if invocation_type == "DryRun":
            self._record(self._row(target, "DryRun", 204, request_id))
            return InvokeResult(204, b"", None, None, None, request_id)
        if invocation_type == "Event":
            self._queue(target, payload, request_id)
            return InvokeResult(202, b"", None, None, None, request_id)
        try:
            self.invoker.check_concurrency(target)
        except LambdaApiError as err:
            if err.http_status == 429:
                metrics.put(target.name, "Throttles", 1)
            raise
        ex = self.invoker.execute(target, payload, request_id, client_context)
        row = self._row(target, "RequestResponse", 200, request_id)
        row.update(
            version=ex.version,
            duration_ms=round(ex.duration_ms, 2),
            cold=ex.cold,
            error=ex.error_type,
        )
        self._record(row)
        return InvokeResult(
            status_code=200,
            payload=ex.payload,
            function_error=ex.function_error,
            executed_version=ex.version,
            log_result=logs.tail(ex.events) if log_type == "Tail" else None,
            request_id=request_id,
        )

    def invoke_async(
        self,
        function_name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        principal_service: str | None = None,
        source_arn: str | None = None,
    ) -> str:
        """Queue an Event invocation as the given AWS service would (SNS, EventBridge). With
        ``principal_service`` the function's resource policy must allow lambda:InvokeFunction
        for that service and source ARN, else LambdaApiError(403, "AccessDeniedException").
        Returns the request id."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        Invoker.check_request(payload or b"", "Event", "None", None)
        target = self.invoker.resolve(function_name, qualifier)
        if principal_service:
            self.check_service_permission(target, principal_service, source_arn)
        request_id = str(uuid.uuid4())
        self._queue(target, payload or b"", request_id, source=principal_service)
        return request_id

    def check_service_permission(
        self, target: Target, service: str, source_arn: str | None
    ) -> None:
        """Raise AccessDeniedException unless the resource policy lets ``service`` invoke."""
        source_account = (
            source_arn.split(":")[4] if source_arn and source_arn.count(":") >= 5 else None
        )
        holders = [target.fn]
        group = lambda_storage(target.account, target.region)._functions.get(target.name) or {}  # noqa: SLF001
        if group.get("latest") is not None and group["latest"] is not target.fn:
            holders.append(group["latest"])
        for fn in holders:
            if policy.allows_service(
                fn, target.base_arn, target.qualifier, service, source_arn, source_account
            ):
                return
        raise LambdaApiError(
            403, "AccessDeniedException", policy.denied_message(service, target.invoked_arn)
        )

    def _queue(
        self, target: Target, payload: bytes, request_id: str, source: str | None = None
    ) -> None:
        event = AsyncEvent(
            request_id=request_id,
            function_arn=target.base_arn,
            qualifier=target.qualifier,
            payload=payload,
            enqueued=time.monotonic(),
        )
        self.queue.submit(event)
        row = self._row(target, "Event", 202, request_id)
        row.update(queued=True, source=source)
        self._record(row)

    def _destination_invoke(self, arn: str, payload: bytes) -> None:
        self.invoke(arn, payload, invocation_type="Event")

    # ------------------------------------------------------------------ views
    @staticmethod
    def _row(target: Target, kind: str, status: int, request_id: str) -> dict[str, Any]:
        return {
            "function": target.name,
            "version": target.version,
            "type": kind,
            "status": status,
            "duration_ms": None,
            "cold": None,
            "error": None,
            "request_id": request_id,
        }

    def _record(self, row: dict[str, Any]) -> None:
        row = {"time": datetime.now(UTC), **row}
        with self._records_lock:
            self._records.append(row)
        metrics.from_row(row)

    def invocations(self) -> list[dict[str, Any]]:
        """Recent invocation records (newest last): time, function, version, type, status,
        duration_ms, cold, error, request_id (and attempt for async runs)."""
        with self._records_lock:
            return list(self._records)

    def undelivered(self) -> list[dict[str, Any]]:
        """Destination records and dead letters that could not be delivered (newest last)."""
        return list(self.destinations.undelivered)

    def workers(self) -> dict[str, int]:
        """How many execution environments exist, idle and busy."""
        return self.pool.stats()

    def worker_pids(self) -> list[int]:
        return self.pool.pids()

    def drain(self, timeout: float = 10.0) -> int:
        """Wait for queued asynchronous events to finish; returns how many are left."""
        return self.queue.drain(timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once no asynchronous event is queued or running (within ``timeout``),
        including Event invokes that SQL has made and the lab has not yet handed over."""
        deadline = time.monotonic() + timeout
        ok = True
        for wait in list(self.upstream):
            ok = bool(wait(max(0.0, deadline - time.monotonic()))) and ok
        return self.queue.drain(max(0.0, deadline - time.monotonic())) == 0 and ok

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """moto was reset: drop queued events, kill every environment, forget records."""
        dropped = self.queue.clear()
        if dropped:
            log.info("moto reset: %d queued asynchronous event(s) dropped", dropped)
        self.pool.clear()
        self.invoker.specs.clear()
        with self._records_lock:
            self._records.clear()

    def shutdown(self) -> None:
        """Finish (briefly) queued events, then kill every worker process."""
        if self._stopped:
            return
        self._stopped = True
        self.queue.shutdown(timeout=2.0)
        self.pool.shutdown()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        from . import motofix

        motofix.deactivate(self)
