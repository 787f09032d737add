"""Section 6, the scenario catalogue's efficiency: `kmschaos run` (what `make demo` runs
first) at time scale 0.05, once with one worker and once with two, each into a temporary
report folder; its wall time against the waits its scenarios must contain.

A scenario's required waits come from what the run recorded, not from constants kept by
hand: the union (overlaps counted once) of its fault windows (the checkers' own,
`fault_windows`: inject → heal, a fault never healed lasting to the history's end), its
clients' timed-out attempts that a fault caused (begun while it was being injected or in
effect; start → end) and a rehearsal's deliberate holds (`wait` steps, a random draw's
hold and gap, a rolling certificate rotation's pauses: the rehearsal figures' ``holds``).
Everything else a scenario spends — its cluster's start-up (pytest's setup) and stop
(teardown), the baseline and recovery operations, probes, audits, checkers, timeouts no
fault explains — is overhead: duration − required waits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import REPO
from bench.figures import CATALOGUE_EFFICIENCY_MAX, CATALOGUE_SPEEDUP_MIN, Figure
from bench.machine import load_and_runs
from harness.checkers.verdict import fault_windows
from harness.client.engine import TIMED_OUT
from harness.history import Complete, History
from harness.report.page import short_name
from harness.store import ReportFolder, ScenarioFolder

TIME_SCALE = 0.05  # make demo's TIME_SCALE
WORKERS = (1, 2)
TOP = 10  # scenarios listed by overhead
STOP_GRACE_S = 120.0  # an interrupted run heals and stops its clusters within this
SECTION = f"catalogue (kmschaos run, time scale {TIME_SCALE:g})"


@dataclass(frozen=True)
class Waits:
    """The seconds a scenario must wait, by cause; each cause counts only the time the
    ones before it do not cover."""

    fault_s: float  # union of the fault windows
    timeout_s: float  # timed-out attempts a fault caused, outside the windows
    hold_s: float  # rehearsal holds outside both
    # not counted: timed-out attempts begun outside every fault (a machine too slow for
    # the timeouts, or a scenario bug)
    other_timeouts_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.fault_s + self.timeout_s + self.hold_s


def union_s(spans: list[tuple[float, float]]) -> float:
    """The length of the union of [start, end] spans."""
    total, cur_start, cur_end = 0.0, None, 0.0
    for start, end in sorted(spans):
        if cur_start is None or start > cur_end:
            if cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_start is not None:
        total += cur_end - cur_start
    return total


def required_waits(folder: ScenarioFolder) -> Waits:
    """What `folder`'s scenario had to wait (zero when it recorded nothing)."""
    events = History.load(folder.history).events() if folder.history.exists() else []
    windows = fault_windows(events)
    faults = [(w.start, w.end) for w in windows]
    timeouts: list[tuple[float, float]] = []
    others: list[tuple[float, float]] = []
    for e in events:
        for a in e.attempts if isinstance(e, Complete) else []:
            if a.outcome in TIMED_OUT:
                caused = any(w.began <= a.start <= w.end for w in windows)
                (timeouts if caused else others).append((a.start, a.end))
    holds: list[tuple[float, float]] = []
    if folder.outcome.exists():
        figures = json.loads(folder.outcome.read_text()).get("figures", {})
        holds = [(float(a), float(b)) for a, b in figures.get("rehearsal", {}).get("holds", [])]
    f = union_s(faults)
    ft = union_s(faults + timeouts)
    return Waits(f, ft - f, union_s(faults + timeouts + holds) - ft, union_s(others))


def scenario_rows(report_dir: Path) -> list[dict[str, Any]]:
    """Each scenario of a finished run: its phases, required waits and overhead."""
    folder = ReportFolder(report_dir)
    summary = json.loads(folder.summary.read_text())
    ids = [r["id"] for r in summary["scenarios"]]
    rows = []
    for r in summary["scenarios"]:
        w = required_waits(folder.scenario(r["id"]))
        phases = r.get("phases_s", {})
        rows.append(
            {
                "id": r["id"],
                "name": short_name(r["id"], ids),
                "outcome": r["outcome"],
                "worker": r.get("worker"),
                "start": r.get("start"),
                "stop": r.get("stop"),
                "duration_s": r["duration_s"],
                "setup_s": phases.get("setup", 0.0),
                "call_s": phases.get("call", 0.0),
                "teardown_s": phases.get("teardown", 0.0),
                "waits": {**asdict(w), "total_s": w.total_s},
                "overhead_s": r["duration_s"] - w.total_s,
            }
        )
    return rows


