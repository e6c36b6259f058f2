"""Event subscriptions: validation and errors, which events reach which subscription, RDS's SNS
message, and SNS's delivery to SQS (raw and enveloped), email and Lambda (with a fake runtime)."""

# ruff: noqa: F811  (pytest fixtures imported from test_events_support are parameters here)

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_events_support import (  # noqa: F401
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

DB_A = uid("sub-a")
DB_B = uid("sub-b")


@pytest.fixture(scope="module")
def world(clients: dict[str, Any]) -> dict[str, Any]:
    create_instance(clients["rds"], DB_A)
    create_instance(clients["rds"], DB_B)
    yield clients
    for name in (DB_A, DB_B):
        try:
            clients["rds"].delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
        except ClientError:
            pass


def _topic_with_queue(c: dict[str, Any], raw: bool = True) -> tuple[str, str]:
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    url, arn = make_queue(c["sqs"])
    sub = c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    c["sns"].set_subscription_attributes(
        SubscriptionArn=sub,
        AttributeName="RawMessageDelivery",
        AttributeValue="true" if raw else "false",
    )
    return topic, url


def _event_ids(c: dict[str, Any], url: str) -> list[tuple[str, str]]:
    out = []
    for m in drain(c["sqs"], url):
        body = json.loads(m["Body"])
        out.append((re.search(r"RDS-EVENT-\d{4}", body["Event ID"]).group(0), body["Source ID"]))
    return sorted(out)


# ---------------------------------------------------------------------------- filtering
FILTERS = [
    (
        "everything",
        {},
        {("RDS-EVENT-0006", DB_A), ("RDS-EVENT-0089", DB_B), ("RDS-EVENT-0171", "cl-x")},
    ),
    (
        "db-instance only",
        {"SourceType": "db-instance"},
        {("RDS-EVENT-0006", DB_A), ("RDS-EVENT-0089", DB_B)},
    ),
    ("db-cluster only", {"SourceType": "db-cluster"}, {("RDS-EVENT-0171", "cl-x")}),
    (
        "db-instance, category low storage",
        {"SourceType": "db-instance", "EventCategories": ["low storage"]},
        {("RDS-EVENT-0089", DB_B)},
    ),
    (
        "db-instance, categories given in upper case",
        {"SourceType": "db-instance", "EventCategories": ["Availability"]},
        {("RDS-EVENT-0006", DB_A)},
    ),
    (
        "db-instance, source A",
        {"SourceType": "db-instance", "SourceIds": [DB_A]},
        {("RDS-EVENT-0006", DB_A)},
    ),
    ("disabled", {"Enabled": False}, set()),
]


@pytest.mark.parametrize("case", FILTERS, ids=[f[0] for f in FILTERS])
def test_subscription_filters(world: dict[str, Any], engine: Any, case: Any) -> None:
    _, kwargs, expected = case
    c = world
    topic, url = _topic_with_queue(c)
    name = uid("es")
    c["rds"].create_event_subscription(SubscriptionName=name, SnsTopicArn=topic, **kwargs)
    try:
        engine.inject(DB_A, "0006")
        engine.inject(DB_B, "0089")
        engine.inject("cl-x", "0171")
        assert engine.wait_idle(5)
        assert set(_event_ids(c, url)) == expected
    finally:
        c["rds"].delete_event_subscription(SubscriptionName=name)


def test_the_topic_policy_decides_whether_rds_may_publish(
    world: dict[str, Any], engine: Any
) -> None:
    c = world
    topic, url = _topic_with_queue(c)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_A]
    )

    def policy(principal: dict[str, Any], condition: dict[str, Any]) -> None:
        statement = {"Effect": "Allow", "Principal": principal, "Action": "sns:Publish"}
        document = {"Version": "2012-10-17", "Statement": [{**statement, "Resource": topic}]}
        document["Statement"][0]["Condition"] = condition
        c["sns"].set_topic_attributes(
            TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(document)
        )

    try:
        engine.inject(DB_A, "0006")  # the default policy lets the account's RDS publish
        assert engine.wait_idle(5)
        assert _event_ids(c, url) == [("RDS-EVENT-0006", DB_A)]
        # a policy for the account's own principals only: RDS is left out, and nobody is told
        policy({"AWS": "arn:aws:iam::123456789012:root"}, {})
        engine.inject(DB_A, "0006")
        assert engine.wait_idle(5)
        assert _event_ids(c, url) == []
        log = engine.deliveries()
        assert log[log["target"] == topic]["status"].tolist()[-1] == "AccessDenied"
        # RDS's documented policy, narrowed to instances whose names start with "sub-a"
        policy(
            {"Service": "events.rds.amazonaws.com"},
            {
                "ArnLike": {"aws:SourceArn": "arn:aws:rds:us-east-1:123456789012:db:sub-a*"},
                "StringEquals": {"aws:SourceAccount": "123456789012"},
            },
        )
        engine.inject(DB_A, "0006")
        assert engine.wait_idle(5)
        assert _event_ids(c, url) == [("RDS-EVENT-0006", DB_A)]
    finally:
        c["rds"].delete_event_subscription(SubscriptionName=name)


