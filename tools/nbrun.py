"""Execute notebooks in place with a fresh kernel each (stores deterministic outputs for nbval).

    python tools/nbrun.py notebooks/00-welcome.ipynb [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    path.write_text(nbformat.writes(nb) + "\n")
    print(f"executed {path}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        run(Path(arg))
