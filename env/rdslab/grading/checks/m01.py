"""Checks for module 01 (two ways Lambda meets RDS).

01.1 grades a classification the learner writes down (a dict of scenario id -> "data" or
"service"): a conceptual exercise, so the check reads the learner's variable, and each wrong
answer gets the reasoning as its hint. 01.2 grades from the lab's state: the ``orders`` row
(through SQL on the instance's Endpoint), the instance's events (``describe_events``) and their
dates compared with the row's ``created_at``; the learner's ``shop_events`` and
``row_in_events`` are only compared with what the check itself reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..context import Context, LearnerError
from ..core import Criterion, exercise

# ---------------------------------------------------------------------------- 01.1
ANSWERS: dict[str, tuple[str, str]] = {
    "welcome-email": (
        "data",
        "The email needs the new row's address and name. Only the database sees rows; "
        "RDS events never carry table data.",
    ),
    "failover-page": (
        "service",
        "Nothing changes in a table during a failover: it happens to the instance, and RDS "
        "reports it (RDS-EVENT-0013/0015/0049, category failover). The database cannot call "
        "anyone while it is failing over.",
    ),
    "storage-ticket": (
        "service",
        "Storage use is a fact about the instance, reported by RDS (RDS-EVENT-0089, category "
        "low storage); no row changes.",
    ),
    "cancelled-order-refund": (
        "data",
        "The refund needs the order (its id, its amount): a change to a row, which only a "
        "trigger inside the database sees (AFTER UPDATE).",
    ),
    "parameter-audit": (
        "service",
        "A parameter group change is a configuration change of the instance "
        "(RDS-EVENT-0011/0092), made through the RDS API, not in a table.",
    ),
    "snapshot-copy": (
        "service",
        "Snapshots are taken by the RDS service, which reports them (RDS-EVENT-0091 "
        "'Automated snapshot created', source type db-snapshot).",
    ),
    "deleted-customers": (
        "data",
        "RDS's 'deletion' category is about deleting RDS resources (instances, snapshots), "
        "never rows: a DELETE on a table is seen only by the database (a trigger AFTER DELETE).",
    ),
    "stopped-dev-db": (
        "service",
        "RDS itself starts an instance that stayed stopped for seven days, and reports it "
        "(RDS-EVENT-0154, category notification).",
    ),
}
CHOICES = ("data", "service")


@exercise("01.1", points=8, title="Data event or service event?")
def classify(ctx: Context) -> Iterator[Criterion]:
    value = ctx.learner_value(
        "classification",
        hint='Define `classification = {"welcome-email": "data" or "service", ...}` with one '
        "entry per scenario id, run the cell, then this check.",
    )
    if not isinstance(value, dict):
        raise LearnerError(
            "your variable `classification`",
            f"`classification` is a {type(value).__name__}, not a dict",
            'Write it as a dict: {"welcome-email": "data", "failover-page": ..., ...}.',
        )
    for scenario, (expected, why) in ANSWERS.items():
        given = value.get(scenario)
        answer = str(given).strip().lower() if given is not None else None
        if answer is None:
            wrong, hint = (
                f"no entry for `{scenario}`",
                f'Add "{scenario}": "data" or "service" (ids exactly as in the table).',
            )
        elif answer not in CHOICES:
            wrong, hint = (
                f"{given!r} is neither 'data' nor 'service'",
                'Use exactly "data" or "service".',
            )
        else:
            wrong = f"`{scenario}` is not a {answer} event"
            hint = why
        yield Criterion(
            1,
            f"`{scenario}`: {given!r}",
            answer == expected,
            wrong,
            hint,
        )


# ---------------------------------------------------------------------------- 01.2
INSTANCE = "shop-db"
USER = "labadmin"
PASSWORD = "LabPassw0rd-01"
DBNAME = "shop"
EMAIL = "grace@example.com"
RESTART = "DB instance restarted"
TABLE_HINT = (
    "Create `orders` in database `shop` with the columns of the task, insert the order for "
    f"{EMAIL}, and commit (`with conn:` or `conn.commit()`)."
)
_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'orders'
"""