def test_add_and_remove_source_identifier(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic, url = _topic_with_queue(c)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_A]
    )
    got = c["rds"].add_source_identifier_to_subscription(
        SubscriptionName=name, SourceIdentifier=DB_B
    )
    assert got["EventSubscription"]["SourceIdsList"] == [DB_A, DB_B]
    assert got["EventSubscription"]["Status"] == "modifying"
    engine.inject(DB_B, "0006")
    assert engine.wait_idle(5)
    assert _event_ids(c, url) == [("RDS-EVENT-0006", DB_B)]
    c["rds"].remove_source_identifier_from_subscription(
        SubscriptionName=name, SourceIdentifier=DB_B
    )
    engine.inject(DB_B, "0006")
    engine.inject(DB_A, "0006")
    assert engine.wait_idle(5)
    assert _event_ids(c, url) == [("RDS-EVENT-0006", DB_A)]
    c["rds"].modify_event_subscription(SubscriptionName=name, Enabled=False)
    engine.inject(DB_A, "0006")
    assert engine.wait_idle(5)
    assert _event_ids(c, url) == []
    listed = c["rds"].describe_event_subscriptions(SubscriptionName=name)["EventSubscriptionsList"][
        0
    ]
    assert (
        listed["Enabled"] is False
        and listed["Status"] == "active"
        and listed["SourceIdsList"] == [DB_A]
    )
    c["rds"].delete_event_subscription(SubscriptionName=name)


def test_subscription_shape(world: dict[str, Any]) -> None:
    c = world
    topic, _ = _topic_with_queue(c)
    name = uid("es")
    created = c["rds"].create_event_subscription(
        SubscriptionName=name,
        SnsTopicArn=topic,
        SourceType="db-instance",
        EventCategories=["backup"],
        Tags=[{"Key": "k", "Value": "v"}],
    )["EventSubscription"]
    assert created["Status"] == "creating" and created["Enabled"] is True
    assert created["EventSubscriptionArn"] == f"arn:aws:rds:us-east-1:123456789012:es:{name}"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", created["SubscriptionCreationTime"]
    )
    assert created["CustomerAwsId"] == "123456789012" and created["EventCategoriesList"] == [
        "backup"
    ]
    tags = c["rds"].list_tags_for_resource(ResourceName=created["EventSubscriptionArn"])["TagList"]
    assert tags == [{"Key": "k", "Value": "v"}]
    c["sns"].delete_topic(TopicArn=topic)
    listed = c["rds"].describe_event_subscriptions(SubscriptionName=name)["EventSubscriptionsList"][
        0
    ]
    assert listed["Status"] == "topic-not-exist"
    c["rds"].delete_event_subscription(SubscriptionName=name)


