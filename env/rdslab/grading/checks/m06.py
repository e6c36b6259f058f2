"""Checks for module 06 (the registration trigger): trigger, payload, Event + DLQ, idempotency.

The checks act like a tester. 06.1-06.3 INSERT a registration of their own (a unique address
``check-06-N-<hex>@example.com``) inside a transaction that they roll back, so the learner's table
keeps only the learner's rows; the Lambda call still happens (it is made when the statement runs,
the point of the lesson), and the check then looks at what it caused: the email in SES (06.1), the
event the function logged (06.2), the invocation type in the instance's invocation log and the
dead letter in SQS (06.3). 06.4 invokes the function twice with the same event, as an
at-least-once delivery would, and counts the emails.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .. import practices
from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice

INSTANCE = "registration-db"
MASTER = "labadmin"
MASTER_PASSWORD = "LabPassw0rd-06"
DBNAME = "course"
FUNCTION = "welcome-email"
EXEC_ROLE = "welcome-email-exec"
DLQ_NAME = "welcome-email-dlq"
DEDUP_TABLE = "welcome-sent"
LOG_GROUP = f"/aws/lambda/{FUNCTION}"
NEEDED_FIELDS = {"registration_id", "email", "full_name"}
SETUP_HINT = "Run the setup cell at the top of the notebook first: it creates `registration-db`."
TRIGGER_HINT = (
    "Exercise 06.1: CREATE FUNCTION welcome_on_insert() RETURNS trigger ... PERFORM "
    "aws_lambda.invoke(...); RETURN NEW; ... then CREATE TRIGGER registration_welcome AFTER INSERT "
    "ON registration FOR EACH ROW EXECUTE FUNCTION welcome_on_insert()."
)

# pg_trigger.tgtype bits (PostgreSQL's trigger.h)
ROW, BEFORE, INSERT, INSTEAD = 1, 2, 4, 64


def _master(ctx: Context) -> Any:
    db = ctx.db_instance(INSTANCE, hint=SETUP_HINT)
    return ctx.connect(db, MASTER, MASTER_PASSWORD, DBNAME)


def _wait_for_lambda(ctx: Context, timeout: float = 20.0) -> None:
    """Until the instance's calls reached Lambda and Lambda's asynchronous queue is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = ctx.lab.bridge.log(INSTANCE, limit=50)
        if log.empty or not log.state.isin(["pending", "running"]).any():
            break
        time.sleep(0.05)
    ctx.lab.runtime.wait_idle(max(1.0, deadline - time.monotonic()))


def _last_log_id(ctx: Context) -> int:
    log = ctx.lab.bridge.log(INSTANCE, limit=1)
    return int(log.id.iloc[-1]) if not log.empty else 0


def _calls_since(ctx: Context, after: int) -> Any:
    log = ctx.lab.bridge.log(INSTANCE, limit=200)
    return log[log.id > after]


def _check_address(exercise_id: str) -> str:
    return f"check-{exercise_id.replace('.', '-')}-{uuid.uuid4().hex[:8]}@example.com"


def _insert_and_roll_back(
    ctx: Context, conn: Any, email: str, secret: str = "check-not-a-secret"
) -> tuple[int | None, str | None]:
    """INSERT a registration in a transaction that is rolled back: (its id, or None and the error)."""
    import psycopg2

    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO registration (email, full_name, password_hash, date_of_birth)"
                " VALUES (%s, %s, %s, '1999-09-09') RETURNING id",
                (email, "Check Tester", secret),
            )
            return cur.fetchone()[0], None
    except psycopg2.Error as exc:
        detail = exc.diag.message_detail or ""
        if ', details: "' in detail:  # Lambda's error JSON: keep its type and message
            try:
                error = json.loads(detail.split(', details: "', 1)[1][:-2])
                detail = f"{error['errorType']}: {error['errorMessage']}"
            except (ValueError, KeyError):
                detail = detail[:300]
        return None, f"{exc.diag.message_primary}" + (f" ({detail[:300]})" if detail else "")
    finally:
        conn.rollback()
        conn.autocommit = True


