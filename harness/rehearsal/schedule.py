"""Randomness in rehearsals, seeded and reported: what a `random` step draws (faults ×
targets, holds and gaps) from `random.Random(seed)`, and which seed a run uses
(``--kms-seed N``, else the file's ``seed``, else a fresh one). The same seed gives the
same schedule, so a failing run is replayed exactly.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.yamlfile import format_duration


def describe_fault(kind: str, target: str, params: Mapping[str, Any]) -> str:
    """``latency kms-a ms=100``: one fault as messages and notes show it."""
    extra = "".join(f" {k}={v}" for k, v in params.items())
    return f"{kind} {target}{extra}"


@dataclass(frozen=True)
class Draw:
    """One fault of a `random` step's schedule."""

    kind: str
    target: str
    params: dict[str, Any]
    hold_s: float
    gap_s: float

    def describe(self) -> str:
        spec = describe_fault(self.kind, self.target, self.params)
        return f"{spec} for {format_duration(self.hold_s)}, gap {format_duration(self.gap_s)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "params": dict(self.params),
            "hold_s": self.hold_s,
            "gap_s": self.gap_s,
        }


def draw_faults(
    rng: random.Random,
    *,
    faults: Sequence[str],
    targets: Sequence[str],
    count: int,
    hold_s: tuple[float, float],
    gap_s: tuple[float, float],
    params: Mapping[str, dict[str, Any]],
) -> list[Draw]:
    """`count` faults drawn from `faults` × `targets`, each with a hold and a gap (fixed,
    or drawn from [lo, hi])."""
    out = []
    for _ in range(count):
        kind = rng.choice(faults)
        target = rng.choice(targets)
        out.append(
            Draw(
                kind,
                target,
                dict(params.get(kind, {})),
                _between(rng, hold_s),
                _between(rng, gap_s),
            )
        )
    return out


def _between(rng: random.Random, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return lo if lo == hi else round(rng.uniform(lo, hi), 3)


def check_seed_option(value: str | None) -> None:
    """Raise ValueError unless `value` is None, `random` or a whole number >= 0."""
    if value is None or value == "random":
        return
    if not re.fullmatch(r"\d{1,19}", value.strip()):
        raise ValueError(f"--kms-seed {value}: must be a whole number >= 0, or `random`")


def resolve_seed(option: str | None, file_seed: int | None) -> int:
    """The seed of a run: `--kms-seed N`, else the file's `seed`, else a fresh one
    (also with `--kms-seed random`). It is always reported."""
    check_seed_option(option)
    if option is not None and option != "random":
        return int(option)
    if option is None and file_seed is not None:
        return file_seed
    return random.SystemRandom().randrange(2**32)
