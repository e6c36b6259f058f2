"""What Lambda's control plane refuses and moto accepts: an execution role Lambda cannot
assume, out-of-range Timeout/MemorySize, and reserved environment variable names."""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import unquote

from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError

RESERVED = {
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}


class ValidationException(LambdaClientError):
    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


def _trusts_lambda(document: Any) -> bool:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if st.get("Effect") != "Allow":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in {"sts:AssumeRole", "sts:*", "*"} for a in actions):
            continue
        principal = st.get("Principal", {})
        if principal == "*":
            return True
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if "lambda.amazonaws.com" in services:
            return True
    return False


def _check_role(role_arn: str | None) -> None:
    if not role_arn:
        return
    from ..aws import backend

    try:
        role = backend("iam").get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto already reports a missing role its own way
        return
    if not _trusts_lambda(role.assume_role_policy_document):
        raise InvalidParameterValueException(
            "The role defined for the function cannot be assumed by Lambda."
        )


def _check_dead_letter_target(role_arn: str | None, spec: dict[str, Any]) -> None:
    """Lambda checks, when a DLQ is set, that the execution role may send to it."""
    target = (spec.get("DeadLetterConfig") or {}).get("TargetArn")
    if not target or not role_arn:
        return
    from ..access import iam as access_iam
    from ..access import policy
    from ..aws import backend

    role = access_iam.find_role(backend("iam"), role_arn)
    if role is None:
        return
    sqs = ":sqs:" in target
    action = "sqs:SendMessage" if sqs else "sns:Publish"
    decision = policy.evaluate(
        tuple(access_iam.identity_sources(role)), action, target, policy.Context()
    )
    if not decision.allowed:
        raise InvalidParameterValueException(
            "The provided execution role does not have permissions to call "
            + ("SendMessage on SQS" if sqs else "Publish on SNS")
        )


def _check_settings(spec: dict[str, Any]) -> None:
    timeout = spec.get("Timeout")
    if timeout is not None and not 1 <= int(timeout) <= 900:
        bound = "less than or equal to 900" if int(timeout) > 900 else "greater than or equal to 1"
        raise ValidationException(
            f"1 validation error detected: Value '{timeout}' at 'timeout' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    memory = spec.get("MemorySize")
    if memory is not None and not 128 <= int(memory) <= 10240:
        bound = (
            "less than or equal to 10240" if int(memory) > 10240 else "greater than or equal to 128"
        )
        raise ValidationException(
            f"1 validation error detected: Value '{memory}' at 'memorySize' failed to satisfy "
            f"constraint: Member must have value {bound}"
        )
    variables = (spec.get("Environment") or {}).get("Variables") or {}
    reserved = sorted(k for k in variables if k in RESERVED)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )


def apply() -> None:
    backend_cls = lambda_models.LambdaBackend
    if getattr(backend_cls.create_function, "_rdslab_validation", False):
        return
    create = backend_cls.create_function
    update = backend_cls.update_function_configuration

    @functools.wraps(create)
    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        _check_settings(spec)
        _check_role(spec.get("Role"))
        _check_dead_letter_target(spec.get("Role"), spec)
        return create(self, spec)

    @functools.wraps(update)
    def update_function_configuration(
        self: Any, function_name: str, qualifier: str, body: dict[str, Any]
    ) -> Any:
        _check_settings(body)
        if "Role" in body:
            _check_role(body["Role"])
        if body.get("DeadLetterConfig"):
            role = body.get("Role") or self.get_function(function_name, qualifier).role
            _check_dead_letter_target(role, body)
        return update(self, function_name, qualifier, body)

    create_function._rdslab_validation = True  # type: ignore[attr-defined]
    backend_cls.create_function = create_function  # type: ignore[method-assign]
    backend_cls.update_function_configuration = update_function_configuration  # type: ignore[method-assign]
