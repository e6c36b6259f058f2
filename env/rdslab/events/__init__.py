"""The events room: RDS event notifications (``lab.events``).

moto records a handful of RDS events and delivers none. This room makes every lifecycle action
emit RDS's events (real IDs, categories, messages), answers ``describe_events`` and
``describe_event_categories``, implements event subscriptions that publish RDS's SNS message to
the subscribers (Lambda, SQS, email), puts every event on the default EventBridge bus
(``source: aws.rds``) where rules with event patterns route it to Lambda, SQS, SNS and
CloudWatch Logs targets, with retries and dead-letter queues, and lets a lesson watch the
timing (``deliveries()``), the events (``timeline()``) and the mail (``emails()``).

Modules: ``catalog`` (IDs, categories, messages), ``store`` (14-day history), ``emit``
(lifecycle hooks on moto's RDS backend), ``rds_api`` and ``subscriptions`` (the RDS API),
``sns`` (RDS -> SNS -> subscribers), ``bridge_eb`` (EventBridge), ``patterns`` (event patterns,
input transformers), ``delivery`` (scheduler, log, metrics, Lambda), ``engine``, ``bench``.
"""

from __future__ import annotations

from typing import Any

from . import _state
from .engine import EventEngine
from .store import RdsEvent

__all__ = ["EventEngine", "RdsEvent", "current", "install"]


def install(lab: Any) -> EventEngine:
    """Patch moto (once per process) and start the engine the patches report to."""
    from .. import aws
    from . import bridge_eb, emit, rds_api, sns

    emit.install()
    sns.install()
    bridge_eb.install()
    bridge_eb.install_test_event_pattern()
    rds_api.install()
    previous = _state.ENGINE
    if previous is not None:
        previous.shutdown(timeout=1)
    engine = EventEngine(lab)
    _state.ENGINE = engine
    aws.on_reset(engine.reset)
    return engine


def current() -> EventEngine | None:
    """The running event engine, if any."""
    return _state.current()
