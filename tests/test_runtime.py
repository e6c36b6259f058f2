"""The Lambda runtime room: synchronous Invoke through boto3 and in-process, as on AWS."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
import uuid
import zipfile

import boto3
import psutil
import pytest
import rdslab
from botocore.exceptions import ClientError
from iamdocs import allow, trust
from rdslab.runtime import InvokeResult, LambdaApiError, LambdaRuntime

ECHO = """
import os
COUNT = 0
def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    print("got", event)
    return {"event": event, "count": COUNT, "pid": os.getpid(), "rid": context.aws_request_id}
"""


def make_zip(source: str, name: str = "lambda_function.py") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, source)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lab():
    lab = rdslab.start()
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def role(lab) -> str:
    name = f"runtime-test-{uuid.uuid4().hex[:8]}"
    return boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust())["Role"][
        "Arn"
    ]


@pytest.fixture
def lam(lab):
    return boto3.client("lambda")


@pytest.fixture
def deploy(lam, role):
    def _deploy(source: str, **kwargs) -> str:
        name = kwargs.pop("FunctionName", f"fn-{uuid.uuid4().hex[:10]}")
        lam.create_function(
            FunctionName=name,
            Runtime=kwargs.pop("Runtime", "python3.12"),
            Role=role,
            Handler=kwargs.pop("Handler", "lambda_function.lambda_handler"),
            Code={"ZipFile": kwargs.pop("ZipFile", None) or make_zip(source)},
            **kwargs,
        )
        return name

    return _deploy


def invoke(lam, name: str, event=None, **kwargs) -> tuple[dict, object]:
    response = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    raw = response["Payload"].read()
    return response, json.loads(raw) if raw else None


def tail_lines(response: dict) -> list[str]:
    return base64.b64decode(response["LogResult"]).decode().splitlines()


def test_sync_invoke_result(lam, deploy):
    name = deploy(ECHO)
    response, body = invoke(lam, name, {"a": 1})
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["event"] == {"a": 1}
    assert body["rid"] == response["ResponseMetadata"]["RequestId"]


def test_context_fields(lam, deploy):
    name = deploy(
        """
def lambda_handler(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "custom": cc.custom if cc else None,
        "env": cc.env if cc else None,
    }
""",
        MemorySize=256,
        Timeout=7,
    )
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}, "env": {"e": 1}}).encode()).decode()
    response, ctx = invoke(lam, name, ClientContext=cc)
    assert ctx["aws_request_id"] == response["ResponseMetadata"]["RequestId"]
    assert ctx["function_name"] == name
    assert ctx["function_version"] == "$LATEST"
    assert ctx["invoked_function_arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert ctx["memory_limit_in_mb"] == "256"
    assert ctx["log_group_name"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert 5000 < ctx["remaining"] <= 7000
    assert ctx["custom"] == {"k": "v"} and ctx["env"] == {"e": 1}


def test_environment_variables(lab, lam, deploy):
    name = deploy(
        """
import os, boto3
def lambda_handler(event, context):
    who = boto3.client("sts").get_caller_identity()["Arn"]
    return {"env": dict(os.environ), "who": who, "files": os.listdir(os.environ["LAMBDA_TASK_ROOT"])}
""",
        Environment={"Variables": {"DB_HOST": "db.example", "MODE": "test"}},
        MemorySize=512,
    )
    _, out = invoke(lam, name)
    env = out["env"]
    assert env["_HANDLER"] == "lambda_function.lambda_handler"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].startswith(
        time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime())
    )
    assert env["TZ"] == ":UTC"
    assert env["AWS_ENDPOINT_URL"] == lab.endpoint
    assert env["DB_HOST"] == "db.example" and env["MODE"] == "test"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} <= env.keys()
    assert "lambda_function.py" in out["files"]
    assert out["who"].startswith("arn:aws:sts::123456789012:assumed-role/")
    assert out["who"].endswith(f"/{name}")


def test_handler_boto3_reaches_ses(lam, deploy, role):
    from moto.ses.models import ses_backends

    # the handler's calls are made with its execution role's credentials: the role must allow them
    boto3.client("iam").put_role_policy(
        RoleName=role.split("/")[-1],
        PolicyName="send-alerts",
        PolicyDocument=allow(["ses:VerifyEmailIdentity", "ses:SendEmail"]),
    )
    name = deploy(
        """
import boto3
def lambda_handler(event, context):
    ses = boto3.client("ses")
    ses.verify_email_identity(EmailAddress="alerts@example.com")
    r = ses.send_email(
        Source="alerts@example.com",
        Destination={"ToAddresses": ["dba@example.com"]},
        Message={"Subject": {"Data": event["subject"]}, "Body": {"Text": {"Data": "hello"}}},
    )
    return r["MessageId"]
