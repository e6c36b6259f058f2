"""moto 5.2.5 patches that make RDS placement, IAM and VPC state look like AWS's.

What moto lacks, and what this module does about it:

* The default VPC has no internet gateway and no ``0.0.0.0/0`` route (AWS's has both), and
  default security groups lack AWS's "all traffic from this group" inbound rule: the default
  VPC (and every default security group) is completed when moto creates it.
* An instance created without ``DBSubnetGroupName`` shows no ``DBSubnetGroup`` and
  ``PubliclyAccessible`` is null; AWS places it in the ``default`` DB subnet group (the default
  VPC's default subnets) and applies the documented PubliclyAccessible default. Aurora
  clusters get the VPC's default security group when none is given, as on AWS.
* ``RemoveRoleFromDBInstance`` / ``RemoveRoleFromDBCluster`` are not implemented.
* AWS-managed IAM policies (``AWSLambdaRole`` ...) ship with moto but are loaded only with
  ``MOTO_IAM_LOAD_MANAGED_POLICIES=true``; the lab always loads them (AWS always has them).
* ``ModifyVpcEndpoint`` ignores ``PrivateDnsEnabled``; ``CreateNatGateway`` leaves
  ``ConnectivityType`` null (AWS: ``public``).
* Parameter groups are "in-sync" at once. The lab records the parameter values an instance
  *applied* at creation and at each reboot/start, so a static parameter changed since then is
  ``pending-reboot`` (shown in ``DBParameterGroups[].ParameterApplyStatus``) and not in effect.

All RDS/EC2 wrappers chain onto the attribute present at install time (other rooms wrap the
same methods) and are installed once per process; ``set_active(False)`` makes them pass through.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

# Static parameters whose changes wait for a reboot, as on AWS (the lab tracks only these).
STATIC_PARAMETERS = ("rds.custom_dns_resolution",)
APPLIED_ATTR = "_rdslab_applied_parameters"

_state = {"installed": False, "active": False}
_managed_policy_data: dict[str, Any] = {}


def set_active(active: bool) -> None:
    """Switch the patches' behaviour on or off (they stay installed)."""
    _state["active"] = active


def active() -> bool:
    return bool(_state["active"])


