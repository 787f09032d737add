"""The page: `render_html` lays out a loaded report folder as one self-contained HTML
document — a header with the totals, the index of verdicts (a column per registered
checker, a row per scenario), then a section per scenario (regressions and findings
first, open): its timeline, audit rounds, verdicts and topology.

No network: inline CSS, inline SVG, a few lines of inline JS. Every string from the
folder is escaped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.checkers import CHECKERS, headline
from harness.history import ClientEvent, Complete, FaultEvent, Snapshot
from harness.report.history_view import replicas_seen, timeline_origin
from harness.report.lag import lag_svg
from harness.report.load import ReportData, ScenarioData
from harness.report.style import CSS, JS, esc, replica_palette
from harness.report.timeline import has_balancer_rows, legend_html, timeline_svg
from harness.report.topology_view import topology_html, topology_view
from harness.report.verdicts import (
    badge,
    explanations,
    lost_keys,
    step_table,
    verdict_badge,
    verdict_class,
    verdict_table,
)
from harness.store import HISTORY, OUTCOME

MAX_DETAIL_CHARS = 4000  # of why a scenario failed or was skipped
# a run of this many scenarios or fewer (a rehearsal, a re-run) shows every section open
OPEN_ALL_UP_TO = 3


def render_html(data: ReportData) -> str:
    """The page for a loaded report folder."""
    summary = data.summary
    ids = [sc.id for sc in data.scenarios]
    order = sorted(data.scenarios, key=lambda sc: (scenario_rank(sc), sc.id))
    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else None
    if totals is None:
        totals = {}
        for sc in data.scenarios:
            totals[sc.outcome] = totals.get(sc.outcome, 0) + 1
    parts: list[str] = []
    title_tot = ", ".join(
        f"{totals.get(k, 0)} {k}" for k in ("passed", "failed", "skipped") if k in totals
    )
    partial = " (partial)" if data.partial else ""
    parts.append(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>kmschaos report{partial}: {esc(title_tot)}</title>"
        f"<style>{CSS}</style></head><body>"
    )
    parts.append(_header(data, totals, order))
    parts.append(_index(order, ids))
    parts.append("<main>")
    for sc in order:
        parts.append(_scenario_section(sc, ids))
    parts.append("</main>")
    parts.append(
        f"<footer>report folder: <code>{esc(data.folder.resolve())}</code> · rendered "
        f"{esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} · re-render with "
        f"<code>kmschaos report {esc(data.folder)}</code></footer>"
    )
    parts.append(f"<script>{JS}</script></body></html>\n")
    return "".join(parts)


def short_name(sid: str, all_ids: Sequence[str]) -> str:
    """`refuse`, or `two_sites_order::test_x` when a file holds several scenarios."""
    file_part, _, test_part = sid.partition("::")
    name = Path(file_part).stem.removeprefix("test_")
    if test_part and sum(1 for i in all_ids if i.startswith(file_part + "::")) > 1:
        name += f"::{test_part}"
    return name


def scenario_rank(sc: ScenarioData) -> int:
    """Sort key: regressions, then interrupted, then findings, passed, skipped."""
    classes = {verdict_class(v) for v in sc.verdicts.values()}
    if sc.outcome == "failed" or "regression" in classes:
        return 0
    if sc.outcome in ("interrupted", "unknown"):
        return 1
    if sc.findings or classes & {"finding", "fail", "unknown"}:
        return 2
    return 4 if sc.outcome == "skipped" else 3


def _anchor(sid: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", sid).strip("-")[:120]


def _outcome_badge(sc: ScenarioData) -> str:
    cls = scenario_rank(sc)
    if sc.outcome == "failed":
        return badge("REGRESSION", "regression")
    if cls == 2:
        return badge("ok · finding", "finding")
    text = {"passed": "ok", "unknown": "no result recorded"}.get(sc.outcome, sc.outcome)
    return badge(text, sc.outcome if sc.outcome != "unknown" else "unknown")


def _header(data: ReportData, totals: dict[str, Any], order: list[ScenarioData]) -> str:
    s = data.summary
    out = ["<header>"]
    out.append(
        "<h1>kmschaos report"
        + (' <span class="badge c-unknown">partial</span>' if data.partial else "")
        + "</h1>"
    )
    chips = []
    for k, cls in (
        ("passed", "passed"),
        ("failed", "failed"),
        ("skipped", "skipped"),
        ("interrupted", "interrupted"),
    ):
        n = totals.get(k, 0)
        if n or k in ("passed", "failed", "skipped"):
            chips.append(f'<span class="c-{cls}">{esc(n)} {k}</span>')
    findings = sum(1 for sc in order if scenario_rank(sc) == 2)
    if findings:
        chips.append(f'<span class="c-finding">{findings} with findings</span>')
    out.append('<div class="chips">' + "".join(chips) + "</div>")
    meta = []
    started = s.get("started")
    if isinstance(started, int | float):
        meta.append("started " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)))
    if isinstance(s.get("duration_s"), int | float):
        meta.append(f"duration {s['duration_s']:.1f} s")
    scale = s.get("time_scale")
    if scale is not None:
        meta.append(f"time scale {scale:g}" if isinstance(scale, int | float) else "")
    elif s:
        meta.append("time scale: each topology's own")
    meta.append(f"backend {data.backend}" if data.backend else "backend not recorded")
    meta.append(f"{len(data.scenarios)} scenario(s)")
    out.append('<div class="meta">' + esc(" · ".join(m for m in meta if m)) + "</div>")
    if data.partial:
        out.append(
            '<div class="partial"><b>Partial report</b>: the run did not finish; what the '
            "folder holds is shown.<ul>"
            + "".join(f"<li>{esc(p)}</li>" for p in data.partial)
            + "</ul></div>"
        )
    out.append("</header>")
    return "".join(out)


def _index(order: list[ScenarioData], ids: list[str]) -> str:
    """A row per scenario, a column per registered checker that judged any of them (a
    rehearsal's step verdicts are in its own section)."""
    cols = [c for c in CHECKERS if any(c in sc.verdicts for sc in order)]
    out = [
        '<nav><h2>Verdicts</h2><button onclick="setAll(true)">expand all</button>'
        '<button onclick="setAll(false)">collapse all</button><table><tr><th>scenario</th>'
    ]
    out += [f"<th>{esc(c)}</th>" for c in cols]
    out.append("<th>result</th><th>duration</th></tr>")
    for sc in order:
        out.append(f'<tr><td><a href="#{_anchor(sc.id)}">{esc(short_name(sc.id, ids))}</a></td>')
        for c in cols:
            v = sc.verdicts.get(c)
            fig = headline(v) if v else ""
            out.append(
                f"<td>{verdict_badge(v)}"
                + (f'<br><span class="muted">{esc(fig)}</span>' if fig else "")
                + "</td>"
            )
        dur = f"{sc.duration_s:.1f} s" if isinstance(sc.duration_s, int | float) else "-"
        out.append(f'<td class="s">{_outcome_badge(sc)}</td><td class="s">{esc(dur)}</td></tr>')
    out.append("</table></nav>")
    return "".join(out)


def _scenario_section(sc: ScenarioData, ids: list[str]) -> str:
    rank = scenario_rank(sc)
    is_open = " open" if rank <= 2 or len(ids) <= OPEN_ALL_UP_TO else ""
    out = [
        f'<details class="scenario" id="{_anchor(sc.id)}"{is_open}><summary>'
        f"<b>{esc(short_name(sc.id, ids))}</b> {_outcome_badge(sc)}"
        f'<span class="sid">{esc(sc.id)}</span></summary>'
    ]
    out.append(_scenario_meta(sc))
    for f in sc.findings:
        out.append(f'<div class="finding"><b>finding</b>: {esc(f)}</div>')
    if sc.outcome in ("failed", "skipped") and sc.detail:
        what = "why it failed" if sc.outcome == "failed" else "why it was skipped"
        out.append(f"<h3>{what}</h3><pre>{esc(sc.detail[-MAX_DETAIL_CHARS:])}</pre>")
    if not sc.has_outcome and sc.outcome != "skipped":
        out.append(
            f'<p class="muted">no {OUTCOME}: the scenario stopped before writing its verdicts</p>'
        )
    if sc.unreadable_lines:
        out.append(
            f'<p class="muted">{sc.unreadable_lines} history line(s) could not be read '
            "(torn by an interrupted write) and were left out</p>"
        )

    view = topology_view(sc) if (sc.has_history or sc.topology_file) else None
    replicas = [r for reps in view.sites.values() for r in reps] if view else []
    colours = replica_palette(replicas + replicas_seen(sc.events))
    origin = timeline_origin(sc.events)
    if sc.has_history:
        out.append(_drawings(sc, colours, replicas, origin))
    elif sc.outcome != "skipped":
        out.append(f'<p class="muted">no {HISTORY} for this scenario</p>')

    if sc.verdicts:
        checkers = sc.checker_verdicts()
        out.append(verdict_table({n: checkers[n] for n in CHECKERS.ordered(checkers)}))
        out.append(step_table(sc.step_verdicts(), sc.rehearsal_file()))
        out.append(explanations(sc.verdicts, sc.events, origin))
        out.append(lost_keys(sc))
    if view is not None:
        out.append(topology_html(view, colours))
    out.append("</details>")
    return "".join(out)


def _scenario_meta(sc: ScenarioData) -> str:
    meta = []
    if sc.header.get("topology"):
        meta.append(f"topology {sc.header['topology']}")
    if isinstance(sc.header.get("time_scale"), int | float):
        meta.append(f"time scale {sc.header['time_scale']:g}")
    if isinstance(sc.duration_s, int | float):
        meta.append(f"{sc.duration_s:.1f} s")
    ops = [e for e in sc.events if isinstance(e, Complete)]
    if ops:
        nok = sum(1 for c in ops if c.outcome == "ok")
        meta.append(f"{len(ops)} operations, {nok} ok")
    return '<div class="meta">' + esc(" · ".join(meta)) + "</div>"


def _drawings(sc: ScenarioData, colours: dict[str, str], replicas: list[str], origin: float) -> str:
    """The timeline and the audit rounds of a scenario with a history."""
    out = ["<h3>Timeline</h3>"]
    svg, remarks = timeline_svg(sc.events, colours, origin)
    has_faults = any(isinstance(e, FaultEvent) for e in sc.events)
    has_rounds = any(isinstance(e, Snapshot) for e in sc.events)
    has_cache = any(isinstance(e, Complete) and e.cached for e in sc.events)
    has_lifecycle = any(isinstance(e, ClientEvent) for e in sc.events)
    has_balancers = has_balancer_rows(sc.events)
    if svg:
        out.append(
            legend_html(colours, has_faults, has_rounds, has_cache, has_lifecycle, has_balancers)
            + svg
        )
    out += [f'<p class="muted">{esc(r)}</p>' for r in remarks]
    out.append("<h3>Replication lag (audit rounds)</h3>")
    lag, lag_summary = lag_svg(sc.events, replicas, origin)
    if lag:
        out.append(
            f'<p class="muted">{esc(lag_summary)}. A cell: the objects the replica held; '
            "in red, how many keys other replicas held that it lacked.</p>" + lag
        )
    else:
        out.append(
            '<p class="muted">no audit snapshot in this scenario: replication lag '
            "was not measured</p>"
        )
    return "".join(out)


__all__ = ["render_html", "scenario_rank", "short_name"]
