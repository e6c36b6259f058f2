"""Where an asynchronous invocation's outcome goes: destinations (OnSuccess/OnFailure to SQS,
SNS, Lambda or EventBridge, carrying Lambda's invocation record) and the function's dead-letter
queue (SQS or SNS, carrying the original event with ``RequestID``/``ErrorCode``/``ErrorMessage``
attributes). Deliveries go through the lab's endpoint with boto3, like any AWS service would, so
that whatever the lab does with an SQS message or SNS publication happens here too.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import config

log = logging.getLogger("rdslab.runtime")
EVENTBRIDGE_DETAIL_TYPE = "Lambda Function Invocation Result - {}"


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def invocation_record(
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    request_payload: bytes,
    executed_version: str | None,
    function_error: str | None,
    response_payload: bytes | None,
) -> dict[str, Any]:
    """Lambda's invocation record (version 1.0) for a destination."""

    def parse(raw: bytes | None) -> Any:
        if raw is None:
            return None
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw.decode("utf-8", "replace")

    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_now(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": parse(request_payload),
    }
    if executed_version is not None:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": executed_version}
        if function_error:
            context["functionError"] = function_error
        record["responseContext"] = context
        record["responsePayload"] = parse(response_payload)
    return record


class Destinations:
    """Sends records and dead letters; failures to deliver are logged and kept."""

    def __init__(self, endpoint: str, invoke_event: Callable[[str, bytes], Any]) -> None:
        self.endpoint = endpoint
        self.invoke_event = invoke_event
        self.undelivered: deque[dict[str, Any]] = deque(maxlen=1000)
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                import boto3

                client = boto3.session.Session().client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint,
                    aws_access_key_id=config.ACCESS_KEY_ID,
                    aws_secret_access_key=config.SECRET_ACCESS_KEY,
                )
                self._clients[key] = client
            return client

    def _send(self, arn: str, body: str, attributes: dict[str, Any] | None, what: str) -> bool:
        parts = arn.split(":")
        service, region, account = parts[2], parts[3], parts[4]
        try:
            if service == "sqs":
                sqs = self._client("sqs", region)
                url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=account)
                kwargs: dict[str, Any] = {"QueueUrl": url["QueueUrl"], "MessageBody": body}
                if attributes:
                    kwargs["MessageAttributes"] = attributes
                sqs.send_message(**kwargs)
            elif service == "sns":
                kwargs = {"TopicArn": arn, "Message": body}
                if attributes:
                    kwargs["MessageAttributes"] = attributes
                self._client("sns", region).publish(**kwargs)
            elif service == "lambda":
                self.invoke_event(arn, body.encode("utf-8"))
            elif service == "events":
                record = json.loads(body)
                kind = (
                    "Success" if record["requestContext"]["condition"] == "Success" else "Failure"
                )
                self._client("events", region).put_events(
                    Entries=[
                        {
                            "Source": "lambda",
                            "DetailType": EVENTBRIDGE_DETAIL_TYPE.format(kind),
                            "Detail": body,
                            "Resources": [record["requestContext"]["functionArn"], arn],
                            "EventBusName": arn,
                        }
                    ]
                )
            else:
                raise ValueError(f"unsupported destination service {service!r}")
            return True
        except Exception as exc:  # noqa: BLE001 - record it: nothing is silently lost
            log.warning("Lambda could not deliver %s to %s: %s", what, arn, exc)
            self.undelivered.append(
                {"what": what, "destination": arn, "body": body, "error": str(exc)}
            )
            return False

    def send_record(self, arn: str, record: dict[str, Any]) -> bool:
        return self._send(arn, json.dumps(record), None, "invocation record")

    def send_dead_letter(
        self, arn: str, payload: bytes, request_id: str, error_code: int, error_message: str
    ) -> bool:
        message = (error_message or "Unhandled").encode("utf-8")[:1024].decode("utf-8", "ignore")
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": str(error_code)},
            "ErrorMessage": {"DataType": "String", "StringValue": message or "Unhandled"},
        }
        body = payload.decode("utf-8", "replace") if payload.strip() else "{}"
        return self._send(arn, body, attributes, "dead letter")
