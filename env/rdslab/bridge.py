"""The bridge room: carries ``aws_lambda.invoke`` from SQL to Lambda and back.

Inside each server, the extension writes a request row into ``rdsadmin.lab.invocations``
through a loopback dblink connection (committed at once) and NOTIFYs ``rdslab_invoke``; an
Event whose access is already verified travels in the WAL instead (``bridge_wal``) and is
relayed into the same table. This agent, a thread of the lab process, LISTENs on every server,
claims rows with
``FOR UPDATE SKIP LOCKED`` (which also drains a backlog after a restart), checks access the way
AWS would (``rdslab.access``: role, trust, policy, network path), calls the Lambda runtime
in-process, writes the answer and NOTIFYs the waiting session's reply channel.

Errors are written with RDS's words so the extension can raise them as they are:
``invoke API failed`` (the API call failed: no access, no function, bad parameter) and
``lambda invocation failed`` (the function ran and raised).
"""

from __future__ import annotations

import base64
import logging
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import outbox
from .bridge_request import (
    InvokeFailure,
    Request,
    api_failed,
    invoke_over_http,
    resolve_function,
)
from .bridge_wal import Verdicts, WalRelay
from .databases import DatabaseManager, DbServer

log = logging.getLogger("rdslab.bridge")

CLAIM_SQL = """
UPDATE lab.invocations SET state = 'running'
 WHERE id IN (SELECT id FROM lab.invocations WHERE state = 'pending'
               ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 100)
RETURNING id, function_name, payload, region, invocation_type, log_type, client_context,
          qualifier, connect_timeout_ms, endpoint_override, backend_pid, waiting
"""
POLL_SECONDS = 0.02  # Event requests that nobody waits for are picked up on this poll
KEEP_ROWS = 5000  # the invocation log keeps about this many finished rows per server
PRUNE_EVERY = 500  # ... pruned after this many completions


