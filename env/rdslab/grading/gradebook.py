"""Grade a folder of submitted notebooks: ``rdslab grade SUBMISSIONS [--out grades.csv]``.

A submission is ``SUBMISSIONS/<learner>.ipynb`` or ``SUBMISSIONS/<learner>/<NN-slug>.ipynb``.
Each one runs in a fresh kernel with a fresh lab (at most two at a time, a per-cell timeout);
check cells that were edited or deleted are first restored from the module's solution (by
grade_id, like nbgrader's OverwriteCells with add_missing_cells). The checks' own records give
the points. A bad submission (not a notebook, invalid JSON, another module, a timeout, a dead
kernel) gets a line saying so and never stops the others. The gradebook is a CSV, one row per
learner and one column per exercise; ``load_gradebook(csv)`` reads it back as a DataFrame.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from . import notebook as nbu
from .generate import exercise_notebook, repo_root
from .runner import run_notebook_async

GRADE_ID = re.compile(r"^(?:check|answer)-(\d{2})-")
PRELUDE = "import rdslab as _rdslab\n_rdslab.start()\ndel _rdslab"
SAFE_ENV = {  # until the lab starts, boto3 reaches nothing real
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "RDSLAB_GRADING": "1",
}


@dataclass
class Grade:
    learner: str
    file: str
    status: str = "not graded"
    points: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def discover(folder: Path) -> list[tuple[str, Path | None, str]]:
    """(learner, file, problem) for every submission in ``folder``."""
    found: list[tuple[str, Path | None, str]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            books = sorted(p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            named = [p for p in books if nbu.module_name(p)]
            books = named if len(named) == 1 else books
            if len(books) == 1:
                found.append((entry.name, books[0], ""))
            else:
                names = ", ".join(p.name for p in books)
                problem = (
                    f"several notebooks in the folder ({names})"
                    if books
                    else "no notebook in the folder"
                )
                found.append((entry.name, books[0] if books else None, problem))
        elif entry.suffix == ".ipynb":
            found.append((entry.stem, entry, ""))
        else:
            found.append(
                (entry.stem, entry, f"not a notebook ({entry.suffix or 'no extension'} file)")
            )
    return found


def read_submission(path: Path) -> Any:
    """The notebook at ``path``, or ValueError with a readable reason."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid notebook JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("not a Jupyter notebook (no list of cells)")
    try:
        nb = nbformat.reads(text, as_version=4)  # joins line lists, upgrades older formats
        for cell in nb.cells:
            cell.setdefault("metadata", {})
            if cell.cell_type == "code":
                cell.setdefault("outputs", [])
        return nb
    except Exception as exc:  # noqa: BLE001 - any malformed structure
        raise ValueError(f"not a Jupyter notebook ({type(exc).__name__}: {exc})") from None


def detect_module(nb: Any, path: Path) -> str | None:
    """The module a notebook belongs to: its metadata, then its check cells, then its name."""
    module = nb.metadata.get("rdslab", {}).get("module")
    if module:
        return str(module)[:2]
    prefixes = Counter(ex[:2] for cell in nb.cells for ex in nbu.check_ids(cell))
    prefixes.update(
        m[1] for c in nb.cells if (m := GRADE_ID.match(str(nbu.nbgrader(c).get("grade_id", ""))))
    )
    if prefixes:
        return prefixes.most_common(1)[0][0]
    name = nbu.module_name(path)
    return name[:2] if name else None


def _grading_source(ex_id: str) -> str:
    # A learner may rebind `check`; the graded cell calls the real one.
    return f'import rdslab.grading as _rdslab_grading\n_rdslab_grading.check("{ex_id}")'


