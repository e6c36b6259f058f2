"""Shared fixtures: one lab per test process (the lab is a per-process singleton)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def lab():  # type: ignore[no-untyped-def]
    """A fresh lab (a clean account) for each test module; stopped when the module ends."""
    import rdslab

    current = rdslab.current()
    if current is not None:
        current.stop()
    lab = rdslab.start()
    yield lab
    lab.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names."""
    return uuid.uuid4().hex[:8]
