"""The IAM half of the DB -> Lambda path: role association, trust policy, identity policies.

AWS's rules (aws-fidelity §2): the DB instance (for an Aurora instance: its cluster) has a role
associated with feature name ``Lambda``; the role's trust policy lets ``rds.amazonaws.com``
``sts:AssumeRole``; the role's identity policies (inline, attached managed, AWS-managed), within
its permissions boundary if it has one, allow ``lambda:InvokeFunction`` on the function's ARN
(the qualified ARN when a version or alias is invoked).
"""

from __future__ import annotations

from typing import Any

from .. import aws, config
from . import model, policy
from .model import PHASE_AUTHORIZATION, PHASE_CREDENTIALS, Hop
from .placement import Placement

FEATURE = "Lambda"
SERVICE = "rds.amazonaws.com"
ACTION = "lambda:InvokeFunction"

# Condition keys the lab can evaluate at each step (others make a condition "not evaluable").
TRUST_KEYS = frozenset({"aws:sourcearn", "aws:sourceaccount"})
INVOKE_KEYS = frozenset(
    {
        "aws:principalarn",
        "aws:principalaccount",
        "aws:principaltype",
        "aws:requestedregion",
        "aws:securetransport",
        "aws:sourcevpc",
        "aws:sourcevpce",
    }
)


def find_role(iam: Any, role_arn: str) -> Any | None:
    """The IAM role with ``role_arn`` (None when it does not exist)."""
    for role in list(iam.roles.values()):
        if role.arn == role_arn:
            return role
    return None


def session_principal(role: Any, placement: Placement) -> str:
    """The assumed-role ARN RDS calls Lambda as.

    Lab's reading: AWS does not document RDS's role-session name; the lab uses the DB
    instance identifier.
    """
    return f"arn:aws:sts::{config.ACCOUNT_ID}:assumed-role/{role.name}/{placement.identifier}"


def invoke_context(role: Any, placement: Placement, endpoint: Any | None) -> policy.Context:
    """The request context of the Invoke call RDS makes with the role's credentials."""
    values: dict[str, list[str]] = {
        "aws:principalarn": [role.arn],
        "aws:principalaccount": [config.ACCOUNT_ID],
        "aws:principaltype": ["AssumedRole"],
        "aws:requestedregion": [placement.region],
        "aws:securetransport": ["true"],
    }
    if endpoint is not None:
        values["aws:sourcevpce"] = [endpoint.id]
        values["aws:sourcevpc"] = [endpoint.vpc_id]
    return policy.Context(values=values, known=INVOKE_KEYS)


def _managed_document(managed: Any) -> str:
    version = next((v for v in managed.versions if v.is_default), None)
    return version.document if version is not None else "{}"


def identity_sources(role: Any) -> list[policy.Source]:
    """The role's inline and attached managed policies, labelled for explanations."""
    sources = [
        policy.Source(f"inline policy {name}", policy.parse(doc))
        for name, doc in sorted(dict(role.policies).items())
    ]
    for arn, managed in sorted(dict(role.managed_policies).items()):
        sources.append(
            policy.Source(f"managed policy {arn}", policy.parse(_managed_document(managed)))
        )
    return sources


def association_hops(placement: Placement) -> tuple[list[Hop], Any | None]:
    """Role association and trust hops, and the role when RDS can assume it."""
    iam = aws.backend("iam")
    owner = placement.cluster if placement.cluster is not None else placement.db
    if placement.cluster is not None:
        where = f"cluster {placement.cluster.db_cluster_identifier} (of {placement.identifier})"
        call, owner_arn = "add_role_to_db_cluster", placement.cluster.db_cluster_arn
    else:
        where, call, owner_arn = placement.identifier, "add_role_to_db_instance", placement.arn
    roles = list(owner._associated_roles)
    assoc = next((r for r in roles if r.feature_name == FEATURE), None)
    if assoc is None:
        others = ", ".join(f"{r.role_arn} for feature {r.feature_name!r}" for r in roles)
        found = f" (associated: {others})" if others else ""
        hint = f"rds.{call}(..., RoleArn=<role arn>, FeatureName='Lambda')"
        if placement.cluster is not None and getattr(placement.db, "_associated_roles", None):
            found += "; roles on an Aurora instance do not count, only the cluster's"
        hop = Hop(
            "iam",
            "role association",
            where,
            False,
            f"No IAM role is associated with {where} for feature Lambda ({call}).{found}",
            hint,
            PHASE_CREDENTIALS,
            model.CREDENTIALS_DETAIL,
        )
        return [
            hop,
            _skipped("trust policy"),
        ], None
    role = find_role(iam, assoc.role_arn)
    if role is None:
        hop = Hop(
            "iam",
            "role association",
            f"{where} -> {assoc.role_arn}",
            False,
            f"Role {assoc.role_arn} associated with {where} does not exist in IAM.",
            "Create the role again (same name) or associate another one.",
            PHASE_CREDENTIALS,
            model.CREDENTIALS_DETAIL,
        )
        return [hop, _skipped("trust policy")], None
    hops = [
        Hop(
            "iam",
            "role association",
            f"{where} -> {role.arn}",
            True,
            f"{role.name} is associated with {where} for feature Lambda.",
            phase=PHASE_CREDENTIALS,
        )
    ]
    ctx = policy.Context(
        values={"aws:sourcearn": [owner_arn], "aws:sourceaccount": [config.ACCOUNT_ID]},
        known=TRUST_KEYS,
        principal={"Service": [SERVICE]},
    )
    trust = policy.parse(role.assume_role_policy_document or "{}")
    decision = policy.evaluate([policy.Source("trust policy", trust)], "sts:AssumeRole", None, ctx)
    notes = " " + " ".join(decision.notes) if decision.notes else ""
    if decision.allowed:
        hops.append(
            Hop(
                "iam",
                "trust policy",
                role.arn,
                True,
                f"{role.name} trusts {SERVICE} ({decision.by}).{notes}",
                phase=PHASE_CREDENTIALS,
            )
        )
        return hops, role
    why = "denies" if decision.effect == policy.DENY else "does not allow"
    hops.append(
        Hop(
            "iam",
            "trust policy",
            role.arn,
            False,
            f"The trust policy of {role.name} {why} sts:AssumeRole for {SERVICE}, "
            f"so RDS gets no credentials.{notes}",
            "iam.update_assume_role_policy(RoleName=..., PolicyDocument=<Allow "
            '"Principal": {"Service": "rds.amazonaws.com"}, "Action": "sts:AssumeRole">)',
            PHASE_CREDENTIALS,
            model.CREDENTIALS_DETAIL,
        )
    )
    return hops, None


