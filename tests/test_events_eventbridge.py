"""RDS events on the default EventBridge bus: envelope and detail, pattern routing, target input,
Lambda targets (resource policy), retries and dead-letter queues, SNS and CloudWatch Logs targets."""

# ruff: noqa: F811  (pytest fixtures imported from test_events_support are parameters here)

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rdslab.events import patterns
from test_events_support import (  # noqa: F401
    FakeLambdaApiError,
    clients,
    create_instance,
    drain,
    engine,
    events_lab,
    fake_runtime,
    make_function,
    make_queue,
    uid,
)

DB = uid("eb-db")


@pytest.fixture(scope="module")
def world(clients: dict[str, Any]) -> dict[str, Any]:
    create_instance(clients["rds"], DB)
    yield clients
    try:
        clients["rds"].delete_db_instance(DBInstanceIdentifier=DB, SkipFinalSnapshot=True)
    except ClientError:
        pass


def _rule_to_queue(
    c: dict[str, Any], pattern: dict[str, Any], **target: Any
) -> tuple[str, str, str]:
    name = uid("rule")
    rule_arn = c["events"].put_rule(Name=name, EventPattern=json.dumps(pattern))["RuleArn"]
    url, arn = make_queue(c["sqs"])
    c["events"].put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn, **target}])
    return name, rule_arn, url


def _bodies(c: dict[str, Any], url: str) -> list[Any]:
    return [json.loads(m["Body"]) for m in drain(c["sqs"], url)]