BAD = [
    (
        "missing topic",
        {"SnsTopicArn": "arn:aws:sns:us-east-1:123456789012:nope"},
        "SNSTopicArnNotFound",
    ),
    ("FIFO topic", {"fifo": True}, "SNSInvalidTopic"),
    (
        "unknown category",
        {"SourceType": "db-instance", "EventCategories": ["explosions"]},
        "SubscriptionCategoryNotFound",
    ),
    (
        "category of another type",
        {"SourceType": "db-snapshot", "EventCategories": ["failover"]},
        "SubscriptionCategoryNotFound",
    ),
    ("categories without type", {"EventCategories": ["backup"]}, "InvalidParameterCombination"),
    ("source ids without type", {"SourceIds": [DB_A]}, "InvalidParameterCombination"),
    (
        "unknown source",
        {"SourceType": "db-instance", "SourceIds": ["no-such-db"]},
        "SourceNotFound",
    ),
    ("bad source type", {"SourceType": "db-nothing"}, "InvalidParameterValue"),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_subscription_bad_input(world: dict[str, Any], case: Any) -> None:
    _, kwargs, code = case
    c = world
    kwargs = dict(kwargs)
    if kwargs.pop("fifo", False):
        topic = c["sns"].create_topic(Name=uid("t") + ".fifo", Attributes={"FifoTopic": "true"})[
            "TopicArn"
        ]
    else:
        topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    kwargs.setdefault("SnsTopicArn", topic)
    with pytest.raises(ClientError) as err:
        c["rds"].create_event_subscription(SubscriptionName=uid("es"), **kwargs)
    assert err.value.response["Error"]["Code"] == code


def test_subscription_duplicates_and_unknown_names(world: dict[str, Any]) -> None:
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    name = uid("es")
    c["rds"].create_event_subscription(SubscriptionName=name, SnsTopicArn=topic)
    for call, kwargs, code in (
        (
            c["rds"].create_event_subscription,
            {"SubscriptionName": name, "SnsTopicArn": topic},
            "SubscriptionAlreadyExist",
        ),
        (
            c["rds"].describe_event_subscriptions,
            {"SubscriptionName": "nope"},
            "SubscriptionNotFound",
        ),
        (
            c["rds"].modify_event_subscription,
            {"SubscriptionName": "nope", "Enabled": False},
            "SubscriptionNotFound",
        ),
        (c["rds"].delete_event_subscription, {"SubscriptionName": "nope"}, "SubscriptionNotFound"),
        (
            c["rds"].remove_source_identifier_from_subscription,
            {"SubscriptionName": name, "SourceIdentifier": "nope"},
            "SourceNotFound",
        ),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] == code
    c["rds"].delete_event_subscription(SubscriptionName=name)


# ---------------------------------------------------------------------------- RDS's message
def test_sns_message_body_subject_and_attributes(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic, url = _topic_with_queue(c, raw=False)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_A]
    )
    c["rds"].reboot_db_instance(DBInstanceIdentifier=DB_A)
    assert engine.wait_idle(5)
    (msg,) = drain(c["sqs"], url)
    c["rds"].delete_event_subscription(SubscriptionName=name)

    raw_body = msg["Body"]
    assert raw_body.startswith('{\n  "Type" : "Notification",\n  "MessageId" : "')
    envelope = json.loads(raw_body)
    assert list(envelope) == [
        "Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp",
        "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL", "MessageAttributes",
    ]  # fmt: skip
    assert envelope["Subject"] == "RDS Notification Message"
    assert envelope["TopicArn"] == topic and envelope["SignatureVersion"] == "1"
    assert "SubscriptionArn=arn:aws:sns:us-east-1:123456789012:" in envelope["UnsubscribeURL"]
    arn = f"arn:aws:rds:us-east-1:123456789012:db:{DB_A}"
    assert envelope["MessageAttributes"] == {
        "EventID": {"Type": "String", "Value": "RDS-EVENT-0006"},
        "Resource": {"Type": "String", "Value": arn},
    }
    message = envelope["Message"]
    assert isinstance(message, str)
    assert message.startswith('{"Event Source":"db-instance","Event Time":"')
    body = json.loads(message)
    assert list(body) == [
        "Event Source", "Event Time", "Identifier Link", "Source ID", "Source ARN", "Event ID", "Event Message",
    ]  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", body["Event Time"])
    assert (
        body["Identifier Link"]
        == f"https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id={DB_A}"
    )
    assert body["Source ID"] == DB_A and body["Source ARN"] == arn
    assert (
        body["Event ID"]
        == "http://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0006"
    )
    assert body["Event Message"] == "DB instance restarted"


