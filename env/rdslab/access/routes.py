"""Route tables, their internet route, Lambda interface endpoints and subnets in moto's EC2.

A subnet's route table is its explicit association, else the VPC's main table. The route that
carries traffic to a public address is the ``0.0.0.0/0`` route (lab simplification: narrower
routes to public ranges are not assumed to cover the Lambda endpoint). An internet gateway
route only works while the gateway is attached to the VPC; a NAT gateway route only while the
gateway is ``available`` and public (a deleted NAT gateway leaves a blackhole route).
"""

from __future__ import annotations

from typing import Any

from . import patches


def route_table_of(ec2: Any, vpc_id: str, subnet_id: str) -> tuple[Any | None, str]:
    """The subnet's route table and how it applies ("explicit" or "main")."""
    for table in list(ec2.route_tables.values()):
        if table.vpc_id == vpc_id and subnet_id in dict(table._associations).values():
            return table, "explicit association"
    return patches.main_route_table(ec2, vpc_id), "main route table"


def internet_route(table: Any | None, vpc_id: str) -> tuple[str, str, Any | None]:
    """Classify the table's ``0.0.0.0/0`` route: (kind, description, target object).

    kind is "igw", "nat" or "" (no usable route; description says why)."""
    if table is None:
        return "", "no route table", None
    route = next((r for r in table.routes if r.destination_cidr_block == "0.0.0.0/0"), None)
    if route is None:
        return "", f"{table.id} has no 0.0.0.0/0 route", None
    gateway = route.gateway
    if gateway is not None and str(gateway.id).startswith("igw-"):
        if gateway.vpc is None or gateway.vpc.id != vpc_id:
            return "", f"{table.id}: 0.0.0.0/0 -> {gateway.id}, which is detached (blackhole)", None
        return "igw", f"{table.id}: 0.0.0.0/0 -> {gateway.id}", gateway
    nat = route.nat_gateway
    if nat is not None:
        if nat.state != "available":
            return "", f"{table.id}: 0.0.0.0/0 -> {nat.id}, which is {nat.state} (blackhole)", None
        if (nat.connectivity_type or "public") != "public":
            return (
                "",
                f"{table.id}: 0.0.0.0/0 -> {nat.id}, a private NAT gateway (no internet)",
                None,
            )
        return "nat", f"{table.id}: 0.0.0.0/0 -> {nat.id}", nat
    target = next(
        (
            str(t)
            for t in (
                route.gateway_id,
                route.instance_id,
                route.nat_gateway_id,
                getattr(route, "transit_gateway_id", None),
            )
            if t
        ),
        "another target",
    )
    return "", f"{table.id}: 0.0.0.0/0 -> {target}, not a way to the internet in the lab", None


def lambda_endpoints(ec2: Any, region: str) -> list[Any]:
    service = f"com.amazonaws.{region}.lambda"
    found = [
        e
        for e in list(ec2.vpc_end_points.values())
        if e.service_name == service
        and str(e.vpc_endpoint_type).lower() == "interface"
        and e.state == "available"
    ]
    return sorted(found, key=lambda e: e.creation_timestamp)


def subnet(ec2: Any, subnet_id: str) -> Any | None:
    try:
        return ec2.get_subnet(subnet_id)
    except Exception:  # noqa: BLE001 - deleted subnet
        return None
