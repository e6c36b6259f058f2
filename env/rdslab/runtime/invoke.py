"""The one implementation of Lambda's Invoke: name resolution (name, ARN, partial ARN,
``name:qualifier``, versions, aliases with weighted routing), request validation (payload size and
JSON, client context), and running the handler in a warm or cold execution environment with
START/END/REPORT logs, timeouts and Lambda's error payloads.

Both the boto3 (HTTP) path, patched into moto by ``motofix``, and ``LambdaRuntime.invoke`` call
``Invoker``; ``asyncq`` calls ``Invoker.execute`` for queued events.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import config
from . import logs
from .api import LambdaApiError, invalid_parameter, not_found, too_large
from .environment import SpecCache
from .pool import InitError, Pool, PoolBusy, Worker, WorkerDied, WorkerTimeout

SYNC_PAYLOAD_LIMIT = 6291456  # 6 MB, request and response
ASYNC_PAYLOAD_LIMIT = 1048576  # 1 MB (256 KB before AWS raised it in 2025)
RESPONSE_LIMIT = 6291556
CLIENT_CONTEXT_LIMIT = 3583
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TYPES = ("None", "Tail")

_ARN = re.compile(
    r"^arn:(aws[a-zA-Z-]*):lambda:([a-z0-9-]+):(\d{12}):function:([a-zA-Z0-9_-]+)"
    r"(?::([a-zA-Z0-9$_-]+))?$"
)
_PARTIAL = re.compile(r"^(\d{12}):function:([a-zA-Z0-9_-]+)(?::([a-zA-Z0-9$_-]+))?$")
_NAME = re.compile(r"^([a-zA-Z0-9_-]+)(?::([a-zA-Z0-9$_-]+))?$")
_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
    r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)


@dataclass
class Target:
    """A resolved function: moto's object for the version that will run."""

    fn: Any
    account: str
    region: str
    name: str
    qualifier: str | None  # as the caller gave it (None: unqualified)
    version: str  # "$LATEST" or "1", "2"...
    base_arn: str

    @property
    def invoked_arn(self) -> str:
        return self.base_arn if self.qualifier is None else f"{self.base_arn}:{self.qualifier}"

    @property
    def version_arn(self) -> str:
        return f"{self.base_arn}:{self.version}"


@dataclass
class Execution:
    """One run of the handler."""

    request_id: str
    payload: bytes
    error_type: str | None
    events: list[str]
    duration_ms: float
    cold: bool
    version: str
    function_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def validation_error(value: str, member: str, constraint: str) -> LambdaApiError:
    return LambdaApiError(
        400,
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}",
    )


def lambda_storage(account: str, region: str) -> Any:
    from moto.awslambda.models import lambda_backends

    return lambda_backends[account][region]._lambdas  # noqa: SLF001


