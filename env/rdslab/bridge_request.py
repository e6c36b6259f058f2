"""What the bridge reads from the outbox, and the errors it answers with (RDS's words).

``resolve_function`` turns what SQL passed (name, full or partial ARN, ``name:qualifier``, the
``region`` and ``qualifier`` arguments) into the function ARN Lambda would resolve, raising the
errors RDS and Lambda raise for conflicts; ``invoke_over_http`` calls the endpoint named by
``aws_lambda.endpoint_override`` as RDS would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import config


class InvokeFailure(Exception):
    """An error to raise in the caller's session: message + DETAIL, as RDS words them."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def api_failed(reason: str) -> InvokeFailure:
    return InvokeFailure("invoke API failed", f"AWS Lambda client returned '{reason}'.")


@dataclass
class Request:
    id: int
    function_name: str
    payload: str | None
    region: str | None
    invocation_type: str
    log_type: str
    client_context: str | None
    qualifier: str | None
    connect_timeout_ms: int
    endpoint_override: str | None
    backend_pid: int
    waiting: bool


def resolve_function(
    name: str, region: str | None, qualifier: str | None
) -> tuple[str, str, str | None]:
    """(function ARN without qualifier, region, qualifier) for a name/ARN/partial ARN."""
    name_qualifier = None
    arn_region = None
    parts = name.split(":")
    if name.startswith("arn:"):
        # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
            raise api_failed(
                f"1 validation error detected: Value '{name}' at 'functionName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
                "(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            )
        arn_region, account, fn = parts[3], parts[4], parts[6]
        name_qualifier = parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":
        account, fn = parts[0], parts[2]
        name_qualifier = parts[3] if len(parts) > 3 else None
    else:
        account, fn = config.ACCOUNT_ID, parts[0]
        name_qualifier = parts[1] if len(parts) > 1 else None
    if arn_region and region and arn_region != region:
        # RDS documents that a conflict raises an error but not its text: the lab's reading.
        raise InvokeFailure(
            "invoke API failed",
            f'The region argument "{region}" conflicts with the region in the function ARN '
            f'"{name}".',
        )
    if name_qualifier and qualifier and name_qualifier != qualifier:
        raise api_failed(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    use_region = arn_region or region or config.REGION
    return (
        f"arn:aws:lambda:{use_region}:{account}:function:{fn}",
        use_region,
        name_qualifier or qualifier,
    )


def invoke_over_http(
    req: Request, payload: bytes, context: str | None, region: str, qualifier: str | None
) -> Any:
    """``aws_lambda.endpoint_override`` set: call that endpoint over HTTP like RDS would."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    from .runtime import InvokeResult

    client = boto3.client("lambda", region_name=region, endpoint_url=req.endpoint_override)
    kwargs: dict[str, Any] = {
        "FunctionName": req.function_name,
        "Payload": payload,
        "InvocationType": req.invocation_type,
        "LogType": req.log_type,
    }
    if context:
        kwargs["ClientContext"] = context
    if qualifier and ":" not in req.function_name:
        kwargs["Qualifier"] = qualifier
    try:
        resp = client.invoke(**kwargs)
    except EndpointConnectionError as exc:
        raise api_failed("Unable to connect to endpoint") from exc
    except ClientError as exc:
        raise api_failed(exc.response["Error"].get("Message", str(exc))) from exc
    return InvokeResult(
        status_code=resp["StatusCode"],
        payload=resp["Payload"].read(),
        function_error=resp.get("FunctionError"),
        executed_version=resp.get("ExecutedVersion"),
        log_result=resp.get("LogResult"),
        request_id=resp["ResponseMetadata"]["RequestId"],
    )
