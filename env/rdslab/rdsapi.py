"""Connects moto's RDS API to the lab's real PostgreSQL servers.

* ``create_db_instance`` (engine ``postgres``, or ``aurora-postgresql`` in a cluster) starts a
  real server; ``Endpoint`` is 127.0.0.1 and the server's own port. The call answers
  ``DBInstanceStatus: creating`` as AWS does; by the next RDS call the instance is ``available``
  (the lab finishes the work before it answers, so waiters return at their first poll).
* ``reboot_db_instance`` restarts the server (clients are disconnected), ``stop_db_instance`` /
  ``start_db_instance`` stop and start it, ``delete_db_instance`` removes it.
* A cluster's writer endpoint is its writer instance's server.

Wrappers chain: other rooms (access, events) wrap the same backend methods; each calls through.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.rds import models as rds_models
from moto.rds import responses as rds_responses
from moto.rds.exceptions import InvalidParameterValue, RDSClientError

from .databases import DatabaseManager

REAL_ENGINES = {"postgres", "aurora-postgresql"}
_pending: dict[int, tuple[Any, str]] = {}  # id(model) -> (model, status it settles to)
_pending_lock = threading.Lock()
_MANAGER: DatabaseManager | None = None


def _settle() -> None:
    with _pending_lock:
        items = list(_pending.values())
        _pending.clear()
    for model, status in items:
        model.status = status


def _transition(model: Any, now: str, then: str) -> None:
    """Answer ``now`` in this response; become ``then`` before the next RDS call."""
    model.status = now
    with _pending_lock:
        _pending[id(model)] = (model, then)


def _manager() -> DatabaseManager:
    assert _MANAGER is not None, "rdslab databases room not installed"
    return _MANAGER


def _validate_master(kwargs: dict[str, Any]) -> None:
    user = kwargs.get("master_username")
    password = kwargs.get("master_user_password")
    if not user:
        raise InvalidParameterValue(
            "The parameter MasterUsername must be provided and must not be blank."
        )
    if user.lower() in {"rdsadmin", "rds_superuser", "rds_replication", "rds_password"}:
        raise InvalidParameterValue(
            f"MasterUsername {user} cannot be used as it is a reserved word used by the engine"
        )
    if not password:
        raise InvalidParameterValue(
            "The parameter MasterUserPassword must be provided and must not be blank."
        )
    if len(password) < 8:
        raise InvalidParameterValue(
            "The parameter MasterUserPassword is not a valid password because it is shorter "
            "than 8 characters."
        )
    if len(password) > 128 or any(c in '/@" ' or not 32 < ord(c) < 127 for c in password):
        raise InvalidParameterValue(
            "The parameter MasterUserPassword is not a valid password. Only printable ASCII "
            "characters besides '/', '@', '\"', ' ' may be used."
        )


def _wrap(name: str, make: Any) -> None:
    original = getattr(rds_models.RDSBackend, name)
    if getattr(original, "_rdslab_databases", False):
        return
    wrapped = make(original)
    wrapped._rdslab_databases = True
    functools.update_wrapper(wrapped, original)
    setattr(rds_models.RDSBackend, name, wrapped)


def _create_db_instance(original: Any) -> Any:
    def create_db_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        engine = db_kwargs.get("engine")
        cluster = None
        if db_kwargs.get("db_cluster_identifier"):
            cluster = self.clusters.get(db_kwargs["db_cluster_identifier"])
        elif engine == "postgres":
            _validate_master(db_kwargs)
        binaries = _manager().binaries
        if engine in REAL_ENGINES and not db_kwargs.get("engine_version") and cluster is None:
            db_kwargs["engine_version"] = binaries.version
        database = original(self, db_kwargs)
        if engine not in REAL_ENGINES:
            return database
        # moto refuses to hand passwords back through its properties; read the stored values
        if cluster is not None:
            user, password = cluster.master_username, cluster._master_user_password
        else:
            user, password = database.master_username, database._master_user_password
        db_name = database.db_name
        try:
            server = _manager().create(
                database.db_instance_identifier, engine, user, password, db_name
            )
        except Exception as exc:
            self.databases.pop(database.db_instance_identifier, None)
            raise RDSClientError(
                "InternalFailure", f"The lab could not start a PostgreSQL server: {exc}"
            ) from exc
        database.port = server.port
        database._lab_server = server
        if cluster is not None and getattr(database, "is_cluster_writer", False):
            cluster.port = server.port  # the cluster (writer) endpoint is the writer's server
        _transition(database, "creating", "available")
        return database

    return create_db_instance


def _reboot_db_instance(original: Any) -> Any:
    def reboot_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kw: Any) -> Any:
        database = original(self, db_instance_identifier, *args, **kw)
        server = _manager().get(db_instance_identifier)
        if server is not None:
            if database.status not in {"available", "rebooting"}:
                raise RDSClientError(
                    "InvalidDBInstanceState",
                    f"DB instance {db_instance_identifier} is not in available state.",
                )
            server.restart()
            _transition(database, "rebooting", "available")
        return database

    return reboot_db_instance


def _stop_db_instance(original: Any) -> Any:
    def stop_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kw: Any) -> Any:
        database = original(self, db_instance_identifier, *args, **kw)
        server = _manager().get(db_instance_identifier)
        if server is not None:
            server.stop("fast")
        _transition(database, "stopping", "stopped")
        return database

    return stop_db_instance


def _start_db_instance(original: Any) -> Any:
    def start_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kw: Any) -> Any:
        database = original(self, db_instance_identifier, *args, **kw)
        server = _manager().get(db_instance_identifier)
        if server is not None:
            server.start()
        _transition(database, "starting", "available")
        return database

    return start_db_instance


def _delete_db_instance(original: Any) -> Any:
    def delete_db_instance(self: Any, db_instance_identifier: str, *args: Any, **kw: Any) -> Any:
        database = original(self, db_instance_identifier, *args, **kw)
        _manager().delete(db_instance_identifier)
        return database

    return delete_db_instance


def _cluster_servers(backend: Any, cluster_identifier: str) -> list[Any]:
    cluster = backend.clusters.get(cluster_identifier)
    if cluster is None:
        return []
    members = [m.db_instance_identifier for m in getattr(cluster, "_members", [])]
    return [s for s in (_manager().get(m) for m in members) if s is not None]


def _stop_db_cluster(original: Any) -> Any:
    def stop_db_cluster(self: Any, cluster_identifier: str, *args: Any, **kw: Any) -> Any:
        cluster = original(self, cluster_identifier, *args, **kw)
        for server in _cluster_servers(self, cluster_identifier):  # every instance stops
            server.stop("fast")
        return cluster

    return stop_db_cluster


def _start_db_cluster(original: Any) -> Any:
    def start_db_cluster(self: Any, cluster_identifier: str, *args: Any, **kw: Any) -> Any:
        cluster = original(self, cluster_identifier, *args, **kw)
        for server in _cluster_servers(self, cluster_identifier):
            server.start()
        return cluster

    return start_db_cluster


def _failover_db_cluster(original: Any) -> Any:
    def failover_db_cluster(self: Any, db_cluster_identifier: str, *args: Any, **kw: Any) -> Any:
        cluster = original(self, db_cluster_identifier, *args, **kw)
        # Every instance restarts (clients are disconnected) and the cluster endpoint now leads
        # to the new writer. The lab's Aurora replicas are separate servers without
        # replication: after a failover the writer is another, independent server.
        for server in _cluster_servers(self, db_cluster_identifier):
            server.restart()
        writer = getattr(cluster, "writer", None)
        server = _manager().get(writer.db_instance_identifier) if writer is not None else None
        if server is not None:
            cluster.port = server.port
        return cluster

    return failover_db_cluster


def _create_subnet_group(original: Any) -> Any:
    def create_subnet_group(
        self: Any, subnet_name: str, description: str, subnets: list[Any], *args: Any, **kw: Any
    ) -> Any:
        zones = sorted({getattr(s, "availability_zone", None) for s in subnets} - {None})
        if subnets and len(zones) < 2:  # RDS needs subnets in two AZs (moto accepts one)
            raise RDSClientError(
                "DBSubnetGroupDoesNotCoverEnoughAZs",
                "The DB subnet group doesn't meet Availability Zone (AZ) coverage requirement. "
                f"Current AZ coverage: {', '.join(zones)}. Add subnets to cover at least 2 AZs.",
            )
        return original(self, subnet_name, description, subnets, *args, **kw)

    return create_subnet_group


def _add_role_to_db_instance(original: Any) -> Any:
    def add_role_to_db_instance(
        self: Any, db_instance_identifier: str, *args: Any, **kw: Any
    ) -> Any:
        database = self.databases.get(db_instance_identifier)
        if database is not None and getattr(database, "db_cluster_identifier", None):
            # AWS refuses this for Aurora instances (roles belong to the cluster); moto fails
            # with an internal error. The wording is the lab's reading.
            raise InvalidParameterValue(
                f"DB instance {db_instance_identifier} is a member of DB cluster "
                f"{database.db_cluster_identifier}: associate IAM roles with the cluster "
                "(AddRoleToDBCluster) instead."
            )
        return original(self, db_instance_identifier, *args, **kw)

    return add_role_to_db_instance


def _patch_models() -> None:
    if getattr(rds_models.DBInstance, "_rdslab_patched", False):
        return
    original_address = rds_models.DBInstance.address

    def address(self: Any) -> str:
        if getattr(self, "_lab_server", None) is not None:
            return "127.0.0.1"
        return original_address.fget(self)  # type: ignore[no-any-return]

    rds_models.DBInstance.address = property(address)  # type: ignore[method-assign,assignment]
    original_endpoint = rds_models.DBCluster.endpoint

    def cluster_endpoint(self: Any) -> str:
        writer = getattr(self, "writer", None)
        if writer is not None and getattr(writer, "_lab_server", None) is not None:
            return "127.0.0.1"
        return original_endpoint.fget(self)  # type: ignore[no-any-return]

    rds_models.DBCluster.endpoint = property(cluster_endpoint)  # type: ignore[method-assign,assignment]
    rds_models.DBInstance._rdslab_patched = True  # type: ignore[attr-defined]

    from moto.core.responses import BaseResponse

    def call_action(self: Any) -> Any:
        _settle()  # transitional states seen in the previous answer are over now
        # looked up at call time: other rooms wrap BaseResponse.call_action after us
        return BaseResponse.call_action(self)

    rds_responses.RDSResponse.call_action = call_action  # type: ignore[method-assign]


def install(manager: DatabaseManager) -> None:
    global _MANAGER
    _MANAGER = manager
    _patch_models()
    _wrap("create_db_instance", _create_db_instance)
    _wrap("reboot_db_instance", _reboot_db_instance)
    _wrap("stop_db_instance", _stop_db_instance)
    _wrap("start_db_instance", _start_db_instance)
    _wrap("delete_db_instance", _delete_db_instance)
    _wrap("create_subnet_group", _create_subnet_group)
    _wrap("add_role_to_db_instance", _add_role_to_db_instance)
    _wrap("stop_db_cluster", _stop_db_cluster)
    _wrap("start_db_cluster", _start_db_cluster)
    _wrap("failover_db_cluster", _failover_db_cluster)
