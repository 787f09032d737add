"""Load-balancer ejection: when a replica behind a balancer breaks, how long the balancer
kept sending clients to it, what those operations got, and how long it took to put the
replica back after the heal — from HAProxy's own account (`BalancerEvent`s read from its
stats socket), cross-checked with the operations.

For each fault window and each balancer in front of an affected replica:

- **ejected**: the first time HAProxy reported the replica out of rotation (DOWN) after
  the fault began. Its bound derives from the balancer's check settings: the fault may
  arrive while a check is still passing (it ends within its timeout), and HAProxy
  schedules the next check one interval after the last one ended, a check of a silent
  server ending at its timeout; so `fall` failed checks end at most
  ``check timeout + fall × (interval + check timeout)`` after the fault, plus the
  watch's poll period. It cannot be sooner than ``(fall − 1) × interval`` after the
  harness began applying the fault: fall failures take that long at least; sooner means
  the replica was out for another reason. Checks HAProxy had already counted as failed
  when the fault began (its state ``UP x/y`` read before it: y − x of them, e.g. a KMIP
  check timing out on a loaded machine) leave fewer to fail, and the verdict names them.
- **routed meanwhile**: the attempts through the balancer that began between the fault
  and the ejection, and how many failed — the clients' price of the check's delay.
- **cross-check**: once HAProxy says the replica is out, a new connection through the
  balancer no longer reaches it: an attempt on a new connection that begins a poll
  period after the ejection and fails says the account is wrong (or another replica
  broke too).
- **never ejected**: fine when every attempt through the balancer succeeded (the check
  and the clients agree: nothing to eject); a finding when attempts failed — a check
  blind to this fault (a `tcp` check and a frozen replica) keeps clients going to it.
- **back**: the first time the replica is fully UP again after the heal; bounded by a
  check in flight (its timeout) plus ``rise × (interval + check timeout)`` plus the poll
  period, for a fault on the replica's links. A fault on its process is reported, not
  bounded: the replica's own recovery comes first (a crashed one starts again; a frozen
  one's listen backlog (5 in PyKMIP) overflowed, so connections made during the freeze
  wait for a SYN retransmission — measured: checks passed again 1.6–1.9 s after SIGCONT
  with checks every 0.2 s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.verdict import (
    FaultWindow,
    Status,
    Verdict,
    as_events,
    capped,
    completes,
    fault_windows,
    rounded,
    worst,
)
from harness.faults import FAULTS
from harness.faults.base import PROCESS_CAPS
from harness.history import Attempt, BalancerEvent, Event, History
from harness.lb.haproxy import check_timing
from harness.lb.watch import poll_period
from harness.topology import Topology
from harness.topology.model import BalancerSpec

NAME = "lb_ejection"
SLACK_S = 0.05  # scheduling on a loaded 2-core machine: a check or a poll that runs late


def eject_bounds(
    spec: BalancerSpec, topology: Topology, failed_before: int = 0
) -> tuple[float, float]:
    """(earliest, latest) seconds from a fault to the balancer's ejecting the replica;
    `failed_before`: checks HAProxy had counted as failed already when the fault began,
    which leave fewer to fail."""
    interval, timeout = check_timing(spec, topology.time_scale)
    latest = timeout + spec.fall * (interval + timeout) + poll_period(topology) + SLACK_S
    to_fail = max(1, spec.fall - failed_before)
    return max(0.0, (to_fail - 1) * interval - SLACK_S), latest


def failed_before(states: list[BalancerEvent], t: float) -> tuple[int, BalancerEvent | None]:
    """How many failed checks HAProxy had counted at `t` (its last state read before:
    ``UP x/y``, going down, has y − x), and that state."""
    last = next((e for e in reversed(states) if e.t <= t), None)
    m = re.fullmatch(r"UP (\d+)/(\d+)", last.status) if last is not None else None
    if m is None:
        return 0, last
    return int(m[2]) - int(m[1]), last


def back_bound(spec: BalancerSpec, topology: Topology) -> float:
    """Latest seconds from an immediate heal to the replica fully back in rotation."""
    interval, timeout = check_timing(spec, topology.time_scale)
    return timeout + spec.rise * (interval + timeout) + poll_period(topology) + SLACK_S


def _through(attempts: Iterable[Attempt], lb: str, t0: float, t1: float) -> list[Attempt]:
    return [a for a in attempts if a.server == lb and t0 <= a.start < t1]


def judge(
    w: FaultWindow,
    lb: BalancerSpec,
    replica: str,
    states: list[BalancerEvent],
    attempts: list[Attempt],
    topology: Topology,
) -> tuple[Status, dict[str, Any], list[str]]:
    """One (fault, balancer, replica): its status, figures and evidence lines, from the
    history's balancer states (in time order) and every client attempt."""
    mine = [e for e in states if (e.balancer, e.server) == (lb.name, replica)]
    # a check that failed for another reason just before (a KMIP check timing out on a
    # loaded machine, seen in a CI run) counts towards `fall`: fewer are left to fail
    already, state = failed_before(mine, w.began)
    earliest, latest = eject_bounds(lb, topology, already)
    label = f"{w.kind} {w.target}: {lb.name} → {replica}"
    fig: dict[str, Any] = {
        "balancer": lb.name,
        "replica": replica,
        "check": lb.check,
        "bound_s": rounded(latest),
    }
    if not mine:
        return (
            "unknown",
            {**fig, "note": "no account of the balancer was recorded"},
            [f"{label}: no state of {replica} read from {lb.name}'s stats (was it watched?)"],
        )
    down = next((e for e in mine if e.t >= w.began and not e.in_rotation), None)
    lines: list[str] = []
    if down is not None and down.t > w.end:
        down = None  # out only after the heal: not this fault's doing
    end = down.t if down is not None else w.end
    routed = _through(attempts, lb.name, w.start, end)
    failed = [a for a in routed if a.outcome != "ok"]
    fig |= {"routed_attempts": len(routed), "failed_attempts": len(failed)}
    if down is None:
        if w.healed and w.end - w.start < latest:
            fig["ejected"] = None
            return (
                "unknown",
                fig,
                [
                    f"{label}: the fault lasted {w.end - w.start:.2f} s, less than {lb.name} may "
                    f"take to eject it ({latest:.2f} s): too short to judge its check; "
                    f"{len(failed)} of {len(routed)} attempts through {lb.name} failed meanwhile"
                ],
            )
        if not failed:
            fig["ejected"] = False
            return (
                "pass",
                fig,
                [
                    f"{label}: not taken out of rotation, and all {len(routed)} attempts through "
                    f"{lb.name} during the fault succeeded: nothing to eject"
                ],
            )
        fig["ejected"] = False
        return (
            "fail",
            fig,
            [
                f"{label}: {lb.name} never took {replica} out of rotation during the fault "
                f"({w.end - w.start:.2f} s, {lb.check} check); {len(failed)} of {len(routed)} "
                f"attempts through {lb.name} failed meanwhile "
                f"({', '.join(sorted({a.outcome for a in failed}))})"
            ],
        )
    detect = down.t - w.start
    # two clocks, each bound on its own: no sooner than `earliest` after the harness began
    # applying the fault (a link may go the moment it starts), no later than `latest`
    # after the fault was whole (its window's start)
    since_began = down.t - w.began
    fig |= {
        "ejected": True,
        "detect_s": rounded(detect),
        "detect_since_began_s": rounded(since_began),
        "earliest_s": rounded(earliest),
        "failed_checks_before": already,
    }
    before = (
        f"; {already} check(s) had failed before the fault ({state.check}: {state.detail})"
        if already and state is not None
        else ""
    )
    status: Status = "pass"
    said = (
        f"{lb.name} took {replica} out {detect:.3f} s after the fault ({down.check}: {down.detail})"
    )
    if detect > latest:
        status = "fail"
        lines.append(
            f"{label}: {said}: later than check timeout + fall × (interval + check timeout) "
            f"= {latest:.3f} s"
        )
    elif since_began < earliest:
        status = "fail"
        lines.append(
            f"{label}: {said}: sooner than (fall − 1 − checks failed before) × interval "
            f"= {earliest:.3f} s allows{before}: out for another reason?"
        )
    else:
        lines.append(
            f"{label}: {said} (bound {latest:.3f} s); {len(failed)} of {len(routed)} "
            f"attempts failed meanwhile{before}"
        )
    late = [
        a
        for a in _through(attempts, lb.name, down.t + poll_period(topology) + SLACK_S, w.end)
        if a.outcome != "ok" and not a.reused
    ]
    fig["failed_after_ejection"] = len(late)
    if late:
        status = "fail"
        lines.append(
            f"{label}: HAProxy reported {replica} out at t={down.t:.3f}, but {len(late)} new "
            f"connection(s) through {lb.name} failed after it (first {late[0].outcome} at "
            f"t={late[0].start:.3f}): its account and the clients disagree"
        )
    if w.healed:
        back = next((e for e in mine if e.t >= w.end and e.status == "UP"), None)
        if back is None:
            lines.append(f"{label}: {replica} not back in rotation by the end of the history")
            fig["back_s"] = None
        else:
            fig["back_s"] = rounded(back.t - w.end)
            cls = FAULTS.get(w.kind)
            bound = back_bound(lb, topology)
            if cls is not None and not cls.requires & PROCESS_CAPS:
                fig["back_bound_s"] = rounded(bound)
                if back.t - w.end > bound:
                    status = "fail"
                    lines.append(
                        f"{label}: back {back.t - w.end:.3f} s after the heal: later than "
                        f"check timeout + rise × (interval + check timeout) = {bound:.3f} s"
                    )
    return status, fig, lines


