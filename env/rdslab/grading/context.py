"""What a check function receives: the live lab, through boto3 and psycopg2.

A check inspects the lab's state (AWS resources through boto3, tables and rows through SQL)
rather than a learner's variables. It talks to the lab with its own clients, built with the
lab's endpoint and credentials, so a learner who changed ``os.environ`` or reused a name such as
``rds`` or ``conn`` cannot confuse it. The learner's namespace is there only as a fallback
(e.g. the password a learner chose when it differs from the exercise text).
"""

from __future__ import annotations

from typing import Any

from .. import config


class LearnerError(Exception):
    """Raised by a check when the learner's state stops it from looking further.

    The remaining points are lost; ``looked_at``, ``wrong`` and ``hint`` are shown.
    """

    def __init__(self, looked_at: str, wrong: str, hint: str = "") -> None:
        super().__init__(wrong)
        self.looked_at = looked_at
        self.wrong = wrong
        self.hint = hint


class LabNotStarted(LearnerError):
    def __init__(self) -> None:
        super().__init__(
            "the lab",
            "the lab is not running in this kernel",
            "Run the setup cell at the top (`import rdslab; lab = rdslab.start()`), "
            "then your answer cells, then this check.",
        )


def _current_lab() -> Any:
    from ..lab import current

    return current()


class Context:
    """The check's view of the lab. Use it as a context manager: it closes what it opened."""

    def __init__(self, exercise_id: str, namespace: dict[str, Any] | None = None) -> None:
        self.exercise_id = exercise_id
        self._namespace = namespace
        self._clients: dict[str, Any] = {}
        self._connections: list[Any] = []
        self.password_source: str | None = None  # set by connect() when a fallback was used

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for conn in self._connections:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
        self._connections.clear()

    # ------------------------------------------------------------------ AWS
    @property
    def lab(self) -> Any:
        lab = _current_lab()
        if lab is None:
            raise LabNotStarted()
        return lab

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` that reaches the lab, whatever the learner's settings."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[service] = boto3.session.Session().client(
                service,
                endpoint_url=self.lab.endpoint,
                region_name=config.REGION,
                aws_access_key_id=config.ACCESS_KEY_ID,
                aws_secret_access_key=config.SECRET_ACCESS_KEY,
                config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
            )
        return self._clients[service]

    def logged_events(self, log_group: str, needle: str, prefix: str = "received ") -> list[Any]:
        """The JSON documents a function printed as ``<prefix>{...}`` in ``log_group`` that
        contain ``needle``, oldest first (an unparsable one as ``{"unparsed": line}``)."""
        import json

        logs = self.client("logs")
        try:
            found = logs.filter_log_events(logGroupName=log_group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        events: list[Any] = []
        for event in sorted(found, key=lambda e: e["timestamp"]):
            message = event["message"]
            if message.startswith(prefix) and needle in message:
                try:
                    events.append(json.loads(message.split(prefix, 1)[1]))
                except ValueError:
                    events.append({"unparsed": message})
        return events

    def db_instance(self, identifier: str, hint: str = "") -> dict[str, Any]:
        """``describe_db_instances`` for one instance, or a LearnerError saying it is missing."""
        rds = self.client("rds")
        try:
            return dict(
                rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
            )
        except rds.exceptions.DBInstanceNotFoundFault:
            raise LearnerError(
                f"DB instance `{identifier}` (describe_db_instances)",
                f"there is no DB instance named `{identifier}`",
                hint
                or "Run your answer cell that calls `create_db_instance`, then re-run this check.",
            ) from None

    # ------------------------------------------------------------------ the learner's namespace
    @property
    def namespace(self) -> dict[str, Any]:
        """The learner's globals (IPython's user namespace, or ``__main__``): a fallback only."""
        if self._namespace is None:
            try:
                from IPython import get_ipython

                shell = get_ipython()
            except ImportError:
                shell = None
            if shell is not None:
                self._namespace = shell.user_ns
            else:
                import __main__

                self._namespace = vars(__main__)
        return self._namespace

    def learner_value(self, name: str, hint: str = "") -> Any:
        """The learner's variable ``name``, or a LearnerError (the NameError a learner would see)."""
        if name not in self.namespace:
            raise LearnerError(
                f"your variable `{name}`",
                f"NameError: `{name}` is not defined in your notebook",
                hint or f"Define `{name}` in your answer cell and run it before this check.",
            )
        return self.namespace[name]

    def learner_strings(self, word: str) -> list[tuple[str, str]]:
        """(name, value) of the learner's string variables whose name contains ``word``."""
        items = [
            (k, v)
            for k, v in self.namespace.items()
            if isinstance(v, str) and not k.startswith("_")
        ]
        return [(k, v) for k, v in items if word.lower() in k.lower()]

    # ------------------------------------------------------------------ SQL
    def connect(
        self,
        instance: dict[str, Any],
        user: str,
        password: str,
        dbname: str,
        *,
        fallback_word: str = "password",
    ) -> Any:
        """A psycopg2 connection to ``instance``'s Endpoint (autocommit, 5 s connect timeout).

        ``password`` is the one the exercise text gives; if the server refuses it, the learner's
        string variables whose name contains ``fallback_word`` are tried, and
        ``self.password_source`` names the one that worked.
        """
        import psycopg2

        endpoint = instance.get("Endpoint") or {}
        host, port = endpoint.get("Address"), endpoint.get("Port")
        where = f"{instance.get('DBInstanceIdentifier', '?')} at {host}:{port} as `{user}`, database `{dbname}`"
        if not host or not port:
            raise LearnerError(
                where, "the instance has no Endpoint yet", "Wait until its status is `available`."
            )
        candidates = [(None, password)] + [
            (n, v) for n, v in self.learner_strings(fallback_word) if v != password
        ]
        error: Exception | None = None
        for source, secret in candidates if fallback_word else candidates[:1]:
            try:
                conn = psycopg2.connect(
                    host=host,
                    port=port,
                    user=user,
                    password=secret,
                    dbname=dbname,
                    connect_timeout=5,
                    application_name=f"rdslab-check-{self.exercise_id}",
                )
            except psycopg2.OperationalError as exc:
                error = error or exc
                if "password" not in str(exc):
                    break  # not an authentication problem: other passwords will not help
                continue
            conn.autocommit = True
            self._connections.append(conn)
            self.password_source = source
            return conn
        message = str(error).strip().splitlines()[0] if error else "could not connect"
        raise LearnerError(
            f"a connection to {where}",
            f"could not connect: {message}",
            "Use the Endpoint Address and Port from describe_db_instances, the master user name, "
            "the password and the database name given in the exercise text.",
        )

    def query(
        self, conn: Any, sql: str, params: tuple[Any, ...] | dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` on ``conn`` and return all rows (an empty list for statements without rows)."""
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
