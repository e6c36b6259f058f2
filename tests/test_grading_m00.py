"""Module 00's checks on partial answers: each criterion fails on its own, with its hint.

The learner's namespace is passed explicitly (as the kernel's would be).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import psycopg2
import pytest
from rdslab.grading import core
from rdslab.grading.checks import m00


def failing(result: core.CheckResult) -> list[str]:
    return [c.looked_at for c in result.criteria if not c.passed]


@pytest.fixture
def rds(lab: Any) -> Iterator[Any]:
    client = boto3.client("rds")
    yield client
    try:
        client.delete_db_instance(DBInstanceIdentifier=m00.INSTANCE, SkipFinalSnapshot=True)
    except client.exceptions.DBInstanceNotFoundFault:
        pass


def create(rds: Any, password: str, instance_class: str = "db.t3.micro") -> dict[str, Any]:
    rds.create_db_instance(
        DBInstanceIdentifier=m00.INSTANCE, Engine="postgres", DBInstanceClass=instance_class,
        MasterUsername=m00.USER, MasterUserPassword=password, DBName=m00.DBNAME, AllocatedStorage=20,
    )  # fmt: skip
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=m00.INSTANCE)
    return rds.describe_db_instances(DBInstanceIdentifier=m00.INSTANCE)["DBInstances"][0][
        "Endpoint"
    ]


def test_welcome_checks_on_partial_answers(rds: Any) -> None:
    endpoint = create(rds, "another-Passw0rd", instance_class="db.t3.small")
    nothing: dict[str, Any] = {}
    result = core.run("00.1", namespace=nothing)
    assert (result.earned, result.possible) == (5, 8)
    assert failing(result) == [
        "its DBInstanceClass: 'db.t3.small'",
        f"a connection to {m00.INSTANCE} at 127.0.0.1:{endpoint['Port']} as `labadmin`, database `course`",
    ]
    assert "password authentication failed" in result.criteria[-1].wrong

    learner = {"my_password": "another-Passw0rd"}  # the fallback: the learner's own variable
    result = core.run("00.1", namespace=learner)
    assert result.earned == 7 and "your variable `my_password`" in result.criteria[-1].looked_at

    result = core.run("00.2", namespace=learner)
    assert (result.earned, result.status) == (0, "not yet") and "commit" in result.criteria[0].hint

    conn = psycopg2.connect(host=endpoint["Address"], port=endpoint["Port"], user="labadmin",
                            password="another-Passw0rd", dbname="course")  # fmt: skip
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE learners (id serial PRIMARY KEY, name text)")
        cur.execute("INSERT INTO learners (name) VALUES ('a'), ('b')")
        assert core.run("00.2", namespace=learner).earned == 0  # not committed: not there yet
    conn.commit()
    result = core.run("00.2", namespace=learner)
    assert (result.earned, result.possible) == (3, 6)
    assert failing(result) == ["column name: text, nullable YES", "rows in learners: 2"]
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE learners ALTER COLUMN name SET NOT NULL")
        cur.execute("INSERT INTO learners (name) VALUES ('c')")
    conn.commit()
    conn.close()
    assert core.run("00.2", namespace=learner).passed
