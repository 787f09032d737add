"""The timeline of one scenario as inline SVG: a row per client with its operations
coloured by the replica that served them, failed operations and attempts marked, fault
windows as bands across the rows (and labelled bars above them), notes and audit rounds
on the axis. A row with too many operations is thinned, and the page says so.

Below the clients, a row per (balancer, server) that HAProxy ever took out of rotation
(`BalancerEvent`s): a band while the server was out, from the first state not in rotation
to the next fully UP one, and a thin mark while its checks failed but it still took
connections (``UP 1/3``, going down). A server always UP adds no row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.checkers.verdict import fault_windows
from harness.history import BalancerEvent, ClientEvent, Complete, Event, Note, Snapshot
from harness.report.history_view import event_line
from harness.report.style import (
    FAULT_BAND,
    FAULT_BAR,
    LEFT,
    NO_SERVER,
    RIGHT,
    SVG_W,
    esc,
    svg_label,
)

CACHED = "#7fb3a3"  # an op served from the client's key cache, without the KMS
CACHE_KEY = "\0cache"  # its place among the servers a row colours by
LIFECYCLE = {"restart": "↻", "stop": "■", "start": "▶"}
MAX_OP_MARKS = 400  # per client row; beyond it, adjacent ok ops of one replica merge
MAX_FAILED_MARKS = 400  # failed ops and failed attempts drawn per client
OUT_OF_ROTATION = "#5b6778"  # a balancer gives the server no new connection
GOING_DOWN = "#aab4c2"  # its checks fail, but it still takes new connections
MAX_ROTATION_MARKS = 200  # out-of-rotation and going-down periods drawn per balancer row


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
    marks = [
        _Mark(c.start, c.end, CACHE_KEY if c.cached else c.served_by)
        for c in ops
        if c.outcome == "ok"
    ]
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


@dataclass
class _Rotation:
    """A period a balancer's server spent out of rotation (`out`) or going down, from the
    state that began it to the one that ended it (None: still so at the end)."""

    began: BalancerEvent
    out: bool
    ended: BalancerEvent | None = None
    # out of rotation: the first state of a return (``DOWN 1/2``, checks pass again)
    returning: BalancerEvent | None = None


def _rotations(evs: list[BalancerEvent]) -> list[_Rotation]:
    """One (balancer, server)'s states, in time order, as its periods out of rotation and
    going down; a going-down period ends where the server goes out or is UP again."""
    periods: list[_Rotation] = []
    cur: _Rotation | None = None
    for e in evs:
        transitional = e.status != "UP" and "/" in e.status  # UP 1/3, DOWN 1/2
        if cur is not None and (e.status == "UP" or cur.out != (not e.in_rotation)):
            cur.ended = e
            periods.append(cur)
            cur = None
        if e.status == "UP":
            continue
        if cur is None:
            cur = _Rotation(e, out=not e.in_rotation)
        elif cur.out:
            cur.returning = (cur.returning or e) if transitional else None
    if cur is not None:
        periods.append(cur)
    return periods


def _balancer_rows(events: Sequence[Event]) -> dict[tuple[str, str], list[_Rotation]]:
    """The periods of every (balancer, server) that was ever out of rotation."""
    states: dict[tuple[str, str], list[BalancerEvent]] = {}
    for e in events:
        if isinstance(e, BalancerEvent):
            states.setdefault((e.balancer, e.server), []).append(e)
    return {
        key: _rotations(sorted(evs, key=lambda e: e.t))
        for key, evs in sorted(states.items())
        if any(not e.in_rotation for e in evs)
    }


def has_balancer_rows(events: Sequence[Event]) -> bool:
    """The timeline draws a balancer row: some balancer took a server out of rotation."""
    return bool(_balancer_rows(events))


def _check(e: BalancerEvent) -> str:
    what = ": ".join(x for x in (e.check, e.detail) if x)
    return f" ({what})" if what else ""


def _rotation_marks(
    label: str, periods: list[_Rotation], y0: float, scale: _Scale, origin: float
) -> tuple[list[str], str]:
    """A row's bands (out of rotation) and thin marks (going down), with their titles."""
    out: list[str] = []
    end_of_history = scale.t1 + origin
    for p in periods[:MAX_ROTATION_MARKS]:
        t_end = p.ended.t if p.ended is not None else end_of_history
        x0 = scale.x(p.began.t - origin)
        wd = max(scale.x(t_end - origin) - x0, 2.0)
        span = f"t+{p.began.t - origin:.3f}s → " + (
            f"t+{p.ended.t - origin:.3f}s" if p.ended is not None else "the end of the history"
        )
        if p.out:
            title = f"{label} out of rotation {t_end - p.began.t:.2f} s{_check(p.began)}, {span}"
            if p.returning is not None:
                title += (
                    f"; checks passing again from t+{p.returning.t - origin:.3f}s "
                    f"({p.returning.status})"
                )
            if p.ended is None:
                title += "; still out at the end"
            y, h, fill = y0 + 4, 12, OUT_OF_ROTATION
        else:
            title = (
                f"{label} going down {t_end - p.began.t:.2f} s{_check(p.began)}, {span}: "
                f"checks failing ({p.began.status}), still in rotation"
            )
            if p.ended is not None and p.ended.status == "UP":
                title += "; back UP without leaving rotation"
            y, h, fill = y0 + 8, 4, GOING_DOWN
        out.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{wd:.1f}" height="{h}" fill="{fill}">'
            f"<title>{esc(title)}</title></rect>"
        )
    if len(periods) <= MAX_ROTATION_MARKS:
        return out, ""
    n = len(periods)
    return out, f"{label}: {n} periods out of or going down, the first {MAX_ROTATION_MARKS} drawn"