def test_envelope_and_detail(world: dict[str, Any], engine: Any) -> None:
    c = world
    name, _, url = _rule_to_queue(c, {"source": ["aws.rds"], "detail": {"SourceIdentifier": [DB]}})
    c["rds"].reboot_db_instance(DBInstanceIdentifier=DB)
    assert engine.wait_idle(5)
    (event,) = _bodies(c, url)
    arn = f"arn:aws:rds:us-east-1:123456789012:db:{DB}"
    assert list(event) == [
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    ]
    assert event["version"] == "0" and event["source"] == "aws.rds"
    assert event["detail-type"] == "RDS DB Instance Event"
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    assert event["resources"] == [arn]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    detail = event["detail"]
    assert list(detail) == [
        "EventCategories",
        "SourceType",
        "SourceArn",
        "Date",
        "Message",
        "SourceIdentifier",
        "EventID",
    ]
    assert detail == {
        "EventCategories": ["availability"],
        "SourceType": "DB_INSTANCE",
        "SourceArn": arn,
        "Date": detail["Date"],
        "Message": "DB instance restarted",
        "SourceIdentifier": DB,
        "EventID": "RDS-EVENT-0006",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", detail["Date"])


@pytest.mark.parametrize(
    ("source_id", "event_id", "detail_type", "source_type"),
    [
        ("cl-eb", "0170", "RDS DB Cluster Event", "CLUSTER"),
        ("snap-eb", "0042", "RDS DB Snapshot Event", "SNAPSHOT"),
        ("csnap-eb", "0169", "RDS DB Cluster Snapshot Event", "CLUSTER_SNAPSHOT"),
        ("pg-eb", "0037", "RDS DB Parameter Group Event", "DB_PARAM"),
    ],
)
def test_detail_type_per_source_type(
    world: dict[str, Any],
    engine: Any,
    source_id: str,
    event_id: str,
    detail_type: str,
    source_type: str,
) -> None:
    c = world
    _, _, url = _rule_to_queue(
        c, {"source": ["aws.rds"], "detail": {"SourceIdentifier": [source_id]}}
    )
    engine.inject(source_id, event_id)
    assert engine.wait_idle(5)
    (event,) = _bodies(c, url)
    assert event["detail-type"] == detail_type and event["detail"]["SourceType"] == source_type


# ---------------------------------------------------------------------------- routing
ROUTING = [
    ("detail-type", {"detail-type": ["RDS DB Instance Event"]}, {"0006", "0089", "0087"}),
    ("other detail-type", {"detail-type": ["RDS DB Cluster Event"]}, set()),
    ("category", {"detail": {"EventCategories": ["low storage"]}}, {"0089"}),
    ("event id", {"detail": {"EventID": ["RDS-EVENT-0087"]}}, {"0087"}),
    ("prefix", {"detail": {"Message": [{"prefix": "DB instance"}]}}, {"0006", "0087"}),
    (
        "anything-but",
        {"detail": {"EventID": [{"anything-but": ["RDS-EVENT-0006", "RDS-EVENT-0087"]}]}},
        {"0089"},
    ),
    (
        "anything-but prefix",
        {"detail": {"Message": [{"anything-but": {"prefix": "DB"}}]}},
        {"0089"},
    ),
    ("exists false", {"detail": {"Tags": [{"exists": False}]}}, {"0006", "0089", "0087"}),
    ("exists true", {"detail": {"Tags": [{"exists": True}]}}, set()),
    (
        "$or",
        {
            "$or": [
                {"detail": {"EventID": ["RDS-EVENT-0006"]}},
                {"detail": {"EventCategories": ["low storage"]}},
            ]
        },
        {"0006", "0089"},
    ),
    (
        "suffix ignore case",
        {"detail": {"Message": [{"suffix": {"equals-ignore-case": "STOPPED"}}]}},
        {"0087"},
    ),
    ("wildcard", {"detail": {"EventID": [{"wildcard": "RDS-EVENT-00*7"}]}}, {"0087"}),
]


@pytest.mark.parametrize("case", ROUTING, ids=[r[0] for r in ROUTING])
def test_pattern_routing(world: dict[str, Any], engine: Any, case: Any) -> None:
    _, extra, expected = case
    c = world
    pattern = {
        "source": ["aws.rds"],
        "resources": [f"arn:aws:rds:us-east-1:123456789012:db:{DB}"],
        **extra,
    }
    _, _, url = _rule_to_queue(c, pattern)
    for event_id in ("0006", "0089", "0087"):
        engine.inject(DB, event_id)
    assert engine.wait_idle(5)
    assert {e["detail"]["EventID"][-4:] for e in _bodies(c, url)} == expected


def test_numeric_and_learner_put_events_to_lambda(
    world: dict[str, Any], engine: Any, fake_runtime: Any
) -> None:
    c = world
    fn, fn_arn = make_function(c)
    name = uid("rule")
    rule_arn = c["events"].put_rule(
        Name=name,
        EventPattern=json.dumps(
            {"source": ["lab.orders"], "detail": {"total": [{"numeric": [">", 100, "<=", 500]}]}}
        ),
    )["RuleArn"]
    c["events"].put_targets(Rule=name, Targets=[{"Id": "f", "Arn": fn_arn}])
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="eb",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    for total in (50, 150, 600):
        c["events"].put_events(
            Entries=[
                {
                    "Source": "lab.orders",
                    "DetailType": "Order",
                    "Detail": json.dumps({"total": total}),
                }
            ]
        )
    assert engine.wait_idle(5)
    calls = fake_runtime.for_function(fn)
    assert [call["payload"]["detail"]["total"] for call in calls] == [150]
    assert calls[0]["principal"] == "events.amazonaws.com" and calls[0]["source_arn"] == rule_arn
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", calls[0]["payload"]["time"])
    assert "ingestion-time" not in calls[0]["payload"]


def test_disabled_rule_delivers_nothing(world: dict[str, Any], engine: Any) -> None:
    c = world
    name, _, url = _rule_to_queue(c, {"source": ["aws.rds"], "detail": {"SourceIdentifier": [DB]}})
    c["events"].disable_rule(Name=name)
    engine.inject(DB, "0006")
    assert engine.wait_idle(5)
    assert _bodies(c, url) == []


# ---------------------------------------------------------------------------- target input
def test_input_transformer(world: dict[str, Any], engine: Any) -> None:
    c = world
    transformer = {
        "InputPathsMap": {
            "id": "$.detail.EventID",
            "db": "$.detail.SourceIdentifier",
            "cats": "$.detail.EventCategories",
            "tags": "$.detail.Tags",
        },
        "InputTemplate": '{"text": "<db> says <id>", "categories": <cats>, "rule": "<aws.events.rule-name>", "tags": <tags>}',
    }
    name, _, url = _rule_to_queue(
        c,
        {"source": ["aws.rds"], "detail": {"SourceIdentifier": [DB]}},
        InputTransformer=transformer,
    )
    engine.inject(DB, "0089")
    assert engine.wait_idle(5)
    (msg,) = drain(c["sqs"], url)
    assert json.loads(msg["Body"]) == {
        "text": f"{DB} says RDS-EVENT-0089",
        "categories": ["low storage"],
        "rule": name,
        "tags": None,  # a path that does not resolve becomes null
    }


def test_input_and_input_path(world: dict[str, Any], engine: Any) -> None:
    c = world
    pattern = {"source": ["aws.rds"], "detail": {"SourceIdentifier": [DB]}}
    _, _, url_const = _rule_to_queue(c, pattern, Input='{"fixed": true}')
    _, _, url_path = _rule_to_queue(c, pattern, InputPath="$.detail")
    engine.inject(DB, "0087")
    assert engine.wait_idle(5)
    assert [m["Body"] for m in drain(c["sqs"], url_const)] == ['{"fixed": true}']
    assert [json.loads(m["Body"])["EventID"] for m in drain(c["sqs"], url_path)] == [
        "RDS-EVENT-0087"
    ]


def test_transform_unit() -> None:
    event = {
        "detail": {"EventID": "RDS-EVENT-0006", "Message": 'say "hi"', "n": 5},
        "resources": ["a", "b"],
    }
    paths = {
        "id": "$.detail.EventID",
        "msg": "$.detail.Message",
        "n": "$.detail.n",
        "r": "$.resources[1]",
    }
    assert patterns.transform('"<id>: <msg>"', paths, event) == '"RDS-EVENT-0006: say \\"hi\\""'
    assert (
        patterns.transform('{"n": <n>, "r": <r>, "s": "<n>"}', paths, event)
        == '{"n": 5, "r": "b", "s": "5"}'
    )
    assert patterns.resolve(event, "$.detail.nope") is not None and patterns.is_missing(
        patterns.resolve(event, "$.x")
    )


# ---------------------------------------------------------------------------- Lambda / failures
def test_lambda_target_needs_resource_policy(
    world: dict[str, Any], engine: Any, fake_runtime: Any
) -> None:
    c = world
    fn, fn_arn = make_function(c)
    name = uid("rule")
    rule_arn = c["events"].put_rule(
        Name=name,
        EventPattern=json.dumps({"source": ["aws.rds"], "detail": {"SourceIdentifier": [DB]}}),
    )["RuleArn"]
    dlq_url, dlq_arn = make_queue(c["sqs"])
    c["events"].put_targets(
        Rule=name, Targets=[{"Id": "f", "Arn": fn_arn, "DeadLetterConfig": {"Arn": dlq_arn}}]
    )

    engine.inject(DB, "0006")
    assert engine.wait_idle(5)
    assert fake_runtime.for_function(fn) == []
    rows = engine.deliveries()
    assert rows[rows["target"] == fn_arn]["status"].tolist() == ["AccessDenied"]
    assert engine.counters.get("FailedInvocations", name) == 1
    (dead,) = drain(c["sqs"], dlq_url)
    attrs = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attrs["ERROR_CODE"] == "NO_PERMISSIONS"
    assert attrs["RULE_ARN"] == rule_arn and attrs["TARGET_ARN"] == fn_arn
    assert "ERROR_MESSAGE" in attrs and attrs["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in attrs  # not retried: a permission error
    assert json.loads(dead["Body"])["detail"]["EventID"] == "RDS-EVENT-0006"

    # a permission for the SNS principal is not one for EventBridge
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
    )
    engine.inject(DB, "0006")
    assert engine.wait_idle(5)
    assert fake_runtime.for_function(fn) == []
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="eb",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    c["rds"].reboot_db_instance(DBInstanceIdentifier=DB)
    (call,) = fake_runtime.wait_for(fn)
    assert call["payload"]["detail"]["EventID"] == "RDS-EVENT-0006"
    assert call["payload"]["source"] == "aws.rds"


def test_retries_then_dead_letter_queue(
    world: dict[str, Any], engine: Any, fake_runtime: Any
) -> None:
    c = world
    fn, fn_arn = make_function(c)
    name = uid("rule")
    rule_arn = c["events"].put_rule(
        Name=name, EventPattern=json.dumps({"detail": {"SourceIdentifier": [DB]}})
    )["RuleArn"]
    dlq_url, dlq_arn = make_queue(c["sqs"])
    c["events"].put_targets(
        Rule=name,
        Targets=[
            {
                "Id": "f",
                "Arn": fn_arn,
                "DeadLetterConfig": {"Arn": dlq_arn},
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            }
        ],
    )
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="eb",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    # throttled twice, then accepted: delivered on the third attempt
    fake_runtime.fail_with[fn] = [
        FakeLambdaApiError(429, "TooManyRequestsException", "slow down")
    ] * 2
    engine.inject(DB, "0087")
    assert engine.wait_idle(5)
    row = engine.deliveries().query("target == @fn_arn").iloc[-1]
    assert (row["status"], row["attempts"]) == ("Delivered", 3)
    assert len(fake_runtime.for_function(fn)) == 1

    # throttled every time: 1 + 2 retries, then the DLQ says why
    fake_runtime.fail_with[fn] = [
        FakeLambdaApiError(429, "TooManyRequestsException", "slow down")
    ] * 3
    engine.inject(DB, "0087")
    assert engine.wait_idle(5)
    row = engine.deliveries().query("target == @fn_arn").iloc[-1]
    assert (row["status"], row["attempts"]) == ("Throttled", 3)
    (dead,) = drain(c["sqs"], dlq_url)
    attrs = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attrs["ERROR_CODE"] == "THROTTLING"
    assert attrs["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attrs["RETRY_ATTEMPTS"] == "2"
    assert engine.counters.get("RetryInvocationAttempts", name) >= 4


def test_missing_queue_target_goes_to_dlq(world: dict[str, Any], engine: Any) -> None:
    c = world
    dlq_url, dlq_arn = make_queue(c["sqs"])
    gone = "arn:aws:sqs:us-east-1:123456789012:" + uid("gone")
    name = uid("rule")
    c["events"].put_rule(Name=name, EventPattern=json.dumps({"detail": {"SourceIdentifier": [DB]}}))
    c["events"].put_targets(
        Rule=name, Targets=[{"Id": "q", "Arn": gone, "DeadLetterConfig": {"Arn": dlq_arn}}]
    )
    engine.inject(DB, "0006")
    assert engine.wait_idle(5)
    (dead,) = drain(c["sqs"], dlq_url)
    assert dead["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_RESOURCE"
    assert engine.counters.get("InvocationsSentToDLQ", name) == 1


def test_sns_and_logs_targets(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    url, q_arn = make_queue(c["sqs"])
    c["sns"].subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=q_arn, Attributes={"RawMessageDelivery": "true"}
    )
    group = "/aws/events/" + uid("rds")
    c["logs"].create_log_group(logGroupName=group)
    name = uid("rule")
    c["events"].put_rule(Name=name, EventPattern=json.dumps({"detail": {"SourceIdentifier": [DB]}}))
    c["events"].put_targets(
        Rule=name,
        Targets=[
            {"Id": "t", "Arn": topic},
            {"Id": "l", "Arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{group}"},
        ],
    )
    # a new topic's default policy does not let EventBridge publish (as on AWS)
    engine.inject(DB, "0088")
    assert engine.wait_idle(5)
    assert drain(c["sqs"], url) == []
    refused = engine.deliveries()
    refused = refused[refused["target"] == topic]
    assert refused["status"].tolist() == ["AccessDenied"]
    rule_arn = c["events"].describe_rule(Name=name)["Arn"]
    c["sns"].set_topic_attributes(
        TopicArn=topic,
        AttributeName="Policy",
        AttributeValue=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": topic,
                        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                    }
                ],
            }
        ),
    )
    engine.inject(DB, "0088")
    assert engine.wait_idle(5)
    (msg,) = drain(c["sqs"], url)
    assert json.loads(msg["Body"])["detail"]["EventID"] == "RDS-EVENT-0088"
    logged = c["logs"].filter_log_events(logGroupName=group)["events"]
    assert [json.loads(e["message"])["detail"]["Message"] for e in logged] == [
        "DB instance started",
        "DB instance started",
    ]


