"""Checks for module 08 (the RDS events catalog): what RDS reported, read through describe_events.

08.1 and 08.2 read ``describe_events`` (all pages, the 14 days RDS keeps) for the learner's
instance, snapshot and cluster, and the resources' final state; 08.3 builds its own history
(two Multi-AZ instances it creates, reboots with and without failover, and events injected
with the lab's facility for what RDS emits by itself), calls the learner's function and
compares its answer with ``describe_events``; 08.4 reads the learner's lookup table with SQL
and compares it with RDS's catalog (the IDs the lab emitted, ``lab.events.timeline()``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ..context import Context, LearnerError
from ..core import Criterion, exercise

INSTANCE = "events-db"
SNAPSHOT = "events-db-snap"
PARAMETER_GROUP = "events-pg"
CLUSTER = "events-cluster"
WRITER = "events-cluster-a"
READER = "events-cluster-b"
MASTER = "labadmin"
PASSWORD = "Events-Passw0rd-08"
DBNAME = "course"
FOURTEEN_DAYS = 14 * 24 * 60  # minutes: the history RDS keeps
SETUP_HINT = "Run the setup cell at the top of the notebook first: it creates `events-db`."


def _events(ctx: Context, **filters: Any) -> list[dict[str, Any]]:
    """describe_events over RDS's whole history (14 days), every page."""
    rds = ctx.client("rds")
    filters.setdefault("Duration", FOURTEEN_DAYS)
    out: list[dict[str, Any]] = []
    for page in rds.get_paginator("describe_events").paginate(**filters):
        out += page["Events"]
    return out


def _quote(messages: list[str]) -> str:
    return ", ".join(f"'{m}'" for m in messages)


# ---------------------------------------------------------------------------------- 08.1
STEPS = [
    (
        2,
        "a Multi-AZ failover",
        ["Multi-AZ instance failover started", "A Multi-AZ failover has completed."],
        "failover",
        'Reboot through a failover: `rds.reboot_db_instance(DBInstanceIdentifier="events-db", '
        "ForceFailover=True)` (the instance is Multi-AZ; a plain reboot only restarts it).",
    ),
    (
        2,
        "a stop and a start",
        ["DB instance stopped", "DB instance started"],
        "notification",
        '`rds.stop_db_instance(DBInstanceIdentifier="events-db")`, wait until describe_db_instances '
        "says `stopped`, then `rds.start_db_instance(...)` and the `db_instance_available` waiter.",
    ),
    (
        2,
        f"the parameter group {PARAMETER_GROUP} applied",
        [
            f"Updated to use DBParameterGroup {PARAMETER_GROUP}",
            "Finished updating DB parameter group",
        ],
        "configuration change",
        f'`rds.modify_db_instance(DBInstanceIdentifier="events-db", DBParameterGroupName="{PARAMETER_GROUP}", '
        "ApplyImmediately=True)`, then reboot: a new parameter group is applied at the next reboot.",
    ),
    (
        2,
        "the pending system update applied",
        [
            "Applying off-line patches to DB instance",
            "Finished applying off-line patches to DB instance",
        ],
        "maintenance",
        "Find it with `rds.describe_pending_maintenance_actions(ResourceIdentifier=<the instance ARN>)` "
        'and apply it: `rds.apply_pending_maintenance_action(ResourceIdentifier=..., ApplyAction="system-update", '
        'OptInType="immediate")`.',
    ),
]