def test_sqs_raw_delivery_carries_attributes(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic, url = _topic_with_queue(c, raw=True)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_B]
    )
    engine.inject(DB_B, "0087")
    assert engine.wait_idle(5)
    (msg,) = drain(c["sqs"], url)
    c["rds"].delete_event_subscription(SubscriptionName=name)
    assert json.loads(msg["Body"])["Event Message"] == "DB instance stopped"
    assert msg["MessageAttributes"]["EventID"] == {
        "StringValue": "RDS-EVENT-0087",
        "DataType": "String",
    }
    assert msg["MessageAttributes"]["Resource"]["StringValue"].endswith(f":db:{DB_B}")


def test_email_outbox(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    address = f"{uid('dba')}@example.com"
    c["sns"].subscribe(TopicArn=topic, Protocol="email", Endpoint=address)
    c["sns"].subscribe(TopicArn=topic, Protocol="email-json", Endpoint="json-" + address)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_A]
    )
    engine.inject(DB_A, "0089")
    assert engine.wait_idle(5)
    c["rds"].delete_event_subscription(SubscriptionName=name)
    mails = engine.emails()
    text = mails[mails["to"] == address].iloc[0]
    assert text["subject"] == "RDS Notification Message"
    assert json.loads(text["body"].split("\n\n--\n")[0])["Event Message"].startswith(
        "The free storage capacity"
    )
    assert "unsubscribe" in text["body"]
    as_json = json.loads(mails[mails["to"] == "json-" + address].iloc[0]["body"])
    assert as_json["Type"] == "Notification" and json.loads(as_json["Message"])["Source ID"] == DB_A


# ---------------------------------------------------------------------------- Lambda
def test_sns_to_lambda_needs_permission(
    world: dict[str, Any], engine: Any, fake_runtime: Any
) -> None:
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    fn, fn_arn = make_function(c)
    sub_arn = c["sns"].subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn)[
        "SubscriptionArn"
    ]
    dlq_url, dlq_arn = make_queue(c["sqs"])
    c["sns"].set_subscription_attributes(
        SubscriptionArn=sub_arn,
        AttributeName="RedrivePolicy",
        AttributeValue=json.dumps({"deadLetterTargetArn": dlq_arn}),
    )
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_A]
    )

    # no resource policy: nothing runs, the failure is visible, the message goes to the DLQ
    engine.inject(DB_A, "0006")
    assert engine.wait_idle(5)
    assert fake_runtime.for_function(fn) == []
    rows = engine.deliveries()
    denied = rows[(rows["target"] == fn_arn)]
    assert list(denied["status"]) == ["AccessDenied"]
    assert engine.counters.get("NumberOfNotificationsFailed", topic.split(":")[-1]) == 1
    (dead,) = drain(c["sqs"], dlq_url)
    assert json.loads(json.loads(dead["Body"])["Message"])["Source ID"] == DB_A

    # a permission for another topic does not help; the right one does
    c["lambda"].add_permission(
        FunctionName=fn, StatementId="other", Action="lambda:InvokeFunction", Principal="sns.amazonaws.com",
        SourceArn=topic + "-other",
    )  # fmt: skip
    engine.inject(DB_A, "0006")
    assert engine.wait_idle(5)
    assert fake_runtime.for_function(fn) == []
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn=topic,
    )
    c["rds"].reboot_db_instance(DBInstanceIdentifier=DB_A)
    (call,) = fake_runtime.wait_for(fn)
    c["rds"].delete_event_subscription(SubscriptionName=name)

    assert call["principal"] == "sns.amazonaws.com" and call["source_arn"] == topic
    (record,) = call["payload"]["Records"]
    assert list(record) == ["EventVersion", "EventSubscriptionArn", "EventSource", "Sns"]
    assert record["EventVersion"] == "1.0" and record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == sub_arn
    sns = record["Sns"]
    assert list(sns) == [
        "SignatureVersion", "Timestamp", "Signature", "SigningCertUrl", "MessageId", "Message",
        "MessageAttributes", "Type", "UnsubscribeUrl", "TopicArn", "Subject",
    ]  # fmt: skip
    assert sns["Type"] == "Notification" and sns["TopicArn"] == topic
    assert sns["Subject"] == "RDS Notification Message"
    assert sns["MessageAttributes"]["EventID"] == {"Type": "String", "Value": "RDS-EVENT-0006"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sns["Timestamp"])
    assert json.loads(sns["Message"])["Event Message"] == "DB instance restarted"


