"""Slowdown: a fault that slows clients down (latency, site-latency) did slow them down,
by what it declares, and did not make them fail over.

A fault declares the parameter whose milliseconds every response through an affected
link gains (`Fault.adds_delay`). For each such fault window, an operation is affected
when it ran inside the window (healing removes the delay under an operation in flight)
and was served through an affected link: by an affected
replica (`latency`), or across the groups (`site-latency`: the client's site on one
side, the serving replica on the other). Every affected operation waited for at least
one delayed response, so it took at least the delay (minus the jitter, minus clock
slack); one that was faster says the delay was not applied. A slowdown is not an outage:
while the delay is well below the clients' response timeout, a client that left an
affected replica after a failed attempt there fails the verdict too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.verdict import (
    FaultWindow,
    Status,
    Verdict,
    as_events,
    attempt_trail,
    capped,
    completes,
    fault_windows,
    rounded,
    worst,
)
from harness.faults import FAULTS
from harness.history import Event, History
from harness.topology import Topology

NAME = "slowdown"
CLOCK_SLACK_S = 0.005
# failing over is wrong only while a delayed operation (a few delayed round trips: TLS
# handshake, response) stays well inside the response timeout
TIMEOUT_MARGIN = 4


def delay_of(w: FaultWindow) -> float | None:
    """Seconds the fault adds to every response (its declared parameter), or None when it
    is not a slowing fault (or the kind is unknown)."""
    cls = FAULTS.get(w.kind)
    if cls is None or cls.adds_delay is None:
        return None
    value = w.params.get(cls.adds_delay)
    return float(value) / 1000 if isinstance(value, int | float) else None


def _group_of(groups: Sequence[Sequence[str]], replica: str | None) -> int | None:
    return next((i for i, g in enumerate(groups) if replica in g), None)


def slowed_links(w: FaultWindow, topology: Topology) -> Callable[[str, str | None], bool]:
    """A predicate: does this fault slow what `client` gets from `server`?"""
    groups = w.params.get("groups")
    if isinstance(groups, list) and groups:  # between groups: client side ≠ serving side

        def crosses(client: str, server: str | None) -> bool:
            spec = topology.clients.get(client)
            if spec is None:
                return False
            mine = {_group_of(groups, r) for r in topology.sites.get(spec.site, ())}
            mine.discard(None)
            served = _group_of(groups, server)
            return served is not None and bool(mine) and served not in mine

        return crosses
    slowed = set(w.replicas)
    return lambda client, server: server in slowed


def check_slowdown(events: History | Iterable[Event], topology: Topology) -> Verdict:
    """Judge every slowing fault of the history (see the module docstring)."""
    evs = as_events(events)
    ops = completes(evs)
    origin = min((c.start for c in ops), default=0.0)
    response_timeout = topology.response_timeout
    figures: dict[str, Any] = {}
    statuses: list[Status] = []
    problems: list[str] = []
    evidence: list[str] = []
    met: list[str] = []
    for w in fault_windows(evs):
        delay = delay_of(w)
        if delay is None:
            continue
        jitter = w.params.get("jitter")
        floor = delay - (float(jitter) / 1000 if isinstance(jitter, int | float) else 0.0)
        lower = max(0.0, floor - CLOCK_SLACK_S)
        slowed = slowed_links(w, topology)
        # started and ended in the window: heal removes the delay under one in flight
        in_window = [c for c in ops if w.contains(c.start) and c.end <= w.end and c.outcome == "ok"]
        mine = [c for c in in_window if slowed(c.client, c.served_by)]
        fast = [c for c in mine if c.duration < lower]
        left = []
        if delay * TIMEOUT_MARGIN < response_timeout:
            left = [
                c
                for c in in_window
                if not slowed(c.client, c.served_by)
                and any(a.outcome != "ok" and slowed(c.client, a.server) for a in c.attempts)
            ]
        fig: dict[str, Any] = {
            "kind": w.kind,
            "target": w.target,
            "delay_s": rounded(delay),
            "lower_s": rounded(lower),
            "affected_ops": len(mine),
            "too_fast": len(fast),
            "failed_over": len(left),
        }
        if mine:
            fig["fastest_s"] = rounded(min(c.duration for c in mine))
        figures[w.fault_id] = fig
        label = f"{w.kind} {w.target} (+{delay * 1000:g} ms)"
        if fast:
            first = min(fast, key=lambda c: c.duration)
            problems.append(
                f"{label}: {len(fast)} of {len(mine)} affected operations took less than "
                f"{lower:.3f} s (fastest {first.duration:.3f} s): the delay was not applied?"
            )
            evidence += [
                f"  {c.op_id} t+{c.start - origin:.3f}s {c.duration:.3f}s by {c.served_by}"
                for c in fast[:5]
            ]
            statuses.append("fail")
        if left:
            problems.append(
                f"{label}: {len(left)} operation(s) failed over under a mere slowdown "
                f"({delay:.3f} s against a {response_timeout:.3f} s response timeout)"
            )
            evidence += [
                f"  {c.op_id} t+{c.start - origin:.3f}s: {attempt_trail(c.attempts)}"
                for c in left[:5]
            ]
            statuses.append("fail")
        if not mine:
            statuses.append("unknown")
            fig["note"] = "no operation was served through an affected link"
        elif not fast and not left:
            statuses.append("pass")
            met.append(
                f"{label}: all {len(mine)} affected operations took at least {lower:.3f} s "
                f"(fastest {fig['fastest_s']:.3f} s), none failed over"
            )
    if not statuses:
        return Verdict(NAME, "unknown", "no slowing fault (latency, site-latency) here", figures)
    status = worst(statuses)
    if problems:
        summary = problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    elif met:
        summary = met[0] + (f" (and {len(met) - 1} more)" if len(met) > 1 else "")
    else:
        summary = "no operation was served through a slowed link: nothing to judge"
    return Verdict(
        NAME,
        status,
        summary,
        figures,
        capped(problems + evidence + met),
        bound=f"each affected operation ≥ delay − jitter − {CLOCK_SLACK_S} s; no failover "
        f"while the delay × {TIMEOUT_MARGIN} < the response timeout",
    )


class SlowdownChecker(Checker):
    name = NAME
    position = 35
    what = (
        "Slowdown: a fault that adds latency slowed every operation served through an "
        "affected link by at least that much, and no client failed over because of it."
    )
    failure_means = (
        "A failure means an operation through a slowed link was faster than the delay (the "
        "fault was not in effect), or a client left a replica that was merely slow."
    )

    def check(self, ctx: CheckContext) -> Verdict:
        return check_slowdown(ctx.events, ctx.topology)

    def headline(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        fastest = [w["fastest_s"] for w in f.values() if isinstance(w, dict) and "fastest_s" in w]
        return f"fastest affected {min(fastest):.3f} s" if fastest else ""
