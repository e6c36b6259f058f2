"""Asynchronous invocation (aws-fidelity §5.4): events are queued, the caller gets 202 at once,
and a background pool runs them. A function error is retried (default twice; ~1 min before the
2nd attempt and ~2 min before the 3rd, scaled by ``rdslab.config.TIME``); an event older than
``MaximumEventAgeInSeconds`` is discarded; the outcome goes to the OnSuccess/OnFailure
destination and, on failure, to the function's dead-letter queue. Throttles are re-queued with a
growing backoff until the event ages out.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import config
from . import eventconfig, metrics
from .api import LambdaApiError
from .destinations import Destinations, invocation_record
from .invoke import Execution, Invoker, Target, lambda_storage

log = logging.getLogger("rdslab.runtime")
DEFAULT_RETRIES = 2
DEFAULT_MAX_AGE = 21600
RETRY_DELAYS = (60.0, 120.0)  # AWS seconds before the 2nd and the 3rd attempt


@dataclass
class AsyncEvent:
    request_id: str
    function_arn: str  # unqualified
    qualifier: str | None
    payload: bytes
    enqueued: float  # time.monotonic()
    attempts: int = 0
    throttles: int = 0
    last: Execution | None = None
    last_error: tuple[int, str] | None = None  # (HTTP status, message) of a non-function error


class AsyncQueue:
    """The internal event queue and its pollers."""

    def __init__(
        self,
        invoker: Invoker,
        destinations: Destinations,
        record: Callable[[dict[str, Any]], None],
        threads: int = 4,
    ) -> None:
        self.invoker = invoker
        self.destinations = destinations
        self.record = record
        self._heap: list[tuple[float, int, AsyncEvent]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pending = 0
        self._generation = 0
        self._stopped = False
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rdslab-lambda-async")
        self._thread = threading.Thread(target=self._loop, name="rdslab-lambda-queue", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ queue
    def submit(self, event: AsyncEvent) -> None:
        with self._cond:
            if self._stopped:
                raise LambdaApiError(503, "ServiceException", "The Lambda runtime is shut down.")
            self._pending += 1
            self._push(event, 0.0)

    def _push(self, event: AsyncEvent, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), event))
        self._cond.notify_all()  # drain() waits on the same condition

    def _reschedule(self, event: AsyncEvent, delay: float, generation: int) -> None:
        with self._cond:
            if generation != self._generation or self._stopped:
                return
            self._push(event, delay)

    def _done(self, generation: int) -> None:
        with self._cond:
            if generation == self._generation:
                self._pending -= 1
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, event = heapq.heappop(self._heap)
                generation = self._generation
            self._pool.submit(self._process, event, generation)

    # ------------------------------------------------------------------ one attempt
    def _process(self, event: AsyncEvent, generation: int) -> None:
        try:
            finished = self._attempt(event, generation)
        except Exception:  # noqa: BLE001 - keep the queue alive; record the event as lost
            log.exception("asynchronous invocation %s failed in the lab", event.request_id)
            finished = True
        if finished:
            self._done(generation)

    def _attempt(self, event: AsyncEvent, generation: int) -> bool:
        """Run the event once; returns True when it is finished (delivered or discarded)."""
        try:
            target = self.invoker.resolve(event.function_arn, event.qualifier)
        except LambdaApiError:
            log.warning(
                "asynchronous event %s dropped: %s no longer exists",
                event.request_id,
                event.function_arn,
            )
            return True
        settings = eventconfig.lookup(
            lambda_storage(target.account, target.region), target.name, event.qualifier
        )
        max_retries = int(settings.get("MaximumRetryAttempts", DEFAULT_RETRIES))
        max_age = config.TIME.seconds(
            float(settings.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE))
        )
        expires = event.enqueued + max_age
        if time.monotonic() > expires:
            self._fail(event, target, settings, "EventAgeExceeded")
            return True
        reserved = getattr(target.fn, "reserved_concurrency", None)
        if reserved is not None and int(reserved) == 0:
            event.last_error = (429, "Rate Exceeded.")
            self._fail(event, target, settings, "RetriesExhausted")
            return True
        try:
            self.invoker.check_concurrency(target)
            execution = self.invoker.execute(target, event.payload, event.request_id)
        except LambdaApiError as e:
            event.last_error = (e.http_status, e.message)
            if e.http_status == 429 or e.http_status >= 500 and e.code == "ServiceException":
                event.throttles += 1
                metrics.put(target.name, "Throttles", 1)
                delay = config.TIME.seconds(min(2.0 ** (event.throttles - 1), 300.0))
                self._reschedule(
                    event, min(delay, max(expires - time.monotonic(), 0.0)), generation
                )
                return False
            self._fail(event, target, settings, "RetriesExhausted")
            return True
        event.attempts += 1
        event.last = execution
        self.record(
            {
                "function": target.name,
                "version": execution.version,
                "type": "Event",
                "status": 202,
                "duration_ms": round(execution.duration_ms, 2),
                "cold": execution.cold,
                "error": execution.error_type,
                "request_id": event.request_id,
                "attempt": event.attempts,
            }
        )
        if execution.error_type is None:
            success = (settings.get("DestinationConfig") or {}).get("OnSuccess") or {}
            if success.get("Destination"):
                if not self.destinations.send_record(
                    success["Destination"], self._record(event, target, "Success")
                ):
                    metrics.put(target.name, "DestinationDeliveryFailures", 1)
            return True
        if event.attempts <= max_retries:
            delay = config.TIME.seconds(RETRY_DELAYS[min(event.attempts, 2) - 1])
            self._reschedule(event, min(delay, max(expires - time.monotonic(), 0.0)), generation)
            return False
        self._fail(event, target, settings, "RetriesExhausted")
        return True

    # ------------------------------------------------------------------ outcomes
    def _record(self, event: AsyncEvent, target: Target, condition: str) -> dict[str, Any]:
        last = event.last
        return invocation_record(
            request_id=event.request_id,
            function_arn=f"{target.base_arn}:{last.version if last else target.version}",
            condition=condition,
            attempts=event.attempts,
            request_payload=event.payload,
            executed_version=last.version if last else None,
            function_error=last.function_error if last else None,
            response_payload=last.payload if last else None,
        )

    def _fail(self, event: AsyncEvent, target: Target, settings: dict, condition: str) -> None:
        delivered = False
        failure = (settings.get("DestinationConfig") or {}).get("OnFailure") or {}
        if failure.get("Destination"):
            record = self._record(event, target, condition)
            sent = self.destinations.send_record(failure["Destination"], record)
            if not sent:
                metrics.put(target.name, "DestinationDeliveryFailures", 1)
            delivered |= sent
        dlq = (getattr(target.fn, "dead_letter_config", None) or {}).get("TargetArn")
        if dlq:
            code, message = self._error_of(event)
            sent = self.destinations.send_dead_letter(
                dlq, event.payload, event.request_id, code, message
            )
            if not sent:
                metrics.put(target.name, "DeadLetterErrors", 1)
            delivered |= sent
        if not delivered:
            log.warning(
                "asynchronous invocation %s of %s discarded (%s after %d attempts) with no "
                "dead-letter queue or on-failure destination",
                event.request_id,
                target.invoked_arn,
                condition,
                event.attempts,
            )

    @staticmethod
    def _error_of(event: AsyncEvent) -> tuple[int, str]:
        if event.last is not None and event.last.error_type:
            try:
                message = json.loads(event.last.payload).get("errorMessage") or ""
            except (ValueError, AttributeError):
                message = event.last.payload.decode("utf-8", "replace")
            return 200, message or event.last.error_type
        if event.last_error is not None:
            return event.last_error
        return 200, "Event age exceeded"

    # ------------------------------------------------------------------ lifecycle
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def drain(self, timeout: float) -> int:
        """Wait until every queued event is finished (or ``timeout``); returns what is left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._pending

    def clear(self) -> int:
        """Forget queued events (moto reset: their functions are gone); returns how many."""
        with self._cond:
            dropped = self._pending
            self._heap.clear()
            self._pending = 0
            self._generation += 1
            self._cond.notify_all()
            return dropped

    def shutdown(self, timeout: float = 2.0) -> int:
        left = self.drain(timeout)
        if left:
            log.warning("Lambda runtime stopping with %d asynchronous event(s) not finished", left)
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        return left
