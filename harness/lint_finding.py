"""What a topology lint rule reports: a `Finding`, shared by `harness.topology_lint`
and `harness.lint_balancers` (which the former runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One design problem. `where` is a field path in the file; message and fix are
    single lines: what is wrong and why it matters, then what to change."""

    rule: str
    severity: Severity
    where: str
    message: str
    fix: str
