"""RDS -> SNS, and SNS -> subscribers the way SNS delivers.

RDS publishes a JSON *string* (keys in RDS's order, compact), Subject ``RDS Notification Message``
and the message attributes ``EventID`` and ``Resource``. moto's SNS fans a publish out to its
subscriptions; the lab replaces ``Subscription.publish`` so that every publish (RDS's and the
learner's own) reaches: SQS raw or in SNS's envelope; Lambda asynchronously through the lab's
runtime, which checks the function's resource policy for ``sns.amazonaws.com``; email and
email-json into an outbox the learner can read. Client-side failures (missing queue or function,
no permission) are not retried and go to the subscription's dead-letter queue (RedrivePolicy).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import _state, catalog
from .delivery import DeliveryError, invoke_lambda, send_sqs
from .store import RdsEvent, utcnow

if TYPE_CHECKING:
    from .engine import EventEngine

SUBJECT = "RDS Notification Message"
_ctx = threading.local()

# SNS's delivery policy for AWS-managed endpoints (3 immediate, 2 at 1 s, 10 backing off
# 1..20 s, then every 20 s): the lab keeps the first 15 tries and then gives up.
SNS_RETRY_DELAYS = [0, 0, 0, 1, 1, 1, 2, 3, 5, 7, 9, 12, 15, 18, 20]


# ---------------------------------------------------------------------------- RDS's message
def rds_message(ev: RdsEvent) -> str:
    """The JSON string RDS publishes (key order as observed in AWS samples)."""
    body = {
        "Event Source": ev.source_type,
        "Event Time": ev.event_time,
        "Identifier Link": catalog.identifier_link(ev.region, ev.source_type, ev.source_id),
        "Source ID": ev.source_id,
        "Source ARN": ev.source_arn,
        "Event ID": catalog.event_url(ev.event_id),
        "Event Message": ev.message,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def rds_attributes(ev: RdsEvent) -> dict[str, dict[str, str]]:
    return {
        "EventID": {"Type": "String", "Value": ev.event_id},
        "Resource": {"Type": "String", "Value": ev.source_arn},
    }


@contextlib.contextmanager
def publishing(ev: RdsEvent | None) -> Iterator[None]:
    """Mark the SNS publishes made inside as carrying ``ev`` (for the delivery log)."""
    previous = getattr(_ctx, "event", None)
    _ctx.event = ev
    try:
        yield
    finally:
        _ctx.event = previous


def publish_rds_event(engine: EventEngine, ev: RdsEvent, topic_arn: str, subscription: str) -> None:
    """What RDS does for one matching event subscription."""
    from moto.sns import sns_backends

    parts = topic_arn.split(":")
    backend = sns_backends[parts[4]][parts[3]]
    row = engine.log.open(
        channel="sns",
        target=topic_arn,
        kind="topic",
        event_id=ev.event_id,
        source_id=ev.source_id,
        emitted_at=ev.date,
        via=f"rds:es:{subscription}",
    )
    row.attempts = 1
    if topic_arn not in backend.topics:
        engine.log.close(row, "TopicNotFound", f"SNS topic {topic_arn} does not exist")
        return
    from .queue_policy import allows

    if not allows(
        backend.topics[topic_arn].policy,
        "events.rds.amazonaws.com",
        topic_arn,
        ev.source_arn,
        action="sns:Publish",
        source_owner=True,
    ):
        # RDS cannot publish: the notification is lost, and nobody is told (as on AWS)
        engine.log.close(
            row,
            "AccessDenied",
            f"The topic policy of {topic_arn} does not allow events.rds.amazonaws.com to "
            f"publish for {ev.source_arn}",
        )
        return
    with publishing(ev):
        backend.publish(
            rds_message(ev), arn=topic_arn, subject=SUBJECT, message_attributes=rds_attributes(ev)
        )
    engine.counters.add("AWS/SNS", "NumberOfMessagesPublished", "TopicName", parts[5])
    engine.log.close(row, "Delivered")


# ---------------------------------------------------------------------------- envelopes
def _signature() -> str:
    return base64.b64encode(os.urandom(256)).decode()


def notification(
    sub: Any, message: str, message_id: str, subject: str | None, attrs: dict[str, Any]
) -> dict[str, Any]:
    """SNS's notification document (the SQS/HTTP/email-json envelope), in SNS's key order."""
    region = sub.topic.sns_backend.region_name
    doc: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": sub.topic.arn,
    }
    if subject:
        doc["Subject"] = subject
    now = utcnow()
    doc.update(
        {
            "Message": message,
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "SignatureVersion": "1",
            "Signature": _signature(),
            "SigningCertURL": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem",
            "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={sub.arn}",
        }
    )
    if attrs:
        doc["MessageAttributes"] = {
            k: {"Type": v["Type"], "Value": v["Value"]} for k, v in attrs.items()
        }
    return doc


def sqs_body(doc: dict[str, Any]) -> str:
    """The envelope as SNS writes it into SQS (two-space indent, ``"key" : value``)."""
    lines = []
    for key, value in doc.items():
        if key == "MessageAttributes":
            inner = ",\n".join(
                f"    {json.dumps(k)} : {json.dumps(v, separators=(',', ':'), ensure_ascii=False)}"
                for k, v in value.items()
            )
            lines.append(f'  "MessageAttributes" : {{\n{inner}\n  }}')
        else:
            lines.append(f"  {json.dumps(key)} : {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def lambda_event(sub: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The event SNS invokes a function with (note ``SigningCertUrl``/``UnsubscribeUrl``)."""
    sns = {
        "SignatureVersion": doc["SignatureVersion"],
        "Timestamp": doc["Timestamp"],
        "Signature": doc["Signature"],
        "SigningCertUrl": doc["SigningCertURL"],
        "MessageId": doc["MessageId"],
        "Message": doc["Message"],
        "MessageAttributes": doc.get("MessageAttributes", {}),
        "Type": "Notification",
        "UnsubscribeUrl": doc["UnsubscribeURL"],
        "TopicArn": doc["TopicArn"],
        "Subject": doc.get("Subject"),
    }
    record = {
        "EventVersion": "1.0",
        "EventSubscriptionArn": sub.arn,
        "EventSource": "aws:sns",
        "Sns": sns,
    }
    return {"Records": [record]}


