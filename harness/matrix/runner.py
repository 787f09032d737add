"""Running a matrix's cells: each in its own process (``python -m harness.matrix --cell
SPEC``), `plan.jobs` at a time, long cells first, a line per finished cell; on an
interrupt every running cell heals its fault and stops its cluster (forced, and the
leftovers reaped, if that takes longer than a cleanup can)."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from harness.matrix.facts import CellResult
from harness.matrix.plan import CellSpec, MatrixPlan
from harness.matrix.render import STYLE

# How the parent starts a cell's process (`harness.matrix.__main__` -> `cell.cell_main`).
CELL_COMMAND = ("-m", "harness.matrix", "--cell")


class CellRunner:
    """Starts cell processes; `next_done()` returns each one as it ends."""

    def __init__(self) -> None:
        self._done: queue.Queue[tuple[CellSpec, int, float]] = queue.Queue()
        self.running: dict[str, tuple[CellSpec, subprocess.Popen[bytes], float]] = {}

    def start(self, spec: CellSpec) -> None:
        folder = spec.folder
        folder.root.mkdir(parents=True, exist_ok=True)
        folder.spec.write_text(json.dumps(spec.to_dict(), indent=2))
        log = folder.log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, *CELL_COMMAND, str(folder.spec)],
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
    """The result the cell wrote, or a crash naming the exit status and the log's tail
    (interrupted, when it was stopped before it could write one)."""
    from harness.wait import tail

    folder = spec.folder
    try:
        result = CellResult.from_dict(json.loads(folder.result.read_text()))
    except (OSError, ValueError):
        result = CellResult(spec.policy, spec.fault, spec.target, "crashed")
        if interrupting:
            result.status, result.reason = "interrupted", f"stopped (exit status {code})"
        else:
            result.reason = f"cell process exited with status {code} and no result"
            result.error = tail(folder.log, 15)
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
        elif never_ends := plan.unbounded(s.policy, s.fault):
            results[s.cell_id] = CellResult(
                s.policy, s.fault, s.target, "finding", reason=never_ends
            )
    todo = [s for s in specs if s.cell_id not in results]
    todo.sort(key=lambda s: -plan.expected_cost(s.fault))  # long cells first
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
