"""An IAM policy evaluator, small but faithful enough for the DB -> Lambda path.

It answers "does this set of policies allow ``action`` on ``resource``?" the way IAM does:
``Action``/``NotAction`` (case-insensitive, wildcards ``*`` and ``?``), ``Resource``/
``NotResource`` (case-sensitive wildcards, ``*`` may span ``:``), ``Principal``/``NotPrincipal``
for trust and endpoint policies, ``Condition`` blocks with the common operators, and explicit
``Deny`` beating any ``Allow``.

moto's own evaluator (``moto.iam.access_control``) was not reused: it ignores ``NotResource``
and ``?``, matches actions case-sensitively, does not escape regex metacharacters and turns an
unmet condition into a *deny*.

Conditions on keys the lab does not know are *not evaluable*: the statement is treated as not
matching (so an Allow does not allow and a Deny does not deny) and the decision says so.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ALLOW = "allow"
DENY = "deny"
IMPLICIT = "implicit-deny"


@dataclass
class Source:
    """One policy document and a label saying where it comes from (for explanations)."""

    label: str
    document: dict[str, Any]


@dataclass
class Decision:
    """The outcome of evaluating a set of policies for one request."""

    effect: str  # ALLOW, DENY (explicit) or IMPLICIT (nothing allows)
    by: str | None = None  # label of the policy/statement that decided
    notes: list[str] = field(default_factory=list)  # statements skipped (conditions)

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW


@dataclass
class Context:
    """The request context: principal, condition keys the lab knows, and their values.

    ``values`` holds the keys present in the request (lower-case names). ``known`` lists keys
    the lab can reason about even when absent (absent known keys follow IAM's missing-key rules);
    any other key makes a condition not evaluable.
    """

    values: dict[str, list[str]] = field(default_factory=dict)
    known: frozenset[str] = frozenset()
    principal: dict[str, list[str]] | None = None  # e.g. {"Service": ["rds.amazonaws.com"]}


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(urllib.parse.unquote(text))


def parse(document: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document as a dict (moto stores JSON text, sometimes URL-encoded)."""
    if isinstance(document, dict):
        return document
    parsed = _parse_cached(document)
    return parsed if isinstance(parsed, dict) else {}


@lru_cache(maxsize=2048)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("^" + "".join(parts) + "$", flags)


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM wildcard matching: ``*`` any run of characters (``:`` included), ``?`` one."""
    return _glob(pattern, ignore_case).match(value) is not None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a document (``Statement`` may be one object or a list)."""
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


def _principal_matches(element: Any, principal: dict[str, list[str]]) -> bool:
    if element == "*":
        return True
    if not isinstance(element, dict):
        return False
    for kind, expected in element.items():
        for value in _as_list(expected):
            if value == "*" and kind in ("AWS", "Service", "Federated"):
                # {"AWS": "*"} is documented as equivalent to "*"; a service principal
                # also matches a wildcard of its own kind.
                if kind == "AWS" or kind in principal:
                    return True
            if value in principal.get(kind, []):
                return True
    return False


# ------------------------------------------------------------------ conditions
_STRING_OPS = {
    "stringequals": (lambda p, v: p == v, False),
    "stringnotequals": (lambda p, v: p == v, True),
    "stringequalsignorecase": (lambda p, v: p.lower() == v.lower(), False),
    "stringnotequalsignorecase": (lambda p, v: p.lower() == v.lower(), True),
    "stringlike": (lambda p, v: glob_match(p, v), False),
    "stringnotlike": (lambda p, v: glob_match(p, v), True),
    "arnequals": (lambda p, v: glob_match(p, v), False),
    "arnlike": (lambda p, v: glob_match(p, v), False),
    "arnnotequals": (lambda p, v: glob_match(p, v), True),
    "arnnotlike": (lambda p, v: glob_match(p, v), True),
    "bool": (lambda p, v: p.lower() == v.lower(), False),
}


def _condition_result(
    operator: str, key: str, expected: Any, ctx: Context
) -> bool | None:  # None = not evaluable
    op = operator.lower()
    qualifier = ""
    if ":" in op:
        qualifier, op = op.split(":", 1)
        if qualifier not in ("foranyvalue", "forallvalues"):
            return None
    if_exists = op.endswith("ifexists")
    if if_exists:
        op = op[: -len("ifexists")]
    name = key.lower()
    present = name in ctx.values
    if not present and name not in ctx.known:
        return None
    patterns = [str(p) for p in _as_list(expected)]
    if op == "null":
        want_absent = any(p.lower() == "true" for p in patterns)
        return want_absent != present
    if op not in _STRING_OPS:
        return None
    test, negated = _STRING_OPS[op]
    if not present:
        # IAM: a missing key makes a positive operator false, a negated one true.
        return True if (if_exists or negated or qualifier == "forallvalues") else False
    values = ctx.values[name]

    def one(value: str) -> bool:
        hit = any(test(p, value) for p in patterns)
        return not hit if negated else hit

    if qualifier == "forallvalues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def conditions_hold(block: Any, ctx: Context) -> tuple[bool | None, str | None]:
    """Whether a Condition block holds: (True/False, None) or (None, key not evaluable)."""
    if not block:
        return True, None
    if not isinstance(block, dict):
        return None, str(block)
    for operator, keys in block.items():
        if not isinstance(keys, dict):
            return None, operator
        for key, expected in keys.items():
            result = _condition_result(operator, key, expected, ctx)
            if result is None:
                return None, f"{operator} {key}"
            if not result:
                return False, None
    return True, None


# ------------------------------------------------------------------ statements
def statement_applies(
    stmt: dict[str, Any], action: str, resource: str | None, ctx: Context
) -> tuple[bool, str | None]:
    """Whether ``stmt`` covers the request. Returns (applies, note when not evaluable)."""
    if "NotAction" in stmt:
        if any(glob_match(str(p), action, True) for p in _as_list(stmt["NotAction"])):
            return False, None
    elif not any(glob_match(str(p), action, True) for p in _as_list(stmt.get("Action"))):
        return False, None
    if resource is not None:
        if "NotResource" in stmt:
            if any(glob_match(str(p), resource) for p in _as_list(stmt["NotResource"])):
                return False, None
        elif "Resource" in stmt:
            if not any(glob_match(str(p), resource) for p in _as_list(stmt["Resource"])):
                return False, None
    if ctx.principal is not None:
        if "Principal" in stmt and not _principal_matches(stmt["Principal"], ctx.principal):
            return False, None
        if "NotPrincipal" in stmt and _principal_matches(stmt["NotPrincipal"], ctx.principal):
            return False, None
    holds, key = conditions_hold(stmt.get("Condition"), ctx)
    if holds is None:
        return False, key
    return bool(holds), None


def evaluate(sources: list[Source], action: str, resource: str | None, ctx: Context) -> Decision:
    """Evaluate ``sources`` together: explicit Deny > Allow > implicit deny."""
    allow_by: str | None = None
    notes: list[str] = []
    for source in sources:
        for index, stmt in enumerate(statements(source.document)):
            applies, key = statement_applies(stmt, action, resource, ctx)
            label = f"{source.label} statement {stmt.get('Sid') or index + 1}"
            if key is not None:
                notes.append(
                    f"{label} has a condition the lab cannot evaluate ({key}); "
                    "it is treated as not matching."
                )
                continue
            if not applies:
                continue
            if str(stmt.get("Effect", "")).lower() == "deny":
                return Decision(DENY, label, notes)
            if str(stmt.get("Effect", "")).lower() == "allow" and allow_by is None:
                allow_by = label
    if allow_by is not None:
        return Decision(ALLOW, allow_by, notes)
    return Decision(IMPLICIT, None, notes)
