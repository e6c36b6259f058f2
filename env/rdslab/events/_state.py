"""The engine the moto patches report to (None while no lab is running in this process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import EventEngine

ENGINE: EventEngine | None = None


def current() -> EventEngine | None:
    """The running event engine, if any."""
    return ENGINE