def timeline_svg(
    events: Sequence[Event], colours: dict[str, str], origin: float
) -> tuple[str, list[str]]:
    """The SVG and the notes about it (thinned rows, missing parts)."""
    ops = sorted((e for e in events if isinstance(e, Complete)), key=lambda c: c.start)
    windows = fault_windows(list(events))
    notes_ev = [e for e in events if isinstance(e, Note)]
    lifecycle = [e for e in events if isinstance(e, ClientEvent)]
    balancers = _balancer_rows(events)
    rounds: dict[int, float] = {}
    for s in (e for e in events if isinstance(e, Snapshot)):
        rounds[s.round] = min(rounds.get(s.round, s.t), s.t)
    times = [c.start for c in ops] + [c.end for c in ops]
    times += [w.start for w in windows] + [w.end for w in windows]
    times += [n.t for n in notes_ev] + list(rounds.values()) + [e.t for e in lifecycle]
    for periods in balancers.values():
        times += [p.began.t for p in periods] + [p.ended.t for p in periods if p.ended]
    remarks: list[str] = []
    if not times:
        return "", ["no operation, fault or note in the history: nothing to draw"]
    t0 = min(0.0, min(times) - origin)
    t1 = max(times) - origin
    if t1 - t0 < 1e-3:
        t1 = t0 + 1e-3
    scale = _Scale(t0, t1)
    clients = sorted({c.client for c in ops} | {e.client for e in lifecycle})
    policy_of: dict[str, str] = {}
    for c in ops:
        policy_of.setdefault(c.client, c.policy)
    fault_h = 14
    row_h = 36
    lb_h = 20
    top = 8
    lane_top = top
    rows_top = lane_top + len(windows) * fault_h + (6 if windows else 0)
    lb_top = rows_top + max(1, len(clients)) * row_h
    rows_bottom = lb_top + len(balancers) * lb_h
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
        out.append(svg_label(LEFT - 8, y0 + 17, client, 19, "rlabel"))
        if client in policy_of:
            out.append(svg_label(LEFT - 8, y0 + 30, policy_of[client], 19, "rlabel muted"))
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
            if server == CACHE_KEY:
                title, fill = f"{client}: {n} ok op(s) served from its key cache", CACHED
            else:
                title = f"{client}: {n} ok op(s) served by {server or 'no server'}"
                fill = colours.get(server or "", NO_SERVER)
            out.append(f'<path d="{"".join(d)}" fill="{fill}"><title>{esc(title)}</title></path>')
        for e in (e for e in lifecycle if e.client == client):
            x = scale.x(e.t - origin)
            what = f"t+{e.t - origin:.3f}s {e.action} {e.client}#{e.worker}"
            what += f" ({e.detail})" if e.detail else ""
            out.append(
                f'<text x="{x:.1f}" y="{y0 + 30}" class="lifecycle">{LIFECYCLE[e.action]}'
                f"<title>{esc(what)}</title></text>"
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
    if balancers:
        out.append(
            f'<line x1="{LEFT}" y1="{lb_top}" x2="{LEFT + scale.width}" y2="{lb_top}" '
            'class="axis"/>'
        )
    for bi, ((lb, server), periods) in enumerate(balancers.items()):
        y0 = lb_top + bi * lb_h
        label = f"{lb} → {server}"
        out.append(svg_label(LEFT - 8, y0 + 14, label, 19, "rlabel"))
        drawn, remark = _rotation_marks(label, periods, y0, scale, origin)
        out += drawn
        if remark:
            thinned.append(remark)
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


def legend_html(
    colours: dict[str, str],
    has_faults: bool,
    has_rounds: bool,
    has_cache: bool = False,
    has_lifecycle: bool = False,
    has_balancers: bool = False,
) -> str:
    """The timeline's legend; a client row is labelled with its name and its policy."""
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
    if has_cache:
        items.append(
            f'<span class="key"><i style="background:{CACHED}"></i>served from the '
            "client's key cache</span>"
        )
    if has_lifecycle:
        items.append(
            '<span class="key"><b class="kn">↻ ■ ▶</b>client restarted, stopped, started</span>'
        )
    if has_balancers:
        items.append(
            f'<span class="key"><i style="background:{OUT_OF_ROTATION}"></i>out of the '
            "balancer's rotation</span>"
        )
        items.append(
            f'<span class="key"><i style="background:{GOING_DOWN};height:4px;'
            'vertical-align:2px"></i>going down (checks failing, still in rotation)</span>'
        )
    items.append('<span class="key"><b class="kn">▾</b>note</span>')
    if has_rounds:
        items.append('<span class="key"><b class="kr">◆</b>audit round</span>')
    return '<div class="legend">' + "".join(items) + "</div>"


__all__ = ["has_balancer_rows", "legend_html", "timeline_svg"]
