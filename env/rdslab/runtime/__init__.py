"""The Lambda runtime room: real handler code in warm execution environments.

``rdslab.start()`` installs it as ``lab.runtime``. From then on ``boto3.client("lambda").invoke``
against the lab runs the uploaded handler (Python runtimes, under the lab's interpreter) in a
worker subprocess, with Lambda's context object, environment variables, cold/warm starts,
timeouts, START/END/REPORT logs in CloudWatch Logs, error payloads, and asynchronous
invocation semantics (retries, maximum event age, destinations, dead-letter queues).

Other rooms call it in-process::

    result = lab.runtime.invoke("my-function", b'{"id": 1}', log_type="Tail")
    request_id = lab.runtime.invoke_async(
        "my-function", body, principal_service="sns.amazonaws.com", source_arn=topic_arn
    )

Modules: ``api`` (InvokeResult, LambdaApiError), ``core`` (LambdaRuntime), ``invoke`` (name
resolution, validation, one execution), ``environment`` (code, env vars, credentials), ``pool``
(worker processes), ``worker`` (the child's main), ``logs`` (CloudWatch, LogResult), ``asyncq``
(Event queue, retries), ``destinations`` (records, dead letters), ``eventconfig`` (event invoke
configs), ``policy`` (resource-based policy), ``motofix`` (patches to moto 5.2.5).
"""

from __future__ import annotations

from typing import Any

from .api import InvokeResult, LambdaApiError
from .core import LambdaRuntime

__all__ = ["InvokeResult", "LambdaApiError", "LambdaRuntime", "install"]


def install(lab: Any) -> LambdaRuntime:
    """Patch moto and start the runtime for ``lab`` (called by ``Lab.__init__``)."""
    from .. import aws
    from . import motofix, validation

    motofix.apply()
    validation.apply()
    runtime = LambdaRuntime(lab.aws.url)
    motofix.activate(runtime)
    aws.on_reset(runtime.reset)
    return runtime
