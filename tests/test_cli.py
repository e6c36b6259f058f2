"""The ``rdslab`` command: up (a lab for terminals), status, doctor."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import psutil

RDSLAB = [sys.executable, "-m", "rdslab.cli"]


def test_up_serves_a_lab_to_other_processes_and_stops_cleanly() -> None:
    home = Path(tempfile.mkdtemp(prefix="rdslab-cli-"))
    home.chmod(0o755)  # the unprivileged server user must traverse it when tests run as root
    env = dict(os.environ, RDSLAB_HOME=str(home), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(RDSLAB + ["up"], env=env, stdout=subprocess.PIPE, text=True)
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline and "Ctrl-C" not in "".join(exports):
        line = proc.stdout.readline()
        if line.startswith("export "):
            key, value = line[len("export ") :].strip().split("=", 1)
            exports[key] = value
        if "Ctrl-C" in line:
            break
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert exports["AWS_DEFAULT_REGION"] == "us-east-1"
    rds = boto3.client(
        "rds",
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
    )
    rds.create_db_instance(
        DBInstanceIdentifier="from-a-terminal",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword="Sup3rSecret!",
        AllocatedStorage=20,
    )
    status = subprocess.run(RDSLAB + ["status"], env=env, capture_output=True, text=True)
    assert "from-a-terminal" in status.stdout and "up" in status.stdout
    server_pids = [
        p.pid for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "postgres"
    ]
    assert server_pids
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    time.sleep(0.2)
    assert not [
        p
        for p in server_pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    status = subprocess.run(RDSLAB + ["status"], env=env, capture_output=True, text=True)
    assert "No lab is running" in status.stdout
    shutil.rmtree(home, ignore_errors=True)


def test_doctor_reports_binaries_and_leftovers() -> None:
    out = subprocess.run(RDSLAB + ["doctor"], capture_output=True, text=True, timeout=120)
    assert "PostgreSQL" in out.stdout and "dblink" in out.stdout
    assert "leftover server(s)" in out.stdout
    assert out.returncode in (0, 1)


def test_course_lab_serves_the_whole_course_with_the_welcome_page_open(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`python3 course.py lab`: exercises/ must be in JupyterLab's file browser, not just notebooks/."""
    import importlib.util
    import subprocess
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "course.py"
    spec = importlib.util.spec_from_file_location("course", path)
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)  # type: ignore[union-attr]
    calls: list[list[str]] = []
    monkeypatch.setattr(course, "setup", lambda: None)
    monkeypatch.setattr(subprocess, "call", lambda args, **kw: calls.append(args) or 0)
    monkeypatch.chdir(path.parent)
    assert course.main(["lab"]) == 0
    (args,) = calls
    assert f"--ServerApp.root_dir={path.parent}" in args
    assert "notebooks/00-welcome.ipynb" in args
