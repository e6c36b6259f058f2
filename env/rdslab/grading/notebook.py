"""Notebook structure shared by the generator, the gradebook and the conventions linter.

Roles of cells, read from content so that authors only write markers:

* an *answer* cell holds ``### BEGIN SOLUTION`` / ``### END SOLUTION`` (code or markdown) in a
  solution, or has ``metadata.nbgrader.solution`` in a generated exercise;
* a *check* cell is a code cell whose one statement is ``check("NN.M")``;
* answer cells belong to the exercise of the next check cell after them.

Grade ids (nbgrader's ``grade_id``, also used as cell ids): ``check-00-1``, ``answer-00-1``
(``answer-00-1-2`` for a second answer cell of the same exercise).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = '# YOUR CODE HERE\nraise NotImplementedError("{hint}")'
MARKDOWN_STUB = "YOUR ANSWER HERE"
CHECK_CALL = re.compile(
    r"""^[ \t]*check\(\s*["'](?P<id>\d{2}\.\d+[a-z]?)["']\s*\)[ \t]*;?[ \t]*(#.*)?$""", re.M
)
NAME = re.compile(r"^(?P<nn>\d{2})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.ipynb$")


class MarkerError(ValueError):
    """Unbalanced or nested solution markers."""


def source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def check_ids(cell: dict[str, Any]) -> list[str]:
    """Exercise ids of the ``check("NN.M")`` calls in a code cell."""
    if cell.get("cell_type") != "code":
        return []
    return [m["id"] for m in CHECK_CALL.finditer(source(cell))]


def has_markers(cell: dict[str, Any]) -> bool:
    return BEGIN in source(cell) or END in source(cell)


def nbgrader(cell: dict[str, Any]) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def is_answer(cell: dict[str, Any]) -> bool:
    return has_markers(cell) or bool(nbgrader(cell).get("solution"))


def grade_id(kind: str, exercise_id: str, n: int = 1) -> str:
    base = f"{kind}-{exercise_id.replace('.', '-')}"
    return base if n == 1 else f"{base}-{n}"


def strip_solution(text: str, cell_type: str, hint: str = "") -> str:
    """Replace each marked region by the stub (keeping the BEGIN line's indentation)."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise MarkerError(f"line {number}: {BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            stub = MARKDOWN_STUB if cell_type == "markdown" else CODE_STUB.format(hint=hint)
            out.extend(indent + s for s in stub.split("\n"))
        elif stripped.startswith(END):
            if not inside:
                raise MarkerError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{BEGIN} without {END}")
    return "\n".join(out)


def roles(cells: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Per cell: (role, exercise id, grade id), role in {"answer", "check", ""}.

    Answer cells take the exercise of the next check cell; an answer cell with no check cell
    after it has exercise id ``""``.
    """
    out: list[tuple[str, str, str]] = [("", "", "")] * len(cells)
    pending: list[int] = []
    for i, cell in enumerate(cells):
        ids = check_ids(cell)
        if ids:
            out[i] = ("check", ids[0], grade_id("check", ids[0]))
            for n, j in enumerate(pending, start=1):
                out[j] = ("answer", ids[0], grade_id("answer", ids[0], n))
            pending = []
        elif is_answer(cell):
            pending.append(i)
    for j in pending:
        out[j] = ("answer", "", "")
    return out


def read(path: str | Path) -> Any:
    """Read a notebook (nbformat 4) without validating it."""
    return nbformat.read(str(path), as_version=4)


def dumps(nb: Any) -> str:
    """Canonical text of a notebook: nbformat's writer (sorted keys, indent 1) plus newline."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def module_name(path: str | Path) -> str | None:
    """``"00-welcome"`` for ``.../00-welcome.ipynb``; None if the name is not ``NN-slug``."""
    match = NAME.match(Path(path).name)
    return Path(path).stem if match else None
