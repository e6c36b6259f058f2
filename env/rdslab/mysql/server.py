"""One real MariaDB server per Aurora MySQL writer instance, and the manager of them all.

A server is a copy of the template data directory (see ``binaries``) started on its own port on
127.0.0.1, running as the unprivileged server user when the lab runs as root. Creating an
instance also creates the real master user (``'<user>'@'%'`` with its password), the initial
database, the loopback tables of the emulation and the native functions in that database.

Files live under ``<state dir>/mysql/<lab id>/``; ``owner.json`` names the lab's process so that
a later lab stops servers left behind by a killed kernel (``reap_leftovers``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .. import config, pgbin
from ..aws import free_port
from ..serverproc import ServerProcess, ServerRegistry
from . import binaries, sql

V3_LAMBDA_ASYNC_WARNING = (
    "mysql.lambda_async is deprecated and Aurora MySQL version 3 does not have it (the lab keeps "
    "it for older examples): use lambda_async()"
)


def aurora_version(engine_version: str | None) -> str:
    """'8.0.mysql_aurora.3.08.0' -> '3.08.0' (what AURORA_VERSION() returns)."""
    text = engine_version or ""
    return text.split("mysql_aurora.", 1)[1] if "mysql_aurora." in text else text


@dataclass
class MyServer(ServerProcess):
    """A running (or stopped) MariaDB server behind one DB instance."""

    identifier: str
    directory: Path
    port: int
    master_username: str
    binaries: binaries.Binaries
    admin_password: str
    engine_version: str
    engine: str = "aurora-mysql"
    proc: subprocess.Popen[bytes] | None = None
    status: str = "stopped"
    started_at: float | None = None
    listeners: list[Callable[[str, MyServer], None]] = field(default_factory=list, repr=False)

    SIGNALS = {"fast": signal.SIGTERM, "immediate": signal.SIGKILL}
    STOP_TIMEOUT = 60.0

    @property
    def aurora_version(self) -> str:
        return aurora_version(self.engine_version)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.pid is not None:
            return
        cnf = self.directory / "my.cnf"
        cnf.write_text(binaries.config_text(self.datadir, self.port, self.directory / "s.sock"))
        cnf.chmod(0o644)
        (self.datadir / "mysqld.pid").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [str(self.binaries.server), f"--defaults-file={cnf}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith(("MYSQL", "AWS_"))},
            start_new_session=True,  # Ctrl-C in the kernel must not kill the database
            **pgbin.popen_kwargs(),  # type: ignore[arg-type]
        )
        conn = binaries.wait_ready(self.proc, self.datadir, **self._admin_kwargs())
        conn.close()
        self.status = "running"
        self.started_at = time.time()
        self._notify("started")

    def _admin_kwargs(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "rdsadmin",
            "password": self.admin_password,
        }

    def admin_connect(self, database: str | None = None) -> Any:
        """A connection as the internal admin user (never handed to learners)."""
        pymysql = binaries.driver()
        return pymysql.connect(
            database=database, autocommit=True, connect_timeout=5, **self._admin_kwargs()
        )


class MySQLManager(ServerRegistry):
    """All MariaDB servers of one lab. Binaries and template are found on first use, so a
    machine without MariaDB runs the rest of the course and fails only an Aurora MySQL create."""

    def __init__(self) -> None:
        self.lab_id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.root = config.state_dir() / "mysql"
        self.servers: dict[str, MyServer] = {}
        self.listeners: list[Callable[[str, MyServer], None]] = []
        self._lock = threading.RLock()
        self._ready: tuple[binaries.Binaries, Path, str, str] | None = None
        self._directory: Path | None = None
        if self.root.exists():
            reap_leftovers(self.root)  # servers of a killed kernel go at once, not at first use

    # ------------------------------------------------------------------ lazy set-up
    def prepare(self) -> tuple[binaries.Binaries, Path, str, str]:
        """(binaries, template, admin password, loopback password); raises MySQLBinariesError."""
        with self._lock:
            if self._ready is None:
                found = binaries.find()
                binaries.driver()
                template, admin, loop = binaries.build_template(found)
                self._ready = (found, template, admin, loop)
            return self._ready

    @property
    def directory(self) -> Path:
        with self._lock:
            if self._directory is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self.root.chmod(0o755)
                reap_leftovers(self.root)
                staging = self.root / f".{self.lab_id}"
                staging.mkdir(mode=0o755)
                (staging / "owner.json").write_text(
                    json.dumps({"pid": os.getpid(), "started": time.time()})
                )
                self._directory = self.root / self.lab_id
                staging.rename(self._directory)
            return self._directory

    # ------------------------------------------------------------------ creation
    def create(
        self,
        identifier: str,
        master_username: str,
        master_password: str,
        db_name: str | None,
        engine_version: str,
    ) -> MyServer:
        """Start a copy of the template; create the master user and the initial database."""
        found, template, admin, loop = self.prepare()
        directory = self.directory / f"i-{uuid.uuid4().hex[:8]}"  # short: the socket lives here
        directory.mkdir(mode=0o700)
        copied = subprocess.run(
            ["cp", "-a", str(template / "data"), str(directory / "data")],
            capture_output=True,
            text=True,
        )
        if copied.returncode != 0:
            raise binaries.MySQLBinariesError(f"could not copy the template: {copied.stderr}")
        pgbin.chown_tree(directory)
        server = MyServer(
            identifier=identifier,
            directory=directory,
            port=free_port(),
            master_username=master_username,
            binaries=found,
            admin_password=admin,
            engine_version=engine_version,
        )
        server.listeners.append(self._relay)
        try:
            server.start()
            conn = server.admin_connect()
            try:
                with conn.cursor() as cur:
                    for statement in sql.instance_setup(server.port, loop):
                        cur.execute(statement)
                    if server.aurora_version.startswith("3"):
                        cur.execute(sql.lambda_async_procedure(V3_LAMBDA_ASYNC_WARNING))
                    for statement in sql.master_user(master_username, master_password):
                        cur.execute(statement)
                    if db_name:
                        cur.execute(f"CREATE DATABASE `{db_name.replace('`', '``')}`")
                if db_name:
                    self.install_functions(server, db_name, conn)
            finally:
                conn.close()
        except Exception:
            server.destroy()
            raise
        with self._lock:
            self.servers[identifier] = server
        self._relay("created", server)
        return server

    def install_functions(self, server: MyServer, database: str, conn: Any = None) -> None:
        """Create lambda_sync, lambda_async and aurora_version in ``database``."""
        own = conn is None
        conn = conn or server.admin_connect()
        try:
            with conn.cursor() as cur:
                for statement in sql.database_functions(database, server.aurora_version):
                    cur.execute(statement)
        finally:
            if own:
                conn.close()

    # ------------------------------------------------------------------ lookup and removal
    def status_frame(self) -> Any:
        import pandas as pd

        columns = ["identifier", "engine", "server", "endpoint", "pid", "mariadb"]
        rows = [
            [s.identifier, s.engine, s.status, f"127.0.0.1:{s.port}", s.pid, s.binaries.version]
            for s in self.servers.values()
        ]
        return pd.DataFrame(rows, columns=columns)

    def reset(self) -> None:
        """Stop and remove every server (moto reset, lab stop)."""
        with self._lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            self._relay("deleted", server)
            server.destroy()

    def shutdown(self) -> None:
        self.reset()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


# --------------------------------------------------------------------------- leftovers
def _server_pid(datadir: Path) -> int | None:
    try:
        pid = int((datadir / "mysqld.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        return pid if str(datadir.parent) in " ".join(psutil.Process(pid).cmdline()) else None
    except psutil.Error:
        return None


def find_leftovers(root: Path) -> list[dict[str, Any]]:
    """Lab directories whose owning process is gone, with any server still running there."""
    found: list[dict[str, Any]] = []
    if not root.exists():
        return found
    for lab_dir in root.iterdir():
        if lab_dir.name.startswith("."):
            continue
        try:
            pid = json.loads((lab_dir / "owner.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            pid = None
        if pid is not None and (pid == os.getpid() or psutil.pid_exists(pid)):
            continue
        pids = [_server_pid(d) for d in lab_dir.glob("*/data")]
        found.append({"lab": lab_dir, "pids": [p for p in pids if p]})
    return found


def reap_leftovers(root: Path) -> int:
    """Stop servers left behind by labs whose process died; remove their files."""
    stopped = 0
    for item in find_leftovers(root):
        for pid in item["pids"]:
            try:
                proc = psutil.Process(pid)
                proc.kill()
                proc.wait(10)
                stopped += 1
            except psutil.Error:
                pass
        shutil.rmtree(item["lab"], ignore_errors=True)
    return stopped
