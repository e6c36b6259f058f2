"""Connects moto's RDS API to the lab's MariaDB servers for engine ``aurora-mysql``.

* ``create_db_cluster(Engine="aurora-mysql")`` validates the master user as Aurora does and,
  without ``EngineVersion``, answers with an Aurora MySQL version 3 (moto's default is v2).
* ``create_db_instance(DBClusterIdentifier=..., Engine="aurora-mysql")`` starts a real server
  for the writer: Endpoint (and the cluster's Endpoint) is 127.0.0.1 and its own port; the call
  answers ``creating``, the next RDS call sees ``available``. Without MariaDB (or PyMySQL) it
  fails with an RDS-shaped error naming what to install, and nothing is created.
* ``reboot_db_instance`` restarts the server and applies ``aws_default_lambda_role``;
  ``stop_db_cluster``/``start_db_cluster`` stop and start it (as on AWS, an Aurora instance
  itself cannot be stopped); ``delete_db_instance`` removes it.
* ``modify_db_cluster_parameter_group``: ``ApplyMethod='immediate'`` applies the (dynamic)
  ``aws_default_lambda_role`` at once, otherwise at the next reboot; ``DBClusterMembers`` show
  ``pending-reboot`` meanwhile.

Wrappers chain onto what is installed (rdsapi, access, events wrap the same methods); every
other engine passes straight through. Any IAM/EC2/RDS/Lambda change empties the agent's cache
of verified paths.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.rds import models as rds_models
from moto.rds.exceptions import InvalidParameterCombination, InvalidParameterValue, RDSClientError

from .. import outbox, rdsapi
from . import iam
from .agent import Agent
from .binaries import MySQLBinariesError
from .server import MySQLManager

ENGINE = "aurora-mysql"
DEFAULT_VERSION = "8.0.mysql_aurora.3.08.0"
_state: dict[str, Any] = {}
MARK = "_rdslab_mysql"


def _manager() -> MySQLManager:
    return _state["manager"]  # type: ignore[no-any-return]


def _wrap(cls: type, name: str, make: Any) -> None:
    original = getattr(cls, name)
    if getattr(original, MARK, False):
        return
    wrapped = make(original)
    setattr(wrapped, MARK, True)
    functools.update_wrapper(wrapped, original)
    setattr(cls, name, wrapped)


def _validate_master(user: str | None, password: str | None) -> None:
    """Aurora MySQL's rules for the master user (1-16 letters/digits, first a letter)."""
    if not user:
        raise InvalidParameterValue(
            "The parameter MasterUsername must be provided and must not be blank."
        )
    if user.lower() in {"rdsadmin", "rdslab_loop", "root", "mariadb.sys", "public"}:
        raise InvalidParameterValue(
            f"MasterUsername {user} cannot be used as it is a reserved word used by the engine"
        )
    if not (user[0].isalpha() and user.replace("_", "a").isalnum() and len(user) <= 16):
        raise InvalidParameterValue(
            "The parameter MasterUsername is not a valid identifier. It must be 1 to 16 "
            "alphanumeric characters and start with a letter."
        )
    if password and any(c in '/@" ' or not 32 < ord(c) < 127 for c in password):
        raise InvalidParameterValue(
            "The parameter MasterUserPassword is not a valid password. Only printable ASCII "
            "characters besides '/', '@', '\"', ' ' may be used."
        )


def _create_db_cluster(original: Any) -> Any:
    def create_db_cluster(self: Any, kwargs: dict[str, Any], *a: Any, **k: Any) -> Any:
        if kwargs.get("engine") == ENGINE:
            _validate_master(kwargs.get("master_username"), kwargs.get("master_user_password"))
            kwargs["engine_version"] = kwargs.get("engine_version") or DEFAULT_VERSION
            if not kwargs.get("db_cluster_parameter_group_name"):
                family = kwargs["engine_version"].split(".mysql_aurora")[0]
                kwargs["db_cluster_parameter_group_name"] = f"default.aurora-mysql{family}"
        return original(self, kwargs, *a, **k)

    return create_db_cluster


def _create_db_instance(original: Any) -> Any:
    def create_db_instance(self: Any, db_kwargs: dict[str, Any], *a: Any, **k: Any) -> Any:
        cluster = self.clusters.get(db_kwargs.get("db_cluster_identifier") or "")
        if db_kwargs.get("engine") != ENGINE or cluster is None:
            return original(self, db_kwargs, *a, **k)
        writer = any(getattr(m, "_lab_server", None) for m in cluster.members)
        if not writer:
            try:
                _manager().prepare()
            except MySQLBinariesError as exc:
                raise RDSClientError(
                    "InternalFailure", f"The lab could not start an Aurora MySQL server: {exc}"
                ) from exc
        database = original(self, db_kwargs, *a, **k)
        if writer:
            return database  # a reader: Aurora replicas share the writer's storage (not emulated)
        try:
            server = _manager().create(
                database.db_instance_identifier,
                cluster.master_username,
                cluster._master_user_password,
                cluster.database_name,
                cluster.engine_version,
            )
        except Exception as exc:
            self.databases.pop(database.db_instance_identifier, None)
            raise RDSClientError(
                "InternalFailure", f"The lab could not start an Aurora MySQL server: {exc}"
            ) from exc
        database.port = server.port
        database._lab_server = server
        cluster.port = server.port
        iam.snapshot(database)
        rdsapi._transition(database, "creating", "available")
        return database

    return create_db_instance


