"""MariaDB binaries for Aurora MySQL instances: which ones, the server settings, the template.

The lab looks for a MariaDB >= 10.11 server (``mariadbd``, or ``mysqld`` when it is MariaDB's)
and ``mariadb-install-db``: in ``RDSLAB_MYSQL_BINDIR`` if set, else on PATH and in the usual
``sbin`` directories. 10.11 is the first with ``GRANT ... TO PUBLIC``; FederatedX
(``ha_federatedx``) must be in the plugin directory (Debian's ``mariadb-server`` has both).
MySQL 8 is recognised but not supported: it has no FederatedX and no ``TO PUBLIC`` grants,
which the emulation needs.

As for PostgreSQL (``pgbin``), servers run as an unprivileged user when the lab runs as root,
and new instances copy a template data directory built once per binaries + SQL version.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .. import config, pgbin
from . import sql

INSTALL_HINT = (
    "Install MariaDB >= 10.11 (Debian/Ubuntu: apt-get install mariadb-server; macOS: brew "
    "install mariadb; conda: conda install -c conda-forge mariadb), or point RDSLAB_MYSQL_BINDIR "
    "at the directory holding mariadbd. The lab starts its own server per DB instance; the "
    "system service is not used."
)
SEARCH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")


class MySQLBinariesError(RuntimeError):
    """No usable MySQL-family server (with a hint on how to get one)."""


@dataclass(frozen=True)
class Binaries:
    """One MariaDB installation."""

    server: Path  # mariadbd
    install_db: Path  # mariadb-install-db
    version: str  # e.g. "10.11.19"
    plugin_dir: Path

    @property
    def label(self) -> str:
        return f"MariaDB {self.version}"


def _which(name: str, bindir: str | None) -> Path | None:
    places = [bindir] if bindir else [*os.environ.get("PATH", "").split(os.pathsep), *SEARCH]
    for place in places:
        if place and (Path(place) / name).is_file() and os.access(Path(place) / name, os.X_OK):
            return Path(place) / name
    return None


def _version(server: Path) -> str:
    out = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


@cache
def find() -> Binaries:
    """The MariaDB server the lab uses (see the module docstring)."""
    bindir = os.environ.get("RDSLAB_MYSQL_BINDIR")
    server = _which("mariadbd", bindir) or _which("mysqld", bindir)
    if server is None:
        where = f"in {bindir}" if bindir else "on PATH or in /usr/sbin"
        raise MySQLBinariesError(f"No MariaDB server (mariadbd) found {where}. {INSTALL_HINT}")
    text = _version(server)
    found = re.search(r"Ver (\d+)\.(\d+)\.(\d+)", text)
    if "mariadb" not in text.lower() or found is None:
        raise MySQLBinariesError(
            f"{server} is not MariaDB ({text or 'no version'}): the lab's Aurora MySQL emulation "
            "needs MariaDB's FederatedX engine and GRANT ... TO PUBLIC, which MySQL lacks. "
            + INSTALL_HINT
        )
    major, minor, patch = (int(x) for x in found.groups())
    if (major, minor) < (10, 11):
        raise MySQLBinariesError(
            f"MariaDB {major}.{minor}.{patch} in {server} is too old (the lab needs >= 10.11). "
            + INSTALL_HINT
        )
    install_db = _which("mariadb-install-db", bindir) or _which("mysql_install_db", bindir)
    if install_db is None:
        raise MySQLBinariesError(f"mariadb-install-db not found next to {server}. {INSTALL_HINT}")
    plugin_dir = _plugin_dir(server)
    if not (plugin_dir / "ha_federatedx.so").exists():
        raise MySQLBinariesError(
            f"MariaDB in {server} has no FederatedX engine ({plugin_dir}/ha_federatedx.so). "
            + INSTALL_HINT
        )
    return Binaries(server, install_db, f"{major}.{minor}.{patch}", plugin_dir)


def _plugin_dir(server: Path) -> Path:
    out = subprocess.run(
        [str(server), "--no-defaults", "--verbose", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for line in out.splitlines():
        if line.startswith("plugin-dir "):
            return Path(line.split(None, 1)[1].strip())
    return server.parent.parent / "lib" / "mysql" / "plugin"


def driver() -> Any:
    """The PyMySQL module (the lab's client library for MariaDB)."""
    try:
        import pymysql
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MySQLBinariesError(
            "The Python driver for MariaDB is missing: pip install pymysql"
        ) from exc
    return pymysql


# --------------------------------------------------------------------------- server settings
SETTINGS: dict[str, str] = {
    "bind-address": "127.0.0.1",
    "skip-name-resolve": "ON",
    "plugin-load-add": "ha_federatedx",
    "character-set-server": "utf8mb4",
    # Aurora v3's default utf8mb4_0900_ai_ci exists in MariaDB only from 11.4
    "collation-server": "utf8mb4_general_ci",
    "default-time-zone": "+00:00",
    "lc-messages": "en_US",
    "skip-log-bin": "ON",
    "performance-schema": "OFF",
    "innodb-buffer-pool-size": "32M",
    "innodb-log-file-size": "8M",
    "innodb-data-file-path": "ibdata1:10M:autoextend",
    "innodb-autoextend-increment": "4",
    "innodb-flush-log-at-trx-commit": "2",  # a lab instance trades durability for speed
    "innodb-doublewrite": "OFF",
    "max-connections": "200",
    "max-allowed-packet": "64M",
    "thread-cache-size": "16",
    "table-open-cache": "400",
    "lower-case-table-names": "0",
    "explicit-defaults-for-timestamp": "ON",
}


def config_text(datadir: Path, port: int | None, socket: Path) -> str:
    lines = ["[mariadbd]", f"datadir={datadir}", f"socket={socket}"]
    lines += [f"pid-file={datadir / 'mysqld.pid'}", f"log-error={datadir / 'error.log'}"]
    lines += [f"port={port}"] if port else ["skip-networking"]
    lines += [f"{key}={value}" for key, value in SETTINGS.items()]
    return "\n".join(lines) + "\n"


def template_version() -> str:
    body = repr(SETTINGS) + "\n".join(sql.template_setup("x", "y"))
    return hashlib.sha256(body.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- template
def build_template(binaries: Binaries) -> tuple[Path, str, str]:
    """(template data directory, admin password, loopback password), built once, locked."""
    root = config.state_dir() / "templates"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    name = f"mariadb-{binaries.version}-{template_version()}"
    target = root / name
    secret_file = root / f"{name}.secret"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "data" / "mysql").is_dir() and secret_file.exists():
            admin, loop = secret_file.read_text().split()
            return target, admin, loop
        shutil.rmtree(target, ignore_errors=True)
        work = root / f"{name}.building"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o755)
        data = work / "data"
        data.mkdir(mode=0o700)
        # a short socket path (sun_path holds 108 bytes), private to the server user
        sockdir = Path(tempfile.mkdtemp(prefix="rdslab-my-"))
        cnf = work / "my.cnf"
        cnf.write_text(config_text(data, None, sockdir / "s"))
        cnf.chmod(0o644)
        pgbin.chown_tree(work)
        pgbin.chown_tree(sockdir)
        admin, loop = secrets.token_hex(16), secrets.token_hex(16)
        try:
            _install_db(binaries, cnf, data)
            _run_setup(binaries, cnf, data, sockdir / "s", admin, loop)
        finally:
            shutil.rmtree(sockdir, ignore_errors=True)
        for leftover in ("error.log", "mysqld.pid"):
            (data / leftover).unlink(missing_ok=True)
        work.rename(target)
        secret_file.write_text(f"{admin}\n{loop}\n")
        secret_file.chmod(0o600)
        return target, admin, loop


