"""Unit tests of the check machinery with a tiny fake module of checks (99.x), both directions.

The fake checks look at the live lab (SQS and IAM through the check's own boto3 clients), so
each test first shows a check failing with a hint, then passing once the lab is in the state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from rdslab.grading import (
    Context,
    Criterion,
    Registry,
    check,
    context,
    core,
    exercise,
    practice,
    summary,
)
from rdslab.grading.practices import allows, broad_grants, role_policies

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:welcome"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "rds.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def fake_module(registry: Registry, queue: str, role: str) -> None:
    """Register the fake module 99 in ``registry``."""

    @exercise("99.1", points=2, title="a queue", registry=registry)
    def queue_check(ctx: Context) -> Iterator[Criterion]:
        sqs = ctx.client("sqs")
        urls = sqs.list_queues(QueueNamePrefix=queue).get("QueueUrls", [])
        yield Criterion(
            1, f"SQS queue {queue}", bool(urls), f"no queue named {queue}", "Call sqs.create_queue."
        )
        if not urls:
            yield Criterion(
                1,
                "its VisibilityTimeout",
                False,
                "not checked: no queue",
                "Create the queue first.",
            )
            return
        attrs = sqs.get_queue_attributes(QueueUrl=urls[0], AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]
        timeout = attrs["VisibilityTimeout"]
        yield Criterion(
            1,
            f"VisibilityTimeout {timeout}",
            timeout == "45",
            "expected 45",
            "Set VisibilityTimeout=45.",
        )

    @exercise("99.2", points=3, title="a role that may invoke one function", registry=registry)
    def role_check(ctx: Context) -> Iterator[Criterion]:
        docs = role_policies(ctx.client("iam"), role)
        ok = any(allows(d, "lambda:InvokeFunction", FUNCTION_ARN) for d in docs)
        yield Criterion(
            2,
            f"policies of role {role}",
            ok,
            "lambda:InvokeFunction not allowed",
            "Attach a policy.",
        )
        problems = [
            p
            for d in docs
            for p in broad_grants(d, action="lambda:InvokeFunction", resource=FUNCTION_ARN)
        ]
        yield practice(
            1, "least privilege", ok and not problems, "; ".join(problems), "Name only the one ARN."
        )

    @exercise("99.3", points=2, title="defect", registry=registry)
    def defect(ctx: Context) -> Iterator[Criterion]:
        yield Criterion(1, "something", True)
        raise ZeroDivisionError("division by zero")

    @exercise("99.4", points=2, title="learner error", registry=registry)
    def learner_error(ctx: Context) -> Iterator[Criterion]:
        yield Criterion(1, "something", True)
        ctx.learner_value("undefined_variable_xyz")
        yield Criterion(1, "never reached", True)

    @exercise("99.5", points=3, title="points do not add up", registry=registry)
    def mismatch(ctx: Context) -> list[Criterion]:
        return [Criterion(1, "only one point", True)]


@pytest.fixture
def fake(lab: Any, unique: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    registry = Registry()
    names = {"queue": f"q-{unique}", "role": f"r-{unique}"}
    fake_module(registry, **names)
    monkeypatch.setattr(core, "REGISTRY", registry)
    monkeypatch.setattr(core, "_SESSION", {})
    monkeypatch.delenv(core.LOG_ENV, raising=False)
    return names


def test_check_fails_with_hint_then_passes(fake: dict[str, str]) -> None:
    before = check("99.1")
    assert (before.earned, before.possible, before.status) == (0, 2, "not yet")
    assert all(c.hint for c in before.criteria if not c.passed)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=fake["queue"], Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]
    partial = check("99.1")
    assert (partial.earned, partial.status) == (1, "not yet")
    assert "expected 45" in repr(partial) and "Set VisibilityTimeout=45." in repr(partial)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
    after = check("99.1")
    assert (after.earned, after.status, after.passed) == (2, "passed", True)


def test_practice_criterion_withholds_points(fake: dict[str, str]) -> None:
    iam = boto3.client("iam")
    role = fake["role"]
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    assert check("99.2").earned == 0
    broad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=role, PolicyName="invoke", PolicyDocument=json.dumps(broad))
    result = check("99.2")
    assert (result.earned, result.possible, result.status) == (2, 3, "not yet")
    failed = [c for c in result.criteria if not c.passed]
    assert [c.kind for c in failed] == ["practice"]
    assert '"Resource": "*"' in failed[0].wrong and '"Action": "lambda:*"' in failed[0].wrong
    assert "[practice]" in repr(result)
    tight = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": FUNCTION_ARN}
        ],
    }
    iam.put_role_policy(RoleName=role, PolicyName="invoke", PolicyDocument=json.dumps(tight))
    assert check("99.2").passed


def test_defect_inside_a_check_scores_zero_and_says_so(fake: dict[str, str]) -> None:
    result = check("99.3")
    assert (result.earned, result.possible, result.status) == (0, 2, "error")
    assert "error inside the check: ZeroDivisionError" in repr(result)
    assert "not about your answer" in repr(result)


def test_learner_error_is_reported_and_keeps_earned_points(fake: dict[str, str]) -> None:
    result = check("99.4")
    assert (result.earned, result.possible, result.status) == (1, 2, "not yet")
    assert "NameError: `undefined_variable_xyz` is not defined" in repr(result)


def test_points_that_do_not_add_up_are_a_defect(fake: dict[str, str]) -> None:
    result = check("99.5")
    assert result.status == "error" and "worth 1 points, not 3" in repr(result)


def test_lab_not_started(fake: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_current_lab", lambda: None)
    result = check("99.1")
    assert (result.earned, result.status) == (0, "not yet")
    assert "the lab is not running" in repr(result) and "rdslab.start()" in repr(result)


def test_unknown_or_malformed_ids_never_raise(fake: dict[str, str]) -> None:
    for bad in ("99.9", "not-an-id", ""):
        result = check(bad)
        assert result.status == "error" and result.earned == 0 and "no check named" in repr(result)


def test_results_render_as_html_and_text(fake: dict[str, str]) -> None:
    result = check("99.1")
    page = result._repr_html_()
    assert (
        page.startswith('<div class="rdslab-check">')
        and "<table>" in page
        and "what is wrong" in page
    )
    assert "0 of 2 points" in repr(result) and "0 of 2 points" in page


def test_summary_counts_checks_passed_never_all(fake: dict[str, str]) -> None:
    assert "No checks" in repr(summary())
    boto3.client("sqs").create_queue(
        QueueName=fake["queue"], Attributes={"VisibilityTimeout": "45"}
    )
    check("99.1")
    check("99.3")
    result = summary()
    frame = result.frame
    assert list(frame.columns) == ["title", "points", "possible", "status"]
    assert frame.loc["99.1", "status"] == "passed" and frame.loc["99.3", "status"] == "error"
    assert frame.loc["99.2", "status"] == "not run"  # module 99's checks that were not run
    assert result.line() == "1 of 5 checks passed: 2 of 12 points"
    assert "all passed" not in repr(result).lower() and "checks passed" in result._repr_html_()


def test_grade_log_records_json_lines(
    fake: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "grades.jsonl"
    monkeypatch.setenv(core.LOG_ENV, str(log))
    check("99.1")
    check("99.3")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["exercise"], r["earned"], r["possible"], r["status"]) for r in records] == [
        ("99.1", 0, 2, "not yet"),
        ("99.3", 0, 2, "error"),
    ]
    assert {"criteria", "title", "time"} <= set(records[0]) and records[0]["criteria"][0]["hint"]


def test_check_survives_an_unwritable_log(
    fake: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(core.LOG_ENV, str(tmp_path / "missing-dir" / "log.jsonl"))
    assert check("99.1").possible == 2


def test_exercise_decorator_validates() -> None:
    with pytest.raises(ValueError, match="NN.M"):
        exercise("1.1", points=1, title="x", registry=Registry())
    with pytest.raises(ValueError, match="points"):
        exercise("99.1", points=0, title="x", registry=Registry())


def test_registry_loads_module_checks_on_demand() -> None:
    registry = Registry()
    assert [ex.id for ex in core.REGISTRY.of_module("00")] == ["00.1", "00.2"]
    with pytest.raises(KeyError):
        registry.get("98.1")  # no checks module m98: unknown, not an import error


def test_context_learner_strings_and_namespace() -> None:
    ctx = Context(
        "99.1", namespace={"db_password": "s3cret", "_password": "hidden", "n": 1, "PASSWORD2": "x"}
    )
    assert ctx.learner_strings("password") == [("db_password", "s3cret"), ("PASSWORD2", "x")]
    assert ctx.learner_value("n") == 1


def test_broad_grants_and_allows() -> None:
    arn = FUNCTION_ARN
    tight = {"Statement": {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn}}
    assert (
        allows(tight, "lambda:InvokeFunction", arn)
        and broad_grants(tight, action="lambda:InvokeFunction", resource=arn) == []
    )
    star = {"Statement": [{"Effect": "Allow", "Action": ["lambda:*"], "Resource": ["*"]}]}
    assert sorted(broad_grants(star, action="lambda:InvokeFunction", resource=arn)) == [
        '"Action": "lambda:*" allows more than lambda:InvokeFunction',
        f'"Resource": "*" covers more than {arn}',
    ]
    other = {
        "Statement": [
            {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": arn + "-other"}
        ]
    }
    assert not allows(other, "lambda:InvokeFunction", arn)
    deny = {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    assert (
        not allows(deny, "lambda:InvokeFunction", arn)
        and broad_grants(deny, action="x", resource="y") == []
    )
    assert allows(json.dumps(tight), "LAMBDA:invokefunction", arn)  # actions are case-insensitive
