"""The bridge's Event fast path: requests carried in the server's WAL, and the verdict file.

An ``Event`` invoke needs no answer from the agent, only the promise that it reaches Lambda even
if the caller's transaction rolls back (on RDS the API call is made when the statement runs).
Writing it through the loopback dblink connection costs a remote insert and commit per call
(about 0.16 ms: an Event trigger made inserts 15x slower). Instead, once the agent has verified
access for a function, the extension writes each Event request as a *non-transactional* logical
decoding message, ``pg_logical_emit_message(false, 'rdslab_invoke', header || E'\\n' || payload)``:
a few microseconds, in the WAL at once, kept whatever the transaction does next.

The agent reads those messages from its rdsadmin connection with ``pg_walinspect`` (the WAL is
cluster-wide, so one reader per server sees every database, with no connection to learners'
databases that would block their ``DROP DATABASE``), relays each into ``lab.invocations`` as a
pending row (unique by LSN, so nothing is relayed twice) where the usual claim picks it up, and
advances the physical slot ``rdslab_bridge`` so PostgreSQL keeps the WAL until then (nothing is
lost while the agent is paused or the server restarts).

Which requests may take the fast path is decided by the *verdicts* in the server setting
``rdslab.lambda_access``: one ``transport<TAB>function<TAB>region<TAB>qualifier`` entry per
verified function, where the transport is ``wal``, or ``dblink`` where pg_walinspect is missing
(verified Events then go through the outbox without waiting for the agent). The agent adds an
entry when Lambda accepts a call and empties the list whenever IAM, EC2, RDS or Lambda state
changes, so a revoked permission is seen by the very next invoke.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import psycopg2.errors
from psycopg2.extras import execute_values

SLOT = "rdslab_bridge"
log = logging.getLogger("rdslab.bridge")

# Read the records between the cursor and the flush point; return how far they went and our
# messages (pg_walinspect describes them as 'non-transactional, prefix "rdslab_invoke"; payload
# (N bytes): 7B 22 ...'). They are parsed in Python, so that no message can stop the relay.
READ_SQL = r"""
WITH r AS MATERIALIZED (
    SELECT start_lsn, end_lsn, resource_manager, description
      FROM pg_get_wal_records_info(%(since)s::pg_lsn, %(until)s::pg_lsn))
SELECT (SELECT max(end_lsn)::text FROM r),
       (SELECT array_agg(start_lsn::text || ' ' || substr(description, strpos(description, '): ') + 3)
                         ORDER BY start_lsn)
          FROM r
         WHERE resource_manager = 'LogicalMessage'
           AND description LIKE 'non-transactional, prefix "rdslab\_invoke";%%')
"""
INSERT_SQL = """
INSERT INTO lab.invocations (wal_lsn, function_name, region, qualifier, log_type,
    client_context, database_name, user_name, backend_pid, connect_timeout_ms,
    endpoint_override, payload, invocation_type, waiting)
VALUES %s
ON CONFLICT (wal_lsn) DO NOTHING
"""
COLUMNS = 11  # header fields written by rdslab_bridge.call, the encoding first

# PostgreSQL encoding names -> Python codecs (a learner's database may not be UTF8)
CODECS = {"UTF8": "utf-8", "SQL_ASCII": "latin-1", "LATIN1": "latin-1", "WIN1252": "cp1252"}


def parse_message(start_lsn: str, hexdump: str) -> tuple[Any, ...] | None:
    """One message as an outbox row, or None (logged) if it is not one the extension wrote:
    ``[encoding, function, region, qualifier, log_type, client_context, database, user, pid,
    connect_timeout_ms, endpoint_override]`` as JSON, a newline, then the payload."""
    try:
        data = bytes.fromhex(hexdump)
        head, newline, body = data.partition(b"\n")
        encoding = json.loads(head.decode("latin-1"))[0]  # the first field is plain ASCII
        codec = CODECS.get(str(encoding).upper(), str(encoding))
        try:
            fields = json.loads(head.decode(codec, "replace"))
            payload = body.decode(codec, "replace")
        except LookupError:
            fields = json.loads(head.decode("utf-8", "replace"))
            payload = body.decode("utf-8", "replace")
        texts = [fields[i] for i in (1, 2, 3, 4, 5, 6, 7, 10)]
        if (
            not newline
            or len(fields) != COLUMNS
            or not all(t is None or isinstance(t, str) for t in texts)
            or not all(isinstance(fields[i], int) for i in (8, 9))
            or not fields[1]
        ):
            raise ValueError("not the extension's format")
        return (start_lsn, *fields[1:], payload.replace("\x00", ""), "Event", False)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        log.warning("ignoring a malformed Event message at %s: %s", start_lsn, exc)
        return None


def lsn(text: str | None) -> int:
    """PostgreSQL's ``X/Y`` LSN text as an integer (0 for NULL)."""
    if not text:
        return 0
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


