"""What every lab database server process shares, PostgreSQL or MariaDB: its data directory,
its pid, stopping it with the engine's shutdown signal, restart, destroy, and telling listeners
(the SQL->Lambda agents) when it starts and stops; and what both engines' managers share
(``ServerRegistry``: lookup, removal, relaying lifecycle news to listeners)."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, ClassVar


class ServerProcess:
    """Mixin for the server dataclasses; they provide ``directory``, ``proc``, ``status``,
    ``listeners`` and ``start()``."""

    # shutdown signal per mode ("fast" disconnects clients, as a reboot does)
    SIGNALS: ClassVar[dict[str, signal.Signals]] = {}
    STOP_TIMEOUT: ClassVar[float] = 20.0

    directory: Path
    proc: subprocess.Popen[bytes] | None
    status: str
    listeners: list[Any]

    def start(self) -> None:  # pragma: no cover - provided by the engine's class
        raise NotImplementedError

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # moto deep-copies RDS models (e.g. in stop/start_db_cluster); the server is a process,
        # not a value: a copy must be the same server
        return self

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server with the engine's signal for ``mode``; kill it if it lingers."""
        if self.proc is None:
            return
        self.status = "stopping"
        self._notify("stopping")
        if self.proc.poll() is None:
            self.proc.send_signal(self.SIGNALS[mode])
            try:
                self.proc.wait(self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.status = "stopped"

    def restart(self) -> None:
        self.stop("fast")
        self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _notify(self, what: str) -> None:
        for listener in list(self.listeners):
            listener(what, self)


class ServerRegistry:
    """Mixin for the engines' managers; they provide ``servers``, ``listeners`` and ``_lock``."""

    servers: dict[str, Any]
    listeners: list[Any]
    _lock: Any

    def get(self, identifier: str) -> Any | None:
        return self.servers.get(identifier)

    def delete(self, identifier: str) -> None:
        with self._lock:
            server = self.servers.pop(identifier, None)
        if server is not None:
            self._relay("deleted", server)
            server.destroy()

    def _relay(self, what: str, server: Any) -> None:
        for listener in list(self.listeners):
            try:
                listener(what, server)
            except Exception:  # noqa: BLE001 - a listener must not break the lifecycle
                logging.getLogger("rdslab").exception("listener failed on %s", what)
