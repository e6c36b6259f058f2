"""Warm execution environments: worker subprocesses, kept per (function ARN, version, code,
configuration) and reused, as Lambda reuses an execution environment between invocations.

A ``Worker`` is the parent's handle on one ``worker.py`` child; the ``Pool`` hands workers out one
invocation at a time (an environment never runs two invocations at once), bounds how many exist
(per function version and in total), retires environments whose code or configuration changed,
and reaps idle ones.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from select import POLLERR, POLLHUP, POLLIN, poll
from typing import Any

log = logging.getLogger("rdslab.runtime")
WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
# Lambda limits Init to 10 s; the lab allows the same for a cold start before the invocation.
INIT_TIMEOUT = 10.0


_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
}


@dataclass(frozen=True)
class Spec:
    """Everything that defines one kind of execution environment."""

    key: tuple[str, ...]  # (unqualified ARN, version, code sha256, configuration digest)
    function_name: str
    version: str
    code_dir: str
    env: dict[str, str] = field(hash=False, compare=False)
    memory_mb: int = 128
    timeout: float = 3.0
    log_group: str = ""

    @property
    def slot(self) -> tuple[str, str]:
        return self.key[0], self.key[1]


class WorkerDied(Exception):
    """The child exited (crash, ``sys.exit``, OOM kill) before answering."""

    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode
        if returncode is None:
            detail = "exit status unknown"
        elif returncode < 0:
            detail = f"signal: {_SIGNAL_WORDS.get(-returncode, str(-returncode))}"
        else:
            detail = f"exit status {returncode}"
        super().__init__(f"Runtime exited with error: {detail}")


class WorkerTimeout(Exception):
    """No answer before the deadline; the worker has been killed."""


class InitError(Exception):
    """The handler module could not be loaded; ``payload`` is Lambda's error JSON."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload.decode("utf-8", "replace"))
        self.payload = payload


