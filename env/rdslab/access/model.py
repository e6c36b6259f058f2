"""The access room's value types (``Verdict``, ``Hop``) and the SQL-level DETAIL texts.

AWS documents exactly one DETAIL for the DB -> Lambda path (network failures, aws-fidelity
§1.7). For IAM failures AWS documents no text; the texts below are **the lab's reading**: what
the AWS SDK inside RDS would most plausibly surface, wrapped the way the documented network
message is wrapped (``AWS Lambda client returned '<SDK message>'.``).
"""

from __future__ import annotations

from dataclasses import dataclass

# Documented (aws-fidelity §1.7): network, VPC, security group or DNS problems.
NETWORK_DETAIL = "AWS Lambda client returned 'Unable to connect to endpoint'."

# Lab's reading: with no usable role (none associated for feature Lambda, the role is gone, or
# its trust policy does not let rds.amazonaws.com assume it) RDS has no credentials to sign the
# Invoke request, and the SDK's credential chain fails before any connection is made.
CREDENTIALS_DETAIL = "AWS Lambda client returned 'Unable to locate credentials'."


def access_denied_detail(principal_arn: str, resource: str, reason: str) -> str:
    """DETAIL for an authorization failure (lab's reading of where the text goes).

    The inner sentence is IAM's real AccessDenied wording, e.g. ``... because no identity-based
    policy allows the lambda:InvokeFunction action`` or ``... with an explicit deny in an
    identity-based policy``.
    """
    return (
        f"AWS Lambda client returned 'User: {principal_arn} is not authorized to perform: "
        f"lambda:InvokeFunction on resource: {resource} {reason}'."
    )


def no_allow(policy_kind: str) -> str:
    """IAM's wording when nothing of ``policy_kind`` allows the action."""
    return f"because no {policy_kind} allows the lambda:InvokeFunction action"


def explicit_deny(policy_kind: str) -> str:
    """IAM's wording when a policy of ``policy_kind`` denies the action explicitly."""
    article = "an" if policy_kind[0] in "aeiou" else "a"
    return f"with an explicit deny in {article} {policy_kind}"


# The order AWS meets the checks in: credentials are needed before the SDK connects, and
# authorization happens at the Lambda endpoint after the connection is made.
PHASE_CREDENTIALS = 0
PHASE_NETWORK = 1
PHASE_AUTHORIZATION = 2


@dataclass
class Verdict:
    """Whether a DB instance can call a Lambda function right now, and if not, why."""

    ok: bool
    kind: str | None  # None when ok, else "iam" or "network"
    detail: str | None  # DETAIL text of `invoke API failed` (without "DETAIL:")
    missing: str | None  # human sentence naming the first missing step


@dataclass
class Hop:
    """One step of the DB -> Lambda path, with the resources that make or break it."""

    layer: str  # "iam" or "network"
    step: str  # short name, e.g. "role association", "route table"
    resource: str  # resource IDs involved
    ok: bool | None  # None: not evaluated (an earlier step decides) or informational
    detail: str  # what the lab found; when failing, the sentence naming what is missing
    hint: str | None = None  # how to fix it, when failing
    phase: int = PHASE_NETWORK  # when AWS meets this check (PHASE_*)
    sql_detail: str | None = None  # DETAIL text when this hop is the first failure

    @property
    def status(self) -> str:
        return {True: "ok", False: "FAIL", None: "-"}[self.ok]


def first_failure(hops: list[Hop]) -> Hop | None:
    """The failing hop AWS would meet first (by phase, then by position)."""
    failing = [(h.phase, i, h) for i, h in enumerate(hops) if h.ok is False]
    return min(failing, key=lambda t: (t[0], t[1]))[2] if failing else None


def verdict_of(hops: list[Hop]) -> Verdict:
    """The verdict the hops lead to."""
    hop = first_failure(hops)
    if hop is None:
        return Verdict(ok=True, kind=None, detail=None, missing=None)
    return Verdict(ok=False, kind=hop.layer, detail=hop.sql_detail, missing=hop.detail)
