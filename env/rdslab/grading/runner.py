"""Execute a notebook in a fresh kernel and collect what its checks recorded.

Used by the gradebook and by the both-directions tests. Each run gets its own kernel (the
``python3`` kernel of the current environment), its own ``RDSLAB_GRADE_LOG`` file and a per-cell
timeout. Errors never stop the run: every cell's error is recorded (with whether the cell was
tagged ``raises-exception``); a cell that runs too long is interrupted and the run goes on; if
the kernel ignores the interrupt (the next cell times out too) or dies, the run stops there.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .core import LOG_ENV

TIMEOUT_ENAME = "CellTimeoutError"


@dataclass
class CellError:
    index: int
    ename: str
    evalue: str
    tagged: bool  # the cell carries the raises-exception tag

    @property
    def timeout(self) -> bool:
        return self.ename == TIMEOUT_ENAME


@dataclass
class RunReport:
    notebook: Any
    errors: list[CellError] = field(default_factory=list)
    stopped: str = ""  # why the run stopped before the last cell ("" if it did not)
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def results(self) -> dict[str, dict[str, Any]]:
        """The latest record of each exercise checked during the run."""
        return {r["exercise"]: r for r in self.records}


def read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


async def run_notebook_async(
    nb: Any,
    *,
    timeout: int = 120,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    prelude: str = "",
    startup_timeout: int = 60,
) -> RunReport:
    """Run every cell of ``nb`` in a fresh kernel and report (``report.notebook`` has the outputs).

    ``prelude`` runs first, unseen, with at least ``startup_timeout`` seconds (e.g. starting the lab).
    """
    nb = nbformat.from_dict(nb)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rdslab-run-") as tmp:
        log = Path(tmp) / "grades.jsonl"
        kernel_env = {**os.environ, **(env or {}), LOG_ENV: str(log)}
        report = RunReport(nb)
        errors: dict[int, tuple[str, str]] = {}

        def on_error(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
            content = execute_reply.get("content", {})
            errors[cell_index] = (str(content.get("ename", "")), str(content.get("evalue", "")))

        setup = nbformat.v4.new_code_cell(prelude)

        def cell_timeout(cell: Any) -> int:
            return max(timeout, startup_timeout) if cell is setup else timeout

        client = NotebookClient(
            nb,
            timeout=timeout,
            timeout_func=cell_timeout,
            startup_timeout=startup_timeout,
            kernel_name="python3",
            extra_arguments=[
                "--IPKernelApp.log_level=ERROR"
            ],  # not the TCP-without-encryption warning
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": TIMEOUT_ENAME,
                "evalue": f"the cell ran longer than {timeout} s and was interrupted",
                "traceback": [],
            },
            record_timing=False,
            on_cell_error=on_error,
            resources={"metadata": {"path": str(cwd or tmp)}},
        )
        current = -1
        try:
            async with client.async_setup_kernel(env=kernel_env):
                if prelude:
                    await client.async_execute_cell(setup, -1, store_history=False)
                previous_timeout = False
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    current = index
                    await client.async_execute_cell(
                        cell, index, execution_count=client.code_cells_executed + 1
                    )
                    ename = errors.get(index, ("", ""))[0]
                    if ename == TIMEOUT_ENAME and previous_timeout:
                        report.stopped = f"cell {index}: the kernel did not answer after an interrupt; run stopped"
                        client.shutdown_kernel = (
                            "immediate"  # a graceful shutdown would wait for it
                        )
                        break
                    previous_timeout = ename == TIMEOUT_ENAME
        except DeadKernelError:
            report.stopped = f"the kernel died in cell {current}; run stopped"
        except Exception as exc:  # noqa: BLE001 - a run must always produce a report
            report.stopped = f"{type(exc).__name__}: {exc}".strip()
        if -1 in errors:
            report.stopped = (
                report.stopped or f"the setup code failed: {errors[-1][0]}: {errors[-1][1]}"
            )
        for index, (ename, evalue) in sorted(errors.items()):
            if index >= 0:
                tagged = "raises-exception" in nb.cells[index].metadata.get("tags", [])
                report.errors.append(CellError(index, ename, evalue, tagged))
        report.records = read_log(log)
    report.seconds = time.perf_counter() - started
    return report


def run_notebook(nb: Any, **kwargs: Any) -> RunReport:
    """Synchronous :func:`run_notebook_async`."""
    return asyncio.run(run_notebook_async(nb, **kwargs))
