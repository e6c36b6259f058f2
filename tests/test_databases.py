"""The lab core: real PostgreSQL servers behind moto's RDS API (issue: lab core)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import psutil
import psycopg2
import pytest
import rdslab
from botocore.exceptions import ClientError
from rdslab import databases, pgbin

PASSWORD = "Sup3rSecret!"


def create(rds, identifier: str, **extra):  # type: ignore[no-untyped-def]
    kwargs = dict(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin",
        MasterUserPassword=PASSWORD,
        DBName="course",
        AllocatedStorage=20,
    )
    kwargs.update(extra)
    return rds.create_db_instance(**kwargs)["DBInstance"]


def endpoint(rds, identifier: str) -> dict:  # type: ignore[type-arg]
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]


def connect(ep: dict, password: str = PASSWORD, user: str = "labadmin", dbname: str = "course"):  # type: ignore[no-untyped-def,type-arg]
    return psycopg2.connect(
        host=ep["Address"],
        port=ep["Port"],
        user=user,
        password=password,
        dbname=dbname,
        connect_timeout=5,
    )


@pytest.fixture(scope="module")
def rds(lab):  # type: ignore[no-untyped-def]
    return boto3.client("rds")


def test_start_twice_returns_the_same_lab(lab) -> None:  # type: ignore[no-untyped-def]
    assert rdslab.start() is lab
    assert lab.account_id == "123456789012" and lab.region == "us-east-1"


def test_plain_boto3_reaches_the_lab(lab) -> None:  # type: ignore[no-untyped-def]
    client = boto3.client("rds")  # no endpoint argument
    assert client.meta.endpoint_url == lab.endpoint
    assert lab.endpoint.startswith("http://127.0.0.1:")
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
    assert client.meta.region_name == "us-east-1"


def test_create_goes_creating_then_available_with_a_real_endpoint(rds, unique) -> None:  # type: ignore[no-untyped-def]
    created = create(rds, f"db-{unique}")
    assert created["DBInstanceStatus"] == "creating"
    described = rds.describe_db_instances(DBInstanceIdentifier=f"db-{unique}")["DBInstances"][0]
    assert described["DBInstanceStatus"] == "available"
    assert described["Endpoint"]["Address"] == "127.0.0.1"
    assert described["Endpoint"]["Port"] != 5432
    assert described["EngineVersion"] == pgbin.find().version
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=f"db-{unique}")
    with connect(described["Endpoint"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_user, version()")
        db, user, version = cur.fetchone()
    assert (db, user) == ("course", "labadmin")
    assert "PostgreSQL" in version
    rds.delete_db_instance(DBInstanceIdentifier=f"db-{unique}", SkipFinalSnapshot=True)


def test_password_authentication_is_real(rds, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"pw-{unique}")
    ep = endpoint(rds, f"pw-{unique}")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(ep, password="wrong-password")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(ep, user="rdsadmin", password=PASSWORD, dbname="rdsadmin")
    connect(ep).close()
    rds.delete_db_instance(DBInstanceIdentifier=f"pw-{unique}", SkipFinalSnapshot=True)


def test_master_user_is_rds_superuser_but_not_superuser(rds, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"role-{unique}")
    with connect(endpoint(rds, f"role-{unique}")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
        assert cur.fetchone() == (False, True, True)
        cur.execute("SELECT pg_has_role(current_user, 'rds_superuser', 'member')")
        assert cur.fetchone()[0] is True
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE EXTENSION dblink")  # not a trusted extension: superuser only
    with pytest.raises(psycopg2.OperationalError):
        connect(endpoint(rds, f"role-{unique}"), dbname="rdsadmin")
    rds.delete_db_instance(DBInstanceIdentifier=f"role-{unique}", SkipFinalSnapshot=True)


def test_reboot_really_restarts_and_drops_connections(rds, lab, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"rb-{unique}")
    ep = endpoint(rds, f"rb-{unique}")
    conn = connect(ep)
    pid_before = lab.databases.get(f"rb-{unique}").pid
    answer = rds.reboot_db_instance(DBInstanceIdentifier=f"rb-{unique}")["DBInstance"]
    assert answer["DBInstanceStatus"] == "rebooting"
    with pytest.raises(psycopg2.OperationalError):
        conn.cursor().execute("SELECT 1")
    assert lab.databases.get(f"rb-{unique}").pid != pid_before
    status = rds.describe_db_instances(DBInstanceIdentifier=f"rb-{unique}")["DBInstances"][0]
    assert status["DBInstanceStatus"] == "available"
    connect(ep).close()  # same endpoint after the reboot
    rds.delete_db_instance(DBInstanceIdentifier=f"rb-{unique}", SkipFinalSnapshot=True)


def test_stop_refuses_connections_and_start_brings_data_back(rds, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"st-{unique}")
    ep = endpoint(rds, f"st-{unique}")
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    assert (
        rds.stop_db_instance(DBInstanceIdentifier=f"st-{unique}")["DBInstance"]["DBInstanceStatus"]
        == "stopping"
    )
    assert (
        rds.describe_db_instances(DBInstanceIdentifier=f"st-{unique}")["DBInstances"][0][
            "DBInstanceStatus"
        ]
        == "stopped"
    )
    with pytest.raises(psycopg2.OperationalError, match="refused|could not connect"):
        connect(ep)
    with pytest.raises(ClientError) as err:
        rds.reboot_db_instance(DBInstanceIdentifier=f"st-{unique}")
    assert err.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    assert (
        rds.start_db_instance(DBInstanceIdentifier=f"st-{unique}")["DBInstance"]["DBInstanceStatus"]
        == "starting"
    )
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM kept")
        assert cur.fetchone() == (42,)
    with pytest.raises(ClientError) as err:
        rds.start_db_instance(DBInstanceIdentifier=f"st-{unique}")
    assert err.value.response["Error"]["Code"] == "InvalidDBInstanceState"
    rds.delete_db_instance(DBInstanceIdentifier=f"st-{unique}", SkipFinalSnapshot=True)


def test_delete_stops_the_server_and_frees_the_port(rds, lab, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"del-{unique}")
    ep = endpoint(rds, f"del-{unique}")
    server = lab.databases.get(f"del-{unique}")
    pid, directory = server.pid, server.directory
    answer = rds.delete_db_instance(DBInstanceIdentifier=f"del-{unique}", SkipFinalSnapshot=True)
    assert answer["DBInstance"]["DBInstanceStatus"] == "deleting"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not directory.exists()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        s.bind(("127.0.0.1", ep["Port"]))  # the port is free again
    with pytest.raises(ClientError) as err:
        rds.describe_db_instances(DBInstanceIdentifier=f"del-{unique}")
    assert err.value.response["Error"]["Code"] == "DBInstanceNotFound"


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"Engine": "postgresql-enterprise"}, "InvalidParameterValue", "postgresql-enterprise"),
        ({"MasterUserPassword": "short"}, "InvalidParameterValue", "shorter than 8 characters"),
        ({"MasterUserPassword": "has/slash123"}, "InvalidParameterValue", "printable ASCII"),
        ({"MasterUsername": "rdsadmin"}, "InvalidParameterValue", "reserved word"),
    ],
)
def test_bad_create_input_gets_the_aws_error_and_the_lab_keeps_running(
    rds, unique, change, code, message
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as err:
        create(rds, f"bad-{unique}", **change)
    assert err.value.response["Error"]["Code"] == code
    assert message in err.value.response["Error"]["Message"]
    assert rds.describe_db_instances()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_duplicate_identifier_and_unknown_instance(rds, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"dup-{unique}")
    with pytest.raises(ClientError) as err:
        create(rds, f"dup-{unique}")
    assert err.value.response["Error"]["Code"] == "DBInstanceAlreadyExists"
    with pytest.raises(ClientError) as err:
        rds.delete_db_instance(DBInstanceIdentifier=f"nosuch-{unique}", SkipFinalSnapshot=True)
    assert err.value.response["Error"]["Code"] == "DBInstanceNotFound"
    rds.delete_db_instance(DBInstanceIdentifier=f"dup-{unique}", SkipFinalSnapshot=True)


def test_aurora_postgresql_writer_behind_the_cluster_endpoint(rds, unique) -> None:  # type: ignore[no-untyped-def]
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=f"aur-{unique}",
        Engine="aurora-postgresql",
        MasterUsername="clusteradmin",
        MasterUserPassword=PASSWORD,
        DatabaseName="app",
    )["DBCluster"]
    assert cluster["Engine"] == "aurora-postgresql"
    rds.create_db_instance(
        DBInstanceIdentifier=f"aur-{unique}-w",
        DBClusterIdentifier=f"aur-{unique}",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    described = rds.describe_db_clusters(DBClusterIdentifier=f"aur-{unique}")["DBClusters"][0]
    assert described["Endpoint"] == "127.0.0.1"
    ep = {"Address": described["Endpoint"], "Port": described["Port"]}
    with connect(ep, user="clusteradmin", dbname="app") as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ("clusteradmin",)
    rds.stop_db_cluster(DBClusterIdentifier=f"aur-{unique}")
    with pytest.raises(psycopg2.OperationalError):
        connect(ep, user="clusteradmin", dbname="app")
    rds.start_db_cluster(DBClusterIdentifier=f"aur-{unique}")
    rds.create_db_instance(
        DBInstanceIdentifier=f"aur-{unique}-r",
        DBClusterIdentifier=f"aur-{unique}",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    assert (
        rds.describe_db_clusters(DBClusterIdentifier=f"aur-{unique}")["DBClusters"][0]["Port"]
        == ep["Port"]
    )
    conn = connect(ep, user="clusteradmin", dbname="app")
    rds.failover_db_cluster(DBClusterIdentifier=f"aur-{unique}")
    with pytest.raises(psycopg2.OperationalError):  # a failover disconnects clients
        conn.cursor().execute("SELECT 1")
    after = rds.describe_db_clusters(DBClusterIdentifier=f"aur-{unique}")["DBClusters"][0]
    connect(
        {"Address": after["Endpoint"], "Port": after["Port"]}, user="clusteradmin", dbname="app"
    ).close()
    rds.delete_db_instance(DBInstanceIdentifier=f"aur-{unique}-r")
    rds.delete_db_instance(DBInstanceIdentifier=f"aur-{unique}-w")


def test_servers_run_unprivileged_and_bind_loopback_only(rds, lab, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"sec-{unique}")
    server = lab.databases.get(f"sec-{unique}")
    proc = psutil.Process(server.pid)
    if os.geteuid() == 0:
        assert proc.uids().real != 0, "PostgreSQL must not run as root"
    addresses = {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == "LISTEN"}
    assert addresses == {"127.0.0.1"}
    rds.delete_db_instance(DBInstanceIdentifier=f"sec-{unique}", SkipFinalSnapshot=True)


def test_status_table(rds, lab, unique) -> None:  # type: ignore[no-untyped-def]
    create(rds, f"tbl-{unique}")
    frame = lab.status()
    row = frame[frame.identifier == f"tbl-{unique}"].iloc[0]
    assert row.server == "running" and row.endpoint.startswith("127.0.0.1:")
    rds.delete_db_instance(DBInstanceIdentifier=f"tbl-{unique}", SkipFinalSnapshot=True)


LEFTOVER = textwrap.dedent(
    """
    import os, signal, boto3, rdslab
    lab = rdslab.start()
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier="orphan", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin", MasterUserPassword="Sup3rSecret!", AllocatedStorage=20)
    print(lab.databases.get("orphan").pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)   # a kernel killed without clean-up
    """
)


@pytest.fixture
def lab_home():  # type: ignore[no-untyped-def]
    """A private RDSLAB_HOME that an unprivileged server user can traverse (pytest's tmp_path
    is not, when the tests run as root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="rdslab-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_servers_left_by_a_killed_kernel_are_reaped(lab_home: Path) -> None:
    tmp_path = lab_home
    env = dict(os.environ, RDSLAB_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", LEFTOVER], env=env, capture_output=True, text=True, timeout=120
    )
    pid = int(out.stdout.split()[0])
    assert psutil.pid_exists(pid), "the orphaned server should still be running"
    leftovers = databases.find_leftovers(tmp_path / "instances")
    assert [item["pid"] for item in leftovers] == [pid]
    assert databases.reap_leftovers(tmp_path / "instances") == 1
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not list((tmp_path / "instances").iterdir())


SYSTEM = textwrap.dedent(
    """
    import boto3, psycopg2, rdslab
    lab = rdslab.start()
    rds = boto3.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="sys", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin", MasterUserPassword="Sup3rSecret!", AllocatedStorage=20)
    ep = rds.describe_db_instances(DBInstanceIdentifier="sys")["DBInstances"][0]["Endpoint"]
    c = psycopg2.connect(host=ep["Address"], port=ep["Port"], user="labadmin", password="Sup3rSecret!", dbname="postgres")
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SHOW server_version")
    print(cur.fetchone()[0], lab.databases.binaries.source)
    cur.execute("CREATE EXTENSION aws_lambda CASCADE")
    lab.stop()
    """
)


def _system_postgres() -> Path | None:
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / "postgres").exists() and int(bindir.parent.name) >= 14:
            share = Path(f"/usr/share/postgresql/{bindir.parent.name}/extension")
            if os.access(share, os.W_OK) and (bindir.parent / "lib" / "dblink.so").exists():
                return bindir
    return None


