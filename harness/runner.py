"""`kmschaos run`: the scenario catalogue through pytest, then the verdict table.

Writes to the report folder: ``junit.xml`` (pytest), ``scenarios/<id>/history.jsonl``
and ``outcome.json`` per scenario, ``history.jsonl`` (all scenarios, each line tagged
with its scenario) and ``summary.json``. Returns 1 when any scenario failed, i.e. a
verdict differed from what the scenario expects.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.checkers import CHECKERS, brief
from harness.live import LiveStatus
from harness.report.page import short_name
from harness.store import ReportFolder
from harness.toolchain import repo_root, source_commit


class Progress:
    """A pytest plugin printing one line per finished scenario."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.results: dict[str, dict[str, Any]] = {}
        self.collect_errors: list[str] = []
        self.done = 0

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A file that cannot be collected (a broken rehearsal, a scenario that does not
        import): its message, not an empty table."""
        if report.failed:
            text = str(report.longrepr).strip()
            self.collect_errors.append(text)
            self.console.print(f"[bold red]cannot load[/] {escape(text)}", highlight=False)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        r = self.results.setdefault(
            nodeid, {"outcome": "interrupted", "duration": 0.0, "longrepr": "", "phases": {}}
        )
        r["duration"] += report.duration
        # when and where it ran: the bench's catalogue section reads where the time went
        r["phases"][report.when] = round(report.duration, 3)
        r.setdefault("start", report.start)
        r["stop"] = report.stop
        r["worker"] = getattr(report, "worker_id", None)  # xdist's gwN; None with -n 1
        if report.when == "call" and report.passed and r["outcome"] == "interrupted":
            r["outcome"] = "passed"
        if report.failed:
            r["outcome"] = "failed"
            r["longrepr"] = str(report.longrepr)[-3000:]
        elif report.skipped and r["outcome"] != "failed":
            r["outcome"] = "skipped"
            lr = report.longrepr
            r["longrepr"] = lr[2] if isinstance(lr, tuple) else str(lr)
        if report.when == "teardown":
            self.done += 1
            style = {
                "passed": "green",
                "failed": "bold red",
                "skipped": "yellow",
                "interrupted": "magenta",
            }[r["outcome"]]
            extra = escape(f" — {r['longrepr']}") if r["outcome"] == "skipped" else ""
            self.console.print(
                f"\\[{self.done:>2}] [{style}]{r['outcome'].upper():7}[/] {escape(nodeid)} "
                f"({r['duration']:.1f} s){extra}",
                highlight=False,
            )


def run_catalogue(
    scenarios: list[str],
    workers: int,
    report_dir: Path,
    time_scale: float | None,
    backend: str,
    extra: list[str],
    allow_external: bool = False,
    keep_keys: bool = False,
) -> int:
    import sys

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
    targets = scenarios or [str(repo_root() / "scenarios")]
    folder = ReportFolder(report_dir)
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report_dir.mkdir(parents=True)
    args = [
        *targets,
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        f"--kms-report-dir={report_dir}",
        f"--kms-backend={backend}",
        f"--junitxml={folder.junit}",
        "-o",
        "junit_family=xunit2",
        "-W",
        "ignore::DeprecationWarning",
        "--rootdir",
        str(repo_root()),
    ]
    if time_scale is not None:
        args.append(f"--kms-time-scale={time_scale}")
    if allow_external:
        args.append("--kms-allow-external")
    if keep_keys:
        args.append("--kms-keep-keys")
    if workers > 1:
        args += ["-n", str(workers)]
    args += extra
    scale_txt = f"time scale {time_scale}" if time_scale else "each topology's time scale"
    console.print(
        f"kmschaos run: {', '.join(targets)} ({scale_txt}, {workers} worker(s)) -> {report_dir}/"
    )
    # the note on slow time scales comes when a scenario starts at one (LiveStatus)
    progress = Progress(console)
    t0 = time.monotonic()
    live = LiveStatus(report_dir, console).start()  # step, faults, ops/s, errors meanwhile
    try:
        code = pytest.main(args, plugins=[progress])
    finally:
        live.stop()
    elapsed = time.monotonic() - t0
    summary = write_summary(report_dir, progress.results, elapsed, time_scale, backend)
    print_table(console, summary)
    failed = [t for t in summary["scenarios"] if t["outcome"] == "failed"]
    for t in failed:
        console.print(
            f"\n[bold red]FAILED[/] {escape(t['id'])}\n{escape(t['detail'])}", highlight=False
        )
    console.print(f"\nreport: {_render_page(console, report_dir, backend)}")
    if progress.collect_errors:
        console.print(
            f"[red]{len(progress.collect_errors)} file(s) could not be loaded[/]: fix them and "
            "run again (nothing was started)"
        )
        return 2
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        console.print("[red]no scenario collected[/]: check the SCENARIO arguments")
        return 2
    if code == pytest.ExitCode.USAGE_ERROR:
        return 2
    if code == pytest.ExitCode.INTERRUPTED:
        console.print(
            "[magenta]interrupted[/]: faults healed and clusters stopped; the report above "
            "is partial"
        )
        return 130
    return 0 if code == pytest.ExitCode.OK else 1


def _render_page(console: Console, report_dir: Path, backend: str) -> str:
    """Write report.html; the report line to print. A page that cannot be drawn is a
    warning: the verdicts above and the files stand without it."""
    from harness.report import render_report

    files = "summary.json, junit.xml, history.jsonl"
    try:
        page = render_report(report_dir, backend=backend)
    except Exception as e:  # noqa: BLE001 - the verdicts stand without the page
        console.print(
            f"[yellow]report.html not written[/]: {escape(f'{type(e).__name__}: {e}')}",
            highlight=False,
        )
        return f"{report_dir.resolve()}/ ({files})"
    return f"{page.resolve()} (and {files} in {report_dir.resolve()}/)"


def write_summary(
    report_dir: Path,
    results: dict[str, dict[str, Any]],
    elapsed: float,
    time_scale: float | None,
    backend: str = "local",
) -> dict[str, Any]:
    """``summary.json`` and the merged ``history.jsonl`` from the scenarios' folders. The
    run's `time_scale` is the override, else the one every scenario ran at (None when
    they differ; each row has its own); `started` (seconds since the epoch) and `commit`
    (`source_commit`, None outside a git checkout) place the run among others
    (`kmschaos trend`)."""
    folder = ReportFolder(report_dir)
    rows = []
    with folder.history.open("w", encoding="utf-8") as merged:
        for nodeid, r in sorted(results.items()):
            sc = folder.scenario(nodeid)
            outcome: dict[str, Any] = {}
            if sc.outcome.exists():
                outcome = json.loads(sc.outcome.read_text())
            scale = None
            if sc.history.exists():
                for line in sc.history.read_text().splitlines():
                    if line.strip():
                        d = json.loads(line)
                        if d.get("type") == "header":
                            scale = d.get("time_scale")
                        d["scenario"] = nodeid
                        merged.write(json.dumps(d) + "\n")
            rows.append(
                {
                    "id": nodeid,
                    "outcome": r["outcome"],
                    "duration_s": round(r["duration"], 3),
                    "phases_s": r.get("phases", {}),  # setup (cluster start), call, teardown
                    "start": r.get("start"),  # epoch seconds, first phase began
                    "stop": r.get("stop"),  # epoch seconds, last phase ended
                    "worker": r.get("worker"),
                    "detail": r["longrepr"] if r["outcome"] != "passed" else "",
                    "verdicts": outcome.get("verdicts", {}),
                    "findings": outcome.get("findings", []),
                    "topology": outcome.get("figures", {}).get("topology"),
                    "time_scale": scale,
                    "history": str(sc.history) if sc.history.exists() else None,
                }
            )
    scales = {row["time_scale"] for row in rows if row["time_scale"] is not None}
    summary = {
        "started": time.time() - elapsed,
        "commit": source_commit(),
        "duration_s": round(elapsed, 2),
        "time_scale": time_scale if time_scale is not None else _only(scales),
        "backend": backend,
        "totals": {
            k: sum(1 for r in rows if r["outcome"] == k)
            for k in ("passed", "failed", "skipped", "interrupted")
        },
        "scenarios": rows,
    }
    folder.summary.write_text(json.dumps(summary, indent=2))
    return summary


def _only(values: set[Any]) -> Any:
    return next(iter(values)) if len(values) == 1 else None


def _cell(v: dict[str, Any] | None) -> str:
    if not v:
        return "[dim]-[/]"
    status, expected = v.get("status"), v.get("expected")
    colour = {"pass": "green", "fail": "red", "unknown": "yellow"}.get(str(status), "white")
    fig = brief(v)
    mark = "" if expected in (None, status) else f" [bold red](expected {expected})[/]"
    if expected == status == "fail":
        mark = " [dim](expected)[/]"
    return f"[{colour}]{status}[/]{fig}{mark}"


def _print_lint(console: Console, summary: dict[str, Any]) -> None:
    """The linter's findings on every topology the run used, once each, as warnings."""
    from harness.topology import TopologyError, load_topology
    from harness.topology_lint import format_findings, lint

    files = sorted({row.get("topology") for row in summary["scenarios"] if row.get("topology")})
    for f in files:
        try:
            findings = lint(load_topology(f))
        except (TopologyError, OSError):
            continue
        if findings:
            console.print("[yellow]lint[/]", end=" ")
            console.print(format_findings(findings, f), markup=False, highlight=False)


