"""`report.html`: one self-contained page that shows what a run's report folder proves.

Read from the folder `kmschaos run` writes (``summary.json``, ``history.jsonl`` and per
scenario ``scenarios/<id>/{history.jsonl,outcome.json}``), never from a cluster, so
`kmschaos report DIR` re-renders it any time. Per scenario (regressions and findings
first, open): a timeline per client (ops coloured by the replica that served them,
failed attempts, fault windows as bands), the audit rounds (which replicas lacked keys
others held), the verdict table with a plain-language reading of every failed or
unexpected verdict and the history lines that prove it, the lost keys, the topology
drawn with the linter's findings.

The page needs no network: inline CSS, inline SVG, a few lines of inline JS. Every
string from the folder is escaped. A run that was interrupted gives a *partial* report:
what exists is drawn, and the page says so at the top.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkers import CHECKERS, explain, headline
from harness.checkers.verdict import attempt_trail, fault_windows
from harness.history import Complete, Event, FaultEvent, Note, Snapshot, event_from_dict

REPORT_FILE = "report.html"

# Colours: the first replica's blue and the fault band are what a screenshot test looks
# for, so they are fixed and used for nothing else.
REPLICA_COLOURS = (
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#393b79",
    "#637939",
)
FAULT_BAND = "#ffe3b3"
FAULT_BAR = "#f4b860"
FAIL_RED = "#d62728"
NO_SERVER = "#b0b0b0"

MAX_OP_MARKS = 400  # per client row; beyond it, adjacent ok ops of one replica merge
MAX_FAILED_MARKS = 400  # failed ops and failed attempts drawn per client
MAX_ROUNDS = 40  # audit rounds drawn per scenario
MAX_EVIDENCE = 20
MAX_DETAIL_CHARS = 4000

SVG_W = 1100
LEFT = 130
RIGHT = 24


class ReportError(Exception):
    """The folder cannot be rendered; the message names the folder or file and the fix."""


# ---- reading the folder ----------------------------------------------------------------


@dataclass
class ScenarioData:
    """One scenario as the folder holds it (any part may be missing)."""

    id: str
    outcome: str  # passed | failed | skipped | interrupted | unknown
    duration_s: float | None = None
    detail: str = ""
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    topology_file: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    unreadable_lines: int = 0
    has_outcome: bool = False
    outcome_name: str | None = None  # the pytest id outcome.json names
    has_history: bool = False


@dataclass
class ReportData:
    folder: Path
    summary: dict[str, Any]
    scenarios: list[ScenarioData]
    partial: list[str]  # why the report is partial; empty when complete
    backend: str | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: not JSON: {e.msg}") from None


def _read_history(lines: Iterable[str]) -> tuple[dict[str, Any], list[Event], int]:
    """Header, events and the count of lines that could not be read (a run killed while
    writing leaves a torn last line)."""
    header: dict[str, Any] = {}
    events: list[Event] = []
    bad = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
            d.pop("scenario", None)
            if d.get("type") == "header":
                header = {k: v for k, v in d.items() if k != "type"}
                continue
            events.append(event_from_dict(d))
        except (ValueError, TypeError):
            bad += 1
    return header, events, bad


def load_report(report_dir: Path) -> ReportData:
    """Everything the folder holds about the run; raises `ReportError` when it is not a
    report folder at all."""
    from harness.pytest_plugin import _safe

    folder = Path(report_dir)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder (write one with `kmschaos run --report-dir`)")
    summary_file = folder / "summary.json"
    scen_root = folder / "scenarios"
    partial: list[str] = []
    summary: dict[str, Any] = {}
    if summary_file.is_file():
        loaded = _read_json(summary_file)
        if not isinstance(loaded, dict):
            raise ReportError(
                f"{summary_file}: expected a JSON object, got {type(loaded).__name__}"
            )
        summary = loaded
    elif scen_root.is_dir():
        partial.append("summary.json is missing: the run stopped before it ended")
    else:
        raise ReportError(
            f"{folder}: summary.json is missing (and no scenarios/ folder): not a kmschaos "
            f"report folder; `kmschaos run --report-dir {folder}` writes one"
        )

    raw_rows = summary.get("scenarios")
    rows: list[Any] = raw_rows if isinstance(raw_rows, list) else []
    scenarios: list[ScenarioData] = []
    seen_dirs: set[str] = set()
    for row in rows:
        if not isinstance(row, dict) or "id" not in row:
            continue
        sid = str(row["id"])
        sc = ScenarioData(
            id=sid,
            outcome=str(row.get("outcome", "unknown")),
            duration_s=row.get("duration_s"),
            detail=str(row.get("detail") or ""),
            verdicts=dict(row.get("verdicts") or {}),
            findings=list(row.get("findings") or []),
            topology_file=row.get("topology"),
        )
        sdir = scen_root / _safe(sid)
        seen_dirs.add(sdir.name)
        _load_scenario_dir(sc, sdir)
        scenarios.append(sc)
    if scen_root.is_dir():
        for sdir in sorted(p for p in scen_root.iterdir() if p.is_dir()):
            if sdir.name in seen_dirs:
                continue
            sc = ScenarioData(id=sdir.name, outcome="interrupted" if summary else "unknown")
            _load_scenario_dir(sc, sdir)
            if sc.outcome_name:
                sc.id = sc.outcome_name
            scenarios.append(sc)
            if summary:
                partial.append(f"{sc.id}: has a folder but no line in summary.json")
    _fill_from_merged(folder / "history.jsonl", scenarios)

    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else {}
    interrupted = int(totals.get("interrupted") or 0) if totals else 0
    if interrupted:
        partial.insert(0, f"{interrupted} scenario(s) interrupted")
    backend = summary.get("backend")
    return ReportData(folder, summary, scenarios, partial, str(backend) if backend else None)


def _load_scenario_dir(sc: ScenarioData, sdir: Path) -> None:
    if not sdir.is_dir():
        return
    outcome_file = sdir / "outcome.json"
    if outcome_file.is_file():
        try:
            out = _read_json(outcome_file)
        except ReportError:
            out = None
        if isinstance(out, dict):
            sc.has_outcome = True
            sc.figures = dict(out.get("figures") or {})
            if isinstance(out.get("name"), str) and out["name"]:
                sc.outcome_name = out["name"]
            if not sc.verdicts:
                sc.verdicts = dict(out.get("verdicts") or {})
            if not sc.findings:
                sc.findings = list(out.get("findings") or [])
            if sc.topology_file is None and isinstance(sc.figures.get("topology"), str):
                sc.topology_file = sc.figures["topology"]
    hist = sdir / "history.jsonl"
    if hist.is_file():
        with hist.open(encoding="utf-8", errors="replace") as f:
            sc.header, sc.events, sc.unreadable_lines = _read_history(f)
        sc.has_history = True


def _fill_from_merged(merged: Path, scenarios: list[ScenarioData]) -> None:
    """Scenarios whose own history is missing take their lines from the merged file."""
    wanted = {sc.id: sc for sc in scenarios if not sc.has_history}
    if not wanted or not merged.is_file():
        return
    lines: dict[str, list[str]] = {}
    with merged.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                sid = json.loads(line).get("scenario")
            except (ValueError, AttributeError):
                continue
            if isinstance(sid, str) and sid in wanted:
                lines.setdefault(sid, []).append(line)
    for sid, ls in lines.items():
        sc = wanted[sid]
        sc.header, sc.events, sc.unreadable_lines = _read_history(ls)
        sc.has_history = True


# ---- small helpers -----------------------------------------------------------------------


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _anchor(sid: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", sid).strip("-")[:120]


def short_name(sid: str, all_ids: Sequence[str]) -> str:
    """`refuse`, or `two_sites_order::test_x` when a file holds several scenarios."""
    file_part, _, test_part = sid.partition("::")
    name = Path(file_part).stem.removeprefix("test_").removeprefix("scenario_")
    if test_part and sum(1 for i in all_ids if i.startswith(file_part + "::")) > 1:
        name += f"::{test_part}"
    return name


def _fmt_s(x: Any, places: int = 3) -> str:
    return f"{x:.{places}f} s" if isinstance(x, int | float) else "-"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def verdict_class(v: dict[str, Any]) -> str:
    """pass | finding (an expected fail) | regression (differs from expected) | fail | unknown."""
    status, expected = v.get("status"), v.get("expected")
    if expected is not None and status != expected:
        return "regression"
    if status == "fail":
        return "finding" if expected == "fail" else "fail"
    return "unknown" if status == "unknown" else "pass"


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


# ---- reading a history for drawing ---------------------------------------------------------


def timeline_origin(events: Sequence[Event]) -> float:
    """t = 0: the first operation (or fault), as the failover checker counts."""
    starts = [e.start for e in events if isinstance(e, Complete)]
    starts += [e.t for e in events if isinstance(e, FaultEvent) and e.phase == "inject"]
    if starts:
        return min(starts)
    times = [e.t for e in events if isinstance(e, Note | Snapshot)]
    return min(times) if times else 0.0


def replica_palette(replicas: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in replicas:
        if r not in out:
            out[r] = REPLICA_COLOURS[len(out) % len(REPLICA_COLOURS)]
    return out


def replicas_seen(events: Sequence[Event]) -> list[str]:
    seen: dict[str, None] = {}
    for e in events:
        if isinstance(e, Complete):
            for a in e.attempts:
                seen.setdefault(a.server, None)
            if e.served_by:
                seen.setdefault(e.served_by, None)
        elif isinstance(e, Snapshot):
            seen.setdefault(e.replica, None)
    return sorted(seen)


def event_line(e: Event, origin: float) -> str:
    """One history event, readable: time, kind, what."""
    if isinstance(e, Complete):
        served = e.served_by or "-"
        line = (
            f"t+{e.start - origin:8.3f}s complete {e.op_id} {e.op} {e.outcome} "
            f"served_by={served} {e.duration:.3f}s [{attempt_trail(e.attempts)}]"
        )
        if e.key:
            line += f" key={e.key}"
        return line + (f" error={e.error}" if e.error else "")
    if isinstance(e, FaultEvent):
        reps = e.params.get("replicas") if isinstance(e.params, dict) else None
        extra = f" replicas={','.join(map(str, reps))}" if reps else ""
        detail = f" ({e.detail})" if e.detail else ""
        return f"t+{e.t - origin:8.3f}s fault {e.phase} {e.kind} {e.target}{extra}{detail}"
    if isinstance(e, Snapshot):
        state = "ok" if e.ok else f"failed: {e.error}"
        return (
            f"t+{e.t - origin:8.3f}s audit round {e.round} {e.replica}: "
            f"{len(e.objects)} objects ({state})"
        )
    if isinstance(e, Note):
        return f"t+{e.t - origin:8.3f}s note {e.text}"
    return f"t+{getattr(e, 't', origin) - origin:8.3f}s {type(e).__name__}"


def evidence_lines(v: dict[str, Any], events: Sequence[Event], origin: float) -> list[str]:
    """The verdict's own evidence lines, else the history lines that bear on it."""
    details = [str(d) for d in (v.get("details") or [])]
    if details:
        return details[:MAX_EVIDENCE]
    checker = CHECKERS.get(str(v.get("name")))
    audited = checker is not None and checker.needs_audit
    picked: list[Event] = []
    for e in events:
        if isinstance(e, FaultEvent):
            picked.append(e)
        elif isinstance(e, Snapshot) and audited:
            picked.append(e)
        elif isinstance(e, Complete) and not audited:
            if e.outcome != "ok" or any(a.outcome != "ok" for a in e.attempts):
                picked.append(e)
    picked.sort(key=lambda e: e.start if isinstance(e, Complete) else getattr(e, "t", 0.0))
    lines = [event_line(e, origin) for e in picked]
    if len(lines) > MAX_EVIDENCE:
        lines = lines[: MAX_EVIDENCE - 1] + [f"… and {len(lines) - MAX_EVIDENCE + 1} more"]
    return lines or ["(no event in the history bears on it)"]