def _wrap(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(cls, name)
    wrapped = make(original)
    functools.update_wrapper(wrapped, original)
    setattr(cls, name, wrapped)


# ------------------------------------------------------------------ EC2: default VPC
def has_internet_gateway(ec2: Any, vpc_id: str | None) -> bool:
    """Whether an internet gateway is attached to ``vpc_id``."""
    return any(
        igw.vpc is not None and igw.vpc.id == vpc_id for igw in list(ec2.internet_gateways.values())
    )


def main_route_table(ec2: Any, vpc_id: str) -> Any | None:
    for table in list(ec2.route_tables.values()):
        if table.vpc_id == vpc_id and table.main_association_id is not None:
            return table
    return None


def complete_default_vpc(ec2: Any) -> None:
    """Give the default VPC what AWS's has: an attached IGW and ``0.0.0.0/0`` -> IGW."""
    vpc = ec2.get_default_vpc()
    if vpc is None:
        return
    igw = next(
        (
            g
            for g in list(ec2.internet_gateways.values())
            if g.vpc is not None and g.vpc.id == vpc.id
        ),
        None,
    )
    if igw is None:
        igw = ec2.create_internet_gateway()
        ec2.attach_internet_gateway(igw.id, vpc.id)
    table = main_route_table(ec2, vpc.id)
    if table is not None and not any(r.destination_cidr_block == "0.0.0.0/0" for r in table.routes):
        ec2.create_route(table.id, "0.0.0.0/0", gateway_id=igw.id)


def _patch_ec2() -> None:
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.models.security_groups import SecurityGroupBackend
    from moto.ec2.models.vpcs import VPCBackend
    from moto.ec2.responses.vpcs import VPCs

    def make_default_vpc(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_default_vpc(self: Any) -> Any:
            vpc = original(self)
            if active():
                complete_default_vpc(self)
            return vpc

        return create_default_vpc

    def make_sg(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_security_group(self: Any, *args: Any, **kwargs: Any) -> Any:
            group = original(self, *args, **kwargs)
            if active() and kwargs.get("is_default"):
                # AWS: a default security group allows all inbound traffic from itself.
                self.authorize_security_group_ingress(
                    group.id,
                    "-1",
                    None,
                    None,
                    [],
                    source_groups=[{"GroupId": group.id}],
                    vpc_id=group.vpc_id,
                )
            return group

        return create_security_group

    def make_modify_endpoint(original: Callable[..., Any]) -> Callable[..., Any]:
        def modify_vpc_endpoint(self: Any) -> Any:
            result = original(self)
            value = self._get_param("PrivateDnsEnabled")
            if active() and value is not None:
                endpoint = self.ec2_backend.describe_vpc_endpoints(
                    vpc_end_point_ids=[self._get_param("VpcEndpointId")]
                )[0]
                endpoint.private_dns_enabled = str(value).lower() == "true"
            return result

        return modify_vpc_endpoint

    def make_nat(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_nat_gateway(self: Any, *args: Any, **kwargs: Any) -> Any:
            if active() and not kwargs.get("connectivity_type"):
                kwargs["connectivity_type"] = "public"  # AWS's default; moto leaves it null
            return original(self, *args, **kwargs)

        return create_nat_gateway

    _wrap(NatGatewayBackend, "create_nat_gateway", make_nat)
    _wrap(VPCBackend, "create_default_vpc", make_default_vpc)
    _wrap(SecurityGroupBackend, "create_security_group", make_sg)
    _wrap(VPCs, "modify_vpc_endpoint", make_modify_endpoint)


# ------------------------------------------------------------------ RDS
def ensure_default_subnet_group(rds: Any, ec2: Any) -> Any:
    """The ``default`` DB subnet group (the default VPC's default subnets), created if needed."""
    group = rds.subnet_groups.get("default")
    if group is None:
        vpc = ec2.get_default_vpc()
        subnets = sorted(
            (
                s
                for s in ec2.get_default_subnets().values()
                if vpc is not None and s.vpc_id == vpc.id
            ),
            key=lambda s: s.availability_zone,
        )
        group = rds.create_subnet_group("default", "default", subnets, [])
    return group


def default_publicly_accessible(ec2: Any, vpc_id: str | None) -> bool:
    """AWS's default when PubliclyAccessible is not given (CreateDBInstance API reference):
    public if the VPC of the subnet group (or the default VPC) has an internet gateway
    attached, private otherwise."""
    return has_internet_gateway(ec2, vpc_id)


def snapshot_parameters(db: Any) -> None:
    """Record the parameter values ``db`` runs with from now on (create, reboot, start)."""
    group_name = getattr(db, "db_parameter_group_name", None)
    group = db.backend.db_parameter_groups.get(group_name) if group_name else None
    params = {}
    if group is not None:
        params = {k: dict(v).get("ParameterValue") for k, v in list(group.parameters.items())}
    setattr(db, APPLIED_ATTR, {"group": group_name, "params": params})


def _prepare_instance(rds: Any, kwargs: dict[str, Any]) -> None:
    from .. import aws

    ec2 = aws.backend("ec2", rds.region_name)
    cluster = rds.clusters.get(kwargs.get("db_cluster_identifier") or "")
    if cluster is not None:
        group_name = cluster.db_subnet_group_name
    else:
        group_name = kwargs.get("db_subnet_group_name") or "default"
    if group_name.lower() == "default":
        ensure_default_subnet_group(rds, ec2)
    group = rds.subnet_groups.get(group_name)
    if group is None:
        return  # moto raises DBSubnetGroupNotFound itself
    if cluster is None:
        kwargs["db_subnet_group_name"] = group_name
    if kwargs.get("publicly_accessible") is None:
        kwargs["publicly_accessible"] = default_publicly_accessible(ec2, group.vpc_id)
    if not kwargs.get("availability_zone") and group._subnets:
        zones = sorted({s.availability_zone for s in group._subnets})
        preferred = f"{rds.region_name}a"
        kwargs["availability_zone"] = preferred if preferred in zones else zones[0]


def _patch_rds() -> None:
    from moto.rds.exceptions import RDSClientError
    from moto.rds.models import DBInstance, RDSBackend
    from moto.rds.responses import RDSResponse

    def make_create(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_db_instance(self: Any, db_kwargs: dict[str, Any], *a: Any, **k: Any) -> Any:
            if active():
                _prepare_instance(self, db_kwargs)
            database = original(self, db_kwargs, *a, **k)
            snapshot_parameters(database)
            return database

        return create_db_instance

    def make_restart(original: Callable[..., Any]) -> Callable[..., Any]:
        def restart(self: Any, *args: Any, **kwargs: Any) -> Any:
            database = original(self, *args, **kwargs)
            snapshot_parameters(database)
            return database

        return restart

    def make_cluster(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_db_cluster(self: Any, kwargs: dict[str, Any], *a: Any, **k: Any) -> Any:
            from .. import aws

            if active() and (kwargs.get("db_subnet_group_name") or "default") == "default":
                ensure_default_subnet_group(self, aws.backend("ec2", self.region_name))
            cluster = original(self, kwargs, *a, **k)
            if active() and not cluster.vpc_security_group_ids:
                ec2 = aws.backend("ec2", self.region_name)
                group = self.subnet_groups.get(cluster.db_subnet_group_name)
                vpc_id = group.vpc_id if group is not None else ec2.get_default_vpc().id
                cluster.vpc_security_group_ids = [ec2.get_default_security_group(vpc_id).id]
            return cluster

        return create_db_cluster

    def remove_role(target: str) -> Callable[..., None]:
        def remove(
            self: Any, identifier: str, role_arn: str, feature_name: str | None = None
        ) -> None:
            if target == "instance":
                owner = self.describe_db_instances(identifier)[0]
            else:
                owner = self.describe_db_clusters(db_cluster_identifier=identifier)[0]
            roles = owner._associated_roles
            for role in list(roles):
                if role.role_arn == role_arn and feature_name in (None, "", role.feature_name):
                    roles.remove(role)
                    return
            # Lab's reading of AWS's DBInstanceRoleNotFound / DBClusterRoleNotFound message.
            code = "DBInstanceRoleNotFound" if target == "instance" else "DBClusterRoleNotFound"
            raise RDSClientError(
                code, f"Role {role_arn} is not associated with {target} {identifier}."
            )

        return remove

    def respond(target: str) -> Callable[[Any], Any]:
        from moto.core.responses import EmptyResult

        key = "DBInstanceIdentifier" if target == "instance" else "DBClusterIdentifier"

        def action(self: Any) -> Any:
            getattr(self.backend, f"remove_role_from_db_{target}")(
                self.params.get(key), self.params.get("RoleArn"), self.params.get("FeatureName")
            )
            return EmptyResult()

        return action

    _wrap(RDSBackend, "create_db_instance", make_create)
    _wrap(RDSBackend, "reboot_db_instance", make_restart)
    _wrap(RDSBackend, "start_db_instance", make_restart)
    _wrap(RDSBackend, "create_db_cluster", make_cluster)
    for target in ("instance", "cluster"):
        if not hasattr(RDSBackend, f"remove_role_from_db_{target}"):
            setattr(RDSBackend, f"remove_role_from_db_{target}", remove_role(target))
        if not hasattr(RDSResponse, f"remove_role_from_db_{target}"):
            setattr(RDSResponse, f"remove_role_from_db_{target}", respond(target))

    status_property = DBInstance.db_parameter_group_status_list

    def db_parameter_group_status_list(self: Any) -> Any:
        groups = status_property.fget(self)  # type: ignore[union-attr]
        if active() and pending_reboot(self):
            for group in groups:
                group.ParameterApplyStatus = "pending-reboot"
        return groups

    DBInstance.db_parameter_group_status_list = property(db_parameter_group_status_list)  # type: ignore[assignment,method-assign]


def current_parameter(db: Any, name: str) -> str | None:
    """The value of ``name`` in the instance's parameter group right now (None: default)."""
    group_name = getattr(db, "db_parameter_group_name", None)
    group = db.backend.db_parameter_groups.get(group_name) if group_name else None
    if group is None:
        return None
    entry = group.parameters.get(name)
    return None if entry is None else dict(entry).get("ParameterValue")


def applied_parameter(db: Any, name: str) -> str | None:
    """The value of ``name`` the instance runs with (as of its creation or last reboot)."""
    applied = getattr(db, APPLIED_ATTR, None)
    if applied is None:  # created before the lab was installed: take today's values
        snapshot_parameters(db)
        applied = getattr(db, APPLIED_ATTR)
    return applied["params"].get(name)


def pending_reboot(db: Any) -> bool:
    """Whether a parameter-group change waits for a reboot (group swap or static parameter)."""
    applied = getattr(db, APPLIED_ATTR, None)
    if applied is None:
        return False
    if applied["group"] != getattr(db, "db_parameter_group_name", None):
        return True
    return any(applied["params"].get(p) != current_parameter(db, p) for p in STATIC_PARAMETERS)


# ------------------------------------------------------------------ IAM
def _patch_iam() -> None:
    from moto.iam.models import IAMBackend

    def make_init(original: Callable[..., Any]) -> Callable[..., Any]:
        def _init_aws_policies(self: Any) -> Any:
            from moto.settings import load_iam_aws_managed_policies

            if not active() or load_iam_aws_managed_policies():
                return original(self)
            return aws_managed_policies(self.account_id, self.region_name)

        return _init_aws_policies

    _wrap(IAMBackend, "_init_aws_policies", make_init)


def aws_managed_policies(account_id: str, region_name: str) -> list[Any]:
    """moto's bundled AWS-managed policies as policy objects (the JSON is parsed once)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy

    if not _managed_policy_data:
        _managed_policy_data.update(json.loads(aws_managed_policies_data))
    return [
        AWSManagedPolicy.from_data(name, account_id, region_name, data)
        for name, data in _managed_policy_data.items()
    ]


def load_managed_policies(iam: Any) -> None:
    """Add AWS-managed policies to an IAM backend created before the lab was installed."""
    if iam.aws_managed_policies:
        return
    policies = aws_managed_policies(iam.account_id, iam.region_name)
    iam.aws_managed_policies = policies
    for policy in policies:
        iam.managed_policies.setdefault(policy.arn, policy)


def install_patches() -> None:
    """Install the class-level patches once per process and switch them on."""
    if not _state["installed"]:
        _patch_ec2()
        _patch_rds()
        _patch_iam()
        _state["installed"] = True
    set_active(True)
