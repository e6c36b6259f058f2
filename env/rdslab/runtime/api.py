"""The runtime's public value types, shared by the boto3 (HTTP) path and in-process callers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InvokeResult:
    """What Lambda's Invoke API returned (function errors are results, not exceptions)."""

    status_code: int  # 200 / 202 / 204
    payload: bytes  # b"" for Event/DryRun
    function_error: str | None  # "Unhandled" or None
    executed_version: str | None
    log_result: str | None  # base64 tail when log_type == "Tail", else None
    request_id: str


class LambdaApiError(Exception):
    """The Invoke API itself failed (an HTTP error; no function ran)."""

    def __init__(
        self, http_status: int, code: str, message: str, reason: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.reason = reason  # e.g. TooManyRequestsException's Reason

    def __repr__(self) -> str:
        return f"LambdaApiError({self.http_status}, {self.code!r}, {self.message!r})"


def not_found(arn: str) -> LambdaApiError:
    return LambdaApiError(404, "ResourceNotFoundException", f"Function not found: {arn}")


def invalid_parameter(message: str) -> LambdaApiError:
    return LambdaApiError(400, "InvalidParameterValueException", message)


def too_large(limit: int) -> LambdaApiError:
    return LambdaApiError(
        413,
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
    )
