"""A history as the page reads it: where t = 0 is, which replicas appear, one readable
line per event, and the lines that prove a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.checkers import CHECKERS
from harness.checkers.verdict import attempt_trail
from harness.history import (
    BalancerEvent,
    ClientEvent,
    Complete,
    Event,
    FaultEvent,
    Note,
    Observation,
    Snapshot,
)

MAX_EVIDENCE = 20  # lines under a verdict's explanation


def timeline_origin(events: Sequence[Event]) -> float:
    """t = 0: the first operation (or fault), as the failover checker counts."""
    starts = [e.start for e in events if isinstance(e, Complete)]
    starts += [e.t for e in events if isinstance(e, FaultEvent) and e.phase == "inject"]
    if starts:
        return min(starts)
    times = [e.t for e in events if isinstance(e, Note | Snapshot)]
    return min(times) if times else 0.0


def replicas_seen(events: Sequence[Event]) -> list[str]:
    """Every replica an attempt reached or an audit read, by name."""
    seen: dict[str, None] = {}
    for e in events:
        if isinstance(e, Complete):
            for a in e.attempts:
                seen.setdefault(a.server, None)
            if e.served_by:
                seen.setdefault(e.served_by, None)
        elif isinstance(e, Snapshot):
            seen.setdefault(e.replica, None)
    return sorted(seen)


def event_line(e: Event, origin: float) -> str:
    """One history event, readable: time, kind, what."""
    if isinstance(e, Complete):
        served = e.served_by or "-"
        line = (
            f"t+{e.start - origin:8.3f}s complete {e.op_id} {e.op} {e.outcome} "
            f"served_by={served} {e.duration:.3f}s [{attempt_trail(e.attempts)}]"
        )
        if e.key:
            line += f" key={e.key}"
        return line + (f" error={e.error}" if e.error else "")
    if isinstance(e, FaultEvent):
        reps = e.params.get("replicas") if isinstance(e.params, dict) else None
        extra = f" replicas={','.join(map(str, reps))}" if reps else ""
        detail = f" ({e.detail})" if e.detail else ""
        return f"t+{e.t - origin:8.3f}s fault {e.phase} {e.kind} {e.target}{extra}{detail}"
    if isinstance(e, Snapshot):
        state = "ok" if e.ok else f"failed: {e.error}"
        return (
            f"t+{e.t - origin:8.3f}s audit round {e.round} {e.replica}: "
            f"{len(e.objects)} objects ({state})"
        )
    if isinstance(e, Note):
        return f"t+{e.t - origin:8.3f}s note {e.text}"
    if isinstance(e, Observation):
        seen = {True: "effect seen", False: "NO EFFECT", None: "effect unknown"}[e.effect]
        return f"t+{e.t - origin:8.3f}s observed {e.kind} {e.target}: {seen} ({e.detail})"
    if isinstance(e, ClientEvent):
        why = f" ({e.detail})" if e.detail else ""
        return f"t+{e.t - origin:8.3f}s client {e.action} {e.client}#{e.worker}{why}"
    if isinstance(e, BalancerEvent):
        check = f" ({e.check}: {e.detail})" if e.check else ""
        return f"t+{e.t - origin:8.3f}s balancer {e.balancer}: {e.server} {e.status}{check}"
    return f"t+{getattr(e, 't', origin) - origin:8.3f}s {type(e).__name__}"


def evidence_lines(v: dict[str, Any], events: Sequence[Event], origin: float) -> list[str]:
    """The verdict's own evidence lines, else the history lines that bear on it: the
    faults, and the audit snapshots for a checker that judges an audit, the troubled
    operations for any other."""
    details = [str(d) for d in (v.get("details") or [])]
    if details:
        return details[:MAX_EVIDENCE]
    checker = CHECKERS.get(str(v.get("name")))
    audited = checker is not None and checker.needs_audit
    picked: list[Event] = []
    for e in events:
        if isinstance(e, FaultEvent):
            picked.append(e)
        elif isinstance(e, Snapshot) and audited:
            picked.append(e)
        elif isinstance(e, Complete) and not audited:
            if e.outcome != "ok" or any(a.outcome != "ok" for a in e.attempts):
                picked.append(e)
    picked.sort(key=lambda e: e.start if isinstance(e, Complete) else getattr(e, "t", 0.0))
    lines = [event_line(e, origin) for e in picked]
    if len(lines) > MAX_EVIDENCE:
        lines = lines[: MAX_EVIDENCE - 1] + [f"… and {len(lines) - MAX_EVIDENCE + 1} more"]
    return lines or ["(no event in the history bears on it)"]


__all__ = ["event_line", "evidence_lines", "replicas_seen", "timeline_origin"]
