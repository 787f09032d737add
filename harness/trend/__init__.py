"""`kmschaos trend`: several runs' figures over time, and drift.

Reads the ``summary.json`` of each run folder `kmschaos run` wrote (nightly runs, say),
follows per scenario the figures that say how fast and how well a failure was handled
— failover, detection, availability, convergence, RPO — and flags a figure whose newest
value is worse than the median of the previous runs by more than a threshold.

    figures   the followed figures: where each is read, its unit, which way is worse
    series    run folders → `Run`s (oldest first) → a `Series` per (scenario, figure)
    drift     the rule: newest against the median of the previous N
    html      the page with a small chart per figure, in the report's style
"""

from __future__ import annotations

from harness.trend.drift import DEFAULT_THRESHOLD, DEFAULT_WINDOW, Judgement, judge, judge_all
from harness.trend.figures import FIGURES, Figure
from harness.trend.html import render_trend
from harness.trend.series import (
    Run,
    Series,
    TrendError,
    dropped,
    read_run,
    read_runs,
    series_of,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW",
    "FIGURES",
    "Figure",
    "Judgement",
    "Run",
    "Series",
    "TrendError",
    "dropped",
    "judge",
    "judge_all",
    "read_run",
    "read_runs",
    "render_trend",
    "series_of",
]
