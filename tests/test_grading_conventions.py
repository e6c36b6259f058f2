"""Notebook conventions (rdslab.grading.conventions) on every notebook, and the linter itself.

Also checks that tests/nbval_sanitize.cfg turns the lab's volatile outputs into stable text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbval.plugin import get_sanitize_patterns
from rdslab.grading.conventions import lint_cells, lint_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for d in ("notebooks", "solutions", "exercises") for p in (ROOT / d).glob("*.ipynb")
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_follows_conventions(path: Path) -> None:
    assert lint_notebook(path) == []


def good() -> list:  # type: ignore[type-arg]
    return [
        new_markdown_cell("# 00 · T\n## Objectives\n- a\n## Time\n10 min\n## Prerequisites\nnone"),
        new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
        new_code_cell('check("00.1")'),
        new_markdown_cell("## Key points\n- a"),
        new_markdown_cell("## Clean-up"),
        new_code_cell("pass"),
    ]


def test_linter_accepts_a_conforming_solution() -> None:
    assert lint_cells(good(), "00-sample.ipynb", "solutions") == []


@pytest.mark.parametrize(
    ("name", "kind", "change", "message"),
    [
        ("00_sample.ipynb", "solutions", None, "not named NN-slug"),
        ("00-sample.ipynb", "notebooks", lambda c: c.pop(0), "first cell must be markdown"),
        ("00-sample.ipynb", "notebooks", lambda c: c.__setitem__(0, new_markdown_cell("# T\n## Objectives")), "Time, Prerequisites"),
        ("00-sample.ipynb", "notebooks", lambda c: c.__setitem__(3, new_markdown_cell("## Summary")), "no markdown heading 'Key points'"),
        ("00-sample.ipynb", "notebooks", lambda c: c.pop(4), "no markdown heading 'Clean-up'"),
        ("00-sample.ipynb", "solutions", lambda c: c.pop(2), "no check cell after it"),
        ("00-sample.ipynb", "solutions", lambda c: c.__delitem__(slice(1, 3)), "at least one check"),
        ("00-sample.ipynb", "solutions", lambda c: c.insert(3, new_code_cell('check("01.1")')), "belongs to module 01"),
        ("00-sample.ipynb", "solutions", lambda c: c.insert(3, new_code_cell('check("00.7")')), "00.7: not registered"),
        ("00-sample.ipynb", "solutions", lambda c: c.insert(3, new_code_cell('check("00.1")')), "more than one cell"),
        ("00-sample.ipynb", "exercises", None, "solution marker in an exercise"),
        ("00-sample.ipynb", "notebooks", lambda c: c[5].outputs.append(new_output("error", ename="KeyError", evalue="", traceback=[])), "stored error output (KeyError)"),
    ],
)  # fmt: skip
def test_linter_finds_each_violation(name: str, kind: str, change, message: str) -> None:  # type: ignore[no-untyped-def]
    cells = good()
    if change:
        change(cells)
    problems = lint_cells(cells, name, kind)
    assert any(message in p for p in problems), problems


def test_bold_labels_count_as_headings() -> None:
    cells = good()
    cells[0] = new_markdown_cell(
        "# 00 · T\n\n**Objectives**\n- a\n\n**Time**: 5 min\n\n**Prerequisites:** none"
    )
    assert lint_cells(cells, "00-sample.ipynb", "notebooks") == []
    cells[0] = new_markdown_cell("# 00 · T\nObjectives and time and prerequisites are in the text")
    assert lint_cells(cells, "00-sample.ipynb", "notebooks") == [
        "cell 0: missing heading(s) Objectives, Time, Prerequisites"
    ]


def test_tagged_error_outputs_are_allowed() -> None:
    cells = good()
    cells[5].outputs.append(new_output("error", ename="KeyError", evalue="", traceback=[]))
    cells[5].metadata["tags"] = ["raises-exception"]
    assert lint_cells(cells, "00-sample.ipynb", "notebooks") == []


def test_unreadable_notebook(tmp_path: Path) -> None:
    (tmp_path / "00-x.ipynb").write_text("{")
    assert lint_notebook(tmp_path / "00-x.ipynb")[0].startswith("cannot read")


SAMPLES = {
    "RequestId: 0f4e8a2c-1b2d-4c3e-9f00-123456789abc": "RequestId: UUID",
    "at 2026-12-04T20:09:55.225639+00:00 and 2026-12-04 20:09:55": "at TIMESTAMP and TIMESTAMP",
    "'InstanceCreateTime': datetime.datetime(2026, 12, 4, 20, 9, 55, 225639, tzinfo=tzlocal())": "'InstanceCreateTime': DATETIME",
    "REPORT Duration: 1.23 ms Billed Duration: 2 ms Init Duration: 101.5 ms Max Memory Used: 44 MB": "REPORT Duration: N ms Billed Duration: N ms Init Duration: N ms Max Memory Used: N MB",
    "http://127.0.0.1:41027/ {'Address': '127.0.0.1', 'Port': 41027} port=5433": "http://127.0.0.1:PORT/ {'Address': '127.0.0.1', 'Port': PORT} port=PORT",
    "vpc-1a2b3c4d subnet-0123456789abcdef0 sg-a41a089dbbc8fb815 rtb-1a2b3c4d igw-1a2b3c4d nat-0a1b2c3d4e5f60718 vpce-1a2b3c4d acl-1a2b3c4d": "vpc-ID subnet-ID sg-ID rtb-ID igw-ID nat-ID vpce-ID acl-ID",
    "arn:aws:rds:us-east-1:123456789012:db:welcome-db db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U": "arn:aws:rds:us-east-1:123456789012:db:welcome-db db-RESOURCEID",
    "<object at 0x7f72a583df10> 'pid': 4242": "<object at 0xADDRESS> 'pid': PID",
    "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef": "DATE/[$LATEST]STREAMID",
}


@pytest.mark.parametrize("raw", SAMPLES)
def test_nbval_sanitizer(raw: str) -> None:
    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 12
    text = raw
    for regex, replace in patterns:
        text = re.sub(regex, replace, text)
    assert text == SAMPLES[raw]