def print_table(console: Console, summary: dict[str, Any]) -> None:
    t = Table(title="verdicts", title_justify="left")
    t.add_column("scenario")
    used = {name for row in summary["scenarios"] for name in row["verdicts"]}
    shown = [v for v in CHECKERS if v in used] or list(CHECKERS)[:3]
    for v in shown:
        t.add_column(v)
    t.add_column("result")
    ids = [row["id"] for row in summary["scenarios"]]
    for row in summary["scenarios"]:
        name = short_name(row["id"], ids)
        result = {
            "passed": "[green]ok[/]",
            "failed": "[bold red]REGRESSION[/]",
            "skipped": "[yellow]skipped[/]",
            "interrupted": "[magenta]interrupted[/]",
        }[row["outcome"]]
        t.add_row(escape(name), *(_cell(row["verdicts"].get(v)) for v in shown), result)
    console.print(t)
    for row in summary["scenarios"]:
        for f in row["findings"]:
            name = short_name(row["id"], ids)
            console.print(f"[bold]finding[/] ({escape(name)}): {escape(f)}", highlight=False)
    _print_lint(console, summary)
    tot = summary["totals"]
    console.print(
        f"{tot['passed']} passed, {tot['failed']} failed, {tot['skipped']} skipped"
        + (f", {tot['interrupted']} interrupted" if tot["interrupted"] else "")
        + " "
        f"in {summary['duration_s']:.1f} s",
        highlight=False,
    )
