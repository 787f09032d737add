"""How a matrix looks: a row's columns (`cell_columns`), the rich table, the markdown
page, the legend under both, and the ``matrix.json`` document (`matrix_document`),
written with the markdown by `write_reports`."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.matrix.facts import MEASURED, CellResult
from harness.matrix.plan import MatrixPlan
from harness.store import MatrixFolder

STYLE = {
    "pass": "green",
    "finding": "bold yellow",
    "unknown": "yellow",
    "unsupported": "dim",
    "crashed": "bold red",
    "interrupted": "magenta",
    "not run": "dim",
}


def _seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"


def cell_columns(r: CellResult) -> dict[str, str]:
    """The table's text for one row (plain text; colours are added by the rich table)."""
    measured = r.status in MEASURED
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


def write_reports(folder: MatrixFolder, doc: dict[str, Any], rows: list[CellResult]) -> None:
    """The matrix's document and its markdown page, in `folder`."""
    folder.root.mkdir(parents=True, exist_ok=True)
    folder.json.write_text(json.dumps(doc, indent=2, default=str))
    folder.markdown.write_text(render_markdown(doc, rows))
