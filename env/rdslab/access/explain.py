"""``PathExplanation``: the lab's counterpart of VPC Reachability Analyzer for DB -> Lambda.

It lists every hop of both halves of the path (IAM: role association -> trust -> identity
policy; network: instance -> DNS -> route table -> gateway or endpoint -> security groups and
ACLs -> Lambda endpoint), marks each ok / FAIL / not evaluated, names the first missing piece
(the one AWS meets first, which is the one ``check_invoke`` reports) and a hint toward the fix.
It renders as a Mermaid flowchart plus a table in Jupyter, as a DataFrame and as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Hop, Verdict, first_failure

IAM_STEPS = ("role association", "trust policy", "identity policy")
_CLASS = {True: "ok", False: "fail", None: "skip"}


def _label(text: str, limit: int = 64) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace('"', "#quot;")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class PathExplanation:
    """Why a DB instance can or cannot invoke a Lambda function, hop by hop."""

    db_instance_identifier: str
    function_arn: str
    verdict: Verdict
    hops: list[Hop] = field(default_factory=list)
    path: str | None = None  # network path taken: internet gateway, NAT gateway, interface endpoint

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def first_missing(self) -> Hop | None:
        """The failing hop AWS meets first (None when the call would go through)."""
        return first_failure(self.hops)

    @property
    def missing(self) -> str | None:
        return self.verdict.missing

    @property
    def hint(self) -> str | None:
        hop = self.first_missing
        return hop.hint if hop is not None else None

    def _headline(self) -> str:
        target = f"{self.db_instance_identifier} -> {self.function_arn}"
        if self.verdict.ok:
            via = f" via {self.path}" if self.path else ""
            return f"{target}: reachable{via}"
        return f"{target}: FAILS ({self.verdict.kind}) with `invoke API failed`"

    # ------------------------------------------------------------------ renderings
    def to_frame(self) -> Any:
        """The hops as a pandas DataFrame (layer, step, status, resource, detail, hint)."""
        import pandas as pd

        rows = [
            {
                "layer": h.layer,
                "step": h.step,
                "status": h.status,
                "resource": h.resource,
                "detail": h.detail,
                "hint": h.hint or "",
            }
            for h in self.hops
        ]
        frame = pd.DataFrame(
            rows, columns=["layer", "step", "status", "resource", "detail", "hint"]
        )
        frame.index = range(1, len(frame) + 1)
        return frame

    def mermaid(self) -> str:
        """A Mermaid flowchart of both halves of the path."""
        first = self.first_missing
        lines = ["flowchart LR", f'  db["DB instance<br/>{_label(self.db_instance_identifier)}"]']
        fn_name = self.function_arn.split(":function:")[-1]
        lines.append(f'  fn(["Lambda function<br/>{_label(fn_name)}"])')
        classes: dict[str, list[str]] = {"ok": [], "fail": [], "skip": [], "first": []}
        chains: dict[str, list[str]] = {"iam": [], "network": []}
        for i, hop in enumerate(self.hops):
            node = f"h{i + 1}"
            lines.append(f'  {node}["{i + 1}. {_label(hop.step, 40)}<br/>{_label(hop.resource)}"]')
            chains["iam" if hop.step in IAM_STEPS else "network"].append(node)
            classes["first" if hop is first else _CLASS[hop.ok]].append(node)
        for nodes in chains.values():
            if nodes:
                lines.append("  db --> " + " --> ".join(nodes) + " --> fn")
        lines += [
            "  classDef ok fill:#e6f4ea,stroke:#1e8e3e",
            "  classDef fail fill:#fce8e6,stroke:#d93025",
            "  classDef first fill:#fce8e6,stroke:#d93025,stroke-width:3px",
            "  classDef skip fill:#f1f3f4,stroke:#9aa0a6,stroke-dasharray:3 3",
        ]
        lines += [f"  class {','.join(nodes)} {name}" for name, nodes in classes.items() if nodes]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        parts = [f"**{self._headline()}**", ""]
        if not self.verdict.ok:
            parts += [f"- DETAIL: `{self.verdict.detail}`", f"- Missing: {self.verdict.missing}"]
            if self.hint:
                parts.append(f"- Hint: `{self.hint}`")
            parts.append("")
        parts += ["```mermaid", self.mermaid(), "```", ""]
        parts += ["| # | layer | step | status | resource | detail |", "|---|---|---|---|---|---|"]
        for i, h in enumerate(self.hops, 1):
            status = f"**{h.status}**" if h.ok is False else h.status
            parts.append(
                f"| {i} | {h.layer} | {h.step} | {status} | {_cell(h.resource)} | {_cell(h.detail)} |"
            )
        return "\n".join(parts)

    def __str__(self) -> str:
        lines = [self._headline().replace("`", "")]
        if not self.verdict.ok:
            lines += [f"  DETAIL:  {self.verdict.detail}", f"  missing: {self.verdict.missing}"]
            if self.hint:
                lines.append(f"  hint:    {self.hint}")
        width = max((len(h.step) for h in self.hops), default=4)
        for i, h in enumerate(self.hops, 1):
            lines.append(f"{i:>3}. [{h.status:<4}] {h.layer:<7} {h.step:<{width}}  {h.resource}")
            lines.append(f"{'':>13}{h.detail}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<PathExplanation {self._headline().replace('`', '')}>"
