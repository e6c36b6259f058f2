"""The network half of the DB -> Lambda path, read from moto's EC2 state.

The Lambda API is reached over HTTPS (TCP 443) at ``lambda.<region>.amazonaws.com``. Which
address that name resolves to decides the path:

* a Lambda **interface endpoint** in the instance's VPC with private DNS (and the VPC's DNS
  support and DNS hostnames on) makes the name resolve to the endpoint's interfaces; RDS for
  PostgreSQL (engine ``postgres``) only uses that private DNS once ``rds.custom_dns_resolution``
  is 1 *and applied by a reboot*. Then the endpoint's security group must allow 443 in from
  the instance, the instance's groups 443 out to it, and both subnets' ACLs the flow.
* otherwise the name resolves to public addresses, reached through the subnet's route for
  ``0.0.0.0/0``: an internet gateway (the instance must be PubliclyAccessible) or an available
  public NAT gateway that itself sits in a subnet routed to an internet gateway. The instance's
  security groups must allow TCP 443 out to 0.0.0.0/0, and the ACLs the flow and its replies.

A subnet's route table is its explicit association, else the VPC's main table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import aws
from . import patches, routes, rules
from .model import NETWORK_DETAIL, Hop
from .placement import Placement
from .rules import CLIENT_EPHEMERAL, INTERNET, NAT_EPHEMERAL

OPTIONS_HINT = (
    "Give the instance a way to lambda.{region}.amazonaws.com:443: a public subnet "
    "(0.0.0.0/0 -> internet gateway) with PubliclyAccessible=True, a route 0.0.0.0/0 -> NAT "
    "gateway, or a com.amazonaws.{region}.lambda interface endpoint with private DNS."
)


@dataclass
class NetworkResult:
    """The network hops, the path taken and the interface endpoint used (if any)."""

    hops: list[Hop] = field(default_factory=list)
    path: str | None = None  # "internet gateway", "NAT gateway", "interface endpoint"
    endpoint: Any | None = None


def _dns(p: Placement, ec2: Any) -> tuple[Any | None, str, str | None]:
    """(endpoint whose private DNS is in effect, what the name resolves to, why an endpoint in
    the VPC is not used)."""
    host = f"lambda.{p.region}.amazonaws.com"
    endpoints = routes.lambda_endpoints(ec2, p.region)
    mine = [e for e in endpoints if e.vpc_id == p.vpc_id]
    if not mine:
        return None, f"{host} resolves to public addresses: {_no_endpoint(p, endpoints)}.", None
    endpoint = next((e for e in mine if e.private_dns_enabled), None)
    if endpoint is None:
        why = (
            f"{mine[0].id} has private DNS disabled, so {host} still resolves to public addresses."
        )
        return None, why, why
    vpc = ec2.vpcs.get(p.vpc_id)
    if vpc is not None and not (vpc.enable_dns_support and vpc.enable_dns_hostnames):
        why = (
            f"{p.vpc_id} needs enableDnsSupport and enableDnsHostnames for the private DNS of "
            f"{endpoint.id}; {host} resolves to public addresses."
        )
        return None, why, why
    if p.engine == "postgres":
        applied = patches.applied_parameter(p.db, "rds.custom_dns_resolution")
        current = patches.current_parameter(p.db, "rds.custom_dns_resolution")
        if str(applied) != "1":
            group = getattr(p.db, "db_parameter_group_name", None)
            if not group:  # moto leaves the default group's name unset; AWS names it
                family = getattr(p.db, "default_db_parameter_group_details", None)
                group = family()[1] if callable(family) else "the default parameter group"
            if str(current) == "1":
                why = (
                    f"rds.custom_dns_resolution = 1 in {group} is pending-reboot: until "
                    f"{p.identifier} reboots it ignores the private DNS of {endpoint.id}."
                )
            else:
                why = (
                    f"RDS for PostgreSQL uses the private DNS of {endpoint.id} only with "
                    f"rds.custom_dns_resolution = 1 in a custom DB parameter group (now: "
                    f"{group}, value {current or 'default 0'}), applied by a reboot."
                )
            return None, why, why
    return endpoint, f"{host} resolves to the interfaces of {endpoint.id} (private DNS).", None


def _no_endpoint(p: Placement, endpoints: list[Any]) -> str:
    text = f"{p.vpc_id} has no Lambda interface endpoint"
    elsewhere = [f"{e.id} is in {e.vpc_id}" for e in endpoints if e.vpc_id != p.vpc_id]
    if elsewhere:
        more = f" and {len(elsewhere) - 2} more" if len(elsewhere) > 2 else ""
        text += f" ({', '.join(elsewhere[:2])}{more}, not in {p.vpc_id}: an endpoint serves only its VPC)"
    return text


def evaluate(p: Placement) -> NetworkResult:
    """The network hops from the instance to the Lambda endpoint."""
    ec2 = aws.backend("ec2", p.region)
    result = NetworkResult()
    hops = result.hops
    groups, missing_groups = rules.security_groups(ec2, p.security_group_ids)
    where = (
        f"{p.identifier} is in {p.subnet_id} ({p.subnet_cidr}, {p.availability_zone}) of "
        f"{p.vpc_id} (DB subnet group {p.subnet_group}), security groups "
        f"{', '.join(p.security_group_ids) or 'none'}, PubliclyAccessible="
        f"{p.publicly_accessible}."
    )
    if p.subnet is None or p.vpc_id is None:
        hops.append(
            Hop(
                "network",
                "instance placement",
                p.subnet_group,
                False,
                f"The DB subnet group {p.subnet_group} of {p.identifier} has no subnet.",
                "Recreate the DB subnet group with subnets.",
            )
        )
        return result
    hops.append(
        Hop(
            "network",
            "instance placement",
            f"{p.subnet_id}, {', '.join(p.security_group_ids)}",
            True,
            where,
        )
    )
    endpoint, resolution, dns_problem = _dns(p, ec2)
    dns_hop = Hop("network", "DNS", f"lambda.{p.region}.amazonaws.com", True, resolution)
    hops.append(dns_hop)
    if endpoint is not None:
        result.path, result.endpoint = "interface endpoint", endpoint
        _endpoint_path(p, ec2, endpoint, groups, hops)
    else:
        _public_path(p, ec2, groups, hops, result)
        if dns_problem and any(h.ok is False for h in hops):
            dns_hop.ok, dns_hop.detail = False, dns_problem
            dns_hop.hint = _dns_hint(dns_problem, p)
    if missing_groups:
        hops.insert(
            1,
            Hop(
                "network",
                "security groups",
                ", ".join(missing_groups),
                None,
                f"Security groups {', '.join(missing_groups)} no longer exist.",
            ),
        )
    ok = all(h.ok is not False for h in hops)
    hops.append(
        Hop(
            "network",
            "Lambda endpoint",
            f"lambda.{p.region}.amazonaws.com:443",
            True if ok else None,
            "Reachable over HTTPS." if ok else "Not reached.",
        )
    )
    for hop in hops:
        if hop.ok is False:
            hop.hint = hop.hint or OPTIONS_HINT.format(region=p.region)
            hop.sql_detail = hop.sql_detail or NETWORK_DETAIL
    return result


def _dns_hint(problem: str, p: Placement) -> str:
    if "pending-reboot" in problem:
        return f"rds.reboot_db_instance(DBInstanceIdentifier='{p.identifier}')"
    if "custom_dns_resolution" in problem:
        return (
            "Create a custom DB parameter group, set rds.custom_dns_resolution = 1, attach it "
            "with modify_db_instance and reboot the instance."
        )
    if "private DNS disabled" in problem:
        return "ec2.modify_vpc_endpoint(VpcEndpointId=..., PrivateDnsEnabled=True)"
    return (
        "ec2.modify_vpc_attribute(VpcId=..., EnableDnsSupport/EnableDnsHostnames={'Value': True})"
    )


def _public_path(
    p: Placement, ec2: Any, groups: list[Any], hops: list[Hop], result: NetworkResult
) -> None:
    table, how = routes.route_table_of(ec2, p.vpc_id or "", p.subnet_id or "")
    kind, text, target = routes.internet_route(table, p.vpc_id or "")
    table_id = table.id if table is not None else "-"
    if not kind:
        endpoints = routes.lambda_endpoints(ec2, p.region)
        if any(e.vpc_id == p.vpc_id for e in endpoints):
            also = "and the Lambda interface endpoint of the VPC is not used (see DNS)"
        else:
            also = f"and {_no_endpoint(p, endpoints)}"
        hops.append(
            Hop(
                "network",
                "route table",
                f"{table_id} ({how} of {p.subnet_id})",
                False,
                f"No way to the internet from {p.subnet_id}: {text}, {also}.",
            )
        )
        return
    hops.append(
        Hop("network", "route table", f"{table_id} ({how} of {p.subnet_id})", True, text + ".")
    )
    if kind == "igw":
        result.path = "internet gateway"
        hops.append(
            Hop(
                "network",
                "internet gateway",
                target.id,
                p.publicly_accessible,
                f"{p.identifier} has a public IP and uses {target.id}."
                if p.publicly_accessible
                else f"{p.identifier} is not PubliclyAccessible: without a public IP its "
                f"traffic cannot leave through {target.id}.",
                None
                if p.publicly_accessible
                else f"rds.modify_db_instance(DBInstanceIdentifier='{p.identifier}', "
                "PubliclyAccessible=True, ApplyImmediately=True), or use a NAT gateway",
            )
        )
    else:
        result.path = "NAT gateway"
        nat_table, nat_how = routes.route_table_of(ec2, p.vpc_id or "", target.subnet_id)
        nat_kind, nat_text, _ = routes.internet_route(nat_table, p.vpc_id or "")
        ok = nat_kind == "igw"
        hops.append(
            Hop(
                "network",
                "NAT gateway",
                f"{target.id} in {target.subnet_id}",
                ok,
                f"{target.id} sits in {target.subnet_id}, routed to the internet ({nat_text})."
                if ok
                else f"{target.id} sits in {target.subnet_id}, which has no route to an "
                f"internet gateway ({nat_text}).",
                None
                if ok
                else "Create the NAT gateway in a public subnet (0.0.0.0/0 -> internet gateway).",
            )
        )
        nat_subnet = routes.subnet(ec2, target.subnet_id)
        if nat_subnet is not None and target.subnet_id != p.subnet_id:
            acl = rules.nacl_of(ec2, p.vpc_id or "", target.subnet_id)
            ok_in, text_in = rules.nacl_flow(
                acl, 443, CLIENT_EPHEMERAL, p.subnet_cidr, outbound=False
            )
            ok_out, text_out = rules.nacl_flow(acl, 443, NAT_EPHEMERAL, INTERNET)
            hops.append(
                Hop(
                    "network",
                    "network ACL (NAT subnet)",
                    acl.id if acl else "-",
                    ok_in and ok_out,
                    f"{text_in}. {text_out}.",
                    None if ok_in and ok_out else "Allow the flow in the NAT subnet's ACL.",
                )
            )
    rule = rules.sg_allows(groups, True, 443, INTERNET)
    hops.append(_sg_egress_hop(p, rule, "0.0.0.0/0"))
    _db_acl_hop(p, ec2, INTERNET, hops)


def _sg_egress_hop(p: Placement, rule: str | None, to: str) -> Hop:
    ids = ", ".join(p.security_group_ids)
    if rule:
        return Hop("network", "security group egress", ids, True, f"Outbound allowed by {rule}.")
    return Hop(
        "network",
        "security group egress",
        ids,
        False,
        f"No outbound rule of {ids} allows TCP 443 to {to}.",
        f"ec2.authorize_security_group_egress(GroupId=..., IpPermissions=[{{'IpProtocol': "
        f"'tcp', 'FromPort': 443, 'ToPort': 443, 'IpRanges': [{{'CidrIp': '{to}'}}]}}])",
    )


def _db_acl_hop(p: Placement, ec2: Any, peer: str | None, hops: list[Hop]) -> None:
    acl = rules.nacl_of(ec2, p.vpc_id or "", p.subnet_id or "")
    ok, text = rules.nacl_flow(acl, 443, CLIENT_EPHEMERAL, peer)
    hops.append(
        Hop(
            "network",
            "network ACL (DB subnet)",
            acl.id if acl else "-",
            ok,
            text + ".",
            None
            if ok
            else f"Allow outbound TCP 443 and inbound TCP "
            f"{CLIENT_EPHEMERAL[0]}-{CLIENT_EPHEMERAL[1]} in the ACL of {p.subnet_id}.",
        )
    )


def _endpoint_path(
    p: Placement, ec2: Any, endpoint: Any, groups: list[Any], hops: list[Hop]
) -> None:
    subnets = [
        s for s in (routes.subnet(ec2, i) for i in endpoint.subnet_ids or []) if s is not None
    ]
    if not subnets:
        hops.append(
            Hop(
                "network",
                "interface endpoint",
                endpoint.id,
                False,
                f"{endpoint.id} has no subnet, so no network interface to connect to.",
                "ec2.modify_vpc_endpoint(VpcEndpointId=..., AddSubnetIds=[...])",
            )
        )
        return
    subnet = next((s for s in subnets if s.availability_zone == p.availability_zone), subnets[0])
    hops.append(
        Hop(
            "network",
            "interface endpoint",
            f"{endpoint.id} ({subnet.id})",
            True,
            f"{p.identifier} connects to the interface of {endpoint.id} in {subnet.id} "
            f"({subnet.cidr_block}, {subnet.availability_zone}) over the VPC's local route.",
        )
    )
    # AWS gives an endpoint created without security groups the VPC's default group.
    ep_group_ids = list(endpoint.security_group_ids) or [
        g.id for g in [ec2.get_default_security_group(endpoint.vpc_id)] if g is not None
    ]
    ep_groups, _ = rules.security_groups(ec2, ep_group_ids)
    rule = rules.sg_allows(groups, True, 443, subnet.cidr_block, ep_group_ids)
    hops.append(_sg_egress_hop(p, rule, subnet.cidr_block))
    if subnet.id != p.subnet_id:
        _db_acl_hop(p, ec2, subnet.cidr_block, hops)
        acl = rules.nacl_of(ec2, p.vpc_id or "", subnet.id)
        ok, text = rules.nacl_flow(acl, 443, CLIENT_EPHEMERAL, p.subnet_cidr, outbound=False)
        hops.append(
            Hop(
                "network",
                "network ACL (endpoint subnet)",
                acl.id if acl else "-",
                ok,
                text + ".",
                None if ok else f"Allow the flow in the ACL of {subnet.id}.",
            )
        )
    rule = rules.sg_allows(ep_groups, False, 443, p.subnet_cidr, p.security_group_ids)
    ids = ", ".join(ep_group_ids)
    if rule:
        hops.append(
            Hop("network", "endpoint security group", ids, True, f"Inbound allowed by {rule}.")
        )
    else:
        hops.append(
            Hop(
                "network",
                "endpoint security group",
                ids,
                False,
                f"No inbound rule of {ids} (on {endpoint.id}) allows TCP 443 from "
                f"{p.identifier} ({', '.join(p.security_group_ids)} or {p.subnet_cidr}).",
                "ec2.authorize_security_group_ingress(GroupId=<endpoint SG>, IpPermissions="
                "[{'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443, 'UserIdGroupPairs': "
                "[{'GroupId': <DB SG>}]}])",
            )
        )
