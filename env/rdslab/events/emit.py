"""Lifecycle hooks: chain-wrap moto's ``RDSBackend`` methods so that each action emits the events
RDS emits for it (IDs, categories and messages from :mod:`.catalog`).

Each wrapper wraps whatever the attribute is when the events room installs (the databases and
access rooms wrap some of the same methods) and calls through; events are emitted only after the
call succeeded. Calls made *inside* a wrapped call (moto's create_db_instance taking its first
automated snapshot, delete_db_instance taking the final snapshot) do not emit on their own: the
outer action emits the whole sequence in RDS's order. moto's own ``add_event`` becomes a no-op.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from . import _state, catalog
from .store import RdsEvent

log = logging.getLogger("rdslab.events")
_local = threading.local()

After = Callable[[Any, Any, dict[str, Any], Any], None]
Before = Callable[[Any, dict[str, Any]], Any]


# ---------------------------------------------------------------------------- emitting
def emit(backend: Any, event_id: str, source_id: str, arn: str, **values: Any) -> RdsEvent | None:
    """Record one RDS event for a resource of ``backend`` and hand it to the engine."""
    engine = _state.current()
    if engine is None:
        return None
    d = catalog.lookup(event_id)
    ev = RdsEvent(
        event_id=d.event_id,
        source_type=d.source_type,
        source_id=source_id,
        source_arn=arn,
        message=catalog.render_message(d, **values),
        categories=list(d.categories),
        account=backend.account_id,
        region=backend.region_name,
    )
    engine.emit(ev)
    return ev


def _db(backend: Any, db: Any, *ids: str, **values: Any) -> None:
    for event_id in ids:
        emit(backend, event_id, db.db_instance_identifier, db.arn, **values)


def _snapshot(backend: Any, snap: Any, *ids: str) -> None:
    for event_id in ids:
        emit(backend, event_id, snap.db_snapshot_identifier, snap.arn)


def _cluster(backend: Any, cluster: Any, *ids: str, **values: Any) -> None:
    for event_id in ids:
        emit(backend, event_id, cluster.db_cluster_identifier, cluster.arn, **values)


def suppressed() -> Any:
    """Context manager: calls inside do not emit (the caller emits the sequence itself)."""

    class _Quiet:
        def __enter__(self) -> None:
            _local.depth = getattr(_local, "depth", 0) + 1

        def __exit__(self, *exc: object) -> None:
            _local.depth -= 1

    return _Quiet()


def backup_sequence(backend: Any, db: Any) -> None:
    """The automated backup RDS takes (at creation, or when a lab facility asks for one)."""
    snapshot = latest_automated_snapshot(backend, db.db_instance_identifier)
    _db(backend, db, "0001")
    if snapshot is not None:
        _snapshot(backend, snapshot, "0090", "0091")
    _db(backend, db, "0002")


def latest_automated_snapshot(backend: Any, db_id: str) -> Any:
    snaps = [
        s
        for s in backend.database_snapshots.values()
        if s.snapshot_type == "automated" and s.database.db_instance_identifier == db_id
    ]
    return max(snaps, key=lambda s: s.created) if snaps else None


# ---------------------------------------------------------------------------- wrapping
def wrap(cls: type, name: str, after: After, before: Before | None = None) -> None:
    """Chain-wrap ``cls.name`` (once per class): call through, then ``after`` emits."""
    done: set[str] = cls.__dict__.get("_rdslab_events_wrapped", set())
    if name in done or not hasattr(cls, name):
        return
    original = getattr(cls, name)
    try:
        signature: inspect.Signature | None = inspect.signature(original)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "depth", 0) or _state.current() is None:
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs) if signature else None
            if bound is not None:
                bound.apply_defaults()
            call = dict(bound.arguments) if bound is not None else dict(kwargs)
        except TypeError:
            call = dict(kwargs)
        context = _safely(before, self, call) if before else None
        with suppressed():
            result = original(self, *args, **kwargs)
        _safely(after, self, result, call, context)
        return result

    setattr(cls, name, wrapper)
    done.add(name)
    cls._rdslab_events_wrapped = done  # type: ignore[attr-defined]


def _safely(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - an event hook must never break the API call
        log.exception("event hook %s failed", getattr(fn, "__name__", fn))
        return None


def _arg(call: dict[str, Any], name: str, default: Any = None) -> Any:
    if name in call and call[name] is not None:
        return call[name]
    extra = call.get("kwargs") or call.get("db_kwargs") or {}
    try:
        return extra.get(name, default)
    except AttributeError:
        return default


# ---------------------------------------------------------------------------- DB instances
def _after_create(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    _db(backend, db, "0005")
    # Aurora instances are backed up with their cluster, not one by one
    if getattr(db, "backup_retention_period", 1) and not getattr(db, "db_cluster_identifier", None):
        backup_sequence(backend, db)


def _after_replica(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    _db(backend, db, "0005", "0046")


def _after_restore(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    _after_create(backend, db, call, None)
    snapshot = _arg(call, "from_snapshot_id") or _arg(call, "db_snapshot_identifier") or ""
    _db(backend, db, "0043", snapshot=snapshot)


def _after_delete(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    final = _arg(call, "final_db_snapshot_identifier")
    if final and not _arg(call, "skip_final_snapshot") and final in backend.database_snapshots:
        _snapshot(backend, backend.database_snapshots[final], "0040", "0042")
    _db(backend, db, "0003")


def _after_reboot(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    engine = _state.current()
    force = bool(getattr(_local, "force_failover", False))
    if force and getattr(db, "multi_az", False):
        _db(backend, db, "0013", "0006", "0049")
    else:
        _db(backend, db, "0006")
    if engine is not None and engine.take_pending_reboot(backend, db.db_instance_identifier):
        _db(backend, db, "0092")


def _after_stop(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    snap_id = _arg(call, "db_snapshot_identifier")
    if snap_id and snap_id in backend.database_snapshots:
        _snapshot(backend, backend.database_snapshots[snap_id], "0040", "0042")
    _db(backend, db, "0087")


def _after_start(backend: Any, db: Any, call: dict[str, Any], _: Any) -> None:
    _db(backend, db, "0088")


def _before_modify(backend: Any, call: dict[str, Any]) -> Any:
    db_id = _arg(call, "db_instance_identifier")
    db = backend.databases.get(db_id)
    return (db.db_instance_class, db.db_parameter_group_name) if db is not None else (None, None)


def _after_modify(backend: Any, db: Any, call: dict[str, Any], before: Any) -> None:
    kwargs = call.get("db_kwargs") or {}
    old_class, old_group = before or (None, None)
    engine = _state.current()
    new_group = kwargs.get("db_parameter_group_name")
    if new_group and new_group != old_group:
        _db(backend, db, "0011", name=new_group)
        if engine is not None:
            engine.mark_pending_reboot(backend, db.db_instance_identifier)
    new_class = kwargs.get("db_instance_class")
    if new_class and new_class != old_class:
        if kwargs.get("apply_immediately"):
            _db(backend, db, "0012", "0014")
        elif engine is not None:
            engine.mark_pending_class(backend, db.db_instance_identifier, new_class)
    if kwargs.get("master_user_password"):
        _db(backend, db, "0016")


def _after_modify_pg(backend: Any, group: Any, call: dict[str, Any], _: Any) -> None:
    params = list(call.get("db_parameter_group_parameters") or [])
    immediate = False
    reboot = False
    for p in params:
        method = p.get("ApplyMethod") or "immediate"
        emit(
            backend,
            "0037",
            group.name,
            group.arn,
            name=p.get("ParameterName"),
            value=p.get("ParameterValue"),
            method=method,
        )
        immediate |= method == "immediate"
        reboot |= method != "immediate"
    engine = _state.current()
    for db in list(backend.databases.values()):
        if db.db_parameter_group_name != group.name:
            continue
        if immediate:
            _db(backend, db, "0092")
        if reboot and engine is not None:
            engine.mark_pending_reboot(backend, db.db_instance_identifier)


def _after_create_snapshot(backend: Any, snap: Any, call: dict[str, Any], _: Any) -> None:
    if getattr(snap, "snapshot_type", "manual") == "manual":
        _snapshot(backend, snap, "0040", "0042")
    else:
        _snapshot(backend, snap, "0090", "0091")


def _after_delete_snapshot(backend: Any, snap: Any, call: dict[str, Any], _: Any) -> None:
    if getattr(snap, "snapshot_type", "manual") == "manual":
        _snapshot(backend, snap, "0041")


# ---------------------------------------------------------------------------- clusters
def _after_create_cluster(backend: Any, cluster: Any, call: dict[str, Any], _: Any) -> None:
    _cluster(backend, cluster, "0170")


def _after_delete_cluster(backend: Any, cluster: Any, call: dict[str, Any], _: Any) -> None:
    snap_id = _arg(call, "snapshot_name")
    if snap_id and snap_id in backend.cluster_snapshots:
        snap = backend.cluster_snapshots[snap_id]
        for event_id in ("0074", "0075"):
            emit(backend, event_id, snap_id, snap.arn)
    _cluster(backend, cluster, "0171")


def _after_stop_cluster(backend: Any, cluster: Any, call: dict[str, Any], _: Any) -> None:
    _cluster(backend, backend.clusters.get(cluster.db_cluster_identifier, cluster), "0150")


def _after_start_cluster(backend: Any, cluster: Any, call: dict[str, Any], _: Any) -> None:
    _cluster(backend, backend.clusters.get(cluster.db_cluster_identifier, cluster), "0151")


def _before_failover(backend: Any, call: dict[str, Any]) -> Any:
    cluster = backend.clusters.get(_arg(call, "db_cluster_identifier"))
    writer = cluster.writer if cluster is not None else None
    return getattr(writer, "availability_zone", None)


def _after_failover(backend: Any, cluster: Any, call: dict[str, Any], old_az: Any) -> None:
    writer = cluster.writer
    name = writer.db_instance_identifier if writer is not None else ""
    same_az = writer is not None and getattr(writer, "availability_zone", None) == old_az
    _cluster(backend, cluster, "0072" if same_az else "0073", name=name)
    _cluster(backend, cluster, "0071", name=name)


def _after_cluster_snapshot(backend: Any, snap: Any, call: dict[str, Any], _: Any) -> None:
    manual = getattr(snap, "snapshot_type", "manual") == "manual"
    for event_id in ("0074", "0075") if manual else ("0168", "0169"):
        emit(backend, event_id, snap.db_cluster_snapshot_identifier, snap.arn)


# ---------------------------------------------------------------------------- install
def install() -> None:
    """Wrap moto's RDS backend (idempotent) and silence moto's own event records."""
    from moto.rds.models import RDSBackend
    from moto.rds.responses import RDSResponse

    def quiet_add_event(self: Any, event_type: str, resource: Any) -> None:
        return None

    RDSBackend.add_event = quiet_add_event  # type: ignore[method-assign]

    wrap(RDSBackend, "create_db_instance", _after_create)
    wrap(RDSBackend, "create_db_instance_read_replica", _after_replica)
    wrap(RDSBackend, "restore_db_instance_from_db_snapshot", _after_restore)
    wrap(RDSBackend, "delete_db_instance", _after_delete)
    wrap(RDSBackend, "reboot_db_instance", _after_reboot)
    wrap(RDSBackend, "stop_db_instance", _after_stop)
    wrap(RDSBackend, "start_db_instance", _after_start)
    wrap(RDSBackend, "modify_db_instance", _after_modify, _before_modify)
    wrap(RDSBackend, "modify_db_parameter_group", _after_modify_pg)
    wrap(RDSBackend, "create_db_snapshot", _after_create_snapshot)
    wrap(RDSBackend, "delete_db_snapshot", _after_delete_snapshot)
    wrap(RDSBackend, "create_db_cluster", _after_create_cluster)
    wrap(RDSBackend, "delete_db_cluster", _after_delete_cluster)
    wrap(RDSBackend, "stop_db_cluster", _after_stop_cluster)
    wrap(RDSBackend, "start_db_cluster", _after_start_cluster)
    wrap(RDSBackend, "failover_db_cluster", _after_failover, _before_failover)
    wrap(RDSBackend, "create_db_cluster_snapshot", _after_cluster_snapshot)
    _wrap_reboot_response(RDSResponse)


def _wrap_reboot_response(cls: type) -> None:
    """moto's RebootDBInstance handler drops ForceFailover; keep it for the backend hook."""
    done: set[str] = cls.__dict__.get("_rdslab_events_wrapped", set())
    if "reboot_db_instance" in done:
        return
    original = cls.reboot_db_instance  # type: ignore[attr-defined]

    @functools.wraps(original)
    def reboot_db_instance(self: Any) -> Any:
        _local.force_failover = bool(self.params.get("ForceFailover"))
        db = self.backend.databases.get(self.params.get("DBInstanceIdentifier"))
        if _local.force_failover and db is not None and not getattr(db, "multi_az", False):
            from moto.rds.exceptions import RDSClientError

            _local.force_failover = False
            # The API reference: "You can't enable force failover if the instance isn't
            # configured for Multi-AZ." The error code is the lab's reading.
            raise RDSClientError(
                "InvalidParameterCombination",
                "You can't enable force failover if the instance isn't configured for Multi-AZ.",
            )
        try:
            return original(self)
        finally:
            _local.force_failover = False

    cls.reboot_db_instance = reboot_db_instance  # type: ignore[attr-defined]
    done.add("reboot_db_instance")
    cls._rdslab_events_wrapped = done  # type: ignore[attr-defined]


def set_force_failover(value: bool) -> None:
    """For in-process callers of ``backend.reboot_db_instance`` (lab facilities, tests)."""
    _local.force_failover = value