"""
    )
    subject = f"subject-{uuid.uuid4().hex}"
    response, message_id = invoke(lam, name, {"subject": subject})
    assert "FunctionError" not in response, message_id
    sent = ses_backends["123456789012"]["us-east-1"].sent_messages
    match = [m for m in sent if m.id == message_id]
    assert (
        match
        and match[0].subject == subject
        and match[0].destinations["ToAddresses"] == ["dba@example.com"]
    )


def test_cold_then_warm(lab, lam, deploy):
    name = deploy(ECHO)
    first, a = invoke(lam, name, LogType="Tail")
    second, b = invoke(lam, name, LogType="Tail")
    report1 = [line for line in tail_lines(first) if line.startswith("REPORT")][0]
    report2 = [line for line in tail_lines(second) if line.startswith("REPORT")][0]
    assert "\tInit Duration: " in report1
    assert "Init Duration" not in report2
    assert (a["count"], b["count"]) == (1, 2) and a["pid"] == b["pid"]
    rows = [r for r in lab.runtime.invocations() if r["function"] == name]
    assert [r["cold"] for r in rows] == [True, False]


def test_timeout_message_and_recycle(lam, deploy):
    name = deploy(
        """
import os, time
def lambda_handler(event, context):
    print("before sleep")
    time.sleep(event.get("sleep", 0))
    return os.getpid()
""",
        Timeout=1,
    )
    _, pid1 = invoke(lam, name)
    started = time.perf_counter()
    response, body = invoke(lam, name, {"sleep": 5}, LogType="Tail")
    assert 0.9 < time.perf_counter() - started < 3
    rid = response["ResponseMetadata"]["RequestId"]
    assert response["FunctionError"] == "Unhandled"
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {rid} Task timed out after 1\.00 seconds",
        body["errorMessage"],
    )
    lines = tail_lines(response)
    assert "before sleep" in lines
    assert lines[-1].startswith(f"REPORT RequestId: {rid}\tDuration: 1000.00 ms")
    assert lines[-1].endswith("Status: timeout")
    assert not psutil.pid_exists(pid1) or psutil.Process(pid1).status() == psutil.STATUS_ZOMBIE
    again, pid2 = invoke(lam, name, LogType="Tail")
    assert pid2 != pid1
    assert "Init Duration" in tail_lines(again)[-1]


def test_update_code_and_configuration(lam, deploy):
    name = deploy("import os\ndef lambda_handler(e, c):\n    return ['v1', os.environ.get('X')]\n")
    assert invoke(lam, name)[1] == ["v1", None]
    lam.update_function_code(
        FunctionName=name,
        ZipFile=make_zip(
            "import os\ndef lambda_handler(e, c):\n    return ['v2', os.environ.get('X')]\n"
        ),
    )
    response, body = invoke(lam, name, LogType="Tail")
    assert body == ["v2", None]
    assert "Init Duration" in tail_lines(response)[-1]
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"X": "1"}})
    assert invoke(lam, name)[1] == ["v2", "1"]


def test_error_shape_is_unhandled(lam, deploy):
    name = deploy("def lambda_handler(event, context):\n    raise ValueError('boom')\n")
    response, body = invoke(lam, name, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorMessage"] == "boom" and body["errorType"] == "ValueError"
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert isinstance(body["stackTrace"], list) and all(
        isinstance(s, str) for s in body["stackTrace"]
    )
    assert (
        "lambda_function.py" in body["stackTrace"][0]
        and "raise ValueError" in body["stackTrace"][0]
    )
    log = base64.b64decode(response["LogResult"]).decode()
    assert "[ERROR] ValueError: boom\nTraceback (most recent call last):" in log


@pytest.mark.parametrize(
    ("source", "handler", "error_type", "message"),
    [
        (
            "def lambda_handler(e, c):\n    return {1, 2}\n",
            "lambda_function.lambda_handler",
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type set is not JSON serializable",
        ),
        (
            "def lambda_handler(e, c):\n    return 1\n",
            "nope.lambda_handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'nope': No module named 'nope'",
        ),
        (
            "def lambda_handler(e, c)\n    return 1\n",
            "lambda_function.lambda_handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'lambda_function': ",
        ),
        (
            "def other(e, c):\n    return 1\n",
            "lambda_function.lambda_handler",
            "Runtime.HandlerNotFound",
            "Handler 'lambda_handler' missing on module 'lambda_function'",
        ),
        (
            "import os\nos._exit(3)\n",
            "lambda_function.lambda_handler",
            "Runtime.ExitError",
            "Error: Runtime exited with error: exit status 3",
        ),
    ],
)
def test_runtime_errors(lam, deploy, source, handler, error_type, message):
    name = deploy(source, Handler=handler)
    response, body = invoke(lam, name)
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type
    assert message in body["errorMessage"]


def test_log_tail_and_cloudwatch(lam, deploy):
    name = deploy(
        """
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
def lambda_handler(event, context):
    print("x" * event["n"])
    logger.info("line one\\nline two")
    print("last words")
    return "ok"
