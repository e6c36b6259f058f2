"""Checks for module 02 (your first function): the ``welcome-email`` function, seen from outside.

Every check reads the function's configuration (``get_function_configuration``), its execution
role (IAM), its logs (CloudWatch Logs) or SES, and then **invokes the function for real** with a
test event of its own, looking at ``FunctionError``, the error payload and the SES outbox (a lab
view of what SES sent). Test addresses are ``check-02-N...@example.com``; only outbox rows added
during the check count, so re-running a check after a fix is not haunted by an earlier attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..context import Context, LearnerError
from ..core import Criterion, exercise, practice
from ..practices import allows, broad_grants, role_policies, statements

FUNCTION = "welcome-email"
ROLE = "welcome-email-role"
SENDER = "welcome@example.com"
IDENTITY_ARN = f"arn:aws:ses:us-east-1:123456789012:identity/{SENDER}"
LOG_STREAM_ARN = (
    "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/welcome-email:log-stream:any"
)
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
SUBJECT = "Welcome to the course!"
REPORT = "nightly-report"
WAIT = 'then wait: `lambda_client.get_waiter("function_updated_v2").wait(FunctionName="welcome-email")`'


# ---------------------------------------------------------------------------- helpers
def _configuration(ctx: Context, name: str, hint: str) -> dict[str, Any]:
    lam = ctx.client("lambda")
    try:
        return dict(lam.get_function_configuration(FunctionName=name))
    except lam.exceptions.ResourceNotFoundException:
        raise LearnerError(
            f"function `{name}` (get_function_configuration)",
            f"there is no function named `{name}`",
            hint,
        ) from None


def _invoke(ctx: Context, name: str, event: dict[str, Any]) -> tuple[str | None, Any]:
    """Invoke ``name`` synchronously: (FunctionError, decoded payload)."""
    response = ctx.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    raw = response["Payload"].read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    return response.get("FunctionError"), payload


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict) and "errorMessage" in payload:
        kind = payload.get("errorType")
        return f"{kind}: {payload['errorMessage']}" if kind else str(payload["errorMessage"])
    return str(payload)


def _failure_hint(payload: Any) -> str:
    text = _error_text(payload)
    if "not verified" in text or "MessageRejected" in text:
        return f'SES refused the sender: run `ses.verify_email_identity(EmailAddress="{SENDER}")`.'
    if "KeyError: 'SENDER'" in text or "KeyError: SENDER" in text:
        return "The function has no `SENDER` environment variable: set it in `Environment`."
    if "timed out" in text:
        return "The function timed out: give it the Timeout the task asks for."
    return "Invoke it yourself with the same event and read the error and the log tail (LogType='Tail')."


def _outbox(ctx: Context) -> list[dict[str, Any]]:
    return list(ctx.lab.ses_outbox().to_dict("records"))


def _sent(rows: list[dict[str, Any]], to: str) -> list[dict[str, Any]]:
    return [r for r in rows if to in str(r.get("to", "")).split(", ")]


def _trusted_services(document: Any) -> set[str]:
    services: set[str] = set()
    for st in statements(document):
        if st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal", {})
        if principal == "*":
            services.add("*")
            continue
        for kind, value in principal.items():
            for item in [value] if isinstance(value, str) else value:
                services.add(item if kind == "Service" else f"{kind}:{item}")
    return services


# ---------------------------------------------------------------------------- 02.1
@exercise("02.1", points=12, title="Deploy welcome-email with its execution role")
def deploy(ctx: Context) -> Iterator[Criterion]:
    cfg = _configuration(
        ctx,
        FUNCTION,
        'Create it with `lambda_client.create_function(FunctionName="welcome-email", ...)` '
        "and the settings in the task.",
    )
    yield Criterion(1, f"function `{FUNCTION}` (get_function_configuration)", True)
    runtime, handler = cfg.get("Runtime"), cfg.get("Handler")
    yield Criterion(
        1,
        f"its Runtime {runtime!r} and Handler {handler!r}",
        runtime == "python3.12" and handler == "welcome_email.lambda_handler",
        "the task asks for Runtime 'python3.12' and Handler 'welcome_email.lambda_handler'",
        "Handler is `<file without .py>.<function>`: the zip holds welcome_email.py with lambda_handler. "
        "Fix it with `update_function_configuration(FunctionName=..., Runtime=..., Handler=...)`.",
    )
    timeout, memory = cfg.get("Timeout"), cfg.get("MemorySize")
    yield Criterion(
        1,
        f"its Timeout {timeout} s and MemorySize {memory} MB",
        timeout == 10 and memory == 256,
        "the task asks for Timeout 10 and MemorySize 256 (the defaults are 3 s and 128 MB)",
        "Pass Timeout=10, MemorySize=256, or fix them with `update_function_configuration`.",
    )
    variables = (cfg.get("Environment") or {}).get("Variables", {})
    yield Criterion(
        1,
        f"its environment variables {variables}",
        variables.get("SENDER") == SENDER,
        f"SENDER is {variables.get('SENDER')!r}, not {SENDER!r}",
        f'Pass Environment={{"Variables": {{"SENDER": "{SENDER}"}}}}.',
    )

    role_arn = str(cfg.get("Role", ""))
    role_name = role_arn.rsplit("/", 1)[-1]
    iam = ctx.client("iam")
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        role = None
    if role is None:
        for points, what in ((2, "its trust policy"), (3, "its permissions")):
            yield Criterion(
                points,
                f"the execution role {role_arn} ({what})",
                False,
                f"the function's role `{role_name}` does not exist",
                f"Create `{ROLE}` (trust: lambda.amazonaws.com) and pass its ARN as Role.",
            )
    else:
        services = _trusted_services(role["AssumeRolePolicyDocument"])
        yield Criterion(
            1,
            f"trust policy of `{role_name}`: trusted by {sorted(services)}",
            "lambda.amazonaws.com" in services,
            "Lambda cannot assume this role: its trust policy does not name lambda.amazonaws.com",
            'An execution role\'s trust policy has Principal {"Service": "lambda.amazonaws.com"}, '
            "Action sts:AssumeRole.",
        )
        others = sorted(services - {"lambda.amazonaws.com"})
        yield practice(
            1,
            f"who else may assume `{role_name}`",
            "lambda.amazonaws.com" in services and not others,
            f"the role also trusts {others}: an execution role is for Lambda only"
            if others
            else "not checked: the role must trust lambda.amazonaws.com first",
            "The database needs its own role, trusted by rds.amazonaws.com (module 03); "
            "keep lambda.amazonaws.com as the only principal here.",
        )
        docs = role_policies(iam, role_name)
        yield Criterion(
            1,
            f"permission to write logs ({len(docs)} policy document(s) of `{role_name}`)",
            any(allows(d, "logs:PutLogEvents", LOG_STREAM_ARN) for d in docs),
            "the role does not allow logs:PutLogEvents: on AWS the function's logs would be lost",
            f'Attach the managed policy: `iam.attach_role_policy(RoleName=..., PolicyArn="{BASIC_EXECUTION}")`.',
        )
        can_send = any(allows(d, "ses:SendEmail", IDENTITY_ARN) for d in docs)
        yield Criterion(
            1,
            f"permission to send from {SENDER}",
            can_send,
            f"no policy of `{role_name}` allows ses:SendEmail on {IDENTITY_ARN}",
            f'Add an inline policy (put_role_policy) allowing "ses:SendEmail" on "{IDENTITY_ARN}".',
        )
        broad = sorted(
            {
                p
                for d in docs
                for p in broad_grants(d, action="ses:SendEmail", resource=IDENTITY_ARN)
            }
        )
        yield practice(
            1,
            "how much the role may do in SES",
            can_send and not broad,
            "; ".join(broad) if broad else "not checked: the role cannot send yet",
            f'Grant exactly "Action": "ses:SendEmail" on "Resource": "{IDENTITY_ARN}".',
        )

    ses = ctx.client("ses")
    status = (
        ses.get_identity_verification_attributes(Identities=[SENDER])["VerificationAttributes"]
        .get(SENDER, {})
        .get("VerificationStatus", "not requested")
    )
    yield Criterion(
        1,
        f"SES identity {SENDER}: {status}",
        status == "Success",
        "the sender is not verified: in the SES sandbox, SES refuses to send from it",
        f'Run `ses.verify_email_identity(EmailAddress="{SENDER}")`.',
    )

    to = "check-02-1@example.com"
    before = len(_outbox(ctx))
    error, payload = _invoke(ctx, FUNCTION, {"email": to, "full_name": "Check 02.1"})
    mails = [m for m in _sent(_outbox(ctx)[before:], to) if m.get("source") == SENDER]
    yield Criterion(
        2,
        f"an invoke with a test registration for {to}: FunctionError {error}, "
        f"{len(mails)} email(s) from {SENDER} in the SES outbox",
        error is None and len(mails) == 1,
        f"the function failed: {_error_text(payload)}"
        if error
        else f"the function returned {payload!r} but SES has no email from {SENDER} to {to}",
        _failure_hint(payload)
        if error
        else "Deploy the unchanged WELCOME_EMAIL handler from the setup cell.",
    )


# ---------------------------------------------------------------------------- 02.2
BAD_EVENTS = [
    ({}, "email", 2, "an event without `email`: {}"),
    (
        {"email": "not-an-address", "full_name": "Check 02.2"},
        "email",
        1,
        "an `email` without @: 'not-an-address'",
    ),
    ({"email": "check-02-2@example.com"}, "full_name", 1, "an event without `full_name`"),
]
VALIDATE_HINT = (
    "At the top of lambda_handler, before send_email, `raise ValueError(...)` with a message that "
    "names the field; deploy with `update_function_code(FunctionName=..., ZipFile=...)` and " + WAIT
)


@exercise("02.2", points=6, title="A bad event gives a clear ValueError")
def validation(ctx: Context) -> Iterator[Criterion]:
    _configuration(ctx, FUNCTION, "Exercise 02.2 changes the function of 02.1: do 02.1 first.")
    before = len(_outbox(ctx))
    for event, field, points, label in BAD_EVENTS:
        error, payload = _invoke(ctx, FUNCTION, event)
        kind = payload.get("errorType") if isinstance(payload, dict) else None
        message = str(payload.get("errorMessage", "")) if isinstance(payload, dict) else ""
        if not error:
            wrong = f"the function accepted it and returned {payload!r}"
        elif kind != "ValueError":
            wrong = f"it failed with {_error_text(payload)}, not with a ValueError"
        else:
            wrong = f"ValueError: {message!r} does not name `{field}`"
        yield Criterion(
            points,
            f"invoke with {label}: {_error_text(payload) if error else 'no error'}",
            bool(error) and kind == "ValueError" and field in message,
            wrong,
            VALIDATE_HINT,
        )
    sent = [
        m
        for m in _outbox(ctx)[before:]
        if m.get("to") in ("not-an-address", "check-02-2@example.com")
    ]
    yield Criterion(
        1,
        f"SES outbox after the bad events: {len(sent)} email(s) to their addresses",
        not sent,
        "an email went out for an invalid event: the check comes too late",
        "Validate first, then send: an email cannot be unsent.",
    )
    to = "check-02-2-ok@example.com"
    mark = len(_outbox(ctx))
    error, payload = _invoke(ctx, FUNCTION, {"email": to, "full_name": "Check Ok"})
    mails = _sent(_outbox(ctx)[mark:], to)
    yield Criterion(
        1,
        f"invoke with a valid registration for {to}: FunctionError {error}, {len(mails)} email(s)",
        error is None and len(mails) == 1,
        f"a valid event now fails: {_error_text(payload)}"
        if error
        else "a valid event sent no email",
        "Your validation must let a correct event through, unchanged: " + _failure_hint(payload),
    )


# ---------------------------------------------------------------------------- 02.3
@exercise("02.3", points=5, title="A new subject through an environment variable")
def subject(ctx: Context) -> Iterator[Criterion]:
    cfg = _configuration(
        ctx, FUNCTION, "Exercise 02.3 changes the function of 02.1: do 02.1 first."
    )
    variables = (cfg.get("Environment") or {}).get("Variables", {})
    has_subject = variables.get("SUBJECT") == SUBJECT
    yield Criterion(
        1,
        f"environment variables of `{FUNCTION}`: {variables}",
        has_subject,
        f"SUBJECT is {variables.get('SUBJECT')!r}, not {SUBJECT!r}",
        "Set it with `lambda_client.update_function_configuration(FunctionName=..., "
        'Environment={"Variables": {...}})`, ' + WAIT + ".",
    )
    if not has_subject:
        yield Criterion(
            4,
            "SENDER and the email the function sends",
            False,
            "not checked: set SUBJECT first",
            "Read the current variables with get_function_configuration, add SUBJECT, write them all back.",
        )
        return
    yield Criterion(
        2,
        f"SENDER next to SUBJECT: {variables.get('SENDER')!r}",
        variables.get("SENDER") == SENDER,
        "SENDER is gone or changed: `Environment` replaces all variables, it does not add one",
        f'Write both: Environment={{"Variables": {{"SENDER": "{SENDER}", "SUBJECT": "{SUBJECT}"}}}} '
        "(or merge into the variables you read first).",
    )
    to = "check-02-3@example.com"
    before = len(_outbox(ctx))
    error, payload = _invoke(ctx, FUNCTION, {"email": to, "full_name": "Check 02.3"})
    mails = _sent(_outbox(ctx)[before:], to)
    got = [(m.get("source"), m.get("subject")) for m in mails]
    yield Criterion(
        2,
        f"invoke with a test registration for {to}: FunctionError {error}, (sender, subject) {got}",
        error is None and got == [(SENDER, SUBJECT)],
        f"the function failed: {_error_text(payload)}"
        if error
        else f"expected one email from {SENDER} with subject {SUBJECT!r}",
        _failure_hint(payload) if error else "Keep the handler as it is: it reads SUBJECT already.",
    )


# ---------------------------------------------------------------------------- 02.4
@exercise("02.4", points=5, title="Diagnose and fix the nightly-report timeout")
def timeout(ctx: Context) -> Iterator[Criterion]:
    cfg = _configuration(
        ctx, REPORT, "Run the cell above the exercise that deploys `nightly-report`."
    )
    logs = ctx.client("logs")
    try:
        found = logs.filter_log_events(
            logGroupName=f"/aws/lambda/{REPORT}", filterPattern='"Task timed out"'
        )["events"]
    except logs.exceptions.ResourceNotFoundException:
        found = []
    yield Criterion(
        1,
        f"log group /aws/lambda/{REPORT}: {len(found)} 'Task timed out' line(s)",
        any("Task timed out after 1.00 seconds" in e["message"] for e in found),
        "no invocation has timed out yet: you have not seen the failure you are fixing",
        "Step 1: invoke nightly-report while its Timeout is still 1 second, and read the log tail.",
    )
    seconds = cfg.get("Timeout")
    enough = isinstance(seconds, int) and seconds >= 3
    yield Criterion(
        2,
        f"its Timeout: {seconds} s",
        enough,
        f"{seconds} s is not enough for a report that takes about 1.5 s plus a cold start",
        '`lambda_client.update_function_configuration(FunctionName="nightly-report", Timeout=5)`, '
        'then wait with the "function_updated_v2" waiter.',
    )
    yield practice(
        1,
        "the Timeout as a guard against hangs",
        enough and seconds <= 10,
        f"{seconds} s lets a hung report run (and be billed) far longer than a normal run"
        if enough
        else "not checked: the Timeout is too small first",
        "Cover the slowest normal run with a margin, no more: between 3 and 10 seconds here.",
    )
    if not enough:
        yield Criterion(
            1,
            "an invoke of nightly-report",
            False,
            "not run: with this Timeout it would time out",
            "Raise the Timeout first.",
        )
        return
    error, payload = _invoke(ctx, REPORT, {})
    yield Criterion(
        1,
        f"an invoke of nightly-report: FunctionError {error}, payload {payload!r}",
        error is None and payload == {"rows": 42},
        f"it failed: {_error_text(payload)}" if error else f"unexpected payload {payload!r}",
        "Leave the NIGHTLY_REPORT code as deployed; change only the Timeout.",
    )
