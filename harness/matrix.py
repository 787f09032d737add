"""`kmschaos matrix`: every failover policy against every fault, in one table.

    kmschaos matrix TOPOLOGY --policies vcenter,pykmip --faults refuse,blackhole,...

The one-page answer to "what happens to our clients when X breaks". A cell is one
(policy, fault): a fresh cluster; a short workload on the first client (or every
client) with that policy, through `Scenario.fault_window` (baseline → inject on the
target → failovers observed, with deadlines derived from the timeouts → heal →
recovery); an audit after heal when the topology replicates; then the checkers. The
cell's row says what a user paid: failover time, failed operations in the fault window,
whether the server order held, acknowledged keys lost.

Each cell runs in its own process (``python -m harness.matrix --cell SPEC``): cells run
in parallel (``-j``) without sharing a cluster (each leases its own loopback /24) or an
interpreter, and an interrupt reaches every cell as one KeyboardInterrupt that heals
its fault and stops its cluster. A fault the backend or host cannot run is shown as
unsupported, with the reason, and starts nothing.

Reports: ``matrix.json``, ``matrix.md`` and ``cells/<fault>-<policy>/`` (the cell's
``history.jsonl``, ``outcome.json``, ``cell.log`` and its cluster's state and logs).
Exit status: 0 the matrix ran (findings are information), 1 a cell crashed,
2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.client.policies import POLICIES
from harness.faults import FAULTS
from harness.topology import Topology, TopologyError, load_topology

EXIT_OK, EXIT_CRASHED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DEFAULT_POLICIES = ("vcenter", "pykmip")
DEFAULT_REPORT_DIR = "reports/matrix"

# The workload of a cell (per client): short, and enough for every verdict.
BASELINE_OPS = 10
FAILOVERS = 2
RECOVERY_OPS = 3
RATE_PER_S = 20.0

STATUSES = ("pass", "finding", "unknown", "unsupported", "crashed", "interrupted", "not run")
STYLE = {
    "pass": "green",
    "finding": "bold yellow",
    "unknown": "yellow",
    "unsupported": "dim",
    "crashed": "bold red",
    "interrupted": "magenta",
    "not run": "dim",
}


class MatrixError(ValueError):
    """Bad input: the message names the option or file and the fix."""


# ---- what a cell is and what it measured ------------------------------------------------


@dataclass(frozen=True)
class CellSpec:
    """Everything a cell's process needs (written as ``spec.json``)."""

    policy: str
    fault: str
    target: str
    topology: str
    time_scale: float | None
    backend: str
    clients: tuple[str, ...]
    cell_dir: str
    expect_served: bool = True  # False: some client has no other replica (total outage)

    @property
    def cell_id(self) -> str:
        return f"{self.fault}-{self.policy}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "clients": list(self.clients)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellSpec:
        return cls(**{**d, "clients": tuple(d["clients"])})


