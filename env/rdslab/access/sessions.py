"""Role sessions are held to their role's policies on every call to the lab's AWS endpoint.

A Lambda handler calls AWS with its execution role's temporary credentials (the runtime gets
them from STS ``AssumeRole``), and so does any code that assumes a role itself. On AWS such a
call succeeds only if the role's identity-based policies (inline and managed, and the session
policy passed to ``AssumeRole``, if any) allow the action on the resource; a handler whose role
lacks ``ses:SendEmail`` fails with ``AccessDenied``. The lab checks the same thing, with the
access room's policy evaluator, for requests signed with an assumed-role access key. Requests
signed with the lab's own keys (a learner's boto3 session: the account's administrator) are not
checked, as before.

The resource is derived for the actions the course uses (SES identities, SQS queues, SNS
topics, Lambda functions, CloudWatch Logs groups). For other actions the lab's reading is
lenient: the statement's ``Resource`` is not compared, only its ``Action``, ``Effect`` and
conditions. S3 requests are not checked. The error is IAM's wording, in the shape of the
service's protocol (``AccessDenied`` in XML for query services, ``AuthorizationError`` for SNS,
``AccessDeniedException`` in JSON for JSON services, ``AccessDenied`` for SQS). Authorization
comes before the resource lookup, as on AWS: publishing to a mistyped topic ARN that the
policy does not cover is an authorization error, not "topic not found".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.core.exceptions import JsonRESTError, _RESTError

from .. import aws, config
from . import iam, policy

# services whose API speaks JSON (the rest here answer in XML)
JSON_SERVICES = {"lambda", "logs", "dynamodb", "events", "kms", "secretsmanager", "ssm", "sqs"}
ALWAYS_ALLOWED = {"sts:getcalleridentity"}  # IAM policies cannot deny it
# moto's service names that differ from IAM's action prefixes
PREFIXES = {"awslambda": "lambda", "sesv2": "ses"}
# query services that name the error their own way (SNS: AuthorizationError, EC2:
# UnauthorizedOperation); the others say AccessDenied
ERROR_CODES = {"sns": "AuthorizationError", "ec2": "UnauthorizedOperation"}
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")


class RoleSessionDenied(_RESTError):
    """AccessDenied (or the service's own code) in a query service's XML error shape."""

    code = 403

    def __init__(self, message: str, error_code: str = "AccessDenied") -> None:
        super().__init__(error_code, message)


class RoleSessionDeniedJson(JsonRESTError):
    """AccessDenied in a JSON service's error shape."""

    code = 403

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(error_type, message)


def access_key_of(headers: Any, querystring: dict[str, list[str]] | None) -> str | None:
    """The access key that signed the request (Authorization header or presigned query)."""
    match = _CREDENTIAL.search(str(headers.get("Authorization", "") or ""))
    if match:
        return match.group(1)
    credential = (querystring or {}).get("X-Amz-Credential")
    if credential:
        return unquote(credential[0]).split("/")[0]
    return None


def find_session(access_key: str) -> Any | None:
    """The STS session (moto's AssumedRole) an access key belongs to, if any."""
    if not access_key.startswith("ASIA"):
        return None
    return aws.backend("sts").get_assumed_role_from_access_key(access_key)


# ------------------------------------------------------------------ resources
def _param(response: Any, name: str) -> str | None:
    """A request parameter, from the query/form or the JSON body."""
    qs = getattr(response, "querystring", None) or {}
    if name in qs and qs[name]:
        return str(qs[name][0])
    body = getattr(response, "body", None)
    if body:
        try:
            data = json.loads(body if isinstance(body, str) else body.decode())
        except (ValueError, UnicodeDecodeError, AttributeError):
            data = None
        if isinstance(data, dict) and data.get(name) is not None:
            return str(data[name])
        if isinstance(body, bytes | str):
            form = parse_qs(body if isinstance(body, str) else body.decode("utf-8", "replace"))
            if form.get(name):
                return str(form[name][0])
    return None


def _arn(service: str, resource: str, region: str | None = None) -> str:
    return f"arn:aws:{service}:{region or config.REGION}:{config.ACCOUNT_ID}:{resource}"


def _ses(response: Any, region: str) -> list[str]:
    source = _param(response, "Source") or _param(response, "FromEmailAddress") or ""
    address = source.split("<")[-1].rstrip(">").strip()
    if "@" not in address:
        return []
    domain = address.split("@", 1)[1]
    # SES authorizes the identity it sends as: the address, or its verified domain
    return [_arn("ses", f"identity/{address}", region), _arn("ses", f"identity/{domain}", region)]


def _sqs(response: Any, region: str) -> list[str]:
    url = _param(response, "QueueUrl") or ""
    name = url.rstrip("/").split("/")[-1]
    if not name:
        name = _param(response, "QueueName") or ""
    return [_arn("sqs", name, region)] if name else []


def _sns(response: Any, region: str) -> list[str]:
    arn = _param(response, "TopicArn") or _param(response, "TargetArn")
    if not arn and _param(response, "Name"):
        arn = _arn("sns", str(_param(response, "Name")), region)
    return [arn] if arn else []


def _lambda(response: Any, region: str) -> list[str]:
    path = unquote(str(getattr(response, "path", "") or ""))
    match = re.search(r"/functions/([^/]+)", path)
    if not match:
        return []
    name = match.group(1)
    if name.startswith("arn:"):
        return [name]
    return [_arn("lambda", f"function:{name}", region)]


def _logs(response: Any, region: str) -> list[str]:
    group = _param(response, "logGroupName")
    return [_arn("logs", f"log-group:{group}:*", region)] if group else []


RESOURCES: dict[str, Callable[[Any, str], list[str]]] = {
    "ses": _ses,
    "sqs": _sqs,
    "sns": _sns,
    "lambda": _lambda,
    "logs": _logs,
}


# ------------------------------------------------------------------ the check
def _sources(session: Any) -> list[policy.Source] | None:
    role = iam.find_role(aws.backend("iam"), session.role_arn)
    if role is None:
        return None
    return iam.identity_sources(role)


def decide(session: Any, action: str, resources: list[str]) -> tuple[bool, str, str]:
    """(allowed, resource named in the error, reason) for one request of a role session."""
    ctx = policy.Context(
        values={"aws:principaltype": ["AssumedRole"], "aws:principalarn": [session.role_arn]},
        known=frozenset({"aws:principaltype", "aws:principalarn"}),
    )
    sources = _sources(session)
    named = resources[0] if resources else "*"
    if sources is None:  # the role was deleted: its sessions can do nothing
        return False, named, "because no identity-based policy allows the " + action + " action"
    candidates: list[str | None] = list(resources) or [None]
    denied_by_session = False
    for resource in candidates:
        decision = policy.evaluate(sources, action, resource, ctx)
        if decision.effect == policy.DENY:
            return False, resource or named, "with an explicit deny in an identity-based policy"
        if not decision.allowed:
            continue
        if session.policy:  # a session policy can only narrow what the role allows
            scoped = policy.evaluate(
                [policy.Source("session policy", policy.parse(session.policy))],
                action,
                resource,
                ctx,
            )
            if not scoped.allowed:
                denied_by_session = True
                continue
        return True, resource or named, ""
    if denied_by_session:
        return False, named, "because no session policy allows the " + action + " action"
    return False, named, "because no identity-based policy allows the " + action + " action"


def check(response: Any) -> None:
    """Raise AccessDenied (in the service's shape) if a role session may not make this call."""
    key = access_key_of(getattr(response, "headers", {}) or {}, response.querystring)
    session = find_session(key) if key else None
    if session is None:
        return
    service = str(getattr(response, "service_name", "") or "")
    service = PREFIXES.get(service, service)
    if not service or service == "s3":
        return
    try:
        operation = response._get_action()
    except Exception:  # noqa: BLE001 - an action moto cannot name is not checked
        return
    action = f"{service}:{operation}"
    if action.lower() in ALWAYS_ALLOWED:
        return
    region = str(getattr(response, "region", "") or config.REGION)
    derive = RESOURCES.get(service)
    resources = derive(response, region) if derive else []
    allowed, resource, reason = decide(session, action, resources)
    if allowed:
        return
    if service == "sns":  # SNS names its actions in capitals in these messages (inferred)
        action = f"SNS:{operation}"
        reason = reason.replace(f"sns:{operation}", action)
    message = (
        f"User: {session.arn} is not authorized to perform: {action} on resource: {resource} "
        f"{reason}"
    )
    if service in ERROR_CODES:
        raise RoleSessionDenied(message, ERROR_CODES[service])
    if service == "sqs":
        raise RoleSessionDeniedJson("AccessDenied", message)
    if service in JSON_SERVICES:
        raise RoleSessionDeniedJson("AccessDeniedException", message)
    raise RoleSessionDenied(message)


def install() -> None:
    """Check role sessions before moto's own (disabled by default) authorization runs."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action
    if getattr(original, "_rdslab_sessions", False):
        return

    def authorize(self: Any, resource: str = "*") -> None:
        check(self)
        original(self, resource)

    authorize._rdslab_sessions = True  # type: ignore[attr-defined]
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]