def _sqs_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        kind = value["Type"]
        field = "BinaryValue" if kind.startswith("Binary") else "StringValue"
        out[key] = {
            "DataType": kind,
            field: str(value["Value"]) if field == "StringValue" else value["Value"],
        }
    return out


def _raw(sub: Any) -> bool:
    return str(sub.attributes.get("RawMessageDelivery", "false")).lower() == "true"


# ---------------------------------------------------------------------------- delivering
def deliver(
    engine: EventEngine,
    sub: Any,
    message: str,
    message_id: str,
    subject: str | None,
    attrs: dict[str, Any],
    group_id: str | None,
    dedup_id: str | None,
) -> None:
    """One SNS subscription receives one message."""
    ev: RdsEvent | None = getattr(_ctx, "event", None)
    row = engine.log.open(
        channel="sns",
        target=sub.endpoint,
        kind=sub.protocol,
        event_id=ev.event_id if ev else None,
        source_id=ev.source_id if ev else None,
        emitted_at=ev.date if ev else utcnow(),
        via=sub.topic.arn,
    )
    doc = notification(sub, message, message_id, subject, attrs)
    if sub.protocol == "lambda":
        payload = lambda_event(sub, doc)
        engine.scheduler.submit(
            lambda: _to_lambda(engine, sub, payload, doc, row, 1),
            label=f"sns->lambda {sub.endpoint}",
        )
        return
    row.attempts = 1
    try:
        if sub.protocol == "sqs":
            if _raw(sub):
                send_sqs(
                    sub.endpoint,
                    message,
                    _sqs_attributes(attrs),
                    group_id,
                    dedup_id,
                    service="sns.amazonaws.com",
                    source_arn=sub.topic.arn,
                )
            else:
                send_sqs(
                    sub.endpoint,
                    sqs_body(doc),
                    None,
                    group_id,
                    dedup_id,
                    service="sns.amazonaws.com",
                    source_arn=sub.topic.arn,
                )
        elif sub.protocol in ("email", "email-json"):
            engine.outbox.add(sub, doc)
        else:
            _other_protocol(sub, message, message_id, subject, attrs)
    except DeliveryError as err:
        _failed(engine, sub, doc, row, err)
        return
    _delivered(engine, sub, row)


def _other_protocol(
    sub: Any, message: str, message_id: str, subject: str | None, attrs: dict[str, Any]
) -> None:
    """http(s), sms, application, firehose: moto's own delivery; its failures are the lab's."""
    try:
        _ORIGINAL["publish"](sub, message, message_id, subject=subject, message_attributes=attrs)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreachable HTTP endpoint
        raise DeliveryError(
            "Failed", f"{type(exc).__name__}: {exc}", retryable=False, eb_code="SDK_CLIENT_ERROR"
        ) from exc


