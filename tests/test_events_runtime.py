"""End to end with the lab's real Lambda runtime (skipped while the runtime room is absent):
an RDS event reaches real handler code through SNS and through EventBridge, and a missing
resource policy stops it."""

# ruff: noqa: F811  (pytest fixtures imported from test_events_support are parameters here)

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_events_support import clients, engine, events_lab, make_function, uid  # noqa: F401


@pytest.fixture(scope="module")
def runtime(events_lab: Any) -> Any:
    room = getattr(events_lab, "runtime", None)
    if room is None or not hasattr(room, "invoke_async"):
        pytest.skip("the runtime room is not installed")
    return room


def _writer_function(c: dict[str, Any], out: Path) -> tuple[str, str]:
    name, _ = make_function(c)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "handler.py",
            "import json, os, uuid\n"
            "def handler(event, context):\n"
            "    path = os.path.join(os.environ['OUT'], uuid.uuid4().hex + '.json')\n"
            "    with open(path, 'w') as f:\n"
            "        json.dump(event, f)\n",
        )
    c["lambda"].update_function_code(FunctionName=name, ZipFile=buf.getvalue())
    c["lambda"].update_function_configuration(
        FunctionName=name, Environment={"Variables": {"OUT": str(out)}}
    )
    arn = c["lambda"].get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return name, arn


def _received(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def test_rds_event_reaches_real_handlers(
    runtime: Any, clients: dict[str, Any], engine: Any
) -> None:
    c = clients
    assert engine.runtime() is runtime
    out = Path(tempfile.mkdtemp(prefix="rdslab-events-"))
    os.chmod(out, 0o777)  # the handler may run as another user
    fn, fn_arn = _writer_function(c, out)
    topic = c["sns"].create_topic(Name=uid("t"))["TopicArn"]
    c["sns"].subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn)
    source = uid("rt-db")
    sub = uid("es")
    c["rds"].create_event_subscription(SubscriptionName=sub, SnsTopicArn=topic)
    rule = uid("rule")
    rule_arn = c["events"].put_rule(
        Name=rule, EventPattern=json.dumps({"detail": {"SourceIdentifier": [source]}})
    )["RuleArn"]
    c["events"].put_targets(Rule=rule, Targets=[{"Id": "f", "Arn": fn_arn}])
    try:
        engine.inject(source, "0089")  # no permission yet: nothing runs
        assert engine.wait_idle(20)
        assert _received(out) == []
        rows = engine.deliveries().query("target == @fn_arn and source_id == @source")
        assert sorted(rows["status"]) == ["AccessDenied", "AccessDenied"]

        for principal, arn in (("sns.amazonaws.com", topic), ("events.amazonaws.com", rule_arn)):
            c["lambda"].add_permission(
                FunctionName=fn, StatementId=principal.split(".")[0], Action="lambda:InvokeFunction",
                Principal=principal, SourceArn=arn,
            )  # fmt: skip
        engine.inject(source, "0089")
        assert engine.wait_idle(20)
        got = _received(out)
        sns_events = [e for e in got if "Records" in e]
        eb_events = [e for e in got if e.get("source") == "aws.rds"]
        assert len(sns_events) == 1 and len(eb_events) == 1
        assert json.loads(sns_events[0]["Records"][0]["Sns"]["Message"])["Source ID"] == source
        assert eb_events[0]["detail"]["EventID"] == "RDS-EVENT-0089"
    finally:
        c["rds"].delete_event_subscription(SubscriptionName=sub)
