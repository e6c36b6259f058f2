"""The gradebook: a folder of good and bad submissions of a fake module 99 (SQS and SNS checks).

One run grades them all (two at a time, 3 s per cell); every bad submission gets a clear line
and the others are graded as usual.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from rdslab.grading import core
from rdslab.grading import notebook as nbu
from rdslab.grading.generate import exercise_notebook
from rdslab.grading.gradebook import (
    detect_module,
    load_gradebook,
    main,
    read_submission,
    restore_checks,
)

CHECKS = """
from rdslab.grading import Criterion, exercise

@exercise("99.1", points=2, title="a queue")
def _queue(ctx):
    urls = ctx.client("sqs").list_queues(QueueNamePrefix="graded-q").get("QueueUrls", [])
    yield Criterion(2, "SQS queue graded-q", bool(urls), "there is no queue graded-q", "Create it.")

@exercise("99.2", points=1, title="a topic")
def _topic(ctx):
    arns = [t["TopicArn"] for t in ctx.client("sns").list_topics()["Topics"]]
    yield Criterion(1, "SNS topic graded-t", any(a.endswith(":graded-t") for a in arns), "no topic graded-t", "Create it.")
"""
ANSWERS = [
    'boto3.client("sqs").create_queue(QueueName="graded-q")',
    'boto3.client("sns").create_topic(Name="graded-t")',
]


def solution() -> Any:
    def answer(code: str) -> Any:
        return new_code_cell(f"### BEGIN SOLUTION\n{code}\n### END SOLUTION")

    return new_notebook(
        cells=[
            new_markdown_cell("# 99 · Fake\n## Objectives\n## Time\n## Prerequisites"),
            new_code_cell(
                "import boto3\nimport rdslab\nfrom rdslab.grading import check, summary\n"
                + CHECKS
                + "\nlab = rdslab.start()"
            ),
            new_markdown_cell("## Exercise 99.1"),
            answer(ANSWERS[0]),
            new_code_cell('check("99.1")'),
            new_markdown_cell("## Exercise 99.2"),
            answer(ANSWERS[1]),
            new_code_cell('check("99.2")'),
            new_markdown_cell("## Key points\n## Clean-up"),
            new_code_cell("summary()"),
        ]
    )


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    registry = core.Registry()
    monkeypatch.setattr(core, "REGISTRY", registry)
    exec(CHECKS, {})  # registers 99.1 and 99.2 in the (patched) registry, as the notebook does
    return exercise_notebook(solution(), "99-fake.ipynb", registry)


def filled(reference: Any, answers: list[str] = ANSWERS) -> Any:
    nb = copy.deepcopy(reference)
    stubs = [c for c in nb.cells if nbu.nbgrader(c).get("solution")]
    for cell, code in zip(stubs, answers, strict=True):
        cell.source = code
    return nb


def submissions(reference: Any, folder: Path) -> None:
    def save(name: str, nb: Any) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(folder / name))

    good = filled(reference)
    save("alice/99-fake.ipynb", good)  # a learner's folder
    save("carol.ipynb", filled(reference, ["while True:\n    pass", ANSWERS[1]]))
    save("dave.ipynb", filled(reference, [ANSWERS[0], "import os\nos._exit(1)"]))
    (folder / "erin.ipynb").write_text('{"cells": [ oops')
    (folder / "frank.txt").write_text("my answers are in my head")
    other = copy.deepcopy(reference)
    other.metadata.rdslab.module = "03-other"
    save("gina/03-other.ipynb", other)
    renamed = copy.deepcopy(good)  # check cells deleted, answer cells renamed
    renamed.cells = [c for c in renamed.cells if not nbu.check_ids(c)]
    for n, cell in enumerate(renamed.cells):
        cell.metadata.pop("nbgrader", None)
        cell.id = f"mine-{n}"
    save("ivan.ipynb", renamed)
    edited = filled(
        reference, ["check = lambda exercise_id: print('passed')", ANSWERS[1]]
    )  # and no queue
    edited.cells[4].source = 'print("99.1 passed")'
    save("judy.ipynb", edited)
    stuck = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    save("lena.ipynb", filled(reference, [ANSWERS[0], stuck]))


def test_gradebook_grades_good_and_bad_submissions(
    fake_module: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    solutions, folder, out = tmp_path / "solutions", tmp_path / "submitted", tmp_path / "grades.csv"
    solutions.mkdir()
    nbformat.write(solution(), str(solutions / "99-fake.ipynb"))
    submissions(fake_module, folder)
    assert (
        main([str(folder), "--out", str(out), "--timeout", "3", "--solutions", str(solutions)]) == 0
    )
    printed = capsys.readouterr().out
    book = load_gradebook(out)
    assert list(book.columns) == ["status", "99.1", "99.2", "points", "possible", "notes", "file"]
    assert (book["possible"] == 3).all()
    expected = {  # learner: (99.1, 99.2, status, a phrase of the notes)
        "alice": (2, 1, "graded", ""),
        "carol": (0, 1, "graded, see notes", "timed out after 3 s"),
        "dave": (2, 0, "graded, see notes", "the kernel died in cell 6"),
        "erin": (0, 0, "not graded", "not valid notebook JSON"),
        "frank": (0, 0, "not graded", "not a notebook (.txt file)"),
        "gina": (0, 0, "not graded", "a notebook of module 03, not 99-fake"),
        "ivan": (2, 1, "graded, see notes", "answer cell(s) of 99.1 not found"),
        "judy": (0, 1, "graded, see notes", "check cell 99.1 was edited: restored"),
        "lena": (2, 0, "graded, see notes", "did not answer after an interrupt"),
    }
    actual = {
        who: (row["99.1"], row["99.2"], row["status"], row["notes"]) for who, row in book.iterrows()
    }
    assert sorted(actual) == sorted(expected)
    for who, (p1, p2, status, phrase) in expected.items():
        assert actual[who][:3] == (p1, p2, status), (who, actual[who])
        assert phrase in actual[who][3], (who, actual[who][3])
    assert book.loc["alice", "points"] == 3 and book.loc["dave", "points"] == 2
    assert "check cell 99.2 was missing: put back" in book.loc["ivan", "notes"]
    assert "9 submission(s), 6 graded, 3 not graded" in printed and "alice" in printed


def test_restore_checks_puts_missing_cells_after_their_answers(fake_module: Any) -> None:
    nb = filled(fake_module)
    del nb.cells[7]  # check 99.2
    nb.cells[4].source = "check('99.1')  # still the right call"
    notes = restore_checks(nb, fake_module)
    assert notes == [
        "check cell 99.1 was edited: restored",
        "check cell 99.2 was missing: put back",
    ]
    assert [nbu.nbgrader(c).get("grade_id") for c in nb.cells[3:8]] == [
        "answer-99-1", "check-99-1", None, "answer-99-2", "check-99-2"
    ]  # fmt: skip
    assert restore_checks(nb, fake_module) == []


def test_detect_module_and_read_submission(fake_module: Any, tmp_path: Path) -> None:
    nb = copy.deepcopy(fake_module)
    assert detect_module(nb, Path("x.ipynb")) == "99"
    del nb.metadata["rdslab"]
    assert detect_module(nb, Path("x.ipynb")) == "99"  # from the check cells
    nb.cells = nb.cells[:2]
    assert (
        detect_module(nb, Path("07-x.ipynb")) == "07" and detect_module(nb, Path("x.ipynb")) is None
    )
    (tmp_path / "a.ipynb").write_text(json.dumps({"cells": "no"}))
    with pytest.raises(ValueError, match="not a Jupyter notebook"):
        read_submission(tmp_path / "a.ipynb")


def test_cli_refuses_a_missing_folder(tmp_path: Path) -> None:
    assert main([str(tmp_path / "nowhere")]) == 2