class Worker:
    """One execution environment (a ``worker.py`` child process)."""

    def __init__(self, spec: Spec, run_dir: Path) -> None:
        self.spec = spec
        self.created = time.monotonic()
        self.last_used = self.created
        self.invocations = 0
        self.init_ms = 0.0
        self.max_memory_mb = 0
        now = datetime.now(UTC)
        self.log_stream = f"{now:%Y/%m/%d}/[{spec.version}]{secrets.token_hex(16)}"
        self._log_path = run_dir / f"env-{secrets.token_hex(8)}.log"
        self._log_fd = os.open(self._log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._log_offset = 0
        env = dict(spec.env)
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = self.log_stream
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-B", "-P", WORKER_SCRIPT, str(req_r), str(resp_w)],
                stdin=subprocess.DEVNULL,
                stdout=self._log_fd,
                stderr=self._log_fd,
                pass_fds=(req_r, resp_w),
                cwd=spec.code_dir,
                env=env,
                start_new_session=True,
            )
        except BaseException:
            for fd in (req_r, resp_w, self._req_w, self._resp_r, self._log_fd):
                os.close(fd)
            raise
        self._spawned = started
        os.close(req_r)
        os.close(resp_w)
        self._resp = os.fdopen(self._resp_r, "rb", buffering=1 << 16)
        self._poll = poll()
        self._poll.register(self._resp_r, POLLIN | POLLERR | POLLHUP)
        self.alive = True
        self.ready = False
        self.busy = False
        self._closed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    # ------------------------------------------------------------------ protocol
    def _wait_readable(self, deadline: float) -> None:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.max_memory_mb = self.peak_memory_mb()
                self.kill()
                raise WorkerTimeout()
            if self._poll.poll(remaining * 1000):
                return

    def _read_message(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        try:
            self._wait_readable(deadline)
            line = self._resp.readline()
            if not line:
                raise self._died()
            header = json.loads(line)
            body = self._resp.read(header["n"]) if header.get("n") else b""
        except (OSError, ValueError):  # the pipes were closed under us (shutdown)
            raise self._died() from None
        if header.get("n") and len(body) != header["n"]:
            raise self._died()
        return header, body

    def _died(self) -> WorkerDied:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        return WorkerDied(code)

    def wait_ready(self) -> None:
        """Wait for the child's Init; raises InitError, WorkerDied or WorkerTimeout."""
        header, body = self._read_message(self._spawned + INIT_TIMEOUT)
        self.init_ms = (time.perf_counter() - self._spawned) * 1000
        self.max_memory_mb = int(header.get("m") or 0)
        if header.get("t") == "init_error":
            self.kill()
            raise InitError(body)
        self.ready = True

    def call(self, header: dict[str, Any], payload: bytes, timeout: float) -> tuple[dict, bytes]:
        """Run one invocation; returns the child's result header and response bytes."""
        deadline = time.perf_counter() + timeout
        header["n"] = len(payload)
        data = memoryview(json.dumps(header).encode() + b"\n" + payload)
        try:
            while data:
                data = data[os.write(self._req_w, data) :]
        except OSError:
            raise self._died() from None
        result, body = self._read_message(deadline)
        self.invocations += 1
        self.max_memory_mb = max(self.max_memory_mb, int(result.get("m") or 0))
        return result, body

    def read_log(self) -> str:
        """What the environment wrote to its log since the last call."""
        try:
            size = os.fstat(self._log_fd).st_size
        except OSError:
            return ""
        if size <= self._log_offset:
            return ""
        data = os.pread(self._log_fd, size - self._log_offset, self._log_offset)
        self._log_offset += len(data)
        if self._log_offset > (1 << 20) and self.ready:  # keep the file small between calls
            os.ftruncate(self._log_fd, 0)
            self._log_offset = 0
        return data.decode("utf-8", "replace")

    def peak_memory_mb(self) -> int:
        """Peak RSS (VmHWM) of the live child, else the last value it reported."""
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        return max(self.max_memory_mb, int(line.split()[1]) // 1024)
        except (OSError, ValueError):
            pass
        return self.max_memory_mb

    def kill(self) -> None:
        """Kill the child and anything it started (safe from any thread)."""
        if not self.alive:
            return
        self.alive = False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            log.warning("Lambda worker %s did not exit", self.proc.pid)

    def cleanup(self) -> None:
        """Kill, then release the pipes and the log file (only when no call is running)."""
        self.kill()
        if self._closed:
            return
        self._closed = True
        for closer in (
            self._resp.close,
            lambda: os.close(self._req_w),
            lambda: os.close(self._log_fd),
        ):
            try:
                closer()
            except OSError:
                pass
        self._log_path.unlink(missing_ok=True)


class PoolBusy(Exception):
    """No environment became free in time (the lab's bound, not an AWS throttle)."""


class Pool:
    """Bounded warm pools of workers, one invocation per worker at a time."""

    def __init__(
        self,
        run_dir: Path,
        max_per_version: int = 4,
        max_total: int = 16,
        idle_seconds: float = 300.0,
        acquire_timeout: float = 120.0,
    ) -> None:
        self.run_dir = run_dir
        self.max_per_version = max_per_version
        self.max_total = max_total
        self.idle_seconds = idle_seconds
        self.acquire_timeout = acquire_timeout
        self._cond = threading.Condition()
        self._idle: dict[tuple[str, ...], list[Worker]] = {}
        self._count: dict[tuple[str, ...], int] = {}
        self._all: set[Worker] = set()
        self._reserved = 0
        self._current: dict[tuple[str, str], tuple[str, ...]] = {}
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="rdslab-lambda-reaper")
        self._reaper.daemon = True
        self._reaper.start()

    # ------------------------------------------------------------------ acquire / release
    def acquire(self, spec: Spec, spawn: Callable[[Spec], Worker]) -> tuple[Worker, bool]:
        """A free worker for ``spec`` (warm if one is idle) and whether it is a cold start."""
        victims: list[Worker] = []
        deadline = time.monotonic() + self.acquire_timeout
        with self._cond:
            if self._current.get(spec.slot) != spec.key:
                old = self._current.get(spec.slot)
                self._current[spec.slot] = spec.key
                if old is not None:
                    victims += self._take_idle(old)
            while True:
                if self._stop.is_set():
                    raise PoolBusy("the Lambda runtime is shut down")
                idle = self._idle.get(spec.key)
                if idle:
                    worker = idle.pop()
                    break
                total = len(self._all) + self._reserved
                if self._count.get(spec.key, 0) < self.max_per_version:
                    if total >= self.max_total:
                        lru = self._oldest_idle()
                        if lru is not None:
                            victims.append(lru)
                            total -= 1
                    if total < self.max_total:
                        self._count[spec.key] = self._count.get(spec.key, 0) + 1
                        self._reserved += 1
                        worker = None
                        break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolBusy("no Lambda execution environment became free")
                self._cond.wait(min(remaining, 1.0))
        for victim in victims:
            self._destroy(victim)
        if worker is not None:
            worker.busy = True
            return worker, False
        try:
            worker = spawn(spec)
        except BaseException:
            with self._cond:
                self._reserved -= 1
                self._count[spec.key] -= 1
                self._cond.notify_all()
            raise
        worker.busy = True
        with self._cond:
            self._reserved -= 1
            self._all.add(worker)
        return worker, True

    def _take_idle(self, key: tuple[str, ...]) -> list[Worker]:
        return list(self._idle.pop(key, []))

    def _oldest_idle(self) -> Worker | None:
        best: Worker | None = None
        for workers in self._idle.values():
            for w in workers:
                if best is None or w.last_used < best.last_used:
                    best = w
        if best is not None:
            self._idle[best.spec.key].remove(best)
        return best

    def release(self, worker: Worker, reuse: bool = True) -> None:
        """Give the worker back after an invocation (``reuse=False`` destroys it)."""
        worker.last_used = time.monotonic()
        worker.busy = False
        keep = (
            reuse
            and worker.alive
            and not self._stop.is_set()
            and self._current.get(worker.spec.slot) == worker.spec.key
        )
        if keep:
            with self._cond:
                self._idle.setdefault(worker.spec.key, []).append(worker)
                self._cond.notify_all()
            return
        self._destroy(worker)

    def _destroy(self, worker: Worker) -> None:
        if worker.busy:  # its invocation is still reading: it cleans up when released
            worker.kill()
        else:
            worker.cleanup()
        with self._cond:
            if worker in self._all:
                self._all.discard(worker)
                self._count[worker.spec.key] -= 1
                if not self._count[worker.spec.key]:
                    del self._count[worker.spec.key]
            for workers in self._idle.values():
                if worker in workers:
                    workers.remove(worker)
            self._cond.notify_all()

    # ------------------------------------------------------------------ housekeeping
    def _reap_loop(self) -> None:
        while not self._stop.wait(min(5.0, max(self.idle_seconds / 4, 0.05))):
            cutoff = time.monotonic() - self.idle_seconds
            with self._cond:
                stale = [w for ws in self._idle.values() for w in ws if w.last_used < cutoff]
                for w in stale:
                    self._idle[w.spec.key].remove(w)
            for w in stale:
                self._destroy(w)

    def clear(self) -> None:
        """Kill every worker (busy ones too: their invocations fail)."""
        with self._cond:
            workers = list(self._all)
            self._idle.clear()
            self._current.clear()
        for w in workers:
            self._destroy(w)

    def shutdown(self) -> None:
        self._stop.set()
        self.clear()
        with self._cond:
            self._cond.notify_all()

    def pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in self._all if w.alive]

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "workers": len(self._all),
                "idle": sum(len(v) for v in self._idle.values()),
                "busy": len(self._all) - sum(len(v) for v in self._idle.values()),
            }