def restore_checks(nb: Any, reference: Any) -> list[str]:
    """Put the reference's check cells back into ``nb`` (in place); returns notes."""
    notes: list[str] = []
    ref_roles = nbu.roles(reference.cells)
    for ref_index, (role, ex_id, gid) in enumerate(ref_roles):
        if role != "check":
            continue
        matches = [
            i
            for i, c in enumerate(nb.cells)
            if nbu.nbgrader(c).get("grade_id") == gid or ex_id in nbu.check_ids(c)
        ]
        fresh = copy.deepcopy(reference.cells[ref_index])
        if matches:
            keep = matches[-1]
            original = nb.cells[keep]
            if (
                original.cell_type != "code"
                or nbu.source(original).strip() != nbu.source(reference.cells[ref_index]).strip()
            ):
                notes.append(f"check cell {ex_id} was edited: restored")
            for extra in reversed(matches[:-1]):
                del nb.cells[extra]
                notes.append(f"duplicate check cell {ex_id} removed")
            nb.cells[keep - len(matches[:-1])] = fresh
            continue
        answer = nbu.grade_id("answer", ex_id)
        answers = [
            i
            for i, c in enumerate(nb.cells)
            if (g := str(nbu.nbgrader(c).get("grade_id", ""))) == answer
            or g.startswith(answer + "-")
        ]
        if answers:
            where = answers[-1] + 1
        else:
            notes.append(
                f"answer cell(s) of {ex_id} not found (renamed or metadata removed): graded from the lab's state"
            )
            where = _position(nb, reference, ref_index)
        nb.cells.insert(where, fresh)
        notes.append(f"check cell {ex_id} was missing: put back")
    return notes


def _same(cell: Any, ref: Any) -> bool:
    return cell.get("id") == ref.get("id") or nbu.source(cell).strip() == nbu.source(ref).strip()


def _position(nb: Any, reference: Any, ref_index: int) -> int:
    """Where a missing check cell goes: before the first cell of ``nb`` that matches a reference
    cell after it (the next task), else after the last match of a cell before it, else the end."""
    for ref in reference.cells[ref_index + 1 :]:
        for i, cell in enumerate(nb.cells):
            if _same(cell, ref):
                return i
    for ref in reversed(reference.cells[:ref_index]):
        for i in range(len(nb.cells) - 1, -1, -1):
            if _same(nb.cells[i], ref):
                return i + 1
    return len(nb.cells)


async def grade_one(
    learner: str,
    path: Path | None,
    problem: str,
    module: str,
    reference: Any,
    timeout: int,
    limit: asyncio.Semaphore,
) -> Grade:
    grade = Grade(learner, str(path or ""))
    if problem:
        grade.notes.append(problem)
        return grade
    assert path is not None
    try:
        nb = read_submission(path)
    except ValueError as exc:
        grade.notes.append(str(exc))
        return grade
    own = detect_module(nb, path)
    if own is None:
        grade.notes.append(f"could not tell the module: graded as {module}")
    elif own != module[:2]:
        grade.notes.append(f"a notebook of module {own}, not {module}: not graded")
        return grade
    grade.notes += restore_checks(nb, reference)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if ids := nbu.check_ids(cell):
                cell.source = _grading_source(ids[0])
    async with limit:
        with tempfile.TemporaryDirectory(prefix=f"rdslab-grade-{learner[:20]}-") as cwd:
            report = await run_notebook_async(
                nb, timeout=timeout, cwd=cwd, env=SAFE_ENV, prelude=PRELUDE
            )
    results = report.results()
    for ex_id in exercises(reference):
        grade.points[ex_id] = float(results[ex_id]["earned"]) if ex_id in results else 0.0
        if ex_id in results and results[ex_id]["status"] == "error":
            grade.notes.append(f"check {ex_id} failed inside the check: see the instructor")
    grade.notes += [
        f"cell {e.index}: timed out after {timeout} s (interrupted)"
        for e in report.errors
        if e.timeout
    ]
    if report.stopped:
        grade.notes.append(report.stopped)
    missing = [ex_id for ex_id in exercises(reference) if ex_id not in results]
    if missing:
        grade.notes.append(f"check(s) {', '.join(missing)} did not run: 0 points")
    grade.status = "graded" if not grade.notes else "graded, see notes"
    return grade