class Invoker:
    """Resolves and runs invocations (shared by every entry point)."""

    def __init__(self, pool: Pool, endpoint: str) -> None:
        self.pool = pool
        self.specs = SpecCache(endpoint)
        self._inflight: dict[str, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ resolution
    def resolve(
        self,
        function_name: str,
        qualifier: str | None = None,
        region: str | None = None,
        default_region: str | None = None,
    ) -> Target:
        """The function version an Invoke of ``function_name`` runs (404/400 as Lambda)."""
        account, fn_region, name, derived = config.ACCOUNT_ID, None, None, None
        m = _ARN.match(function_name)
        if m:
            fn_region, account, name, derived = m.group(2), m.group(3), m.group(4), m.group(5)
        elif m := _PARTIAL.match(function_name):
            account, name, derived = m.group(1), m.group(2), m.group(3)
        elif m := _NAME.match(function_name):
            name, derived = m.group(1), m.group(2)
        else:
            raise validation_error(
                function_name,
                "functionName",
                f"Member must satisfy regular expression pattern: {_NAME_PATTERN}",
            )
        if region and fn_region and region != fn_region:
            raise invalid_parameter(
                f"The region in the function ARN ({fn_region}) does not match the region of "
                f"the request ({region})."
            )
        region = fn_region or region or default_region or config.REGION
        if qualifier == "":
            qualifier = None
        if derived and qualifier and derived != qualifier:
            raise invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier."
            )
        qualifier = derived or qualifier
        base_arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        missing = not_found(base_arn if qualifier is None else f"{base_arn}:{qualifier}")
        try:
            storage = lambda_storage(account, region)
        except Exception:  # noqa: BLE001 - an unknown region or account has no functions
            raise missing from None
        group = storage._functions.get(name)  # noqa: SLF001
        if not group:
            raise missing
        fn, version = self._pick(storage, group, base_arn, qualifier)
        if fn is None:
            raise missing
        return Target(fn, account, region, name, qualifier, version, base_arn)

    @staticmethod
    def _pick(storage: Any, group: dict, base_arn: str, qualifier: str | None) -> tuple[Any, str]:
        def by_version(v: str) -> Any:
            if v == "$LATEST":
                return group.get("latest")
            return next((f for f in group.get("versions", []) if str(f.version) == v), None)

        if qualifier is None or qualifier == "$LATEST":
            return group.get("latest"), "$LATEST"
        if qualifier.isdigit():
            return by_version(qualifier), qualifier
        alias = storage._aliases.get(base_arn, {}).get(qualifier)  # noqa: SLF001
        if alias is None:
            return None, qualifier
        version = str(alias.function_version)
        weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
        if weights:
            roll, acc = random.random(), 0.0
            for extra, weight in weights.items():
                acc += float(weight)
                if roll < acc:
                    version = str(extra)
                    break
        return by_version(version), version

    # ------------------------------------------------------------------ validation
    @staticmethod
    def check_request(
        payload: bytes, invocation_type: str, log_type: str, client_context: str | None
    ) -> Any:
        """Validate an Invoke request as Lambda does; returns the decoded client context."""
        if invocation_type not in INVOCATION_TYPES:
            raise validation_error(
                invocation_type,
                "invocationType",
                "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
        if log_type not in LOG_TYPES:
            raise validation_error(
                log_type, "logType", "Member must satisfy enum value set: [None, Tail]"
            )
        limit = ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
        if len(payload) > limit:
            raise too_large(limit)
        if payload.strip():
            try:
                json.loads(payload)
            except ValueError as e:
                raise LambdaApiError(
                    400,
                    "InvalidRequestContentException",
                    f"Could not parse request body into json: Could not parse payload into json: {e}",
                ) from None
        if not client_context:
            return None
        if len(client_context) > CLIENT_CONTEXT_LIMIT:
            raise invalid_parameter("Client context must be at most 3583 bytes.")
        try:
            decoded = json.loads(base64.b64decode(client_context, validate=True))
        except (ValueError, binascii.Error):
            raise LambdaApiError(
                400,
                "InvalidRequestContentException",
                "Client context must be a valid Base64-encoded JSON object.",
            ) from None
        return decoded

    def check_concurrency(self, target: Target) -> None:
        """429 when the function's reserved concurrency is used up (0 throttles everything)."""
        reserved = getattr(target.fn, "reserved_concurrency", None)
        if reserved is None:
            return
        if self._inflight.get(target.base_arn, 0) >= int(reserved):
            raise LambdaApiError(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                reason="ReservedFunctionConcurrentInvocationLimitExceeded",
            )

    # ------------------------------------------------------------------ execution
    def execute(
        self, target: Target, payload: bytes, request_id: str, client_context: Any = None
    ) -> Execution:
        """Run the handler once (cold or warm) and write the log; never raises for function
        errors (they are in the result) but may raise LambdaApiError for environment errors."""
        fn = target.fn
        spec = self.specs.get(fn, target.base_arn, target.version, target.account, target.region)
        with self._lock:
            self._inflight[target.base_arn] = self._inflight.get(target.base_arn, 0) + 1
        try:
            try:
                worker, cold = self.pool.acquire(spec, self._spawn)
            except PoolBusy as e:
                raise LambdaApiError(429, "TooManyRequestsException", str(e)) from None
            return self._run(target, spec, worker, cold, payload, request_id, client_context)
        finally:
            with self._lock:
                self._inflight[target.base_arn] -= 1

    def _spawn(self, spec: Any) -> Worker:
        return Worker(spec, self.pool.run_dir)

    def _run(
        self,
        target: Target,
        spec: Any,
        worker: Worker,
        cold: bool,
        payload: bytes,
        request_id: str,
        client_context: Any,
    ) -> Execution:
        init_events: list[str] = []
        init_ms: float | None = None
        started = time.perf_counter()
        try:
            if cold:
                worker.wait_ready()
                init_ms = worker.init_ms
                init_events = logs.split_events(worker.read_log())
            header = {
                "id": request_id,
                "deadline": int(time.time() * 1000 + spec.timeout * 1000),
                "arn": target.invoked_arn,
                "cc": client_context,
            }
            result, body = worker.call(header, payload or b"{}", spec.timeout)
            out = _Outcome(body, float(result.get("d") or 0.0), result.get("e"))
            if len(body) > RESPONSE_LIMIT:
                out.error_type = "Function.ResponseSizeTooLarge"
                out.body = json.dumps(
                    {
                        "errorMessage": "Response payload size exceeded maximum allowed payload "
                        f"size ({RESPONSE_LIMIT} bytes).",
                        "errorType": out.error_type,
                    }
                ).encode()
        except InitError as e:
            init_ms = (time.perf_counter() - started) * 1000
            init_events = logs.split_events(worker.read_log())
            error_type = json.loads(e.payload).get("errorType") or "Runtime.Unknown"
            out = _Outcome(e.payload, 0.0, error_type, f"error\tError Type: {error_type}", False)
        except WorkerTimeout:
            message = f"{_iso_now()} {request_id} Task timed out after {spec.timeout:.2f} seconds"
            body = json.dumps({"errorMessage": message}).encode()
            out = _Outcome(
                body, spec.timeout * 1000, "Sandbox.Timedout", "timeout", False, [message]
            )
        except WorkerDied as e:
            message = f"RequestId: {request_id} Error: {e}"
            error_type = "Runtime.ExitError"
            body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
            duration = (time.perf_counter() - started) * 1000 - (init_ms or 0.0)
            status = f"error\tError Type: {error_type}"
            out = _Outcome(
                body, max(duration, 0.0), error_type, status, False, [message, error_type]
            )
        run_events = logs.split_events(worker.read_log()) + out.trailer
        memory = worker.max_memory_mb if worker.alive else worker.peak_memory_mb()
        self.pool.release(worker, reuse=out.reuse)
        events = init_events + [f"START RequestId: {request_id} Version: {target.version}"]
        events += run_events
        events += [
            f"END RequestId: {request_id}",
            logs.report_line(
                request_id, out.duration_ms, spec.memory_mb, memory, init_ms, out.status
            ),
        ]
        logs.write(target.account, target.region, spec.log_group, worker.log_stream, events)
        return Execution(
            request_id=request_id,
            payload=out.body,
            error_type=out.error_type,
            events=events,
            duration_ms=out.duration_ms,
            cold=cold,
            version=target.version,
            function_error="Unhandled" if out.error_type else None,
            extra={"init_ms": init_ms, "memory_mb": memory},
        )


@dataclass
class _Outcome:
    body: bytes
    duration_ms: float
    error_type: str | None
    status: str | None = None
    reuse: bool = True
    trailer: list[str] = field(default_factory=list)
