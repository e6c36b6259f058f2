"""Helpers shared by the two SQL->Lambda agents (PostgreSQL ``bridge``, MariaDB ``mysql.agent``):
each keeps, per server, a link with a ``write`` connection guarded by ``write_lock``, and an
outbox table that doubles as the invocation log."""

from __future__ import annotations

from collections.abc import Iterable
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


def log_frame(link: Any, table: str, columns: list[str], limit: int) -> Any:
    """The newest ``limit`` rows of an outbox table, oldest first, as a DataFrame."""
    import pandas as pd

    if link is None:
        return pd.DataFrame(columns=columns)
    with link.write_lock, link.write.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id DESC LIMIT %s", (limit,))
        rows = list(cur.fetchall())
    return pd.DataFrame(list(reversed(rows)), columns=columns)