# ---- SVG: the timeline ---------------------------------------------------------------------


@dataclass
class _Scale:
    t0: float
    t1: float
    left: float = LEFT
    width: float = SVG_W - LEFT - RIGHT

    def x(self, t: float) -> float:
        span = self.t1 - self.t0
        return self.left + (t - self.t0) / span * self.width if span > 0 else self.left

    @property
    def px_s(self) -> float:
        """Seconds per pixel."""
        return (self.t1 - self.t0) / self.width if self.width else 1.0


def _nice_step(span: float, target: int = 10) -> float:
    raw = span / max(target, 1)
    if raw <= 0:
        return 1.0
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _axis(scale: _Scale, y: float, y_top: float) -> list[str]:
    out = [
        f'<line x1="{scale.left}" y1="{y}" x2="{scale.left + scale.width}" y2="{y}" class="axis"/>'
    ]
    step = _nice_step(scale.t1 - scale.t0)
    k = int(scale.t0 // step)
    while k * step <= scale.t1 + 1e-9:
        t = k * step
        if t >= scale.t0 - 1e-9:
            x = scale.x(t)
            out.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y}" class="grid"/>')
            label = f"{t:.2f}".rstrip("0").rstrip(".") if step < 1 else f"{t:.0f}"
            out.append(f'<text x="{x:.1f}" y="{y + 13}" class="tick">{label}</text>')
        k += 1
    out.append(
        f'<text x="{scale.left + scale.width}" y="{y + 26}" class="tick end">'
        "seconds since the first operation</text>"
    )
    return out


