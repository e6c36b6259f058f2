"""Every check passes on its solution notebook and fails, with a hint, on the untouched exercise.

Each notebook runs top to bottom in a fresh ``python3`` kernel of this environment (its own lab,
120 s per cell). In an exercise only the generated stub cells (tagged ``raises-exception``) may
raise, and only NotImplementedError; every other cell must run cleanly.

pytest.ini runs xdist with ``--dist loadscope`` (nbval needs it), which keeps a module's or a
class's tests on one worker; so there is one test class per notebook, and xdist spreads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdslab.grading import notebook as nbu
from rdslab.grading.runner import RunReport, run_notebook

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 120


def execute(path: Path) -> tuple[Any, RunReport, list[str]]:
    nb = nbu.read(path)
    checks = [ex for role, ex, _ in nbu.roles(nb.cells) if role == "check"]
    assert checks, f"{path.name} has no check cell"
    report = run_notebook(nb, timeout=CELL_TIMEOUT, cwd=path.parent)
    assert not report.stopped, report.stopped
    return nb, report, checks


def cell_errors(report: RunReport) -> list[str]:
    return [f"cell {e.index}: {e.ename}: {e.evalue}" for e in report.errors]


class SolutionPasses:
    path: Path

    def test_every_check_passes_with_full_points(self) -> None:
        _, report, checks = execute(self.path)
        assert report.errors == [], cell_errors(report)
        results = report.results()
        for ex_id in checks:
            assert ex_id in results, f"check {ex_id} recorded nothing"
            r = results[ex_id]
            failing = [c for c in r["criteria"] if not c["passed"]]
            assert (r["status"], r["earned"]) == ("passed", r["possible"]), f"{ex_id}: {failing}"
        summaries = [c for c in report.notebook.cells if nbu.source(c).strip() == "summary()"]
        for cell in summaries:
            text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
            assert f"{len(checks)} of {len(checks)} checks passed" in text


class ExerciseFails:
    path: Path

    def test_every_check_scores_zero_with_a_hint(self) -> None:
        nb, report, checks = execute(self.path)
        for error in report.errors:
            cell = nb.cells[error.index]
            assert error.tagged and nbu.nbgrader(cell).get("solution"), (
                f"a non-exercise cell failed: {cell_errors(report)}"
            )
            assert error.ename == "NotImplementedError", cell_errors(report)
        stubs = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and nbu.nbgrader(c).get("solution")
        ]
        assert sorted(e.index for e in report.errors) == stubs, (
            "every stub cell raises NotImplementedError"
        )
        results = report.results()
        for ex_id in checks:
            assert ex_id in results, f"check {ex_id} recorded nothing"
            r = results[ex_id]
            assert r["status"] == "not yet", (
                f"{ex_id}: status {r['status']} (error = a defect in the check)"
            )
            assert r["earned"] == 0 and r["possible"] > 0, (
                f"{ex_id}: {r['earned']} points on an untouched exercise"
            )
            failing = [c for c in r["criteria"] if not c["passed"]]
            assert failing and all(c["hint"] and c["wrong"] for c in failing), (
                f"{ex_id}: a failure without a hint"
            )


for _path in sorted((ROOT / "solutions").glob("*.ipynb")):
    _name = "TestSolution_" + _path.stem.replace("-", "_")
    globals()[_name] = type(_name, (SolutionPasses,), {"path": _path})
for _path in sorted((ROOT / "exercises").glob("*.ipynb")):
    _name = "TestExercise_" + _path.stem.replace("-", "_")
    globals()[_name] = type(_name, (ExerciseFails,), {"path": _path})
