"""``AWS/Lambda`` metrics, written to the lab's CloudWatch the way Lambda publishes them.

Per function (dimension ``FunctionName``; a query without dimensions gives the account's
totals):
``Invocations``, ``Errors`` (function errors), ``Duration`` (milliseconds) and ``Throttles``
for every run; ``AsyncEventsReceived`` for every queued ``Event`` invoke; and, when Lambda's own
safety net fails, ``DeadLetterErrors`` and ``DestinationDeliveryFailures``. A learner reads them
with ``cloudwatch.get_metric_statistics(Namespace="AWS/Lambda", ...)`` as on AWS. (Lambda also
publishes ``Resource`` and ``ExecutedVersion`` dimensions and a few newer metrics; the lab
does not.)
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from .. import aws

log = logging.getLogger("rdslab.runtime")
NAMESPACE = "AWS/Lambda"


def put(function_name: str, metric: str, value: float, unit: str = "Count") -> None:
    """One data point for the function (best effort)."""
    # naive UTC: moto compares it with the naive times of get_metric_statistics requests
    now = datetime.now(UTC).replace(tzinfo=None)
    point = {"MetricName": metric, "Value": value, "Unit": unit, "Timestamp": now}
    # one point per function: a query without dimensions adds them all up in moto (where
    # Lambda publishes a separate account-wide series), so the account's totals come out right
    data = [{**point, "Dimensions": [{"Name": "FunctionName", "Value": function_name}]}]
    try:
        aws.backend("cloudwatch").put_metric_data(NAMESPACE, data)
    except Exception:  # noqa: BLE001 - metrics never break an invocation
        log.debug("could not record %s %s", metric, function_name, exc_info=True)


def from_row(row: dict[str, Any]) -> None:
    """The metrics of one row of the runtime's invocation log."""
    name = row.get("function")
    if not name:
        return
    if row.get("queued"):
        put(name, "AsyncEventsReceived", 1)
        return
    if row.get("duration_ms") is None:  # DryRun: validated, nothing ran
        return
    put(name, "Invocations", 1)
    put(name, "Errors", 1 if row.get("error") else 0)
    put(name, "Duration", float(row["duration_ms"]), "Milliseconds")
