"""The trend page: one self-contained HTML document in the report's style
(`harness.report.style`) — the runs compared, then per scenario (drifting ones first,
open) a row per figure with a small inline SVG chart of its values over the runs, the
baseline median dashed over the runs it is taken from, and the newest value red when it
drifts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from harness.report.page import short_name
from harness.report.style import CSS, esc
from harness.report.verdicts import badge
from harness.trend.drift import Judgement
from harness.trend.series import Run

# a chart's size (pixels) and inner margin
SPARK_W, SPARK_H, PAD = 200, 44, 5
DRIFT = "#d62728"
LINE = "#555"

TREND_CSS = f"""
.spark{{stroke:{LINE};stroke-width:1.5;fill:none}}
.spark-base{{stroke:#999;stroke-width:1;stroke-dasharray:4 3}}
.spark-pt{{fill:{LINE}}}.spark-pt.new{{fill:#111}}.spark-pt.drift{{fill:{DRIFT}}}
td.num{{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}}
"""


def sparkline(j: Judgement, window: int) -> str:
    """The values over the runs; gaps where a run did not measure the figure."""
    values = j.values
    present = [v for v in values if v is not None]
    scale = present + ([j.baseline] if j.baseline is not None else [])
    low, high = min(scale), max(scale)
    step = (SPARK_W - 2 * PAD) / max(len(values) - 1, 1)

    def x(i: int) -> float:
        return PAD + i * step

    def y(v: float) -> float:
        if high == low:
            return SPARK_H / 2
        return SPARK_H - PAD - (v - low) / (high - low) * (SPARK_H - 2 * PAD)

    out = [
        f'<svg class="sparkline" width="{SPARK_W}" height="{SPARK_H}" '
        f'viewBox="0 0 {SPARK_W} {SPARK_H}" role="img">'
    ]
    if j.baseline is not None:
        first = max(0, len(values) - 1 - window)
        out.append(
            f'<line class="spark-base" x1="{x(first):.1f}" x2="{x(len(values) - 1):.1f}" '
            f'y1="{y(j.baseline):.1f}" y2="{y(j.baseline):.1f}"><title>baseline '
            f"{esc(j.series.figure.format(j.baseline))}</title></line>"
        )
    path, pen = [], "M"
    for i, v in enumerate(values):
        if v is None:
            pen = "M"
            continue
        path.append(f"{pen}{x(i):.1f} {y(v):.1f}")
        pen = "L"
    if len(present) > 1:
        out.append(f'<path class="spark" d="{" ".join(path)}"/>')
    last = len(values) - 1
    for i, v in enumerate(values):
        if v is None:
            continue
        cls = "spark-pt" + ((" drift" if j.drift else " new") if i == last else "")
        r = 3.5 if i == last else 2.2
        out.append(
            f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="{r}"><title>#{i + 1}: '
            f"{esc(j.series.figure.format(v))}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


def _runs_table(runs: Sequence[Run]) -> str:
    out = [
        "<nav><h2>Runs</h2><table><tr><th>#</th><th>folder</th><th>started · commit</th>"
        "<th>time scale</th><th>backend</th><th>scenarios</th></tr>"
    ]
    for i, r in enumerate(runs, 1):
        scale = f"{r.time_scale:g}" if r.time_scale is not None else "-"
        totals = ", ".join(f"{n} {k}" for k, n in r.totals.items() if n)
        out.append(
            f"<tr><td>#{i}</td><td><code>{esc(r.folder)}</code></td><td>{esc(r.when)}</td>"
            f"<td>{esc(scale)}</td><td>{esc(r.backend or '-')}</td><td>{esc(totals)}</td></tr>"
        )
    out.append("</table></nav>")
    return "".join(out)


def _scenario(sid: str, rows: list[Judgement], ids: list[str], window: int) -> str:
    drifting = any(j.drift for j in rows)
    head = badge("DRIFT", "regression") if drifting else badge("no drift", "pass")
    out = [
        f'<details class="scenario"{" open" if drifting else ""}><summary>'
        f"<b>{esc(short_name(sid, ids))}</b> {head}"
        f'<span class="sid">{esc(sid)}</span></summary>'
        "<table><tr><th>figure</th><th>over the runs</th><th>newest</th><th>baseline</th>"
        "<th>change</th><th>verdict</th></tr>"
    ]
    for j in rows:
        fig = j.series.figure
        change = f"{j.change:+.1%}" if j.change is not None else "-"
        baseline = fig.format(j.baseline)
        if j.baseline is not None:
            baseline += f' <span class="muted">median of {j.baseline_runs}</span>'
        verdict = badge("DRIFT", "regression") if j.drift else '<span class="muted">ok</span>'
        out.append(
            f'<tr><td><b>{esc(fig.name)}</b><br><span class="muted">{esc(fig.what)}</span></td>'
            f'<td>{sparkline(j, window)}</td><td class="num">{esc(fig.format(j.newest))}</td>'
            f'<td class="num">{baseline}</td><td class="num">{esc(change)}</td>'
            f'<td>{verdict}<br><span class="muted">{esc(j.reason)}</span></td></tr>'
        )
    out.append("</table></details>")
    return "".join(out)


def render_trend(
    runs: Sequence[Run],
    judgements: Sequence[Judgement],
    *,
    ordered: str,
    window: int,
    threshold: float,
) -> str:
    """The page for `judgements` over `runs` (oldest first)."""
    drifts = [j for j in judgements if j.drift]
    by_scenario: dict[str, list[Judgement]] = {}
    for j in judgements:
        by_scenario.setdefault(j.series.scenario, []).append(j)
    ids = list(by_scenario)
    order = sorted(ids, key=lambda s: (not any(j.drift for j in by_scenario[s]), s))
    chip = (
        f'<span class="c-failed">{len(drifts)} drift(s)</span>'
        if drifts
        else '<span class="c-passed">no drift</span>'
    )
    title = f"{len(drifts)} drift(s)" if drifts else "no drift"
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>kmschaos trend: {esc(title)} over {len(runs)} runs</title>"
        f"<style>{CSS}{TREND_CSS}</style></head><body>",
        f'<header><h1>kmschaos trend</h1><div class="chips">{chip}'
        f'<span class="c-none">{len(runs)} runs</span>'
        f'<span class="c-none">{len(ids)} scenarios</span></div>'
        f'<div class="meta">{esc(f"runs {ordered}, oldest first")} · baseline: the median of '
        f"up to {window} previous runs · drift: the newest value worse than the baseline by more "
        f"than {threshold * 100:g}% (and more than the figure's noise)</div></header>",
        _runs_table(runs),
        "<main><h2>Figures</h2>",
    ]
    if not ids:
        parts.append('<p class="muted">no run holds any of the followed figures</p>')
    parts += [_scenario(s, by_scenario[s], ids, window) for s in order]
    parts.append(
        f"</main><footer>rendered {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))} by "
        "<code>kmschaos trend</code></footer></body></html>\n"
    )
    return "".join(parts)


__all__ = ["render_trend", "sparkline"]
