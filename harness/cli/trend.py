"""`kmschaos trend RUN_DIR...`: several runs' figures over time, drift flagged
(`harness.trend`); a table, ``--json`` or an ``--html`` page."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, UserError
from harness.trend import (
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    FIGURES,
    Judgement,
    Run,
    TrendError,
    dropped,
    judge_all,
    read_runs,
    render_trend,
    series_of,
)


def _percent(text: str) -> float:
    """``20`` or ``20%``: a share (0.2)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a percentage such as 20") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be above 0")
    return value / 100


def _window(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of runs") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _header(runs: Sequence[Run], ordered: str, window: int, threshold: float) -> list[str]:
    lines = [
        f"kmschaos trend: {len(runs)} run(s) {ordered}, oldest first; baseline: the median of "
        f"up to {window} previous runs; drift: worse by more than {threshold * 100:g}%"
    ]
    for i, r in enumerate(runs, 1):
        scale = f", time scale {r.time_scale:g}" if r.time_scale is not None else ""
        lines.append(f"  #{i} {r.folder}  ({r.when}{scale})")
    gone = dropped(runs)
    if gone:
        lines.append(
            f"left out: {len(gone)} scenario(s) of earlier runs the newest did not run "
            f"({', '.join(gone[:3])}{', …' if len(gone) > 3 else ''})"
        )
    scales = sorted({r.time_scale for r in runs if r.time_scale is not None})
    if len(scales) > 1:
        lines.append(
            "note: the runs differ in time scale ("
            + ", ".join(f"{s:g}" for s in scales)
            + "): figures in seconds scale with it, compare runs at one scale"
        )
    return lines


def print_trend(
    runs: Sequence[Run],
    judgements: Sequence[Judgement],
    ordered: str,
    window: int,
    threshold: float,
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from harness.report.page import short_name

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    for line in _header(runs, ordered, window, threshold):
        console.print(escape(line))
    if not judgements:
        names = ", ".join(f.name for f in FIGURES)
        console.print(f"no run holds any of the followed figures ({names})")
        return
    t = Table(title="figures over the runs (oldest → newest)", title_justify="left")
    t.add_column("scenario")
    t.add_column("figure")
    for i in range(len(runs)):
        t.add_column(f"#{i + 1}", justify="right")
    for name in ("baseline", "change"):
        t.add_column(name, justify="right")
    t.add_column("")
    ids = sorted({j.series.scenario for j in judgements})
    shown = ""
    for j in judgements:
        fig = j.series.figure
        sid = j.series.scenario
        name = escape(short_name(sid, ids)) if sid != shown else ""
        shown = sid
        base = f"{fig.format(j.baseline)} ({j.baseline_runs})" if j.baseline is not None else "-"
        t.add_row(
            name,
            fig.name,
            *(fig.format(v) for v in j.values),
            base,
            f"{j.change:+.1%}" if j.change is not None else "-",
            "[bold red]DRIFT[/]" if j.drift else "",
        )
    console.print(t)
    drifts = [j for j in judgements if j.drift]
    for j in drifts:
        fig = j.series.figure
        console.print(
            f"[bold red]DRIFT[/] {escape(short_name(j.series.scenario, ids))} {fig.name}: "
            f"{fig.format(j.newest)} against {fig.format(j.baseline)}, {escape(j.reason)}"
        )
    console.print(
        f"{len(drifts)} drift(s) in {len(judgements)} figure(s) of {len(ids)} scenario(s)"
        if drifts
        else f"no drift in {len(judgements)} figure(s) of {len(ids)} scenario(s)"
    )


def as_json(
    runs: Sequence[Run],
    judgements: Sequence[Judgement],
    ordered: str,
    window: int,
    threshold: float,
) -> dict[str, Any]:
    return {
        "runs": [
            {
                "folder": str(r.folder),
                "started": r.started,
                "commit": r.commit,
                "time_scale": r.time_scale,
                "backend": r.backend,
            }
            for r in runs
        ],
        "ordered": ordered,
        "window": window,
        "threshold": threshold,
        "left_out": dropped(runs),
        "drifts": sum(1 for j in judgements if j.drift),
        "figures": [j.to_dict() for j in judgements],
    }


def cmd_trend(args: argparse.Namespace) -> int:
    """0 no drift (or no --fail-on-drift), 1 a drift with --fail-on-drift, 2 bad input."""
    t0 = time.monotonic()
    try:
        runs, ordered = read_runs([Path(d) for d in args.run_dirs])
    except TrendError as e:
        raise UserError(str(e), EXIT_USAGE) from None
    judgements = judge_all(series_of(runs), args.window, args.threshold)
    if args.json:
        print(json.dumps(as_json(runs, judgements, ordered, args.window, args.threshold), indent=2))
    else:
        print_trend(runs, judgements, ordered, args.window, args.threshold)
    if args.html:
        page = Path(args.html)
        text = render_trend(
            runs, judgements, ordered=ordered, window=args.window, threshold=args.threshold
        )
        try:
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserError(f"{page}: cannot write: {e.strerror}", EXIT_USAGE) from None
        print(
            f"trend page: {page.resolve()} ({len(text) / 1024:.0f} KB, "
            f"{time.monotonic() - t0:.2f} s)",
            file=sys.stderr if args.json else sys.stdout,
        )
    drifted = any(j.drift for j in judgements)
    return EXIT_FAIL if drifted and args.fail_on_drift else EXIT_OK


def add_parsers(sub: Any) -> None:
    """The `trend` subcommand."""
    figures = "; ".join(
        f"{f.name} ({'larger' if f.larger_is_worse else 'smaller'} is worse, noise "
        f"{f.format_delta(f.noise)}): {f.what}"
        for f in FIGURES
    )
    p = sub.add_parser(
        "trend",
        help="several runs' figures over time (nightly runs); flag drift",
        description="Read the summary.json of each RUN_DIR (report folders of `kmschaos "
        "run`), order the runs by their start time (the order given when a summary does "
        "not record it) and show per scenario each figure over the runs: "
        f"{figures}. Where a verdict holds a value per fault and client, the worst counts. "
        "A figure drifts when the newest run's value is worse than the median of the "
        "previous --window runs by more than --threshold of it, and by more than the "
        "figure's noise.",
        epilog="Exit status: 0, or 1 with --fail-on-drift when a figure drifted; 2 when a "
        "RUN_DIR has no readable summary.json (the message names the file, line or field).",
    )
    p.add_argument(
        "run_dirs", metavar="RUN_DIR", nargs="+", help="report folders (e.g. reports/nightly-*)"
    )
    p.add_argument(
        "--window",
        type=_window,
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"the baseline is the median of the previous N runs (default {DEFAULT_WINDOW})",
    )
    p.add_argument(
        "--threshold",
        type=_percent,
        default=DEFAULT_THRESHOLD,
        metavar="PCT",
        help=f"drift: worse than the baseline by more than PCT %% of it (default "
        f"{DEFAULT_THRESHOLD * 100:g})",
    )
    p.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when any figure drifted (CI)"
    )
    p.add_argument(
        "--html", metavar="OUT", help="also write a page with a small chart per figure to OUT"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON, not a table")
    p.set_defaults(func=cmd_trend)


__all__ = ["add_parsers", "as_json", "cmd_trend", "print_trend"]
