"""Helpers shared by the two SQL->Lambda agents (PostgreSQL ``bridge``, MariaDB ``mysql.agent``):
each keeps, per server, a link with a ``write`` connection guarded by ``write_lock``, and an
outbox table that doubles as the invocation log; each caches verified access paths, which
``on_state_change`` (one hook on moto's request dispatch for both) tells them to forget."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

LOG_COLUMNS = [
    "id",
    "requested_at",
    "database_name",
    "user_name",
    "function_name",
    "invocation_type",
    "state",
    "status_code",
    "response",
]


def execute_on_all(links: Iterable[Any], statement: str) -> None:
    """Run ``statement`` on every link's write connection; a server that went away is skipped."""
    for link in links:
        try:
            with link.write_lock, link.write.cursor() as cur:
                cur.execute(statement)
        except Exception:  # noqa: BLE001 - nothing to forget on a server that is gone
            pass


def any_true(links: Iterable[Any], query: str) -> bool:
    """Whether the one-value ``query`` answers true on any link's write connection (a server
    that went away answers nothing, so it has nothing pending)."""
    for link in links:
        try:
            with link.write_lock, link.write.cursor() as cur:
                cur.execute(query)
                if cur.fetchone()[0]:
                    return True
        except Exception:  # noqa: BLE001 - a server that went away has nothing pending
            continue
    return False


def log_frame(link: Any, table: str, columns: list[str], limit: int) -> Any:
    """The newest ``limit`` rows of an outbox table, oldest first, as a DataFrame."""
    import pandas as pd

    if link is None:
        return pd.DataFrame(columns=columns)
    with link.write_lock, link.write.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id DESC LIMIT %s", (limit,))
        rows = list(cur.fetchall())
    return pd.DataFrame(list(reversed(rows)), columns=columns)


# services whose mutating calls may change whether a DB server can reach a function
WATCHED = {"iam", "ec2", "rds", "lambda", "awslambda", "sts"}  # moto names Lambda "awslambda"
# their calls that change nothing of the kind: reads, invocations, simulations, new sessions
READ_ONLY = ("Describe", "Get", "List", "Invoke", "Simulate", "AssumeRole", "Decode")
_callbacks: dict[str, Callable[[], None]] = {}


def on_state_change(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` after every IAM, EC2, RDS, Lambda or STS call that may change state
    (not a read, an invoke, a simulation or an AssumeRole). ``name`` keeps one callback per
    agent: a new lab replaces the previous one's."""
    from moto.core import responses as core_responses

    _callbacks[name] = callback
    base = core_responses.BaseResponse
    if getattr(base.call_action, "_rdslab_outbox", False):
        return
    original = base.call_action

    def call_action(self: Any) -> Any:
        result = original(self)
        action = self._get_action() if hasattr(self, "_get_action") else ""
        service = getattr(self, "service_name", "") or ""
        if service in WATCHED and not action.startswith(READ_ONLY):
            for forget in list(_callbacks.values()):
                forget()
        return result

    call_action._rdslab_outbox = True  # type: ignore[attr-defined]
    base.call_action = call_action  # type: ignore[method-assign]
