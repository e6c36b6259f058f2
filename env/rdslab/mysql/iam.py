"""The DB -> Lambda access rules for Aurora MySQL, and the error texts Aurora MySQL returns.

AWS's rules for Aurora MySQL (aws-fidelity §2/§3; "Associating an IAM role with an Amazon
Aurora MySQL DB cluster"): the role named by the cluster parameter ``aws_default_lambda_role``
is the one RDS uses; it must also be associated with the cluster (``add_role_to_db_cluster``,
with or without a FeatureName); its trust policy must let ``rds.amazonaws.com`` assume it and
its policies allow ``lambda:InvokeFunction``; the network path is the same as for PostgreSQL.

The parameter takes effect when the writer starts or reboots (``pending-reboot``), or at once
when it is modified with ``ApplyMethod='immediate'`` (its ApplyType is dynamic).

Only the role hops are specific; identity policy, network and endpoint policy come from
``rdslab.access`` unchanged (its ``check_invoke`` looks for a role with feature ``Lambda``,
which is the PostgreSQL rule).
"""

from __future__ import annotations

import re
from typing import Any

from .. import aws, config
from ..access import iam as access_iam
from ..access import network, placement, policy
from ..access.explain import PathExplanation
from ..access.model import PHASE_CREDENTIALS, Hop, first_failure, verdict_of

PARAMETER = "aws_default_lambda_role"
APPLIED = "_rdslab_mysql_applied"
# Documented (Aurora user guide, "Enabling network communication from Aurora MySQL to other
# AWS services"): ERROR 1873 (HY000).
NETWORK_ERROR = (
    1873,
    "Lambda API returned error: Network Connection. Unable to connect to endpoint",
)
# Seen in the field with no role in effect (not in the AWS docs; errno is the lab's reading).
CREDENTIALS_ERROR = (
    1873,
    "Lambda API returned error: Missing Credentials: Cannot instantiate Lambda Client",
)


def api_error(code: str, message: str) -> tuple[int, str]:
    """Lab's reading of other Lambda API errors, worded like the documented network error
    (AWS SDK exception name in words, then its message): 'Resource Not Found. Function ...'."""
    name = code[: -len("Exception")] if code.endswith("Exception") else code
    words = " ".join(re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name)) or name
    return 1873, f"Lambda API returned error: {words}. {message}"


# --------------------------------------------------------------------------- the parameter
def _group(cluster: Any) -> Any | None:
    name = getattr(cluster, "parameter_group", None) or ""
    groups = aws.backend("rds").db_cluster_parameter_groups
    if name in groups:
        return groups[name]
    return next((g for key, g in list(groups.items()) if key.lower() == name.lower()), None)


def current_role(cluster: Any) -> str | None:
    """The value of aws_default_lambda_role in the cluster's parameter group right now."""
    group = _group(cluster)
    entry = group.parameters.get(PARAMETER) if group is not None else None
    value = dict(entry).get("ParameterValue") if entry else None
    return value or None


def snapshot(db: Any) -> None:
    """Record the value ``db`` (a writer) runs with from now on (create, reboot, start)."""
    cluster = getattr(db, "cluster", None)
    group = getattr(cluster, "parameter_group", None)
    role = current_role(cluster) if cluster is not None else None
    setattr(db, APPLIED, {"group": group, "role": role})


def applied_role(db: Any) -> str | None:
    applied = getattr(db, APPLIED, None)
    return applied["role"] if applied else None


def pending_reboot(db: Any) -> bool:
    """Whether a change of the cluster's parameter group or of the role waits for a reboot."""
    applied = getattr(db, APPLIED, None)
    cluster = getattr(db, "cluster", None)
    if applied is None or cluster is None:
        return False
    if applied["group"] != cluster.parameter_group:
        return True
    return bool(applied["role"] != current_role(cluster))


# --------------------------------------------------------------------------- the checks
def _fail(where: str, detail: str, hint: str) -> Hop:
    return Hop("iam", "role association", where, False, detail, hint, PHASE_CREDENTIALS)


