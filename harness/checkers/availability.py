"""Availability: how many ops succeeded during faults, how long each client went without one.

Measured per fault window (inject → heal, or → end of history if never healed) and over
the union of all fault windows. A client's longest gap is the longest stretch inside a
window in which it saw no successful completion: from the window start (or an ok op's
end) to the next ok op's end (or the window end). A client that joined late or stopped
early is measured only while it had ops under way, so an idle client is not "down".
Recovery is the time from a heal to the earliest end of an ok op that started after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.checkers.base import Bound, CheckContext, Checker
from harness.checkers.verdict import (
    Verdict,
    as_events,
    capped,
    completes,
    fault_windows,
    history_span,
    rounded,
)
from harness.history import Complete, Event, History, Invoke

NAME = "availability"


def merge_intervals(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching intervals merged, in time order."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def longest_gap(ok_ends: Iterable[float], start: float, end: float) -> float:
    """Longest stretch of [start, end] not broken by an ok completion at one of `ok_ends`."""
    points = [start, *sorted(t for t in ok_ends if start <= t <= end), end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def client_activity(
    events: Sequence[Event], start: float, end: float
) -> dict[str, tuple[float, float]]:
    """Per client, the part of [start, end] it spent with ops under way.

    Clients with no op overlapping [start, end] are absent. An op invoked but never
    completed counts as running to the end of the history.
    """
    span = history_span(events)
    end_of_history = span[1] if span else end
    done = {e.op_id for e in events if isinstance(e, Complete)}
    busy: dict[str, tuple[float, float]] = {}
    for e in events:
        if isinstance(e, Complete):
            client, a, b = e.client, e.start, e.end
        elif isinstance(e, Invoke) and e.op_id not in done:
            client, a, b = e.client, e.t, end_of_history
        else:
            continue
        if a > end or b < start:
            continue
        lo, hi = busy.get(client, (a, b))
        busy[client] = (min(lo, a), max(hi, b))
    return {k: (max(lo, start), min(hi, end)) for k, (lo, hi) in busy.items()}


def window_figures(
    events: Sequence[Event],
    ops: Sequence[Complete],
    spans: Sequence[tuple[float, float]],
    member: Any,
) -> dict[str, Any]:
    """Ops, ok count, ok share and per-client longest gap over `spans` (merged intervals).

    `member(op)` says whether an op belongs to these spans (`FaultWindow.affects`).
    """
    in_spans = [c for c in ops if member(c)]
    ok = sum(1 for c in in_spans if c.outcome == "ok")
    cached = [c for c in in_spans if c.cached]
    needed = [c for c in in_spans if not c.cached]
    needed_ok = sum(1 for c in needed if c.outcome == "ok")
    gaps: dict[str, float] = {}
    for start, end in spans:
        for client, (lo, hi) in client_activity(events, start, end).items():
            ends = [c.end for c in ops if c.client == client and c.outcome == "ok"]
            gap = longest_gap(ends, lo, hi)
            gaps[client] = max(gaps.get(client, 0.0), gap)
    return {
        "ops": len(in_spans),
        "ok": ok,
        "ok_share": rounded(ok / len(in_spans)) if in_spans else None,
        "longest_gap_s": {k: rounded(v) for k, v in sorted(gaps.items())},
        # ops a client's key cache served without the KMS, and those that needed it
        "served_from_cache": len(cached),
        "needed_kms": {"ops": len(needed), "ok": needed_ok},
    }


def check_availability(
    events: History | Iterable[Event],
    *,
    min_ok_share: float = 1.0,
    max_gap_s: float | None = None,
) -> Verdict:
    """Check clients stayed available through the faults.

    Fails if the ok share over the union of fault windows is below `min_ok_share`, or if
    `max_gap_s` is set and any client's longest gap in a window exceeds it. With no
    faults, the steady-state ok share over the whole history is held to `min_ok_share`.
    Unknown if no op started in any fault window (or, without faults, no ops at all).
    """
    evs = as_events(events)
    ops = completes(evs)
    windows = fault_windows(evs)
    span = history_span(evs)
    origin = span[0] if span else 0.0
    bound = f"ok share ≥ {min_ok_share:.3f}" + (
        f", longest gap per client ≤ {max_gap_s:.3f} s" if max_gap_s is not None else ""
    )

    if not windows:
        ok = sum(1 for c in ops if c.outcome == "ok")
        share = ok / len(ops) if ops else None
        figures: dict[str, Any] = {
            "faults": 0,
            "steady": {"ops": len(ops), "ok": ok, "ok_share": rounded(share)},
        }
        if share is None:
            return Verdict(NAME, "unknown", "no faults and no ops", figures, [], bound)
        line = f"no faults; steady state {ok}/{len(ops)} ops ok ({share:.1%})"
        if share < min_ok_share:
            return Verdict(NAME, "fail", f"{line} < {min_ok_share:.1%}", figures, [], bound)
        return Verdict(NAME, "pass", line, figures, [], bound)

    faults: dict[str, Any] = {}
    evidence: list[str] = []
    gap_breaches: list[str] = []
    for w in windows:
        fig = {
            "kind": w.kind,
            "target": w.target,
            "replicas": list(w.replicas),
            "start_s": rounded(w.start - origin),
            "end_s": rounded(w.end - origin),
            "healed": w.healed,
            **window_figures(evs, ops, [(w.start, w.end)], lambda c, w=w: w.affects(c)),
        }
        recovery: float | None = None
        if w.healed:
            after = [c.end for c in ops if c.outcome == "ok" and c.start >= w.end]
            recovery = min(after) - w.end if after else None
        fig["recovery_s"] = rounded(recovery)
        faults[w.fault_id] = fig
        share_text = f"{fig['ok_share']:.1%}" if fig["ok_share"] is not None else "n/a"
        evidence.append(
            f"{w.fault_id} {w.label}: {fig['ok']}/{fig['ops']} ok ({share_text}), "
            f"longest gap {_gap_text(fig['longest_gap_s'])}, "
            + (f"recovery {recovery:.3f} s" if recovery is not None else "no recovery measured")
        )
        if max_gap_s is not None:
            for client, gap in fig["longest_gap_s"].items():
                if gap > max_gap_s:
                    gap_breaches.append(
                        f"{client} went {gap:.3f} s without an ok op during {w.fault_id} "
                        f"{w.label} (max {max_gap_s:.3f} s)"
                    )

    spans = merge_intervals((w.start, w.end) for w in windows)
    union = window_figures(evs, ops, spans, lambda c: any(w.affects(c) for w in windows))
    union["windows"] = len(spans)
    union["duration_s"] = rounded(sum(b - a for a, b in spans))
    figures = {"faults": faults, "union": union}

    share = union["ok"] / union["ops"] if union["ops"] else None
    if share is None:
        return Verdict(
            NAME, "unknown", "no op started in any fault window", figures, capped(evidence), bound
        )
    line = f"{union['ok']}/{union['ops']} ops ok during faults ({share:.1%})"
    if union["served_from_cache"]:
        kms = union["needed_kms"]
        line += (
            f" — {union['served_from_cache']} served from a key cache, {kms['ok']}/"
            f"{kms['ops']} that needed the KMS ok"
        )
    problems = []
    if share < min_ok_share:
        problems.append(f"{line} < {min_ok_share:.1%}")
    problems.extend(gap_breaches)
    if problems:
        summary = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        return Verdict(NAME, "fail", summary, figures, capped(problems + evidence), bound)
    gaps = union["longest_gap_s"]
    summary = f"{line}; longest gap {_gap_text(gaps)}"
    return Verdict(NAME, "pass", summary, figures, capped(evidence), bound)


def _gap_text(gaps: dict[str, float]) -> str:
    if not gaps:
        return "n/a"
    client = max(gaps, key=lambda k: gaps[k])
    return f"{gaps[client]:.3f} s ({client})"


def _share_part(v: dict[str, Any]) -> dict[str, Any]:
    f = v.get("figures") or {}
    part = (f.get("union") or f.get("steady") or {}) if isinstance(f, dict) else {}
    return part if isinstance(part, dict) else {}


class AvailabilityChecker(Checker):
    name = NAME
    position = 30
    what = (
        "Availability: during each fault window, the share of operations that succeeded "
        "and each client's longest stretch without a success."
    )
    failure_means = (
        "A failure means users saw errors while the fault lasted; when expected, it is a "
        "known outage (all replicas down, a client that does not fail over)."
    )
    expectations = (
        Bound("min", "share", "min_ok_share", "the least share of ok operations (default 1)"),
        Bound("max_gap", "duration", "max_gap_s", "the longest a client may go without a success"),
    )

    def check(self, ctx: CheckContext) -> Verdict:
        return check_availability(
            ctx.events,
            min_ok_share=ctx.bound("min_ok_share", 1.0),
            max_gap_s=ctx.bound("max_gap_s"),
        )

    def headline(self, v: dict[str, Any]) -> str:
        part = _share_part(v)
        share = part.get("ok_share")
        if not isinstance(share, int | float):
            return ""
        gaps = part.get("longest_gap_s") or {}
        gap = max((g for g in gaps.values() if isinstance(g, int | float)), default=None)
        return f"{share:.0%} ok" + (f", gap {gap:.3f} s" if gap is not None else "")

    def brief(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        share = f.get("union", {}).get("ok_share")
        if share is None:
            share = f.get("steady", {}).get("ok_share")
        return f" {share:.0%}" if share is not None else ""