@exercise("08.1", points=10, title="Produce an instance's lifecycle events")
def lifecycle(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    events = _events(ctx, SourceType="db-instance", SourceIdentifier=INSTANCE)
    seen: dict[str, set[str]] = {}
    for e in events:
        seen.setdefault(e["Message"], set()).update(e["EventCategories"])
    where = f"describe_events(SourceType='db-instance', SourceIdentifier='{INSTANCE}'), {len(events)} events"
    for points, what, messages, category, hint in STEPS:
        missing = [m for m in messages if m not in seen]
        wrong = f"missing: {_quote(missing)}"
        if what.startswith("a Multi-AZ") and missing and "DB instance restarted" in seen:
            wrong += " (there is a plain restart: a reboot without ForceFailover=True does not fail over)"
        yield Criterion(
            points,
            f"{where}: {what}: {_quote(messages)} (category {category})",
            not missing,
            wrong,
            hint,
        )
    snaps = _events(ctx, SourceType="db-snapshot", SourceIdentifier=SNAPSHOT)
    wanted = ["Creating manual snapshot", "Manual snapshot created"]
    got = {e["Message"] for e in snaps}
    missing = [m for m in wanted if m not in got]
    yield Criterion(
        1,
        f"describe_events(SourceType='db-snapshot', SourceIdentifier='{SNAPSHOT}'): {_quote(wanted)}",
        not missing,
        f"missing: {_quote(missing)}"
        + (" (snapshot events are filed under the snapshot, not the instance)" if missing else ""),
        f'`rds.create_db_snapshot(DBInstanceIdentifier="events-db", DBSnapshotIdentifier="{SNAPSHOT}")`.',
    )
    groups = {g["DBParameterGroupName"]: g["ParameterApplyStatus"] for g in db["DBParameterGroups"]}
    rds = ctx.client("rds")
    pending = rds.describe_pending_maintenance_actions(ResourceIdentifier=db["DBInstanceArn"])[
        "PendingMaintenanceActions"
    ]
    status = db["DBInstanceStatus"]
    problems = []
    if status != "available":
        problems.append(f"the status is {status!r}, not 'available'")
    if groups.get(PARAMETER_GROUP) != "in-sync":
        problems.append(
            f"its parameter groups are {groups}, not {{'{PARAMETER_GROUP}': 'in-sync'}}"
        )
    if pending:
        problems.append("a maintenance action is still pending")
    yield Criterion(
        1,
        f"{INSTANCE} now (describe_db_instances, describe_pending_maintenance_actions): status {status}, "
        f"parameter groups {groups}, {len(pending)} pending maintenance resource(s)",
        not problems,
        "; ".join(problems),
        "End with the instance available (start it again after the stop), events-pg in-sync (reboot "
        "after switching to it) and no pending maintenance.",
    )


# ---------------------------------------------------------------------------------- 08.2
@exercise("08.2", points=6, title="A cluster's creation and failover events")
def cluster_events(ctx: Context) -> Iterator[Criterion]:
    rds = ctx.client("rds")
    try:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0]
    except rds.exceptions.DBClusterNotFoundFault:
        raise LearnerError(
            f"DB cluster `{CLUSTER}` (describe_db_clusters)",
            f"there is no DB cluster named `{CLUSTER}`",
            f'`rds.create_db_cluster(DBClusterIdentifier="{CLUSTER}", Engine="aurora-postgresql", ...)`, '
            "then its two instances.",
        ) from None
    yield Criterion(
        1,
        f"DB cluster {CLUSTER}: engine {cluster['Engine']}",
        cluster["Engine"] == "aurora-postgresql",
        f"the engine is {cluster['Engine']!r}, not 'aurora-postgresql'",
        "Delete the cluster and create it again with Engine='aurora-postgresql'.",
    )
    members = {m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]}
    zones = {}
    for name in members:
        try:
            zones[name] = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][
                0
            ].get("AvailabilityZone")
        except rds.exceptions.DBInstanceNotFoundFault:
            zones[name] = None
    yield Criterion(
        1,
        f"its members (DBClusterMembers): {members}, availability zones {zones}",
        {WRITER, READER} <= set(members)
        and zones.get(WRITER) is not None
        and zones.get(WRITER) != zones.get(READER),
        f"the cluster needs the instances {WRITER} and {READER}, in two different availability zones",
        f'`rds.create_db_instance(DBInstanceIdentifier="{WRITER}", DBClusterIdentifier="{CLUSTER}", '
        'Engine="aurora-postgresql", DBInstanceClass="db.r6g.large", AvailabilityZone="us-east-1a")`, '
        f'and {READER} the same way in "us-east-1b".',
    )
    events = _events(ctx, SourceType="db-cluster", SourceIdentifier=CLUSTER)
    messages = [e["Message"] for e in events]
    where = f"describe_events(SourceType='db-cluster', SourceIdentifier='{CLUSTER}'), {len(events)} events"
    yield Criterion(
        1,
        f"{where}: 'DB cluster created' (category creation)",
        "DB cluster created" in messages,
        "missing: 'DB cluster created'",
        "Create the cluster with create_db_cluster (RDS records RDS-EVENT-0170).",
    )
    wanted = [
        f"Started cross AZ failover to DB instance: {READER}",
        f"Completed failover to DB instance: {READER}",
    ]
    missing = [m for m in wanted if m not in messages]
    wrong = f"missing: {_quote(missing)}"
    if f"Started same AZ failover to DB instance: {READER}" in messages and missing:
        wrong += f" (the failover stayed in one AZ: {READER} must be in another zone than {WRITER})"
    yield Criterion(
        2,
        f"{where}: {_quote(wanted)} (category failover)",
        not missing,
        wrong,
        f'`rds.failover_db_cluster(DBClusterIdentifier="{CLUSTER}", TargetDBInstanceIdentifier="{READER}")`.',
    )
    writer = [name for name, is_writer in members.items() if is_writer]
    yield Criterion(
        1,
        f"the cluster's writer now: {writer}",
        writer == [READER],
        f"the writer is {writer}, not ['{READER}']",
        f"Fail over to {READER} (TargetDBInstanceIdentifier) and do not fail back.",
    )