def exercises(reference: Any) -> list[str]:
    return [ex for role, ex, _ in nbu.roles(reference.cells) if role == "check"]


def to_frame(grades: list[Grade], reference: Any) -> Any:
    import pandas as pd

    ids = exercises(reference)
    possible = sum(
        float(nbu.nbgrader(c).get("points", 0)) for c in reference.cells if nbu.check_ids(c)
    )
    rows = []
    for g in sorted(grades, key=lambda g: g.learner):
        row: dict[str, Any] = {"learner": g.learner, "status": g.status}
        row.update({i: g.points.get(i, 0.0) for i in ids})
        row.update(
            points=sum(g.points.values()), possible=possible, notes="; ".join(g.notes), file=g.file
        )
        rows.append(row)
    columns = ["learner", "status", *ids, "points", "possible", "notes", "file"]
    return pd.DataFrame(rows, columns=columns).set_index("learner")


def load_gradebook(csv: str | Path) -> Any:
    """The gradebook written by ``rdslab grade`` as a DataFrame indexed by learner."""
    import pandas as pd

    frame = pd.read_csv(csv, dtype={"learner": str}, keep_default_na=False)
    return frame.set_index("learner")


def _resolve_module(requested: str | None, solutions: Path, detected: list[str]) -> Path:
    if requested is None:
        if not detected:
            raise SystemExit(
                "error: cannot tell which module these notebooks are for; pass --module NN"
            )
        requested = Counter(detected).most_common(1)[0][0]
    candidates = sorted(solutions.glob(f"{requested[:2]}-*.ipynb"))
    if not candidates:
        raise SystemExit(f"error: no solutions/{requested[:2]}-*.ipynb in {solutions}")
    return candidates[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rdslab grade", description="Grade a folder of submitted notebooks."
    )
    parser.add_argument(
        "folder", type=Path, help="submissions: LEARNER.ipynb or LEARNER/NN-slug.ipynb"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("grades.csv"), help="gradebook CSV (default grades.csv)"
    )
    parser.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    parser.add_argument(
        "--module", help="module to grade, e.g. 00 (default: the one most submissions are)"
    )
    parser.add_argument(
        "--solutions", type=Path, default=None, help="solutions folder (default: the course's)"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, choices=(1, 2), help="submissions graded at once (max 2)"
    )
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    found = discover(args.folder)
    detected = []
    for _, path, problem in found:
        if path is not None and not problem:
            try:
                module = detect_module(read_submission(path), path)
            except ValueError:
                continue
            detected += [module] if module else []
    solution = _resolve_module(args.module, args.solutions or repo_root() / "solutions", detected)
    reference = exercise_notebook(nbu.read(solution), solution.name)
    print(f"grading {len(found)} submission(s) of {solution.stem} from {args.folder}", flush=True)

    async def grade_all() -> list[Grade]:
        limit = asyncio.Semaphore(args.jobs)
        jobs = [
            grade_one(who, p, pr, solution.stem, reference, args.timeout, limit)
            for who, p, pr in found
        ]
        return list(await asyncio.gather(*jobs))

    frame = to_frame(asyncio.run(grade_all()), reference)
    frame.to_csv(args.out)
    _print_summary(frame, args.out)
    return 0


def _print_summary(frame: Any, out: Path) -> None:
    import pandas as pd

    shown = frame.drop(columns=["file"]).copy()
    shown["notes"] = shown["notes"].str.slice(0, 70)
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print(shown.to_string())
    graded = frame[frame["status"] != "not graded"]
    mean = (
        f"; mean {graded['points'].mean():.1f} of {frame['possible'].iloc[0]:g} points"
        if len(graded)
        else ""
    )
    print(
        f"{len(frame)} submission(s), {len(graded)} graded, {len(frame) - len(graded)} not graded{mean}"
    )
    print(f"gradebook written to {out}")


if __name__ == "__main__":
    sys.exit(main())
