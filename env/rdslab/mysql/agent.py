"""The agent: serves ``lambda_sync`` / ``lambda_async`` requests of every MariaDB server.

A thread of the lab polls each server's outbox (``rdsadmin.lambda_requests``, a few ms apart
while busy, slower when idle; MariaDB has no LISTEN/NOTIFY), claims pending rows, and a pool
runs each one: Aurora MySQL's access rules (``iam``), then the Lambda runtime in-process, then
the answer or an error with Aurora's errno and words, which the waiting stored function raises.
The agent holds the user lock ``rdslab_agent`` on each server: without it, SQL fails at once.

The same loop gives every new database its native functions: it notices a new directory in the
data directory (or, every second, a database whose functions were dropped) and creates them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .. import access, config, outbox
from . import iam, sql
from .server import MyServer, MySQLManager

log = logging.getLogger("rdslab.mysql.agent")
BUSY_POLL = 0.002  # seconds between polls while requests flow
IDLE_POLL = 0.02
BUSY_FOR = 2.0  # stay on the busy poll this long after the last request
RECHECK_FUNCTIONS = 1.0
CONNECT_TIMEOUT = 1.0  # the AWS C++ SDK's default connectTimeoutMs (lab's reading)
KEEP_ROWS, PRUNE_EVERY = 5000, 500
NAME_PATTERN = re.compile(
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
MAX_MESSAGE = 500  # bytes: MariaDB's MESSAGE_TEXT holds 512


class Failure(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


@dataclass
class Request:
    id: int
    function_name: str | None
    payload: bytes | None
    invocation_type: str


class _Link:
    """The agent's connections to one server: polling (holds the lock) and writing."""

    def __init__(self, server: MyServer) -> None:
        self.server = server
        self.poll = server.admin_connect("rdsadmin")
        with self.poll.cursor() as cur:
            cur.execute(f"SELECT GET_LOCK('{sql.AGENT_LOCK}', 0)")
        self.write = server.admin_connect("rdsadmin")
        self.write_lock = threading.Lock()
        self.completed = 0
        self.datadir_mtime = 0
        self.checked_at = 0.0

    def close(self) -> None:
        for conn in (self.poll, self.write):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class Agent:
    """One polling thread for all MariaDB servers, a pool that runs the invokes."""

    def __init__(self, lab: Any, manager: MySQLManager) -> None:
        self.lab = lab
        self.manager = manager
        self.links: dict[str, _Link] = {}
        self.enabled = True  # tests switch the agent off to see SQL fail fast
        self.connect_timeout = CONNECT_TIMEOUT
        self.keep_rows, self.prune_every = KEEP_ROWS, PRUNE_EVERY
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="rdslab-mysql")
        self._stop = threading.Event()
        self._busy_until = 0.0
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None  # started with the first server
        manager.listeners.append(self._on_server)

    # ------------------------------------------------------------------ servers
    def _on_server(self, what: str, server: MyServer) -> None:
        if what in {"started", "created"}:
            with self._lock:
                if server.identifier in self.links or not self.enabled or server.pid is None:
                    return
                try:
                    self.links[server.identifier] = _Link(server)
                except Exception:  # noqa: BLE001 - retried by the loop while it runs
                    log.debug("agent could not connect to %s", server.identifier, exc_info=True)
                    return
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="rdslab-mysql", daemon=True
                    )
                    self._thread.start()
        elif what in {"stopping", "deleted"}:
            self._drop(server.identifier)

    def _drop(self, identifier: str, only: _Link | None = None) -> None:
        with self._lock:
            link = self.links.get(identifier)
            if link is None or (only is not None and link is not only):
                return
            del self.links[identifier]
        link.close()

    def _reconnect(self) -> None:
        """Links lost to an error while their server still runs are opened again."""
        now = time.monotonic()
        if not self.enabled or now < self._retry_at:
            return
        self._retry_at = now + 0.5
        for server in list(self.manager.servers.values()):
            if server.identifier not in self.links and server.status == "running":
                self._on_server("started", server)

    def pause(self) -> None:
        """Disconnect (a lesson/test shows that SQL then fails at once)."""
        self.enabled = False
        for identifier in list(self.links):
            self._drop(identifier)

    def resume(self) -> None:
        self.enabled = True
        for server in list(self.manager.servers.values()):
            self._on_server("started", server)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                links = list(self.links.values())
            for link in links:
                try:
                    if self._claim(link):
                        self._busy_until = time.monotonic() + BUSY_FOR
                    self._watch_databases(link)
                except Exception:  # noqa: BLE001 - the server went away: drop the link
                    if not self._stop.is_set():
                        log.debug("dropping link %s", link.server.identifier, exc_info=True)
                        self._drop(link.server.identifier, only=link)
            self._reconnect()
            busy = time.monotonic() < self._busy_until
            self._stop.wait(BUSY_POLL if busy else IDLE_POLL)

    def _claim(self, link: _Link) -> int:
        with link.poll.cursor() as cur:
            cur.execute(
                "SELECT id, function_name, payload, invocation_type FROM lambda_requests"
                " WHERE state = 'pending' ORDER BY id LIMIT 100"
            )
            rows = cur.fetchall()
            if not rows:
                return 0
            ids = ",".join(str(int(r[0])) for r in rows)
            cur.execute(f"UPDATE lambda_requests SET state = 'running' WHERE id IN ({ids})")
        for row in rows:
            self._pool.submit(self._handle, link, Request(*row))
        return len(rows)

    def _watch_databases(self, link: _Link) -> None:
        """Give a new database (a new directory in the data directory) its functions."""
        try:
            mtime = os.stat(link.server.datadir).st_mtime_ns
        except OSError:
            return
        now = time.monotonic()
        if mtime == link.datadir_mtime and now - link.checked_at < RECHECK_FUNCTIONS:
            return
        link.datadir_mtime, link.checked_at = mtime, now
        with link.write_lock, link.write.cursor() as cur:
            cur.execute(sql.MISSING_FUNCTIONS)
            missing = [r[0] for r in cur.fetchall()]
        for database in missing:
            try:
                with link.write_lock:
                    self.manager.install_functions(link.server, database, link.write)
            except Exception:  # noqa: BLE001 - dropped meanwhile, or a name MariaDB rejects
                log.debug("could not install functions in %s", database, exc_info=True)

    # ------------------------------------------------------------------ one request
    def _handle(self, link: _Link, req: Request) -> None:
        arn = None
        try:
            name = req.function_name or ""
            match = NAME_PATTERN.fullmatch(name)
            if match is None:
                raise Failure(
                    *iam.api_error(
                        "ValidationException",
                        f"1 validation error detected: Value '{name}' at 'functionName' failed "
                        "to satisfy constraint: Member must satisfy regular expression pattern: "
                        + NAME_PATTERN.pattern,
                    )
                )
            region = name.split(":")[3] if name.startswith("arn:") else config.REGION
            arn = access.function_arn(name, None, region)
            explanation = iam.explain(link.server.identifier, arn)
            error = iam.sql_error(explanation)
            if error is not None:
                if error == iam.NETWORK_ERROR:
                    time.sleep(self.connect_timeout)  # the SDK tries to connect until it gives up
                raise Failure(*error)
            self._remember(link, name)
            result = self._invoke(name, req, region)
            if result.function_error:
                body = result.payload.decode("utf-8", "replace")
                raise Failure(
                    1873, f"Lambda function returned error: {result.function_error}. {body}"
                )
            response = result.payload if req.invocation_type == "RequestResponse" else None
            self._reply(link, req, "done", arn, result.status_code, response, None, None)
        except Failure as failure:
            self._reply(link, req, "failed", arn, None, None, failure.errno, failure.message)
        except Exception as exc:  # noqa: BLE001 - never leave a session waiting
            log.exception("agent failure")
            message = iam.api_error("ServiceException", str(exc))
            self._reply(link, req, "failed", arn, None, None, *message)

    def _invoke(self, name: str, req: Request, region: str) -> Any:
        from ..runtime import LambdaApiError

        try:
            return self.lab.runtime.invoke(
                name, req.payload or b"", invocation_type=req.invocation_type, region=region
            )
        except LambdaApiError as err:
            raise Failure(*iam.api_error(err.code, err.message)) from err

    def _current(self, link: _Link) -> _Link:
        """The server's live link (the one a request came in on may have been replaced)."""
        return self.links.get(link.server.identifier) or link

    def _remember(self, link: _Link, name: str) -> None:
        link = self._current(link)
        with link.write_lock, link.write.cursor() as cur:
            cur.execute("INSERT IGNORE INTO lambda_access (function_name) VALUES (%s)", (name,))

    def _reply(
        self,
        link: _Link,
        req: Request,
        state: str,
        arn: str | None,
        status: int | None,
        response: bytes | None,
        errno: int | None,
        message: str | None,
    ) -> None:
        if message is not None:
            message = message.encode()[:MAX_MESSAGE].decode("utf-8", "ignore")
        link = self._current(link)
        try:
            with link.write_lock, link.write.cursor() as cur:
                cur.execute(
                    "UPDATE lambda_requests SET state = %s, function_arn = %s, status_code = %s,"
                    " response = %s, error_code = %s, error_message = %s,"
                    " completed_at = NOW(6) WHERE id = %s",
                    (state, arn, status, response, errno, message, req.id),
                )
                link.completed += 1
                if link.completed % self.prune_every == 0:
                    cur.execute(
                        "DELETE FROM lambda_requests WHERE state IN ('done', 'failed')"
                        " AND id <= (SELECT m FROM (SELECT max(id) - %s AS m"
                        " FROM lambda_requests) t)",
                        (self.keep_rows,),
                    )
        except Exception:  # noqa: BLE001 - server gone: the waiting session is gone too
            log.debug("could not write reply %s", req.id, exc_info=True)

    # ------------------------------------------------------------------ for the lab
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every request written by SQL has been handed to Lambda (True) or the
        timeout passes (False), as ``Bridge.wait_idle`` does for PostgreSQL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                links = list(self.links.values())
            if not outbox.any_true(
                links,
                "SELECT EXISTS (SELECT 1 FROM lambda_requests WHERE state IN ('pending', 'running'))",
            ):
                return True
            time.sleep(0.01)
        return False

    def invalidate_access(self) -> None:
        """Forget verified paths (IAM, network, RDS or Lambda state changed)."""
        with self._lock:
            links = list(self.links.values())
        outbox.execute_on_all(links, "DELETE FROM lambda_access")

    def log(self, identifier: str, limit: int = 50) -> Any:
        """The invocation log of one Aurora MySQL instance, newest last (a DataFrame)."""
        columns = [*outbox.LOG_COLUMNS, "error_code", "error_message", "completed_at"]
        return outbox.log_frame(self.links.get(identifier), "lambda_requests", columns, limit)

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=False)
        for identifier in list(self.links):
            self._drop(identifier)
