"""The events room as one object (``lab.events``): emits RDS events, hands them to SNS (through
the matching event subscriptions) and to EventBridge, and shows what happened.

Timing: by default every event leaves at once and in order (one background thread, nothing
blocks the API call). With ``rdslab.config.TIME.realistic_events`` each event and channel waits
a random 0-300 AWS seconds scaled by ``TIME.factor`` ("within five minutes, in no guaranteed
order"), so events overtake each other; ``deliveries()`` shows emitted_at and delivered_at.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime
from typing import Any

from .. import config
from . import bridge_eb, catalog, emit, sns, subscriptions
from .delivery import AsyncRuntime, DeliveryLog, FallbackRuntime, Metrics, Scheduler
from .store import EventStore, RdsEvent, as_utc, utcnow

log = logging.getLogger("rdslab.events")
MAX_DELAY_AWS_SECONDS = 300  # "delivered within five minutes"


class EventEngine:
    """RDS event notifications for the lab."""

    def __init__(self, lab: Any = None, *, time: config.TimeScale | None = None) -> None:
        self.lab = lab
        self.time = time or config.TIME
        self.store = EventStore()
        self.log = DeliveryLog()
        self.counters = Metrics()
        self.outbox = sns.Outbox()
        self.scheduler = Scheduler()
        self.rng = random.Random()
        self._runtime: AsyncRuntime | None = None
        self._fallback = FallbackRuntime()
        self._lock = threading.Lock()
        self._pending_reboot: set[tuple[str, str, str]] = set()
        self._pending_class: dict[tuple[str, str, str], str] = {}
        self._maintenance: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}

    # ------------------------------------------------------------------ Lambda runtime
    def runtime(self) -> AsyncRuntime:
        """Who invokes Lambda functions: an injected runtime, the lab's runtime room, or a
        fallback that checks the resource policy and hands the event to moto."""
        if self._runtime is not None:
            return self._runtime
        room = getattr(self.lab, "runtime", None)
        if room is not None and hasattr(room, "invoke_async"):
            return room  # type: ignore[no-any-return]
        return self._fallback

    def use_runtime(self, runtime: AsyncRuntime | None) -> None:
        """Deliver Lambda events to ``runtime`` (tests, benchmarks); None restores the default."""
        self._runtime = runtime

    # ------------------------------------------------------------------ emitting
    def _delay(self) -> float:
        if not self.time.realistic_events:
            return 0.0
        return self.time.seconds(self.rng.uniform(0, MAX_DELAY_AWS_SECONDS))

    def emit(self, ev: RdsEvent) -> None:
        """Record ``ev`` and queue its deliveries (never blocks)."""
        self.store.add(ev)
        label = f"{ev.event_id} {ev.source_id}"
        for name, topic_arn in subscriptions.matching(ev):
            self.scheduler.submit(
                lambda t=topic_arn, n=name: sns.publish_rds_event(self, ev, t, n),
                delay=self._delay(),
                label=f"{label} -> sns {topic_arn}",
            )
        self.scheduler.submit(
            lambda: bridge_eb.put_rds_event(self, ev),
            delay=self._delay(),
            label=f"{label} -> eventbridge",
        )

    def inject(
        self,
        source_id: str,
        event_id: str | int,
        message: str | None = None,
        *,
        date: datetime | None = None,
        region: str | None = None,
        **values: Any,
    ) -> RdsEvent:
        """Lab facility: make RDS emit an event no API action causes (``0089`` low storage,
        ``0155`` minor version upgrade available, ``0048`` patching delayed...)."""
        d = catalog.lookup(event_id)
        backend = _rds(region)
        arn, defaults = _source(backend, d.source_type, source_id)
        ev = RdsEvent(
            event_id=d.event_id,
            source_type=d.source_type,
            source_id=source_id,
            source_arn=arn,
            message=message
            if message is not None
            else catalog.render_message(d, **{**defaults, **values}),
            categories=list(d.categories),
            account=backend.account_id,
            region=backend.region_name,
            date=as_utc(date) if date is not None else utcnow(),
            injected=True,
        )
        self.emit(ev)
        return ev

    def backup(self, db_instance_identifier: str, *, region: str | None = None) -> None:
        """Lab facility: the automated backup RDS takes in the backup window (0001, 0090, 0091, 0002)."""
        backend = _rds(region)
        db = backend.databases[db_instance_identifier]
        with emit.suppressed():
            stamp = utcnow().strftime("%Y-%m-%d-%H-%M-%S")
            backend.create_auto_snapshot(
                db_instance_identifier, f"rds:{db_instance_identifier}-{stamp}"
            )
        emit.backup_sequence(backend, db)

    def schedule_maintenance(
        self,
        resource_id: str,
        action: str = "system-update",
        *,
        description: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Lab facility: RDS schedules a pending maintenance action (and says so: 0230 for a
        system update, 0155/0156 for an engine upgrade)."""
        backend = _rds(region)
        if resource_id in backend.databases:
            arn, notice = (
                backend.databases[resource_id].arn,
                {"system-update": "0230", "db-upgrade": "0155"},
            )
        elif resource_id in backend.clusters:
            arn, notice = backend.clusters[resource_id].arn, {"db-upgrade": "0156"}
        else:
            raise KeyError(f"no DB instance or cluster named {resource_id!r}")
        item = {
            "Action": action,
            "Description": description or _DESCRIPTIONS.get(action, action),
            "AutoAppliedAfterDate": None,
            "ForcedApplyDate": None,
            "OptInStatus": None,
            "CurrentApplyDate": None,
        }
        with self._lock:
            key = (backend.account_id, backend.region_name)
            self._maintenance.setdefault(key, {}).setdefault(arn, []).append(item)
        if action in notice:
            self.inject(resource_id, notice[action], region=region)
        return item

    def pending_maintenance(self, account: str, region: str) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return self._maintenance.setdefault((account, region), {})

    def apply_maintenance(
        self, backend: Any, source_type: str, source_id: str, model: Any, action: str
    ) -> None:
        """ApplyPendingMaintenanceAction with OptInType=immediate."""
        if source_type == "db-cluster":
            emit.emit(backend, "0173", source_id, model.arn)
            return
        ids = ("0026", "0047", "0027") if action == "db-upgrade" else ("0026", "0027")
        for event_id in ids:
            emit.emit(backend, event_id, source_id, model.arn)
        key = (backend.account_id, backend.region_name, source_id)
        with self._lock:
            new_class = self._pending_class.pop(key, None)
        if new_class:
            for event_id in ("0012", "0014"):
                emit.emit(backend, event_id, source_id, model.arn)

    # ------------------------------------------------------------------ state for the hooks
    def mark_pending_reboot(self, backend: Any, db_id: str) -> None:
        with self._lock:
            self._pending_reboot.add((backend.account_id, backend.region_name, db_id))

    def take_pending_reboot(self, backend: Any, db_id: str) -> bool:
        key = (backend.account_id, backend.region_name, db_id)
        with self._lock:
            if key in self._pending_reboot:
                self._pending_reboot.discard(key)
                return True
            return False

    def mark_pending_class(self, backend: Any, db_id: str, new_class: str) -> None:
        with self._lock:
            self._pending_class[(backend.account_id, backend.region_name, db_id)] = new_class

    # ------------------------------------------------------------------ views
    def timeline(self) -> Any:
        """The events RDS emitted (oldest first), as a pandas DataFrame."""
        import pandas as pd

        rows = [
            {
                "date": ev.date,
                "event_id": ev.event_id,
                "source_type": ev.source_type,
                "source_id": ev.source_id,
                "categories": ", ".join(ev.categories),
                "message": ev.message,
                "source_arn": ev.source_arn,
                "injected": ev.injected,
            }
            for ev in self.store.all()
        ]
        return pd.DataFrame(rows, columns=_TIMELINE_COLUMNS)

    def deliveries(self) -> Any:
        """Every delivery (SNS topic, SNS subscribers, EventBridge targets) with its timing."""
        import pandas as pd

        rows = []
        for d in self.log.rows():
            delay = (d.delivered_at - d.emitted_at).total_seconds() if d.delivered_at else None
            rows.append(
                {
                    "id": d.id,
                    "event_id": d.event_id,
                    "source_id": d.source_id,
                    "channel": d.channel,
                    "kind": d.kind,
                    "target": d.target,
                    "via": d.via,
                    "emitted_at": d.emitted_at,
                    "delivered_at": d.delivered_at,
                    "delay_s": delay,
                    "attempts": d.attempts,
                    "status": d.status,
                    "detail": d.detail,
                }
            )
        return pd.DataFrame(rows, columns=_DELIVERY_COLUMNS)

    def emails(self) -> Any:
        """The emails SNS sent to ``email``/``email-json`` subscriptions (the lab's outbox)."""
        import pandas as pd

        return pd.DataFrame(self.outbox.rows(), columns=_EMAIL_COLUMNS)

    def metrics(self) -> Any:
        """CloudWatch-style counters (AWS/SNS per topic, AWS/Events per rule)."""
        import pandas as pd

        return pd.DataFrame(
            self.counters.rows(), columns=["namespace", "metric", "dimension", "value"]
        )

    # ------------------------------------------------------------------ lifecycle
    def wait_idle(self, timeout: float = 5) -> bool:
        """Wait until queued deliveries are done (and the runtime's queue, if it has one)."""
        import time

        deadline = time.monotonic() + timeout
        ok = self.scheduler.wait_idle(timeout)
        runtime = self.runtime()
        waiter = getattr(runtime, "wait_idle", None)
        if ok and waiter is not None and runtime is not self._fallback:
            try:
                ok = bool(waiter(timeout=max(0.0, deadline - time.monotonic())))
            except TypeError:
                ok = bool(waiter())
        return ok

    def reset(self) -> None:
        """Forget everything (moto's state was reset)."""
        self.scheduler.clear()
        self.store.clear()
        self.log.clear()
        self.outbox.clear()
        self.counters.clear()
        with self._lock:
            self._pending_reboot.clear()
            self._pending_class.clear()
            self._maintenance.clear()

    def shutdown(self, timeout: float = 5) -> dict[str, Any]:
        """Deliver what is in flight (bounded wait), stop, and report what could not go out."""
        from . import _state

        delivered = self.scheduler.wait_idle(timeout)
        left = self.scheduler.stop()
        if left:
            log.warning(
                "rdslab events: %d deliveries not made at shutdown: %s", len(left), "; ".join(left)
            )
        if _state.ENGINE is self:
            _state.ENGINE = None
        return {"idle": delivered and not left, "undelivered": left}

    def __repr__(self) -> str:
        return f"<rdslab.events: {len(self.store.all())} events, {len(self.log.rows())} deliveries>"


