"""RDS -> EventBridge default bus -> rules -> targets, as EventBridge delivers.

Every RDS event is put on the account's default bus as ``source: aws.rds`` with the detail-type
of its source type. The lab replaces moto's ``Rule.send_to_targets`` (which raises for Lambda and
SNS targets, ignores disabled rules and ``Input``/``InputPath``) for all events, the learner's
``put_events`` included: an enabled rule whose pattern matches queues one delivery per target.
Lambda targets are invoked asynchronously through the lab's runtime, which checks the function's
resource policy for ``events.amazonaws.com`` and the rule's ARN. A failed delivery is retried per
the target's RetryPolicy (scaled lab time) unless the error is not retryable (no permission, no
resource); then it goes to the target's DeadLetterConfig queue with EventBridge's attributes.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import _state, catalog, patterns
from .delivery import DeliveryError, invoke_lambda, send_sqs
from .store import RdsEvent, utcnow

if TYPE_CHECKING:
    from .engine import EventEngine

DEFAULT_RETRY_ATTEMPTS = 185
DEFAULT_MAX_AGE = 86400
_ORIGINAL: dict[str, Any] = {}
_origin = threading.local()  # the RDS event being put on the bus (for the delivery log)


def envelope(ev: RdsEvent) -> dict[str, Any]:
    """The EventBridge event RDS puts on the default bus (§4.6)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": catalog.detail_type(ev.source_type),
        "source": "aws.rds",
        "account": ev.account,
        "time": ev.iso_s,
        "region": ev.region,
        "resources": [ev.source_arn],
        "detail": {
            "EventCategories": list(ev.categories),
            "SourceType": catalog.detail_source_type(ev.source_type),
            "SourceArn": ev.source_arn,
            "Date": ev.iso_ms,
            "Message": ev.message,
            "SourceIdentifier": ev.source_id,
            "EventID": ev.event_id,
        },
    }


def put_rds_event(engine: EventEngine, ev: RdsEvent) -> None:
    """RDS -> default bus: every rule on it sees the event."""
    from moto.events.models import events_backends

    backend = events_backends[ev.account][ev.region]
    bus = backend.event_buses.get("default")
    if bus is None:
        return
    event = envelope(ev)
    event["ingestion-time"] = utcnow().timestamp()
    _origin.event = ev
    try:
        for rule in list(bus.rules.values()):
            rule.send_to_targets(event)
    finally:
        _origin.event = None