def _cross(x: float, y: float, r: float, cls: str = "xfail") -> str:
    return (
        f'<path d="M{x - r:.1f} {y - r:.1f}L{x + r:.1f} {y + r:.1f}'
        f'M{x - r:.1f} {y + r:.1f}L{x + r:.1f} {y - r:.1f}" class="{cls}"/>'
    )


@dataclass
class _Mark:
    start: float
    end: float
    served_by: str | None
    count: int = 1


def _op_marks(ops: list[Complete], px_s: float) -> tuple[list[_Mark], bool]:
    """Ok ops as marks; when a row holds too many, adjacent ok ops served by the same
    replica merge (gaps under a pixel or two: no visible change at this scale)."""
    marks = [_Mark(c.start, c.end, c.served_by) for c in ops if c.outcome == "ok"]
    if len(marks) <= MAX_OP_MARKS:
        return marks, False
    gap = px_s
    while len(marks) > MAX_OP_MARKS:
        merged: list[_Mark] = []
        for m in marks:
            last = merged[-1] if merged else None
            if last is not None and last.served_by == m.served_by and m.start - last.end <= gap:
                last.end = max(last.end, m.end)
                last.count += m.count
            else:
                merged.append(_Mark(m.start, m.end, m.served_by, m.count))
        marks = merged
        gap *= 2
    return marks, True


def _failure_marks(
    ops: list[Complete], y0: float, scale: _Scale, colours: dict[str, str], origin: float
) -> tuple[list[str], str]:
    """Failed ops (outlined, ✕ or ○) and the attempts of every op that had a failed one
    (segments on the lower lane, dashed when failed). Beyond `MAX_FAILED_MARKS` ops, the
    rest are crosses only, one per pixel."""
    out: list[str] = []
    troubled = [c for c in ops if c.outcome != "ok" or any(a.outcome != "ok" for a in c.attempts)]
    for c in troubled[:MAX_FAILED_MARKS]:
        for a in c.attempts:
            ax0 = scale.x(a.start - origin)
            ax1 = max(scale.x(a.end - origin), ax0 + 1.5)
            cls = "aok" if a.outcome == "ok" else "abad"
            title = f"{c.op_id} {a.server} {a.outcome} {a.duration:.3f}s"
            if a.detail:
                title += " " + a.detail[:200]
            out.append(
                f'<path d="M{ax0:.1f} {y0 + 27}H{ax1:.1f}" stroke="'
                f'{colours.get(a.server, NO_SERVER)}" class="{cls}"><title>{esc(title)}</title>'
                "</path>"
            )
            if a.outcome != "ok":
                out.append(_cross(ax1, y0 + 27, 3, "xatt"))
        if c.outcome != "ok":
            x0 = scale.x(c.start - origin)
            wd = max(scale.x(c.end - origin) - x0, 1.5)
            out.append(
                f'<rect x="{x0:.1f}" y="{y0 + 6}" width="{wd:.1f}" height="12" '
                f'class="opfail"><title>{esc(event_line(c, origin).strip())}</title></rect>'
            )
            if c.outcome == "fail":
                out.append(_cross(x0 + wd, y0 + 12, 5))
            else:
                out.append(f'<circle cx="{x0 + wd:.1f}" cy="{y0 + 12}" r="4" class="opinfo"/>')
    rest = [c for c in troubled[MAX_FAILED_MARKS:] if c.outcome != "ok"]
    if len(troubled) <= MAX_FAILED_MARKS:
        return out, ""
    pixels = sorted({round(scale.x(c.end - origin)) for c in rest})
    if pixels:
        d = "".join(f"M{x - 4} {y0 + 8}l8 8m0 -8l-8 8" for x in pixels)
        out.append(
            f'<path d="{d}" class="xfail"><title>{len(rest)} more failed op(s)</title></path>'
        )
    remark = (
        f"{len(troubled)} ops had a failure: the first {MAX_FAILED_MARKS} drawn with their attempts"
    )
    if rest:
        remark += f", {len(rest)} later failed ops as crosses only"
    return out, remark


