"""What a checker returns, how verdicts compose, and the reading of a history checkers share.

A checker is a pure function over a history that returns a `Verdict`. Verdicts compose
Jepsen-style: the worst one wins (`fail` > `unknown` > `pass`). A checker that crashes
must not take the run down: `guarded` turns its exception into an `unknown` verdict.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from harness.faults.base import IN_EFFECT_AT, INJECTING_FROM
from harness.history import (
    Attempt,
    BalancerEvent,
    ClientEvent,
    Complete,
    Event,
    FaultEvent,
    History,
    Invoke,
    Note,
    Observation,
    Snapshot,
)

Status = Literal["pass", "fail", "unknown"]

_RANK: dict[str, int] = {"pass": 0, "unknown": 1, "fail": 2}
MAX_DETAILS = 20


@dataclass
class Verdict:
    """The outcome of one checker.

    `figures` holds JSON-serialisable numbers (nested per fault or client is fine);
    `details` holds at most ~20 evidence lines naming the ops and attempts that prove it.
    """

    name: str
    status: Status
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    bound: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "figures": self.figures,
            "details": list(self.details),
            "bound": self.bound,
        }


def worst(verdicts: Iterable[Verdict | str]) -> Status:
    """The worst status among `verdicts` (fail > unknown > pass); `unknown` if there are none.

    Accepts verdicts or bare status strings.
    """
    result: Status | None = None
    for v in verdicts:
        status = v.status if isinstance(v, Verdict) else v
        if status not in _RANK:
            raise ValueError(f"unknown verdict status {status!r} (known: pass, unknown, fail)")
        if result is None or _RANK[status] > _RANK[result]:
            result = cast(Status, status)
    return result if result is not None else "unknown"


def guarded(name: str, fn: Callable[..., Verdict], *args: Any, **kw: Any) -> Verdict:
    """Run checker `fn(*args, **kw)`; if it raises, return an `unknown` verdict naming the error.

    Only `Exception` is caught: an interrupt still stops the run.
    """
    try:
        result = fn(*args, **kw)
    except Exception as exc:
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        lines = [ln.rstrip() for chunk in tb for ln in chunk.splitlines() if ln.strip()]
        return Verdict(
            name=name,
            status="unknown",
            summary=f"checker crashed: {exc!r}",
            figures={},
            details=lines[-MAX_DETAILS:],
        )
    if not isinstance(result, Verdict):
        return Verdict(
            name=name,
            status="unknown",
            summary=f"checker returned {type(result).__name__}, not a Verdict",
        )
    return result


# --- Shared reading of a history -------------------------------------------------------


def as_events(events: History | Iterable[Event]) -> list[Event]:
    """A plain list of events from a `History` or any iterable of events."""
    if isinstance(events, History):
        return events.events()
    return list(events)


def event_times(e: Event) -> tuple[float, float]:
    """The earliest and latest time an event covers."""
    if isinstance(e, Complete):
        return e.start, e.end
    if isinstance(
        e, Invoke | FaultEvent | Note | Snapshot | Observation | ClientEvent | BalancerEvent
    ):
        return e.t, e.t
    raise TypeError(f"not a history event: {e!r}")


def history_span(events: Sequence[Event]) -> tuple[float, float] | None:
    """(first, last) time in the history, or None if it is empty."""
    if not events:
        return None
    times = [event_times(e) for e in events]
    return min(t[0] for t in times), max(t[1] for t in times)


def completes(events: Sequence[Event]) -> list[Complete]:
    """Completions ordered by start time."""
    return sorted((e for e in events if isinstance(e, Complete)), key=lambda c: (c.start, c.end))


@dataclass
class FaultWindow:
    """One fault from its inject to its heal (or to the end of the history if never healed).

    An op belongs to the window if it started in [start, end); for an unhealed fault the
    end of the history is included.
    """

    fault_id: str
    kind: str
    target: str
    replicas: list[str]
    start: float
    end: float
    healed: bool
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def in_effect(self) -> float:
        """When every part of the fault's effect was in place: its start, or for a
        window that opened when injection began, when injection ended
        (``in_effect_at``). A client's failover is judged from then on."""
        t = self.params.get(IN_EFFECT_AT)
        return float(t) if isinstance(t, int | float) and t >= self.start else self.start

    @property
    def began(self) -> float:
        """When the harness began applying the fault (``injecting_from``; default its
        start): a client may meet it from then on, before the window opens."""
        t = self.params.get(INJECTING_FROM)
        return float(t) if isinstance(t, int | float) and t <= self.start else self.start

    def contains(self, t: float) -> bool:
        if self.healed:
            return self.start <= t < self.end
        return self.start <= t <= self.end

    def affects(self, op: Complete) -> bool:
        """Whether the window counts `op`: it started inside, or it was in flight when
        the fault hit and did not succeed (one that succeeded was served before)."""
        if self.contains(op.start):
            return True
        return op.start < self.start < op.end and op.outcome != "ok"

    @property
    def label(self) -> str:
        return f"{self.kind} on {', '.join(self.replicas)}"


def fault_windows(events: Sequence[Event]) -> list[FaultWindow]:
    """The fault windows of a history, in inject order.

    Affected replicas come from `params["replicas"]` if present, else `[target]`. A heal
    pairs with the inject of the same `fault_id`; a heal with no inject is ignored.
    """
    span = history_span(events)
    end_of_history = span[1] if span else 0.0
    injects = sorted(
        (e for e in events if isinstance(e, FaultEvent) and e.phase == "inject"),
        key=lambda e: e.t,
    )
    heals: dict[str, float] = {}
    for e in events:
        if isinstance(e, FaultEvent) and e.phase == "heal":
            heals.setdefault(e.fault_id, e.t)
    windows = []
    for inj in injects:
        raw = inj.params.get("replicas")
        replicas = [str(r) for r in raw] if isinstance(raw, list | tuple) and raw else [inj.target]
        heal_t = heals.get(inj.fault_id)
        healed = heal_t is not None and heal_t >= inj.t
        windows.append(
            FaultWindow(
                fault_id=inj.fault_id,
                kind=inj.kind,
                target=inj.target,
                replicas=replicas,
                start=inj.t,
                end=heal_t if healed and heal_t is not None else max(end_of_history, inj.t),
                healed=healed,
                params=dict(inj.params),
            )
        )
    return windows


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rounded(x: float | None, places: int = 6) -> float | None:
    """A figure rounded for reports (None stays None)."""
    return None if x is None else round(x, places)


def attempt_trail(attempts: Sequence[Attempt]) -> str:
    """Attempts as `kms-a refused 0.001s → kms-b ok 0.012s` (reused ones marked)."""
    if not attempts:
        return "(no attempts)"
    parts = []
    for a in attempts:
        reused = " (reused)" if a.reused else ""
        parts.append(f"{a.server}{reused} {a.outcome} {a.duration:.3f}s")
    return " → ".join(parts)


def capped(lines: list[str], limit: int = MAX_DETAILS) -> list[str]:
    """At most `limit` lines, the last saying how many were left out."""
    if len(lines) <= limit:
        return lines
    return lines[: limit - 1] + [f"… and {len(lines) - (limit - 1)} more"]