def _skipped(step: str) -> Hop:
    return Hop(
        "iam", step, "-", None, "Not evaluated: RDS has no role to use.", phase=PHASE_CREDENTIALS
    )


def policy_hop(role: Any | None, placement: Placement, resource: str, endpoint: Any | None) -> Hop:
    """Whether the role's identity policies (and boundary) allow the Invoke on ``resource``."""
    if role is None:
        return Hop(
            "iam",
            "identity policy",
            "-",
            None,
            "Not evaluated: RDS has no role to use.",
            phase=PHASE_AUTHORIZATION,
        )
    iam = aws.backend("iam")
    ctx = invoke_context(role, placement, endpoint)
    principal = session_principal(role, placement)
    decision = policy.evaluate(identity_sources(role), ACTION, resource, ctx)
    notes = " " + " ".join(decision.notes) if decision.notes else ""
    hint = (
        f"iam.put_role_policy(RoleName='{role.name}', ...) allowing lambda:InvokeFunction on "
        f"{resource}, or attach arn:aws:iam::aws:policy/service-role/AWSLambdaRole"
    )
    if decision.effect == policy.DENY:
        return Hop(
            "iam",
            "identity policy",
            role.arn,
            False,
            f"{decision.by} of {role.name} explicitly denies lambda:InvokeFunction on "
            f"{resource}.{notes}",
            "Remove or narrow the Deny statement.",
            PHASE_AUTHORIZATION,
            model.access_denied_detail(
                principal, resource, model.explicit_deny("identity-based policy")
            ),
        )
    if decision.effect == policy.IMPLICIT:
        return Hop(
            "iam",
            "identity policy",
            role.arn,
            False,
            f"No policy of {role.name} allows lambda:InvokeFunction on {resource}.{notes}",
            hint,
            PHASE_AUTHORIZATION,
            model.access_denied_detail(
                principal, resource, model.no_allow("identity-based policy")
            ),
        )
    boundary_arn = role.permissions_boundary_arn
    if boundary_arn:
        managed = iam.managed_policies.get(boundary_arn)
        doc = policy.parse(_managed_document(managed)) if managed is not None else {}
        bound = policy.evaluate(
            [policy.Source(f"permissions boundary {boundary_arn}", doc)], ACTION, resource, ctx
        )
        if not bound.allowed:
            reason = (
                model.explicit_deny("permissions boundary")
                if bound.effect == policy.DENY
                else model.no_allow("permissions boundary")
            )
            return Hop(
                "iam",
                "identity policy",
                f"{role.arn}, boundary {boundary_arn}",
                False,
                f"The permissions boundary {boundary_arn} of {role.name} does not allow "
                f"lambda:InvokeFunction on {resource}.",
                "Widen or remove the boundary.",
                PHASE_AUTHORIZATION,
                model.access_denied_detail(principal, resource, reason),
            )
    return Hop(
        "iam",
        "identity policy",
        role.arn,
        True,
        f"{decision.by} allows lambda:InvokeFunction on {resource}.{notes}",
        phase=PHASE_AUTHORIZATION,
    )


def endpoint_policy_hop(role: Any, placement: Placement, resource: str, endpoint: Any) -> Hop:
    """Whether the interface endpoint's policy lets the role invoke ``resource``."""
    principal = session_principal(role, placement)
    ctx = invoke_context(role, placement, endpoint)
    ctx.principal = {
        "AWS": [role.arn, principal, config.ACCOUNT_ID, f"arn:aws:iam::{config.ACCOUNT_ID}:root"]
    }
    doc = policy.parse(endpoint.policy_document or "{}")
    decision = policy.evaluate(
        [policy.Source(f"endpoint policy of {endpoint.id}", doc)], ACTION, resource, ctx
    )
    if decision.allowed:
        return Hop(
            "network",
            "endpoint policy",
            endpoint.id,
            True,
            f"The policy of {endpoint.id} allows the call.",
            phase=PHASE_AUTHORIZATION,
        )
    reason = (
        model.explicit_deny("VPC endpoint policy")
        if decision.effect == policy.DENY
        else model.no_allow("VPC endpoint policy")
    )
    hop = Hop(
        "network",
        "endpoint policy",
        endpoint.id,
        False,
        f"The policy of {endpoint.id} does not allow lambda:InvokeFunction on {resource}.",
        "ec2.modify_vpc_endpoint(VpcEndpointId=..., PolicyDocument=...)",
        PHASE_AUTHORIZATION,
        model.access_denied_detail(principal, resource, reason),
    )
    hop.layer = "iam"  # an authorization failure, reported as such
    return hop