@dataclass
class CellResult:
    """One row of the matrix. Figures are None where they were not measured."""

    policy: str
    fault: str
    target: str
    status: str
    reason: str = ""
    seconds: float | None = None
    failover_s: float | None = None
    detect_s: float | None = None
    expected_wait_s: float | None = None
    failed_ops: int | None = None
    window_ops: int | None = None
    ok_ops: int | None = None  # ok operations started in the fault window
    ok_failing_over: int | None = None  # ... that first failed on the target
    order: str | None = None  # the order verdict's status
    order_violations: int | None = None
    replicated: bool = False
    keys_lost: int | None = None
    keys_acknowledged: int | None = None
    durability: str | None = None  # the durability verdict's status (replicated only)
    first_failed: dict[str, Any] | None = None
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: str | None = None
    error: str = ""

    @property
    def cell_id(self) -> str:
        return f"{self.fault}-{self.policy}"

    def to_dict(self) -> dict[str, Any]:
        return {"cell": self.cell_id, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def summarise_cell(
    policy: str,
    fault: str,
    target: str,
    verdicts: dict[str, dict[str, Any]],
    *,
    replicated: bool,
    window: dict[str, Any] | None = None,
    stalled: str = "",
) -> CellResult:
    """A row from the cell's verdicts (as `Verdict.to_dict()`).

    `stalled` says what the workload waited for in vain (no failover or no recovery
    before the deadline); `window` holds `window_facts` of the cell's history. Status:
    `finding` when a verdict failed or the workload stalled, `unknown` when a verdict
    could not judge, else `pass`.
    """
    r = CellResult(policy, fault, target, "pass", replicated=replicated, verdicts=verdicts)
    window = window or {}
    first_failed = window.get("first_failed")
    r.first_failed = first_failed
    r.ok_ops, r.ok_failing_over = window.get("ok_ops"), window.get("ok_failing_over")
    problems: list[str] = []
    unknowns: list[str] = []
    if stalled:
        problems.append(stalled)

    fo = verdicts.get("failover")
    if fo is not None:
        clients = [
            c
            for w in fo.get("figures", {}).values()
            if isinstance(w, dict)
            for c in w.get("clients", {}).values()
        ]
        times = [c["failover_s"] for c in clients if c.get("failover_s") is not None]
        detects = [c["detect_s"] for c in clients if c.get("detect_s") is not None]
        waits = [c["expected_wait_s"] for c in clients if c.get("expected_wait_s") is not None]
        r.failover_s = max(times, default=None)
        mine = window.get("detect_s")
        r.detect_s = mine if mine is not None else max(detects, default=None)
        r.expected_wait_s = max(waits, default=None)
        if fo.get("status") == "fail":
            problems.append(_failover_problem(clients))
        elif fo.get("status") == "unknown":
            unknowns.append(f"failover: {fo.get('summary', '')}")

    av = verdicts.get("availability")
    if av is not None:
        union = av.get("figures", {}).get("union") or {}
        if union.get("ops") is not None:
            r.window_ops = int(union["ops"])
            r.failed_ops = int(union["ops"]) - int(union.get("ok", 0))
        if av.get("status") == "fail":
            text = f"{r.failed_ops}/{r.window_ops} ops failed"
            if first_failed and first_failed.get("why"):
                text += f" ({first_failed['why']})"
            problems.append(text)
        elif av.get("status") == "unknown":
            unknowns.append(f"availability: {av.get('summary', '')}")

    od = verdicts.get("order")
    if od is not None:
        r.order = od.get("status")
        r.order_violations = od.get("figures", {}).get("violations")
        if r.order == "fail":
            problems.append(f"server order broken in {r.order_violations} op(s)")
        elif r.order == "unknown":
            unknowns.append(f"order: {od.get('summary', '')}")

    du = verdicts.get("durability")
    if replicated and du is not None:
        r.durability = du.get("status")
        figs = du.get("figures", {})
        r.keys_acknowledged = figs.get("acknowledged")
        r.keys_lost = figs.get("lost_keys", 0 if r.durability == "pass" else None)
        if r.durability == "fail":
            problems.append(f"{r.keys_lost} acknowledged key(s) lost")
        elif r.durability == "unknown":
            unknowns.append(f"durability: {du.get('summary', '')}")

    if problems:
        r.status, r.reason = "finding", "; ".join(problems)
    elif unknowns:
        r.status, r.reason = "unknown", "; ".join(unknowns)
    return r


def _failover_problem(clients: list[dict[str, Any]]) -> str:
    for c in clients:
        if c.get("status") != "fail":
            continue
        took, lo, hi = c.get("failover_s"), c.get("lower_s"), c.get("upper_s")
        if took is None:
            return "never failed over"
        if lo is not None and took < lo:
            return f"failover {took:.3f} s below its bound {lo:.3f} s (fault not applied?)"
        if hi is not None and took > hi:
            return f"failover {took:.3f} s above its bound {hi:.3f} s"
    return "failover outside its bound"


def window_facts(events: list[Any], orders: dict[str, list[str]]) -> dict[str, Any]:
    """What the fault windows of a history cost, read from the operations themselves.

    `detect_s`: fault → the first success on an unaffected replica, counting an
    operation that was in flight when the fault hit, with or without a failed attempt
    first (e.g. a PyKMIP reconnect): the failover checker's `served_elsewhere_after`.
    `ok_ops` / `ok_failing_over`: the ok operations started in a window, and those that
    first failed on an affected replica.
    `first_failed`: the first operation of a window that did not succeed, and why.
    """
    from harness.checkers.failover import served_elsewhere_after
    from harness.checkers.verdict import attempt_trail, completes, fault_windows

    windows = fault_windows(events)
    ops = completes(events)
    facts: dict[str, Any] = {
        "detect_s": None,
        "ok_ops": 0,
        "ok_failing_over": 0,
        "first_failed": None,
    }
    detects = [d for w in windows if (d := served_elsewhere_after(w, ops)) is not None]
    facts["detect_s"] = round(max(detects), 6) if detects else None
    for c in ops:
        mine = [w for w in windows if w.contains(c.start)]
        if c.outcome == "ok" and mine:
            facts["ok_ops"] += 1
            affected = {r for w in mine for r in w.replicas}
            if any(a.server in affected and a.outcome != "ok" for a in c.attempts):
                facts["ok_failing_over"] += 1
    for c in ops:
        if c.outcome == "ok" or not any(w.affects(c) for w in windows):
            continue
        why = ""
        if len(c.attempts) == 1 and c.attempts[0].reused:
            why = f"{c.attempts[0].outcome} on the open connection to {c.attempts[0].server}"
            why += ", no failover"
        elif c.attempts and {a.server for a in c.attempts} >= set(orders.get(c.client, ())):
            why = "every replica failed"
        elif not c.attempts:
            why = c.error
        facts["first_failed"] = {
            "op_id": c.op_id,
            "op": c.op,
            "outcome": c.outcome,
            "trail": attempt_trail(c.attempts),
            "why": why,
        }
        break
    return facts


# ---- one cell (in its own process) --------------------------------------------------------


def cell_topology(spec: CellSpec) -> Topology:
    """The topology file with the cell's time scale, and the cell's policy on every client."""
    topo = load_topology(spec.topology)
    if spec.time_scale is not None:
        topo = topo.with_time_scale(spec.time_scale)
    clients = {n: dataclasses.replace(c, policy=spec.policy) for n, c in topo.clients.items()}
    return dataclasses.replace(topo, clients=clients)


def run_cell(spec: CellSpec) -> CellResult:
    """Run one cell on a fresh cluster; everything injected is healed and the cluster
    stopped before this returns (or raises)."""
    from harness.backends import cluster_class
    from harness.checkers import CHECKERS
    from harness.history import History
    from harness.scenario import Scenario, ScenarioError

    topo = cell_topology(spec)
    cell_dir = Path(spec.cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    replicated = topo.replication_profile != "none"
    cluster = cluster_class(spec.backend).create(topo, cell_dir / "cluster")
    history = History(
        cell_dir / "history.jsonl",
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
        sc = Scenario(f"matrix {spec.cell_id}", cluster, topo, history, cell_dir)
        try:
            try:
                sc.fault_window(
                    spec.fault,
                    spec.target,
                    clients=list(spec.clients),
                    policy=spec.policy,
                    failovers=FAILOVERS,
                    baseline_ops=BASELINE_OPS,
                    recovery_ops=RECOVERY_OPS,
                    rate_per_s=RATE_PER_S,
                    expect_served=spec.expect_served,
                )
            except ScenarioError as e:
                # the workload waited in vain: what the clients did is still judged
                stalled = str(e).splitlines()[0]
                sc.note(f"matrix: {stalled}")
            include: tuple[str, ...] = ("failover", "order", "availability")
            if replicated:  # and every checker that reads an audit of the replicas
                sc.audit_until_converged()
                include += tuple(n for n, c in CHECKERS.items() if c.needs_audit)
            verdicts = sc.check(include=include)
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
    result.history = str(cell_dir / "history.jsonl")
    return result


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first SIGINT stops the cell (heal, stop); later ones must not cut that short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def cell_main(spec_path: str) -> int:
    """Entry point of a cell's process: run it, write ``cell.json`` whatever happens."""
    signal.signal(signal.SIGINT, _interrupt_once)
    spec = CellSpec.from_dict(json.loads(Path(spec_path).read_text()))
    out = Path(spec.cell_dir) / "cell.json"
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


# ---- the matrix (the parent process) ------------------------------------------------------


@dataclass
class MatrixPlan:
    topology: Topology
    topology_file: str
    policies: list[str]
    faults: list[str]
    target: str
    clients: list[str]
    backend: str
    time_scale: float | None
    jobs: int
    report_dir: Path
    unsupported: dict[str, str]  # fault -> reason (for every policy)

    @property
    def lonely_clients(self) -> list[str]:
        """Clients whose order holds only the target: they cannot fail over, so their
        cells measure an outage instead of waiting for a failover."""
        return [c for c in self.clients if set(self.topology.clients[c].order) == {self.target}]

    def cells(self) -> list[CellSpec]:
        """Fault-major: both policies under one fault sit side by side."""
        return [
            CellSpec(
                policy=p,
                fault=f,
                target=self.target,
                topology=self.topology_file,
                time_scale=self.time_scale,
                backend=self.backend,
                clients=tuple(self.clients),
                cell_dir=str((self.report_dir / "cells" / f"{f}-{p}").resolve()),
                expect_served=not self.lonely_clients,
            )
            for f in self.faults
            for p in self.policies
        ]


def _names(option: str, raw: str, known: tuple[str, ...], what: str) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise MatrixError(f"{option}: empty; name at least one {what} ({', '.join(known)})")
    seen: list[str] = []
    for n in names:
        if n not in known:
            raise MatrixError(f"{option}: unknown {what} {n!r} (known: {', '.join(known)})")
        if n not in seen:
            seen.append(n)
    return seen


def parse_faults(raw: str) -> list[str]:
    matrix_faults = FAULTS.matrix_kinds()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if n in FAULTS and n not in matrix_faults:
            raise MatrixError(
                f"--faults: {n!r} is not a matrix fault: a cell needs a fault that clients "
                f"fail over from, on one replica, without parameters (matrix faults: "
                f"{', '.join(matrix_faults)}); try `kmschaos inject {n}` instead"
            )
    return _names("--faults", raw, matrix_faults, "fault")


def plan_matrix(args: argparse.Namespace) -> MatrixPlan:
    """Validate the arguments into a plan; `MatrixError` / `TopologyError` on bad input."""
    from harness.backends import BACKENDS

    policies = _names("--policies", args.policies, tuple(POLICIES), "policy")
    faults = parse_faults(args.faults)
    if args.jobs < 1:
        raise MatrixError(f"-j {args.jobs}: must be at least 1")
    if args.backend not in BACKENDS:
        raise MatrixError(f"--backend {args.backend}: unknown (available: {', '.join(BACKENDS)})")
    topo = load_topology(args.topology)
    if args.time_scale is not None:
        topo = topo.with_time_scale(args.time_scale)
    first = next(iter(topo.clients.values()))
    clients = list(topo.clients) if args.all_clients else [first.name]
    target = args.target or first.order[0]
    if target not in topo.replicas:
        raise MatrixError(
            f"--target {target}: unknown replica in {args.topology} "
            f"(known: {', '.join(topo.replicas)})"
        )
    for c in clients:
        order = topo.clients[c].order
        if target not in order:
            raise MatrixError(
                f"--target {target}: not in the order of client {c} ({', '.join(order)}), "
                "so it would never fail over from it; pick one of those"
            )
    return MatrixPlan(
        topology=topo,
        topology_file=str(args.topology),
        policies=policies,
        faults=faults,
        target=target,
        clients=clients,
        backend=args.backend,
        time_scale=args.time_scale,
        jobs=args.jobs,
        report_dir=Path(args.report_dir),
        unsupported={},
    )


def preflight(plan: MatrixPlan) -> None:
    """Fill `plan.unsupported` (faults this backend or host cannot run) without starting
    anything; raise if the backend itself cannot run (no Toxiproxy, no Docker engine or
    image)."""
    from harness.backends import cluster_class
    from harness.cluster.base import ClusterError

    if plan.backend == "local":
        from harness.toolchain import find_toxiproxy_server

        find_toxiproxy_server()
    else:
        from harness.cluster.docker_backend import unavailable_reason

        reason = unavailable_reason()
        if reason:
            raise ClusterError(f"--backend docker: {reason}")
    probe = cluster_class(plan.backend).create(plan.topology, plan.report_dir / ".probe")
    for f in plan.faults:
        reason = FAULTS[f].unsupported_reason(probe)
        if reason:
            plan.unsupported[f] = reason


def _expected_cost(plan: MatrixPlan, fault: str) -> float:
    """A rough length of a cell, to start the long ones first: what one failed attempt
    costs the slowest policy (the fault's and the policies' own declarations)."""
    from harness.checkers.failover import attempt_cost

    topo = plan.topology
    costs = [
        attempt_cost(
            p,
            fault,
            response_timeout=topo.response_timeout,
            connect_timeout=topo.connect_timeout,
        )
        for p in plan.policies
    ]
    return max((c or 0.0) for c in costs)


class CellRunner:
    """Starts cell processes; `next_done()` returns each one as it ends."""

    def __init__(self) -> None:
        self._done: queue.Queue[tuple[CellSpec, int, float]] = queue.Queue()
        self.running: dict[str, tuple[CellSpec, subprocess.Popen[bytes], float]] = {}

    def start(self, spec: CellSpec) -> None:
        cell_dir = Path(spec.cell_dir)
        cell_dir.mkdir(parents=True, exist_ok=True)
        spec_file = cell_dir / "spec.json"
        spec_file.write_text(json.dumps(spec.to_dict(), indent=2))
        log = (cell_dir / "cell.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.matrix", "--cell", str(spec_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        t0 = time.monotonic()
        self.running[spec.cell_id] = (spec, proc, t0)

        def waiter() -> None:
            code = proc.wait()
            self._done.put((spec, code, time.monotonic() - t0))

        threading.Thread(target=waiter, name=f"matrix-{spec.cell_id}", daemon=True).start()

    def next_done(self, timeout_s: float | None = None) -> tuple[CellSpec, int, float]:
        spec, code, took = self._done.get(timeout=timeout_s)
        self.running.pop(spec.cell_id, None)
        return spec, code, took

    def interrupt(self) -> None:
        for _, proc, _ in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        for _, proc, _ in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def read_cell(spec: CellSpec, code: int, took: float, interrupting: bool = False) -> CellResult:
    """The cell's ``cell.json``, or a crash naming the exit status and the log's tail
    (interrupted, when it was stopped before it could write one)."""
    from harness.wait import tail

    cell_dir = Path(spec.cell_dir)
    try:
        result = CellResult.from_dict(json.loads((cell_dir / "cell.json").read_text()))
    except (OSError, ValueError):
        result = CellResult(spec.policy, spec.fault, spec.target, "crashed")
        if interrupting:
            result.status, result.reason = "interrupted", f"stopped (exit status {code})"
        else:
            result.reason = f"cell process exited with status {code} and no result"
            result.error = tail(cell_dir / "cell.log", 15)
    result.seconds = round(took, 2)
    return result


def run_matrix(plan: MatrixPlan, console: Console) -> tuple[list[CellResult], bool]:
    """Run every supported cell, `plan.jobs` at a time, printing a line per finished
    cell. Returns the rows in plan order, and whether the run was interrupted."""
    specs = plan.cells()
    results: dict[str, CellResult] = {}
    for s in specs:
        if s.fault in plan.unsupported:
            results[s.cell_id] = CellResult(
                s.policy, s.fault, s.target, "unsupported", reason=plan.unsupported[s.fault]
            )
    todo = [s for s in specs if s.cell_id not in results]
    todo.sort(key=lambda s: -_expected_cost(plan, s.fault))  # long cells first
    total = len(todo)
    runner = CellRunner()
    interrupted = False
    finished = {"n": 0}

    def finish(spec: CellSpec, code: int, took: float) -> None:
        r = read_cell(spec, code, took, interrupting=interrupted)
        results[spec.cell_id] = r
        finished["n"] += 1
        console.print(
            f"\\[{finished['n']:>2}/{total}] "
            f"{spec.fault} × {spec.policy}: [{STYLE[r.status]}]{r.status}[/] "
            f"({took:.1f} s)" + (f" — {escape(r.reason)}" if r.reason else ""),
            highlight=False,
        )

    try:
        pending = list(todo)
        while pending or runner.running:
            while pending and len(runner.running) < plan.jobs:
                runner.start(pending.pop(0))
            finish(*runner.next_done())
    except KeyboardInterrupt:
        interrupted = True
        console.print(
            f"[magenta]interrupted[/]: stopping {len(runner.running)} running cell(s) "
            "(healing faults, stopping clusters)",
            highlight=False,
        )
        _stop_running(plan, runner, console, finish)
    rows = []
    for s in specs:
        rows.append(
            results.get(s.cell_id)
            or CellResult(s.policy, s.fault, s.target, "not run", reason="interrupted before")
        )
    return rows, interrupted


def _stop_running(
    plan: MatrixPlan,
    runner: CellRunner,
    console: Console,
    finish: Callable[[CellSpec, int, float], None],
) -> None:
    """Interrupt the running cells and collect them; force (kill, reap) if they take
    longer than a cleanup can, or on a second interrupt."""
    from harness import registry

    topo = plan.topology
    deadline = 30.0 + 2 * len(topo.replicas) * (topo.response_timeout + topo.connect_timeout)
    runner.interrupt()
    end = time.monotonic() + deadline
    try:
        while runner.running:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            finish(*runner.next_done(timeout_s=left))
    except (KeyboardInterrupt, TimeoutError, queue.Empty):
        console.print("[bold red]forced[/]: killing the remaining cells", highlight=False)
        runner.kill()
        while runner.running:
            with contextlib.suppress(KeyboardInterrupt):
                finish(*runner.next_done(timeout_s=10))
        console.print(str(registry.reap()), highlight=False)


# ---- rendering ----------------------------------------------------------------------------


def _seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"


def cell_columns(r: CellResult) -> dict[str, str]:
    """The table's text for one row (plain text; colours are added by the rich table)."""
    measured = r.status in ("pass", "finding", "unknown")
    failover = _seconds(r.failover_s)
    if measured and r.failover_s is None and r.verdicts.get("failover", {}).get("status"):
        failover = "never" if r.verdicts["failover"]["status"] == "fail" else "-"
    paid = "-"
    if r.ok_ops is not None and r.ok_failing_over is not None:
        paid = f"{r.ok_failing_over} / {r.ok_ops}"
    failed = "-"
    if r.window_ops is not None and r.failed_ops is not None:
        failed = f"{r.failed_ops} / {r.window_ops}"
    order = {"pass": "yes", "fail": f"no ({r.order_violations})", "unknown": "unknown"}.get(
        r.order or "", "-"
    )
    if not measured:
        keys = "-"
    elif not r.replicated:
        keys = "n/a (no replication)"
    elif r.keys_lost is not None and r.keys_acknowledged is not None:
        keys = f"{r.keys_lost} / {r.keys_acknowledged}"
    else:
        keys = r.durability or "-"
    status = r.status + (f": {r.reason}" if r.reason else "")
    return {
        "fault": r.fault,
        "policy": r.policy,
        "failover": failover,
        "detect": _seconds(r.detect_s),
        "paid failover": paid,
        "failed ops": failed,
        "order": order,
        "keys lost": keys,
        "status": status,
    }


COLUMNS = (
    "fault",
    "policy",
    "failover",
    "detect",
    "paid failover",
    "failed ops",
    "order",
    "keys lost",
    "status",
)


def legend(doc: dict[str, Any]) -> list[str]:
    t = doc["timeouts"]
    return [
        f"time scale {doc['time_scale']:g}: response timeout {t['response_s']:g} s, connect "
        f"timeout {t['connect_s']:g} s (vcenter); PyKMIP uses one timeout "
        f"({t['response_s']:g} s) for both.",
        "failover: duration of the first request that failed over (what it cost its user); "
        "detect: fault → first success on another replica; paid failover: ok operations in "
        "the fault window that first failed on the target / all ok ones; failed ops: failed "
        "/ all operations in the fault window; order: attempts followed the client's server "
        "list; keys lost: acknowledged keys missing on some replica after heal.",
    ]


def render_table(doc: dict[str, Any], rows: list[CellResult]) -> Table:
    t = Table(
        title=f"resilience matrix: {doc['topology']} (target {doc['target']}, "
        f"{doc['backend']} backend, time scale {doc['time_scale']:g})",
        title_justify="left",
    )
    for c in COLUMNS:
        t.add_column(c, overflow="fold")
    for r in rows:
        cols = cell_columns(r)
        style = STYLE.get(r.status, "white")
        status = f"[{style}]{escape(r.status)}[/]" + (f": {escape(r.reason)}" if r.reason else "")
        order_style = {"pass": "green", "fail": "red"}.get(r.order or "", "white")
        t.add_row(
            *(escape(cols[c]) for c in COLUMNS[:6]),
            f"[{order_style}]{escape(cols['order'])}[/]",
            escape(cols["keys lost"]),
            status,
        )
    return t


def render_markdown(doc: dict[str, Any], rows: list[CellResult]) -> str:
    def md(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        f"# Resilience matrix: {doc['topology']}",
        "",
        f"`{doc['command']}` — {doc['backend']} backend, target {doc['target']}, "
        f"client(s) {', '.join(doc['clients'])}, {doc['duration_s']:.1f} s"
        + (" (**interrupted**: partial)" if doc.get("interrupted") else ""),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in rows:
        cols = cell_columns(r)
        lines.append("| " + " | ".join(md(cols[c]) for c in COLUMNS) + " |")
    for line in legend(doc):
        lines += ["", line]
    lines.append("")
    return "\n".join(lines)


def matrix_document(
    plan: MatrixPlan, rows: list[CellResult], duration_s: float, interrupted: bool, command: str
) -> dict[str, Any]:
    topo = plan.topology
    return {
        "topology": topo.name,
        "topology_file": plan.topology_file,
        "command": command,
        "backend": plan.backend,
        "time_scale": topo.time_scale,
        "timeouts": {"response_s": topo.response_timeout, "connect_s": topo.connect_timeout},
        "replication": topo.replication_profile,
        "target": plan.target,
        "clients": plan.clients,
        "policies": plan.policies,
        "faults": plan.faults,
        "jobs": plan.jobs,
        "duration_s": round(duration_s, 2),
        "interrupted": interrupted,
        "cells": [r.to_dict() for r in rows],
    }


def write_reports(report_dir: Path, doc: dict[str, Any], rows: list[CellResult]) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "matrix.json").write_text(json.dumps(doc, indent=2, default=str))
    (report_dir / "matrix.md").write_text(render_markdown(doc, rows))


def _clear_previous(report_dir: Path) -> None:
    """Remove what an earlier matrix wrote here (only that: the folder may hold more)."""
    for name in ("matrix.json", "matrix.md"):
        with contextlib.suppress(FileNotFoundError):
            (report_dir / name).unlink()
    for name in ("cells", ".probe"):
        if (report_dir / name).is_dir():
            shutil.rmtree(report_dir / name)


# ---- the command ----------------------------------------------------------------------------


def add_matrix_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `matrix` subcommand to an argparse subparsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "matrix",
        help="every failover policy against every fault, on fresh clusters: one table",
        description="Run each (policy, fault) cell on a fresh cluster of TOPOLOGY: a short "
        "workload on the first client (or every client) with that policy; inject the fault "
        "on the target; wait for failovers; heal; recover; then the checkers. Prints a line "
        "per finished cell, then a table: failover time, failed operations in the fault "
        "window, server order respected, acknowledged keys lost (after an audit, when the "
        "topology replicates), and a status (pass, finding, unsupported with the reason). "
        "Writes matrix.json, matrix.md and each cell's history.jsonl under --report-dir. "
        "Exit 0 when the matrix ran (findings are information), 1 if a cell crashed, "
        "2 on bad input, 130 when interrupted (running cells are healed and stopped).",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    defaults = FAULTS.matrix_kinds(default_only=True)
    p.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        metavar="P,P",
        help=f"comma-separated failover policies (default: {','.join(DEFAULT_POLICIES)}; "
        f"known: {', '.join(POLICIES)})",
    )
    p.add_argument(
        "--faults",
        default=",".join(defaults),
        metavar="F,F",
        help=f"comma-separated faults (default: {','.join(defaults)}; matrix faults: "
        f"{', '.join(FAULTS.matrix_kinds())})",
    )
    p.add_argument(
        "--target",
        metavar="REPLICA",
        help="the replica to fault (default: the first of the first client's order)",
    )
    p.add_argument(
        "--all-clients",
        action="store_true",
        help="run the workload on every client of the topology (default: the first one)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        metavar="S",
        help="multiply client timeouts (default: the topology's; 0.05 turns a 60 s response "
        "timeout into 3 s)",
    )
    p.add_argument(
        "-j",
        dest="jobs",
        type=int,
        default=2,
        metavar="N",
        help="cells run at once, each on its own cluster (default 2)",
    )
    p.add_argument(
        "--report-dir",
        default=DEFAULT_REPORT_DIR,
        metavar="DIR",
        help=f"where matrix.json, matrix.md and cells/ go (default {DEFAULT_REPORT_DIR})",
    )
    p.add_argument(
        "--backend",
        default="local",
        help="local (default) or docker; a fault the backend cannot run is shown unsupported",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print matrix.json on stdout instead of the table (progress goes to stderr)",
    )
    p.set_defaults(func=cmd_matrix)
    return p


def _command_line(args: argparse.Namespace, plan: MatrixPlan) -> str:
    parts = [
        "kmschaos matrix",
        plan.topology_file,
        f"--policies {','.join(plan.policies)}",
        f"--faults {','.join(plan.faults)}",
    ]
    if args.target:
        parts.append(f"--target {args.target}")
    if args.all_clients:
        parts.append("--all-clients")
    if plan.time_scale is not None:
        parts.append(f"--time-scale {plan.time_scale:g}")
    parts.append(f"-j {plan.jobs}")
    if plan.backend != "local":
        parts.append(f"--backend {plan.backend}")
    return " ".join(parts)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def cmd_matrix(args: argparse.Namespace) -> int:
    from docker.errors import DockerException

    from harness.cluster.base import ClusterError
    from harness.toolchain import ToolchainError

    def err(msg: str) -> None:
        print(f"kmschaos: {msg}", file=sys.stderr)

    try:
        plan = plan_matrix(args)
    except (MatrixError, TopologyError) as e:
        err(str(e))
        return EXIT_USAGE
    out = sys.stderr if args.json else sys.stdout
    console = Console(
        file=out, highlight=False, soft_wrap=False, width=None if out.isatty() else 160
    )
    try:
        preflight(plan)
    except (ClusterError, ToolchainError, DockerException) as e:
        err(str(e))
        return EXIT_CRASHED
    _clear_previous(plan.report_dir)
    topo = plan.topology
    n = len(plan.faults) * len(plan.policies)
    console.print(
        f"kmschaos matrix: {topo.name}, {_count(len(plan.policies), 'policy', 'policies')} × "
        f"{_count(len(plan.faults), 'fault')} = {_count(n, 'cell')} on "
        f"{', '.join(plan.clients)}, target {plan.target}, "
        f"time scale {topo.time_scale:g}, {plan.jobs} at a time -> {plan.report_dir}/",
        highlight=False,
    )
    for c in plan.lonely_clients:
        console.print(
            f"  note: {c} lists only {plan.target}: nothing to fail over to, so each cell "
            "measures the outage",
            highlight=False,
        )
    if topo.time_scale >= 0.5 and any(
        _expected_cost(plan, f) > 10 for f in plan.faults if f not in plan.unsupported
    ):
        console.print(
            f"  note: a stalled replica costs {topo.response_timeout:g} s per request at this "
            "time scale; --time-scale 0.05 makes a 60 s timeout 3 s",
            highlight=False,
        )
    t0 = time.monotonic()
    rows, interrupted = run_matrix(plan, console)
    doc = matrix_document(plan, rows, time.monotonic() - t0, interrupted, _command_line(args, plan))
    write_reports(plan.report_dir, doc, rows)
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        console.print(render_table(doc, rows))
        for line in legend(doc):
            console.print(f"[dim]{escape(line)}[/]", highlight=False)
    crashed = [r for r in rows if r.status == "crashed"]
    for r in crashed:
        last = "\n".join(r.error.strip().splitlines()[-12:])
        console.print(
            f"\n[bold red]crashed[/] {r.fault} × {r.policy}: {escape(r.reason)}\n"
            f"{escape(last)}\n(log: {plan.report_dir}/cells/{r.cell_id}/cell.log)",
            highlight=False,
        )
    console.print(
        f"report: {plan.report_dir.resolve()}/ (matrix.json, matrix.md, cells/) in "
        f"{doc['duration_s']:.1f} s",
        highlight=False,
    )
    if interrupted:
        console.print("[magenta]interrupted[/]: the table above is partial", highlight=False)
        return EXIT_INTERRUPTED
    return EXIT_CRASHED if crashed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kmschaos")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_matrix_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """`kmschaos matrix ARGS` without the rest of the command line (argv: ARGS)."""
    args = build_parser().parse_args(["matrix", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"] and len(sys.argv) == 3:
        sys.exit(cell_main(sys.argv[2]))
    sys.exit(main())
