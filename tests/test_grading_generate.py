"""The exercise generator: stubs, locked checks, determinism, errors, and its --check CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from rdslab.grading import Criterion, Registry, exercise
from rdslab.grading import notebook as nbu
from rdslab.grading.generate import GenerateError, exercise_notebook, main, render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    for ex_id, points in (("42.1", 3), ("42.2", 2.5)):
        exercise(ex_id, points=points, title=ex_id, registry=registry)(
            lambda ctx, p=points: [Criterion(p, "x", True)]
        )
    return registry


def solution() -> nbformat.NotebookNode:
    answer = new_code_cell(
        "setup = 1\ndef f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION\nprint(f())",
        execution_count=3,
        outputs=[new_output("stream", name="stdout", text="42\n")],
    )
    answer.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    return new_notebook(
        cells=[
            new_markdown_cell("# 42 · Title\n## Objectives\n## Time\n## Prerequisites"),
            answer,
            new_code_cell(
                'check("42.1")', execution_count=4, outputs=[new_output("stream", text="ok")]
            ),
            new_markdown_cell("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
            new_code_cell("### BEGIN SOLUTION\nx = 2\n### END SOLUTION"),
            new_code_cell('check("42.2")  # the second exercise'),
            new_markdown_cell("## Key points\n## Clean-up"),
        ]
    )


def test_answers_become_stubs_and_checks_are_locked(registry: Registry) -> None:
    nb = exercise_notebook(solution(), "42-sample.ipynb", registry)
    cells = nb.cells
    assert [c.id for c in cells] == [
        "cell-000", "answer-42-1", "check-42-1", "answer-42-2", "answer-42-2-2", "check-42-2", "cell-006"
    ]  # fmt: skip
    code = cells[1].source
    assert "return 42" not in code and "BEGIN SOLUTION" not in code
    assert code.startswith(
        "setup = 1\ndef f():\n    # YOUR CODE HERE\n    raise NotImplementedError("
    )
    assert code.endswith("\nprint(f())")
    assert cells[3].source == "Why?\n\nYOUR ANSWER HERE"
    assert cells[1].metadata.tags == ["raises-exception"] and "tags" not in cells[3].metadata
    assert cells[1].metadata.nbgrader == {
        "cell_type": "code", "grade": False, "grade_id": "answer-42-1", "locked": False,
        "schema_version": 3, "solution": True, "task": False,
    }  # fmt: skip
    check_meta = cells[5].metadata
    assert (check_meta.deletable, check_meta.editable) == (False, False)
    assert (
        check_meta.nbgrader.locked
        and check_meta.nbgrader.grade
        and check_meta.nbgrader.points == 2.5
    )
    assert (
        cells[2].metadata.nbgrader.points == 3
        and cells[2].metadata.nbgrader.grade_id == "check-42-1"
    )
    assert cells[5].source == 'check("42.2")  # the second exercise'
    for cell in cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "execution" not in cell.metadata
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.rdslab.module == "42-sample"
    nbformat.validate(nb)


def test_output_is_deterministic_with_sorted_keys(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "42-sample.ipynb"
    nbformat.write(solution(), str(path))
    first = render(path, registry)
    nbformat.write(solution(), str(path))  # new random ids in the solution: same exercise
    assert render(path, registry) == first
    assert (
        first == json.dumps(json.loads(first), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda cells: cells.insert(1, new_code_cell("### BEGIN SOLUTION\nx = 1")),
            "without ### END",
        ),
        (lambda cells: cells.insert(1, new_code_cell("x\n### END SOLUTION")), "without ### BEGIN"),
        (
            lambda cells: cells.append(new_code_cell("### BEGIN SOLUTION\n### END SOLUTION")),
            "no check",
        ),
        (
            lambda cells: cells.append(new_code_cell('check("07.1")')),
            "does not belong to module 42",
        ),
        (
            lambda cells: cells.append(new_code_cell('check("42.9")')),
            "no check registered for 42.9",
        ),
        (lambda cells: cells.append(new_code_cell('check("42.1")\ncheck("42.2")')), "exactly one"),
        (lambda cells: cells.clear(), "no check"),
    ],
)
def test_generator_rejects_broken_solutions(registry: Registry, change, message: str) -> None:  # type: ignore[no-untyped-def]
    nb = solution()
    change(nb.cells)
    with pytest.raises(GenerateError, match=message):
        exercise_notebook(nb, "42-sample.ipynb", registry)
    with pytest.raises(GenerateError, match="NN-slug"):
        exercise_notebook(solution(), "sample.ipynb", registry)


def test_strip_solution_keeps_code_outside_markers() -> None:
    text = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3"
    assert (
        nbu.strip_solution(text, "code", "hint")
        == 'a = 1\n# YOUR CODE HERE\nraise NotImplementedError("hint")\nc = 3'
    )


def test_cli_check_reports_drift_and_generate_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    shutil.copy(ROOT / "solutions" / "00-welcome.ipynb", tmp_path / "solutions")
    (tmp_path / "exercises" / "07-orphan.ipynb").write_text("{}")
    assert main(["--root", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert (
        "exercises/00-welcome.ipynb: missing" in out
        and "exercises/07-orphan.ipynb: has no solutions/" in out
    )
    (tmp_path / "exercises" / "07-orphan.ipynb").unlink()
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    target = tmp_path / "exercises" / "00-welcome.ipynb"
    assert target.read_text() == (ROOT / "exercises" / "00-welcome.ipynb").read_text()
    target.write_text(target.read_text().replace("YOUR CODE HERE", "my answer"))
    capsys.readouterr()
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert (
        "exercises/00-welcome.ipynb: differs from solutions/00-welcome.ipynb"
        in capsys.readouterr().out
    )
    (tmp_path / "solutions" / "00-welcome.ipynb").write_text("not json")
    assert main(["--root", str(tmp_path)]) == 2
