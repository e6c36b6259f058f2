#!/usr/bin/env python3
"""Set up the course and run it. Needs only Python >= 3.11.

    python3 course.py lab     # create .venv, install the lab, open the course in JupyterLab
    python3 course.py test    # create .venv, install the lab, run the whole test suite
    python3 course.py setup   # only create/refresh .venv

Extra arguments after ``test`` go to pytest (e.g. ``python3 course.py test tests/test_databases.py``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before the venv exists
        sys.exit(f"Python >= 3.11 is needed (this is {sys.version.split()[0]}).")
    if not PY.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "env" / "pyproject.toml"
    stamp = VENV / ".rdslab-installed"
    digest = hashlib.sha256(pyproject.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("Installing the lab and its dependencies into .venv ...", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT / 'env'}[dev]"], check=True
    )
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "lab"
    if command not in {"lab", "test", "setup"}:
        print(__doc__)
        return 2
    setup()
    if command == "setup":
        return 0
    if command == "lab":
        os.chdir(ROOT)
        # Jupyter refuses to run as root (containers, CI machines) unless told it may
        root_flag = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        # the whole course in the file browser (lessons, exercises, solutions), welcome page open;
        # given only a file, Jupyter would serve that file's folder and hide exercises/
        return subprocess.call(
            [
                str(BIN / "jupyter"),
                "lab",
                f"--ServerApp.root_dir={ROOT}",
                "notebooks/00-welcome.ipynb",
                *root_flag,
                *argv[1:],
            ]
        )
    args = argv[1:] or []
    return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
