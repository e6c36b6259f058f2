"""Repository-wide pytest settings: nbval compares outputs but not stderr (warnings from
libraries must not fail a lesson), and the lab's env/ package is importable."""

from __future__ import annotations


def pytest_collectstart(collector):  # type: ignore[no-untyped-def]
    if collector.fspath and str(collector.fspath).endswith(".ipynb"):
        collector.skip_compare += ("stderr",)
