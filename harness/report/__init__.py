"""`report.html`: one self-contained page that shows what a run's report folder proves.

Read from the folder `kmschaos run` writes (`harness.store.ReportFolder`), never from a
cluster, so `kmschaos report DIR` re-renders it any time. Per scenario (regressions and
findings first, open): a timeline per client (ops coloured by the replica that served
them, failed attempts, fault windows as bands), the audit rounds (which replicas lacked
keys others held), the checkers' verdicts with a plain-language reading of every failed
or unexpected one and the history lines that prove it, a rehearsal's verdicts step by
step, the lost keys, the topology drawn with the linter's findings. A run that was
interrupted gives a *partial* report: what exists is drawn, and the page says so.

    load           the folder → ReportData (ScenarioData per scenario)
    history_view   a history read for the page: t = 0, replicas, event lines, evidence
    timeline       the timeline SVG          lag            the audit-round grid SVG
    topology_view  the topology drawing and lint table
    verdicts       the verdict tables, explanations, lost keys
    style          colours, CSS, JS          page           render_html: the page
    command        render_report, `kmschaos report`
"""

from __future__ import annotations

from harness.report.command import add_report_parser, cmd_report, render_report
from harness.report.load import ReportData, ReportError, ScenarioData, load_report
from harness.report.page import render_html
from harness.report.style import FAULT_BAND, REPLICA_COLOURS

__all__ = [
    "FAULT_BAND",
    "REPLICA_COLOURS",
    "ReportData",
    "ReportError",
    "ScenarioData",
    "add_report_parser",
    "cmd_report",
    "load_report",
    "render_html",
    "render_report",
]
