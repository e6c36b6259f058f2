"""Patches to moto 5.2.5's Lambda so that boto3 against the lab behaves like AWS.

* ``LambdaResponse.invoke`` (HTTP Invoke) goes to the lab runtime: real handler execution,
  Event -> 202 at once and run asynchronously, DryRun -> 204 without running, ``Qualifier`` read
  from the query string, ``X-Amz-Executed-Version``, ``Unhandled`` errors, payload limits (413),
  non-JSON bodies (400), AWS's 404 message, and the Lambda request id as ``x-amzn-RequestId``.
* ``LambdaFunction.invoke`` / ``_invoke_lambda`` (moto's internal callers: SNS, SQS event source
  mappings, log subscriptions) run the real handler too, instead of Docker.
* Event invoke configs per qualifier, with Put replacing and Update merging (``eventconfig``).
* ``DeadLetterConfig`` is kept by CreateFunction/UpdateFunctionConfiguration and returned.

``apply()`` is idempotent; with no active runtime every patched method falls back to moto's.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

from . import eventconfig
from .api import LambdaApiError

_ORIGINAL: dict[str, Any] = {}
_RUNTIME: Any = None


def activate(runtime: Any) -> None:
    global _RUNTIME
    _RUNTIME = runtime


def deactivate(runtime: Any) -> None:
    global _RUNTIME
    if _RUNTIME is runtime:
        _RUNTIME = None


def _qualifier(response: Any) -> str | None:
    values = parse_qs(response.parsed_url.query).get("Qualifier")
    return values[0] if values else None


def error_response(error: LambdaApiError) -> tuple[int, dict[str, Any], str]:
    body: dict[str, Any] = {
        "Type": "Service" if error.http_status >= 500 else "User",
        "message": error.message,
    }
    if error.reason:
        body["Reason"] = error.reason
    headers = {
        "status": error.http_status,
        "x-amzn-errortype": error.code,
        "content-type": "application/json",
    }
    return error.http_status, headers, json.dumps(body)


# ---------------------------------------------------------------------- LambdaResponse
def _http_invoke(self: Any) -> Any:
    runtime = _RUNTIME
    if runtime is None:
        return _ORIGINAL["invoke"](self)
    function_name = unquote(self.path.rsplit("/", 2)[-2])
    headers = self.headers
    try:
        result = runtime.invoke_request(
            function_name,
            self.raw_body if isinstance(self.raw_body, bytes) else (self.body or "").encode(),
            invocation_type=headers.get("X-Amz-Invocation-Type") or "RequestResponse",
            log_type=headers.get("X-Amz-Log-Type") or "None",
            client_context=headers.get("X-Amz-Client-Context"),
            qualifier=_qualifier(self),
            default_region=self.region,
        )
    except LambdaApiError as e:
        return error_response(e)
    out: dict[str, Any] = {
        "status": result.status_code,
        "content-type": "application/json",
        "x-amzn-requestid": result.request_id,
    }
    if result.executed_version and result.status_code == 200:
        out["X-Amz-Executed-Version"] = result.executed_version
    if result.function_error:
        out["X-Amz-Function-Error"] = result.function_error
    if result.log_result is not None:
        out["X-Amz-Log-Result"] = result.log_result
    return result.status_code, out, result.payload


def _http_invoke_async(self: Any) -> Any:
    """The deprecated InvokeAsync API: queue an Event, answer 202 ``{"Status": 202}``."""
    runtime = _RUNTIME
    if runtime is None:
        return _ORIGINAL["invoke_async"](self)
    index = -3 if self.path.endswith("/") else -2
    function_name = unquote(self.path.rsplit("/", 3)[index])
    try:
        result = runtime.invoke_request(
            function_name, self.raw_body or b"", invocation_type="Event", default_region=self.region
        )
    except LambdaApiError as e:
        return error_response(e)
    headers = {"status": 202, "x-amzn-requestid": result.request_id}
    return 202, headers, json.dumps({"Status": 202})


def _enrich_response(headers: dict[str, Any], body: Any) -> tuple[dict[str, Any], Any]:
    from moto.core.responses import BaseResponse

    request_id = headers.get("x-amzn-requestid")
    headers, body = BaseResponse._enrich_response(headers, body)  # noqa: SLF001
    if request_id:
        headers["x-amzn-requestid"] = request_id
    return headers, body


def _function_name(response: Any) -> str:
    parts = response.path.split("/")
    return unquote(parts[parts.index("functions") + 1])


def _eic_put(self: Any) -> Any:
    storage = self.backend._lambdas  # noqa: SLF001
    return json.dumps(
        eventconfig.put(storage, _function_name(self), _qualifier(self), self.json_body)
    )


def _eic_update(self: Any) -> Any:
    storage = self.backend._lambdas  # noqa: SLF001
    return json.dumps(
        eventconfig.update(storage, _function_name(self), _qualifier(self), self.json_body)
    )


def _eic_get(self: Any) -> Any:
    storage = self.backend._lambdas  # noqa: SLF001
    return json.dumps(eventconfig.get(storage, _function_name(self), _qualifier(self)))


def _eic_delete(self: Any) -> Any:
    storage = self.backend._lambdas  # noqa: SLF001
    eventconfig.delete(storage, _function_name(self), _qualifier(self))
    return 204, {"status": 204}, ""


def _eic_list(self: Any) -> Any:
    storage = self.backend._lambdas  # noqa: SLF001
    return json.dumps(eventconfig.list_all(storage, _function_name(self)))


# ---------------------------------------------------------------------- LambdaFunction
def target_for(fn: Any) -> Any:
    """A Target for moto's function object (its own version), for moto's internal callers."""
    from .invoke import Target

    base = f"arn:aws:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}"
    version = str(fn.version)
    qualifier = None if version == "$LATEST" else version
    return Target(fn, fn.account_id, fn.region, fn.function_name, qualifier, version, base)


def _fn_invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
    runtime = _RUNTIME
    if runtime is None:
        return _ORIGINAL["fn_invoke"](self, body, request_headers, response_headers)
    kind = "RequestResponse"
    for key, value in dict(request_headers or {}).items():
        if key.lower() == "x-amz-invocation-type":
            kind = value
    payload = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    result = runtime.invoke_target(target_for(self), payload, kind)
    if result.function_error:
        response_headers["x-amz-function-error"] = result.function_error
    if result.executed_version:
        response_headers["x-amz-executed-version"] = result.executed_version
    return result.payload


def _fn_invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    runtime = _RUNTIME
    if runtime is None:
        return _ORIGINAL["fn_invoke_lambda"](self, event)
    payload = json.dumps(event if event is not None else {}).encode()
    result = runtime.invoke_target(target_for(self), payload, "RequestResponse", "Tail")
    import base64

    logs = base64.b64decode(result.log_result or "").decode("utf-8", "replace")
    return result.payload.decode("utf-8", "replace"), bool(result.function_error), logs


def _fn_init(
    self: Any, account_id: str, spec: dict[str, Any], region: str, version: Any = 1
) -> None:
    _ORIGINAL["fn_init"](self, account_id, spec, region, version)
    self.dead_letter_config = spec.get("DeadLetterConfig") or None


def _fn_get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
    result = _ORIGINAL["fn_get_configuration"](self, on_create)
    dlc = getattr(self, "dead_letter_config", None)
    if dlc and dlc.get("TargetArn"):
        result["DeadLetterConfig"] = {"TargetArn": dlc["TargetArn"]}
    return result


def _fn_update_configuration(self: Any, updates: dict[str, Any]) -> dict[str, Any]:
    if "DeadLetterConfig" in updates:
        self.dead_letter_config = updates["DeadLetterConfig"] or None
    return _ORIGINAL["fn_update_configuration"](self, updates)


def apply() -> None:
    """Install the patches (once per process)."""
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaResponse, "_rdslab_patched", False):
        return
    _ORIGINAL.update(
        invoke=LambdaResponse.invoke,
        invoke_async=LambdaResponse.invoke_async,
        fn_invoke=LambdaFunction.invoke,
        fn_invoke_lambda=LambdaFunction._invoke_lambda,  # noqa: SLF001
        fn_init=LambdaFunction.__init__,
        fn_get_configuration=LambdaFunction.get_configuration,
        fn_update_configuration=LambdaFunction.update_configuration,
    )
    LambdaResponse.invoke = _http_invoke
    LambdaResponse.invoke_async = _http_invoke_async
    LambdaResponse._enrich_response = staticmethod(_enrich_response)  # noqa: SLF001
    LambdaResponse.put_function_event_invoke_config = _eic_put
    LambdaResponse.update_function_event_invoke_config = _eic_update
    LambdaResponse.get_function_event_invoke_config = _eic_get
    LambdaResponse.delete_function_event_invoke_config = _eic_delete
    LambdaResponse.list_function_event_invoke_configs = _eic_list
    LambdaFunction.invoke = _fn_invoke
    LambdaFunction._invoke_lambda = _fn_invoke_lambda  # noqa: SLF001
    LambdaFunction.__init__ = _fn_init
    LambdaFunction.get_configuration = _fn_get_configuration
    LambdaFunction.update_configuration = _fn_update_configuration
    LambdaResponse._rdslab_patched = True  # noqa: SLF001
