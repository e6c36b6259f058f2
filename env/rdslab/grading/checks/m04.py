"""Checks for module 04 (a network path to Lambda): three broken networks, repaired.

Each exercise's setup cell builds a VPC, a DB instance with a working IAM role (module 03) and
one broken network path. The checks read the repaired network through boto3 (EC2
``describe_security_groups`` / ``describe_route_tables`` / ``describe_nat_gateways`` /
``describe_vpc_endpoints``, RDS ``describe_db_instances`` / ``describe_db_parameters``), then
ask ``lab.explain_path`` for the verdict and the path taken, and finally call the function from
SQL (``aws_lambda.invoke(..., 'DryRun')``) on the instance itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from .m03 import dry_run_criterion, path_criterion

PASSWORD = "Net-Passw0rd-04"
PUBLIC_DB = "public-db"
PRIVATE_DB = "private-db"
ENDPOINT_DB = "endpoint-db"
LAMBDA_SERVICE = "com.amazonaws.us-east-1.lambda"
DNS_PARAMETER = "rds.custom_dns_resolution"


def _instance(ctx: Context, identifier: str, exercise_id: str) -> dict[str, Any]:
    return ctx.db_instance(
        identifier,
        hint=f"Run the setup cell of exercise {exercise_id}: it builds the network and {identifier}.",
    )


def _security_groups(ctx: Context, db: dict[str, Any]) -> list[dict[str, Any]]:
    ids = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups") or []]
    if not ids:
        return []
    return list(ctx.client("ec2").describe_security_groups(GroupIds=ids)["SecurityGroups"])


def _rule_text(rule: dict[str, Any], cidr: str) -> str:
    protocol = rule.get("IpProtocol")
    if protocol == "-1":
        return f"all traffic to {cidr}"
    span = rule.get("FromPort"), rule.get("ToPort")
    ports = str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"
    return f"{protocol} {ports} to {cidr}"


def _egress_to_internet(groups: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(text, rule) of every egress rule whose destination is 0.0.0.0/0."""
    found = []
    for group in groups:
        for rule in group.get("IpPermissionsEgress", []):
            for cidr in rule.get("IpRanges", []):
                if cidr.get("CidrIp") == "0.0.0.0/0":
                    found.append((f"{group['GroupId']}: {_rule_text(rule, '0.0.0.0/0')}", rule))
    return found


def _allows_443(rule: dict[str, Any]) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    return (
        str(rule.get("IpProtocol")) in ("tcp", "6")
        and rule.get("FromPort") is not None
        and rule["FromPort"] <= 443 <= rule["ToPort"]
    )


def _route_table(ec2: Any, vpc_id: str, subnet_id: str) -> dict[str, Any] | None:
    """The subnet's route table: its explicit association, else the VPC's main table."""
    tables = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
    )["RouteTables"]
    if tables:
        return dict(tables[0])
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"]
    return dict(main[0]) if main else None


