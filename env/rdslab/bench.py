"""``rdslab bench``: the lab's speed as ratios against a baseline measured in the same run.

* ``startup``: lab start and create-instance-to-available, against a bare ``initdb`` + start
  of the same PostgreSQL binaries.
* ``invoke``: SQL ``aws_lambda.invoke`` (sync) against a boto3 ``invoke`` of the same function;
  inserts/s into a table with an ``Event`` trigger against the same table without one (the two
  take turns in rounds, each from an idle lab); cold against warm invokes.
* ``events``: time from ``reboot_db_instance`` to a handler receiving the event (SNS and
  EventBridge), see ``rdslab.events.bench``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import pgbin

STARTUP_PROBE = """
import time, json
t0 = time.perf_counter()
import boto3, rdslab
lab = rdslab.start()
t1 = time.perf_counter()
rds = boto3.client("rds")
rds.create_db_instance(DBInstanceIdentifier="bench", Engine="postgres", DBInstanceClass="db.t3.micro",
    MasterUsername="labadmin", MasterUserPassword="Sup3rSecret!", AllocatedStorage=20)
rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="bench")
t2 = time.perf_counter()
lab.stop()
print(json.dumps({"lab_start": t1 - t0, "create_to_available": t2 - t1}))
"""


def _bare_initdb_start(binaries: pgbin.Binaries) -> float:
    from .aws import free_port

    work = Path(tempfile.mkdtemp(prefix="rdslab-bench-"))
    work.chmod(0o755)
    try:
        data = work / "data"
        pgbin.chown_tree(work)
        t0 = time.perf_counter()
        subprocess.run(
            [
                binaries.exe("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **pgbin.popen_kwargs(),
        )  # type: ignore[arg-type]
        proc = subprocess.Popen(
            [
                binaries.exe("postgres"),
                "-D",
                str(data),
                "-p",
                str(free_port()),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **pgbin.popen_kwargs(),
        )  # type: ignore[arg-type]
        pgbin.wait_ready(data, proc)
        elapsed = time.perf_counter() - t0
        proc.terminate()
        proc.wait(30)
        return elapsed
    finally:
        shutil.rmtree(work, ignore_errors=True)


def startup(runs: int = 5) -> dict[str, Any]:
    binaries = pgbin.find()
    labs, creates, bares = [], [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", STARTUP_PROBE], capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"the startup probe failed:\n{out.stderr[-3000:]}")
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        labs.append(figures["lab_start"])
        creates.append(figures["create_to_available"])
        bares.append(_bare_initdb_start(binaries))
    result = {
        "runs": runs,
        "lab_start_s": statistics.median(labs),
        "create_to_available_s": statistics.median(creates),
        "bare_initdb_and_start_s": statistics.median(bares),
    }
    result["create_vs_bare_ratio"] = (
        result["create_to_available_s"] / result["bare_initdb_and_start_s"]
    )
    return result


def _print(title: str, figures: dict[str, Any]) -> None:
    print(title)
    for key, value in figures.items():
        print(f"  {key:<36} {value:.4f}" if isinstance(value, float) else f"  {key:<36} {value}")


def main(what: str) -> int:
    if what in {"startup", "all"}:
        _print("startup (medians; ratio < 1 means faster than a bare initdb + start)", startup())
    if what in {"invoke", "all"}:
        from .bench_invoke import invoke

        _print("invoke", invoke())
    if what in {"events", "all"}:
        from .events import bench as events_bench

        _print("events (median seconds from reboot_db_instance to the handler)", events_bench.run())
    return 0
