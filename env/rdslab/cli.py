"""``rdslab``: the lab from a terminal.

rdslab up                 run the lab in the foreground; prints the environment to export
rdslab status             labs running on this machine and their DB servers
rdslab doctor [--reap]    binaries, ports, permissions and leftovers (--reap stops leftovers)
rdslab grade DIR [--out grades.csv] [--timeout 120]
                          score a folder of submitted notebooks (instructors)
rdslab bench startup|invoke|events
                          measure the lab against a baseline on this machine (ratios)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from typing import Any

from . import config


def cmd_up(args: argparse.Namespace) -> int:
    import rdslab

    lab = rdslab.start()
    print(
        f"rds-lambda-lab is running: moto endpoint {lab.endpoint}, account {lab.account_id}, "
        f"region {lab.region}."
    )
    print("Export this in another terminal to use psql, the AWS CLI or scripts with the lab:\n")
    for key, value in lab.environment().items():
        print(f"export {key}={value}")
    print("\nCtrl-C stops the lab and every DB server it started.", flush=True)
    stop = {"now": False}

    def handler(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    try:
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        print("Stopping the lab ...", flush=True)
        lab.stop()
    return 0


def _labs() -> list[dict[str, Any]]:
    import psutil

    root = config.state_dir() / "instances"
    labs = []
    if not root.exists():
        return labs
    for lab_dir in sorted(root.iterdir()):
        try:
            owner = json.loads((lab_dir / "owner.json").read_text())
        except (OSError, ValueError):
            continue
        servers = []
        for datadir in sorted(lab_dir.glob("*/data")):
            try:
                lines = (datadir / "postmaster.pid").read_text().splitlines()
                pid, port = int(lines[0]), int(lines[3])
                running = psutil.pid_exists(pid)
            except (OSError, ValueError, IndexError):
                pid, port, running = None, None, False
            servers.append(
                {"instance": datadir.parent.name, "pid": pid, "port": port, "running": running}
            )
        labs.append(
            {
                "lab": lab_dir.name,
                "owner_pid": owner.get("pid"),
                "alive": psutil.pid_exists(owner.get("pid", -1)),
                "servers": servers,
            }
        )
    return labs


def cmd_status(args: argparse.Namespace) -> int:
    labs = _labs()
    if not labs:
        print("No lab is running on this machine.")
        return 0
    for lab in labs:
        state = "running" if lab["alive"] else "DEAD (leftover: rdslab doctor --reap)"
        print(f"lab {lab['lab']}  owner pid {lab['owner_pid']}  {state}")
        for s in lab["servers"]:
            where = f"127.0.0.1:{s['port']}" if s["port"] else "-"
            print(
                f"  {s['instance']:<30} {where:<18} pid {s['pid']}  "
                f"{'up' if s['running'] else 'down'}"
            )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import databases, pgbin

    ok = True

    def line(good: bool, text: str) -> None:
        nonlocal ok
        ok = ok and good
        print(f"[{'ok' if good else '!!'}] {text}")

    print(f"Python {sys.version.split()[0]} at {sys.executable}")
    try:
        import boto3
        import moto

        line(True, f"moto {moto.__version__}, boto3 {boto3.__version__}")
    except ImportError as exc:
        line(False, f"missing package: {exc}")
    try:
        binaries = pgbin.find()
        line(True, f"PostgreSQL {binaries.version} ({binaries.source}) in {binaries.bindir}")
        line((binaries.pkglibdir / "dblink.so").exists(), "dblink (contrib) is available")
        walinspect = (binaries.pkglibdir / "pg_walinspect.so").exists()
        print(
            f"[{'ok' if walinspect else '--'}] pg_walinspect (contrib) "
            + (
                "is available: Event invokes take the WAL fast path"
                if walinspect
                else "is missing (PostgreSQL < 15?): Event invokes go through the outbox, slower"
            )
        )
        installed = all((binaries.extension_dir / n).exists() for n in databases.EXTENSION_FILES)
        writable = os.access(binaries.extension_dir, os.W_OK)
        line(
            installed or writable,
            "aws_lambda extension files "
            + (
                "installed"
                if installed
                else "will be installed at first start"
                if writable
                else f"cannot be written to {binaries.extension_dir}"
            ),
        )
    except pgbin.PgBinariesError as exc:
        line(False, str(exc))
    user = pgbin.server_user()
    print(
        f"[ok] servers run as {'this user' if user is None else user.pw_name + ' (lab runs as root)'}"
    )
    state = config.state_dir()
    line(os.access(state, os.W_OK), f"state directory {state}")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 0))
            line(True, "can bind ports on 127.0.0.1")
        except OSError as exc:
            line(False, f"cannot bind on 127.0.0.1: {exc}")
    leftovers = databases.find_leftovers()
    running = [item for item in leftovers if item["pid"]]
    line(
        not running,
        f"{len(running)} leftover server(s) from labs that died"
        + (" (rdslab doctor --reap stops them)" if running and not args.reap else ""),
    )
    if args.reap and leftovers:
        print(f"     reaped {databases.reap_leftovers()} server(s)")
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args.what)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:  # the gradebook has its own options (and --help)
        from .grading import gradebook

        return int(gradebook.main(argv[1:]) or 0)
    parser = argparse.ArgumentParser(
        prog="rdslab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the lab in the foreground").set_defaults(func=cmd_up)
    sub.add_parser("status", help="labs and servers on this machine").set_defaults(func=cmd_status)
    doctor = sub.add_parser("doctor", help="check the machine")
    doctor.add_argument("--reap", action="store_true", help="stop servers left by dead labs")
    doctor.set_defaults(func=cmd_doctor)
    sub.add_parser("grade", help="score submitted notebooks (rdslab grade --help)")
    bench = sub.add_parser("bench", help="benchmarks (ratios against a baseline)")
    bench.add_argument("what", choices=["startup", "invoke", "events", "all"])
    bench.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