def timeline_svg(
    events: Sequence[Event], colours: dict[str, str], origin: float
) -> tuple[str, list[str]]:
    """The SVG and the notes about it (thinned rows, missing parts)."""
    ops = sorted((e for e in events if isinstance(e, Complete)), key=lambda c: c.start)
    windows = fault_windows(list(events))
    notes_ev = [e for e in events if isinstance(e, Note)]
    rounds: dict[int, float] = {}
    for s in (e for e in events if isinstance(e, Snapshot)):
        rounds[s.round] = min(rounds.get(s.round, s.t), s.t)
    times = [c.start for c in ops] + [c.end for c in ops]
    times += [w.start for w in windows] + [w.end for w in windows]
    times += [n.t for n in notes_ev] + list(rounds.values())
    remarks: list[str] = []
    if not times:
        return "", ["no operation, fault or note in the history: nothing to draw"]
    t0 = min(0.0, min(times) - origin)
    t1 = max(times) - origin
    if t1 - t0 < 1e-3:
        t1 = t0 + 1e-3
    scale = _Scale(t0, t1)
    clients = sorted({c.client for c in ops})
    fault_h = 14
    row_h = 36
    top = 8
    lane_top = top
    rows_top = lane_top + len(windows) * fault_h + (6 if windows else 0)
    rows_bottom = rows_top + max(1, len(clients)) * row_h
    axis_y = rows_bottom + 4
    height = axis_y + 34
    out = [
        f'<svg class="timeline" viewBox="0 0 {SVG_W} {height}" width="{SVG_W}" '
        f'height="{height}" role="img" aria-label="timeline per client">'
    ]
    for ci in range(1, len(clients), 2):
        out.append(
            f'<rect x="{LEFT}" y="{rows_top + ci * row_h}" width="{scale.width}" '
            f'height="{row_h}" class="zebra"/>'
        )
    out += _axis(scale, axis_y, rows_top)  # grid under the bands and marks
    # fault windows: a band across the client rows, a labelled bar in the lane above
    for i, w in enumerate(windows):
        x0, x1 = scale.x(w.start - origin), scale.x(w.end - origin)
        wd = max(x1 - x0, 2.0)
        label = f"{w.kind} {w.target}" + ("" if w.healed else " (never healed)")
        title = (
            f"{w.fault_id}: {w.kind} on {w.target} (replicas {', '.join(w.replicas) or '-'}), "
            f"t+{w.start - origin:.3f}s → "
            + (f"heal t+{w.end - origin:.3f}s" if w.healed else "not healed")
        )
        out.append(
            f'<rect x="{x0:.1f}" y="{rows_top}" width="{wd:.1f}" '
            f'height="{rows_bottom - rows_top}" fill="{FAULT_BAND}"/>'
        )
        y = lane_top + i * fault_h
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 1}" width="{wd:.1f}" height="{fault_h - 2}" '
            f'fill="{FAULT_BAR}" rx="2"><title>{esc(title)}</title></rect>'
        )
        anchor = "start" if x0 < scale.left + scale.width * 0.7 else "end"
        tx = x0 + 3 if anchor == "start" else x0 + wd - 3
        out.append(
            f'<text x="{tx:.1f}" y="{y + fault_h - 3}" class="flabel {anchor}">{esc(label)}</text>'
        )
    if windows:
        out.append(f'<text x="{LEFT - 8}" y="{lane_top + 11}" class="rlabel">faults</text>')
    # client rows
    thinned: list[str] = []
    for ci, client in enumerate(clients):
        y0 = rows_top + ci * row_h
        out.append(_label(LEFT - 8, y0 + 17, client, 19, "rlabel"))
        mine = [c for c in ops if c.client == client]
        marks, merged = _op_marks(mine, scale.px_s)
        if merged:
            thinned.append(f"{client}: {len(mine)} ops drawn as {len(marks)} marks")
        # ok ops: one path per replica (small), with a title that counts them
        by_server: dict[str | None, list[_Mark]] = {}
        for m in marks:
            by_server.setdefault(m.served_by, []).append(m)
        for server, ms in by_server.items():
            d = []
            for m in ms:
                x0 = scale.x(m.start - origin)
                wd = max(scale.x(m.end - origin) - x0, 1.5)
                d.append(f"M{x0:.1f} {y0 + 6}h{wd:.1f}v12h-{wd:.1f}z")
            n = sum(m.count for m in ms)
            title = f"{client}: {n} ok op(s) served by {server or 'no server'}"
            out.append(
                f'<path d="{"".join(d)}" fill="{colours.get(server or "", NO_SERVER)}">'
                f"<title>{esc(title)}</title></path>"
            )
        drawn, remark = _failure_marks(mine, y0, scale, colours, origin)
        out += drawn
        if remark:
            thinned.append(f"{client}: {remark}")
    if not clients:
        out.append(
            f'<text x="{LEFT + 4}" y="{rows_top + 20}" class="muted">no client operation '
            "in this history</text>"
        )
    for note in notes_ev:
        x = scale.x(note.t - origin)
        out.append(
            f'<path d="M{x:.1f} {axis_y}l-4 -6h8z" class="note"><title>'
            f"{esc(f't+{note.t - origin:.3f}s {note.text}')}</title></path>"
        )
    for rnd, t in sorted(rounds.items()):
        x = scale.x(t - origin)
        out.append(
            f'<path d="M{x:.1f} {axis_y + 1}l4 5l-4 5l-4 -5z" class="round"><title>audit round '
            f"{rnd} at t+{t - origin:.3f}s</title></path>"
        )
    out.append("</svg>")
    if thinned:
        remarks.append("thinned: " + "; ".join(thinned))
    return "".join(out), remarks


