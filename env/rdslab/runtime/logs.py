"""An invocation's execution log: START/END/REPORT lines around what the handler wrote, stored
in CloudWatch Logs (moto's logs backend, group ``/aws/lambda/<name>``, one stream per execution
environment) and returned as ``LogResult`` (base64 of the last 4 KB) when the caller asked for
``LogType=Tail``.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from typing import Any

log = logging.getLogger("rdslab.runtime")
TAIL_BYTES = 4096

_lock = threading.RLock()  # a subscription filter may invoke a function synchronously


def split_events(text: str) -> list[str]:
    """Log records from a worker's raw output (``\\r`` joins the lines of one record)."""
    if not text:
        return []
    if text.endswith("\n"):
        text = text[:-1]
    return [line.rstrip("\r").replace("\r", "\n") for line in text.split("\n")]


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None,
    status: str | None = None,
) -> str:
    """Lambda's REPORT line; Billed Duration includes Init on a cold start (AWS, Aug 2025)."""
    billed = math.ceil(duration_ms + (init_ms or 0.0)) or 1
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max(max_memory_mb, 1)} MB"
    )
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    if status:
        line += f"\tStatus: {status}"
    return line


def tail(events: list[str]) -> str:
    """base64 of the last 4 KB of the invocation's log."""
    data = "".join(e + "\n" for e in events).encode("utf-8")
    return base64.b64encode(data[-TAIL_BYTES:]).decode("ascii")


def _logs_backend(account: str, region: str) -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[account][region]


def write(account: str, region: str, group: str, stream: str, events: list[str]) -> None:
    """Append ``events`` to the stream (group and stream are created when missing)."""
    if not events:
        return
    now = int(time.time() * 1000)
    try:
        backend = _logs_backend(account, region)
        with _lock:
            log_group = backend.groups.get(group)
            if log_group is None:
                backend.ensure_log_group(group)
                log_group = backend.groups[group]
            if stream not in log_group.streams:
                log_group.create_log_stream(stream)
            log_group.streams[stream].put_log_events(
                [{"timestamp": now, "message": e} for e in events]
            )
    except Exception:  # noqa: BLE001 - logging must never fail an invocation
        log.exception("could not write Lambda logs to %s", group)
