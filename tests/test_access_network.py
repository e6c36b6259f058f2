"""The access room, network half: DB -> Lambda reachability built through boto3 (issue: access).

Each case builds a VPC layout through the lab's AWS endpoint, gives the instance a working IAM
role (so only the network decides), then asserts ``check_invoke`` and ``explain_path``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import rdslab
from rdslab import access

NETWORK_DETAIL = "AWS Lambda client returned 'Unable to connect to endpoint'."
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "rds.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
LAMBDA_SERVICE = "com.amazonaws.us-east-1.lambda"


@pytest.fixture(scope="module")
def aws() -> Any:
    rdslab.start()  # per-process singleton, stopped at exit (or by the session fixture)
    return boto3.client("ec2"), boto3.client("rds"), boto3.client("iam")


# ------------------------------------------------------------------ builders
class Net:
    """Builds one isolated network layout; names are unique per test."""

    def __init__(self, ec2: Any, rds: Any, iam: Any) -> None:
        self.ec2, self.rds, self.iam = ec2, rds, iam
        self.tag = uuid.uuid4().hex[:8]
        self.db = f"net-{self.tag}"

    def vpc(self, cidr: str = "10.0.0.0/16", dns: bool = True) -> str:
        vpc = self.ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        if dns:
            self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
            self.ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
        return vpc

    def subnets(self, vpc: str, prefix: str) -> list[str]:
        return [
            self.ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"{prefix}.{i * 16}/28", AvailabilityZone=f"us-east-1{az}"
            )["Subnet"]["SubnetId"]
            for i, az in enumerate("ab")
        ]

    def route_table(self, vpc: str, subnets: list[str], **route: str) -> str:
        table = self.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        if route:
            self.ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **route)
        for subnet in subnets:
            self.ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
        return table

    def igw(self, vpc: str) -> str:
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        return igw

    def nat(self, subnet: str) -> str:
        eip = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        return self.ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip)["NatGateway"][
            "NatGatewayId"
        ]

    def sg(self, vpc: str, egress_443: bool = True) -> str:
        group = self.ec2.create_security_group(
            GroupName=f"db-{uuid.uuid4().hex[:6]}", Description="db", VpcId=vpc
        )["GroupId"]
        self.ec2.revoke_security_group_egress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
        if egress_443:
            self.ec2.authorize_security_group_egress(
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                    }
                ],
            )
        return group

    def endpoint(self, vpc: str, subnets: list[str], sg: str, private_dns: bool = True) -> str:
        return self.ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=LAMBDA_SERVICE,
            VpcEndpointType="Interface",
            SubnetIds=subnets,
            SecurityGroupIds=[sg],
            PrivateDnsEnabled=private_dns,
        )["VpcEndpoint"]["VpcEndpointId"]

    def endpoint_sg(self, vpc: str, from_sg: str | None) -> str:
        group = self.ec2.create_security_group(
            GroupName=f"vpce-{uuid.uuid4().hex[:6]}", Description="vpce", VpcId=vpc
        )["GroupId"]
        if from_sg:
            self.ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "UserIdGroupPairs": [{"GroupId": from_sg}],
                    }
                ],
            )
        return group

    def param_group(self, dns_value: str | None) -> str:
        name = f"pg-{self.tag}"
        self.rds.create_db_parameter_group(
            DBParameterGroupName=name, Description="lab", DBParameterGroupFamily="postgres16"
        )
        if dns_value is not None:
            self.set_dns(name, dns_value)
        return name

    def set_dns(self, group: str, value: str) -> None:
        self.rds.modify_db_parameter_group(
            DBParameterGroupName=group,
            Parameters=[
                {
                    "ParameterName": "rds.custom_dns_resolution",
                    "ParameterValue": value,
                    "ApplyMethod": "pending-reboot",
                }
            ],
        )

    def create(
        self, subnets: list[str] | None = None, sgs: list[str] | None = None, **extra: Any
    ) -> str:
        kwargs: dict[str, Any] = dict(
            DBInstanceIdentifier=self.db,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            MasterUsername="labadmin",
            MasterUserPassword="Sup3rSecret!",
            AllocatedStorage=20,
        )
        if subnets:
            name = f"sng-{self.tag}"
            self.rds.create_db_subnet_group(
                DBSubnetGroupName=name, DBSubnetGroupDescription="lab", SubnetIds=subnets
            )
            kwargs["DBSubnetGroupName"] = name
        if sgs:
            kwargs["VpcSecurityGroupIds"] = sgs
        kwargs.update(extra)
        self.rds.create_db_instance(**kwargs)
        role = self.iam.create_role(
            RoleName=f"rds-lambda-{self.tag}", AssumeRolePolicyDocument=json.dumps(TRUST)
        )["Role"]["Arn"]
        self.iam.attach_role_policy(
            RoleName=f"rds-lambda-{self.tag}",
            PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
        )
        self.rds.add_role_to_db_instance(
            DBInstanceIdentifier=self.db, RoleArn=role, FeatureName="Lambda"
        )
        return self.db


@pytest.fixture
def net(aws: Any) -> Iterator[Net]:
    """A fresh builder; its DB instance (a real server) is deleted after the test."""
    builder = Net(*aws)
    yield builder
    try:
        builder.rds.delete_db_instance(DBInstanceIdentifier=builder.db, SkipFinalSnapshot=True)
    except builder.rds.exceptions.ClientError:
        pass  # the test failed before creating it


# ------------------------------------------------------------------ layouts
def default_vpc(n: Net) -> None:
    n.create()


def public(n: Net, egress: bool = True, public_ip: bool = True) -> None:
    vpc = n.vpc()
    subnets = n.subnets(vpc, "10.0.1")
    n.route_table(vpc, subnets, GatewayId=n.igw(vpc))
    n.create(subnets, [n.sg(vpc, egress)], PubliclyAccessible=public_ip)


def private(n: Net, nat: str | None = None) -> None:
    vpc = n.vpc()
    db_subnets = n.subnets(vpc, "10.0.1")
    if nat is None:
        n.route_table(vpc, db_subnets)
    else:
        igw = n.igw(vpc)
        nat_subnet = n.subnets(vpc, "10.0.2")[0]
        if nat == "public":
            n.route_table(vpc, [nat_subnet], GatewayId=igw)
        nat_id = n.nat(nat_subnet)  # "private": the NAT's subnet keeps the main (local) table
        n.route_table(vpc, db_subnets, NatGatewayId=nat_id)
        if nat == "deleted":
            n.route_table(vpc, [nat_subnet], GatewayId=igw)
            n.ec2.delete_nat_gateway(NatGatewayId=nat_id)
    n.create(db_subnets, [n.sg(vpc)])


def endpoint(
    n: Net,
    private_dns: bool = True,
    sg_443: bool = True,
    dns_param: str | None = "1",
    other_vpc: bool = False,
    vpc_dns: bool = True,
) -> None:
    vpc = n.vpc(dns=vpc_dns)
    db_subnets = n.subnets(vpc, "10.0.1")
    n.route_table(vpc, db_subnets)
    db_sg = n.sg(vpc, egress_443=False)
    n.ec2.authorize_security_group_egress(
        GroupId=db_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "10.0.0.0/16"}],
            }
        ],
    )
    ep_vpc = n.vpc("10.9.0.0/16") if other_vpc else vpc
    ep_subnets = n.subnets(ep_vpc, "10.9.1" if other_vpc else "10.0.3")
    ep_sg = n.endpoint_sg(ep_vpc, db_sg if sg_443 and not other_vpc else None)
    n.endpoint(ep_vpc, ep_subnets, ep_sg, private_dns)
    extra = {"DBParameterGroupName": n.param_group(dns_param)} if dns_param is not None else {}
    n.create(db_subnets, [db_sg], **extra)


def dns_not_rebooted(n: Net) -> None:
    endpoint(n, dns_param="0")
    n.set_dns(f"pg-{n.tag}", "1")


def nacl_deny(n: Net) -> None:
    vpc = n.vpc()
    subnets = n.subnets(vpc, "10.0.1")
    n.route_table(vpc, subnets, GatewayId=n.igw(vpc))
    acl = n.ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    for egress in (True, False):
        n.ec2.create_network_acl_entry(
            NetworkAclId=acl,
            RuleNumber=200,
            Protocol="-1",
            RuleAction="allow",
            Egress=egress,
            CidrBlock="0.0.0.0/0",
        )
    n.ec2.create_network_acl_entry(
        NetworkAclId=acl,
        RuleNumber=100,
        Protocol="6",
        RuleAction="deny",
        Egress=True,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 443, "To": 443},
    )
    for subnet in subnets:
        assoc = n.ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )
        current = next(
            a["NetworkAclAssociationId"]
            for a in assoc["NetworkAcls"][0]["Associations"]
            if a["SubnetId"] == subnet
        )
        n.ec2.replace_network_acl_association(AssociationId=current, NetworkAclId=acl)
    n.create(subnets, [n.sg(vpc)], PubliclyAccessible=True)


def nacl_no_return(n: Net) -> None:
    """Outbound 443 allowed but no inbound rule for the replies (ACLs are stateless)."""
    vpc = n.vpc()
    subnets = n.subnets(vpc, "10.0.1")
    n.route_table(vpc, subnets, GatewayId=n.igw(vpc))
    acl = n.ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    n.ec2.create_network_acl_entry(
        NetworkAclId=acl,
        RuleNumber=100,
        Protocol="6",
        RuleAction="allow",
        Egress=True,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 443, "To": 443},
    )
    n.ec2.create_network_acl_entry(
        NetworkAclId=acl,
        RuleNumber=100,
        Protocol="6",
        RuleAction="allow",
        Egress=False,
        CidrBlock="0.0.0.0/0",
        PortRange={"From": 1024, "To": 2048},
    )
    for subnet in subnets:
        assoc = n.ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
        )
        current = next(
            a["NetworkAclAssociationId"]
            for a in assoc["NetworkAcls"][0]["Associations"]
            if a["SubnetId"] == subnet
        )
        n.ec2.replace_network_acl_association(AssociationId=current, NetworkAclId=acl)
    n.create(subnets, [n.sg(vpc)], PubliclyAccessible=True)


@dataclass
class Case:
    build: Callable[[Net], None]
    ok: bool
    step: str | None = None  # explain_path's first missing step
    words: str = ""  # must appear in Verdict.missing
    path: str | None = None  # network path when ok


CASES = {
    "default VPC works out of the box": Case(default_vpc, True, path="internet gateway"),
    "public with 443 egress": Case(public, True, path="internet gateway"),
    "public without egress rule": Case(
        lambda n: public(n, egress=False), False, "security group egress", "TCP 443 to 0.0.0.0/0"
    ),
    "public subnet, not PubliclyAccessible": Case(
        lambda n: public(n, public_ip=False), False, "internet gateway", "not PubliclyAccessible"
    ),
    "private without NAT": Case(private, False, "route table", "has no 0.0.0.0/0 route"),
    "private with NAT": Case(lambda n: private(n, "public"), True, path="NAT gateway"),
    "NAT in a private subnet": Case(
        lambda n: private(n, "private"), False, "NAT gateway", "no route to an internet gateway"
    ),
    "NAT deleted": Case(
        lambda n: private(n, "deleted"), False, "route table", "deleted (blackhole)"
    ),
    "endpoint with private DNS": Case(endpoint, True, path="interface endpoint"),
    "endpoint without private DNS": Case(
        lambda n: endpoint(n, private_dns=False), False, "DNS", "private DNS disabled"
    ),
    "endpoint SG missing 443": Case(
        lambda n: endpoint(n, sg_443=False), False, "endpoint security group", "allows TCP 443 from"
    ),
    "missing rds.custom_dns_resolution": Case(
        lambda n: endpoint(n, dns_param=None),
        False,
        "DNS",
        "rds.custom_dns_resolution = 1 in a custom",
    ),
    "parameter set but not rebooted": Case(dns_not_rebooted, False, "DNS", "pending-reboot"),
    "VPC without DNS hostnames": Case(
        lambda n: endpoint(n, vpc_dns=False), False, "DNS", "enableDnsHostnames"
    ),
    "endpoint in another VPC": Case(
        lambda n: endpoint(n, other_vpc=True), False, "route table", "not in vpc-"
    ),
    "NACL denies 443 out": Case(nacl_deny, False, "network ACL (DB subnet)", "rule 100 deny"),
    "NACL without return ports": Case(
        nacl_no_return,
        False,
        "network ACL (DB subnet)",
        "inbound TCP 32768-60999 from 0.0.0.0/0 denied",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_network_case(net: Net, name: str) -> None:
    case = CASES[name]
    case.build(net)
    verdict = access.check_invoke(net.db, "orders-handler")
    explanation = access.explain_path(net.db, "orders-handler")
    assert verdict.ok is case.ok, explanation
    assert explanation.verdict == verdict
    if case.ok:
        assert (verdict.kind, verdict.detail, verdict.missing) == (None, None, None)
        assert explanation.first_missing is None
        assert explanation.path == case.path
        return
    assert verdict.kind == "network"
    assert verdict.detail == NETWORK_DETAIL
    assert explanation.first_missing is not None
    assert explanation.first_missing.step == case.step, explanation
    assert case.words in (verdict.missing or ""), verdict.missing
    assert explanation.hint


def test_reboot_applies_custom_dns_resolution(net: Net) -> None:
    dns_not_rebooted(net)
    described = net.rds.describe_db_instances(DBInstanceIdentifier=net.db)["DBInstances"][0]
    assert described["DBParameterGroups"][0]["ParameterApplyStatus"] == "pending-reboot"
    assert not access.check_invoke(net.db, "orders-handler").ok
    net.rds.reboot_db_instance(DBInstanceIdentifier=net.db)
    verdict = access.check_invoke(net.db, "orders-handler")
    assert verdict.ok, access.explain_path(net.db, "orders-handler")
    described = net.rds.describe_db_instances(DBInstanceIdentifier=net.db)["DBInstances"][0]
    assert described["DBParameterGroups"][0]["ParameterApplyStatus"] == "in-sync"


def test_private_dns_can_be_switched_on(net: Net) -> None:
    endpoint(net, private_dns=False)
    assert not access.check_invoke(net.db, "orders-handler").ok
    vpce = net.ec2.describe_vpc_endpoints(
        Filters=[{"Name": "service-name", "Values": [LAMBDA_SERVICE]}]
    )["VpcEndpoints"]
    mine = next(e for e in vpce if e["VpcId"] == access.placement.locate(net.db).vpc_id)
    net.ec2.modify_vpc_endpoint(VpcEndpointId=mine["VpcEndpointId"], PrivateDnsEnabled=True)
    assert access.check_invoke(net.db, "orders-handler").ok


def test_default_placement_as_on_aws(net: Net) -> None:
    ec2, rds = net.ec2, net.rds
    default_vpc(net)
    db = rds.describe_db_instances(DBInstanceIdentifier=net.db)["DBInstances"][0]
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0][
        "VpcId"
    ]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "default"
    assert db["DBSubnetGroup"]["VpcId"] == default
    assert len(db["DBSubnetGroup"]["Subnets"]) >= 2
    assert db["PubliclyAccessible"] is True  # default VPC has an internet gateway
    sg = ec2.describe_security_groups(GroupIds=[db["VpcSecurityGroups"][0]["VpcSecurityGroupId"]])
    assert sg["SecurityGroups"][0]["GroupName"] == "default"
    igws = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [default]}]
    )
    assert igws["InternetGateways"]
    tables = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [default]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )
    routes = tables["RouteTables"][0]["Routes"]
    assert any(
        r.get("DestinationCidrBlock") == "0.0.0.0/0" and r.get("GatewayId", "").startswith("igw-")
        for r in routes
    )


def test_private_vpc_defaults_renders_and_is_fast(net: Net) -> None:
    """A subnet group in a VPC without internet gateway: private by default (AWS's rule); the
    explanation renders as Mermaid + table, text and DataFrame, deterministically; the check is
    fast enough to run on every SQL invoke."""
    import time

    vpc = net.vpc()
    subnets = net.subnets(vpc, "10.0.1")
    net.create(subnets, [net.sg(vpc)])
    db = net.rds.describe_db_instances(DBInstanceIdentifier=net.db)["DBInstances"][0]
    assert db["PubliclyAccessible"] is False
    assert db["DBSubnetGroup"]["VpcId"] == vpc

    explanation = access.explain_path(net.db, "orders-handler")
    assert explanation.first_missing is not None
    assert explanation.first_missing.step == "route table"
    markdown = explanation._repr_markdown_()
    assert "```mermaid\nflowchart LR" in markdown
    assert "| # | layer | step |" in markdown
    assert "FAIL" in str(explanation)
    frame = explanation.to_frame()
    assert list(frame.columns) == ["layer", "step", "status", "resource", "detail", "hint"]
    assert (frame["status"] == "FAIL").any()
    assert str(access.explain_path(net.db, "orders-handler")) == str(explanation)

    start = time.perf_counter()
    for _ in range(50):
        access.check_invoke(net.db, "orders-handler")
    assert (time.perf_counter() - start) / 50 < 0.01