def _reboot_db_instance(original: Any) -> Any:
    def reboot_db_instance(self: Any, *a: Any, **k: Any) -> Any:
        database = original(self, *a, **k)
        identifier = database.db_instance_identifier
        server = _manager().get(identifier)
        if server is not None:
            if database.status not in {"available", "rebooting"}:
                raise RDSClientError(
                    "InvalidDBInstanceState", f"DB instance {identifier} is not in available state."
                )
            server.restart()
            iam.snapshot(database)
            rdsapi._transition(database, "rebooting", "available")
        return database

    return reboot_db_instance


def _no_instance_stop(original: Any) -> Any:
    def stop_or_start(self: Any, *a: Any, **k: Any) -> Any:
        identifier = k.get("db_instance_identifier") or (a[0] if a else "")
        database = self.databases.get(identifier)
        if database is not None and database.engine == ENGINE:
            raise InvalidParameterCombination(
                f"{ENGINE} DB instances are not eligible for stopping and starting."
            )
        return original(self, *a, **k)

    return stop_or_start


def _cluster_power(start: bool) -> Any:
    def make(original: Any) -> Any:
        def power(self: Any, *a: Any, **k: Any) -> Any:
            answer = original(self, *a, **k)
            cluster = self.clusters.get(answer.db_cluster_identifier)
            if cluster is None or cluster.engine != ENGINE:
                return answer
            for member in cluster.members:
                server = _manager().get(member.db_instance_identifier)
                if server is None:
                    continue
                if start:
                    server.start()
                    iam.snapshot(member)
                    rdsapi._transition(member, "starting", "available")
                else:
                    server.stop("fast")
                    rdsapi._transition(member, "stopping", "stopped")
            answer.status = "starting" if start else "stopping"
            rdsapi._transition(cluster, answer.status, "available" if start else "stopped")
            return answer

        return power

    return make


def _delete_db_instance(original: Any) -> Any:
    def delete_db_instance(self: Any, *a: Any, **k: Any) -> Any:
        database = original(self, *a, **k)
        _manager().delete(database.db_instance_identifier)
        return database

    return delete_db_instance


def _modify_cluster_group(original: Any) -> Any:
    def modify(self: Any, name: str, parameters: Any, *a: Any, **k: Any) -> Any:
        parameters = list(parameters)
        group = original(self, name, parameters, *a, **k)
        now = any(
            p.get("ParameterName") == iam.PARAMETER and p.get("ApplyMethod") == "immediate"
            for p in parameters
        )
        if now:
            for cluster in list(self.clusters.values()):
                if (
                    cluster.engine == ENGINE
                    and (cluster.parameter_group or "").lower() == (name or "").lower()
                ):
                    for member in cluster.members:
                        if getattr(member, "_lab_server", None) is not None:
                            iam.snapshot(member)
        return group

    return modify


def _patch_members() -> None:
    prop = rds_models.DBCluster.db_cluster_members
    if getattr(prop.fget, MARK, False):
        return

    def db_cluster_members(self: Any) -> list[dict[str, Any]]:
        members = prop.fget(self)  # type: ignore[union-attr]
        if self.engine == ENGINE:
            for entry, member in zip(members, self.members, strict=False):
                if iam.pending_reboot(member):
                    entry["DBClusterParameterGroupStatus"] = "pending-reboot"
        return members  # type: ignore[no-any-return]

    setattr(db_cluster_members, MARK, True)
    rds_models.DBCluster.db_cluster_members = property(db_cluster_members)  # type: ignore[method-assign,assignment]


def install(manager: MySQLManager, agent: Agent) -> None:
    _state["manager"], _state["agent"] = manager, agent
    rdsapi._patch_models()  # Endpoint = 127.0.0.1 for instances with a lab server
    backend = rds_models.RDSBackend
    _wrap(backend, "create_db_cluster", _create_db_cluster)
    _wrap(backend, "create_db_instance", _create_db_instance)
    _wrap(backend, "reboot_db_instance", _reboot_db_instance)
    _wrap(backend, "stop_db_instance", _no_instance_stop)
    _wrap(backend, "start_db_instance", _no_instance_stop)
    _wrap(backend, "stop_db_cluster", _cluster_power(False))
    _wrap(backend, "start_db_cluster", _cluster_power(True))
    _wrap(backend, "delete_db_instance", _delete_db_instance)
    _wrap(backend, "modify_db_cluster_parameter_group", _modify_cluster_group)
    _patch_members()
    outbox.on_state_change("mysql", agent.invalidate_access)