# ---------------------------------------------------------------------------------- 08.3
def _utc(value: Any) -> Any:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _build_history(ctx: Context) -> tuple[str, str]:
    """Two Multi-AZ instances with failovers, restarts and events RDS emits by itself."""
    rds = ctx.client("rds")
    suffix = uuid.uuid4().hex[:6]
    a, b = f"chk-0803-a-{suffix}", f"chk-0803-b-{suffix}"
    for name in (a, b):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername=MASTER,
            MasterUserPassword="Check-Passw0rd-08",
            MultiAZ=True,
        )
    waiter = rds.get_waiter("db_instance_available")
    for name in (a, b):
        waiter.wait(DBInstanceIdentifier=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    events = ctx.lab.events
    now = datetime.now(UTC)
    events.inject(a, "0013", date=now - timedelta(hours=30))  # older than the 24-hour window
    events.inject(a, "0049", date=now - timedelta(hours=30))
    events.inject(a, "0013", date=now - timedelta(hours=3))
    events.inject(a, "0049", date=now - timedelta(hours=3))
    rds.reboot_db_instance(DBInstanceIdentifier=a, ForceFailover=True)
    rds.reboot_db_instance(DBInstanceIdentifier=b, ForceFailover=True)
    rds.reboot_db_instance(DBInstanceIdentifier=a)
    events.inject(a, "0015")
    for _ in range(110):  # a busy day: more than one page (100) of failover events
        events.inject(a, "0034")
    events.wait_idle(10)
    return a, b


def _drop(ctx: Context, *names: str) -> None:
    rds = ctx.client("rds")
    for name in names:
        try:
            rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
        except Exception:  # noqa: BLE001, S110 - clean-up is best effort
            pass


@exercise("08.3", points=9, title="A function for one instance's failover events")
def failover_filter(ctx: Context) -> Iterator[Criterion]:
    import pandas as pd

    fn = ctx.learner_value(
        "failover_events",
        hint="Define `def failover_events(instance_id): ...` in your answer cell and run it.",
    )
    if not callable(fn):
        raise LearnerError(
            "your variable `failover_events`",
            f"it is a {type(fn).__name__}, not a function",
            "Define it with `def failover_events(instance_id):`.",
        )
    a, b = _build_history(ctx)
    try:
        try:
            result = fn(a)
        except Exception as exc:  # noqa: BLE001 - the learner's code failed: report it
            raise LearnerError(
                f"failover_events({a!r})",
                f"it raised {type(exc).__name__}: {exc}",
                "Run it yourself on events-db and fix the error.",
            ) from None
        expected = _events(
            ctx,
            SourceType="db-instance",
            SourceIdentifier=a,
            EventCategories=["failover"],
            Duration=24 * 60,
        )
    finally:
        _drop(ctx, a, b)
    call = f"failover_events({a!r}) on the check's instance (describe_events: {len(expected)} failover events in 24 h)"
    columns = list(result.columns) if isinstance(result, pd.DataFrame) else []
    shaped = isinstance(result, pd.DataFrame) and {"Date", "Message"} <= set(columns)
    yield Criterion(
        1,
        f"{call}: returned a {type(result).__name__} with columns {columns}",
        shaped,
        "the function must return a pandas DataFrame with the columns Date and Message",
        "Build it with `pd.DataFrame([{'Date': e['Date'], 'Message': e['Message']} for e in events])`.",
    )
    if not shaped:
        raise LearnerError(
            "the rows it returned",
            "not checked: the result is not a DataFrame with Date and Message",
            "Return a DataFrame with the columns Date and Message.",
        )
    got = [(_utc(d), m) for d, m in zip(result["Date"], result["Message"], strict=True)]
    want = Counter((_utc(e["Date"]), e["Message"]) for e in expected)
    extra = Counter(got) - want
    missing = want - Counter(got)
    cutoff = _utc(datetime.now(UTC) - timedelta(hours=24))
    reasons = []
    if any(m == "DB instance restarted" for _, m in extra):
        reasons.append("restarts (category availability)")
    if any(d < cutoff for d, _ in extra):
        reasons.append("events older than 24 hours")
    if any(d >= cutoff and m != "DB instance restarted" for d, m in extra):
        reasons.append("failovers of other instances")
    yield Criterion(
        2,
        f"rows that are not failover events of {a} in the last 24 hours: {sum(extra.values())}",
        not extra,
        "it returned " + (", ".join(reasons) or f"{sum(extra.values())} unexpected row(s)"),
        "Filter in the API call: SourceType='db-instance', SourceIdentifier=instance_id, "
        "EventCategories=['failover'], Duration=24 * 60.",
    )
    rare = [
        "Multi-AZ failover to standby complete - DNS propagation may take a few minutes",
        "Abandoning user requested failover since a failover recently occurred on the database instance",
    ]
    found = {m for _, m in got}
    lacking = [m for m in rare if m not in found]
    yield Criterion(
        2,
        "failover events RDS emits by itself, whose messages your code cannot know in advance "
        "(RDS-EVENT-0015, RDS-EVENT-0034)",
        not lacking,
        f"missing: {_quote(lacking)}",
        "Filter by category (EventCategories=['failover']), not by a list of messages or IDs you know.",
    )
    recent = _utc(datetime.now(UTC) - timedelta(hours=1))
    old_ones = [k for k in missing if k[0] < recent]
    new_ones = [k for k in missing if k[0] >= recent]
    yield Criterion(
        1,
        "the 24-hour window: failover events from 3 hours ago",
        not old_ones,
        f"{sum(missing[k] for k in old_ones)} event(s) from 3 hours ago are missing: describe_events "
        "covers only the last hour unless you say otherwise",
        "Pass Duration=24 * 60 (minutes), or StartTime=now - 24 hours.",
    )
    yield Criterion(
        2,
        f"every page: {len(got)} rows returned, {len(expected)} expected",
        not new_ones,
        f"{sum(missing[k] for k in new_ones)} failover event(s) of the last hour missing"
        + (" (one call returns at most 100 events)" if len(expected) > 100 else ""),
        "Use the paginator: `for page in rds.get_paginator('describe_events').paginate(...)`, "
        "or follow the Marker yourself.",
    )
    dates = [d for d, _ in got]
    yield Criterion(
        1,
        "order: oldest first",
        bool(dates) and dates == sorted(dates),
        "the rows are not ordered oldest first" if dates else "no rows",
        "describe_events already returns events oldest first: keep its order, or "
        "`.sort_values('Date')`.",
    )


# ---------------------------------------------------------------------------------- 08.4
LOOKUP: list[tuple[str, tuple[str, ...], str | None]] = [
    ("instance created", ("RDS-EVENT-0005",), "creation"),
    ("instance rebooted", ("RDS-EVENT-0006",), "availability"),
    ("instance stopped", ("RDS-EVENT-0087",), "notification"),
    ("instance started", ("RDS-EVENT-0088",), "notification"),
    ("failover completed", ("RDS-EVENT-0049", "RDS-EVENT-0015"), "failover"),
    ("parameter group applied", ("RDS-EVENT-0092",), "configuration change"),
    ("maintenance scheduled", ("RDS-EVENT-0230",), "security patching"),
    ("row inserted", (), None),
]


@exercise("08.4", points=8, title="Which event ID means what")
def lookup_table(ctx: Context) -> Iterator[Criterion]:
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    conn = ctx.connect(db, MASTER, PASSWORD, DBNAME)
    columns = {
        name
        for (name,) in ctx.query(
            conn,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = 'event_lookup'",
        )
    }
    if not {"meaning", "event_id", "category"} <= columns:
        raise LearnerError(
            f"table public.event_lookup in database `{DBNAME}` of {INSTANCE}",
            "there is no table event_lookup"
            if not columns
            else f"event_lookup has the columns {sorted(columns)}, not meaning, event_id, category",
            "CREATE TABLE event_lookup (meaning text PRIMARY KEY, event_id text, category text), "
            "as labadmin in database `course`, and commit.",
        )
    rows = {
        (meaning or "").strip().lower(): (event_id, category)
        for meaning, event_id, category in ctx.query(
            conn, "SELECT meaning, event_id, category FROM event_lookup"
        )
    }
    emitted = ctx.lab.events.timeline()
    mine = set(emitted[emitted.source_id == INSTANCE].event_id)
    for meaning, ids, category in LOOKUP:
        if meaning not in rows:
            yield Criterion(
                1,
                f"event_lookup row {meaning!r}",
                False,
                "there is no such row",
                f"INSERT INTO event_lookup VALUES ('{meaning}', ..., ...).",
            )
            continue
        event_id, cat = rows[meaning]
        event_id = event_id.strip().upper() if isinstance(event_id, str) else event_id
        cat = cat.strip().lower() if isinstance(cat, str) else cat
        if not ids:
            yield Criterion(
                1,
                f"event_lookup row {meaning!r}: event_id {event_id!r}, category {cat!r}",
                event_id is None and cat is None,
                "RDS reports nothing about table rows: no event ID, no category",
                "Store NULL in both columns: an INSERT produces no RDS event (the lesson tried it).",
            )
            continue
        ok = event_id in ids and cat == category
        hint = (
            "Look the ID up in lab.events.timeline() (what RDS emitted for events-db) or in the "
            "lesson's table; the category is RDS's, from describe_events."
        )
        if meaning == "maintenance scheduled":
            hint = (
                "RDS has no 'maintenance scheduled' event; store the one it emitted when the setup "
                "cell scheduled the system update on events-db (lab.events.timeline()), with its category."
            )
        note = (
            ""
            if event_id not in ids or event_id in mine
            else f" ({event_id} not emitted for {INSTANCE} yet)"
        )
        yield Criterion(
            1,
            f"event_lookup row {meaning!r}: event_id {event_id!r}, category {cat!r}{note}",
            ok,
            f"expected {' or '.join(ids)} in category {category!r}",
            hint,
        )
