"""The `kmschaos matrix` command: its options, and what it prints and returns around a
run of the cells (plan, preflight, the run, the reports, the table).

Exit status: 0 the matrix ran (findings are information), 1 a cell crashed, 2 bad
input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from harness.client.policies import POLICIES
from harness.faults import FAULTS
from harness.matrix.plan import (
    DEFAULT_POLICIES,
    DEFAULT_REPORT_DIR,
    MatrixError,
    MatrixPlan,
    plan_matrix,
    preflight,
)
from harness.matrix.render import legend, matrix_document, render_table, write_reports
from harness.matrix.runner import run_matrix
from harness.options import add_backend, add_report_dir, add_time_scale
from harness.store import HISTORY, MatrixFolder
from harness.topology import TopologyError

EXIT_OK, EXIT_CRASHED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _contents(folder: MatrixFolder) -> str:
    """What a matrix folder holds, by name."""
    return f"{folder.json.name}, {folder.markdown.name}, {folder.cells.name}/"


def add_matrix_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the `matrix` subcommand to an argparse subparsers object."""
    contents = _contents(MatrixFolder(Path(DEFAULT_REPORT_DIR)))
    p: argparse.ArgumentParser = sub.add_parser(
        "matrix",
        help="every failover policy against every fault, on fresh clusters: one table",
        description="Run each (policy, fault) cell on a fresh cluster of TOPOLOGY: a short "
        "workload on the first client (or every client) with that policy; inject the fault "
        "on the target; wait for failovers; heal; recover; then the checkers. Prints a line "
        "per finished cell, then a table: failover time, failed operations in the fault "
        "window, server order respected, acknowledged keys lost (after an audit, when the "
        "topology replicates), and a status (pass, finding, unsupported with the reason: "
        "a fault the backend cannot run starts nothing). "
        f"Writes the matrix ({contents} with each cell's {HISTORY}) under --report-dir. "
        "Exit 0 when the matrix ran (findings are information), 1 if a cell crashed, "
        "2 on bad input, 130 when interrupted (running cells are healed and stopped).",
    )
    p.add_argument("topology", metavar="TOPOLOGY", help="topology YAML file")
    defaults = FAULTS.matrix_kinds(default_only=True)
    p.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        metavar="P,P",
        help=f"comma-separated failover policies, or `all` (default: "
        f"{','.join(DEFAULT_POLICIES)}; known: {', '.join(POLICIES)})",
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
        help="the replica to fault (default: the first of the first client's order; behind "
        "a load balancer listed first, its first replica: then the balancer's ejection "
        "(lb_ejection) is the cell's failover, and the fault lasts as long as its health "
        "check may take)",
    )
    p.add_argument(
        "--all-clients",
        action="store_true",
        help="run the workload on every client of the topology (default: the first one)",
    )
    add_time_scale(p)
    p.add_argument(
        "-j",
        dest="jobs",
        type=int,
        default=2,
        metavar="N",
        help="cells run at once, each on its own cluster (default 2)",
    )
    add_report_dir(p, DEFAULT_REPORT_DIR, f"the matrix ({contents})")
    add_backend(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print the matrix as JSON on stdout instead of the table (progress goes to stderr)",
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
    if args.time_scale is not None:
        parts.append(f"--time-scale {args.time_scale:g}")
    parts.append(f"-j {plan.jobs}")
    if plan.backend != "local":
        parts.append(f"--backend {plan.backend}")
    return " ".join(parts)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def clear_previous(folder: MatrixFolder) -> None:
    """Remove what an earlier matrix wrote here (only that: the folder may hold more)."""
    for path in (folder.json, folder.markdown):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for path in (folder.cells, folder.probe):
        if path.is_dir():
            shutil.rmtree(path)


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
    clear_previous(plan.folder)
    topo = plan.topology
    root = plan.folder.root
    n = len(plan.faults) * len(plan.policies)
    console.print(
        f"kmschaos matrix: {topo.name}, {_count(len(plan.policies), 'policy', 'policies')} × "
        f"{_count(len(plan.faults), 'fault')} = {_count(n, 'cell')} on "
        f"{', '.join(plan.clients)}, target {plan.target}, "
        f"time scale {topo.time_scale:g}, {plan.jobs} at a time -> {root}/",
        highlight=False,
    )
    for c in plan.lonely_clients:
        console.print(
            f"  note: {c} lists only {plan.target}: nothing to fail over to, so each cell "
            "measures the outage",
            highlight=False,
        )
    if topo.time_scale >= 0.5 and any(
        plan.expected_cost(f) > 10 for f in plan.faults if f not in plan.unsupported
    ):
        console.print(
            f"  note: a stalled replica costs {topo.response_timeout:g} s per request at this "
            "time scale; --time-scale 0.05 makes a 60 s timeout 3 s",
            highlight=False,
        )
    t0 = time.monotonic()
    rows, interrupted = run_matrix(plan, console)
    doc = matrix_document(plan, rows, time.monotonic() - t0, interrupted, _command_line(args, plan))
    write_reports(plan.folder, doc, rows)
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
            f"{escape(last)}\n(log: {plan.folder.cell(r.cell_id).log})",
            highlight=False,
        )
    console.print(
        f"report: {root.resolve()}/ ({_contents(plan.folder)}) in {doc['duration_s']:.1f} s",
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