class WalRelay:
    """Reads one server's WAL for Event requests and relays them into its outbox, on its own
    rdsadmin connection (so the agent's replies never wait for it)."""

    EVERY = 0.01  # seconds between passes, at most (the agent also polls on a timer)

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.last = 0.0
        with conn.cursor() as cur:
            cur.execute(
                "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s"
                " AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect')",
                (SLOT,),
            )
            row = cur.fetchone()
        self.supported = bool(row and row[0])
        self.cursor = lsn(row[0]) if self.supported else 0  # records before this are relayed
        self.relayed_to = 0  # every message that ended before this is in the outbox
        self.failing = False  # the last pass failed (warned once)

    def relay(self) -> int:
        """One pass (at most every ``EVERY`` seconds): relay new messages; return how many
        outbox rows were added."""
        if not self.supported or time.monotonic() - self.last < self.EVERY:
            return 0
        with self.lock, self.conn.cursor() as cur:
            self.last = time.monotonic()
            try:
                added = self._relay(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                raise  # the server went away: the agent drops the link
            except psycopg2.Error as err:
                # anything else is retried on the next pass (nothing is lost: the slot keeps
                # the WAL); said once, not every 10 ms
                if not self.failing:
                    log.warning("relaying Event requests from the WAL failed: %s", err)
                self.failing = True
                return 0
            self.failing = False
            return added

    def _relay(self, cur: Any) -> int:
        cur.execute("SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text")
        inserted, flushed = (lsn(v) for v in cur.fetchone())
        if inserted > flushed:
            # An Event outside any write transaction leaves no commit to make the WAL writer
            # flush it (lab servers commit asynchronously); a synchronous commit here flushes
            # everything written so far.
            cur.execute(
                "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_current_xact_id(); COMMIT"
            )
            cur.execute("SELECT pg_current_wal_flush_lsn()::text")
            flushed = lsn(cur.fetchone()[0])
        added = 0
        if flushed > self.cursor:
            try:
                cur.execute(READ_SQL, {"since": lsn_text(self.cursor), "until": lsn_text(flushed)})
            except psycopg2.errors.InternalError as err:
                # no complete record yet between the cursor and the flush point (the next one
                # is still being flushed): nothing to relay on this pass
                if "could not find a valid record" not in str(err):
                    raise
                self.relayed_to = max(self.relayed_to, flushed)
                return 0
            end, messages = cur.fetchone()
            rows = [parse_message(*m.split(" ", 1)) for m in messages or []]
            rows = [r for r in rows if r is not None]
            if rows:
                execute_values(cur, INSERT_SQL, rows, page_size=500)
                added = len(rows)
                cur.execute("NOTIFY rdslab_invoke")  # wake the agent's claim
            if end and lsn(end) > self.cursor:
                self.cursor = lsn(end)
                cur.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                    (SLOT, lsn_text(self.cursor)),
                )
        self.relayed_to = max(self.relayed_to, flushed)
        return int(added)

    def catch_up(self, timeout: float = 5.0) -> bool:
        """Relay, in the caller's thread, every request written so far: the invocation log and
        ``wait_idle`` then see what SQL has done. True if done within ``timeout``."""
        if not self.supported:
            return True
        target = self.target()
        deadline = time.monotonic() + timeout
        while self.relayed_to < target:
            if time.monotonic() > deadline:
                return False
            with self.lock, self.conn.cursor() as cur:
                self.last = time.monotonic()
                self._relay(cur)
            if self.relayed_to < target:
                time.sleep(0.002)
        return True

    def target(self) -> int:
        """The point ``relayed_to`` must pass for every request written so far to be relayed."""
        if not self.supported:
            return 0
        with self.lock, self.conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_insert_lsn()::text")
            return lsn(cur.fetchone()[0])


class Verdicts:
    """One server's verdicts: which functions' Event invokes may skip the agent.

    Kept in the server setting ``rdslab.lambda_access`` (``ALTER SYSTEM`` + ``pg_reload_conf``),
    which the extension reads with ``current_setting``: well under a microsecond, where reading
    a file cost about 20. Every session applies a reload before its next statement; so that a
    revoked permission is seen by the very next invoke, ``clear`` returns only once the reload
    has reached the agent's own session, i.e. once the postmaster has signalled every backend.
    """

    SETTING = "rdslab.lambda_access"

    def __init__(self, conn: Any, lock: threading.Lock, transport: str) -> None:
        self.conn = conn
        self.lock = lock  # guards conn (shared with the WAL relay)
        self.transport = transport
        self.keys: set[tuple[str, str, str]] = set()
        self.generation = 0  # bumped by every invalidation
        self._state = threading.Lock()  # keys, generation and what is published move together
        self._publish()  # a restarted server still has the old list in postgresql.auto.conf

    def value(self) -> str:
        """``|transport<TAB>function<TAB>region<TAB>qualifier|...``: one ``strpos`` finds an
        entry (ALTER SYSTEM refuses newlines; Lambda names hold neither tabs nor bars)."""
        return "|" + "".join(f"{self.transport}\t{chr(9).join(k)}|" for k in sorted(self.keys))

    def _publish(self, timeout: float = 2.0) -> None:
        wanted = self.value()
        with self.lock, self.conn.cursor() as cur:
            # PostgreSQL 15 lets ALTER SYSTEM set a custom setting only if this session knows
            # it; the RESET leaves the session to follow the file, as every other session does
            cur.execute(f"SET {self.SETTING} = ''")
            cur.execute(f"ALTER SYSTEM SET {self.SETTING} = %s", (wanted,))
            cur.execute(f"RESET {self.SETTING}")
            cur.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                cur.execute("SELECT current_setting(%s, true)", (self.SETTING,))
                if cur.fetchone()[0] == wanted:
                    return
                time.sleep(0.001)

    def add(self, key: tuple[str, str, str], generation: int) -> None:
        """Record a verified function, unless state changed since the check began."""
        with self._state:
            if generation != self.generation or key in self.keys:
                return
            self.keys.add(key)
            self._publish()

    def clear(self) -> None:
        with self._state:
            self.generation += 1
            if self.keys:
                self.keys.clear()
                self._publish()
