"""How results read: a check's result (text and HTML table) and ``summary()`` of the session.

Wording follows what learners trust: points earned of points possible, what the check looked
at, what is wrong, a hint; a summary says "N of M checks passed", never "all passed".
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import CheckResult, Criterion

_MARK = {True: "ok", False: "--"}
_KIND = {"state": "", "practice": "practice", "error": "error"}


def _pts(value: float) -> str:
    return f"{value:g}"


def headline(result: CheckResult) -> str:
    if result.status == "passed":
        verdict = "passed"
    elif result.status == "error":
        verdict = "the check itself failed (not your answer)"
    else:
        verdict = "not yet"
    return (
        f"Check {result.exercise_id} ({result.title}): {_pts(result.earned)} of "
        f"{_pts(result.possible)} points, {verdict}"
    )


def _label(c: Criterion) -> str:
    return _MARK[c.passed] if c.kind == "state" or c.passed else _KIND[c.kind]


def result_text(result: CheckResult) -> str:
    lines = [headline(result)]
    for c in result.criteria:
        lines.append(f"  [{_label(c)}] {_pts(c.earned)}/{_pts(c.points)}  {c.looked_at}")
        if not c.passed and c.wrong:
            lines.append(f"        wrong: {c.wrong}")
        if not c.passed and c.hint:
            lines.append(f"        hint:  {c.hint}")
    return "\n".join(lines)


def result_html(result: CheckResult) -> str:
    colour = {"passed": "#1a7f37", "not yet": "#9a6700", "error": "#cf222e"}[result.status]
    rows = []
    for c in result.criteria:
        mark = "&#10003;" if c.passed else ("&#9888;" if c.kind != "state" else "&#10007;")
        kind = f" <em>({_KIND[c.kind]})</em>" if c.kind != "state" else ""
        rows.append(
            "<tr>"
            f"<td>{mark}</td><td>{_pts(c.earned)}/{_pts(c.points)}</td>"
            f"<td>{html.escape(c.looked_at)}{kind}</td>"
            f"<td>{'' if c.passed else html.escape(c.wrong)}</td>"
            f"<td>{'' if c.passed else html.escape(c.hint)}</td>"
            "</tr>"
        )
    return (
        f'<div class="rdslab-check"><p style="color:{colour}"><strong>'
        f"{html.escape(headline(result))}</strong></p>"
        "<table><thead><tr><th></th><th>points</th><th>looked at</th><th>what is wrong</th>"
        "<th>hint</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


class Summary:
    """Every check run in this kernel (latest result each), plus module checks not run yet."""

    def __init__(self, results: list[CheckResult], not_run: list[tuple[str, str, float]]) -> None:
        self.results = results
        self.not_run = not_run

    @property
    def earned(self) -> float:
        return sum(r.earned for r in self.results)

    @property
    def possible(self) -> float:
        return sum(r.possible for r in self.results) + sum(p for _, _, p in self.not_run)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results) + len(self.not_run)

    @property
    def frame(self) -> Any:
        """A pandas DataFrame: one row per exercise."""
        import pandas as pd

        rows = [
            {
                "exercise": r.exercise_id,
                "title": r.title,
                "points": r.earned,
                "possible": r.possible,
                "status": r.status,
            }
            for r in self.results
        ] + [
            {"exercise": i, "title": t, "points": 0.0, "possible": p, "status": "not run"}
            for i, t, p in self.not_run
        ]
        return pd.DataFrame(
            rows, columns=["exercise", "title", "points", "possible", "status"]
        ).set_index("exercise")

    def line(self) -> str:
        if not self.total:
            return "No checks have run in this kernel yet."
        return (
            f"{self.passed} of {self.total} checks passed: "
            f"{_pts(self.earned)} of {_pts(self.possible)} points"
        )

    def __repr__(self) -> str:
        if not self.total:
            return self.line()
        return f"{self.frame.to_string()}\n{self.line()}"

    def _repr_html_(self) -> str:
        table = self.frame.to_html() if self.total else ""
        return f'<div class="rdslab-summary">{table}<p><strong>{html.escape(self.line())}</strong></p></div>'
