"""The AWS endpoint room: an in-process moto server on 127.0.0.1 and the environment that
makes plain ``boto3.client("rds")`` (no endpoint argument) reach it.

The server runs in a thread of the current process, so the lab's other rooms can reach moto's
backends directly (``backend("lambda")``) while learners talk to it over HTTP like to AWS.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from . import config

_reset_hooks: list[Callable[[], None]] = []
_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def backend(service: str, region: str | None = None) -> Any:
    """moto's backend object for ``service`` in the lab's account (and ``region``)."""
    from moto.backends import get_backend

    backends = get_backend(service)  # type: ignore[call-overload]
    if service in {"iam", "sts"}:
        return backends[config.ACCOUNT_ID]["global"]
    return backends[config.ACCOUNT_ID][region or config.REGION]


def on_reset(hook: Callable[[], None]) -> None:
    """Run ``hook`` whenever moto's state is reset (the lab clears its own state with it)."""
    if hook not in _reset_hooks:
        _reset_hooks.append(hook)


def clear_reset_hooks() -> None:
    """Forget the hooks of a lab that has stopped."""
    _reset_hooks.clear()


def _install_reset_hook() -> None:
    import moto.moto_api._internal.models as api_models
    from moto.core.models import default_user_config  # noqa: F401  (imports moto core)
    from moto.moto_api._internal.state_manager import StateManager  # noqa: F401

    api_cls = type(api_models.moto_api_backend)
    if getattr(api_cls.reset, "_rdslab", False):
        return
    original = api_cls.reset

    def reset(self: Any) -> None:
        for hook in list(_reset_hooks):
            hook()
        original(self)

    reset._rdslab = True  # type: ignore[attr-defined]
    api_cls.reset = reset


class MotoEndpoint:
    """moto's ThreadedMotoServer bound to 127.0.0.1 on a free port."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        _install_reset_hook()

    def environment(self) -> dict[str, str]:
        """The variables that point boto3, the AWS CLI and handler code at the lab."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": config.ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": config.SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": config.REGION,
            "AWS_REGION": config.REGION,
            "MOTO_ACCOUNT_ID": config.ACCOUNT_ID,
        }

    def export_environment(self) -> None:
        """Point this process's boto3 at the lab (and drop settings that would send it elsewhere)."""
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(self.environment())
        # botocore caches nothing about endpoints between clients, but boto3's default session
        # caches credentials: start a fresh one so it picks the variables up.
        import boto3

        boto3.DEFAULT_SESSION = None

    def stop(self) -> None:
        self._server.stop()
