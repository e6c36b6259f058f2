"""Checks for module 00 (welcome): a DB instance and a first table, seen from the outside.

00.1 looks at ``describe_db_instances`` and then connects with psycopg2 to the Endpoint it
returns; 00.2 connects the same way and reads the catalog and the rows. Credentials are the
ones the exercise text gives; a learner's own ``...password...`` variable is only a fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..context import Context, LearnerError
from ..core import Criterion, exercise

INSTANCE = "welcome-db"
USER = "labadmin"
PASSWORD = "LabPassw0rd-00"
DBNAME = "course"
SETTINGS = {
    "Engine": "postgres",
    "DBInstanceClass": "db.t3.micro",
    "MasterUsername": USER,
    "DBName": DBNAME,
}
RECREATE = "to change it, delete the instance (SkipFinalSnapshot=True) and create it again"
FIXES = {
    "DBInstanceClass": 'or change it: `rds.modify_db_instance(DBInstanceIdentifier="welcome-db", '
    'DBInstanceClass="db.t3.micro", ApplyImmediately=True)`',
}


def _password_note(ctx: Context) -> str:
    if ctx.password_source is None:
        return ""
    return f" (with the password in your variable `{ctx.password_source}`, not the one in the exercise text)"


@exercise("00.1", points=8, title="Create the welcome-db instance")
def welcome_db(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(
        INSTANCE,
        hint='Call `rds.create_db_instance(DBInstanceIdentifier="welcome-db", ...)` with the settings in the task.',
    )
    yield Criterion(1, f"DB instance `{INSTANCE}` in describe_db_instances", True)
    status = db.get("DBInstanceStatus")
    yield Criterion(
        1,
        f"its DBInstanceStatus: {status!r}",
        status == "available",
        f"the status is {status!r}, not 'available'",
        'Wait for it: `rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="welcome-db")`.',
    )
    for key, expected in SETTINGS.items():
        actual = db.get(key)
        yield Criterion(
            1,
            f"its {key}: {actual!r}",
            actual == expected,
            f"{key} is {actual!r}; the task asks for {expected!r}",
            f"Pass {key}={expected!r} to create_db_instance; {FIXES.get(key, RECREATE)}.",
        )
    try:
        conn = ctx.connect(db, USER, PASSWORD, DBNAME)
    except LearnerError as exc:
        yield Criterion(2, exc.looked_at, False, exc.wrong, exc.hint)
        return
    user, database = ctx.query(conn, "SELECT current_user, current_database()")[0]
    endpoint = db["Endpoint"]
    yield Criterion(
        2,
        f"a psycopg2 connection to {endpoint['Address']}:{endpoint['Port']}: user {user}, database {database}"
        + _password_note(ctx),
        True,
    )


_COLUMNS = """
SELECT column_name, data_type, is_nullable, coalesce(column_default, ''), is_identity
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'learners'
"""
_PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = 'public.learners'::regclass AND i.indisprimary
"""
COMMIT_HINT = (
    'Create it in database `course` (dbname="course"), and commit: psycopg2 runs your statements in a '
    "transaction that other connections do not see until `conn.commit()` (or `with conn:`)."
)


@exercise("00.2", points=6, title="A learners table with three rows")
def learners_table(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(INSTANCE, hint="Exercise 00.2 uses the instance from 00.1: do 00.1 first.")
    conn = ctx.connect(db, USER, PASSWORD, DBNAME)
    columns = {name: rest for name, *rest in ctx.query(conn, _COLUMNS)}
    where = f"table public.learners in database `{DBNAME}` of {INSTANCE}" + _password_note(ctx)
    if not columns:
        yield Criterion(
            2,
            where,
            False,
            "there is no table `learners` (seen from a new connection)",
            COMMIT_HINT,
        )
        yield Criterion(
            4,
            "its columns and rows",
            False,
            "not checked: there is no table to look at",
            COMMIT_HINT,
        )
        return
    yield Criterion(2, where, True)
    key = [r[0] for r in ctx.query(conn, _PRIMARY_KEY)]
    id_type, _, id_default, id_identity = columns.get("id", ("missing", "", "", "NO"))
    generated = id_default.startswith("nextval(") or id_identity == "YES"
    yield Criterion(
        1,
        f"column id: {id_type}, default {id_default or 'none'}, primary key {key}",
        id_type == "integer" and generated and key == ["id"],
        "id must be `serial primary key` (an integer filled from a sequence, and the table's only key column)",
        "Declare it as `id serial primary key`.",
    )
    name_type, name_nullable, *_ = columns.get("name", ("missing", "YES", "", "NO"))
    yield Criterion(
        1,
        f"column name: {name_type}, nullable {name_nullable}",
        name_type == "text" and name_nullable == "NO",
        "name must be `text not null`",
        "Declare it as `name text not null`.",
    )
    count = ctx.query(conn, "SELECT count(*) FROM public.learners")[0][0]
    yield Criterion(
        2,
        f"rows in learners: {count}",
        count >= 3,
        f"{count} row(s); at least 3 expected",
        "INSERT three rows (e.g. with cur.executemany) and "
        + COMMIT_HINT[COMMIT_HINT.index("commit") :],
    )
