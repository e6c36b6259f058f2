"""Build a lesson notebook from a compact Python description (used by the course authors).

    from nbbuild import md, code, write
    write("notebooks/00-welcome.ipynb", [md("# Title"), code("print(1)")])

Cell ids are stable (derived from the notebook name and position), so rebuilding a notebook
produces no diff noise. Execute afterwards with ``python tools/nbrun.py notebooks/NN-*.ipynb``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from textwrap import dedent

import nbformat


def md(text: str, **metadata: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(dedent(text).strip("\n"))
    cell.metadata.update(metadata)
    return cell


def code(text: str, tags: list[str] | None = None, **metadata: object) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    cell.metadata.update(metadata)
    return cell


def write(path: str, cells: list[nbformat.NotebookNode]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    stem = Path(path).stem.split("-")[0]
    for i, cell in enumerate(cells):
        cell["id"] = f"c{stem}-{i:03d}"
    nb.cells = cells
    nbformat.validate(nb)
    Path(path).write_text(nbformat.writes(nb) + "\n")


if __name__ == "__main__":
    sys.exit("import this module from a notebook description script")