def _trigger(ctx: Context, conn: Any) -> tuple[str, str]:
    """(trigger name, function name) of the learner's AFTER INSERT row trigger, or LearnerError."""
    rows = ctx.query(
        conn,
        """SELECT t.tgname, p.proname, t.tgtype, t.tgenabled
             FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = 'public.registration'::regclass AND NOT t.tgisinternal
            ORDER BY t.tgname""",
    )
    if not rows:
        raise LearnerError(
            "triggers on public.registration (pg_trigger)",
            "the table has no trigger",
            TRIGGER_HINT,
        )
    for name, function, tgtype, enabled in rows:
        if tgtype & ROW and tgtype & INSERT and not tgtype & (BEFORE | INSTEAD) and enabled != "D":
            return name, function
    described = ", ".join(f"{n} (tgtype {t}, enabled {e})" for n, _, t, e in rows)
    raise LearnerError(
        "triggers on public.registration (pg_trigger)",
        f"no enabled AFTER INSERT ... FOR EACH ROW trigger: found {described}",
        TRIGGER_HINT,
    )


def _received(ctx: Context, email: str) -> list[dict[str, Any]]:
    """The events the function logged as `received {...}` that mention ``email``."""
    return ctx.logged_events(LOG_GROUP, email)


def _emails_to(ctx: Context, address: str) -> int:
    outbox = ctx.lab.ses_outbox()
    return int((outbox.to == address).sum()) if not outbox.empty else 0


# ---------------------------------------------------------------------------------- 06.1
@exercise("06.1", points=6, title="A trigger that sends the welcome email")
def welcome_trigger(ctx: Context) -> Iterator[Criterion]:
    conn = _master(ctx)
    name, function = _trigger(ctx, conn)
    yield Criterion(
        2, f"trigger {name} on registration: AFTER INSERT FOR EACH ROW -> {function}()", True
    )
    address = _check_address("06.1")
    new_id, error = _insert_and_roll_back(ctx, conn, address)
    yield Criterion(
        1,
        f"the check's INSERT of a registration for {address} (rolled back afterwards)",
        error is None,
        f"the INSERT failed: {error}",
        "Insert a row yourself and read the error; module 05 explains `invoke API failed` and "
        "`lambda invocation failed`.",
    )
    _wait_for_lambda(ctx)
    sent = _emails_to(ctx, address)
    yield Criterion(
        3,
        f"emails to {address} in SES (lab.ses_outbox()): {sent}",
        sent >= 1,
        "no welcome email for the check's registration",
        f"The trigger function must call aws_lambda.invoke for the function `{FUNCTION}` with a "
        "payload that holds the row's email and full_name (row_to_json(NEW) will do for now).",
    )


# ---------------------------------------------------------------------------------- 06.2
@exercise("06.2", points=6, title="A minimal payload")
def minimal_payload(ctx: Context) -> Iterator[Criterion]:
    conn = _master(ctx)
    _trigger(ctx, conn)
    address = _check_address("06.2")
    secret = f"check-secret-{uuid.uuid4().hex[:8]}"
    new_id, error = _insert_and_roll_back(ctx, conn, address, secret)
    if error is not None:
        raise LearnerError(
            f"the check's INSERT of a registration for {address}",
            f"the INSERT failed: {error}",
            "Make exercise 06.1 work first.",
        )
    _wait_for_lambda(ctx)
    events = _received(ctx, address)
    if not events:
        raise LearnerError(
            f"log group {LOG_GROUP}: `received ...` lines for {address}",
            "the function logged no event for the check's registration",
            "The trigger must invoke welcome-email for every inserted row (exercise 06.1); keep the "
            'handler\'s `print("received", ...)` line.',
        )
    event = events[-1]
    yield Criterion(
        1, f"the event welcome-email received: {json.dumps(event, sort_keys=True)}", True
    )
    raw = json.dumps(event)
    yield Criterion(
        2,
        "the password hash in the event",
        secret not in raw and "password_hash" not in event,
        "the event carries the password hash: it is now in the function's logs (and would be in "
        "retries and dead letters)",
        "Build the payload with json_build_object('registration_id', NEW.id, 'email', NEW.email, "
        "'full_name', NEW.full_name) instead of row_to_json(NEW).",
    )
    extra = sorted(set(event) - NEEDED_FIELDS)
    yield Criterion(
        1,
        f"its fields: {sorted(event)}",
        not extra,
        f"fields the function does not need: {extra}",
        "Send exactly registration_id, email and full_name.",
    )
    yield Criterion(
        1,
        f"registration_id in the event: {event.get('registration_id')!r} (the row's id: {new_id})",
        event.get("registration_id") == new_id,
        "the event has no registration_id equal to the new row's id (the handler's deduplication "
        "key, exercise 06.4)",
        "Add 'registration_id', NEW.id to json_build_object.",
    )
    yield Criterion(
        1,
        f"email and full_name in the event: {event.get('email')!r}, {event.get('full_name')!r}",
        event.get("email") == address and event.get("full_name") == "Check Tester",
        "the event does not carry the row's email and full_name under those names",
        "Add 'email', NEW.email, 'full_name', NEW.full_name to json_build_object.",
    )


