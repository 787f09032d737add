"""`kmschaos report DIR`: render a report folder's page (`render_report`, which
`kmschaos run` also calls at the end of a run) and the subcommand's parser."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from harness.report.load import ReportError, load_report
from harness.report.page import render_html
from harness.store import ReportFolder


def render_report(
    report_dir: Path, output: Path | None = None, *, backend: str | None = None
) -> Path:
    """Write the report page for `report_dir` (default: the folder's own page,
    `ReportFolder.page`) and return its path. `backend` fills in what an older summary
    does not record."""
    data = load_report(Path(report_dir))
    if backend and not data.backend:
        data.backend = backend
    page = render_html(data)
    target = Path(output) if output else ReportFolder(Path(report_dir)).page
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ReportError(f"{target}: cannot write: {e.strerror}") from None
    return target


def cmd_report(args: argparse.Namespace) -> int:
    """`kmschaos report DIR [--output FILE]`: 0 written, 2 not a report folder."""
    t0 = time.monotonic()
    output = getattr(args, "output", None)
    try:
        path = render_report(Path(args.report_dir), Path(output) if output else None)
    except ReportError as e:
        print(f"kmschaos: {e}", file=sys.stderr)
        return 2
    size = path.stat().st_size
    print(f"report: {path} ({size / 1024:.0f} KB, {time.monotonic() - t0:.2f} s)")
    return 0


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `report` to an argparse subparsers object."""
    d = ReportFolder(Path("DIR"))  # the folder's file names, as the help shows them
    scenario = d.scenario("ID")
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help=f"render {d.page.name} from a report folder (no cluster needed)",
        description=f"Render {d.page} from what `kmschaos run` wrote to DIR "
        f"({d.summary.name}, {d.history.name}, {d.scenarios.name}/*/"
        f"{{{scenario.history.name},{scenario.outcome.name}}}): per "
        "scenario a timeline per client with fault windows, the audit rounds, the verdicts "
        "with what proves them, lost keys and the topology with its lint findings. One "
        "self-contained file: open it offline. An interrupted run gives a partial report.",
    )
    p.add_argument("report_dir", metavar="DIR", help="a report folder (e.g. reports/latest)")
    p.add_argument("-o", "--output", metavar="FILE", help=f"write here instead of {d.page}")
    p.set_defaults(func=cmd_report)
    return p


__all__ = ["add_report_parser", "cmd_report", "render_report"]
