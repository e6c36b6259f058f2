"""exercises/ is generated from solutions/: a test fails as soon as they drift apart.

Fix a failure with ``python -m rdslab.grading.generate`` (never edit exercises/ by hand).
"""

from __future__ import annotations

from pathlib import Path

from rdslab.grading import REGISTRY
from rdslab.grading import notebook as nbu
from rdslab.grading.generate import drifted

ROOT = Path(__file__).resolve().parents[1]


def test_exercises_are_up_to_date_with_solutions() -> None:
    problems = drifted(ROOT)
    assert not problems, "run `python -m rdslab.grading.generate`:\n" + "\n".join(problems)


def test_every_registered_check_is_used_by_its_module_solution() -> None:
    used: set[str] = set()
    modules = set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        modules.add(path.name[:2])
        used |= {ex for cell in nbu.read(path).cells for ex in nbu.check_ids(cell)}
    registered = {ex.id for module in sorted(modules) for ex in REGISTRY.of_module(module)}
    assert registered - used == set(), "checks registered but no solution cell calls them"
    assert used - registered == set(), "check cells without a registered check"
