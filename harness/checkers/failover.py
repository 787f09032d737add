"""Failover time: did each client move off a faulted replica, and as fast as its policy says?

For each fault and each client with ops in the fault window, the failover op is the FIRST
op in the window that ended `ok` on an unaffected replica after at least one failed
attempt on an affected one. Its duration is what a user's request paid to fail over.

The bound is two-sided. Timeouts never fire early, so a blackhole that "failed over" in
10 ms means the fault was not applied; a failover much slower than the policy's timeout
means the client waited on something it should not have.

An attempt answered by a server whose certificate names another replica makes it
`unknown`: a failover "to kms-b" that reached kms-a proves nothing (`checkers.identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.checkers.base import Bound, CheckContext, Checker
from harness.checkers.failover_bounds import (
    BASELINE_P99_FACTOR,
    CLOCK_SLACK_S,
    CLOCK_SLACK_SHARE,
    UPPER_SLACK_SHARE,
    attempt_cost,
    expected_wait,
    unnoticed,
    wait_bounds,
)
from harness.checkers.identity import attempt_contradictions, distrust, identity_headline
from harness.checkers.verdict import (
    FaultWindow,
    Status,
    Verdict,
    as_events,
    attempt_trail,
    capped,
    completes,
    fault_windows,
    percentile,
    rounded,
    worst,
)
from harness.client.policies import POLICIES, WAITS
from harness.client.policy_spec import PolicySpec
from harness.faults import FAULTS
from harness.history import ADMIN_CLIENT, Complete, Event, History

NAME = "failover"

ClientStatus = Literal["pass", "fail", "unknown", "not-exercised", "not-applicable"]


@dataclass
class ClientResult:
    client: str
    status: ClientStatus
    figures: dict[str, Any]
    message: str
    evidence: list[str]
    failover_s: float | None = None
    kind: str = ""


def check_failover(
    events: History | Iterable[Event],
    *,
    response_timeout: float,
    connect_timeout: float,
    min_upper_slack: float = 0.25,
    orders: dict[str, list[str]] | None = None,
    replicas: Sequence[str] | None = None,
    external: Sequence[str] = (),
    behind: dict[str, tuple[str, ...]] | None = None,
    policies: dict[str, PolicySpec] | None = None,
    client_timeouts: dict[str, tuple[float | None, float | None]] | None = None,
) -> Verdict:
    """Check every client failed over from every faulted replica within its policy's bound.

    `policies` (client → its policy) and `client_timeouts` (client → its (connect,
    response) timeouts, None for none of its own) come from the topology; without them a
    client's policy is the preset its operations name, with the given timeouts.

    `response_timeout` and `connect_timeout` are the scaled client timeouts. With `orders`
    (client → replica order), a client whose every replica is affected is "not-applicable"
    instead of failing for never reaching another replica.

    Fails if any client failed over outside [lower, upper] or never reached an unaffected
    replica after trying an affected one; unknown if no failover was exercised at all, or
    if an attempt was answered by a server whose identity contradicts it (`replicas`:
    the topology's, default every server the attempts name; `external`: those kmschaos
    did not start).
    """
    evs = as_events(events)
    verdict = _check_failover(
        evs,
        response_timeout,
        connect_timeout,
        min_upper_slack,
        orders,
        policies or {},
        client_timeouts or {},
    )
    problems = attempt_contradictions(evs, replicas=replicas, external=external, behind=behind)
    return distrust(verdict, problems, "attempts")


def _check_failover(
    evs: list[Event],
    response_timeout: float,
    connect_timeout: float,
    min_upper_slack: float,
    orders: dict[str, list[str]] | None,
    policies: dict[str, PolicySpec],
    client_timeouts: dict[str, tuple[float | None, float | None]],
) -> Verdict:
    ops = [c for c in completes(evs) if c.client != ADMIN_CLIENT]  # not a client
    windows = fault_windows(evs)
    origin = min((c.start for c in ops), default=0.0)
    if windows:
        origin = min(origin, windows[0].start)

    first_inject = windows[0].start if windows else None
    baseline = [
        c.duration
        for c in ops
        if c.outcome == "ok" and (first_inject is None or c.end < first_inject)
    ]
    p50 = percentile(baseline, 50) if baseline else 0.0
    p99 = percentile(baseline, 99) if baseline else 0.0

    timeouts = {"response_timeout": response_timeout, "connect_timeout": connect_timeout}
    figures: dict[str, Any] = {
        "baseline_p50_s": rounded(p50),
        "baseline_p99_s": rounded(p99),
        "baseline_ops": len(baseline),
    }
    results: list[ClientResult] = []
    notes: list[str] = []
    if not baseline:
        notes.append("no baseline: no ok op ended before the first fault; p99 taken as 0")

    for w in windows:
        fig: dict[str, Any] = {
            "kind": w.kind,
            "target": w.target,
            "replicas": list(w.replicas),
            "start_s": rounded(w.start - origin),
            "end_s": rounded(w.end - origin),
            "healed": w.healed,
        }
        figures[w.fault_id] = fig
        if expected_wait(w.kind) is None:
            fig["applicable"] = False
            fig["note"] = (
                f"no failover expected under {w.kind}"
                if w.kind in FAULTS
                else f"unknown fault kind {w.kind!r}: no failover expectation"
            )
            continue
        fig["applicable"] = True
        in_window: dict[str, list[Complete]] = {}
        for c in ops:  # judged from when the whole effect is in place
            if w.contains(c.start) and c.start >= w.in_effect:
                in_window.setdefault(c.client, []).append(c)
        fig["clients"] = {}
        if not in_window:
            fig["note"] = "no ops started in the fault window"
        for client, client_ops in sorted(in_window.items()):
            r = _judge_client(
                w,
                client,
                client_ops,
                # not judged, but may be served elsewhere first (detect): in flight
                # when the fault began, or started before its whole effect was in place
                in_flight=[
                    c
                    for c in ops
                    if c.client == client and c.start < w.in_effect and c.end >= w.began
                ],
                timeouts=_client_timeouts(client, client_timeouts, timeouts),
                policy=policies.get(client),
                baseline_p99=p99,
                min_upper_slack=min_upper_slack,
                order=None if orders is None else orders.get(client),
                origin=origin,
                windows=windows,
            )
            fig["clients"][client] = r.figures
            results.append(r)

    judged = [r for r in results if r.status in ("pass", "fail", "unknown")]
    status: Status = worst(r.status for r in judged)

    failures = [r for r in judged if r.status == "fail"]
    if failures:
        summary = failures[0].message
        if len(failures) > 1:
            summary += f" (and {len(failures) - 1} more failures)"
    elif not judged and results and all(r.figures.get("blind") for r in results):
        status = "pass"
        summary = results[0].message
    elif not judged:
        applicable = [w for w in windows if expected_wait(w.kind) is not None]
        if not windows:
            summary = "no failover exercised: the history has no faults"
        elif not applicable:
            summary = "no failover exercised: no fault kind here expects one"
        else:
            summary = "no failover exercised: no client tried an affected replica during a fault"
    elif len(judged) == 1:
        summary = judged[0].message
    else:
        passed = [r for r in judged if r.status == "pass"]
        slowest = max(passed, key=lambda r: r.failover_s or 0.0, default=None)
        n_faults = len({r.figures.get("fault_id") for r in judged})
        summary = (
            f"{len(passed)} failovers within bounds across {n_faults} "
            f"fault{'s' if n_faults != 1 else ''}"
        )
        if len(passed) < len(judged):
            summary += f", {len(judged) - len(passed)} could not be judged"
        if slowest is not None:
            summary += f"; slowest: {slowest.message}"

    ranked = sorted(results, key=lambda r: {"fail": 0, "unknown": 1, "pass": 2}.get(r.status, 3))
    details = [line for r in ranked for line in r.evidence]
    return Verdict(
        name=NAME,
        status=status,
        summary=summary,
        figures=figures,
        details=capped(notes + details),
        bound=_bound_text(
            response_timeout, connect_timeout, min_upper_slack, p99, policies, client_timeouts
        ),
    )


def _bound_text(
    response_timeout: float,
    connect_timeout: float,
    min_upper_slack: float,
    p99: float,
    policies: dict[str, PolicySpec],
    client_timeouts: dict[str, tuple[float | None, float | None]],
) -> str:
    """The bound in words, from the faults' declarations and the clients' policies (every
    preset at the given timeouts when the clients' are not known)."""
    default = {"connect_timeout": connect_timeout, "response_timeout": response_timeout}
    judged: dict[str, tuple[PolicySpec, dict[str, float | None]]] = {}
    for client, spec in policies.items():
        judged.setdefault(spec.label, (spec, _client_timeouts(client, client_timeouts, default)))
    if not judged:
        judged = {name: (spec, dict(default)) for name, spec in POLICIES.items()}
    by_wait: dict[str, list[str]] = {}
    for kind, cls in FAULTS.items():
        if cls.client_wait is not None:
            by_wait.setdefault(cls.client_wait, []).append(kind)
    parts = []
    for wait in WAITS:
        if wait not in by_wait:
            continue
        kinds = ", ".join(by_wait[wait])
        if wait == "none":
            parts.append(f"0 s ({kinds})")
            continue
        per_policy = ", ".join(
            f"{spec.wait_s(wait, **t):.3f} s ({name})" for name, (spec, t) in judged.items()
        )
        parts.append(f"{wait} timeout {per_policy} ({kinds})")
    return (
        f"per failed attempt on an affected replica, wait = {'; '.join(parts)}; "
        f"wait − {CLOCK_SLACK_S} s − {CLOCK_SLACK_SHARE:.0%} ≤ failover ≤ wait + "
        f"max({min_upper_slack} s, {UPPER_SLACK_SHARE:.0%}) + "
        f"{BASELINE_P99_FACTOR:g} × baseline p99 ({p99:.3f} s)"
    )


def _client_timeouts(
    client: str,
    per_client: dict[str, tuple[float | None, float | None]],
    default: dict[str, float],
) -> dict[str, float | None]:
    if client not in per_client:
        return dict(default)
    connect, response = per_client[client]
    return {"connect_timeout": connect, "response_timeout": response}


def _carried_failover(w: FaultWindow, in_flight: Sequence[Complete]) -> Complete | None:
    """The first op in flight when the fault began that failed on an affected replica
    after the harness began applying it and was then served by an unaffected one."""
    affected = set(w.replicas)
    for c in sorted(in_flight, key=lambda c: c.start):
        if (
            c.outcome == "ok"
            and c.served_by is not None
            and c.served_by not in affected
            and any(
                a.server in affected and a.outcome != "ok" and a.start >= w.began
                for a in c.attempts
            )
        ):
            return c
    return None


def _first_served_elsewhere(
    w: FaultWindow, failover_op: Complete, in_flight: Sequence[Complete]
) -> float:
    """When the client was first served by an unaffected replica after a failed attempt
    on an affected one. The op in flight when the fault hit counts too: it is judged
    nowhere (its duration includes time before the fault), but it may be the one that
    failed over first."""
    affected = set(w.replicas)
    ends = [failover_op.end]
    for c in in_flight:
        if (
            c.outcome == "ok"
            and c.served_by not in affected
            and any(a.server in affected and a.outcome != "ok" for a in c.attempts)
        ):
            ends.append(c.end)
    return min(ends)


def _judge_client(
    w: FaultWindow,
    client: str,
    ops: Sequence[Complete],
    *,
    in_flight: Sequence[Complete] = (),
    timeouts: dict[str, float | None],
    policy: PolicySpec | None = None,
    baseline_p99: float,
    min_upper_slack: float,
    order: list[str] | None,
    origin: float,
    windows: Sequence[FaultWindow] = (),
) -> ClientResult:
    affected = set(w.replicas)
    head = f"{w.fault_id} {w.label} · {client}"
    fig: dict[str, Any] = {"fault_id": w.fault_id, "ops_in_window": len(ops)}

    def result(
        status: ClientStatus, message: str, evidence: list[str], failover_s: float | None = None
    ) -> ClientResult:
        fig["status"] = status
        if status == "fail" and failover_s is None:
            fig["message"] = message
        return ClientResult(client, status, fig, message, evidence, failover_s, w.kind)

    spec: PolicySpec | str = policy or (ops[0].policy if ops else "")
    blind = unnoticed(w.kind, spec)
    if blind:
        fig["note"] = blind
        fig["blind"] = True
        return result("not-applicable", f"{client}: {blind}", [])

    if order is not None and order and set(order) <= affected:
        fig["note"] = "every replica in the client's order is affected"
        return result("not-applicable", f"{client} has no unaffected replica", [])

    tried = any(a.server in affected for c in ops for a in c.attempts)
    # the op in flight when the fault hit may be the only one that met it (the next
    # ones avoid the replica: a skip window, a new connection elsewhere): judged from its
    # first failed attempt on an affected replica after the fault began
    carried = None if tried else _carried_failover(w, in_flight)
    if not tried and carried is None:
        fig["note"] = "no op tried an affected replica"
        return result("not-exercised", f"{client} never tried {', '.join(w.replicas)}", [])

    failover_op: Complete | None = carried
    for c in [] if carried is not None else ops:
        if (
            c.outcome == "ok"
            and c.served_by is not None
            and c.served_by not in affected
            and any(a.server in affected and a.outcome != "ok" for a in c.attempts)
        ):
            failover_op = c
            break

    if failover_op is None:
        served_affected = [c for c in ops if c.outcome == "ok" and c.served_by in affected]
        message = f"{client} never reached another replica during {w.label}"
        if isinstance(spec, PolicySpec) and spec.selection == "at-start":
            failed = sum(1 for c in ops if c.outcome != "ok")
            message = (
                f"{client} ({spec.label}) chooses its server only when it starts: {failed} of "
                f"{len(ops)} ops failed during {w.label} and it did not fail over "
                "(restart-client would make it choose again)"
            )
        elif served_affected:
            message += (
                f" (still served by {served_affected[0].served_by} in "
                f"{len(served_affected)} ops: fault not applied?)"
            )
        evidence = [f"{head}: FAIL never failed over in {len(ops)} ops"]
        for c in ops[:3]:
            evidence.append(
                f"  {c.op_id} t+{c.start - origin:.3f}s {c.outcome}: {attempt_trail(c.attempts)}"
            )
        fig["failed_ops"] = sum(1 for c in ops if c.outcome != "ok")
        return result("fail", message, evidence)

    policy_used: PolicySpec | str = policy or failover_op.policy
    per_attempt = attempt_cost(
        policy_used,
        w.kind,
        connect_timeout=timeouts["connect_timeout"],
        response_timeout=timeouts["response_timeout"],
    )
    counted = failover_op.attempts
    t_from = failover_op.start
    if carried is not None:  # from its first failed attempt on an affected replica
        t_from = min(
            a.start
            for a in counted
            if a.server in affected and a.outcome != "ok" and a.start >= w.began
        )
        counted = [a for a in counted if a.start >= t_from]
        fig["carried"] = "in flight when the fault began: judged from its first failed attempt"
    failed_on_affected = [a for a in counted if a.server in affected and a.outcome != "ok"]
    failover_s = failover_op.end - t_from
    failed_before = sum(
        1 for c in ops if c.start < failover_op.start and c.outcome in ("fail", "info")
    )
    from_servers = ", ".join(dict.fromkeys(a.server for a in failed_on_affected))
    trail = attempt_trail(failover_op.attempts)
    fig.update(
        {
            "failover_s": rounded(failover_s),
            "detect_s": rounded(_first_served_elsewhere(w, failover_op, in_flight) - w.start),
            "failed_ops_before": failed_before,
            "op_id": failover_op.op_id,
            "policy": policy_used if isinstance(policy_used, str) else policy_used.label,
            "served_by": failover_op.served_by,
            "trail": trail,
        }
    )
    if per_attempt is None:
        message = f"{client}: unknown policy {policy_used!r}, cannot bound its failover"
        evidence = [f"{head}: UNKNOWN policy {policy_used!r}; {failover_op.op_id}: {trail}"]
        return result("unknown", message, evidence, failover_s=failover_s)

    # every failed attempt costs the wait of the fault on its replica, also when that
    # replica is affected by another fault active at the same time (a stalled site)
    wait = wait_in_effect = 0.0
    for a in counted:
        if a.outcome == "ok":
            continue
        kind = w.kind if a.server in affected else None
        if kind is None:
            kind = next(
                (o.kind for o in windows if a.server in o.replicas and o.contains(a.start)),
                None,
            )
        if kind is None:
            continue
        cost = (
            attempt_cost(
                policy_used,
                kind,
                connect_timeout=timeouts["connect_timeout"],
                response_timeout=timeouts["response_timeout"],
                reused=a.reused,
            )
            or 0.0
        )
        wait += cost
        # an attempt begun before the whole effect was in place may have cost less
        wait_in_effect += cost if a.start >= w.in_effect else 0.0
    lower, upper = wait_bounds(wait, baseline_p99=baseline_p99, min_upper_slack=min_upper_slack)
    if carried is not None:
        lower = wait_bounds(
            wait_in_effect, baseline_p99=baseline_p99, min_upper_slack=min_upper_slack
        )[0]
    fig.update(
        {
            "expected_wait_s": rounded(wait),
            "lower_s": rounded(lower),
            "upper_s": rounded(upper),
        }
    )
    bound = f"bound {lower:.3f}–{upper:.3f} s"
    op_line = f"  {failover_op.op_id} t+{failover_op.start - origin:.3f}s: {trail}"
    if failover_s < lower:
        message = (
            f"{client} failed over from {from_servers} in {failover_s:.3f} s under {w.kind}, "
            f"below the lower bound {lower:.3f} s (fault not applied?)"
        )
        evidence = [f"{head}: FAIL {failover_s:.3f} s < {lower:.3f} s", op_line]
        return result("fail", message, evidence, failover_s=failover_s)
    if failover_s > upper:
        message = (
            f"{client} took {failover_s:.3f} s to fail over from {from_servers} under "
            f"{w.kind}, above the upper bound {upper:.3f} s"
        )
        evidence = [f"{head}: FAIL {failover_s:.3f} s > {upper:.3f} s", op_line]
        return result("fail", message, evidence, failover_s=failover_s)
    message = (
        f"{client} failed over from {from_servers} in {failover_s:.3f} s under {w.kind} "
        f"({bound}; expected wait {wait:.3f} s)"
    )
    evidence = [
        f"{head}: pass {failover_s:.3f} s ({bound}), detect {fig['detect_s']:.3f} s, "
        f"{failed_before} failed ops before",
        op_line,
    ]
    return result("pass", message, evidence, failover_s=failover_s)


def served_elsewhere_after(w: FaultWindow, ops: Sequence[Complete]) -> float | None:
    """Seconds from the fault to the first success on an unaffected replica inside the
    window, whether or not that operation first failed on an affected one (a PyKMIP
    client reconnects without a failed attempt); None when there was none."""
    affected = set(w.replicas)
    ends = [
        c.end
        for c in ops
        if c.outcome == "ok" and c.served_by not in affected and w.start < c.end <= w.end
    ]
    return min(ends) - w.start if ends else None


def client_figures(figures: Any) -> list[dict[str, Any]]:
    """Every client's figures in a failover verdict's figures (one dict per fault
    window, each with its "clients")."""
    if not isinstance(figures, dict):
        return []
    return [
        c
        for w in figures.values()
        if isinstance(w, dict)
        for c in (w.get("clients") or {}).values()
        if isinstance(c, dict)
    ]


def failover_times(v: dict[str, Any]) -> list[float]:
    """Every client's failover time in a verdict dict (`Verdict.to_dict()`)."""
    return [
        c["failover_s"]
        for c in client_figures(v.get("figures"))
        if isinstance(c.get("failover_s"), int | float)
    ]


class FailoverChecker(Checker):
    name = NAME
    position = 10
    what = (
        "Failover: after a fault on a replica, each client's first request that fails "
        "there must succeed on another replica within what its policy promises "
        "(about one timeout per silent server, ≈ 0 s for a refused one)."
    )
    failure_means = (
        "A failure means a client did not move off the faulted replica, or took longer "
        "than the bound (it waited on something it should not have), or far less (the "
        "fault was not in effect)."
    )
    expectations = (
        Bound("client", "client", "client", "the client judged (default: every client)"),
        Bound("within", "duration", "within_s", "fault → served elsewhere within this"),
        Bound("to_site", "site", "to_site", "served by a replica of this site"),
        Bound("to_replica", "replica", "to_replica", "served by this replica"),
        Bound("fault", "fault", "fault", "the `as` name of the fault judged"),
    )
    awaits_failover = True

    def check(self, ctx: CheckContext) -> Verdict:
        return check_failover(
            ctx.events,
            response_timeout=ctx.topology.response_timeout,
            connect_timeout=ctx.topology.connect_timeout,
            orders=ctx.orders,
            replicas=ctx.replicas,
            external=ctx.topology.external_replicas,
            behind=ctx.behind,
            policies={n: c.policy for n, c in ctx.topology.clients.items()},
            client_timeouts={n: c.timeouts(ctx.topology) for n, c in ctx.topology.clients.items()},
        )

    def headline(self, v: dict[str, Any]) -> str:
        times = failover_times(v)
        return identity_headline(v) or (f"slowest {max(times):.3f} s" if times else "")

    def brief(self, v: dict[str, Any]) -> str:
        times = failover_times(v)
        return f" {max(times):.3f}s" if times else ""


from harness.checkers.failover_expect import FailoverBounds, judge_failover  # noqa: E402

__all__ = [
    "FailoverBounds",
    "FailoverChecker",
    "check_failover",
    "failover_times",
    "judge_failover",
    "served_elsewhere_after",
]
