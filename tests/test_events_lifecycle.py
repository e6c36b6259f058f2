"""Lifecycle actions emit RDS's events (IDs, categories, source types, messages), and
describe_events / describe_event_categories answer as RDS does."""

# ruff: noqa: F811  (pytest fixtures imported from test_events_support are parameters here)

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rdslab.events import catalog
from test_events_support import (  # noqa: F401
    clients,
    create_instance,
    engine,
    events_lab,
    last_seq,
    new_events,
    uid,
)

DB = uid("evt-db")
MAZ = uid("evt-maz")
PG = uid("evt-pg")
CLUSTER = uid("evt-cl")


@pytest.fixture(scope="module")
def world(clients: dict[str, Any], engine: Any) -> dict[str, Any]:
    rds = clients["rds"]
    rds.create_db_parameter_group(
        DBParameterGroupName=PG, DBParameterGroupFamily="postgres16", Description="t"
    )
    create_instance(rds, DB)
    create_instance(rds, MAZ, MultiAZ=True)
    yield {"rds": rds}
    for name in (DB, MAZ):
        try:
            rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
        except ClientError:
            pass


def _expect(*items: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """(event number, source type, source id) -> with the catalog's category and message."""
    return list(items)


Step = Callable[[Any], Any]


def _snap(rds: Any, name: str) -> None:
    rds.create_db_snapshot(DBInstanceIdentifier=DB, DBSnapshotIdentifier=name)


SNAP = uid("evt-snap")
FINAL_DB = uid("evt-final")
FINAL_SNAP = uid("evt-finalsnap")

# (case, setup, action, expected [(number, source type, source id, message)], teardown)
CASES: list[tuple[str, Step | None, Step, list[tuple[str, str, str, str]], Step | None]] = [
    (
        "reboot",
        None,
        lambda rds: rds.reboot_db_instance(DBInstanceIdentifier=DB),
        [("0006", "db-instance", DB, "DB instance restarted")],
        None,
    ),
    (
        "reboot with failover (Multi-AZ)",
        None,
        lambda rds: rds.reboot_db_instance(DBInstanceIdentifier=MAZ, ForceFailover=True),
        [
            ("0013", "db-instance", MAZ, "Multi-AZ instance failover started"),
            ("0006", "db-instance", MAZ, "DB instance restarted"),
            ("0049", "db-instance", MAZ, "A Multi-AZ failover has completed."),
        ],
        None,
    ),
    (
        "stop",
        None,
        lambda rds: rds.stop_db_instance(DBInstanceIdentifier=DB),
        [("0087", "db-instance", DB, "DB instance stopped")],
        lambda rds: rds.start_db_instance(DBInstanceIdentifier=DB),
    ),
    (
        "start",
        lambda rds: rds.stop_db_instance(DBInstanceIdentifier=DB),
        lambda rds: rds.start_db_instance(DBInstanceIdentifier=DB),
        [("0088", "db-instance", DB, "DB instance started")],
        None,
    ),
    (
        "instance class, apply immediately",
        None,
        lambda rds: rds.modify_db_instance(
            DBInstanceIdentifier=DB, DBInstanceClass="db.t3.small", ApplyImmediately=True
        ),
        [
            ("0012", "db-instance", DB, "Applying modification to database instance class"),
            ("0014", "db-instance", DB, "Finished applying modification to DB instance class"),
        ],
        None,
    ),
    (
        "instance class, next maintenance window: nothing yet",
        None,
        lambda rds: rds.modify_db_instance(
            DBInstanceIdentifier=MAZ, DBInstanceClass="db.t3.small", ApplyImmediately=False
        ),
        [],
        None,
    ),
    (
        "new parameter group, applied at the next reboot",
        None,
        lambda rds: (
            rds.modify_db_instance(
                DBInstanceIdentifier=DB, DBParameterGroupName=PG, ApplyImmediately=True
            ),
            rds.reboot_db_instance(DBInstanceIdentifier=DB),
        ),
        [
            ("0011", "db-instance", DB, f"Updated to use DBParameterGroup {PG}"),
            ("0006", "db-instance", DB, "DB instance restarted"),
            ("0092", "db-instance", DB, "Finished updating DB parameter group"),
        ],
        None,
    ),
    (
        "parameter change, immediate",
        None,
        lambda rds: rds.modify_db_parameter_group(
            DBParameterGroupName=PG,
            Parameters=[
                {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}
            ],
        ),
        [
            (
                "0037",
                "db-parameter-group",
                PG,
                "Updated parameter work_mem to 8192 with apply method immediate",
            ),
            ("0092", "db-instance", DB, "Finished updating DB parameter group"),
        ],
        None,
    ),
    (
        "parameter change, pending-reboot",
        None,
        lambda rds: (
            rds.modify_db_parameter_group(
                DBParameterGroupName=PG,
                Parameters=[
                    {
                        "ParameterName": "shared_buffers",
                        "ParameterValue": "16384",
                        "ApplyMethod": "pending-reboot",
                    }
                ],
            ),
            rds.reboot_db_instance(DBInstanceIdentifier=DB),
        ),
        [
            (
                "0037",
                "db-parameter-group",
                PG,
                "Updated parameter shared_buffers to 16384 with apply method pending-reboot",
            ),
            ("0006", "db-instance", DB, "DB instance restarted"),
            ("0092", "db-instance", DB, "Finished updating DB parameter group"),
        ],
        None,
    ),
    (
        "manual snapshot",
        None,
        lambda rds: _snap(rds, SNAP),
        [
            ("0040", "db-snapshot", SNAP, "Creating manual snapshot"),
            ("0042", "db-snapshot", SNAP, "Manual snapshot created"),
        ],
        None,
    ),
    (
        "delete manual snapshot",
        None,
        lambda rds: rds.delete_db_snapshot(DBSnapshotIdentifier=SNAP),
        [("0041", "db-snapshot", SNAP, "Deleted manual snapshot")],
        None,
    ),
    (
        "create instance",
        None,
        lambda rds: create_instance(rds, FINAL_DB),
        [
            ("0005", "db-instance", FINAL_DB, "DB instance created"),
            ("0001", "db-instance", FINAL_DB, "Backing up DB instance"),
            ("0090", "db-snapshot", "*", "Creating automated snapshot"),
            ("0091", "db-snapshot", "*", "Automated snapshot created"),
            ("0002", "db-instance", FINAL_DB, "Finished DB Instance backup"),
        ],
        None,
    ),
    (
        "delete instance with a final snapshot",
        None,
        lambda rds: rds.delete_db_instance(
            DBInstanceIdentifier=FINAL_DB, FinalDBSnapshotIdentifier=FINAL_SNAP
        ),
        [
            ("0040", "db-snapshot", FINAL_SNAP, "Creating manual snapshot"),
            ("0042", "db-snapshot", FINAL_SNAP, "Manual snapshot created"),
            ("0003", "db-instance", FINAL_DB, "DB instance deleted"),
        ],
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lifecycle_action_emits_rds_events(world: dict[str, Any], engine: Any, case: Any) -> None:
    _, setup, action, expected, teardown = case
    rds = world["rds"]
    if setup:
        setup(rds)
    since = last_seq(engine)
    action(rds)
    got = new_events(engine, since)
    if teardown:
        teardown(rds)
    assert [(e.event_id, e.source_type) for e in got] == [
        (f"RDS-EVENT-{n}", t) for n, t, _, _ in expected
    ]
    for ev, (number, _type, source_id, message) in zip(got, expected, strict=True):
        assert ev.message == message
        if source_id != "*":
            assert ev.source_id == source_id
        assert ev.categories == list(catalog.EVENTS[f"RDS-EVENT-{number}"].categories)
        assert ev.source_arn.startswith(f"arn:aws:rds:{ev.region}:{ev.account}:")
        assert ev.source_arn.endswith(":" + ev.source_id)


def test_moto_records_no_events_of_its_own(world: dict[str, Any], engine: Any) -> None:
    rds = world["rds"]
    events = rds.describe_events(SourceType="db-instance", SourceIdentifier=DB, Duration=60)[
        "Events"
    ]
    assert events, "the instance's creation events are missing"
    # moto's own records say "Finished DB instance backup" (lower case i): they must be gone
    assert all(e["Message"] != "Finished DB instance backup" for e in events)
    assert {e["Message"] for e in events} <= {d.message for d in catalog.EVENTS.values()} | {
        f"Updated to use DBParameterGroup {PG}"
    }


def test_cluster_lifecycle(world: dict[str, Any], engine: Any) -> None:
    rds = world["rds"]
    since = last_seq(engine)
    rds.create_db_cluster(
        DBClusterIdentifier=CLUSTER,
        Engine="aurora-postgresql",
        MasterUsername="labuser",
        MasterUserPassword="lab-password-1",
    )
    assert [(e.event_id, e.message) for e in new_events(engine, since)] == [
        ("RDS-EVENT-0170", "DB cluster created")
    ]

    writer, reader = f"{CLUSTER}-1", f"{CLUSTER}-2"
    for name, az in ((writer, "us-east-1a"), (reader, "us-east-1b")):
        since = last_seq(engine)
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier=CLUSTER,
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
            AvailabilityZone=az,
        )
        # Aurora instances are backed up with the cluster: no per-instance backup events
        assert [e.event_id for e in new_events(engine, since)] == ["RDS-EVENT-0005"]

    since = last_seq(engine)
    rds.failover_db_cluster(DBClusterIdentifier=CLUSTER, TargetDBInstanceIdentifier=reader)
    got = [(e.event_id, e.source_type, e.source_id, e.message) for e in new_events(engine, since)]
    assert got == [
        (
            "RDS-EVENT-0073",
            "db-cluster",
            CLUSTER,
            f"Started cross AZ failover to DB instance: {reader}",
        ),
        ("RDS-EVENT-0071", "db-cluster", CLUSTER, f"Completed failover to DB instance: {reader}"),
    ]

    for name in (writer, reader):
        rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
    for call, event_id, message in (
        (rds.stop_db_cluster, "RDS-EVENT-0150", "DB cluster stopped"),
        (rds.start_db_cluster, "RDS-EVENT-0151", "DB cluster started"),
    ):
        since = last_seq(engine)
        call(DBClusterIdentifier=CLUSTER)
        assert [(e.event_id, e.message, e.source_type) for e in new_events(engine, since)] == [
            (event_id, message, "db-cluster")
        ]

    since = last_seq(engine)
    rds.delete_db_cluster(DBClusterIdentifier=CLUSTER, SkipFinalSnapshot=True)
    assert [(e.event_id, e.categories) for e in new_events(engine, since)] == [
        ("RDS-EVENT-0171", ["deletion"])
    ]


def test_maintenance_backup_and_injected_events(world: dict[str, Any], engine: Any) -> None:
    rds = world["rds"]
    arn = rds.describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"][0]["DBInstanceArn"]

    since = last_seq(engine)
    engine.schedule_maintenance(DB, "system-update")
    assert [e.event_id for e in new_events(engine, since)] == ["RDS-EVENT-0230"]
    pending = rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)[
        "PendingMaintenanceActions"
    ]
    assert pending[0]["PendingMaintenanceActionDetails"][0]["Action"] == "system-update"

    since = last_seq(engine)
    rds.apply_pending_maintenance_action(
        ResourceIdentifier=arn, ApplyAction="system-update", OptInType="immediate"
    )
    assert [(e.event_id, e.message) for e in new_events(engine, since)] == [
        ("RDS-EVENT-0026", "Applying off-line patches to DB instance"),
        ("RDS-EVENT-0027", "Finished applying off-line patches to DB instance"),
    ]
    assert (
        rds.describe_pending_maintenance_actions(ResourceIdentifier=arn)[
            "PendingMaintenanceActions"
        ]
        == []
    )
    with pytest.raises(ClientError) as err:
        rds.apply_pending_maintenance_action(
            ResourceIdentifier=arn, ApplyAction="system-update", OptInType="immediate"
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"

    since = last_seq(engine)
    engine.backup(DB)
    got = [(e.event_id, e.source_type) for e in new_events(engine, since)]
    assert got == [
        ("RDS-EVENT-0001", "db-instance"),
        ("RDS-EVENT-0090", "db-snapshot"),
        ("RDS-EVENT-0091", "db-snapshot"),
        ("RDS-EVENT-0002", "db-instance"),
    ]

    ev = engine.inject(DB, 89)
    assert ev.event_id == "RDS-EVENT-0089" and ev.categories == ["low storage"]
    assert ev.message.startswith(
        f"The free storage capacity for DB instance: {DB} is low at 9% of the provisioned storage"
    )
    assert engine.inject(DB, "RDS-EVENT-0007").message == (
        "Allocated storage has been exhausted. Allocate additional storage to resolve"
    )
    assert engine.inject(DB, 48, "custom text").message == "custom text"
    with pytest.raises(KeyError):
        engine.inject(DB, 9999)


# ---------------------------------------------------------------------------- describe_events
def test_describe_events_window_and_filters(world: dict[str, Any], engine: Any) -> None:
    rds = world["rds"]
    now = dt.datetime.now(dt.UTC)
    old = engine.inject(DB, "0155", date=now - dt.timedelta(hours=2))
    ancient = engine.inject(DB, "0155", "ancient", date=now - dt.timedelta(days=15))
    fresh = engine.inject(DB, "0089")

    def messages(**kw: Any) -> list[str]:
        events = rds.describe_events(SourceType="db-instance", SourceIdentifier=DB, **kw)["Events"]
        return [e["Message"] for e in events]

    default = messages()
    assert fresh.message in default and old.message not in default  # default: last hour
    assert old.message in messages(Duration=180)
    assert old.message in messages(
        StartTime=now - dt.timedelta(hours=3), EndTime=now - dt.timedelta(hours=1)
    )
    assert fresh.message not in messages(
        StartTime=now - dt.timedelta(hours=3), EndTime=now - dt.timedelta(hours=1)
    )
    assert "ancient" not in messages(StartTime=now - dt.timedelta(days=20))  # 14-day history
    assert ancient not in engine.store.all()

    low = rds.describe_events(
        SourceType="db-instance", SourceIdentifier=DB, EventCategories=["low storage"]
    )["Events"]
    assert low and all("low storage" in e["EventCategories"] for e in low)
    assert set(low[0]) == {
        "SourceIdentifier",
        "SourceType",
        "Message",
        "EventCategories",
        "Date",
        "SourceArn",
    }
    dates = [e["Date"] for e in rds.describe_events(Duration=60)["Events"]]
    assert dates == sorted(dates)  # oldest first
    assert all(
        e["SourceType"] == "db-parameter-group"
        for e in rds.describe_events(SourceType="db-parameter-group")["Events"]
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"SourceIdentifier": DB}, "InvalidParameterCombination"),
        ({"SourceType": "db-nothing"}, "InvalidParameterValue"),
        ({"MaxRecords": 5}, "InvalidParameterValue"),
    ],
)
def test_describe_events_bad_input(
    world: dict[str, Any], kwargs: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError) as err:
        world["rds"].describe_events(**kwargs)
    assert err.value.response["Error"]["Code"] == code


