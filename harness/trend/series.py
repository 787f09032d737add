"""Reading runs for a trend: each run folder's ``summary.json`` (`harness.store.ReportFolder`)
into a `Run` — when it started, the commit, the time scale and every figure of every
scenario — and the runs into a `Series` per (scenario, figure), oldest run first.

Only ``summary.json`` is read (not the histories), so a trend over many nightly runs is
quick. A verdict counts under its checker's own name, not a rehearsal step's copy. Runs
are ordered by ``started``; a summary written before it was recorded keeps the order
given. Every problem is a `TrendError` naming the file, the line or the field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store import ReportFolder
from harness.trend.figures import FIGURES, FieldError, Figure, mapping, number


class TrendError(Exception):
    """A run folder cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Run:
    """One run as its summary records it."""

    folder: Path
    started: float | None = None  # seconds since the epoch
    commit: str | None = None
    time_scale: float | None = None
    backend: str | None = None
    totals: dict[str, int] = field(default_factory=dict)
    scenarios: tuple[str, ...] = ()  # every scenario it ran, measured or not
    values: dict[tuple[str, str], float] = field(default_factory=dict)  # (scenario, figure)

    @property
    def when(self) -> str:
        """Its start (UTC) and commit, as far as the summary records them."""
        parts = []
        if self.started is not None:
            parts.append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started)))
        if self.commit:
            parts.append(self.commit)
        return " · ".join(parts) or "start not recorded"


@dataclass(frozen=True)
class Series:
    """One figure of one scenario over the runs, oldest first (None: not measured)."""

    scenario: str
    figure: Figure
    values: tuple[float | None, ...]


def read_run(folder: Path) -> Run:
    """The run whose report folder is `folder`."""
    path = ReportFolder(Path(folder)).summary
    if not path.is_file():
        what = "missing" if Path(folder).is_dir() else "missing (no such folder)"
        raise TrendError(f"{path}: {what}; `kmschaos run --report-dir {folder}` writes one")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TrendError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise TrendError(f"{path}: not JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(summary, dict):
        raise TrendError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    try:
        return _run(Path(folder), summary)
    except FieldError as e:
        raise TrendError(f"{path}: {e}") from None


def _run(folder: Path, summary: dict[str, Any]) -> Run:
    rows = summary.get("scenarios")
    if not isinstance(rows, list):
        raise FieldError("scenarios", "a list", rows)
    values: dict[tuple[str, str], float] = {}
    ids: list[str] = []
    for i, row in enumerate(rows):
        row = mapping(row, f"scenarios[{i}]")
        sid = row.get("id")
        if not isinstance(sid, str):
            raise FieldError(f"scenarios[{i}].id", "a string", sid)
        ids.append(sid)
        verdicts = mapping(row.get("verdicts"), f"scenarios[{i}].verdicts")
        for fig in FIGURES:
            verdict = verdicts.get(fig.checker)
            where = f"scenarios[{i}].verdicts.{fig.checker}"
            value = fig.value_of(mapping(verdict, where), where)
            if value is not None:
                values[(sid, fig.name)] = value
    commit = summary.get("commit")
    if commit is not None and not isinstance(commit, str):
        raise FieldError("commit", "a string", commit)
    backend = summary.get("backend")
    totals = mapping(summary.get("totals"), "totals")
    return Run(
        folder=folder,
        started=number(summary.get("started"), "started"),
        commit=commit,
        time_scale=number(summary.get("time_scale"), "time_scale"),
        backend=str(backend) if backend is not None else None,
        totals={k: int(v) for k, v in totals.items() if isinstance(v, int)},
        scenarios=tuple(ids),
        values=values,
    )


def read_runs(folders: Sequence[Path]) -> tuple[list[Run], str]:
    """The runs, oldest first, and how they were ordered (said to the user)."""
    runs = [read_run(f) for f in folders]
    if all(r.started is not None for r in runs):
        return sorted(runs, key=lambda r: r.started or 0.0), "by start time"
    undated = sum(1 for r in runs if r.started is None)
    return runs, f"in the order given ({undated} summary(ies) without a start time)"


def series_of(runs: Sequence[Run]) -> list[Series]:
    """Every (scenario, figure) any run measured, of the scenarios the newest run ran
    (`dropped` are the others), by scenario then in `FIGURES` order."""
    scenarios = sorted(set(runs[-1].scenarios)) if runs else []
    out = []
    for sid in scenarios:
        for fig in FIGURES:
            values = tuple(r.values.get((sid, fig.name)) for r in runs)
            if any(v is not None for v in values):
                out.append(Series(sid, fig, values))
    return out


def dropped(runs: Sequence[Run]) -> list[str]:
    """The scenarios an earlier run ran and the newest did not (left out of the trend)."""
    if not runs:
        return []
    return sorted({sid for r in runs[:-1] for sid in r.scenarios} - set(runs[-1].scenarios))


__all__ = ["Run", "Series", "TrendError", "dropped", "read_run", "read_runs", "series_of"]