def legend_html(colours: dict[str, str], has_faults: bool, has_rounds: bool) -> str:
    items = [
        f'<span class="key"><i style="background:{c}"></i>{esc(r)}</span>'
        for r, c in colours.items()
    ]
    items.append(f'<span class="key"><i style="background:{NO_SERVER}"></i>no server</span>')
    items.append('<span class="key"><b class="kx">✕</b>failed op</span>')
    items.append('<span class="key"><b class="ko">○</b>unknown outcome (info)</span>')
    items.append('<span class="key"><b class="kd">╌╌</b>failed attempt</span>')
    if has_faults:
        items.append(
            f'<span class="key"><i style="background:{FAULT_BAND}"></i>fault window</span>'
        )
    items.append('<span class="key"><b class="kn">▾</b>note</span>')
    if has_rounds:
        items.append('<span class="key"><b class="kr">◆</b>audit round</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


# ---- SVG: replication lag from the audit rounds ------------------------------------------


def lag_svg(events: Sequence[Event], replicas: list[str], origin: float) -> tuple[str, str]:
    """A grid: a column per audit round, a row per replica; each cell the objects the
    replica held and, in red, how many keys other replicas held that it lacked. Returns
    (svg, one-line summary); an empty svg when there is no audit."""
    snaps = [e for e in events if isinstance(e, Snapshot)]
    if not snaps:
        return "", ""
    by_round: dict[int, dict[str, Snapshot]] = {}
    for s in sorted(snaps, key=lambda s: (s.round, s.t)):
        by_round.setdefault(s.round, {})[s.replica] = s
    rows = list(replicas) + sorted({s.replica for s in snaps} - set(replicas))
    rounds = sorted(by_round)
    dropped = 0
    if len(rounds) > MAX_ROUNDS:
        keep = rounds[: MAX_ROUNDS // 2] + rounds[-MAX_ROUNDS // 2 :]
        dropped = len(rounds) - len(keep)
        rounds = keep
    cell_w, cell_h, head = 64, 18, 34
    left = LEFT
    width = max(SVG_W, left + len(rounds) * cell_w + RIGHT)
    height = head + len(rows) * cell_h + 22
    out = [
        f'<svg class="lag" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="audit rounds">'
    ]
    lagging_rounds = 0
    for ri, name in enumerate(rows):
        y = head + ri * cell_h
        out.append(_label(left - 8, y + 13, name, 19, "rlabel"))
    for ci, rnd in enumerate(rounds):
        got = by_round[rnd]
        x = left + ci * cell_w
        t = min(s.t for s in got.values()) - origin
        out.append(f'<text x="{x + cell_w / 2}" y="13" class="tick">round {rnd}</text>')
        out.append(f'<text x="{x + cell_w / 2}" y="26" class="tick">t+{t:.2f}s</text>')
        union: set[str] = set()
        for s in got.values():
            if s.ok:
                union |= set(s.objects)
        lagging = 0
        for ri, name in enumerate(rows):
            y = head + ri * cell_h
            snap = got.get(name)
            if snap is None:
                cls, text, title = "cnone", "–", f"{name}: not audited in round {rnd}"
            elif not snap.ok:
                cls, text, title = "cerr", "✕", f"{name}: audit failed: {snap.error}"
            else:
                lacks = len(union - set(snap.objects))
                n = len(snap.objects)
                if lacks:
                    lagging += 1
                    cls, text = "clag", f"{n} −{lacks}"
                    title = f"{name}: {n} objects, lacks {lacks} key(s) other replicas hold"
                else:
                    cls, text, title = "cok", str(n), f"{name}: {n} objects, lacks nothing"
            out.append(
                f'<rect x="{x + 2}" y="{y + 1}" width="{cell_w - 4}" height="{cell_h - 2}" '
                f'class="{cls}"><title>{esc(title)}</title></rect>'
                f'<text x="{x + cell_w / 2}" y="{y + 13}" class="ctext">{esc(text)}</text>'
            )
        if lagging:
            lagging_rounds += 1
        out.append(
            f'<text x="{x + cell_w / 2}" y="{head + len(rows) * cell_h + 14}" '
            f'class="tick{" bad" if lagging else ""}">{lagging}/{len(got)} lag</text>'
        )
    out.append("</svg>")
    summary = (
        f"{len(by_round)} audit round(s); {lagging_rounds} drawn with a replica lacking keys "
        "another held"
    )
    if dropped:
        summary += f"; {dropped} middle round(s) not drawn"
    return "".join(out), summary


# ---- SVG: the topology -------------------------------------------------------------------


@dataclass
class TopologyView:
    name: str
    source: str | None
    sites: dict[str, list[str]]
    clients: dict[str, tuple[str | None, str | None, list[str]]]  # site, policy, order
    facts: list[str]
    inferred: bool
    lint: list[Any] = field(default_factory=list)
    error: str = ""


def topology_view(sc: ScenarioData) -> TopologyView:
    """From the topology file when it can be read, else what the history shows."""
    from harness.lint import lint
    from harness.topology import TopologyError, load_topology

    error = ""
    if sc.topology_file:
        try:
            topo = load_topology(sc.topology_file)
        except TopologyError as e:
            error = str(e)
        else:
            scale = sc.header.get("time_scale")
            ts = float(scale) if isinstance(scale, int | float) else topo.time_scale
            facts = [
                f"replication {topo.replication_profile}"
                + (
                    f" every {_num(topo.replication_interval_ms)} ms"
                    if topo.replication_profile != "none"
                    else ""
                )
                + (f", primary {topo.primary}" if topo.replication_profile == "sync" else ""),
                f"timeouts: response {_num(topo.timeouts.response_s * ts)} s, connect "
                f"{topo.timeouts.connect_s * ts:g} s (time scale {ts:g})",
            ]
            return TopologyView(
                topo.name,
                topo.source,
                {s: list(r) for s, r in topo.sites.items()},
                {n: (c.site, c.policy, list(c.order)) for n, c in topo.clients.items()},
                facts,
                False,
                lint(topo),
            )
    # inferred: the order is the prefix of positions seen in fresh attempts
    orders: dict[str, dict[int, str]] = {}
    policies: dict[str, str] = {}
    for c in (e for e in sc.events if isinstance(e, Complete)):
        policies.setdefault(c.client, c.policy)
        fresh = [a.server for a in c.attempts if not a.reused]
        for i, server in enumerate(fresh):
            orders.setdefault(c.client, {}).setdefault(i, server)
    clients: dict[str, tuple[str | None, str | None, list[str]]] = {}
    for name, pos in sorted(orders.items()):
        seq: list[str] = []
        i = 0
        while i in pos:
            seq.append(pos[i])
            i += 1
        clients[name] = (None, policies.get(name), seq)
    name = str(sc.header.get("topology") or "unknown topology")
    why = f"cannot read {sc.topology_file}: {error}" if sc.topology_file else "no topology file"
    return TopologyView(
        name,
        sc.topology_file,
        {"(sites unknown)": replicas_seen(sc.events)},
        clients,
        [f"drawn from the history ({why}); orders are the prefix the attempts show"],
        True,
        [],
        error,
    )


def topology_svg(view: TopologyView, colours: dict[str, str]) -> str:
    names = [r for reps in view.sites.values() for r in reps]
    names += [r for _, _, order in view.clients.values() for r in order]
    longest = max((len(r) for r in names), default=5)
    chip_w, chip_h, gap, pad = min(150, max(68, 7 * longest + 16)), 22, 8, 10
    small = min(160, max(54, 7 * (longest + 2) + 8))  # "3 kms-c" in a client's order
    x = 10.0
    boxes: list[str] = []
    site_h = 24 + chip_h + pad
    for site, reps in view.sites.items():
        w = max(len(reps), 1) * (chip_w + gap) - gap + 2 * pad
        w = max(w, 7 * len(site) + 2 * pad)
        boxes.append(
            f'<rect x="{x}" y="8" width="{w}" height="{site_h}" class="site" rx="6"/>'
            f'<text x="{x + pad}" y="24" class="sitelabel">{esc(site)}</text>'
        )
        for i, r in enumerate(reps):
            cx = x + pad + i * (chip_w + gap)
            boxes.append(_chip(cx, 30, chip_w, chip_h, r, colours.get(r, NO_SERVER)))
        x += w + 16
    width = x
    y = 8 + site_h + 18
    rows: list[str] = []
    for name, (home, policy, order) in view.clients.items():
        parts = [p for p in (home, policy) if p]
        label = f"{name} ({', '.join(parts)})" if parts else name
        rows.append(_label(10, y + 15, label, 28, "clabel"))
        cx = 190.0
        for i, r in enumerate(order):
            if i:
                rows.append(f'<path d="M{cx - 13:.0f} {y + 11}h9m-4 -4l4 4l-4 4" class="arrow"/>')
            rows.append(_chip(cx, y, small, 22, f"{i + 1} {r}", colours.get(r, NO_SERVER)))
            cx += small + 16
        width = max(width, cx)
        y += 30
    height = y + 4
    return (
        f'<svg class="topo" viewBox="0 0 {width:.0f} {height}" width="{width:.0f}" '
        f'height="{height}" role="img" aria-label="topology">' + "".join(boxes + rows) + "</svg>"
    )


def _label(x: float, y: float, text: str, fit: int, cls: str) -> str:
    """An SVG text cut to `fit` characters (the whole text as its tooltip)."""
    if len(text) <= fit:
        return f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}">{esc(text)}</text>'
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}"><title>{esc(text)}</title>'
        f"{esc(text[: fit - 1])}…</text>"
    )


