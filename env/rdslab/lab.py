"""The lab as one object: ``rdslab.start()`` builds it once per kernel.

A ``Lab`` wires the rooms together (AWS endpoint, database servers, SQL bridge, Lambda runtime,
service events) and exposes what a lesson needs to *show*; learners still use plain boto3 and
psycopg2 for everything they *do*.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from . import aws, config

_LAB: Lab | None = None
_LOCK = threading.Lock()


class Lab:
    """One running lab: a moto endpoint plus the lab's own rooms."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.account_id = config.ACCOUNT_ID
        self.region = config.REGION
        self.time = config.TIME
        self.aws = aws.MotoEndpoint()
        self.aws.export_environment()
        self.endpoint = self.aws.url
        self._components: dict[str, Any] = {}
        self._stopped = False
        # Order matters: access patches RDS/EC2 before the databases room wraps the same calls,
        # the runtime must exist before the bridge and events deliver to Lambda.
        # "mysql" (Aurora MySQL on MariaDB) wraps the RDS calls after databases/access and
        # needs the runtime; events wraps last.
        for name in ("access", "databases", "runtime", "bridge", "mysql", "events"):
            self._install_optional(name)

    def _install_optional(self, name: str) -> None:
        import importlib

        try:
            module = importlib.import_module(f"rdslab.{name}")
        except ModuleNotFoundError as exc:  # a room not built yet
            if exc.name and exc.name.startswith("rdslab"):
                return
            raise
        install = getattr(module, "install", None)
        if install is None:
            return
        component = install(self)
        self._components[name] = component
        setattr(self, name, component)

    # ------------------------------------------------------------------ views for lessons
    def environment(self) -> dict[str, str]:
        """The variables to export in a terminal so psql, the AWS CLI and scripts reach the lab."""
        return self.aws.environment()

    def status(self) -> Any:
        """A table of the lab's DB servers (identifier, engine, status, endpoint, pid)."""
        import pandas as pd

        frames = [self._components["databases"].status_frame()]
        mysql = self._components.get("mysql")
        if mysql is not None:
            frames.append(mysql.status())
        nonempty = [f for f in frames if len(f)]
        return pd.concat(nonempty, ignore_index=True) if nonempty else frames[0]

    def explain_path(self, db_identifier: str, function_name: str) -> Any:
        """Why a DB instance can or cannot reach a Lambda function (IAM and network)."""
        from . import access

        return access.explain_path(db_identifier, function_name)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the lab has nothing in flight: SQL requests handed to Lambda, async
        invocations finished, service events delivered. True if it got there in time."""
        deadline = time.monotonic() + timeout
        ok = True
        for name in ("bridge", "mysql", "runtime", "events", "bridge", "mysql", "runtime"):
            component = self._components.get(name)
            wait = getattr(component, "wait_idle", None)
            if wait is not None:
                ok = bool(wait(max(0.0, deadline - time.monotonic()))) and ok
        return ok

    def ses_outbox(self) -> Any:
        """Emails sent through SES in this lab (a lab view: on AWS they would be delivered)."""
        import pandas as pd

        from .aws import backend

        rows = []
        for message in backend("ses").sent_messages:
            destinations = getattr(message, "destinations", {}) or {}
            rows.append(
                {
                    "source": getattr(message, "source", None),
                    "to": ", ".join(destinations.get("ToAddresses", [])),
                    "subject": getattr(message, "subject", None),
                    "body": getattr(message, "body", None),
                }
            )
        return pd.DataFrame(rows, columns=["source", "to", "subject", "body"])

    def lambda_invocations(self) -> Any:
        """Recent Lambda invocations the lab ran (time, function, type, status, duration...)."""
        import pandas as pd

        runtime = self._components.get("runtime")
        return pd.DataFrame(runtime.invocations() if runtime is not None else [])

    def __repr__(self) -> str:
        return (
            f"<rdslab.Lab endpoint={self.endpoint} account={self.account_id} region={self.region}>"
        )

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Stop everything the lab started (also run at interpreter exit)."""
        global _LAB
        if self._stopped:
            return
        self._stopped = True
        for component in reversed(list(self._components.values())):
            shutdown = getattr(component, "shutdown", None)
            if shutdown is not None:
                try:
                    shutdown()
                except Exception:  # noqa: BLE001 - stopping must go on for the other rooms
                    logging.getLogger("rdslab").exception("error while stopping")
        self.aws.stop()
        # the next lab in this process starts from a clean, empty account
        aws.clear_reset_hooks()
        try:
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
        except Exception:  # noqa: BLE001 - a failed reset must not hide the stop
            logging.getLogger("rdslab").exception("could not reset moto's state")
        with _LOCK:
            if _LAB is self:
                _LAB = None


def start() -> Lab:
    """Start the lab (or return the one already running in this process)."""
    global _LAB
    with _LOCK:
        if _LAB is None:
            _LAB = Lab()
            atexit.register(_LAB.stop)
        return _LAB


def current() -> Lab | None:
    """The running lab, if any."""
    return _LAB
