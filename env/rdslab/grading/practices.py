"""Helpers for "practice" criteria: an answer that works but grants more than it needs.

``broad_grants(policy, action="lambda:InvokeFunction", resource=function_arn)`` lists what is
broader than needed in the Allow statements that grant ``action`` on ``resource``: a wildcard
action (``lambda:*``, ``*``) or a wildcard resource (``"*"``, ``arn:...:function:*``).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any
from urllib.parse import unquote


def statements(policy: str | dict[str, Any]) -> list[dict[str, Any]]:
    """The policy's statements, with Action and Resource always lists."""
    if isinstance(policy, str):
        policy = json.loads(unquote(policy) if policy.startswith("%7B") else policy)
    raw = policy.get("Statement", [])
    out = []
    for st in [raw] if isinstance(raw, dict) else raw:
        st = dict(st)
        for key in ("Action", "Resource", "NotAction", "NotResource"):
            if key in st and isinstance(st[key], str):
                st[key] = [st[key]]
        out.append(st)
    return out


def _matches(pattern: str, value: str, *, case: bool) -> bool:
    return (
        fnmatch.fnmatchcase(value, pattern)
        if case
        else fnmatch.fnmatchcase(value.lower(), pattern.lower())
    )


def allows(policy: str | dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement (without NotAction/NotResource/Condition) grants it."""
    for st in statements(policy):
        if st.get("Effect") != "Allow":
            continue
        if any(_matches(a, action, case=False) for a in st.get("Action", [])) and any(
            _matches(r, resource, case=True) for r in st.get("Resource", [])
        ):
            return True
    return False


def broad_grants(policy: str | dict[str, Any], *, action: str, resource: str) -> list[str]:
    """What the statements granting ``action`` on ``resource`` allow beyond it (empty if tight)."""
    problems: list[str] = []
    for st in statements(policy):
        if st.get("Effect") != "Allow":
            continue
        actions = [a for a in st.get("Action", []) if _matches(a, action, case=False)]
        resources = [r for r in st.get("Resource", []) if _matches(r, resource, case=True)]
        if not actions or not resources:
            continue
        for a in actions:
            if "*" in a or "?" in a:
                problems.append(f'"Action": "{a}" allows more than {action}')
        for r in resources:
            if "*" in r or "?" in r:
                problems.append(f'"Resource": "{r}" covers more than {resource}')
    return sorted(set(problems))


def role_policies(iam: Any, role_name: str) -> list[dict[str, Any]]:
    """Every policy document of an IAM role: inline ones and the default version of attached ones."""
    docs: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        docs.append(json.loads(unquote(doc)) if isinstance(doc, str) else doc)
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        arn = attached["PolicyArn"]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        docs.append(json.loads(unquote(doc)) if isinstance(doc, str) else doc)
    return docs