def run_catalogue(workers: int, report_dir: Path) -> dict[str, Any]:
    """`kmschaos run -n workers` into `report_dir`, timed from the command's start to its
    exit. An interruption is passed on as one SIGINT (the run heals its faults and stops
    its clusters), then a second (it kills what it started) if it takes too long."""
    cmd = [sys.executable, "-m", "harness.cli", "run", "-n", str(workers)]
    cmd += ["--time-scale", str(TIME_SCALE), "--report-dir", str(report_dir)]
    log = report_dir.with_suffix(".log")
    noise_before = load_and_runs()
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
            raise
        wall = time.perf_counter() - t0
    run: dict[str, Any] = {
        "workers": workers,
        "command": " ".join(cmd[1:]),
        "exit": code,
        "wall_s": wall,
        "noise_before": noise_before,
        "noise_after": load_and_runs(),
    }
    if not ReportFolder(report_dir).summary.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        run["error"] = f"exit {code}, no summary.json; last lines:\n" + "\n".join(tail)
        return run
    summary = json.loads(ReportFolder(report_dir).summary.read_text())
    rows = scenario_rows(report_dir)
    waits = [r["waits"] for r in rows]
    run |= {
        "pytest_s": summary["duration_s"],
        "totals": summary["totals"],
        "waits_s": sum(w["total_s"] for w in waits),
        "fault_s": sum(w["fault_s"] for w in waits),
        "timeout_s": sum(w["timeout_s"] for w in waits),
        "hold_s": sum(w["hold_s"] for w in waits),
        "other_timeouts_s": sum(w["other_timeouts_s"] for w in waits),
        "without_waits": sum(1 for w in waits if w["total_s"] == 0),
        "setup_s": sum(r["setup_s"] for r in rows),
        "teardown_s": sum(r["teardown_s"] for r in rows),
        "call_work_s": sum(r["call_s"] - r["waits"]["total_s"] for r in rows),
        "scenario_s": sum(r["duration_s"] for r in rows),
        "workers_idle_at_end_s": _idle_at_end(rows),
        "scenarios": rows,
    }
    return run


def _idle_at_end(rows: list[dict[str, Any]]) -> float:
    """With several workers: from the first worker's last scenario end to the last's (a
    long scenario scheduled last keeps one worker busy while the others wait)."""
    last: dict[str, float] = {}
    for r in rows:
        if r["worker"] is not None and r["stop"]:
            last[r["worker"]] = max(last.get(r["worker"], 0.0), r["stop"])
    return max(last.values()) - min(last.values()) if len(last) > 1 else 0.0


def _run_note(run: dict[str, Any]) -> str:
    t = run["totals"]
    bad = "".join(f", {t[k]} {k}" for k in ("failed", "skipped", "interrupted") if t[k])
    load = f"{run['noise_before']['loadavg'][0]:.2f}/{run['noise_after']['loadavg'][0]:.2f}"
    return (
        f"{sum(t.values())} scenarios, {t['passed']} passed{bad}; pytest {run['pytest_s']:.0f} s; "
        f"load average before/after {load}"
    )


