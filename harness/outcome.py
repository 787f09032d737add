"""What a scenario measured: its verdicts, their expectations, its findings and figures
(`Outcome`), written to ``outcome.json`` and read by the report and `kmschaos run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.checkers import Verdict


@dataclass
class Outcome:
    """What a scenario measured: the verdicts and their expectations."""

    name: str
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdicts": {
                k: {**v.to_dict(), "expected": self.expected.get(k)}
                for k, v in self.verdicts.items()
            },
            "findings": self.findings,
            "figures": self.figures,
            "regressions": self.regressions(),
        }

    def regressions(self) -> list[str]:
        out = []
        for name, want in self.expected.items():
            got = self.verdicts.get(name)
            if got is None:
                out.append(f"{name}: expected {want}, but the checker did not run")
            elif got.status != want:
                out.append(f"{name}: expected {want}, got {got.status}: {got.summary}")
        return out