def _chip(x: float, y: float, w: float, h: float, text: str, colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    dark = 0.299 * r + 0.587 * g + 0.114 * b > 150  # light fill: dark text
    return f'<rect x="{x:.0f}" y="{y}" width="{w}" height="{h}" rx="4" fill="{colour}"/>' + _label(
        x + w / 2, y + h / 2 + 4, text, int(w // 7), "chip dk" if dark else "chip"
    )


# ---- HTML --------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#fff}
header,main,footer,nav{padding:0 24px}
header{padding-top:16px;border-bottom:1px solid #ddd;padding-bottom:10px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:16px;margin:18px 0 6px}
h3{font-size:14px;margin:14px 0 4px}
.meta{color:#555}
.chips span{display:inline-block;padding:2px 9px;border-radius:10px;margin-right:6px;
font-weight:600;font-size:13px}
.partial{background:#fff4ce;border:1px solid #e0b300;padding:8px 12px;margin:10px 0;
border-radius:6px}
.c-pass,.c-passed{background:#e3f4e4;color:#1b5e20}
.c-fail,.c-failed,.c-regression{background:#fde0dc;color:#a00}
.c-finding{background:#ede7f6;color:#4a148c}
.c-unknown,.c-interrupted{background:#fff4ce;color:#7a5a00}
.c-skipped,.c-none{background:#eee;color:#555}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#f6f6f6;font-weight:600}
td.s{white-space:nowrap}
nav td{font-size:13px;white-space:nowrap}
nav td:first-child{white-space:normal;max-width:280px;overflow-wrap:anywhere}
.badge{white-space:nowrap}
.badge{display:inline-block;padding:0 7px;border-radius:8px;font-size:12px;font-weight:600}
details.scenario{border:1px solid #ccc;border-radius:6px;margin:10px 0;padding:0 12px}
details.scenario>summary{cursor:pointer;padding:8px 0;font-size:15px}
details.scenario[open]>summary{border-bottom:1px solid #eee;margin-bottom:6px}
summary .sid{color:#777;font-size:12px;margin-left:6px}
pre{background:#f7f7f7;border:1px solid #e5e5e5;padding:6px 8px;overflow-x:auto;font-size:12px;
margin:4px 0;white-space:pre-wrap}
.muted{color:#777;fill:#777;font-size:12px}
.finding{background:#ede7f6;border-left:4px solid #7e57c2;padding:4px 8px;margin:4px 0}
.explain{border-left:4px solid #d62728;padding:2px 10px;margin:8px 0}
.legend{font-size:12px;margin:2px 0 6px}
.key{margin-right:12px;white-space:nowrap}
.key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;
border-radius:2px}
.kx,.ko{color:#d62728;margin-right:3px}.kd{color:#555;margin-right:3px}
.kn,.kr{color:#555;margin-right:3px}
svg{display:block;max-width:100%;height:auto}
svg text{font-size:11px;fill:#222}
.rlabel{text-anchor:end;font-weight:600}
.tick{text-anchor:middle;fill:#555}.tick.end{text-anchor:end}.tick.bad{fill:#d62728}
.flabel{font-size:10px;fill:#4a2c00}.flabel.end{text-anchor:end}
.axis{stroke:#888}.grid{stroke:#e6e6e6}
.zebra{fill:#fafafa}
.xfail{stroke:#d62728;stroke-width:2.5;fill:none}
.xatt{stroke:#d62728;stroke-width:1.5;fill:none}
.aok{stroke-width:4}.abad{stroke-width:4;stroke-dasharray:4 2}
.opfail{fill:none;stroke:#d62728;stroke-width:1}
.opinfo{fill:#fff;stroke:#d62728;stroke-width:2}
.note{fill:#666}.round{fill:#444}
.cok{fill:#e3f4e4}.clag{fill:#fde0dc}.cerr{fill:#ffd0cc}.cnone{fill:#f2f2f2}
.ctext{text-anchor:middle}
.site{fill:#f5f7fa;stroke:#9aa5b1}
.sitelabel{font-weight:600}
.chip{fill:#fff;text-anchor:middle;font-weight:600}.chip.dk{fill:#111}
.clabel{font-weight:600}
.arrow{stroke:#555;fill:none;stroke-width:1.5}
.sev-error{color:#a00;font-weight:600}.sev-warning{color:#7a5a00;font-weight:600}
footer{border-top:1px solid #ddd;margin-top:24px;padding-top:8px;padding-bottom:24px;
color:#555;font-size:12px}
button{font:inherit;font-size:12px;margin-right:6px}
"""

JS = """
function setAll(open){
document.querySelectorAll('details.scenario').forEach(function(d){d.open=open;});}
function openHash(){var h=location.hash.slice(1);if(!h)return;var d=document.getElementById(h);
if(d&&d.tagName==='DETAILS'){d.open=true;}}
window.addEventListener('hashchange',openHash);openHash();
"""


def _badge(text: str, cls: str) -> str:
    return f'<span class="badge c-{esc(cls)}">{esc(text)}</span>'


def _verdict_badge(v: dict[str, Any] | None) -> str:
    if not v:
        return '<span class="muted">-</span>'
    cls = verdict_class(v)
    text = str(v.get("status"))
    if cls == "finding":
        text += " (expected)"
    elif cls == "regression":
        text += f" (expected {v.get('expected')})"
    return _badge(text, cls)


def _outcome_badge(sc: ScenarioData) -> str:
    cls = scenario_rank(sc)
    if sc.outcome == "failed":
        return _badge("REGRESSION", "regression")
    if cls == 2:
        return _badge("ok · finding", "finding")
    text = {"passed": "ok", "unknown": "no result recorded"}.get(sc.outcome, sc.outcome)
    return _badge(text, sc.outcome if sc.outcome != "unknown" else "unknown")


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
    cols = CHECKERS.ordered({k for sc in order for k in sc.verdicts})
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
                f"<td>{_verdict_badge(v)}"
                + (f'<br><span class="muted">{esc(fig)}</span>' if fig else "")
                + "</td>"
            )
        dur = f"{sc.duration_s:.1f} s" if isinstance(sc.duration_s, int | float) else "-"
        out.append(f'<td class="s">{_outcome_badge(sc)}</td><td class="s">{esc(dur)}</td></tr>')
    out.append("</table></nav>")
    return "".join(out)


# a run of this many scenarios or fewer (a rehearsal, a re-run) shows every section open
OPEN_ALL_UP_TO = 3


def _scenario_section(sc: ScenarioData, ids: list[str]) -> str:
    rank = scenario_rank(sc)
    is_open = " open" if rank <= 2 or len(ids) <= OPEN_ALL_UP_TO else ""
    out = [
        f'<details class="scenario" id="{_anchor(sc.id)}"{is_open}><summary>'
        f"<b>{esc(short_name(sc.id, ids))}</b> {_outcome_badge(sc)}"
        f'<span class="sid">{esc(sc.id)}</span></summary>'
    ]
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
    out.append('<div class="meta">' + esc(" · ".join(meta)) + "</div>")
    for f in sc.findings:
        out.append(f'<div class="finding"><b>finding</b>: {esc(f)}</div>')
    if sc.outcome in ("failed", "skipped") and sc.detail:
        what = "why it failed" if sc.outcome == "failed" else "why it was skipped"
        out.append(f"<h3>{what}</h3><pre>{esc(sc.detail[-MAX_DETAIL_CHARS:])}</pre>")
    if not sc.has_outcome and sc.outcome != "skipped":
        out.append(
            '<p class="muted">no outcome.json: the scenario stopped before writing its verdicts</p>'
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
        out.append("<h3>Timeline</h3>")
        svg, remarks = timeline_svg(sc.events, colours, origin)
        has_faults = any(isinstance(e, FaultEvent) for e in sc.events)
        has_rounds = any(isinstance(e, Snapshot) for e in sc.events)
        if svg:
            out.append(legend_html(colours, has_faults, has_rounds) + svg)
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
    elif sc.outcome != "skipped":
        out.append('<p class="muted">no history.jsonl for this scenario</p>')

    if sc.verdicts:
        out.append(_verdict_table(sc))
        out.append(_explanations(sc, origin))
        out.append(_lost_keys(sc))
    if view is not None:
        out.append(_topology_block(view, colours))
    out.append("</details>")
    return "".join(out)


def _verdict_table(sc: ScenarioData) -> str:
    names = CHECKERS.ordered(sc.verdicts)
    out = [
        "<h3>Verdicts</h3><table><tr><th>verdict</th><th>status</th><th>expected</th>"
        "<th>figure</th><th>summary</th><th>bound</th><th>figures</th></tr>"
    ]
    for name in names:
        v = sc.verdicts[name]
        figs = json.dumps(v.get("figures") or {}, indent=1, default=str)
        if len(figs) > 20000:
            figs = figs[:20000] + "\n… (cut)"
        out.append(
            f'<tr><td><b>{esc(name)}</b></td><td class="s">{_verdict_badge(v)}</td>'
            f"<td>{esc(v.get('expected') or 'not asserted')}</td>"
            f'<td class="s">{esc(headline(v))}</td><td>{esc(v.get("summary", ""))}</td>'
            f"<td>{esc(v.get('bound') or '-')}</td>"
            f"<td><details><summary>json</summary><pre>{esc(figs)}</pre></details></td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _explanations(sc: ScenarioData, origin: float) -> str:
    out = []
    for name, v in sc.verdicts.items():
        cls = verdict_class(v)
        if cls == "pass":
            continue
        lines = evidence_lines(v, sc.events, origin)
        out.append(
            f'<div class="explain"><b>{esc(name)}: {esc(v.get("status"))}</b> '
            f"{_verdict_badge(v)}<br>{esc(explain(v))}"
            f"<div>what proves it:</div><pre>{esc(chr(10).join(lines))}</pre></div>"
        )
    return "".join(out)


def _lost_keys(sc: ScenarioData) -> str:
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


def _topology_block(view: TopologyView, colours: dict[str, str]) -> str:
    out = [f"<h3>Topology: {esc(view.name)}</h3>"]
    if view.source:
        out.append(f'<div class="muted">{esc(view.source)}</div>')
    out.append('<div class="muted">' + esc(" · ".join(view.facts)) + "</div>")
    out.append(topology_svg(view, colours))
    if view.inferred:
        out.append('<p class="muted">lint: not run (no topology file to read)</p>')
    elif view.lint:
        out.append("<table><tr><th>lint</th><th>where</th><th>finding</th><th>fix</th></tr>")
        for f in view.lint:
            out.append(
                f'<tr><td class="s"><span class="sev-{esc(f.severity)}">{esc(f.severity)}</span> '
                f"{esc(f.rule)}</td><td><code>{esc(f.where)}</code></td><td>{esc(f.message)}</td>"
                f"<td>{esc(f.fix)}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">lint: no findings</p>')
    return "".join(out)


# ---- entry points --------------------------------------------------------------------------


def render_report(
    report_dir: Path, output: Path | None = None, *, backend: str | None = None
) -> Path:
    """Write the report page for `report_dir` (default ``report_dir/report.html``) and
    return its path. `backend` fills in what an older summary.json does not record."""
    data = load_report(Path(report_dir))
    if backend and not data.backend:
        data.backend = backend
    page = render_html(data)
    target = Path(output) if output else Path(report_dir) / REPORT_FILE
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
    p: argparse.ArgumentParser = sub.add_parser(
        "report",
        help="render report.html from a report folder (no cluster needed)",
        description="Render DIR/report.html from what `kmschaos run` wrote to DIR "
        "(summary.json, history.jsonl, scenarios/*/{history.jsonl,outcome.json}): per "
        "scenario a timeline per client with fault windows, the audit rounds, the verdicts "
        "with what proves them, lost keys and the topology with its lint findings. One "
        "self-contained file: open it offline. An interrupted run gives a partial report.",
    )
    p.add_argument("report_dir", metavar="DIR", help="a report folder (e.g. reports/latest)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of DIR/report.html")
    p.set_defaults(func=cmd_report)
    return p


__all__ = [
    "REPORT_FILE",
    "ReportData",
    "ReportError",
    "ScenarioData",
    "add_report_parser",
    "cmd_report",
    "load_report",
    "render_html",
    "render_report",
]