def test_describe_events_paginates(world: dict[str, Any], engine: Any) -> None:
    rds = world["rds"]
    for _ in range(25):
        engine.inject(MAZ, "0048")
    first = rds.describe_events(SourceType="db-instance", SourceIdentifier=MAZ, MaxRecords=20)
    assert len(first["Events"]) == 20 and first["Marker"]
    rest = rds.describe_events(
        SourceType="db-instance", SourceIdentifier=MAZ, MaxRecords=20, Marker=first["Marker"]
    )
    assert len(rest["Events"]) >= 5 and "Marker" not in rest


@pytest.mark.parametrize("source_type", sorted(catalog.CATEGORIES))
def test_describe_event_categories(world: dict[str, Any], source_type: str) -> None:
    got = world["rds"].describe_event_categories(SourceType=source_type)["EventCategoriesMapList"]
    assert got == [{"SourceType": source_type, "EventCategories": catalog.CATEGORIES[source_type]}]


def test_describe_event_categories_all_and_reference(world: dict[str, Any]) -> None:
    got = world["rds"].describe_event_categories()["EventCategoriesMapList"]
    by_type = {m["SourceType"]: m["EventCategories"] for m in got}
    # spot checks against aws-fidelity.md §4.2
    assert by_type["db-parameter-group"] == ["configuration change"]
    assert by_type["db-cluster-snapshot"] == ["backup", "notification"]
    assert "low storage" in by_type["db-instance"] and "global failover" in by_type["db-cluster"]
    with pytest.raises(ClientError):
        world["rds"].describe_event_categories(SourceType="nope")


def test_force_failover_needs_a_multi_az_instance() -> None:
    import boto3
    import rdslab
    from botocore.exceptions import ClientError

    rdslab.start()
    rds = boto3.client("rds")
    rds.create_db_instance(
        DBInstanceIdentifier="single-az",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword="Sup3rSecret!",
        AllocatedStorage=20,
    )
    with pytest.raises(ClientError) as err:
        rds.reboot_db_instance(DBInstanceIdentifier="single-az", ForceFailover=True)
    assert err.value.response["Error"]["Code"] == "InvalidParameterCombination"
    rds.reboot_db_instance(DBInstanceIdentifier="single-az")  # a plain reboot is fine
    rds.delete_db_instance(DBInstanceIdentifier="single-az", SkipFinalSnapshot=True)
