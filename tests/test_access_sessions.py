"""Role sessions (a Lambda handler's execution role, or any AssumeRole) are held to the role's
policies on every call to the lab's endpoint, with the service's own error shape."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com", "AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        }
    ],
}


def allow(*statements: tuple[str, str, str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": e, "Action": a, "Resource": r} for e, a, r in statements],
        }
    )


@pytest.fixture
def role(lab: Any) -> Any:
    iam = boto3.client("iam")
    name = f"session-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    yield name, arn
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)


def session(role_arn: str, policy: str | None = None) -> boto3.Session:
    kwargs: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": "tester"}
    if policy:
        kwargs["Policy"] = policy
    creds = boto3.client("sts").assume_role(**kwargs)["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


def error(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_nothing_is_allowed_until_a_policy_allows_it_and_errors_have_each_services_shape(
    role: Any,
) -> None:
    name, arn = role
    queue = boto3.client("sqs").create_queue(QueueName=f"q-{name}")["QueueUrl"]
    topic = boto3.client("sns").create_topic(Name=f"t-{name}")["TopicArn"]
    as_role = session(arn)
    code, message = error(
        lambda: as_role.client("sqs").send_message(QueueUrl=queue, MessageBody="x")
    )
    assert code == "AccessDenied"
    assert message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{name}/tester is not authorized to perform: "
        f"sqs:SendMessage on resource: arn:aws:sqs:us-east-1:{ACCOUNT}:q-{name} because no "
        "identity-based policy allows the sqs:SendMessage action"
    )
    code, message = error(lambda: as_role.client("sns").publish(TopicArn=topic, Message="x"))
    assert code == "AuthorizationError" and f"SNS:Publish on resource: {topic}" in message
    code, _ = error(lambda: as_role.client("lambda").list_functions())
    assert code == "AccessDeniedException"
    # the role may now send to this queue only
    boto3.client("iam").put_role_policy(
        RoleName=name,
        PolicyName="send",
        PolicyDocument=allow(
            ("Allow", "sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:q-{name}")
        ),
    )
    assert as_role.client("sqs").send_message(QueueUrl=queue, MessageBody="x")["MessageId"]
    other = boto3.client("sqs").create_queue(QueueName=f"other-{name}")["QueueUrl"]
    code, _ = error(lambda: as_role.client("sqs").send_message(QueueUrl=other, MessageBody="x"))
    assert code == "AccessDenied"
    # who am I is always allowed
    assert (
        as_role.client("sts").get_caller_identity()["Arn"].endswith(f"assumed-role/{name}/tester")
    )


def test_an_explicit_deny_and_a_session_policy_narrow_what_the_role_allows(role: Any) -> None:
    name, arn = role
    sns = boto3.client("sns")
    kept, blocked = (sns.create_topic(Name=f"{n}-{name}")["TopicArn"] for n in ("kept", "blocked"))
    iam = boto3.client("iam")
    iam.put_role_policy(
        RoleName=name, PolicyName="all", PolicyDocument=allow(("Allow", "sns:*", "*"))
    )
    iam.put_role_policy(
        RoleName=name, PolicyName="deny", PolicyDocument=allow(("Deny", "sns:Publish", blocked))
    )
    as_role = session(arn)
    assert as_role.client("sns").publish(TopicArn=kept, Message="x")["MessageId"]
    code, message = error(lambda: as_role.client("sns").publish(TopicArn=blocked, Message="x"))
    assert code == "AuthorizationError" and "with an explicit deny" in message
    narrow = session(arn, policy=allow(("Allow", "sns:ListTopics", "*")))
    assert narrow.client("sns").list_topics()["Topics"]
    code, message = error(lambda: narrow.client("sns").publish(TopicArn=kept, Message="x"))
    assert code == "AuthorizationError" and "no session policy allows" in message


def test_the_learners_own_credentials_are_not_checked(lab: Any) -> None:
    ses = boto3.client("ses")  # the lab's keys: the account's administrator
    ses.verify_email_identity(EmailAddress="admin@example.com")
    assert ses.send_email(
        Source="admin@example.com",
        Destination={"ToAddresses": ["someone@example.com"]},
        Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}},
    )["MessageId"]


HANDLER = """
import boto3
def handler(event, context):
    boto3.client("ses").send_email(
        Source="welcome@example.com",
        Destination={"ToAddresses": [event["email"]]},
        Message={"Subject": {"Data": "Welcome!"}, "Body": {"Text": {"Data": "Hello"}}},
    )
    return "sent"
"""


def test_a_handler_without_ses_send_email_fails_like_on_aws(role: Any) -> None:
    name, arn = role
    boto3.client("ses").verify_email_identity(EmailAddress="welcome@example.com")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", HANDLER)
    lam = boto3.client("lambda")
    lam.create_function(
        FunctionName=f"fn-{name}",
        Runtime="python3.12",
        Role=arn,
        Handler="app.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    try:
        event = json.dumps({"email": "ada@example.com"}).encode()
        response = lam.invoke(FunctionName=f"fn-{name}", Payload=event)
        assert response["FunctionError"] == "Unhandled"
        body = json.loads(response["Payload"].read())
        assert body["errorType"] == "ClientError"
        assert (
            f"assumed-role/{name}/fn-{name} is not authorized to perform: ses:SendEmail on "
            f"resource: arn:aws:ses:us-east-1:{ACCOUNT}:identity/welcome@example.com"
        ) in body["errorMessage"]
        # a policy for the sending identity's domain is enough (SES authorizes either)
        boto3.client("iam").put_role_policy(
            RoleName=name,
            PolicyName="send",
            PolicyDocument=allow(
                ("Allow", "ses:SendEmail", f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/example.com")
            ),
        )
        response = lam.invoke(FunctionName=f"fn-{name}", Payload=event)
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == "sent"
    finally:
        lam.delete_function(FunctionName=f"fn-{name}")
