"""Graded exercises: checks with points and hints, the exercise generator and the gradebook.

In a notebook::

    from rdslab.grading import check, summary
    check("00.1")      # inspects the lab's live state; shows points, what is wrong, a hint
    summary()          # every check run in this kernel: "N of M checks passed"

Writing checks (``rdslab/grading/checks/mNN.py``)::

    from rdslab.grading import Context, Criterion, exercise, practice

    @exercise("00.1", points=8, title="Create the welcome-db instance")
    def welcome_db(ctx: Context):
        db = ctx.db_instance("welcome-db")
        yield Criterion(1, "instance status", db["DBInstanceStatus"] == "available", ...)

Tools: ``python -m rdslab.grading.generate [--check]`` writes exercises/ from solutions/;
``rdslab.grading.gradebook.main(argv)`` grades a folder of submissions.
"""

from .context import Context, LabNotStarted, LearnerError
from .core import (
    REGISTRY,
    CheckResult,
    Criterion,
    Exercise,
    Registry,
    check,
    exercise,
    practice,
    summary,
)
from .report import Summary

__all__ = [
    "REGISTRY",
    "CheckResult",
    "Context",
    "Criterion",
    "Exercise",
    "LabNotStarted",
    "LearnerError",
    "Registry",
    "Summary",
    "check",
    "exercise",
    "practice",
    "summary",
]
