"""Security-group and network-ACL rule evaluation on moto's EC2 objects.

A *peer* is either :data:`INTERNET` (a public address such as the Lambda service endpoint's)
or an IPv4 CIDR inside the VPC (an endpoint's or the DB's subnet). For the internet, only rules
whose CIDR is ``/0`` are taken to cover it (lab simplification: Lambda's public addresses are
many and change, so a narrower public range is not assumed to contain them). Security groups
are stateful; network ACLs are not, so return traffic to ephemeral ports must be allowed too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

INTERNET: str | None = None
# Lab's reading: RDS hosts run Linux, whose client ports are 32768-60999; a NAT gateway uses
# source ports 1024-65535 (VPC user guide, NAT gateway network ACLs).
CLIENT_EPHEMERAL = (32768, 60999)
NAT_EPHEMERAL = (1024, 65535)
TCP = {"tcp", "6"}
ALL = {"-1", "all"}


def _net(cidr: str | None) -> ipaddress.IPv4Network | None:
    if not cidr:
        return None
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def peer_text(peer: str | None) -> str:
    return "0.0.0.0/0" if peer is INTERNET else str(peer)


def _covers(rule_cidr: str | None, peer: str | None) -> bool:
    net = _net(rule_cidr)
    if net is None:
        return False
    if peer is INTERNET:
        return net.prefixlen == 0
    target = _net(peer)
    return target is not None and net.supernet_of(target)


def _overlaps(rule_cidr: str | None, peer: str | None) -> bool:
    net = _net(rule_cidr)
    if net is None:
        return False
    if peer is INTERNET:
        return net.prefixlen == 0
    target = _net(peer)
    return target is not None and net.overlaps(target)


# ------------------------------------------------------------------ security groups
def security_groups(ec2: Any, ids: Iterable[str]) -> tuple[list[Any], list[str]]:
    """The security groups that exist among ``ids``, and the IDs that do not."""
    found, missing = [], []
    for group_id in ids:
        group = ec2.get_security_group_from_id(group_id)
        (found if group is not None else missing).append(group if group is not None else group_id)
    return found, missing


def sg_allows(
    groups: list[Any], egress: bool, port: int, peer: str | None, peer_groups: Iterable[str] = ()
) -> str | None:
    """The first rule (``"sg-x: ..."``) of ``groups`` that allows TCP ``port`` to/from the peer
    (a CIDR, or a member of ``peer_groups``); None when no rule does."""
    wanted = set(peer_groups)
    for group in groups:
        rules = group.egress_rules if egress else group.ingress_rules
        for rule in list(rules):
            protocol = str(rule.ip_protocol).lower()
            if protocol in ALL:
                ports = "all traffic"
            elif (
                protocol in TCP
                and rule.from_port is not None
                and rule.from_port <= port <= rule.to_port
            ):
                span = (
                    f"{rule.from_port}-{rule.to_port}"
                    if rule.from_port != rule.to_port
                    else rule.from_port
                )
                ports = f"TCP {span}"
            else:
                continue
            cidr = rule.ip_range.get("CidrIp") if rule.ip_range else None
            if cidr and _covers(cidr, peer):
                return f"{group.id}: {ports} {'to' if egress else 'from'} {cidr}"
            source = (rule.source_group or {}).get("GroupId")
            if source and source in wanted:
                return f"{group.id}: {ports} {'to' if egress else 'from'} {source}"
    return None


# ------------------------------------------------------------------ network ACLs
def nacl_of(ec2: Any, vpc_id: str, subnet_id: str) -> Any | None:
    """The network ACL associated with ``subnet_id`` (else the VPC's default ACL)."""
    default = None
    for acl in list(ec2.network_acls.values()):
        if acl.vpc_id != vpc_id:
            continue
        if any(a.subnet_id == subnet_id for a in list(acl._associations.values())):
            return acl
        if acl.default:
            default = acl
    return default


def _entries(acl: Any, egress: bool) -> list[Any]:
    entries = [
        e for e in list(acl.network_acl_entries) if str(e.egress).lower() == str(egress).lower()
    ]
    return sorted(entries, key=lambda e: int(e.rule_number))


def _port_samples(entries: list[Any], lo: int, hi: int) -> list[int]:
    points = {lo, hi}
    for e in entries:
        for p in (e.port_range_from, e.port_range_to):
            if p is None:
                continue
            for q in (int(p) - 1, int(p), int(p) + 1):
                if lo <= q <= hi:
                    points.add(q)
    return sorted(points)


def _decide(entries: list[Any], port: int, peer: str | None) -> tuple[bool, str]:
    for e in entries:
        protocol = str(e.protocol).lower()
        if protocol not in ALL and protocol not in TCP:
            continue
        if protocol in TCP and e.port_range_from is not None:
            if not int(e.port_range_from) <= port <= int(e.port_range_to):
                continue
        allow = str(e.rule_action).lower() == "allow"
        if (allow and _covers(e.cidr_block, peer)) or (not allow and _overlaps(e.cidr_block, peer)):
            return allow, f"rule {e.rule_number} {'allow' if allow else 'deny'} {e.cidr_block}"
    return False, "the final * rule (deny)"


def nacl_allows(
    acl: Any, egress: bool, ports: tuple[int, int], peer: str | None
) -> tuple[bool, str]:
    """Whether ``acl`` lets TCP traffic on every port of ``ports`` through, and the rule that
    decides (the first denying rule when some port is denied)."""
    if acl is None:
        return True, "no network ACL"
    entries = _entries(acl, egress)
    decided = ""
    for port in _port_samples(entries, *ports):
        allowed, decided = _decide(entries, port, peer)
        if not allowed:
            return False, f"{decided} (port {port})"
    return True, decided


def nacl_flow(
    acl: Any, out_port: int, back_ports: tuple[int, int], peer: str | None, outbound: bool = True
) -> tuple[bool, str]:
    """A TCP flow through a subnet's ACL: the request one way, the reply the other.

    ``outbound`` True: the subnet sends the request to ``peer`` on ``out_port`` and receives
    the reply on ``back_ports``; False: it receives the request and sends the reply.
    """
    if acl is None:
        return True, "no network ACL"
    direction = "outbound" if outbound else "inbound"
    ok1, why1 = nacl_allows(acl, outbound, (out_port, out_port), peer)
    ok2, why2 = nacl_allows(acl, not outbound, back_ports, peer)
    back = "inbound" if outbound else "outbound"
    prep = ("to", "from") if outbound else ("from", "to")
    text = (
        f"{acl.id}: {direction} TCP {out_port} {prep[0]} {peer_text(peer)} "
        f"{'allowed' if ok1 else 'denied'} by {why1}; {back} TCP {back_ports[0]}-{back_ports[1]} "
        f"{prep[1]} {peer_text(peer)} {'allowed' if ok2 else 'denied'} by {why2}"
    )
    return ok1 and ok2, text