def test_learner_publish_reaches_lambda_through_the_lab(
    world: dict[str, Any], engine: Any, fake_runtime: Any
) -> None:
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    fn, fn_arn = make_function(c)
    c["sns"].subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn)
    c["lambda"].add_permission(
        FunctionName=fn,
        StatementId="sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn=topic,
    )
    c["sns"].publish(TopicArn=topic, Message="hello", Subject="hi")
    (call,) = fake_runtime.wait_for(fn)
    assert call["payload"]["Records"][0]["Sns"]["Message"] == "hello"
    assert call["payload"]["Records"][0]["Sns"]["Subject"] == "hi"


def test_deleted_queue_goes_to_subscription_dlq(world: dict[str, Any], engine: Any) -> None:
    c = world
    topic, url = _topic_with_queue(c, raw=True)
    sub = c["sns"].list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"][0][
        "SubscriptionArn"
    ]
    dlq_url, dlq_arn = make_queue(c["sqs"])
    c["sns"].set_subscription_attributes(
        SubscriptionArn=sub,
        AttributeName="RedrivePolicy",
        AttributeValue=json.dumps({"deadLetterTargetArn": dlq_arn}),
    )
    c["sqs"].delete_queue(QueueUrl=url)
    c["sns"].publish(TopicArn=topic, Message="lost?")
    assert engine.wait_idle(5)
    (dead,) = drain(c["sqs"], dlq_url)
    assert dead["Body"] == "lost?"
    rows = engine.deliveries()
    assert rows[rows["via"] == topic]["status"].tolist() == ["ResourceNotFound"]
    assert engine.counters.get("NumberOfNotificationsRedrivenToDlq", topic.split(":")[-1]) == 1


@pytest.mark.parametrize(
    ("policy", "delivered"),
    [
        ("none", False),
        ("other-topic", False),
        ("explicit-deny", False),
        ("this-topic", True),
    ],
)
def test_sns_needs_the_queue_policy_to_deliver(
    world: dict[str, Any], engine: Any, policy: str, delivered: bool
) -> None:
    """AWS delivers to SQS only when the queue policy lets sns.amazonaws.com send for the topic."""
    c = world
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    url, arn = make_queue(c["sqs"], policy=False)
    allow = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
    }
    statements = {
        "none": None,
        "other-topic": [{**allow, "Condition": {"ArnEquals": {"aws:SourceArn": topic + "-x"}}}],
        "explicit-deny": [allow, {**allow, "Effect": "Deny"}],
        "this-topic": [{**allow, "Condition": {"ArnEquals": {"aws:SourceArn": topic}}}],
    }[policy]
    if statements:
        document = json.dumps({"Version": "2012-10-17", "Statement": statements})
        c["sqs"].set_queue_attributes(QueueUrl=url, Attributes={"Policy": document})
    c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    name = uid("es")
    c["rds"].create_event_subscription(
        SubscriptionName=name, SnsTopicArn=topic, SourceType="db-instance", SourceIds=[DB_B]
    )
    engine.inject(DB_B, "0088")
    assert engine.wait_idle(5)
    c["rds"].delete_event_subscription(SubscriptionName=name)
    got = drain(c["sqs"], url)
    assert bool(got) is delivered
    if not delivered:
        rows = engine.deliveries()
        assert (rows[rows.target == arn].status == "AccessDenied").any()
