"""The access room: the checks AWS makes on the DB -> Lambda path, from the lab's live state.

``check_invoke(db, function_arn)`` runs on every SQL ``aws_lambda.invoke``; it answers as AWS
would: IAM (role associated with feature ``Lambda``, trust for ``rds.amazonaws.com``, policies
allowing ``lambda:InvokeFunction`` on the ARN) and network (a path to the Lambda endpoint on
443 through an internet gateway, a NAT gateway or an interface endpoint). A failure carries the
DETAIL of ``invoke API failed``. ``explain_path`` shows the same analysis hop by hop.

Order of the checks, as AWS meets them: credentials (role association, trust) before the SDK
connects; the network before the request reaches Lambda; authorization (identity policies,
permissions boundary, endpoint policy) at the Lambda endpoint.
"""

from __future__ import annotations

import threading
from typing import Any

from .. import aws, config
from . import iam, network, patches, placement, sessions
from .explain import PathExplanation
from .model import Hop, Verdict, verdict_of

__all__ = [
    "AccessRoom",
    "Hop",
    "PathExplanation",
    "Verdict",
    "check_invoke",
    "explain_path",
    "install",
]


def function_arn(function: str, qualifier: str | None = None, region: str | None = None) -> str:
    """A full function ARN from a name, partial ARN or ARN (as Lambda's Invoke accepts them)."""
    region = region or config.REGION
    if function.startswith("arn:"):
        arn = function
    elif ":function:" in function:  # 123456789012:function:name[:qualifier]
        arn = f"arn:aws:lambda:{region}:{function}"
    else:  # name[:qualifier]
        arn = f"arn:aws:lambda:{region}:{config.ACCOUNT_ID}:function:{function}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


def _analyse(db_instance_identifier: str, function: str, qualifier: str | None) -> PathExplanation:
    where = placement.locate(db_instance_identifier)
    resource = function_arn(function, qualifier, where.region)
    if where.engine == "aurora-mysql":
        # Aurora MySQL uses the role named by aws_default_lambda_role (applied), which must be
        # associated with the cluster; its FeatureName does not matter
        from ..mysql import iam as mysql_iam

        association, role = mysql_iam.role_hops(where)
    else:
        association, role = iam.association_hops(where)
    net = network.evaluate(where)
    hops: list[Hop] = association + [iam.policy_hop(role, where, resource, net.endpoint)]
    hops += net.hops
    if net.endpoint is not None and role is not None:
        hops.append(iam.endpoint_policy_hop(role, where, resource, net.endpoint))
    verdict = verdict_of(hops)
    return PathExplanation(where.identifier, resource, verdict, hops, net.path)


def check_invoke(
    db_instance_identifier: str, function_arn: str, qualifier: str | None = None
) -> Verdict:
    """Whether ``db_instance_identifier`` can call Lambda's Invoke on ``function_arn`` now.

    ``function_arn`` may be qualified (``...:function:name:alias``) or be a name / partial ARN;
    ``qualifier`` appends a version or alias. Raises LookupError for an unknown instance.
    """
    return _analyse(db_instance_identifier, function_arn, qualifier).verdict


def explain_path(
    db_instance_identifier: str, function_name: str, qualifier: str | None = None
) -> PathExplanation:
    """The hop-by-hop analysis behind :func:`check_invoke` (renders in Jupyter)."""
    return _analyse(db_instance_identifier, function_name, qualifier)


class AccessRoom:
    """What ``install`` returns (``lab.access``): the checks, plus ``shutdown()``."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self._lock = threading.Lock()

    check_invoke = staticmethod(check_invoke)
    explain_path = staticmethod(explain_path)

    def shutdown(self) -> None:
        """Switch the moto patches to pass-through (they cannot be unwound: others wrap them)."""
        patches.set_active(False)


def install(lab: Any) -> AccessRoom:
    """Patch moto (default VPC, placement fields, parameter tracking, IAM managed policies,
    remove_role_*), complete the state that already exists, and return the room."""
    patches.install_patches()
    sessions.install()  # role sessions (Lambda handlers) are held to their role's policies
    ec2 = aws.backend("ec2")
    patches.complete_default_vpc(ec2)
    vpc = ec2.get_default_vpc()
    if vpc is not None:
        group = ec2.get_default_security_group(vpc.id)
        if group is not None and not group.ingress_rules:
            ec2.authorize_security_group_ingress(
                group.id, "-1", None, None, [], source_groups=[{"GroupId": group.id}], vpc_id=vpc.id
            )
    patches.load_managed_policies(aws.backend("iam"))
    return AccessRoom(lab)
