"""The drift rule: a figure drifts when its newest value is worse than the median of the
previous runs' values (up to `window` of them) by more than `threshold` of that median,
and by more than the figure's noise. Which way is worse is the figure's own
(`Figure.larger_is_worse`); an improvement never drifts.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.trend.series import Series

DEFAULT_WINDOW = 5
DEFAULT_THRESHOLD = 0.20


@dataclass(frozen=True)
class Judgement:
    """A series' newest value against its baseline."""

    series: Series
    newest: float | None
    baseline: float | None  # the median of the previous runs' values
    baseline_runs: int  # how many values the median is of
    change: float | None  # (newest - baseline) / baseline; None when either is missing or 0
    drift: bool
    reason: str

    @property
    def values(self) -> tuple[float | None, ...]:
        return self.series.values

    def to_dict(self) -> dict[str, Any]:
        fig = self.series.figure
        return {
            "scenario": self.series.scenario,
            "figure": fig.name,
            "unit": fig.unit,
            "larger_is_worse": fig.larger_is_worse,
            "values": list(self.values),
            "newest": self.newest,
            "baseline": self.baseline,
            "baseline_runs": self.baseline_runs,
            "change": self.change,
            "drift": self.drift,
            "reason": self.reason,
        }


def judge(
    series: Series, window: int = DEFAULT_WINDOW, threshold: float = DEFAULT_THRESHOLD
) -> Judgement:
    """`series` judged by the rule above."""
    fig = series.figure
    *previous, newest = series.values
    earlier = [v for v in previous[-window:] if v is not None]

    def said(baseline: float | None, change: float | None, drift: bool, reason: str) -> Judgement:
        return Judgement(series, newest, baseline, len(earlier), change, drift, reason)

    if newest is None:
        return said(None, None, False, "not measured in the newest run")
    if not earlier:
        return said(None, None, False, "no earlier run to compare with")
    baseline = statistics.median(earlier)
    change = (newest - baseline) / abs(baseline) if baseline else None
    worse = fig.worsening(baseline, newest)
    relative = worse / abs(baseline) if baseline else float("inf")
    if worse > fig.noise and relative > threshold:
        how = f" ({relative:.1%} of the baseline)" if baseline else ""
        return said(baseline, change, True, f"worse by {fig.format_delta(worse)}{how}")
    if worse <= 0:
        return said(baseline, change, False, "no worse")
    if worse <= fig.noise:
        return said(baseline, change, False, f"within the noise ({fig.format_delta(fig.noise)})")
    return said(baseline, change, False, "within the threshold")


def judge_all(
    series: Sequence[Series], window: int = DEFAULT_WINDOW, threshold: float = DEFAULT_THRESHOLD
) -> list[Judgement]:
    return [judge(s, window, threshold) for s in series]


__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_WINDOW", "Judgement", "judge", "judge_all"]