def _normalise(event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """moto keeps ``time`` as epoch seconds and adds ``ingestion-time``; targets see neither."""
    event = dict(event)
    ingestion = event.pop("ingestion-time", None)
    when = event.get("time")
    if isinstance(when, (int, float)):
        event["time"] = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(when, datetime):
        event["time"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event, "" if ingestion is None else str(ingestion)


def route(
    engine: EventEngine, rule: Any, original_event: dict[str, Any], transform_input: bool
) -> None:
    """A rule looks at one event on its bus."""
    if getattr(rule, "state", "ENABLED") != "ENABLED":
        return
    event, _ = _normalise(original_event)
    if not patterns.matches(rule.event_pattern.get_pattern(), event):
        return
    engine.counters.add("AWS/Events", "MatchedEvents", "RuleName", rule.name)
    engine.counters.add("AWS/Events", "TriggeredRules", "RuleName", rule.name)
    ev: RdsEvent | None = getattr(_origin, "event", None)
    for target in list(rule.targets):
        arn = target.get("Arn", "")
        kind = _kind(arn)
        if kind == "other":
            clone = copy.copy(rule)
            clone.targets = [target]
            _ORIGINAL["send_to_targets"](clone, original_event, transform_input)
            continue
        row = engine.log.open(
            channel="eventbridge",
            target=arn,
            kind=kind,
            event_id=ev.event_id if ev else event.get("detail", {}).get("EventID"),
            source_id=ev.source_id if ev else None,
            emitted_at=ev.date if ev else utcnow(),
            via=rule.arn,
        )
        first = utcnow()
        engine.scheduler.submit(
            lambda t=target, r=row, f=first: _attempt(
                engine, rule.arn, rule.name, t, event, r, 1, f
            ),
            label=f"eventbridge {rule.name} -> {arn}",
        )


def _kind(arn: str) -> str:
    service = arn.split(":")[2] if arn.count(":") >= 5 else ""
    if service == "lambda":
        return "lambda"
    if service == "sqs":
        return "sqs"
    if service == "sns":
        return "sns"
    if service == "logs":
        return "logs"
    return "other"


def _attempt(
    engine: EventEngine,
    rule_arn: str,
    rule_name: str,
    target: dict[str, Any],
    event: dict[str, Any],
    row: Any,
    attempt: int,
    first: datetime,
) -> None:
    row.attempts = attempt
    text = patterns.target_input(target, event, rule_arn=rule_arn, rule_name=rule_name)
    try:
        _send(engine, target, text, event, rule_arn)
    except DeliveryError as err:
        policy = target.get("RetryPolicy") or {}
        max_attempts = int(policy.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS))
        max_age = int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE))
        age_aws = (utcnow() - first).total_seconds() / max(engine.time.factor, 1e-9)
        exhausted = None
        if err.retryable:
            if attempt - 1 >= max_attempts:
                exhausted = "MaximumRetryAttempts"
            elif age_aws >= max_age:
                exhausted = "MaximumEventAgeInSeconds"
            else:
                engine.counters.add("AWS/Events", "RetryInvocationAttempts", "RuleName", rule_name)
                row.status = "Retrying"
                row.detail = str(err)
                backoff = min(2 ** (attempt - 1), 300) * random.uniform(0.5, 1.0)
                engine.scheduler.submit(
                    lambda: _attempt(
                        engine, rule_arn, rule_name, target, event, row, attempt + 1, first
                    ),
                    delay=engine.time.seconds(backoff),
                    label=f"eventbridge retry {rule_name} -> {target.get('Arn')}",
                )
                return
        _failed(engine, rule_arn, rule_name, target, event, row, err, attempt, exhausted)
        return
    engine.counters.add("AWS/Events", "Invocations", "RuleName", rule_name)
    engine.log.close(row, "Delivered")


def _send(
    engine: EventEngine, target: dict[str, Any], text: str, event: dict[str, Any], rule_arn: str
) -> None:
    arn = target["Arn"]
    kind = _kind(arn)
    if kind == "lambda":
        invoke_lambda(engine.runtime(), arn, text.encode(), "events.amazonaws.com", rule_arn)
    elif kind == "sqs":
        group = (target.get("SqsParameters") or {}).get("MessageGroupId")
        send_sqs(
            arn,
            text,
            None,
            group,
            event.get("id") if group else None,
            service="events.amazonaws.com",
            source_arn=rule_arn,
        )
    elif kind == "sns":
        _to_sns(arn, text, rule_arn)
    elif kind == "logs":
        _to_logs(arn, text, event)


def _to_sns(arn: str, text: str, rule_arn: str) -> None:
    from moto.sns import sns_backends

    from .queue_policy import allows

    parts = arn.split(":")
    backend = sns_backends[parts[4]][parts[3]]
    if arn not in backend.topics:
        raise DeliveryError(
            "ResourceNotFound",
            f"Topic {arn} does not exist",
            retryable=False,
            eb_code="NO_RESOURCE",
        )
    if not allows(
        backend.topics[arn].policy, "events.amazonaws.com", arn, rule_arn, action="sns:Publish"
    ):
        raise DeliveryError(
            "AccessDenied",
            f"The topic policy of {arn} does not allow events.amazonaws.com to publish "
            f"for {rule_arn}",
            retryable=False,
            eb_code="NO_PERMISSIONS",
        )
    backend.publish(text, arn=arn)