def bench_catalogue() -> tuple[list[Figure], dict[str, Any]]:
    """Both runs, the efficiency and speed-up rows, where the time goes, and the
    scenarios with the most overhead."""
    doc: dict[str, Any] = {"time_scale": TIME_SCALE, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-catalogue-") as tmp:
        for n in WORKERS:
            doc["runs"][f"n{n}"] = run_catalogue(n, Path(tmp) / f"n{n}")
    return catalogue_figures(doc), doc


def catalogue_figures(doc: dict[str, Any]) -> list[Figure]:
    """The rows from both runs' records; adds the ratios and the top list to `doc`."""
    one, two = doc["runs"]["n1"], doc["runs"]["n2"]
    failed = [r["error"] for r in (one, two) if "error" in r]
    if failed:
        doc["error"] = "; ".join(failed)
        return [
            Figure(SECTION, f"wall time, -n {r['workers']}", r["wall_s"], "s", note="run FAILED")
            for r in (one, two)
        ]
    waits = one["waits_s"]
    doc["efficiency"] = one["wall_s"] / waits if waits else float("inf")
    doc["speedup"] = one["wall_s"] / two["wall_s"]
    # the catalogue is the working tree's: a scenario added, removed or newly skipped
    # between the runs
    ids = [{r["id"] for r in run["scenarios"] if r["outcome"] != "skipped"} for run in (one, two)]
    doc["only_in_n1"], doc["only_in_n2"] = sorted(ids[0] - ids[1]), sorted(ids[1] - ids[0])
    differ = ""
    if doc["only_in_n1"] or doc["only_in_n2"]:
        differ = (
            f"NOT comparable: the runs ran different scenarios (only -n 1: "
            f"{', '.join(doc['only_in_n1']) or 'none'}; only -n 2: "
            f"{', '.join(doc['only_in_n2']) or 'none'})"
        )
    top = sorted(one["scenarios"], key=lambda r: -r["overhead_s"])[:TOP]
    doc["top_overhead"] = [
        {k: r[k] for k in ("id", "overhead_s", "duration_s", "setup_s", "call_s", "teardown_s")}
        | {"waits_s": r["waits"]["total_s"]}
        for r in top
    ]
    figs = [
        Figure(SECTION, "wall time, -n 1", one["wall_s"], "s", note=_run_note(one)),
        Figure(SECTION, "wall time, -n 2", two["wall_s"], "s", note=_run_note(two)),
        Figure(
            SECTION,
            "Σ required waits (-n 1 run)",
            waits,
            "s",
            note=f"fault windows {one['fault_s']:.1f} s + timed-out attempts they caused, "
            f"outside them {one['timeout_s']:.1f} s + rehearsal holds outside both "
            f"{one['hold_s']:.1f} s; {one['without_waits']} scenarios have none; not counted: "
            f"{one['other_timeouts_s']:.1f} s of timed-out attempts no fault caused; the -n 2 "
            f"run's: {two['waits_s']:.1f} s",
        ),
        Figure(
            SECTION,
            "efficiency: wall(-n 1) / Σ required waits",
            doc["efficiency"],
            "",
            CATALOGUE_EFFICIENCY_MAX,
            "<=",
        ),
        Figure(
            SECTION,
            "speed-up: wall(-n 1) / wall(-n 2)",
            doc["speedup"],
            "",
            CATALOGUE_SPEEDUP_MIN,
            ">=",
            note=differ,
        ),
        Figure(
            SECTION,
            "-n 2: worker-seconds per second of required wait (2 × wall / Σ waits)",
            2 * two["wall_s"] / two["waits_s"] if two["waits_s"] else float("inf"),
            "",
        ),
        Figure(SECTION, "-n 1 overhead: cluster start-up (Σ setup)", one["setup_s"], "s"),
        Figure(SECTION, "-n 1 overhead: cluster stop (Σ teardown)", one["teardown_s"], "s"),
        Figure(
            SECTION,
            "-n 1 overhead: work in the scenarios beyond the waits (Σ call − waits)",
            one["call_work_s"],
            "s",
            note="baseline and recovery operations, probes, audits, checkers",
        ),
        Figure(
            SECTION,
            "-n 1 overhead: outside the scenarios (wall − Σ durations)",
            one["wall_s"] - one["scenario_s"],
            "s",
            note="interpreter, collection, summary and report page",
        ),
        Figure(
            SECTION,
            "-n 2: one worker idle at the end (first worker done → last)",
            two["workers_idle_at_end_s"],
            "s",
        ),
    ]
    for r in top:
        figs.append(
            Figure(
                SECTION,
                f"overhead, -n 1: {r['name']}",
                r["overhead_s"],
                "s",
                note=f"{r['duration_s']:.1f} s = waits {r['waits']['total_s']:.1f} + start "
                f"{r['setup_s']:.1f} + other work {r['call_s'] - r['waits']['total_s']:.1f} "
                f"+ stop {r['teardown_s']:.1f}",
            )
        )
    return figs
