"""Write ``exercises/NN-slug.ipynb`` from ``solutions/NN-slug.ipynb`` (the single source).

    python -m rdslab.grading.generate            # regenerate every exercise notebook
    python -m rdslab.grading.generate --check    # exit 1 and list the files that drifted

What the generator does (nbgrader's generate_assignment, reduced to what this course needs):
solution regions become a ``# YOUR CODE HERE`` stub that raises NotImplementedError (markdown:
"YOUR ANSWER HERE"); stub cells are tagged ``raises-exception``; check cells are locked
(``metadata.nbgrader`` with grade_id and points, ``deletable``/``editable`` false); outputs and
execution counts are cleared; cell ids are stable (grade_id, or ``cell-NNN`` by position);
output is nbformat 4.5 with sorted keys, so the same solution always gives the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import nbformat

from . import core
from . import notebook as nbu
from .core import Registry

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
KEEP_METADATA = ("tags", "slideshow")


class GenerateError(ValueError):
    """A solution notebook the generator cannot turn into an exercise."""


def repo_root() -> Path:
    """The course repository: the current directory if it has solutions/, else the package's."""
    cwd = Path.cwd()
    if (cwd / "solutions").is_dir():
        return cwd
    return Path(__file__).resolve().parents[3]


def _nbgrader(**fields: Any) -> dict[str, Any]:
    return {"schema_version": 3, "task": False, **fields}


def _points(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def exercise_notebook(solution: Any, name: str, registry: Registry | None = None) -> Any:
    """The exercise notebook for the solution notebook ``solution`` named ``name``."""
    registry = registry or core.REGISTRY
    module = nbu.module_name(name)
    if module is None:
        raise GenerateError(f"{name}: not named NN-slug.ipynb")
    cells = solution.get("cells", [])
    roles = nbu.roles(cells)
    out_cells = []
    for index, (cell, (role, ex_id, gid)) in enumerate(zip(cells, roles, strict=True)):
        kind = cell.get("cell_type", "code")
        text = nbu.source(cell)
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_METADATA}
        where = f"{name}, cell {index}"
        if role == "answer" and not ex_id:
            raise GenerateError(f'{where}: an answer cell with no check("NN.M") cell after it')
        if role and not ex_id.startswith(module[:2] + "."):
            raise GenerateError(f"{where}: exercise {ex_id} does not belong to module {module[:2]}")
        if role == "check":
            if len(nbu.check_ids(cell)) != 1 or nbu.has_markers(cell):
                raise GenerateError(
                    f"{where}: a check cell holds exactly one check(...) call and no markers"
                )
            try:
                points = registry.get(ex_id).points
            except KeyError:
                raise GenerateError(
                    f"{where}: no check registered for {ex_id} (rdslab/grading/checks/m{ex_id[:2]}.py)"
                ) from None
            meta.update(deletable=False, editable=False)
            meta["nbgrader"] = _nbgrader(
                cell_type="code",
                grade=True,
                grade_id=gid,
                locked=True,
                points=_points(points),
                solution=False,
            )
        elif role == "answer":
            hint = (
                f"Exercise {ex_id}: replace this line with your answer, then run the check below."
            )
            try:
                text = nbu.strip_solution(text, kind, hint)
            except nbu.MarkerError as exc:
                raise GenerateError(f"{where}: {exc}") from None
            meta["nbgrader"] = _nbgrader(
                cell_type=kind, grade=False, grade_id=gid, locked=False, solution=True
            )
            if kind == "code":
                meta["tags"] = sorted({*meta.get("tags", []), "raises-exception"})
        cell_id = gid or f"cell-{index:03d}"
        if kind == "code":
            new = nbformat.v4.new_code_cell(source=text, metadata=meta, id=cell_id)
        elif kind == "markdown":
            new = nbformat.v4.new_markdown_cell(source=text, metadata=meta, id=cell_id)
        else:
            new = nbformat.v4.new_raw_cell(source=text, metadata=meta, id=cell_id)
        out_cells.append(new)
    if not any(role == "check" for role, _, _ in roles):
        raise GenerateError(
            f'{name}: no check("NN.M") cell: a solution notebook has at least one exercise'
        )
    nb = nbformat.v4.new_notebook(cells=out_cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "rdslab": {
            "module": module,
            "generated_from": f"solutions/{name}",
            "note": "generated by `python -m rdslab.grading.generate`; edit the solution instead",
        },
    }
    return nb


def render(solution_path: Path, registry: Registry | None = None) -> str:
    """The exact text of the exercise notebook generated from ``solution_path``."""
    return nbu.dumps(exercise_notebook(nbu.read(solution_path), solution_path.name, registry))


def drifted(root: Path, registry: Registry | None = None) -> list[str]:
    """Exercise files that differ from what their solutions generate (or have no solution)."""
    problems = []
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    for path in solutions:
        target = root / "exercises" / path.name
        if not target.exists():
            problems.append(f"exercises/{path.name}: missing")
        elif target.read_text(encoding="utf-8") != render(path, registry):
            problems.append(f"exercises/{path.name}: differs from solutions/{path.name}")
    names = {p.name for p in solutions}
    for extra in sorted((root / "exercises").glob("*.ipynb")):
        if extra.name not in names:
            problems.append(f"exercises/{extra.name}: has no solutions/{extra.name}")
    return problems


def generate_all(
    root: Path, registry: Registry | None = None, only: list[str] | None = None
) -> list[Path]:
    """Write every exercise notebook (or those whose name starts with one of ``only``, e.g.
    ``["03"]``); returns the files that changed."""
    (root / "exercises").mkdir(exist_ok=True)
    changed = []
    for path in sorted((root / "solutions").glob("*.ipynb")):
        if only and not any(path.name.startswith(prefix) for prefix in only):
            continue
        target = root / "exercises" / path.name
        text = render(path, registry)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            changed.append(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rdslab.grading.generate", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="verify only; exit 1 listing drifted files"
    )
    parser.add_argument(
        "--root", type=Path, default=None, help="course repository (default: found)"
    )
    parser.add_argument("modules", nargs="*", help="only these modules (e.g. 03 04); default: all")
    args = parser.parse_args(argv)
    root = (args.root or repo_root()).resolve()
    try:
        if args.check:
            problems = drifted(root)
            for line in problems:
                print(line)
            if problems:
                print(
                    "Run `python -m rdslab.grading.generate` and commit exercises/.",
                    file=sys.stderr,
                )
                return 1
            print(f"exercises/ is up to date with solutions/ ({root})")
            return 0
        changed = generate_all(root, only=args.modules or None)
    except (GenerateError, nbformat.reader.NotJSONError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path.relative_to(root)}")
    print(
        f"{len(changed)} exercise notebook(s) written"
        if changed
        else "exercises/ already up to date"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
