"""Diff two policies over a corpus of recorded inputs: the decisions that change, rendered for a terminal or a PR."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from policy.engine import EmbeddedEngine
from policy.source import PolicySource


@dataclass(frozen=True)
class Change:
    """One recorded input whose decision differs between the base and the working tree."""

    kind: str
    role: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    line: int


@dataclass
class DiffReport:
    """Every change, with counts by kind and by (role, action)."""

    base_revision: str
    head_revision: str
    evaluated: int = 0
    changes: list[Change] = field(default_factory=list)

    def counts(self) -> Counter[tuple[str, str, str]]:
        """Changes counted by (kind, role, action)."""
        return Counter((change.kind, change.role, change.action) for change in self.changes)


def _summary(decision: Any) -> dict[str, Any]:
    if not isinstance(decision, dict):
        return {"allow": False, "reasons": ["undefined"], "obligations": {}}
    return {key: decision.get(key) for key in ("allow", "reasons", "obligations")}


def _kind(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    if before["allow"] and not after["allow"]:
        return "allow→deny"
    if not before["allow"] and after["allow"]:
        return "deny→allow"
    if before["obligations"] != after["obligations"]:
        return "obligations changed"
    if before["reasons"] != after["reasons"]:
        return "reasons changed"
    return None


def diff(base: PolicySource, head: PolicySource, corpus: Iterable[dict[str, Any]]) -> DiffReport:
    """Evaluate every input under both policies and keep the ones whose decision changed."""
    base_engine, head_engine = EmbeddedEngine(base), EmbeddedEngine(head)
    report = DiffReport(base_revision=base.revision, head_revision=head.revision)
    for line, document in enumerate(corpus, start=1):
        report.evaluated += 1
        before, after = _summary(base_engine.evaluate(document)), _summary(head_engine.evaluate(document))
        kind = _kind(before, after)
        if kind is None:
            continue
        subject = document.get("subject")
        roles = subject.get("roles") if isinstance(subject, dict) else None
        report.changes.append(
            Change(
                kind=kind,
                role=",".join(roles) if isinstance(roles, list) and roles else "(none)",
                action=str(document.get("action")),
                before=before,
                after=after,
                line=line,
            )
        )
    return report


def render_text(report: DiffReport) -> str:
    """The report for a terminal."""
    lines = [
        f"policy diff: {report.base_revision[:19]} -> {report.head_revision[:19]}",
        f"{report.evaluated} recorded decisions evaluated, {len(report.changes)} changed",
    ]
    for (kind, role, action), count in sorted(report.counts().items()):
        lines.append(f"  {count:5d}  {kind:<20} {role:<28} {action}")
    for change in report.changes:
        lines.append(
            f"line {change.line}: {change.kind}: {change.role} {change.action}: "
            f"{json.dumps(change.before, sort_keys=True)} -> {json.dumps(change.after, sort_keys=True)}"
        )
    return "\n".join(lines) + "\n"


def render_markdown(report: DiffReport) -> str:
    """The report as a pull-request comment."""
    lines = [
        "### Policy diff",
        "",
        f"`{report.base_revision[:19]}` → `{report.head_revision[:19]}`: "
        f"**{len(report.changes)}** of {report.evaluated} recorded decisions change.",
        "",
    ]
    if report.changes:
        lines += ["| change | role | action | count |", "|---|---|---|---:|"]
        lines += [
            f"| {kind} | {role} | `{action}` | {count} |"
            for (kind, role, action), count in sorted(report.counts().items())
        ]
        lines += ["", "<details><summary>Every changed decision</summary>", ""]
        lines += [
            f"- line {change.line}: **{change.kind}** {change.role} `{change.action}`: "
            f"reasons {change.before['reasons']} → {change.after['reasons']}"
            for change in report.changes
        ]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