MATCHER = [
    ({"a": [1]}, {"a": 1.0}, True),
    ({"a": [1]}, {"a": True}, False),  # booleans are not numbers
    ({"a": ["1"]}, {"a": 1}, False),
    ({"a": [{"numeric": [">=", 0, "<", 10]}]}, {"a": 10}, False),
    ({"a": [{"numeric": [">", 0]}]}, {"a": "5"}, False),
    ({"a": [{"exists": True}]}, {"a": {"b": 1}}, False),  # exists matches leaves only
    ({"a": [{"exists": False}]}, {}, True),
    ({"a": [None]}, {"a": None}, True),
    ({"a": [None]}, {}, False),
    ({"a": ["x"]}, {"a": ["y", "x"]}, True),  # any element of an array
    ({"a": [{"anything-but": "x"}]}, {"a": 3}, True),
    ({"a": [{"anything-but": "x"}]}, {}, False),
    ({"a": {"b": ["c"]}}, {"a": "not an object"}, False),
    ({"a": [{"cidr": "10.0.0.0/24"}]}, {"a": "10.0.0.7"}, True),
    ({"a": [{"prefix": {"equals-ignore-case": "rds"}}]}, {"a": "RDS-EVENT"}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), MATCHER)
def test_matcher_rules(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert patterns.matches(pattern, event) is expected


def test_test_event_pattern_uses_the_labs_matcher() -> None:
    import boto3
    import pytest
    import rdslab
    from botocore.exceptions import ClientError

    rdslab.start()
    events = boto3.client("events")
    event = {
        "id": "1",
        "account": "123456789012",
        "source": "aws.rds",
        "time": "2026-12-04T20:00:00Z",
        "region": "us-east-1",
        "detail-type": "RDS DB Instance Event",
        "resources": [],
        "detail": {"EventID": "RDS-EVENT-0049", "EventCategories": ["failover"]},
    }
    hit = {"source": ["aws.rds"], "detail": {"EventCategories": ["failover"]}}
    miss = {"source": ["aws.rds"], "detail": {"EventID": [{"anything-but": "RDS-EVENT-0049"}]}}
    assert (
        events.test_event_pattern(EventPattern=json.dumps(hit), Event=json.dumps(event))["Result"]
        is True
    )
    assert (
        events.test_event_pattern(EventPattern=json.dumps(miss), Event=json.dumps(event))["Result"]
        is False
    )
    with pytest.raises(ClientError) as err:
        events.test_event_pattern(EventPattern="[1]", Event=json.dumps(event))
    assert err.value.response["Error"]["Code"] == "InvalidEventPatternException"


def test_delivery_metrics_are_readable_through_cloudwatch() -> None:
    import datetime

    import boto3
    import rdslab
    from rdslab.events.delivery import Metrics

    rdslab.start()
    Metrics().add("AWS/Events", "FailedInvocations", "RuleName", "metrics-rule", 2)
    now = datetime.datetime.now(datetime.UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events",
        MetricName="FailedInvocations",
        Dimensions=[{"Name": "RuleName", "Value": "metrics-rule"}],
        StartTime=now - datetime.timedelta(minutes=5),
        EndTime=now + datetime.timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert [p["Sum"] for p in points] == [2.0]


def test_eventbridge_needs_the_queue_policy_to_deliver() -> None:
    """Without a queue policy for events.amazonaws.com the target fails (NO_PERMISSIONS) and the
    event goes to the target's DLQ; with it, the event arrives."""
    import uuid

    import boto3
    import rdslab
    from test_events_support import make_queue

    lab = rdslab.start()
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url, arn = make_queue(sqs, policy=False)
    dlq_url, dlq_arn = make_queue(sqs)
    rule = f"qp-{uuid.uuid4().hex[:8]}"
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.rds"]}))[
        "RuleArn"
    ]
    events.put_targets(
        Rule=rule, Targets=[{"Id": "q", "Arn": arn, "DeadLetterConfig": {"Arn": dlq_arn}}]
    )
    lab.events.inject("qp-db", "0087")
    assert lab.events.wait_idle(5)
    assert not sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages")
    (dead,) = sqs.receive_message(
        QueueUrl=dlq_url, MessageAttributeNames=["All"], WaitTimeSeconds=0
    )["Messages"]
    assert dead["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    lab.events.inject("qp-db", "0088")
    assert lab.events.wait_idle(5)
    (msg,) = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)["Messages"]
    assert json.loads(msg["Body"])["detail"]["EventID"] == "RDS-EVENT-0088"
    events.remove_targets(Rule=rule, Ids=["q"])
    events.delete_rule(Name=rule)