def _instance_events(ctx: Context) -> list[dict[str, Any]]:
    rds = ctx.client("rds")
    found = rds.describe_events(
        SourceType="db-instance", SourceIdentifier=INSTANCE, Duration=24 * 60
    )["Events"]
    return list(found)


@exercise("01.2", points=6, title="A row and a reboot: what RDS reports")
def row_and_reboot(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(INSTANCE, hint="Run the setup cell at the top: it creates shop-db.")
    conn = ctx.connect(db, USER, PASSWORD, DBNAME)
    columns = {r[0] for r in ctx.query(conn, _COLUMNS)}
    where = f"table public.orders in database `{DBNAME}` of {INSTANCE}"
    if not columns:
        yield Criterion(
            2, where, False, "there is no table `orders` (seen from a new connection)", TABLE_HINT
        )
        yield Criterion(
            4,
            "the instance's events and your answers",
            False,
            "not checked: there is no order to compare them with",
            TABLE_HINT,
        )
        return
    missing = sorted({"customer_email", "total", "created_at"} - columns)
    rows: list[tuple[Any, ...]] = []
    if not missing:
        rows = ctx.query(
            conn,
            "SELECT created_at, total FROM public.orders WHERE customer_email = %s "
            "ORDER BY created_at",
            (EMAIL,),
        )
    yield Criterion(
        2,
        f"{where}: {len(rows)} order(s) for {EMAIL}",
        not missing and bool(rows),
        f"orders has no column(s) {', '.join(missing)}"
        if missing
        else f"no committed order for {EMAIL}",
        TABLE_HINT,
    )

    events = _instance_events(ctx)
    first_order: datetime | None = rows[0][0] if rows else None
    restarts = [e for e in events if e.get("Message") == RESTART]
    after = [e for e in restarts if first_order is not None and e["Date"] > first_order]
    yield Criterion(
        2,
        f"describe_events for {INSTANCE}: {len(events)} event(s), {len(restarts)} "
        f"'{RESTART}', {len(after)} after the order",
        bool(after),
        "no reboot after the order"
        if restarts or first_order is None
        else "the instance has not been rebooted",
        'Insert the order first, then `rds.reboot_db_instance(DBInstanceIdentifier="shop-db")` '
        'and wait with `rds.get_waiter("db_instance_available")`.',
    )

    try:
        table = ctx.learner_value("shop_events", hint="Step 3 defines `shop_events`.")
        messages = [str(m) for m in table["Message"]]
        problem = "" if RESTART in messages else f"`shop_events` has no '{RESTART}' row"
    except LearnerError as exc:
        messages, problem = [], exc.wrong
    except (KeyError, TypeError):
        messages, problem = [], "`shop_events` is not a DataFrame with a `Message` column"
    yield Criterion(
        1,
        f"your `shop_events`: {len(messages)} event(s)",
        not problem,
        problem,
        'Build it after the reboot: `pd.DataFrame(rds.describe_events(SourceType="db-instance", '
        'SourceIdentifier="shop-db")["Events"], columns=["Date", "EventCategories", "Message"])`.',
    )

    truth = any(EMAIL in json.dumps(e, default=str) for e in events)
    try:
        answer = ctx.learner_value("row_in_events", hint="Step 4 defines `row_in_events`.")
        problem = (
            ""
            if type(answer).__name__ in ("bool", "bool_") and bool(answer) == truth
            else f"`row_in_events` is {answer!r}; the instance's events "
            f"{'do' if truth else 'do not'} mention {EMAIL}"
        )
    except LearnerError as exc:
        problem = exc.wrong
    yield Criterion(
        1,
        f"your `row_in_events`, against the {len(events)} event(s) the check read",
        not problem,
        problem,
        f'Compute it, e.g. `shop_events["Message"].str.contains("{EMAIL}").any()`; '
        "RDS events describe the instance, never its rows.",
    )
