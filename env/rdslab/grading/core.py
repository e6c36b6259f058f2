"""Exercise checks: criteria, the registry, running a check and recording its result.

A check is a function registered with ``@exercise("00.1", points=8, title=...)``. It receives a
:class:`~rdslab.grading.context.Context` and yields (or returns) :class:`Criterion` objects,
each worth some points. Running a check never raises. A learner's error (no lab, no such
resource, an undefined variable, an AWS or SQL error) ends the check: criteria already met
keep their points and the rest are lost, with what is wrong and a hint (status "not yet"). An
error inside the check itself (a defect) scores 0 and says so (status "error").
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .context import Context, LearnerError
from .report import Summary, result_html, result_text

Kind = Literal["state", "practice", "error"]
EXERCISE_ID = re.compile(r"^(?P<module>\d{2})\.\d+[a-z]?$")
LOG_ENV = "RDSLAB_GRADE_LOG"


@dataclass(frozen=True)
class Criterion:
    """One thing a check looked at, worth ``points`` when ``passed``.

    ``kind`` is ``"state"`` (the lab is in the required state), ``"practice"`` (the answer
    works but the points are withheld for poor practice, e.g. ``"Resource": "*"``) or
    ``"error"`` (a defect inside the check, not the learner's doing: see ``wrong``).
    """

    points: float
    looked_at: str
    passed: bool
    wrong: str = ""
    hint: str = ""
    kind: Kind = "state"

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0.0


def practice(
    points: float, looked_at: str, passed: bool, wrong: str = "", hint: str = ""
) -> Criterion:
    """A criterion about good practice: the answer works, but points are withheld if not."""
    return Criterion(points, looked_at, passed, wrong, hint, kind="practice")


CheckFunction = Callable[[Context], "Iterable[Criterion] | Criterion | None"]


@dataclass(frozen=True)
class Exercise:
    """A registered check: its id (``"00.1"``), points possible, title and function."""

    id: str
    points: float
    title: str
    function: CheckFunction

    @property
    def module(self) -> str:
        return self.id.split(".")[0]


class Registry:
    """Exercises by id; the checks of module ``NN`` load from ``rdslab.grading.checks.mNN``."""

    package = "rdslab.grading.checks"

    def __init__(self) -> None:
        self.exercises: dict[str, Exercise] = {}

    def add(self, ex: Exercise) -> None:
        self.exercises[ex.id] = ex  # re-running a defining cell replaces the check

    def load_module(self, module: str) -> None:
        """Import the checks of module ``NN`` (a missing checks module is not an error)."""
        name = f"{self.package}.m{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise

    def get(self, exercise_id: str) -> Exercise:
        match = EXERCISE_ID.match(exercise_id)
        if exercise_id not in self.exercises and match:
            self.load_module(match["module"])
        if exercise_id not in self.exercises:
            raise KeyError(exercise_id)
        return self.exercises[exercise_id]

    def of_module(self, module: str) -> list[Exercise]:
        self.load_module(module)
        found = [ex for ex in self.exercises.values() if ex.module == module]
        return sorted(found, key=lambda ex: _sort_key(ex.id))


REGISTRY = Registry()


def _sort_key(exercise_id: str) -> tuple[int, int, str]:
    module, _, rest = exercise_id.partition(".")
    number = re.match(r"\d+", rest)
    return (int(module), int(number.group()) if number else 0, rest)


def exercise(
    exercise_id: str, *, points: float, title: str, registry: Registry | None = None
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check function for ``exercise_id`` (``"NN.M"``) worth ``points``."""
    if not EXERCISE_ID.match(exercise_id):
        raise ValueError(f"exercise id {exercise_id!r} is not of the form NN.M (e.g. '00.1')")
    if points <= 0:
        raise ValueError(f"exercise {exercise_id}: points must be > 0")

    def register(function: CheckFunction) -> CheckFunction:
        (registry or REGISTRY).add(Exercise(exercise_id, float(points), title, function))
        return function

    return register


@dataclass
class CheckResult:
    """What one run of a check found; shown as an HTML table in Jupyter, text elsewhere."""

    exercise_id: str
    title: str
    possible: float
    criteria: list[Criterion] = field(default_factory=list)
    status: Literal["passed", "not yet", "error"] = "not yet"
    seconds: float = 0.0

    @property
    def earned(self) -> float:
        return min(self.possible, sum(c.earned for c in self.criteria))

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_record(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise_id,
            "title": self.title,
            "earned": self.earned,
            "possible": self.possible,
            "status": self.status,
            "criteria": [asdict(c) for c in self.criteria],
            "seconds": round(self.seconds, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(),
        }

    def __repr__(self) -> str:
        return result_text(self)

    def _repr_html_(self) -> str:
        return result_html(self)


def _learner_caused(exc: BaseException) -> bool:
    """Errors that come from the learner's state rather than from a defect in the check."""
    origin = type(exc).__module__ or ""
    return isinstance(exc, LearnerError | NameError) or origin.startswith(("botocore", "psycopg2"))


def _error_criterion(exc: BaseException, points: float) -> Criterion:
    """A failed criterion for an exception: the learner's state ("state") or a defect ("error")."""
    if isinstance(exc, LearnerError):
        return Criterion(points, exc.looked_at, False, exc.wrong, exc.hint)
    name = type(exc).__name__
    if _learner_caused(exc):
        return Criterion(
            points,
            "the lab, while checking",
            False,
            f"{name}: {exc}",
            "Run your answer cells above (top to bottom), fix any error they show, then re-run this check.",
        )
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return Criterion(
        points,
        "the check itself",
        False,
        f"error inside the check: {name}: {exc}{where}",
        "This is not about your answer: re-run the check; if it persists, tell the instructor.",
        kind="error",
    )


def run(
    exercise_id: str, registry: Registry | None = None, namespace: dict[str, Any] | None = None
) -> CheckResult:
    """Run the check for ``exercise_id`` and return its result; never raises ``Exception``."""
    registry = registry or REGISTRY
    started = time.perf_counter()
    try:
        ex = registry.get(exercise_id)
    except KeyError:
        return CheckResult(
            exercise_id,
            "unknown exercise",
            0.0,
            [
                Criterion(
                    0,
                    f"check {exercise_id!r}",
                    False,
                    f"there is no check named {exercise_id!r}",
                    "Do not edit the check cell; restore it from the exercise notebook.",
                    kind="error",
                )
            ],
            status="error",
        )
    except Exception as exc:  # noqa: BLE001 - a broken checks module must not crash the notebook
        return CheckResult(
            exercise_id, "checks could not load", 0.0, [_error_criterion(exc, 0)], status="error"
        )

    result = CheckResult(ex.id, ex.title, ex.points)
    with Context(ex.id, namespace) as ctx:
        try:
            out = ex.function(ctx)
            for criterion in [out] if isinstance(out, Criterion) else out or []:
                if not isinstance(criterion, Criterion):
                    raise TypeError(
                        f"a check yields Criterion objects, not {type(criterion).__name__}"
                    )
                result.criteria.append(criterion)
        except Exception as exc:  # noqa: BLE001 - reported as a failed criterion
            if not _learner_caused(exc):  # a defect in the check: nothing it found counts
                result.criteria = [c for c in result.criteria if not c.passed]
                result.status = "error"
            remaining = max(0.0, ex.points - sum(c.points for c in result.criteria))
            result.criteria.append(_error_criterion(exc, remaining))
    total = sum(c.points for c in result.criteria)
    if result.status != "error" and abs(total - ex.points) > 1e-9:
        result.criteria.append(
            Criterion(
                0,
                "the check itself",
                False,
                f"error inside the check: its criteria are worth {total:g} points, not {ex.points:g}",
                "This is not about your answer: tell the instructor.",
                kind="error",
            )
        )
        result.status = "error"
    if result.status != "error":
        result.status = "passed" if all(c.passed for c in result.criteria) else "not yet"
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------- the session
_SESSION: dict[str, CheckResult] = {}
_LOG_LOCK = threading.Lock()


def session() -> dict[str, CheckResult]:
    """The latest result of every check run in this process (kernel), in first-run order."""
    return _SESSION


def record(result: CheckResult) -> None:
    """Keep ``result`` for ``summary()`` and append it to ``$RDSLAB_GRADE_LOG`` if set."""
    _SESSION[result.exercise_id] = result
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    try:
        with _LOG_LOCK, open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.to_record(), sort_keys=True) + "\n")
    except OSError as exc:
        print(f"rdslab.grading: could not write the grade log {path}: {exc}", file=sys.stderr)


def check(exercise_id: str) -> CheckResult:
    """Check exercise ``exercise_id`` against the lab's live state and show the result."""
    try:
        result = run(exercise_id)
    except Exception as exc:  # noqa: BLE001 - belt and braces: a check never crashes a notebook
        result = CheckResult(
            exercise_id, "check failed", 0.0, [_error_criterion(exc, 0)], status="error"
        )
    record(result)
    return result


def summary() -> Summary:
    """A table of every check run in this kernel (and this module's checks not run yet)."""
    results = sorted(
        _SESSION.values(),
        key=lambda r: (
            _sort_key(r.exercise_id) if EXERCISE_ID.match(r.exercise_id) else (99, 0, r.exercise_id)
        ),
    )
    modules = sorted(
        {r.exercise_id.split(".")[0] for r in results if EXERCISE_ID.match(r.exercise_id)}
    )
    not_run: list[tuple[str, str, float]] = []
    for module in modules:
        try:
            exercises = REGISTRY.of_module(module)
        except Exception:  # noqa: BLE001 - a broken checks module was already reported by check()
            continue
        not_run += [(ex.id, ex.title, ex.points) for ex in exercises if ex.id not in _SESSION]
    return Summary(results, not_run)