def _default_route(table: dict[str, Any] | None) -> dict[str, Any] | None:
    if table is None:
        return None
    return next(
        (r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"),
        None,
    )


# ---------------------------------------------------------------------------- 04.1
@exercise("04.1", points=8, title="public-db: an outbound rule for HTTPS")
def public_egress(ctx: Context) -> Iterator[Criterion]:
    db = _instance(ctx, PUBLIC_DB, "04.1")
    groups = _security_groups(ctx, db)
    ids = ", ".join(g["GroupId"] for g in groups) or "none"
    egress = _egress_to_internet(groups)
    https = [text for text, rule in egress if _allows_443(rule)]
    yield Criterion(
        2,
        f"egress rules of {PUBLIC_DB}'s security groups ({ids}) to 0.0.0.0/0: "
        + (", ".join(text for text, _ in egress) or "none"),
        bool(https),
        "no outbound rule lets the instance open TCP 443 to 0.0.0.0/0 (the Lambda API's public "
        "addresses)",
        "ec2.authorize_security_group_egress(GroupId=<the instance's group>, IpPermissions=[{"
        "'IpProtocol': 'tcp', 'FromPort': 443, 'ToPort': 443, 'IpRanges': [{'CidrIp': "
        "'0.0.0.0/0'}]}])",
    )
    broad = [text for text, rule in egress if _allows_443(rule) and _broader_than_443(rule)]
    yield practice(
        1,
        "least privilege for egress: only TCP 443 to 0.0.0.0/0",
        bool(https) and not broad,
        ("rules open more than HTTPS to the whole internet: " + ", ".join(broad))
        if broad
        else "not checked: no rule allows TCP 443 yet",
        "The database needs only HTTPS out: revoke the broad rule "
        "(ec2.revoke_security_group_egress) and keep TCP 443 only.",
    )
    criterion, _ = path_criterion(ctx, 2, PUBLIC_DB, via="internet gateway")
    yield criterion
    yield dry_run_criterion(ctx, 3, PUBLIC_DB, PASSWORD)


def _broader_than_443(rule: dict[str, Any]) -> bool:
    return rule.get("IpProtocol") == "-1" or (rule.get("FromPort"), rule.get("ToPort")) != (
        443,
        443,
    )


# ---------------------------------------------------------------------------- 04.2
@exercise("04.2", points=8, title="private-db: a route through a NAT gateway")
def nat_route(ctx: Context) -> Iterator[Criterion]:
    db = _instance(ctx, PRIVATE_DB, "04.2")
    ec2 = ctx.client("ec2")
    group = db.get("DBSubnetGroup") or {}
    vpc_id = group.get("VpcId", "")
    subnets = [s["SubnetIdentifier"] for s in group.get("Subnets", [])]
    routes: dict[str, str] = {}
    nat_ids: set[str] = set()
    for subnet in subnets:
        route = _default_route(_route_table(ec2, vpc_id, subnet))
        target = (route or {}).get("NatGatewayId") or (route or {}).get("GatewayId") or "none"
        routes[subnet] = target
        if str(target).startswith("nat-"):
            nat_ids.add(target)
    missing = [s for s, t in routes.items() if not str(t).startswith("nat-")]
    yield Criterion(
        2,
        "0.0.0.0/0 route of each subnet in the DB subnet group: "
        + ", ".join(f"{s} -> {t}" for s, t in routes.items()),
        bool(subnets) and not missing,
        f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no 0.0.0.0/0 route to "
        "a NAT gateway (the instance may run in any subnet of its group, e.g. after a failover)",
        "ec2.create_route(RouteTableId=<the DB subnets' route table>, "
        "DestinationCidrBlock='0.0.0.0/0', NatGatewayId=<your NAT gateway>)",
    )
    nats = (
        ec2.describe_nat_gateways(NatGatewayIds=sorted(nat_ids))["NatGateways"] if nat_ids else []
    )
    problems = []
    for nat in nats:
        if nat.get("State") != "available":
            problems.append(f"{nat['NatGatewayId']} is {nat.get('State')}")
            continue
        route = _default_route(_route_table(ec2, vpc_id, nat["SubnetId"]))
        if not str((route or {}).get("GatewayId", "")).startswith("igw-"):
            problems.append(
                f"{nat['NatGatewayId']} sits in {nat['SubnetId']}, which has no route to an "
                "internet gateway"
            )
    yield Criterion(
        1,
        "the NAT gateway(s) used: "
        + (", ".join(f"{n['NatGatewayId']} in {n['SubnetId']}" for n in nats) or "none"),
        bool(nats) and not problems,
        "; ".join(problems) or "no route leads to a NAT gateway yet",
        "A NAT gateway works from a public subnet (one whose route table sends 0.0.0.0/0 to the "
        "internet gateway): create it there with an Elastic IP, and wait until it is available "
        "(waiter nat_gateway_available).",
    )
    criterion, _ = path_criterion(ctx, 2, PRIVATE_DB, via="NAT gateway")
    public = bool(db.get("PubliclyAccessible"))
    if criterion.passed and public:
        criterion = Criterion(
            2,
            criterion.looked_at + ", PubliclyAccessible=True",
            False,
            "the instance was made public; the task keeps it private",
            f"rds.modify_db_instance(DBInstanceIdentifier='{PRIVATE_DB}', "
            "PubliclyAccessible=False, ApplyImmediately=True)",
        )
    yield criterion
    yield dry_run_criterion(ctx, 3, PRIVATE_DB, PASSWORD)


# ---------------------------------------------------------------------------- 04.3
@exercise("04.3", points=8, title="endpoint-db: private DNS for the Lambda endpoint")
def interface_endpoint(ctx: Context) -> Iterator[Criterion]:
    db = _instance(ctx, ENDPOINT_DB, "04.3")
    ec2, rds = ctx.client("ec2"), ctx.client("rds")
    vpc_id = (db.get("DBSubnetGroup") or {}).get("VpcId", "")
    endpoints = ec2.describe_vpc_endpoints(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "service-name", "Values": [LAMBDA_SERVICE]},
        ]
    )["VpcEndpoints"]
    if not endpoints:
        raise LearnerError(
            f"Lambda interface endpoints in {vpc_id} (describe_vpc_endpoints)",
            "there is none any more",
            "Run the setup cell of exercise 04.3 again: repair the endpoint, do not delete it.",
        )
    dns = [e["VpcEndpointId"] for e in endpoints if e.get("PrivateDnsEnabled")]
    yield Criterion(
        2,
        "PrivateDnsEnabled of the Lambda endpoint(s): "
        + ", ".join(f"{e['VpcEndpointId']}={e.get('PrivateDnsEnabled')}" for e in endpoints),
        bool(dns),
        "private DNS is off: inside the VPC lambda.us-east-1.amazonaws.com still resolves to "
        "public addresses, which this VPC cannot reach",
        "ec2.modify_vpc_endpoint(VpcEndpointId=<the endpoint>, PrivateDnsEnabled=True)",
    )
    groups = db.get("DBParameterGroups") or [{}]
    name = groups[0].get("DBParameterGroupName", "")
    status = groups[0].get("ParameterApplyStatus", "")
    custom = bool(name) and not name.startswith("default.")
    value = _parameter(rds, name, DNS_PARAMETER) if custom else None
    ok = custom and value == "1" and status == "in-sync"
    if not custom:
        wrong = (
            f"the instance uses the default group {name}, which cannot be modified; "
            f"{DNS_PARAMETER} is 0 there"
        )
        hint = (
            "rds.create_db_parameter_group(DBParameterGroupName=..., DBParameterGroupFamily="
            f"'postgres18', Description=...), set {DNS_PARAMETER} to 1 with "
            "modify_db_parameter_group (ApplyMethod 'pending-reboot'), attach it with "
            "modify_db_instance(DBParameterGroupName=..., ApplyImmediately=True), then reboot."
        )
    elif value != "1":
        wrong = f"{DNS_PARAMETER} is {value or 'not set (0)'} in {name}"
        hint = (
            f"rds.modify_db_parameter_group(DBParameterGroupName='{name}', Parameters=[{{"
            f"'ParameterName': '{DNS_PARAMETER}', 'ParameterValue': '1', 'ApplyMethod': "
            "'pending-reboot'}])"
        )
    else:
        wrong = f"the change is {status}: a static parameter takes effect only after a reboot"
        hint = (
            f"rds.reboot_db_instance(DBInstanceIdentifier='{ENDPOINT_DB}'), then wait with "
            "the db_instance_available waiter"
        )
    yield Criterion(
        2,
        f"parameter group of {ENDPOINT_DB}: {name} ({status}), {DNS_PARAMETER} = {value or '0'}",
        ok,
        wrong,
        hint,
    )
    criterion, _ = path_criterion(ctx, 2, ENDPOINT_DB, via="interface endpoint")
    yield criterion
    yield dry_run_criterion(ctx, 2, ENDPOINT_DB, PASSWORD)


def _parameter(rds: Any, group: str, name: str) -> str | None:
    paginator = rds.get_paginator("describe_db_parameters")
    for page in paginator.paginate(DBParameterGroupName=group):
        for parameter in page.get("Parameters", []):
            if parameter.get("ParameterName") == name:
                value = parameter.get("ParameterValue")
                return None if value is None else str(value)
    return None