_TIMELINE_COLUMNS = [
    "date",
    "event_id",
    "source_type",
    "source_id",
    "categories",
    "message",
    "source_arn",
    "injected",
]
_DELIVERY_COLUMNS = [
    "id", "event_id", "source_id", "channel", "kind", "target", "via",
    "emitted_at", "delivered_at", "delay_s", "attempts", "status", "detail",
]  # fmt: skip
_EMAIL_COLUMNS = ["sent_at", "to", "from", "subject", "body", "protocol", "topic_arn", "message_id"]
_DESCRIPTIONS = {
    "system-update": "New Operating System update is available",
    "db-upgrade": "Upgrade to the latest minor engine version",
    "hardware-maintenance": "Hardware maintenance",
}


def _rds(region: str | None) -> Any:
    from .. import aws

    return aws.backend("rds", region)


def _source(backend: Any, source_type: str, source_id: str) -> tuple[str, dict[str, Any]]:
    """ARN of the source (built from the identifier if it does not exist) and template defaults."""
    prefix = f"arn:aws:rds:{backend.region_name}:{backend.account_id}"
    if source_type == "db-instance":
        db = backend.databases.get(source_id)
        allocated = float(getattr(db, "allocated_storage", None) or 20)
        defaults = {
            "name": source_id,
            "percent": 9,
            "allocated": f"{allocated:.2f} GB",
            "free": f"{allocated * 0.09:.2f} GB",
        }
        return (db.arn if db is not None else f"{prefix}:db:{source_id}"), defaults
    kinds = {
        "db-cluster": ("clusters", "cluster"),
        "db-snapshot": ("database_snapshots", "snapshot"),
        "db-cluster-snapshot": ("cluster_snapshots", "cluster-snapshot"),
        "db-parameter-group": ("db_parameter_groups", "pg"),
    }
    attr, kind = kinds.get(source_type, ("", source_type))
    model = (getattr(backend, attr, None) or {}).get(source_id) if attr else None
    return (model.arn if model is not None else f"{prefix}:{kind}:{source_id}"), {"name": source_id}
