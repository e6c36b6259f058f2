"""May an AWS service send to this SQS queue or SNS topic? Its resource policy decides.

On AWS an SNS subscription or an EventBridge target only delivers to a queue whose policy
allows ``sqs:SendMessage`` for the service principal (``sns.amazonaws.com`` /
``events.amazonaws.com``), usually narrowed with ``aws:SourceArn``; without it the delivery
fails and the caller of the API that caused the event sees nothing. Likewise RDS
(``events.rds.amazonaws.com``) and EventBridge publish to a topic only if its policy allows
``sns:Publish``; a new topic's default policy lets the owner account's principals publish
through its ``AWS:SourceOwner`` condition, which covers the account's RDS resources (RDS's
documentation) but not EventBridge (EventBridge's: add a statement for ``events.amazonaws.com``). This evaluates
the policy as IAM does for resource policies: an explicit Deny wins, then any matching Allow.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from ..config import ACCOUNT_ID


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _like(pattern: str, value: str, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if "*" in _list(principal.get("AWS")):
        return True
    return service in _list(principal.get("Service"))


def _condition_matches(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        op = operator.replace("IfExists", "")
        for key, expected in tests.items():
            actual = context.get(key.lower())
            wanted = [str(e) for e in _list(expected)]
            if actual is None:
                if operator.endswith("IfExists"):
                    continue
                return False
            if op in {"ArnEquals", "StringEquals"}:
                ok = actual in wanted
            elif op in {"ArnLike", "StringLike"}:
                ok = any(_like(w, actual) for w in wanted)
            elif op == "StringEqualsIgnoreCase":
                ok = actual.lower() in {w.lower() for w in wanted}
            elif op in {"ArnNotEquals", "StringNotEquals"}:
                ok = actual not in wanted
            elif op in {"ArnNotLike", "StringNotLike"}:
                ok = not any(_like(w, actual) for w in wanted)
            else:
                return False  # an operator the lab cannot evaluate never matches
            if not ok:
                return False
    return True


def _statement_matches(
    st: dict[str, Any], service: str, action: str, resource_arn: str, context: dict[str, str]
) -> bool:
    if "Principal" in st and not _principal_matches(st["Principal"], service):
        return False
    if "NotPrincipal" in st:
        return False
    actions = _list(st.get("Action"))
    if actions and not any(_like(a, action, case=False) for a in actions):
        return False
    if "NotAction" in st and any(_like(a, action, case=False) for a in _list(st["NotAction"])):
        return False
    resources = _list(st.get("Resource"))
    if resources and not any(_like(r, resource_arn) for r in resources):
        return False
    return _condition_matches(st.get("Condition") or {}, context)


def allows(
    policy: str | dict[str, Any] | None,
    service: str,
    resource_arn: str,
    source_arn: str | None,
    action: str = "sqs:SendMessage",
    source_owner: bool = False,
) -> bool:
    """True when ``policy`` lets ``service`` do ``action`` on ``resource_arn`` for
    ``source_arn`` (a queue by default: ``sqs:SendMessage``). ``source_owner``: the service
    publishes on the account's behalf, so SNS's ``AWS:SourceOwner`` is the account (RDS does;
    EventBridge does not, which is why a new topic's default policy refuses EventBridge)."""
    if not policy:
        return False
    if isinstance(policy, dict):
        document = policy
    else:
        try:
            document = json.loads(policy)
        except ValueError:
            return False
    context = {"aws:sourceaccount": ACCOUNT_ID}
    if source_owner:
        context["aws:sourceowner"] = ACCOUNT_ID
    if source_arn:
        context["aws:sourcearn"] = source_arn
    statements = _list(document.get("Statement"))
    matching = [
        s for s in statements if _statement_matches(s, service, action, resource_arn, context)
    ]
    if any(s.get("Effect") == "Deny" for s in matching):
        return False
    return any(s.get("Effect") == "Allow" for s in matching)
