"""Where a DB instance sits in the network: VPC, subnet, security groups, public or not.

Read from moto's live RDS and EC2 state on every call, following AWS's rules: an Aurora
instance takes its cluster's DB subnet group and security groups; an instance without a subnet
group is in the ``default`` group (the default VPC's default subnets); an instance without
security groups has its VPC's default security group. The instance's network interface is in
the subnet of its Availability Zone (the first such subnet in the group's order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import aws, config
from . import patches


@dataclass
class Placement:
    """A DB instance as the network and IAM checks see it."""

    identifier: str
    engine: str
    arn: str
    db: Any  # moto DBInstance
    cluster: Any | None  # moto DBCluster for an Aurora instance
    region: str
    subnet_group: str
    vpc_id: str | None
    subnet: Any | None  # moto Subnet holding the instance's network interface
    subnet_ids: list[str] = field(default_factory=list)
    security_group_ids: list[str] = field(default_factory=list)
    publicly_accessible: bool = False
    availability_zone: str = ""

    @property
    def subnet_id(self) -> str | None:
        return self.subnet.id if self.subnet is not None else None

    @property
    def subnet_cidr(self) -> str | None:
        return self.subnet.cidr_block if self.subnet is not None else None


def find_instance(identifier: str, region: str | None = None) -> Any:
    """moto's DBInstance for ``identifier``; LookupError when there is none."""
    rds = aws.backend("rds", region)
    db = rds.databases.get(identifier) or rds.databases.get(identifier.lower())
    if db is None:
        raise LookupError(f"DB instance {identifier} not found")
    return db


def _subnet(ec2: Any, subnet_id: str) -> Any | None:
    try:
        return ec2.get_subnet(subnet_id)
    except Exception:  # noqa: BLE001 - deleted since the subnet group was made
        return None


def locate(identifier: str, region: str | None = None) -> Placement:
    """The instance's placement, resolved from moto's current state."""
    region = region or config.REGION
    rds = aws.backend("rds", region)
    ec2 = aws.backend("ec2", region)
    db = find_instance(identifier, region)
    cluster_id = getattr(db, "db_cluster_identifier", None)
    cluster = rds.clusters.get(cluster_id) if cluster_id else None

    if cluster is not None:
        group_name = cluster.db_subnet_group_name or "default"
        sg_ids = list(cluster.vpc_security_group_ids or [])
    else:
        group_name = getattr(db, "_db_subnet_group_name", None) or "default"
        sg_ids = list(db.vpc_security_group_ids or [])
    group = rds.subnet_groups.get(group_name)
    if group is None and group_name.lower() == "default":
        group = patches.ensure_default_subnet_group(rds, ec2)

    subnets = []
    if group is not None:
        subnets = [s for s in (_subnet(ec2, sub.id) for sub in group._subnets) if s is not None]
    vpc_id = group.vpc_id if group is not None else None
    if vpc_id is None:
        default_vpc = ec2.get_default_vpc()
        vpc_id = default_vpc.id if default_vpc is not None else None
    az = db.availability_zone
    subnet = next((s for s in subnets if s.availability_zone == az), None)
    if subnet is None and subnets:
        subnet = subnets[0]
        az = subnet.availability_zone
    if not sg_ids and vpc_id is not None:
        default_sg = ec2.get_default_security_group(vpc_id)
        sg_ids = [default_sg.id] if default_sg is not None else []

    public = db.publicly_accessible
    if public is None:
        public = patches.default_publicly_accessible(ec2, vpc_id)

    return Placement(
        identifier=db.db_instance_identifier,
        engine=db.engine,
        arn=db.db_instance_arn,
        db=db,
        cluster=cluster,
        region=region,
        subnet_group=group_name,
        vpc_id=vpc_id,
        subnet=subnet,
        subnet_ids=[s.id for s in subnets],
        security_group_ids=sg_ids,
        publicly_accessible=bool(public),
        availability_zone=az,
    )
