"""How the page looks: the colours, the drawing width, the inline CSS and JS, and the two
text helpers every part of the page uses (escaping, a cut SVG label).

The first replica's blue and the fault band are what the screenshot test looks for, so
they are fixed here and used for nothing else.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

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
NO_SERVER = "#b0b0b0"

# the drawings' width and margins (pixels)
SVG_W = 1100
LEFT = 130
RIGHT = 24


def esc(x: Any) -> str:
    """Any value from the folder, safe inside HTML text and attributes."""
    return html.escape(str(x), quote=True)


def svg_label(x: float, y: float, text: str, fit: int, cls: str) -> str:
    """An SVG text cut to `fit` characters (the whole text as its tooltip)."""
    if len(text) <= fit:
        return f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}">{esc(text)}</text>'
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}"><title>{esc(text)}</title>'
        f"{esc(text[: fit - 1])}…</text>"
    )


def replica_palette(replicas: Iterable[str]) -> dict[str, str]:
    """A colour per replica, in the order given (the same replica keeps its colour across
    a scenario's drawings)."""
    out: dict[str, str] = {}
    for r in replicas:
        if r not in out:
            out[r] = REPLICA_COLOURS[len(out) % len(REPLICA_COLOURS)]
    return out


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
.lifecycle{font:bold 12px sans-serif;fill:#222;text-anchor:middle}
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

__all__ = [
    "CSS",
    "FAULT_BAND",
    "FAULT_BAR",
    "JS",
    "LEFT",
    "NO_SERVER",
    "REPLICA_COLOURS",
    "RIGHT",
    "SVG_W",
    "esc",
    "replica_palette",
    "svg_label",
]
