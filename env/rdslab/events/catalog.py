"""What RDS says when something happens: source types, event categories, event IDs, messages.

Sources (see ``shared/reference/aws-fidelity.md`` §4): the RDS User Guide's event tables
(``USER_Events.Messages``), the EventBridge event reference for RDS and AWS samples. Messages
are the table's *Message* column without the trailing full stop, which is how ``describe-events``
and SNS show them (``DB instance created``); where the reference quotes a sample message, that
sample wins (0002 ``Finished DB Instance backup``, 0041, 0049, 0074, 0169, 0173).
"""

from __future__ import annotations

from dataclasses import dataclass

# API SourceType -> (EventBridge detail-type, detail.SourceType)  (§4.1)
SOURCE_TYPES: dict[str, tuple[str, str]] = {
    "db-instance": ("RDS DB Instance Event", "DB_INSTANCE"),
    "db-cluster": ("RDS DB Cluster Event", "CLUSTER"),
    "db-parameter-group": ("RDS DB Parameter Group Event", "DB_PARAM"),
    "db-security-group": ("RDS DB Security Group Event", "SECURITY_GROUP"),
    "db-snapshot": ("RDS DB Snapshot Event", "SNAPSHOT"),
    "db-cluster-snapshot": ("RDS DB Cluster Snapshot Event", "CLUSTER_SNAPSHOT"),
    "db-proxy": ("RDS DB Proxy Event", "DB_PROXY"),
    "blue-green-deployment": ("RDS Blue Green Deployment Event", "BLUE_GREEN_DEPLOYMENT"),
    # detail.SourceType not found in a source for these two (lab's best reading)
    "custom-engine-version": ("RDS Custom Engine Version Event", "CUSTOM_ENGINE_VERSION"),
    "zero-etl": ("RDS Zero ETL Event", "ZERO_ETL"),
}

# Categories per source type, as DescribeEventCategories lists them (§4.2)
CATEGORIES: dict[str, list[str]] = {
    "db-instance": [
        "availability",
        "backup",
        "configuration change",
        "creation",
        "deletion",
        "failover",
        "failure",
        "low storage",
        "maintenance",
        "notification",
        "read replica",
        "recovery",
        "restoration",
        "security",
        "security patching",
    ],
    "db-cluster": [
        "configuration change",
        "creation",
        "deletion",
        "failover",
        "failure",
        "global failover",
        "maintenance",
        "notification",
    ],
    "db-parameter-group": ["configuration change"],
    "db-security-group": ["configuration change", "failure"],
    "db-snapshot": ["creation", "deletion", "notification", "restoration"],
    "db-cluster-snapshot": ["backup", "notification"],
    "db-proxy": ["configuration change", "creation", "deletion", "failure"],
    "blue-green-deployment": ["creation", "deletion", "failure", "notification"],
    "custom-engine-version": ["failure"],
}


@dataclass(frozen=True)
class EventDef:
    """One RDS event ID: its source type, categories and message template."""

    event_id: str
    source_type: str
    categories: tuple[str, ...]
    message: str  # str.format template; placeholders are documented per event


def _d(num: str, source_type: str, categories: str, message: str) -> EventDef:
    return EventDef(f"RDS-EVENT-{num}", source_type, tuple(categories.split("|")), message)


