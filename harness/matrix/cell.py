"""What runs in a cell's own process: one (policy, fault) on a fresh cluster, then its
row written to the cell's folder whatever happens (`cell_main`).

The process is started as ``python -m harness.matrix --cell SPEC`` (`harness.matrix.runner`);
the first SIGINT heals the fault and stops the cluster, later ones cannot cut that short.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import traceback
from pathlib import Path
from typing import Any

from harness.matrix.facts import CellResult, summarise_cell, window_facts
from harness.matrix.plan import CellSpec

# The workload of a cell (per client): short, and enough for every verdict.
BASELINE_OPS = 10
FAILOVERS = 2
RECOVERY_OPS = 3
RATE_PER_S = 20.0


def _failovers(topo: Any, target: str) -> int:
    """Operations to wait for when clients reach the target only through balancers: as
    many as the workload makes while the slowest of them may take to eject it, so that
    the fault lasts long enough for their health checks to act."""
    from harness.checkers.lb_ejection import eject_bounds

    latest = max(eject_bounds(topo.load_balancers[b], topo)[1] for b in topo.balancers_of(target))
    return FAILOVERS + int(latest * RATE_PER_S) + 1


def run_cell(spec: CellSpec) -> CellResult:
    """Run one cell on a fresh cluster; everything injected is healed and the cluster
    stopped before this returns (or raises)."""
    from harness.backends import cluster_class
    from harness.checkers import CHECKERS
    from harness.history import History
    from harness.scenario import Scenario, ScenarioError

    topo = spec.cell_topology()
    folder = spec.folder
    folder.root.mkdir(parents=True, exist_ok=True)
    replicated = topo.replication_profile != "none"
    through_balancer = not any(spec.target in topo.clients[c].order for c in spec.clients)
    cluster = cluster_class(spec.backend).create(topo, folder.cluster)
    history = History(
        folder.history,
        meta={
            "topology": topo.name,
            "time_scale": topo.time_scale,
            "matrix_cell": spec.cell_id,
            "policy": spec.policy,
            "fault": spec.fault,
            "target": spec.target,
        },
    )
    stalled = ""
    with cluster:
        sc = Scenario(f"matrix {spec.cell_id}", cluster, topo, history, folder.root)
        try:
            try:
                sc.fault_window(
                    spec.fault,
                    spec.target,
                    clients=list(spec.clients),
                    policy=spec.policy,
                    failovers=_failovers(topo, spec.target) if through_balancer else FAILOVERS,
                    baseline_ops=BASELINE_OPS,
                    recovery_ops=RECOVERY_OPS,
                    rate_per_s=RATE_PER_S,
                    expect_served=spec.expect_served,
                )
            except ScenarioError as e:
                # the workload waited in vain: what the clients did is still judged
                stalled = str(e).splitlines()[0]
                sc.note(f"matrix: {stalled}")
            include: tuple[str, ...] = ("failover", "order", "availability", "fault_effect")
            if through_balancer:  # the balancer's ejection is the failover
                include = ("lb_ejection", *include[1:])
            if replicated:  # and every checker that reads an audit of the replicas
                sc.audit_until_converged()
                include += tuple(n for n, c in CHECKERS.items() if c.needs_audit)
            verdicts = sc.check(include=include)
            effect = verdicts["fault_effect"]
            if effect.status == "fail" and effect.summary not in stalled:
                # the fault did not happen: the row must say so, whatever else it says
                stalled = "; ".join(x for x in (stalled, effect.summary) if x)
        finally:
            sc.close()
    orders = {n: list(topo.clients[n].order) for n in spec.clients}
    events = history.events()
    result = summarise_cell(
        spec.policy,
        spec.fault,
        spec.target,
        {k: v.to_dict() for k, v in verdicts.items()},
        replicated=replicated,
        window=window_facts(events, orders),
        stalled=stalled,
    )
    result.history = str(folder.history)
    return result


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first SIGINT stops the cell (heal, stop); later ones must not cut that short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def cell_main(spec_path: str) -> int:
    """Entry point of a cell's process: run it, write its result whatever happens."""
    signal.signal(signal.SIGINT, _interrupt_once)
    spec = CellSpec.from_dict(json.loads(Path(spec_path).read_text()))
    out = spec.folder.result
    base = CellResult(spec.policy, spec.fault, spec.target, "crashed")
    try:
        result = run_cell(spec)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        result = dataclasses.replace(base, status="interrupted", reason="healed and stopped")
    except Exception as e:  # noqa: BLE001 - a crashed cell is reported, not raised
        traceback.print_exc()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = dataclasses.replace(
            base, reason=f"{type(e).__name__}: {first}", error=traceback.format_exc()
        )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    os.replace(tmp, out)
    return 0