class _ServerLink:
    """The agent's two connections to one server's rdsadmin database."""

    def __init__(self, server: DbServer) -> None:
        self.server = server
        self.listen = server.admin_connect("rdsadmin")
        self.listen.set_session(autocommit=True)
        with self.listen.cursor() as cur:
            cur.execute("SET application_name = 'rdslab-agent'")
            cur.execute("LISTEN rdslab_invoke")
        self.write = server.admin_connect("rdsadmin")
        with self.write.cursor() as cur:
            cur.execute("SET application_name = 'rdslab-agent'")
        self.write_lock = threading.Lock()
        self.completed = 0
        relay = server.admin_connect("rdsadmin")
        with relay.cursor() as cur:
            cur.execute("SET application_name = 'rdslab-agent'")
        self.wal = WalRelay(relay)
        self.verdicts = Verdicts(relay, self.wal.lock, "wal" if self.wal.supported else "dblink")

    def fileno(self) -> int:
        return int(self.listen.fileno())

    def close(self) -> None:
        for conn in (self.listen, self.write, self.wal.conn):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class Bridge:
    """The agent: one thread that listens on every server, a pool that runs the invokes."""

    def __init__(self, lab: Any, databases: DatabaseManager) -> None:
        self.lab = lab
        self.databases = databases
        self.links: dict[str, _ServerLink] = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="rdslab-invoke")
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self.enabled = True  # tests switch the agent off to see SQL fail fast
        self._inflight = 0  # requests claimed and not yet answered
        self._inflight_lock = threading.Lock()
        self.keep_rows = KEEP_ROWS
        self.prune_every = PRUNE_EVERY
        databases.listeners.append(self._on_server)
        for server in list(databases.servers.values()):
            if server.pid:
                self._on_server("started", server)
        self._thread = threading.Thread(target=self._loop, name="rdslab-bridge", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ server lifecycle
    def _on_server(self, what: str, server: DbServer) -> None:
        if what in {"started", "created"}:
            with self._lock:
                if server.identifier in self.links or not self.enabled:
                    return
                try:
                    self.links[server.identifier] = _ServerLink(server)
                except Exception:  # noqa: BLE001
                    log.exception("bridge could not connect to %s", server.identifier)
                    return
            os.write(self._wake_w, b"x")
        elif what in {"stopping", "deleted"}:
            self._drop(server.identifier)

    def _drop(self, identifier: str, only: _ServerLink | None = None) -> None:
        """Forget the link to a server (``only``: unless it has been replaced meanwhile)."""
        with self._lock:
            if only is not None and self.links.get(identifier) is not only:
                return
            link = self.links.pop(identifier, None)
        if link is not None:
            link.close()

    def pause(self) -> None:
        """Disconnect the agent (a lesson/test shows that SQL then fails fast)."""
        self.enabled = False
        for identifier in list(self.links):
            self._drop(identifier)

    def resume(self) -> None:
        self.enabled = True
        for server in list(self.databases.servers.values()):
            if server.pid:
                self._on_server("started", server)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                links = list(self.links.values())
            try:
                ready, _, _ = select.select([self._wake_r, *links], [], [], POLL_SECONDS)
            except (OSError, ValueError):
                ready = []
                links = []
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for link in links:
                try:
                    link.listen.poll()
                    link.listen.notifies.clear()
                    self._claim(link)
                    if link.wal.relay():  # Event requests that came through the WAL
                        self._claim(link)
                except Exception:  # noqa: BLE001 - the server went away; drop the link
                    if not self._stop.is_set():
                        log.debug("dropping link to %s", link.server.identifier, exc_info=True)
                        self._drop(link.server.identifier, only=link)

    def _claim(self, link: _ServerLink) -> None:
        with link.write_lock, link.write.cursor() as cur:
            cur.execute(CLAIM_SQL)
            rows = cur.fetchall()
        for row in rows:
            with self._inflight_lock:
                self._inflight += 1
            self._pool.submit(self._handle, link, Request(*row))

    # ------------------------------------------------------------------ one request
    def _handle(self, link: _ServerLink, req: Request) -> None:
        try:
            self._handle_one(link, req)
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def _handle_one(self, link: _ServerLink, req: Request) -> None:
        arn = None
        accepted = False
        generation = link.verdicts.generation  # a verdict is only kept if nothing changed since
        try:
            arn, region, qualifier = resolve_function(req.function_name, req.region, req.qualifier)
            self._check_access(link.server, arn, qualifier, req)
            result = self._invoke(req, arn, region, qualifier)
            accepted = True
            if result.function_error:
                raise InvokeFailure(
                    "lambda invocation failed",
                    f'"{arn}" returned error "{result.function_error}", details: '
                    f'"{result.payload.decode("utf-8", "replace")}".',
                )
            payload = None
            if req.invocation_type == "RequestResponse":
                payload = result.payload.decode("utf-8") or "null"
            self._reply(
                link,
                req,
                "done",
                arn,
                result.status_code,
                payload,
                result.executed_version,
                result.log_result,
                None,
                None,
            )
        except InvokeFailure as failure:
            self._reply(
                link,
                req,
                "failed",
                arn,
                None,
                None,
                None,
                None,
                failure.message,
                failure.detail,
            )
        except Exception as exc:  # noqa: BLE001 - never leave a session waiting
            log.exception("bridge failure")
            self._reply(
                link,
                req,
                "failed",
                arn,
                None,
                None,
                None,
                None,
                "invoke API failed",
                f"AWS Lambda client returned '{exc}'.",
            )
        if accepted:
            # Lambda accepted the call (the function exists and the caller may reach it): the
            # next Event invokes of this function may skip the agent until something changes
            try:
                link.verdicts.add(
                    (req.function_name, req.region or "", req.qualifier or ""), generation
                )
            except Exception:  # noqa: BLE001 - server gone: nothing to remember there
                log.debug("could not record verdict", exc_info=True)

    def _check_access(
        self, server: DbServer, arn: str, qualifier: str | None, req: Request
    ) -> None:
        try:
            from . import access
        except ImportError:  # the access room is optional while the lab is being built
            return
        # a version or alias is authorised on the qualified ARN, as on AWS
        verdict = access.check_invoke(server.identifier, arn, qualifier=qualifier)
        if verdict.ok:
            return
        if verdict.kind == "network":
            # the SDK keeps trying to connect for aws_lambda.connect_timeout_ms
            time.sleep(max(req.connect_timeout_ms, 0) / 1000.0)
        detail = verdict.detail or "AWS Lambda client returned 'Unable to connect to endpoint'."
        raise InvokeFailure("invoke API failed", detail)

    def _invoke(self, req: Request, arn: str, region: str, qualifier: str | None) -> Any:
        from .runtime import LambdaApiError

        context = None
        if req.client_context:
            context = base64.b64encode(req.client_context.encode()).decode()
        payload = (req.payload or "").encode()
        try:
            if req.endpoint_override:
                return invoke_over_http(req, payload, context, region, qualifier)
            return self.lab.runtime.invoke(
                arn,
                payload,
                invocation_type=req.invocation_type,
                log_type=req.log_type,
                client_context=context,
                qualifier=qualifier,
                region=region,
            )
        except LambdaApiError as err:
            raise api_failed(err.message) from err

    def _reply(
        self,
        link: _ServerLink,
        req: Request,
        state: str,
        arn: str | None,
        status: int | None,
        payload: str | None,
        version: str | None,
        log_result: str | None,
        message: str | None,
        detail: str | None,
    ) -> None:
        sql = (
            "UPDATE lab.invocations SET state = %s, function_arn = %s, status_code = %s,"
            " response = %s, executed_version = %s, log_result = %s, error_message = %s,"
            " error_detail = %s, completed_at = clock_timestamp() WHERE id = %s;"
            " SELECT pg_notify('rdslab_reply_' || %s, %s);"
        )
        params: list[Any] = [
            state,
            arn,
            status,
            payload,
            version,
            log_result,
            message,
            detail,
            req.id,
            req.backend_pid,
            str(req.id),
        ]
        try:
            with link.write_lock, link.write.cursor() as cur:
                cur.execute(sql, params)
                link.completed += 1
                if link.completed % self.prune_every == 0:
                    cur.execute(
                        "DELETE FROM lab.invocations WHERE state NOT IN ('pending', 'running')"
                        " AND id <= (SELECT max(id) FROM lab.invocations) - %s",
                        (self.keep_rows,),
                    )
        except Exception:  # noqa: BLE001 - server gone: the waiting session is gone too
            log.debug("could not write reply %s", req.id, exc_info=True)

    # ------------------------------------------------------------------ for the lab
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every request written by SQL has been handed to Lambda (True) or the
        timeout passes (False). Async invocations may still be running: see runtime.wait_idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            links = list(self.links.values())
        for link in links:  # Event requests still in the WAL first go to the outbox
            try:
                link.wal.catch_up(max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a server that went away has nothing pending
                continue
        while time.monotonic() < deadline:
            with self._inflight_lock:
                busy = self._inflight > 0
            with self._lock:
                links = list(self.links.values())
            if not busy and not outbox.any_true(
                links, "SELECT EXISTS (SELECT 1 FROM lab.invocations WHERE state = 'pending')"
            ):
                return True
            time.sleep(0.01)
        return False

    def invalidate_access(self) -> None:
        """Forget cached access verdicts (IAM, network, RDS or Lambda state changed)."""
        with self._lock:
            links = list(self.links.values())
        for link in links:
            link.verdicts.clear()

    def log(self, db_instance_identifier: str, limit: int = 50) -> Any:
        """The invocation log of one DB instance, newest last (a pandas DataFrame)."""
        columns = [*outbox.LOG_COLUMNS, "error_message", "error_detail", "completed_at"]
        link = self.links.get(db_instance_identifier)
        if link is not None:
            try:  # Event requests still in the WAL belong in the log too
                link.wal.catch_up()
            except Exception:  # noqa: BLE001 - the server went away: show what is there
                pass
        return outbox.log_frame(link, "lab.invocations", columns, limit)

    def shutdown(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=False)
        for identifier in list(self.links):
            self._drop(identifier)
        os.close(self._wake_r)
        os.close(self._wake_w)


def install(lab: Any) -> Bridge:
    databases = getattr(lab, "databases", None)
    if databases is None:
        raise RuntimeError("the bridge needs the databases room")
    bridge = Bridge(lab, databases)
    outbox.on_state_change("bridge", bridge.invalidate_access)
    runtime = getattr(lab, "runtime", None)
    if runtime is not None:
        runtime.upstream.append(bridge.wait_idle)
    return bridge