@pytest.mark.skipif(
    _system_postgres() is None,
    reason="no writable system PostgreSQL >= 14 with contrib on this machine",
)
def test_system_postgresql_can_be_selected(lab_home: Path) -> None:
    tmp_path = lab_home
    env = dict(os.environ, RDSLAB_PG="system", RDSLAB_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", SYSTEM], env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    version, source = out.stdout.split()[-2:]
    assert source == "system"
    assert version.split(".")[0] == _system_postgres().parent.name  # type: ignore[union-attr]


NON_ROOT = textwrap.dedent(
    """
    import boto3, psycopg2, rdslab
    lab = rdslab.start()
    rds = boto3.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="user", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="labadmin", MasterUserPassword="Sup3rSecret!", AllocatedStorage=20)
    ep = rds.describe_db_instances(DBInstanceIdentifier="user")["DBInstances"][0]["Endpoint"]
    psycopg2.connect(host=ep["Address"], port=ep["Port"], user="labadmin", password="Sup3rSecret!", dbname="postgres").close()
    print("ok")
    lab.stop()
    """
)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="runs the lab as an unprivileged user, which needs root to arrange"
)
def test_the_lab_also_runs_as_a_normal_user(lab_home: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    as_nobody = dict(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    try:
        subprocess.run([sys.executable, "-c", "import rdslab"], check=True, **as_nobody, cwd="/")
    except (PermissionError, subprocess.CalledProcessError):
        pytest.skip("this Python installation is not readable by an unprivileged user")
    home = lab_home / "home"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    env = dict(os.environ, HOME=str(home), RDSLAB_HOME=str(home / "rdslab"))
    out = subprocess.run(
        [sys.executable, "-c", NON_ROOT],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(home),
        **as_nobody,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_subnet_groups_need_two_azs_and_aurora_roles_belong_to_the_cluster(rds, unique) -> None:  # type: ignore[no-untyped-def]
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    one_az = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone="us-east-1a")[
        "Subnet"
    ]["SubnetId"]
    with pytest.raises(ClientError) as err:
        rds.create_db_subnet_group(
            DBSubnetGroupName=f"one-az-{unique}",
            SubnetIds=[one_az],
            DBSubnetGroupDescription="one AZ",
        )
    assert err.value.response["Error"]["Code"] == "DBSubnetGroupDoesNotCoverEnoughAZs"
    rds.create_db_cluster(
        DBClusterIdentifier=f"rc-{unique}",
        Engine="aurora-postgresql",
        MasterUsername="clusteradmin",
        MasterUserPassword=PASSWORD,
    )
    rds.create_db_instance(
        DBInstanceIdentifier=f"rc-{unique}-w",
        DBClusterIdentifier=f"rc-{unique}",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    with pytest.raises(ClientError) as err:
        rds.add_role_to_db_instance(
            DBInstanceIdentifier=f"rc-{unique}-w",
            FeatureName="Lambda",
            RoleArn="arn:aws:iam::123456789012:role/any",
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "AddRoleToDBCluster" in err.value.response["Error"]["Message"]
    rds.delete_db_instance(DBInstanceIdentifier=f"rc-{unique}-w")


def test_templates_unused_for_a_day_are_pruned(lab_home: Path) -> None:
    import time as _time

    root = lab_home / "templates"
    root.mkdir()
    for name, age in (
        ("wheel-1.0-old", 2 * 86400),
        ("wheel-1.0-recent", 60),
        ("wheel-1.0-current", 3 * 86400),
    ):
        (root / name / "data").mkdir(parents=True)
        (root / f"{name}.spares").mkdir()
        (root / f"{name}.secret").write_text("x")
        lock = root / f"{name}.lock"
        lock.write_text("")
        os.utime(lock, (_time.time() - age, _time.time() - age))
    assert pgbin.prune_templates(root, keep="wheel-1.0-current") == ["wheel-1.0-old"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        f"{n}{s}"
        for n in ("wheel-1.0-recent", "wheel-1.0-current")
        for s in ("", ".spares", ".secret", ".lock")
    )
