"""EventBridge event patterns, JSONPath lookups and input transformation, as EventBridge does them.

moto's matcher covers most operators but the lab needs the exact rules in one place: leaf
values are arrays of conditions; an event array matches when any element matches; a missing
field only matches ``{"exists": false}``; ``exists`` only matches leaves; ``anything-but``
takes a value, a list or a nested ``prefix``/``suffix``/``equals-ignore-case``/``wildcard``;
``numeric`` takes operator/value pairs; ``$or`` takes a list of sub-patterns.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

_MISSING: Any = object()


# ---------------------------------------------------------------------------- matching
def matches(pattern: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    """Does ``event`` match the EventBridge ``pattern`` (None or {} matches everything)?"""
    if not pattern:
        return True
    return _match_object(pattern, event)


def _match_object(pattern: dict[str, Any], node: Any) -> bool:
    for key, rule in pattern.items():
        if key == "$or":
            if not any(_match_object(p, node) for p in rule):
                return False
            continue
        value = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if isinstance(rule, dict):
            if not _match_object(rule, value if isinstance(value, dict) else {}):
                return False
        elif isinstance(rule, list):
            if not _match_leaf(rule, value):
                return False
        else:
            return False
    return True


def _match_leaf(conditions: list[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(c, dict) and c.get("exists") is False for c in conditions)
    values = value if isinstance(value, list) else [value]
    return any(_condition(c, v) for c in conditions for v in values)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(expected: Any, v: Any) -> bool:
    if _is_number(expected) and _is_number(v):
        return float(expected) == float(v)
    if _is_number(expected) or _is_number(v):
        return False
    return bool(expected == v) and type(expected) is type(v)


def _condition(cond: Any, v: Any) -> bool:
    if not isinstance(cond, dict):
        return _equal(cond, v)
    if len(cond) != 1:
        return False
    op, arg = next(iter(cond.items()))
    if op == "exists":
        return bool(arg) and not isinstance(v, dict)
    if op == "anything-but":
        if isinstance(arg, list):
            return not any(_equal(a, v) for a in arg)
        if isinstance(arg, dict):
            return not _condition(arg, v)
        return not _equal(arg, v)
    if op == "numeric":
        if not _is_number(v) or not isinstance(arg, list) or len(arg) % 2:
            return False
        ops = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            "=": lambda a, b: a == b,
            ">=": lambda a, b: a >= b,
            ">": lambda a, b: a > b,
        }
        return all(
            op_ in ops and ops[op_](v, bound)
            for op_, bound in zip(arg[::2], arg[1::2], strict=True)
        )
    if not isinstance(v, str):
        return False
    if op in ("prefix", "suffix"):
        ignore_case = isinstance(arg, dict) and "equals-ignore-case" in arg
        text = arg["equals-ignore-case"] if ignore_case else arg
        if not isinstance(text, str):
            return False
        a, b = (v.lower(), text.lower()) if ignore_case else (v, text)
        return a.startswith(b) if op == "prefix" else a.endswith(b)
    if op == "equals-ignore-case":
        texts = arg if isinstance(arg, list) else [arg]
        return any(isinstance(t, str) and v.lower() == t.lower() for t in texts)
    if op == "wildcard":
        texts = arg if isinstance(arg, list) else [arg]
        return any(isinstance(t, str) and _wildcard(t, v) for t in texts)
    if op == "cidr":
        try:
            return ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    return False


def _wildcard(pattern: str, text: str) -> bool:
    regex = "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


# ---------------------------------------------------------------------------- JSONPath
_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def resolve(document: Any, path: str) -> Any:
    """A JSONPath of the kind EventBridge accepts (``$.detail.EventID``, ``$.resources[0]``);
    returns ``_MISSING`` (see :func:`is_missing`) when the path does not exist."""
    path = path.strip()
    if not path.startswith("$"):
        return _MISSING
    node = document
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return _MISSING
        key, index, quoted1, quoted2 = m.groups()
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                return _MISSING
            node = node[int(index)]
        else:
            name = key if key is not None else (quoted1 if quoted1 is not None else quoted2)
            if not isinstance(node, dict) or name not in node:
                return _MISSING
            node = node[name]
        pos = m.end()
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


# ---------------------------------------------------------------------------- target input
def transform(
    template: str,
    paths: dict[str, str],
    event: dict[str, Any],
    *,
    rule_arn: str = "",
    rule_name: str = "",
    ingestion_time: str = "",
) -> str:
    """Apply an InputTransformer: ``<name>`` placeholders from ``InputPathsMap`` (and the reserved
    ``aws.events.*`` ones) are filled in. Inside a JSON string a value is inserted as escaped text;
    outside it is inserted as JSON (strings quoted, missing values ``null``)."""
    values: dict[str, Any] = {name: resolve(event, p) for name, p in paths.items()}
    values.setdefault("aws.events.rule-arn", rule_arn)
    values.setdefault("aws.events.rule-name", rule_name)
    values.setdefault("aws.events.event.ingestion-time", ingestion_time)
    values.setdefault("aws.events.event", event)
    values.setdefault("aws.events.event.json", event)
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        elif ch == "<":
            end = template.find(">", i)
            name = template[i + 1 : end] if end != -1 else ""
            if end != -1 and name in values:
                out.append(_placeholder(values[name], in_string))
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _placeholder(value: Any, in_string: bool) -> str:
    if value is _MISSING:
        return "" if in_string else "null"
    if in_string:
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1]
    return json.dumps(value)


def target_input(
    target: dict[str, Any], event: dict[str, Any], *, rule_arn: str, rule_name: str
) -> str:
    """The text EventBridge sends to a target: ``Input`` (constant), ``InputPath`` (part of the
    event), ``InputTransformer``, or the whole event as compact JSON."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        part = resolve(event, target["InputPath"])
        return "null" if part is _MISSING else json.dumps(part, separators=(",", ":"))
    transformer = target.get("InputTransformer")
    if transformer:
        return transform(
            transformer.get("InputTemplate", ""),
            transformer.get("InputPathsMap") or {},
            event,
            rule_arn=rule_arn,
            rule_name=rule_name,
            ingestion_time=str(event.get("time", "")),
        )
    return json.dumps(event, separators=(",", ":"))