_DEFS = [
    # DB instance
    _d("0001", "db-instance", "backup", "Backing up DB instance"),
    _d("0002", "db-instance", "backup", "Finished DB Instance backup"),
    _d("0003", "db-instance", "deletion", "DB instance deleted"),
    _d("0004", "db-instance", "availability", "DB instance shutdown"),
    _d("0005", "db-instance", "creation", "DB instance created"),
    _d("0006", "db-instance", "availability", "DB instance restarted"),
    _d(
        "0007",
        "db-instance",
        "low storage",
        "Allocated storage has been exhausted. Allocate additional storage to resolve",
    ),
    _d("0011", "db-instance", "configuration change", "Updated to use DBParameterGroup {name}"),
    _d(
        "0012",
        "db-instance",
        "configuration change",
        "Applying modification to database instance class",
    ),
    _d("0013", "db-instance", "failover", "Multi-AZ instance failover started"),
    _d(
        "0014",
        "db-instance",
        "configuration change",
        "Finished applying modification to DB instance class",
    ),
    _d(
        "0015",
        "db-instance",
        "failover",
        "Multi-AZ failover to standby complete - DNS propagation may take a few minutes",
    ),
    _d("0016", "db-instance", "configuration change", "Reset master credentials"),
    _d(
        "0020",
        "db-instance",
        "recovery",
        "Recovery of the DB instance has started. Recovery time will vary with the amount of data to be recovered",
    ),
    _d("0021", "db-instance", "recovery", "Recovery of the DB instance is complete"),
    _d("0026", "db-instance", "maintenance", "Applying off-line patches to DB instance"),
    _d("0027", "db-instance", "maintenance", "Finished applying off-line patches to DB instance"),
    _d(
        "0034",
        "db-instance",
        "failover",
        "Abandoning user requested failover since a failover recently occurred on the database instance",
    ),
    _d("0043", "db-instance", "restoration", "Restored from snapshot {snapshot}"),
    _d("0046", "db-instance", "read replica", "Replication for the Read Replica resumed"),
    _d("0047", "db-instance", "maintenance", "Database instance patched"),
    _d(
        "0048",
        "db-instance",
        "notification",
        "Delaying database engine upgrade since this instance has read replicas that need to be upgraded first",
    ),
    # 0049: the reference quotes the AWS sample message (EventBridge user guide)
    _d("0049", "db-instance", "failover", "A Multi-AZ failover has completed."),
    _d("0087", "db-instance", "notification", "DB instance stopped"),
    _d("0088", "db-instance", "notification", "DB instance started"),
    _d(
        "0089",
        "db-instance",
        "low storage",
        "The free storage capacity for DB instance: {name} is low at {percent}% of the provisioned"
        " storage [Provisioned Storage: {allocated}, Free Storage: {free}]. You may want to increase"
        " the provisioned storage to address this issue",
    ),
    _d("0092", "db-instance", "configuration change", "Finished updating DB parameter group"),
    _d(
        "0154",
        "db-instance",
        "notification",
        "DB instance is being started due to it exceeding the maximum allowed time being stopped",
    ),
    _d(
        "0155",
        "db-instance",
        "maintenance",
        "The DB instance has a DB engine minor version upgrade available",
    ),
    _d(
        "0230",
        "db-instance",
        "security patching",
        "A system update is available for your DB instance. For information about applying"
        " updates, see 'Maintaining a DB instance' in the RDS User Guide",
    ),
    # DB cluster
    _d(
        "0069",
        "db-cluster",
        "failover",
        "Cluster failover failed, check the health of your cluster instances and try again",
    ),
    _d("0070", "db-cluster", "failover", "Promoting previous primary again: {name}"),
    _d("0071", "db-cluster", "failover", "Completed failover to DB instance: {name}"),
    _d("0072", "db-cluster", "failover", "Started same AZ failover to DB instance: {name}"),
    _d("0073", "db-cluster", "failover", "Started cross AZ failover to DB instance: {name}"),
    _d("0150", "db-cluster", "notification", "DB cluster stopped"),
    _d("0151", "db-cluster", "notification", "DB cluster started"),
    _d("0152", "db-cluster", "notification", "DB cluster stop failed"),
    _d(
        "0153",
        "db-cluster",
        "notification",
        "DB cluster is being started due to it exceeding the maximum allowed time being stopped",
    ),
    _d(
        "0156",
        "db-cluster",
        "maintenance",
        "The DB cluster has a DB engine minor version upgrade available",
    ),
    _d("0170", "db-cluster", "creation", "DB cluster created"),
    _d("0171", "db-cluster", "deletion", "DB cluster deleted"),
    _d("0172", "db-cluster", "notification", "Renamed cluster from {old} to {name}"),
    _d("0173", "db-cluster", "notification", "Database cluster has been patched"),
    # DB parameter group
    _d(
        "0037",
        "db-parameter-group",
        "configuration change",
        "Updated parameter {name} to {value} with apply method {method}",
    ),
    # DB snapshot
    _d("0040", "db-snapshot", "creation", "Creating manual snapshot"),
    _d("0041", "db-snapshot", "deletion", "Deleted manual snapshot"),
    _d("0042", "db-snapshot", "creation", "Manual snapshot created"),
    _d("0090", "db-snapshot", "creation", "Creating automated snapshot"),
    _d("0091", "db-snapshot", "creation", "Automated snapshot created"),
    # DB cluster snapshot
    _d("0074", "db-cluster-snapshot", "backup", "Creating manual cluster snapshot"),
    _d("0075", "db-cluster-snapshot", "backup", "Manual cluster snapshot created"),
    _d("0168", "db-cluster-snapshot", "backup", "Creating automated cluster snapshot"),
    _d("0169", "db-cluster-snapshot", "backup", "Automated cluster snapshot created"),
]

