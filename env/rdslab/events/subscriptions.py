"""RDS event subscriptions: the API (create/modify/delete/describe, add/remove source IDs) with
RDS's validation and errors, and the rule that decides which subscriptions an event reaches.

Subscriptions are kept as moto ``EventSubscription`` objects in the RDS backend (so tagging and
ARNs keep working); the lab validates what moto does not (topic exists and is not FIFO,
categories exist for the source type, source IDs exist and need a source type), fixes the
``Enabled`` default (true on AWS) and reports RDS's statuses (``creating``/``modifying`` in the
response of the call, then ``active``; ``topic-not-exist``; ``all-sources-deleted``).
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult

from . import catalog
from .store import RdsEvent


def _error(code: str, message: str) -> Exception:
    from moto.rds.exceptions import RDSClientError

    return RDSClientError(code, message)


# ---------------------------------------------------------------------------- checks
def source_exists(backend: Any, source_type: str, source_id: str) -> bool:
    """Does a source of that type exist in the RDS backend?"""
    collections = {
        "db-instance": "databases",
        "db-cluster": "clusters",
        "db-snapshot": "database_snapshots",
        "db-cluster-snapshot": "cluster_snapshots",
        "db-security-group": "security_groups",
        "db-proxy": "db_proxies",
    }
    if source_type == "db-parameter-group":
        return source_id in backend.db_parameter_groups or source_id.startswith("default.")
    attr = collections.get(source_type)
    if attr is None:
        return True
    return source_id in (getattr(backend, attr, None) or {})


def _topic(arn: str) -> Any:
    from moto.sns import sns_backends

    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sns":
        return None
    return sns_backends[parts[4]][parts[3]].topics.get(arn)


def _check_topic(arn: str) -> None:
    topic = _topic(arn)
    if topic is None:
        raise _error("SNSTopicArnNotFound", "The SNS topic ARN does not exist.")
    if topic.fifo_topic or arn.endswith(".fifo"):
        raise _error(
            "SNSInvalidTopic",
            "SNS has responded that there is a problem with the SNS topic specified."
            " FIFO topics are not supported for RDS event notifications.",
        )


def _check_type(source_type: str | None) -> None:
    if source_type is not None and source_type not in catalog.SOURCE_TYPES:
        raise _error("InvalidParameterValue", f"Invalid source type: {source_type}")


def _categories(source_type: str | None, categories: list[str] | None) -> list[str]:
    cats = [c.lower() for c in categories or []]
    if cats and source_type is None:
        raise _error(
            "InvalidParameterCombination", "If SourceType is null, Categories must also be null."
        )
    allowed = catalog.CATEGORIES.get(source_type or "", [])
    for cat in cats:
        if cat not in allowed:
            raise _error("SubscriptionCategoryNotFound", "The supplied category does not exist.")
    return cats


def _check_sources(backend: Any, source_type: str | None, ids: list[str]) -> None:
    if ids and source_type is None:
        raise _error(
            "InvalidParameterCombination", "If SourceType is null, SourceIds must also be null."
        )
    for source_id in ids:
        if not source_exists(backend, source_type or "", source_id):
            raise _error("SourceNotFound", f"Could not find source : {source_id}")


def _get(backend: Any, name: str | None) -> Any:
    sub = backend.event_subscriptions.get(name or "")
    if sub is None:
        raise _error("SubscriptionNotFound", f"Subscription {name} not found.")
    return sub


# ---------------------------------------------------------------------------- matching
def matching(ev: RdsEvent) -> list[tuple[str, str]]:
    """(subscription name, topic ARN) of every enabled subscription the event reaches."""
    from moto.rds.models import rds_backends

    backend = rds_backends[ev.account][ev.region]
    found = []
    for sub in list(backend.event_subscriptions.values()):
        if not sub.enabled:
            continue
        if sub.source_type and sub.source_type != ev.source_type:
            continue
        if sub.event_categories and not set(sub.event_categories).intersection(ev.categories):
            continue
        if sub.source_ids and ev.source_id not in sub.source_ids:
            continue
        found.append((sub.subscription_name, sub.sns_topic_arn))
    return found


# ---------------------------------------------------------------------------- shapes
def shape(backend: Any, sub: Any, status: str | None = None) -> dict[str, Any]:
    """An ``EventSubscription`` as RDS returns it."""
    if status is None:
        status = "active"
        if _topic(sub.sns_topic_arn) is None:
            status = "topic-not-exist"
        elif sub.source_ids and not any(
            source_exists(backend, sub.source_type or "", s) for s in sub.source_ids
        ):
            status = "all-sources-deleted"
    created = sub.created_at
    out: dict[str, Any] = {
        "CustomerAwsId": backend.account_id,
        "CustSubscriptionId": sub.subscription_name,
        "SnsTopicArn": sub.sns_topic_arn,
        "Status": status,
        "SubscriptionCreationTime": created.strftime("%Y-%m-%d %H:%M:%S.")
        + f"{created.microsecond // 1000:03d}",
        "SourceIdsList": list(sub.source_ids),
        "EventCategoriesList": list(sub.event_categories),
        "Enabled": bool(sub.enabled),
        "EventSubscriptionArn": sub.arn,
    }
    if sub.source_type:
        out["SourceType"] = sub.source_type
    return out


def _tags(raw: Any) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": t.get("Value", "")} for t in raw or []]


# ---------------------------------------------------------------------------- API handlers
def create_event_subscription(self: Any) -> ActionResult:
    from moto.rds.models import EventSubscription

    p = self.params
    backend = self.backend
    name = p.get("SubscriptionName")
    if name in backend.event_subscriptions:
        raise _error("SubscriptionAlreadyExist", f"Subscription {name} already exists.")
    source_type = p.get("SourceType")
    _check_type(source_type)
    topic_arn = p.get("SnsTopicArn") or ""
    _check_topic(topic_arn)
    cats = _categories(source_type, p.get("EventCategories"))
    ids = list(p.get("SourceIds") or [])
    _check_sources(backend, source_type, ids)
    enabled = p.get("Enabled")
    sub = EventSubscription(
        backend,
        name,
        sns_topic_arn=topic_arn,
        source_type=source_type,
        event_categories=cats,
        source_ids=ids,
        enabled=True if enabled is None else bool(enabled),
        tags=_tags(p.get("Tags")),
    )
    backend.event_subscriptions[name] = sub
    return ActionResult({"EventSubscription": shape(backend, sub, "creating")})


def modify_event_subscription(self: Any) -> ActionResult:
    p = self.params
    backend = self.backend
    sub = _get(backend, p.get("SubscriptionName"))
    source_type = p.get("SourceType", sub.source_type)
    _check_type(source_type)
    if p.get("SnsTopicArn"):
        _check_topic(p["SnsTopicArn"])
        sub.sns_topic_arn = p["SnsTopicArn"]
    if p.get("EventCategories") is not None or source_type != sub.source_type:
        cats = p.get("EventCategories")
        sub.event_categories = _categories(
            source_type, cats if cats is not None else sub.event_categories
        )
    sub.source_type = source_type
    if p.get("Enabled") is not None:
        sub.enabled = bool(p["Enabled"])
    return ActionResult({"EventSubscription": shape(backend, sub, "modifying")})


def delete_event_subscription(self: Any) -> ActionResult:
    backend = self.backend
    sub = _get(backend, self.params.get("SubscriptionName"))
    backend.event_subscriptions.pop(sub.subscription_name, None)
    return ActionResult({"EventSubscription": shape(backend, sub, "deleting")})


def describe_event_subscriptions(self: Any) -> ActionResult:
    backend = self.backend
    name = self.params.get("SubscriptionName")
    subs = [_get(backend, name)] if name else list(backend.event_subscriptions.values())
    items, marker = paginate(subs, self.params)
    result: dict[str, Any] = {"EventSubscriptionsList": [shape(backend, s) for s in items]}
    if marker:
        result["Marker"] = marker
    return ActionResult(result)


def add_source_identifier_to_subscription(self: Any) -> ActionResult:
    backend = self.backend
    sub = _get(backend, self.params.get("SubscriptionName"))
    source_id = self.params.get("SourceIdentifier")
    _check_sources(backend, sub.source_type, [source_id])
    if source_id not in sub.source_ids:
        sub.source_ids.append(source_id)
    return ActionResult({"EventSubscription": shape(backend, sub, "modifying")})


def remove_source_identifier_from_subscription(self: Any) -> ActionResult:
    backend = self.backend
    sub = _get(backend, self.params.get("SubscriptionName"))
    source_id = self.params.get("SourceIdentifier")
    if source_id not in sub.source_ids:
        raise _error("SourceNotFound", f"Could not find source : {source_id}")
    sub.source_ids.remove(source_id)
    return ActionResult({"EventSubscription": shape(backend, sub, "modifying")})


def paginate(items: list[Any], params: Any) -> tuple[list[Any], str | None]:
    """RDS-style MaxRecords (20..100, default 100) and an opaque Marker."""
    max_records = int(params.get("MaxRecords") or 100)
    if not 20 <= max_records <= 100:
        raise _error(
            "InvalidParameterValue", "Invalid value for MaxRecords. Must be between 20 and 100"
        )
    try:
        start = int(params.get("Marker") or 0)
    except ValueError:
        raise _error("InvalidParameterValue", "Invalid marker") from None
    end = start + max_records
    return items[start:end], (str(end) if end < len(items) else None)


HANDLERS = {
    "create_event_subscription": create_event_subscription,
    "modify_event_subscription": modify_event_subscription,
    "delete_event_subscription": delete_event_subscription,
    "describe_event_subscriptions": describe_event_subscriptions,
    "add_source_identifier_to_subscription": add_source_identifier_to_subscription,
    "remove_source_identifier_from_subscription": remove_source_identifier_from_subscription,
}
