"""Fault effect: was every fault's effect seen, independently of the mechanism that
applied it?

Each fault probes its own effect right after injection (`Fault.observe`: a connect
through a cut link is refused, a handshake through a blackholed one gets no answer, the
stalled replica's processes are in state T, ...) and records what it saw as an
`Observation`. This checker pairs every fault window with its observation:

- `fail` when a fault's observation says its effect was not there: the fault did not
  happen, so every other verdict about it means nothing ("blackhole on kms-a had no
  effect: a TLS handshake through vc-a->kms-a answered in 4 ms");
- `unknown` when a fault has no observation, or its probe could not tell;
- `pass` when every fault's effect was seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.verdict import (
    FaultWindow,
    Status,
    Verdict,
    as_events,
    capped,
    fault_windows,
    rounded,
    worst,
)
from harness.history import Event, History, Observation

NAME = "fault_effect"


def check_fault_effect(events: History | Iterable[Event]) -> Verdict:
    """Judge every fault window by the last observation of its fault."""
    evs = as_events(events)
    windows = fault_windows(evs)
    seen: dict[str, Observation] = {}
    for e in evs:
        if isinstance(e, Observation):
            seen[e.fault_id] = e  # the last one counts
    figures: dict[str, Any] = {"faults": {}, "seen": 0, "no_effect": 0, "unobserved": 0}
    if not windows:
        return Verdict(NAME, "unknown", "no fault in the history: no effect to prove", figures)

    judged: list[tuple[Status, str, str]] = []  # status, fault id, the line
    for w in windows:
        obs = seen.get(w.fault_id)
        status, line = _judge(w, obs)
        judged.append((status, w.fault_id, line))
        figures["faults"][w.fault_id] = {
            "kind": w.kind,
            "target": w.target,
            "status": status,
            "effect": None if obs is None else obs.effect,
            "detail": "" if obs is None else obs.detail,
            "observed_after_s": None if obs is None else rounded(obs.t - w.start),
        }
    failed = [line for status, _, line in judged if status == "fail"]
    unknown = [line for status, _, line in judged if status == "unknown"]
    figures["seen"] = len(judged) - len(failed) - len(unknown)
    figures["no_effect"] = len(failed)
    figures["unobserved"] = len(unknown)

    if failed:
        summary = failed[0] + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
    elif unknown:
        summary = unknown[0] + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
    elif len(judged) == 1:
        summary = judged[0][2]
    else:
        summary = f"the effect of all {len(judged)} faults was seen"
    rank = {"fail": 0, "unknown": 1, "pass": 2}
    details = [f"{fid}: {line}" for _, fid, line in sorted(judged, key=lambda j: rank[j[0]])]
    status = worst(s for s, _, _ in judged)
    return Verdict(NAME, status, summary, figures, capped(details))


def _judge(w: FaultWindow, obs: Observation | None) -> tuple[Status, str]:
    head = f"{w.kind} on {w.target}"
    if obs is None:
        return "unknown", f"{head}: its effect was never observed"
    if obs.effect is False:
        return "fail", f"{head} had no effect: {obs.detail}"
    if obs.effect is None:
        return "unknown", f"{head}: could not tell whether it had an effect: {obs.detail}"
    return "pass", f"{head} seen: {obs.detail}"


class FaultEffectChecker(Checker):
    name = NAME
    position = 5
    what = (
        "Fault effect: every fault proved its effect by a probe of its own, independent of "
        "the mechanism that applied it (a connect through a cut link refused, a handshake "
        "through a blackholed one unanswered, a stalled replica's processes stopped, ...)."
    )
    failure_means = (
        "A failure means a fault was injected but its effect was not there: the harness did "
        "not do what it says, and every other verdict about that fault means nothing."
    )
    judges_operations = False

    def check(self, ctx: CheckContext) -> Verdict:
        return check_fault_effect(ctx.events)

    def headline(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        if not isinstance(f, dict) or not f.get("faults"):
            return ""
        n = len(f["faults"])
        if f.get("no_effect"):
            return f"{f['no_effect']} of {n} faults without effect"
        return f"{f.get('seen', 0)} of {n} faults seen"

    def brief(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        if not isinstance(f, dict) or not f.get("faults"):
            return ""
        return f" {f.get('seen', 0)}/{len(f['faults'])}"
