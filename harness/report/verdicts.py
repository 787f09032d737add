"""The verdicts of one scenario, for its section: the checkers' table, the table of a
rehearsal's step verdicts, a plain-language reading of every verdict that did not pass
with the history lines that prove it, and the keys a failed durability verdict lost.

What a verdict means and its key figure come from its checker (`harness.checkers`);
nothing here knows one checker from another but the lost keys of ``durability``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness.checkers import explain, headline
from harness.history import Event
from harness.report.history_view import evidence_lines
from harness.report.load import ScenarioData, StepVerdict
from harness.report.style import esc

MAX_FIGURES_CHARS = 20000  # a verdict's figures as JSON, per row


def verdict_class(v: dict[str, Any]) -> str:
    """pass | finding (an expected fail) | regression (differs from expected) | fail | unknown."""
    status, expected = v.get("status"), v.get("expected")
    if expected is not None and status != expected:
        return "regression"
    if status == "fail":
        return "finding" if expected == "fail" else "fail"
    return "unknown" if status == "unknown" else "pass"


def badge(text: str, cls: str) -> str:
    return f'<span class="badge c-{esc(cls)}">{esc(text)}</span>'


def verdict_badge(v: dict[str, Any] | None) -> str:
    """The status, coloured by `verdict_class`, with the expectation when it matters."""
    if not v:
        return '<span class="muted">-</span>'
    cls = verdict_class(v)
    text = str(v.get("status"))
    if cls == "finding":
        text += " (expected)"
    elif cls == "regression":
        text += f" (expected {v.get('expected')})"
    return badge(text, cls)


def verdict_table(verdicts: dict[str, dict[str, Any]]) -> str:
    """The checkers' verdicts of one scenario, a row each (`verdicts` in table order)."""
    out = [
        "<h3>Verdicts</h3><table><tr><th>verdict</th><th>status</th><th>expected</th>"
        "<th>figure</th><th>summary</th><th>bound</th><th>figures</th></tr>"
    ]
    for name, v in verdicts.items():
        figs = json.dumps(v.get("figures") or {}, indent=1, default=str)
        if len(figs) > MAX_FIGURES_CHARS:
            figs = figs[:MAX_FIGURES_CHARS] + "\n… (cut)"
        out.append(
            f'<tr><td><b>{esc(name)}</b></td><td class="s">{verdict_badge(v)}</td>'
            f"<td>{esc(v.get('expected') or 'not asserted')}</td>"
            f'<td class="s">{esc(headline(v))}</td><td>{esc(v.get("summary", ""))}</td>'
            f"<td>{esc(v.get('bound') or '-')}</td>"
            f"<td><details><summary>json</summary><pre>{esc(figs)}</pre></details></td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def step_table(steps: Sequence[StepVerdict], source: str | None = None) -> str:
    """A rehearsal's verdicts step by step (its checker table shows each checker's last);
    "" when the scenario is not a rehearsal."""
    if not steps:
        return ""
    out = [
        "<h3>Rehearsal steps</h3>"
        + (f'<div class="muted">{esc(source)}</div>' if source else "")
        + "<table><tr><th>step</th><th>checker</th><th>expected</th><th>status</th>"
        "<th>figure</th><th>summary</th></tr>"
    ]
    for s in steps:
        v = s.verdict
        where = s.step + (f" (line {s.line})" if s.line is not None else "")
        out.append(
            f'<tr><td class="s">{esc(where)}</td><td><b>{esc(s.checker)}</b></td>'
            f"<td>{esc(v.get('expected') or 'not asserted')}</td>"
            f'<td class="s">{verdict_badge(v)}</td><td class="s">{esc(headline(v))}</td>'
            f"<td>{esc(v.get('summary', ''))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def explanations(
    verdicts: dict[str, dict[str, Any]], events: Sequence[Event], origin: float
) -> str:
    """Every verdict that did not simply pass: what it means and what proves it."""
    out = []
    for name, v in verdicts.items():
        if verdict_class(v) == "pass":
            continue
        lines = evidence_lines(v, events, origin)
        out.append(
            f'<div class="explain"><b>{esc(name)}: {esc(v.get("status"))}</b> '
            f"{verdict_badge(v)}<br>{esc(explain(v))}"
            f"<div>what proves it:</div><pre>{esc(chr(10).join(lines))}</pre></div>"
        )
    return "".join(out)


def lost_keys(sc: ScenarioData) -> str:
    """The keys a failed durability verdict lost, where they were made and are missing."""
    v = sc.verdicts.get("durability")
    if not v or v.get("status") != "fail":
        return ""
    f = v.get("figures") or {}
    lost = f.get("lost") if isinstance(f, dict) else None
    out = ["<h3>Lost keys</h3>"]
    if isinstance(lost, list) and lost:
        total = f.get("lost_keys", len(lost))
        out.append(
            f"<p>{esc(total)} of {esc(f.get('acknowledged', '?'))} acknowledged keys lost"
            + (
                f" (first {len(lost)} listed)"
                if isinstance(total, int) and total > len(lost)
                else ""
            )
            + "</p>"
        )
        out.append(
            "<table><tr><th>key id</th><th>made on</th><th>made at</th><th>missing on</th>"
            "<th>corrupt on</th><th>destroyed on</th></tr>"
        )
        for k in lost:
            if not isinstance(k, dict):
                continue
            at = k.get("made_at_s")
            out.append(
                f"<tr><td><code>{esc(k.get('uid'))}</code></td><td>{esc(k.get('made_on') or '?')}"
                f"</td><td>{esc(f'+{at:.3f} s' if isinstance(at, int | float) else '?')}</td>"
                + "".join(
                    f"<td>{esc(', '.join(map(str, k.get(col) or [])) or '-')}</td>"
                    for col in ("missing_on", "corrupt_on", "destroyed_on")
                )
                + "</tr>"
            )
        out.append("</table>")
        raw_crash = f.get("crash_faults")
        crash: dict[str, Any] = raw_crash if isinstance(raw_crash, dict) else {}
        for fid, c in crash.items():
            if isinstance(c, dict) and c.get("lost"):
                out.append(
                    f"<p>{esc(fid)}: {esc(c.get('kind'))} of {esc(c.get('target'))} lost "
                    f"{esc(c.get('lost'))} acknowledged key(s): RPO {esc(_fmt_s(c.get('rpo_s')))}"
                    "</p>"
                )
    else:
        keys = [d for d in (v.get("details") or []) if str(d).startswith("key ")]
        out.append(
            "<pre>" + esc("\n".join(map(str, keys)) or "(the verdict lists no key)") + "</pre>"
        )
    return "".join(out)


def _fmt_s(x: Any, places: int = 3) -> str:
    return f"{x:.{places}f} s" if isinstance(x, int | float) else "-"


__all__ = [
    "badge",
    "explanations",
    "lost_keys",
    "step_table",
    "verdict_badge",
    "verdict_class",
    "verdict_table",
]