# ---------------------------------------------------------------------------------- 06.3
@exercise("06.3", points=8, title="Event for the trigger, a dead-letter queue for failures")
def event_and_dlq(ctx: Context) -> Iterator[Criterion]:
    conn = _master(ctx)
    lam, sqs, iam = ctx.client("lambda"), ctx.client("sqs"), ctx.client("iam")
    try:
        queue_url = sqs.get_queue_url(QueueName=DLQ_NAME)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    except sqs.exceptions.QueueDoesNotExist:
        queue_url = queue_arn = None
    target = (
        lam.get_function_configuration(FunctionName=FUNCTION).get("DeadLetterConfig") or {}
    ).get("TargetArn")
    yield Criterion(
        2,
        f"DeadLetterConfig of {FUNCTION} (get_function_configuration): {target}",
        queue_arn is not None and target == queue_arn,
        f"there is no SQS queue `{DLQ_NAME}`"
        if queue_arn is None
        else f"the function's dead-letter queue is not {queue_arn}",
        f"sqs.create_queue(QueueName='{DLQ_NAME}'), then lam.update_function_configuration("
        "FunctionName='welcome-email', DeadLetterConfig={'TargetArn': <the queue's ARN>}).",
    )
    documents = practices.role_policies(iam, EXEC_ROLE)
    allowed = queue_arn is not None and any(
        practices.allows(d, "sqs:SendMessage", queue_arn) for d in documents
    )
    yield Criterion(
        1,
        f"policies of the execution role {EXEC_ROLE}: sqs:SendMessage on the queue",
        allowed,
        "the execution role may not send messages to the dead-letter queue (Lambda sends dead "
        "letters with it, and refuses a DeadLetterConfig the role cannot use)",
        f"iam.put_role_policy(RoleName='{EXEC_ROLE}', PolicyName=..., PolicyDocument=...) allowing "
        "sqs:SendMessage on the queue's ARN.",
    )
    broad = (
        sorted(
            {
                p
                for d in documents
                for p in practices.broad_grants(d, action="sqs:SendMessage", resource=queue_arn)
            }
        )
        if allowed
        else []
    )
    yield practice(
        1,
        "how broad that sqs:SendMessage grant is",
        allowed and not broad,
        "; ".join(broad) if broad else "no grant to judge",
        "Grant exactly sqs:SendMessage, on this queue's ARN only.",
    )
    address = _check_address("06.3").replace("@", "-at-")  # SES rejects it: the handler fails
    before = _last_log_id(ctx)
    _, error = _insert_and_roll_back(ctx, conn, address)
    calls = _calls_since(ctx, before)
    calls = calls[calls.function_name.str.contains(FUNCTION, regex=False)]
    kinds = sorted(set(calls.invocation_type))
    yield Criterion(
        2,
        f"the check's INSERT of a registration whose email fails ({address}): "
        + ("succeeded" if error is None else f"failed: {error}")
        + f"; calls of {FUNCTION} it made: {kinds or 'none'}",
        error is None and kinds == ["Event"],
        "the INSERT failed because the email failed: the trigger calls synchronously"
        if error is not None
        else "the INSERT did not invoke the function with invocation_type 'Event'",
        "In the trigger function, pass invocation_type => 'Event' to aws_lambda.invoke (keep the "
        "payload of 06.2).",
    )
    _wait_for_lambda(ctx)
    found = None
    deadline = time.monotonic() + 5
    while queue_url is not None and found is None and time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        for message in messages:
            if address in message["Body"]:
                found = message
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                break
    attributes = sorted((found or {}).get("MessageAttributes", {}))
    yield Criterion(
        2,
        f"queue {DLQ_NAME}: a dead letter for {address}"
        + (f" with attributes {attributes}" if found else ""),
        found is not None and {"RequestID", "ErrorCode", "ErrorMessage"} <= set(attributes),
        "no dead letter for the check's failed event",
        "With invocation_type 'Event' and the DeadLetterConfig above, Lambda retries the failing "
        "event, then sends it to the queue.",
    )