EVENTS: dict[str, EventDef] = {d.event_id: d for d in _DEFS}

DOCS_URL = "http://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html#{event_id}"

# Console fragments per source type; db-instance, db-snapshot and db-cluster-snapshot are
# from AWS samples, the others are the lab's best reading.
_LINK_FRAGMENT = {
    "db-instance": "dbinstance:id={id}",
    "db-cluster": "dbcluster:id={id}",
    "db-snapshot": "snapshot:id={id}",
    "db-cluster-snapshot": "snapshot:engine=aurora;id={id}",
    "db-parameter-group": "parameter-groups-detail:ids={id};type=DbParameterGroup;editing=false",
    "db-security-group": "dbsecuritygroup:id={id}",
    "db-proxy": "proxy:id={id}",
}


def normalise_id(event_id: str | int) -> str:
    """``6``, ``"0006"``, ``"RDS-EVENT-0006"`` -> ``"RDS-EVENT-0006"``."""
    text = str(event_id).strip().upper()
    if text.startswith("RDS-EVENT-"):
        text = text[len("RDS-EVENT-") :]
    if not text.isdigit():
        raise ValueError(f"not an RDS event ID: {event_id!r}")
    return f"RDS-EVENT-{int(text):04d}"


def lookup(event_id: str | int) -> EventDef:
    """The definition of an event ID (KeyError with a hint when the lab does not know it)."""
    key = normalise_id(event_id)
    try:
        return EVENTS[key]
    except KeyError:
        raise KeyError(f"{key} is not in the lab's event catalog (rdslab.events.catalog)") from None


def render_message(definition: EventDef, **values: object) -> str:
    """The event's message with its placeholders filled (missing ones stay as ``{name}``)."""

    class _Keep(dict[str, object]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return definition.message.format_map(_Keep(values))


def event_url(event_id: str) -> str:
    """The ``Event ID`` value of RDS's SNS message: a docs URL ending in the ID's anchor."""
    return DOCS_URL.format(event_id=event_id)


def identifier_link(region: str, source_type: str, source_id: str) -> str:
    """The console URL RDS puts in ``Identifier Link``."""
    fragment = _LINK_FRAGMENT.get(source_type, "")
    base = f"https://console.aws.amazon.com/rds/home?region={region}#"
    return base + fragment.format(id=source_id)


def detail_type(source_type: str) -> str:
    """EventBridge ``detail-type`` for an API source type."""
    return SOURCE_TYPES[source_type][0]


def detail_source_type(source_type: str) -> str:
    """EventBridge ``detail.SourceType`` for an API source type (``DB_INSTANCE``...)."""
    return SOURCE_TYPES[source_type][1]
