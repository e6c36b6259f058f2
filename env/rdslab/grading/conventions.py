"""Conventions every lesson, solution and exercise notebook follows, as a linter.

``lint_notebook(path)`` returns readable problems (empty when the notebook conforms):

* the file is named ``NN-slug.ipynb`` and is valid nbformat-4 JSON;
* the first cell is markdown with the headings "Objectives", "Time" and "Prerequisites" (a
  markdown heading, or a bold label opening a line: ``**Time**: 20 minutes``);
* the last cells hold the headings "Key points" and "Clean-up" (within the last four cells);
* no stored error output unless the cell is tagged ``raises-exception``;
* in ``solutions/`` (and generated ``exercises/``): at least one exercise, every answer cell is
  followed by a ``check("NN.M")`` cell of the same module, and every check id is registered;
  exercise notebooks hold no solution markers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from . import core
from . import notebook as nbu

FIRST_HEADINGS = ("Objectives", "Time", "Prerequisites")
LAST_HEADINGS = ("Key points", "Clean-up")
TAIL = 4


def _has_heading(text: str, title: str) -> bool:
    """A markdown heading (``## Time``) or a bold label opening a line (``**Time**: 20 min``)."""
    words = r"[\s-]*".join(re.escape(w) for w in re.split(r"[\s-]+", title))
    pattern = rf"^(?:#{{1,6}}\s*{words}\b|\*\*{words}\s*:?\s*\*\*)"
    return re.search(pattern, text, re.I | re.M) is not None


def _kind(path: Path) -> str:
    parent = path.parent.name
    return parent if parent in {"solutions", "exercises", "notebooks"} else "notebooks"


def lint_cells(cells: list[dict[str, Any]], name: str, kind: str) -> list[str]:
    """Problems of a notebook's cells; ``kind`` is "notebooks", "solutions" or "exercises"."""
    problems: list[str] = []
    module = nbu.module_name(name)
    if module is None:
        problems.append(f"{name}: not named NN-slug.ipynb (two digits, a dash, lowercase words)")
    if not cells:
        return [*problems, "no cells"]
    first = cells[0]
    if first.get("cell_type") != "markdown":
        problems.append(
            "cell 0: the first cell must be markdown (title, objectives, time, prerequisites)"
        )
    else:
        missing = [h for h in FIRST_HEADINGS if not _has_heading(nbu.source(first), h)]
        if missing:
            problems.append(f"cell 0: missing heading(s) {', '.join(missing)}")
    tail = "\n".join(nbu.source(c) for c in cells[-TAIL:] if c.get("cell_type") == "markdown")
    for heading in LAST_HEADINGS:
        if not _has_heading(tail, heading):
            problems.append(f"last {TAIL} cells: no markdown heading '{heading}'")
    for i, cell in enumerate(cells):
        tags = cell.get("metadata", {}).get("tags", [])
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error" and "raises-exception" not in tags:
                problems.append(
                    f"cell {i}: stored error output ({out.get('ename')}) without tag raises-exception"
                )
    if kind in {"solutions", "exercises"}:
        problems += _lint_exercises(cells, module, kind)
    return problems


def _lint_exercises(cells: list[dict[str, Any]], module: str | None, kind: str) -> list[str]:
    problems: list[str] = []
    roles = nbu.roles(cells)
    checks = [ex for role, ex, _ in roles if role == "check"]
    if not checks:
        problems.append('no exercise: a solution notebook needs at least one check("NN.M") cell')
    for i, (role, ex_id, _) in enumerate(roles):
        if role == "answer" and not ex_id:
            problems.append(f"cell {i}: an answer cell with no check cell after it")
        if kind == "exercises" and nbu.has_markers(cells[i]):
            problems.append(f"cell {i}: a solution marker in an exercise notebook")
    for ex_id in sorted(set(checks)):
        if module and not ex_id.startswith(module[:2] + "."):
            problems.append(f"check {ex_id}: belongs to module {ex_id[:2]}, not {module[:2]}")
        try:
            core.REGISTRY.get(ex_id)
        except KeyError:
            problems.append(
                f"check {ex_id}: not registered (rdslab/grading/checks/m{ex_id[:2]}.py)"
            )
        except Exception as exc:  # noqa: BLE001 - a broken checks module is a finding
            problems.append(f"check {ex_id}: its checks module fails to import ({exc!r})")
    duplicates = sorted({ex for ex in checks if checks.count(ex) > 1})
    if duplicates:
        problems.append(f"check(s) {', '.join(duplicates)} appear in more than one cell")
    if kind == "solutions" and not any(role == "answer" for role, _, _ in roles):
        problems.append("no answer cell (### BEGIN SOLUTION / ### END SOLUTION)")
    return problems


def lint_notebook(path: str | Path) -> list[str]:
    """Problems of the notebook at ``path`` (its folder tells lesson, solution or exercise)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"cannot read as notebook JSON: {exc}"]
    if (
        not isinstance(data, dict)
        or data.get("nbformat") != 4
        or not isinstance(data.get("cells"), list)
    ):
        return ["not an nbformat-4 notebook"]
    return lint_cells(data["cells"], path.name, _kind(path))