# ---------------------------------------------------------------------------------- 06.4
@exercise("06.4", points=6, title="An idempotent handler")
def idempotent(ctx: Context) -> Iterator[Criterion]:
    lam = ctx.client("lambda")
    registration_id = random.randint(10_000_000, 99_999_999)
    address = _check_address("06.4")
    event = json.dumps(
        {"registration_id": registration_id, "email": address, "full_name": "Check Twice"}
    )
    results = []
    for _ in range(2):
        response = lam.invoke(FunctionName=FUNCTION, Payload=event.encode())
        results.append(
            (response.get("FunctionError"), json.loads(response["Payload"].read() or b"null"))
        )
    first_error, first_payload = results[0]
    if first_error:
        message = (
            first_payload.get("errorMessage") if isinstance(first_payload, dict) else first_payload
        )
        raise LearnerError(
            f"the first of two identical invocations of {FUNCTION} (registration_id {registration_id})",
            f"the function failed: {message}",
            "Test your handler with lam.invoke(...) and read its CloudWatch logs.",
        )
    sent = _emails_to(ctx, address)
    if sent != 1:
        raise LearnerError(
            f"two identical deliveries of the same event (registration_id {registration_id}): "
            f"emails to {address}: {sent}",
            "a duplicate delivery sent a second email" if sent > 1 else "no email was sent at all",
            "Before sending, write the registration_id to the DynamoDB table welcome-sent with "
            "ConditionExpression='attribute_not_exists(registration_id)'; when the write fails "
            "with ConditionalCheckFailedException, return without sending.",
        )
    yield Criterion(
        3, f"two identical deliveries (registration_id {registration_id}): emails sent: 1", True
    )
    second_error, second_payload = results[1]
    yield Criterion(
        1,
        f"the duplicate delivery's result: {second_error or 'success'}",
        second_error is None,
        "the duplicate made the function fail: Lambda would retry it and, in the end, dead-letter it",
        "Return normally (e.g. {'duplicate': True}) when the key is already there.",
    )
    item = ctx.client("dynamodb").get_item(
        TableName=DEDUP_TABLE, Key={"registration_id": {"N": str(registration_id)}}
    )
    yield Criterion(
        1,
        f"DynamoDB table {DEDUP_TABLE}: an item for registration_id {registration_id}",
        "Item" in item,
        "the key the handler remembers is not the registration_id in welcome-sent",
        "Use Item={'registration_id': {'N': str(event['registration_id'])}}.",
    )
    other = _check_address("06.4")
    response = lam.invoke(
        FunctionName=FUNCTION,
        Payload=json.dumps(
            {"registration_id": registration_id + 1, "email": other, "full_name": "Check Other"}
        ).encode(),
    )
    yield Criterion(
        1,
        f"a different registration (registration_id {registration_id + 1}): emails to {other}: "
        f"{_emails_to(ctx, other)}",
        "FunctionError" not in response and _emails_to(ctx, other) == 1,
        "a new registration got no email: the handler suppresses more than duplicates",
        "Only an event whose registration_id is already in welcome-sent may be skipped.",
    )
