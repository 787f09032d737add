"""Replication lag as inline SVG, from the audit rounds: a column per round, a row per
replica, each cell the objects the replica held and, in red, how many keys other
replicas held that it lacked."""

from __future__ import annotations

from collections.abc import Sequence

from harness.history import Event, Snapshot
from harness.report.style import LEFT, RIGHT, SVG_W, esc, svg_label

MAX_ROUNDS = 40  # audit rounds drawn per scenario; beyond, the middle ones are left out


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
        out.append(svg_label(left - 8, y + 13, name, 19, "rlabel"))
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


__all__ = ["lag_svg"]