def _install_db(binaries: Binaries, cnf: Path, data: Path) -> None:
    try:
        subprocess.run(
            [
                str(binaries.install_db),
                f"--defaults-file={cnf}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                f"--basedir={binaries.server.parent.parent}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
            **pgbin.popen_kwargs(),  # type: ignore[arg-type]
        )
    except subprocess.CalledProcessError as exc:
        log = (data / "error.log").read_text(errors="replace")[-1500:] if data.exists() else ""
        raise MySQLBinariesError(
            f"mariadb-install-db failed: {exc.stderr.decode(errors='replace')[-1500:]}{log}"
        ) from exc


def _run_setup(
    binaries: Binaries, cnf: Path, data: Path, socket: Path, admin: str, loop: str
) -> None:
    proc = subprocess.Popen(
        [str(binaries.server), f"--defaults-file={cnf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **pgbin.popen_kwargs(),  # type: ignore[arg-type]
    )
    try:
        conn = wait_ready(proc, data, unix_socket=str(socket), user="root", password="")
        with conn.cursor() as cur:
            for statement in sql.template_setup(admin, loop):
                cur.execute(statement)
            cur.execute("SELECT User, Host FROM mysql.user WHERE is_role = 'N'")
            for statement in sql.drop_bootstrap_users(list(cur.fetchall())):
                cur.execute(statement)
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_ready(proc: subprocess.Popen[bytes], data: Path, timeout: float = 60.0, **kw: Any) -> Any:
    """Connect as soon as the server accepts connections (or fail with its error log)."""
    pymysql = driver()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (data / "error.log").read_text(errors="replace")[-2000:]
            raise MySQLBinariesError(f"mariadbd exited with code {proc.returncode}: {log}")
        try:
            return pymysql.connect(autocommit=True, connect_timeout=2, **kw)
        except pymysql.err.OperationalError as exc:
            last = exc
            time.sleep(0.02)
    raise MySQLBinariesError(f"mariadbd in {data} did not accept connections: {last}")