def _to_lambda(
    engine: EventEngine,
    sub: Any,
    payload: dict[str, Any],
    doc: dict[str, Any],
    row: Any,
    attempt: int,
) -> None:
    row.attempts = attempt
    try:
        invoke_lambda(
            engine.runtime(),
            sub.endpoint,
            json.dumps(payload).encode(),
            "sns.amazonaws.com",
            sub.topic.arn,
        )
    except DeliveryError as err:
        if err.retryable and attempt < len(SNS_RETRY_DELAYS):
            row.status = "Retrying"
            delay = engine.time.seconds(SNS_RETRY_DELAYS[attempt])
            engine.scheduler.submit(
                lambda: _to_lambda(engine, sub, payload, doc, row, attempt + 1),
                delay=delay,
                label=f"sns->lambda retry {sub.endpoint}",
            )
            return
        _failed(engine, sub, doc, row, err)
        return
    _delivered(engine, sub, row)


def _delivered(engine: EventEngine, sub: Any, row: Any) -> None:
    engine.log.close(row, "Delivered")
    engine.counters.add("AWS/SNS", "NumberOfNotificationsDelivered", "TopicName", sub.topic.name)


def _failed(
    engine: EventEngine, sub: Any, doc: dict[str, Any], row: Any, err: DeliveryError
) -> None:
    """Client-side error (or retries exhausted): the subscription's DLQ, if it has one."""
    topic = sub.topic.name
    engine.counters.add("AWS/SNS", "NumberOfNotificationsFailed", "TopicName", topic)
    detail = str(err)
    policy = sub.attributes.get("RedrivePolicy")
    dlq = None
    if policy:
        try:
            dlq = json.loads(policy).get("deadLetterTargetArn")
        except (TypeError, ValueError):
            dlq = None
    if dlq:
        body = doc["Message"] if sub.protocol == "sqs" and _raw(sub) else sqs_body(doc)
        try:
            send_sqs(
                dlq,
                body,
                _sqs_attributes(doc.get("MessageAttributes", {})),
                service="sns.amazonaws.com",
                source_arn=sub.topic.arn,
            )
            engine.counters.add("AWS/SNS", "NumberOfNotificationsRedrivenToDlq", "TopicName", topic)
            detail += f" (redriven to {dlq})"
        except DeliveryError as dlq_err:
            engine.counters.add(
                "AWS/SNS", "NumberOfNotificationsFailedToRedriveToDlq", "TopicName", topic
            )
            detail += f" (DLQ failed: {dlq_err})"
    engine.log.close(row, err.status, detail)


# ---------------------------------------------------------------------------- email
class Outbox:
    """What SNS would have emailed: protocol ``email`` (text) and ``email-json`` (the envelope)."""

    FOOTER = (
        "\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit"
        " the link below to unsubscribe:\n{unsubscribe}\n\nPlease do not reply directly to this"
        " email. If you have any questions or comments regarding this email, please contact us at"
        " https://aws.amazon.com/support"
    )

    def __init__(self) -> None:
        self._mails: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, sub: Any, doc: dict[str, Any]) -> None:
        if sub.protocol == "email-json":
            body = json.dumps(doc, ensure_ascii=False)
        else:
            body = doc["Message"] + self.FOOTER.format(unsubscribe=doc["UnsubscribeURL"])
        mail = {
            "sent_at": utcnow(),
            "to": sub.endpoint,
            "from": "AWS Notifications <no-reply@sns.amazonaws.com>",
            "subject": doc.get("Subject") or "AWS Notification Message",
            "body": body,
            "protocol": sub.protocol,
            "topic_arn": sub.topic.arn,
            "message_id": doc["MessageId"],
        }
        with self._lock:
            self._mails.append(mail)

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._mails)

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()


# ---------------------------------------------------------------------------- moto patch
_ORIGINAL: dict[str, Any] = {}


def install() -> None:
    """Route every SNS subscription delivery through the lab (idempotent)."""
    from moto.sns.models import Subscription

    if getattr(Subscription.publish, "_rdslab_events", False):
        return
    _ORIGINAL["publish"] = Subscription.publish

    def publish(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        engine = _state.current()
        if engine is None:
            return _ORIGINAL["publish"](
                self,
                message,
                message_id,
                subject=subject,
                message_attributes=message_attributes,
                group_id=group_id,
                deduplication_id=deduplication_id,
                message_structure=message_structure,
            )
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        deliver(
            engine,
            self,
            message,
            message_id,
            subject,
            message_attributes or {},
            group_id,
            deduplication_id,
        )
        return None

    publish._rdslab_events = True  # type: ignore[attr-defined]
    Subscription.publish = publish  # type: ignore[method-assign]
