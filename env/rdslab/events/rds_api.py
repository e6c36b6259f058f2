"""RDS API actions the events room answers: DescribeEvents, DescribeEventCategories, the event
subscription actions (:mod:`.subscriptions`) and the pending-maintenance pair, which moto lacks.

DescribeEvents follows RDS: events oldest first, a window of the last hour unless StartTime,
EndTime or Duration (minutes) say otherwise, 14 days of history, SourceType and
SourceIdentifier (the identifier needs the type), EventCategories, MaxRecords/Marker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from moto.core.responses import ActionResult

from . import _state, catalog, subscriptions
from .store import as_utc, utcnow


def _error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


def describe_events(self: Any) -> ActionResult:
    engine = _state.current()
    p = self.params
    source_type = p.get("SourceType")
    source_id = p.get("SourceIdentifier")
    if source_id is not None and source_type is None:
        raise _error(
            "InvalidParameterCombination", "Cannot specify source identifier without source type"
        )
    if source_type is not None and source_type not in catalog.SOURCE_TYPES:
        raise _error("InvalidParameterValue", f"Invalid source type: {source_type}")
    start, end, duration = p.get("StartTime"), p.get("EndTime"), p.get("Duration")
    now = utcnow()
    span = timedelta(minutes=int(duration) if duration is not None else 60)
    if start is not None and end is not None:
        start, end = as_utc(start), as_utc(end)
    elif start is not None:
        start = as_utc(start)
        end = start + span if duration is not None else now
    elif end is not None:
        end = as_utc(end)
        start = end - span
    else:
        start, end = now - span, now
    events = (
        engine.store.query(
            account=self.current_account,
            region=self.region,
            start=start,
            end=end,
            source_type=source_type,
            source_id=source_id,
            categories=p.get("EventCategories"),
        )
        if engine is not None
        else []
    )
    page, marker = subscriptions.paginate(events, p)
    result: dict[str, Any] = {"Events": [ev.describe_shape() for ev in page]}
    if marker:
        result["Marker"] = marker
    return ActionResult(result)


def describe_event_categories(self: Any) -> ActionResult:
    source_type = self.params.get("SourceType")
    if source_type is not None and source_type not in catalog.CATEGORIES:
        raise _error("InvalidParameterValue", f"Invalid source type: {source_type}")
    types = [source_type] if source_type else list(catalog.CATEGORIES)
    return ActionResult(
        {
            "EventCategoriesMapList": [
                {"SourceType": t, "EventCategories": list(catalog.CATEGORIES[t])} for t in types
            ]
        }
    )


# ---------------------------------------------------------------------------- maintenance
OPT_IN_TYPES = ("immediate", "next-maintenance", "undo-opt-in")


def _resource(backend: Any, arn: str) -> tuple[str, str, Any]:
    """(source type, identifier, model) for a DB instance or cluster ARN."""
    parts = arn.split(":")
    if len(parts) == 7 and parts[5] == "db" and parts[6] in backend.databases:
        return "db-instance", parts[6], backend.databases[parts[6]]
    if len(parts) == 7 and parts[5] == "cluster" and parts[6] in backend.clusters:
        return "db-cluster", parts[6], backend.clusters[parts[6]]
    raise _error("ResourceNotFoundFault", f"The specified resource ARN was not found: {arn}")


def _details(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (
        "Action",
        "AutoAppliedAfterDate",
        "ForcedApplyDate",
        "OptInStatus",
        "CurrentApplyDate",
        "Description",
    )
    return [{k: item[k] for k in keys if item.get(k) is not None} for item in items]


def describe_pending_maintenance_actions(self: Any) -> ActionResult:
    engine = _state.current()
    wanted = self.params.get("ResourceIdentifier")
    filters = {f["Name"]: list(f["Values"]) for f in self.params.get("Filters") or []}
    ids = set(filters.get("db-instance-id", [])) | set(filters.get("db-cluster-id", []))
    out = []
    for arn, items in (
        engine.pending_maintenance(self.current_account, self.region) if engine else {}
    ).items():
        if wanted and arn != wanted:
            continue
        if ids and arn not in ids and arn.split(":")[-1] not in ids:
            continue
        if items:
            out.append(
                {"ResourceIdentifier": arn, "PendingMaintenanceActionDetails": _details(items)}
            )
    page, marker = subscriptions.paginate(out, self.params)
    result: dict[str, Any] = {"PendingMaintenanceActions": page}
    if marker:
        result["Marker"] = marker
    return ActionResult(result)


def apply_pending_maintenance_action(self: Any) -> ActionResult:
    engine = _state.current()
    arn = self.params.get("ResourceIdentifier") or ""
    action = self.params.get("ApplyAction")
    opt_in = self.params.get("OptInType")
    if opt_in not in OPT_IN_TYPES:
        raise _error(
            "InvalidParameterValue",
            f"Invalid value for OptInType: {opt_in}. Valid values: {', '.join(OPT_IN_TYPES)}",
        )
    source_type, source_id, model = _resource(self.backend, arn)
    items = (
        engine.pending_maintenance(self.current_account, self.region).get(arn, []) if engine else []
    )
    item = next((i for i in items if i["Action"] == action), None)
    if item is None:
        raise _error(
            "InvalidParameterValue", f"No pending maintenance action {action} for resource {arn}"
        )
    if opt_in == "immediate":
        assert engine is not None
        items.remove(item)
        engine.apply_maintenance(self.backend, source_type, source_id, model, action)
    elif opt_in == "next-maintenance":
        item["OptInStatus"] = "next-maintenance"
        item["CurrentApplyDate"] = utcnow() + timedelta(days=1)
    else:
        item["OptInStatus"] = "undo-opt-in"
        item["CurrentApplyDate"] = item.get("AutoAppliedAfterDate")
    return ActionResult(
        {
            "ResourcePendingMaintenanceActions": {
                "ResourceIdentifier": arn,
                "PendingMaintenanceActionDetails": _details(items),
            }
        }
    )


HANDLERS = {
    "describe_events": describe_events,
    "describe_event_categories": describe_event_categories,
    "describe_pending_maintenance_actions": describe_pending_maintenance_actions,
    "apply_pending_maintenance_action": apply_pending_maintenance_action,
    **subscriptions.HANDLERS,
}


def install() -> None:
    """Answer these actions in moto's RDS endpoint (idempotent)."""
    from moto.rds.responses import RDSResponse

    for name, handler in HANDLERS.items():
        setattr(RDSResponse, name, handler)
