"""The figures a trend follows, one `Figure` each: which checker's verdict holds it, how to
read it from the verdict's figures, its unit, which way is worse and the change too
small to count (the noise of one run against another). Nothing else in `harness.trend`
knows one figure from another.

A figure is one number per scenario and run: where a verdict holds one value per fault
and client, the worst of them (the slowest failover, the largest RPO), as the report's
headline shows it. A value a verdict does not hold (no fault, never failed over, not
converged) is absent, not zero; a value of another type than a number is a `FieldError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.checkers.availability import NAME as AVAILABILITY
from harness.checkers.convergence import NAME as CONVERGENCE
from harness.checkers.durability import NAME as DURABILITY
from harness.checkers.failover import NAME as FAILOVER


class FieldError(ValueError):
    """A field of a verdict holds something a figure cannot be read from."""

    def __init__(self, path: str, expected: str, got: Any) -> None:
        super().__init__(f"field {path}: expected {expected}, got {_shown(got)}")
        self.path = path


def _shown(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:39] + "…"


def number(node: Any, path: str) -> float | None:
    """A figure's value: a number, or None when the verdict holds none."""
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise FieldError(path, "a number", node)
    return float(node)


def mapping(node: Any, path: str) -> dict[str, Any]:
    """An object of the figures (absent: empty)."""
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise FieldError(path, "an object", node)
    return node


def _largest(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _per_client(key: str) -> Callable[[dict[str, Any], str], float | None]:
    """The largest `key` over the failover verdict's faults and their clients."""

    def read(figures: dict[str, Any], path: str) -> float | None:
        values = []
        for fault, w in figures.items():
            if not isinstance(w, dict) or "clients" not in w:
                continue  # the baseline's numbers, the expectation
            clients = mapping(w["clients"], f"{path}.{fault}.clients")
            for client, c in clients.items():
                where = f"{path}.{fault}.clients.{client}"
                values.append(number(mapping(c, where).get(key), f"{where}.{key}"))
        return _largest(values)

    return read


def _ok_share(figures: dict[str, Any], path: str) -> float | None:
    union = mapping(figures.get("union"), f"{path}.union")
    return number(union.get("ok_share"), f"{path}.union.ok_share")


def _convergence(figures: dict[str, Any], path: str) -> float | None:
    return number(figures.get("convergence_s"), f"{path}.convergence_s")


def _rpo(figures: dict[str, Any], path: str) -> float | None:
    crashes = mapping(figures.get("crash_faults"), f"{path}.crash_faults")
    return _largest(
        [
            number(
                mapping(c, f"{path}.crash_faults.{f}").get("rpo_s"),
                f"{path}.crash_faults.{f}.rpo_s",
            )
            for f, c in crashes.items()
        ]
    )


@dataclass(frozen=True)
class Figure:
    """One followed figure. `larger_is_worse` is the direction of a regression: the
    only place it is said."""

    name: str
    checker: str
    what: str
    unit: str  # "s" or "share"
    larger_is_worse: bool
    noise: float  # a change this small (in the figure's unit) never counts as drift
    read: Callable[[dict[str, Any], str], float | None]

    def worsening(self, baseline: float, value: float) -> float:
        """How much worse `value` is than `baseline`, in the figure's unit (negative:
        better)."""
        return value - baseline if self.larger_is_worse else baseline - value

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.1%}" if self.unit == "share" else f"{value:.3f} s"

    def format_delta(self, delta: float) -> str:
        """A difference of two values: seconds, or percentage points of a share."""
        return f"{delta * 100:.1f} points" if self.unit == "share" else f"{delta:.3f} s"

    def value_of(self, verdict: dict[str, Any], path: str) -> float | None:
        """This figure from a verdict (`Verdict.to_dict()`) found at `path`."""
        return self.read(mapping(verdict.get("figures"), f"{path}.figures"), f"{path}.figures")


SECONDS_NOISE = 0.1  # at time scale 0.05 a loaded 2-core machine moves a failover ~0.1 s
SHARE_NOISE = 0.02

FIGURES: tuple[Figure, ...] = (
    Figure(
        "failover_s",
        FAILOVER,
        "the slowest client's failover: its first failed request on the faulted replica "
        "→ served by another",
        "s",
        True,
        SECONDS_NOISE,
        _per_client("failover_s"),
    ),
    Figure(
        "detect_s",
        FAILOVER,
        "the slowest client's detection: fault → its first operation served elsewhere",
        "s",
        True,
        SECONDS_NOISE,
        _per_client("detect_s"),
    ),
    Figure(
        "ok_share",
        AVAILABILITY,
        "availability: the share of operations that succeeded during the fault windows",
        "share",
        False,
        SHARE_NOISE,
        _ok_share,
    ),
    Figure(
        "convergence_s",
        CONVERGENCE,
        "convergence: the last heal (or first audit) → every replica holds the same keys",
        "s",
        True,
        SECONDS_NOISE,
        _convergence,
    ),
    Figure(
        "rpo_s",
        DURABILITY,
        "RPO: the largest span of acknowledged keys a crash took away",
        "s",
        True,
        SECONDS_NOISE,
        _rpo,
    ),
)


def figure(name: str) -> Figure:
    return next(f for f in FIGURES if f.name == name)


__all__ = [
    "FIGURES",
    "SECONDS_NOISE",
    "SHARE_NOISE",
    "FieldError",
    "Figure",
    "figure",
    "mapping",
    "number",
]