def _to_logs(arn: str, text: str, event: dict[str, Any]) -> None:
    from moto.logs import logs_backends

    parts = arn.split(":")
    group = parts[6] if len(parts) > 6 else ""
    backend = logs_backends[parts[4]][parts[3]]
    if group not in backend.groups:
        raise DeliveryError(
            "ResourceNotFound",
            f"Log group {group} does not exist",
            retryable=False,
            eb_code="NO_RESOURCE",
        )
    stream = str(event.get("id") or uuid.uuid4())
    log_group = backend.groups[group]
    if stream not in log_group.streams:
        backend.create_log_stream(group, stream)
    backend.put_log_events(
        group, stream, [{"timestamp": int(utcnow().timestamp() * 1000), "message": text}]
    )


def _failed(
    engine: EventEngine,
    rule_arn: str,
    rule_name: str,
    target: dict[str, Any],
    event: dict[str, Any],
    row: Any,
    err: DeliveryError,
    attempt: int,
    exhausted: str | None,
) -> None:
    engine.counters.add("AWS/Events", "FailedInvocations", "RuleName", rule_name)
    detail = str(err)
    dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
    if dlq:
        attrs = {
            "RULE_ARN": {"DataType": "String", "StringValue": rule_arn},
            "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
            "ERROR_CODE": {"DataType": "String", "StringValue": err.eb_code},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": str(err)[:1024] or err.eb_code},
            "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(attempt - 1)},
        }
        if exhausted:
            attrs["EXHAUSTED_RETRY_CONDITION"] = {"DataType": "String", "StringValue": exhausted}
        try:
            send_sqs(
                dlq,
                json.dumps(event, separators=(",", ":")),
                attrs,
                service="events.amazonaws.com",
                source_arn=rule_arn,
            )
            engine.counters.add("AWS/Events", "InvocationsSentToDLQ", "RuleName", rule_name)
            detail += f" (sent to DLQ {dlq})"
        except DeliveryError as dlq_err:
            engine.counters.add(
                "AWS/Events", "InvocationsFailedToBeSentToDLQ", "RuleName", rule_name
            )
            detail += f" (DLQ failed: {dlq_err})"
    engine.log.close(row, err.status, detail)


def install() -> None:
    """Route moto's rule deliveries through the lab (idempotent)."""
    from moto.events.models import Rule

    if getattr(Rule.send_to_targets, "_rdslab_events", False):
        return
    _ORIGINAL["send_to_targets"] = Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        engine = _state.current()
        if engine is None:
            return _ORIGINAL["send_to_targets"](self, original_event, transform_input)
        route(engine, self, dict(original_event), transform_input)
        return None

    send_to_targets._rdslab_events = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def install_test_event_pattern() -> None:
    """``TestEventPattern``, which moto 5.2.5 leaves empty, answered by the lab's matcher."""
    from moto.events.responses import EventsHandler

    if getattr(EventsHandler.test_event_pattern, "_rdslab_events", False):
        return

    def test_event_pattern(self: Any) -> str:
        from moto.events.exceptions import InvalidEventPatternException, ValidationException

        try:
            pattern = json.loads(self._get_param("EventPattern") or "")
            if not isinstance(pattern, dict):
                raise ValueError("Filter is not an object")
        except ValueError as exc:
            raise InvalidEventPatternException(reason=str(exc)) from exc
        try:
            event = json.loads(self._get_param("Event") or "")
        except ValueError as exc:
            raise ValidationException(f"Parameter Event is not valid. Reason: {exc}") from exc
        for field in ("id", "account", "source", "time", "region", "detail-type"):
            if field not in event:
                raise ValidationException(
                    f"Parameter Event is not valid. Reason: Provided Event must have mandatory "
                    f"field {field}"
                )
        return json.dumps({"Result": patterns.matches(pattern, event)})

    test_event_pattern._rdslab_events = True  # type: ignore[attr-defined]
    EventsHandler.test_event_pattern = test_event_pattern  # type: ignore[method-assign]