"""
    )
    response, _ = invoke(lam, name, {"n": 10}, LogType="Tail")
    rid = response["ResponseMetadata"]["RequestId"]
    lines = tail_lines(response)
    start = lines.index(f"START RequestId: {rid} Version: $LATEST")
    assert lines[start + 1] == "x" * 10
    assert re.fullmatch(
        rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\tline one", lines[start + 2]
    )
    assert lines[-2] == f"END RequestId: {rid}"
    assert re.fullmatch(
        rf"REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms",
        lines[-1],
    )
    big, _ = invoke(lam, name, {"n": 6000}, LogType="Tail")
    raw = base64.b64decode(big["LogResult"])
    assert len(raw) == 4096 and raw.decode().rstrip("\n").split("\n")[-1].startswith("REPORT")
    assert "LogResult" not in lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    events = boto3.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    messages = [e["message"] for e in events]
    assert f"START RequestId: {rid} Version: $LATEST" in messages
    assert any(m.startswith("[INFO]") and m.endswith("line one\nline two") for m in messages)


def test_dry_run_does_not_execute(lab, lam, deploy, tmp_path):
    marker = tmp_path / "ran"
    name = deploy(
        "import os\ndef lambda_handler(e, c):\n    open(os.environ['MARK'], 'w').write('x')\n",
        Environment={"Variables": {"MARK": str(marker)}},
    )
    response = lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")
    assert response["StatusCode"] == 204
    assert response["Payload"].read() == b""
    assert not marker.exists()
    assert lab.runtime.invocations()[-1]["type"] == "DryRun"


def test_event_returns_before_a_slow_handler(lab, lam, deploy, tmp_path):
    marker = tmp_path / "done"
    name = deploy(
        "import os, time\ndef lambda_handler(e, c):\n    time.sleep(1)\n    open(os.environ['MARK'], 'w').write('x')\n",
        Environment={"Variables": {"MARK": str(marker)}},
    )
    started = time.perf_counter()
    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"k": 1}')
    assert time.perf_counter() - started < 0.5
    assert response["StatusCode"] == 202 and response["Payload"].read() == b""
    assert "ExecutedVersion" not in response
    assert not marker.exists()
    assert lab.runtime.drain(10) == 0
    assert marker.exists()


def test_qualifiers_versions_and_aliases(lam, deploy):
    source = "def lambda_handler(e, c):\n    return ['{}', c.invoked_function_arn]\n"
    name = deploy(source.format("v1"))
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip(source.format("v2")))
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    cases = [
        ({"FunctionName": name}, "v2", "$LATEST", arn),
        ({"FunctionName": name, "Qualifier": "$LATEST"}, "v2", "$LATEST", arn + ":$LATEST"),
        ({"FunctionName": name, "Qualifier": "1"}, "v1", "1", arn + ":1"),
        ({"FunctionName": name, "Qualifier": "live"}, "v1", "1", arn + ":live"),
        ({"FunctionName": f"{name}:live"}, "v1", "1", arn + ":live"),
        ({"FunctionName": arn + ":1"}, "v1", "1", arn + ":1"),
        ({"FunctionName": f"123456789012:function:{name}"}, "v2", "$LATEST", arn),
    ]
    for kwargs, code, version, invoked in cases:
        response = lam.invoke(Payload=b"{}", **kwargs)
        assert response["ExecutedVersion"] == version, kwargs
        assert json.loads(response["Payload"].read()) == [code, invoked], kwargs
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=f"{name}:1", Qualifier="live", Payload=b"{}")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Qualifier="nope", Payload=b"{}")
    assert err.value.response["Error"]["Message"] == f"Function not found: {arn}:nope"


def test_payload_limits(lam, deploy):
    name = deploy("def lambda_handler(e, c):\n    return len(e['s'])\n")
    big = json.dumps({"s": "x" * (6291456 - 9)}).encode()
    assert len(big) == 6291456
    assert json.loads(lam.invoke(FunctionName=name, Payload=big)["Payload"].read()) == 6291456 - 9
    for kind, limit in (("RequestResponse", 6291456), ("Event", 1048576)):
        payload = json.dumps({"s": "x" * (limit - 8)}).encode()
        assert len(payload) == limit + 1
        with pytest.raises(ClientError) as err:
            lam.invoke(FunctionName=name, InvocationType=kind, Payload=payload)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
        assert err.value.response["Error"]["Code"] == "RequestTooLargeException"
    ok = json.dumps({"s": "x" * (1048576 - 9)}).encode()
    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=ok)["StatusCode"] == 202


def test_bad_requests(lam, deploy):
    name = deploy(ECHO)
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Payload=b"not json")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert err.value.response["Error"]["Message"].startswith(
        "Could not parse request body into json"
    )
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    )


def test_in_process_api(lab, deploy):
    name = deploy(ECHO)
    result = lab.runtime.invoke(name, b'{"x": 1}', log_type="Tail")
    assert isinstance(result, InvokeResult)
    assert (result.status_code, result.function_error, result.executed_version) == (
        200,
        None,
        "$LATEST",
    )
    assert json.loads(result.payload)["rid"] == result.request_id
    assert "START RequestId" in base64.b64decode(result.log_result).decode()
    assert lab.runtime.invoke(name, b"{}").log_result is None
    event = lab.runtime.invoke(name, b"{}", invocation_type="Event")
    assert (event.status_code, event.payload, event.executed_version) == (202, b"", None)
    assert lab.runtime.invoke(name, b"{}", invocation_type="DryRun").status_code == 204
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke("missing", b"{}", qualifier="2")
    assert (err.value.http_status, err.value.code) == (404, "ResourceNotFoundException")
    assert (
        err.value.message
        == "Function not found: arn:aws:lambda:us-east-1:123456789012:function:missing:2"
    )
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke(f"{name}:1", b"{}", qualifier="$LATEST")
    assert (err.value.http_status, err.value.code) == (400, "InvalidParameterValueException")
    with pytest.raises(LambdaApiError) as err:
        lab.runtime.invoke(
            f"arn:aws:lambda:us-west-2:123456789012:function:{name}", b"{}", region="us-east-1"
        )
    assert err.value.http_status == 400
    assert lab.runtime.drain(10) == 0


def test_warm_overhead_is_small(lab, deploy):
    name = deploy("def lambda_handler(e, c):\n    return e\n")
    lab.runtime.invoke(name, b"{}")
    samples = []
    for _ in range(50):
        started = time.perf_counter()
        lab.runtime.invoke(name, b'{"a": 1}')
        samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[len(samples) // 2] < 0.005  # generous: typically ~0.2 ms


def test_pool_bounds_and_idle_reaping(lab, deploy):
    from concurrent.futures import ThreadPoolExecutor

    name = deploy(
        "import os, time\ndef lambda_handler(e, c):\n    time.sleep(0.3)\n    return os.getpid()\n"
    )
    runtime = LambdaRuntime(lab.endpoint, max_per_version=2, idle_seconds=0.3)
    try:
        with ThreadPoolExecutor(5) as pool:
            results = list(pool.map(lambda _: runtime.invoke(name, b"{}"), range(5)))
        pids = {json.loads(r.payload) for r in results}
        assert len(pids) == 2  # five invocations shared two warm environments
        assert [r["cold"] for r in runtime.invocations()].count(True) == 2
        deadline = time.monotonic() + 5
        while runtime.workers()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.workers()["workers"] == 0  # idle environments were reaped
    finally:
        runtime.shutdown()


def test_reserved_concurrency_zero_throttles(lam, deploy):
    name = deploy(ECHO)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as err:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert err.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.delete_function_concurrency(FunctionName=name)
    assert lam.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200


def test_separate_runtime_shutdown_kills_workers(lab, deploy):
    name = deploy(ECHO)
    runtime = LambdaRuntime(lab.endpoint)
    try:
        runtime.invoke(name, b"{}")
        pids = runtime.worker_pids()
        assert pids and all(psutil.pid_exists(p) for p in pids)
    finally:
        runtime.shutdown()
    assert runtime.worker_pids() == []
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )


def test_lab_stop_leaves_no_worker_processes(lab, deploy):
    name = deploy(ECHO)
    lab.runtime.invoke(name, b"{}")
    assert lab.runtime.worker_pids()
    script = os.path.join("rdslab", "runtime", "worker.py")
    lab.stop()
    children = psutil.Process().children(recursive=True)
    assert not [c for c in children if script in " ".join(c.cmdline())]
