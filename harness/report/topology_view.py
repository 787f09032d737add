"""The topology a scenario ran on, for the page: its sites and replicas, each client's
order, the facts that bear on failover (replication, timeouts at the run's time scale)
and the linter's findings. From the topology file when it can be read; otherwise drawn
from what the history shows (the order is the prefix the attempts reveal, no lint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.history import Complete
from harness.report.history_view import replicas_seen
from harness.report.load import ScenarioData
from harness.report.style import NO_SERVER, esc, svg_label
from harness.topology import TopologyError, load_topology
from harness.topology_lint import lint


@dataclass
class TopologyView:
    """What the page draws of a topology (`inferred`: from the history, not its file)."""

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
                {n: (c.site, c.policy.label, list(c.order)) for n, c in topo.clients.items()},
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
        rows.append(svg_label(10, y + 15, label, 28, "clabel"))
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


def _chip(x: float, y: float, w: float, h: float, text: str, colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    dark = 0.299 * r + 0.587 * g + 0.114 * b > 150  # light fill: dark text
    return (
        f'<rect x="{x:.0f}" y="{y}" width="{w}" height="{h}" rx="4" fill="{colour}"/>'
        + svg_label(x + w / 2, y + h / 2 + 4, text, int(w // 7), "chip dk" if dark else "chip")
    )


def topology_html(view: TopologyView, colours: dict[str, str]) -> str:
    """The topology's part of a scenario's section: name, facts, drawing, lint table."""
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


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


__all__ = ["TopologyView", "topology_html", "topology_svg", "topology_view"]