def role_hops(where: placement.Placement) -> tuple[list[Hop], Any | None]:
    """aws_default_lambda_role in effect -> associated with the cluster -> trusted by RDS."""
    cluster = where.cluster
    skipped = Hop("iam", "trust policy", "-", None, "Not evaluated: RDS has no role to use.")
    skipped.phase = PHASE_CREDENTIALS
    if cluster is None:
        hop = _fail(where.identifier, f"{where.identifier} is not in a DB cluster.", "-")
        return [hop, skipped], None
    name = cluster.db_cluster_identifier
    group = cluster.parameter_group
    role_arn = applied_role(where.db)
    if role_arn is None:
        now = current_role(cluster)
        if now:
            detail = (
                f"{PARAMETER} = {now} in {group} is pending-reboot: {where.identifier} "
                "still runs without it."
            )
            hint = f"rds.reboot_db_instance(DBInstanceIdentifier='{where.identifier}')"
        else:
            detail = f"{PARAMETER} is not set in the DB cluster parameter group {group} of {name}."
            hint = (
                "rds.create_db_cluster_parameter_group(..., DBParameterGroupFamily="
                f"'aurora-mysql8.0'), modify_db_cluster_parameter_group(... '{PARAMETER}' ...), "
                "modify_db_cluster(DBClusterParameterGroupName=...), then reboot the writer"
            )
        return [_fail(f"cluster {name}", detail, hint), skipped], None
    associated = [r.role_arn for r in cluster._associated_roles]
    if role_arn not in associated:
        detail = f"{PARAMETER} names {role_arn}, which is not associated with cluster {name}."
        hint = f"rds.add_role_to_db_cluster(DBClusterIdentifier='{name}', RoleArn='{role_arn}')"
        return [_fail(f"cluster {name} -> {role_arn}", detail, hint), skipped], None
    role = access_iam.find_role(aws.backend("iam"), role_arn)
    if role is None:
        detail = f"Role {role_arn} ({PARAMETER} of {name}) does not exist in IAM."
        return [_fail(f"cluster {name}", detail, "Create the role again."), skipped], None
    hops = [
        Hop(
            "iam",
            "role association",
            f"cluster {name} -> {role_arn}",
            True,
            f"{role.name} is associated with {name} and named by {PARAMETER}.",
            phase=PHASE_CREDENTIALS,
        )
    ]
    ctx = policy.Context(
        values={
            "aws:sourcearn": [cluster.db_cluster_arn],
            "aws:sourceaccount": [config.ACCOUNT_ID],
        },
        known=access_iam.TRUST_KEYS,
        principal={"Service": [access_iam.SERVICE]},
    )
    trust = policy.parse(role.assume_role_policy_document or "{}")
    decision = policy.evaluate([policy.Source("trust policy", trust)], "sts:AssumeRole", None, ctx)
    ok = decision.allowed
    detail = (
        f"{role.name} trusts {access_iam.SERVICE} ({decision.by})."
        if ok
        else f"The trust policy of {role.name} does not let {access_iam.SERVICE} assume it."
    )
    trust_hop = Hop("iam", "trust policy", role.arn, ok, detail, phase=PHASE_CREDENTIALS)
    if not ok:
        trust_hop.hint = "iam.update_assume_role_policy(... rds.amazonaws.com ...)"
    hops.append(trust_hop)
    return hops, role if ok else None


def explain(identifier: str, function_arn: str) -> PathExplanation:
    """The hop-by-hop analysis for an Aurora MySQL writer (renders like access.explain_path)."""
    where = placement.locate(identifier)
    hops, role = role_hops(where)
    net = network.evaluate(where)
    hops.append(access_iam.policy_hop(role, where, function_arn, net.endpoint))
    hops += net.hops
    if net.endpoint is not None and role is not None:
        hops.append(access_iam.endpoint_policy_hop(role, where, function_arn, net.endpoint))
    return PathExplanation(where.identifier, function_arn, verdict_of(hops), hops, net.path)


def sql_error(explanation: PathExplanation) -> tuple[int, str] | None:
    """(errno, message) Aurora MySQL would raise for the first failing hop; None when ok."""
    hop = first_failure(explanation.hops)
    if hop is None:
        return None
    if hop.phase == PHASE_CREDENTIALS:
        return CREDENTIALS_ERROR
    if hop.layer == "network":
        return NETWORK_ERROR
    inner = re.fullmatch(r"AWS Lambda client returned '(.*)'\.", hop.sql_detail or "", re.S)
    return api_error("AccessDeniedException", inner.group(1) if inner else hop.detail)
