"""Timing: by default events arrive at once and in order; in realistic mode they are delayed
(0-300 AWS seconds, scaled) and overtake each other; delivery never blocks the API call; the
engine reports what it could not deliver at shutdown; the benchmark meets its target."""

# ruff: noqa: F811  (pytest fixtures imported from test_events_support are parameters here)

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rdslab import config
from rdslab.events import EventEngine, bench
from test_events_support import clients, create_instance, drain, engine, events_lab, make_queue, uid  # noqa: F401

DB = uid("tm-db")


@pytest.fixture(scope="module")
def world(clients: dict[str, Any]) -> dict[str, Any]:
    create_instance(clients["rds"], DB)
    yield clients
    try:
        clients["rds"].delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)
    except ClientError:
        pass


@pytest.fixture
def realistic(engine: Any) -> Any:
    saved = (config.TIME.factor, config.TIME.realistic_events)
    config.TIME.realistic_events = True
    config.TIME.factor = 1 / 1500  # 300 AWS seconds -> 0.2 s
    engine.rng.seed(7)
    yield config.TIME
    config.TIME.factor, config.TIME.realistic_events = saved


def _queue_rule(c: dict[str, Any], source_id: str) -> str:
    name = uid("rule")
    c["events"].put_rule(
        Name=name, EventPattern=json.dumps({"detail": {"SourceIdentifier": [source_id]}})
    )
    url, arn = make_queue(c["sqs"])
    c["events"].put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    return url


def _order(c: dict[str, Any], url: str) -> list[str]:
    bodies = [json.loads(m["Body"]) for m in drain(c["sqs"], url)]
    return [b["detail"]["Message"] for b in bodies]


def test_default_mode_in_order_within_a_second(world: dict[str, Any], engine: Any) -> None:
    c = world
    source = uid("ordered")
    url = _queue_rule(c, source)
    messages = [f"event {i:02d}" for i in range(15)]
    for text in messages:
        engine.inject(source, "0048", text)
    assert engine.wait_idle(5)
    assert _order(c, url) == messages
    rows = engine.deliveries().query("source_id == @source")
    assert len(rows) == 15 and (rows["status"] == "Delivered").all()
    assert rows["delay_s"].max() < 1.0


def test_realistic_mode_delays_and_shuffles(
    world: dict[str, Any], engine: Any, realistic: Any
) -> None:
    c = world
    source = uid("shuffled")
    url = _queue_rule(c, source)
    messages = [f"event {i:02d}" for i in range(15)]
    started = time.monotonic()
    for text in messages:
        engine.inject(source, "0048", text)
    assert time.monotonic() - started < 0.5  # emitting never waits for delivery
    assert engine.wait_idle(5)
    got = _order(c, url)
    assert sorted(got) == messages and got != messages  # all there, not in order
    rows = engine.deliveries().query("source_id == @source")
    assert rows["delay_s"].max() <= 300 * realistic.factor + 0.2
    assert rows["delay_s"].max() > 0.02  # some were really delayed


def test_api_call_does_not_wait_for_delivery(
    world: dict[str, Any], engine: Any, realistic: Any
) -> None:
    c = world
    url = _queue_rule(c, DB)
    realistic.factor = 1 / 100  # the seeded delays below are 187-239 AWS s -> about 2 s
    engine.rng.seed(5)
    started = time.monotonic()
    c["rds"].reboot_db_instance(DBInstanceIdentifier=DB)
    elapsed = time.monotonic() - started
    pending = engine.scheduler.pending()
    assert elapsed < 1.5, elapsed
    assert any(DB in label for label in pending), pending
    assert _order(c, url) == []
    assert engine.wait_idle(10)
    assert _order(c, url) == ["DB instance restarted"]


def test_shutdown_reports_what_is_still_in_flight() -> None:
    slow = EventEngine(None, time=config.TimeScale(factor=1.0, realistic_events=True))
    slow.rng.seed(1)
    ev = slow.inject("nowhere-db", "0006")
    report = slow.shutdown(timeout=0.2)
    assert report["idle"] is False
    assert any(ev.event_id in label for label in report["undelivered"])
    quick = EventEngine(None)
    assert quick.shutdown(timeout=1) == {"idle": True, "undelivered": []}


def test_benchmark_meets_target(world: dict[str, Any]) -> None:
    result = bench.run(reboots=3)
    assert result["sns_deliveries"] == result["eventbridge_deliveries"] == 3
    assert result["ok"], result