def check_lb_ejection(events: History | Iterable[Event], topology: Topology) -> Verdict:
    evs = as_events(events)
    if not topology.load_balancers:
        return Verdict(NAME, "unknown", "no load balancer in this topology")
    statuses: list[Status] = []
    figures: dict[str, Any] = {}
    lines: list[str] = []
    failing: list[str] = []
    states = sorted((e for e in evs if isinstance(e, BalancerEvent)), key=lambda e: e.t)
    attempts = [a for c in completes(evs) for a in c.attempts]
    for w in fault_windows(evs):
        for replica in w.replicas:
            for lb_name in topology.balancers_of(replica):
                lb = topology.load_balancers[lb_name]
                status, fig, said = judge(w, lb, replica, states, attempts, topology)
                statuses.append(status)
                figures[f"{w.fault_id}/{lb_name}/{replica}"] = fig
                lines += said
                failing += said[:1] if status == "fail" else []
    if not statuses:
        return Verdict(NAME, "unknown", "no fault on a replica behind a load balancer")
    status = worst(statuses)
    summary = (failing or lines or [""])[0]
    return Verdict(
        NAME,
        status,
        summary,
        figures,
        capped(lines),
        bound="ejected within check timeout + fall × (interval + check timeout) + poll; no "
        "new connection fails through the balancer after it; back within rise checks after "
        "an immediate heal",
    )


class LbEjectionChecker(Checker):
    name = NAME
    position = 37
    what = (
        "How long each load balancer kept sending clients to a broken replica before its "
        "health check took it out of rotation (HAProxy's own account, cross-checked with "
        "the operations), and how long it took to put it back after the heal."
    )
    failure_means = (
        "A balancer kept clients going to a broken replica: never ejected while operations "
        "through it failed (a health check blind to this fault), ejected later than its "
        "check settings allow, or its account disagrees with what clients got."
    )

    def check(self, ctx: CheckContext) -> Verdict:
        return check_lb_ejection(ctx.events, ctx.topology)

    def brief(self, v: dict[str, Any]) -> str:
        figs = [f for f in (v.get("figures") or {}).values() if isinstance(f, dict)]
        times = [f["detect_s"] for f in figs if isinstance(f.get("detect_s"), int | float)]
        return f" {max(times):.2f}s" if times else ""
