"""The Aurora MySQL room: real MariaDB servers behind ``aurora-mysql`` clusters, with
Aurora MySQL's ``lambda_sync`` / ``lambda_async`` native functions carried to real Lambda code.

What a learner does, exactly as on Aurora MySQL version 3::

    rds.create_db_cluster(DBClusterIdentifier="shop", Engine="aurora-mysql",
                          MasterUsername="admin", MasterUserPassword="...", DatabaseName="shop")
    rds.create_db_instance(DBInstanceIdentifier="shop-1", DBClusterIdentifier="shop",
                           Engine="aurora-mysql", DBInstanceClass="db.r6g.large")
    # IAM role trusted by rds.amazonaws.com, allowed lambda:InvokeFunction, then:
    rds.add_role_to_db_cluster(DBClusterIdentifier="shop", RoleArn=role_arn)
    # cluster parameter group with aws_default_lambda_role = role_arn, reboot the writer

    GRANT AWS_LAMBDA_ACCESS TO 'app'@'%';        -- as the master user
    SET ROLE AWS_LAMBDA_ACCESS;                   -- in the caller's session
    SELECT lambda_sync('arn:aws:lambda:us-east-1:123456789012:function:f', '{"x": 1}');
    SELECT lambda_async('arn:aws:lambda:us-east-1:123456789012:function:f', '{"x": 1}');
    CALL mysql.lambda_async('arn:...', '{"x": 1}');   -- deprecated form (EXECUTE needed)

How (see ``sql`` for the objects): the functions hand each request to the lab's agent through
an outbox table in an internal database that learners cannot read, written through a FederatedX
loopback table so a request survives ROLLBACK and a synchronous call can wait for its answer
inside one statement (even inside a trigger). The agent applies Aurora MySQL's IAM and network
rules (``iam``), runs the function with the lab's Lambda runtime and answers; errors carry
Aurora's errno and words, and a failing ``lambda_sync`` aborts its statement.

Choices and limits (vs Aurora MySQL v3, which is MySQL 8):

* MariaDB >= 10.11 stands in for MySQL 8 (``VERSION()`` says MariaDB; ``AURORA_VERSION()`` is
  emulated). MySQL-8-only syntax is missing: ``SET ROLE ALL``, ``SET DEFAULT ROLE r TO u``
  (MariaDB: ``SET DEFAULT ROLE r FOR u``), ``activate_all_roles_on_login``, v2's
  ``GRANT INVOKE LAMBDA``; collation utf8mb4_0900_ai_ci (the lab uses utf8mb4_general_ci).
* The native functions are stored functions present in every learner database (MariaDB has no
  global namespace and no UDF without C): the lab creates them in the initial database and its
  agent adds them to a new database within milliseconds of ``CREATE DATABASE`` (and restores
  dropped or altered ones within a second). A call with no default database fails
  ("No database selected"); they show in ``SHOW FUNCTION STATUS`` and dumps.
* Roles are not active inside a trigger or routine defined by another user (the Aurora docs
  warn the same: ``SET ROLE`` inside the procedure); ``mysql.lambda_async`` needs EXECUTE.
* ``mysql.lambda_async`` exists in every lab cluster; on v3 (absent on AWS) it adds a warning.
* ``lambda_sync`` returns the function's response as a BLOB; ``lambda_async`` returns NULL
  (AWS documents a JSON payload without saying what; the lab's reading).
* The master user cannot create objects with another DEFINER (no SET USER) and has no global
  EXECUTE; it could drop the lab's internal accounts (``rdsadmin``, ``rdslab_loop``): don't.
* Only the writer runs a server: reader instances have none, and there is no failover.

Modules: ``binaries`` (finding MariaDB, settings, template), ``server`` (one server per writer),
``sql`` (all SQL), ``agent`` (the request loop, new databases), ``iam`` (access rules, error
texts), ``lifecycle`` (moto's RDS API).
"""

from __future__ import annotations

from typing import Any

from .. import aws
from .agent import Agent
from .binaries import MySQLBinariesError
from .server import MyServer, MySQLManager

__all__ = ["AuroraMySQLRoom", "MySQLBinariesError", "MyServer", "install"]


class AuroraMySQLRoom:
    """``lab.mysql``: the servers, the agent, and views for lessons."""

    def __init__(self, lab: Any) -> None:
        from . import lifecycle

        self.manager = MySQLManager()
        self.agent = Agent(lab, self.manager)
        lifecycle.install(self.manager, self.agent)
        aws.on_reset(self.manager.reset)

    def get(self, identifier: str) -> MyServer | None:
        """The MariaDB server behind an Aurora MySQL writer instance."""
        return self.manager.get(identifier)

    def status(self) -> Any:
        """A table of the lab's MariaDB servers (identifier, engine, status, endpoint, pid)."""
        return self.manager.status_frame()

    def log(self, db_instance_identifier: str, limit: int = 50) -> Any:
        """The lambda_sync/lambda_async invocation log of one writer, newest last."""
        return self.agent.log(db_instance_identifier, limit)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every lambda_sync/lambda_async request has been handed to Lambda."""
        return self.agent.wait_idle(timeout)

    def explain_path(self, db_instance_identifier: str, function_arn: str) -> Any:
        """Why an Aurora MySQL writer can or cannot invoke a function (IAM and network)."""
        from .. import access
        from . import iam

        return iam.explain(db_instance_identifier, access.function_arn(function_arn))

    def shutdown(self) -> None:
        self.agent.shutdown()
        self.manager.shutdown()


def install(lab: Any) -> AuroraMySQLRoom:
    """Wire the room into moto's RDS API; MariaDB itself is looked for at the first create."""
    room = AuroraMySQLRoom(lab)
    runtime = getattr(lab, "runtime", None)
    if runtime is not None:
        runtime.upstream.append(room.wait_idle)
    return room
