"""The function's resource-based policy (``add_permission``), evaluated as Lambda does when an
AWS service (SNS, EventBridge...) invokes a function: an explicit Allow for the service principal
on this function (or qualifier), whose conditions (``ArnLike``/``ArnEquals AWS:SourceArn``,
``StringEquals``/``StringLike AWS:SourceAccount``) hold, and no matching Deny.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

_INVOKE_ACTIONS = {"lambda:invokefunction", "lambda:*", "*"}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, str):
        return principal == service
    if isinstance(principal, dict):
        services = _as_list(principal.get("Service"))
        return service in services or "*" in services or "*" in _as_list(principal.get("AWS"))
    return False


def _resource_matches(resource: Any, base_arn: str, qualifier: str | None) -> bool:
    wanted = base_arn if qualifier in (None, "$LATEST") else f"{base_arn}:{qualifier}"
    for pattern in _as_list(resource) or [base_arn]:
        if pattern in (wanted, "*") or fnmatch.fnmatchcase(wanted, pattern):
            return True
        if qualifier in (None, "$LATEST") and pattern == f"{base_arn}:$LATEST":
            return True
    return False


def _condition_holds(condition: dict[str, Any], context: dict[str, str | None]) -> bool:
    for operator, tests in condition.items():
        op = operator.lower()
        if op.endswith("ifexists"):
            op, if_exists = op[: -len("ifexists")], True
        else:
            if_exists = False
        for key, expected in (tests or {}).items():
            actual = context.get(key.lower())
            if actual is None:
                if if_exists:
                    continue
                return False
            values = [str(v) for v in _as_list(expected)]
            if op in ("arnlike", "stringlike"):
                ok = any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif op in ("arnequals", "stringequals"):
                ok = actual in values
            elif op == "stringequalsignorecase":
                ok = actual.lower() in (v.lower() for v in values)
            elif op in ("arnnotlike", "stringnotlike"):
                ok = not any(fnmatch.fnmatchcase(actual, v) for v in values)
            elif op in ("arnnotequals", "stringnotequals"):
                ok = actual not in values
            else:  # an operator the lab does not model never grants access
                ok = False
            if not ok:
                return False
    return True


def statements(fn: Any) -> list[dict[str, Any]]:
    """The policy statements stored on moto's function object."""
    policy = getattr(fn, "policy", None)
    raw = getattr(policy, "statements", None) or []
    out = []
    for st in raw:
        out.append(json.loads(st) if isinstance(st, str) else st)
    return out


def allows_service(
    fn: Any,
    base_arn: str,
    qualifier: str | None,
    service: str,
    source_arn: str | None,
    source_account: str | None,
) -> bool:
    """Whether ``service`` may call lambda:InvokeFunction on the function (or qualifier)."""
    context = {"aws:sourcearn": source_arn, "aws:sourceaccount": source_account}
    allowed = False
    for st in statements(fn):
        actions = [a.lower() for a in _as_list(st.get("Action"))]
        if not any(a in _INVOKE_ACTIONS for a in actions):
            continue
        if not _principal_matches(st.get("Principal"), service):
            continue
        if not _resource_matches(st.get("Resource"), base_arn, qualifier):
            continue
        if not _condition_holds(st.get("Condition") or {}, context):
            continue
        if st.get("Effect", "Allow") == "Deny":
            return False
        allowed = True
    return allowed


def denied_message(service: str, arn: str) -> str:
    return (
        f"User: {service} is not authorized to perform: lambda:InvokeFunction on resource: "
        f"{arn} because no resource-based policy allows the lambda:InvokeFunction action"
    )
