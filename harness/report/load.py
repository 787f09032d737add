"""Reading a report folder (`harness.store.ReportFolder`) into `ReportData`: the summary,
each scenario's outcome and history, whatever part of it exists.

Never reads a cluster, so a folder renders any time after its run. A run that was
interrupted leaves a folder without a summary, scenarios without an outcome, a history
with a torn last line: what exists is read and `ReportData.partial` says what is missing.
A scenario whose own history is gone takes its lines from the folder's merged history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.history import Event, event_from_dict
from harness.store import ReportFolder, ScenarioFolder


class ReportError(Exception):
    """The folder cannot be rendered; the message names the folder or file and the fix."""


@dataclass(frozen=True)
class StepVerdict:
    """A verdict a rehearsal step asked for: filed under ``<step>.<checker>`` (e.g.
    ``steps[2].failover``) besides the checker's own name."""

    step: str
    checker: str
    verdict: dict[str, Any]
    line: int | None = None  # the expectation's line in the rehearsal file


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

    def checker_verdicts(self) -> dict[str, dict[str, Any]]:
        """The verdicts filed under their checker's name (not a step's)."""
        return {k: v for k, v in self.verdicts.items() if _step_of(k, v) is None}

    def step_verdicts(self) -> list[StepVerdict]:
        """The verdicts a step filed under ``<step>.<checker>``, in the order recorded."""
        lines = self._expectation_lines()
        out = []
        for key, v in self.verdicts.items():
            step = _step_of(key, v)
            if step is not None:
                checker = str(v.get("name"))
                out.append(StepVerdict(step, checker, v, lines.get((step, checker))))
        return out

    def rehearsal_file(self) -> str | None:
        """The rehearsal file the scenario ran, as its figures name it (None: not one)."""
        source = self._rehearsal().get("file")
        return source if isinstance(source, str) else None

    def _rehearsal(self) -> dict[str, Any]:
        rehearsal = self.figures.get("rehearsal")
        return rehearsal if isinstance(rehearsal, dict) else {}

    def _expectation_lines(self) -> dict[tuple[str, str], int]:
        """(step, checker) → the line of the expectation, as the rehearsal's figures say."""
        rows = self._rehearsal().get("expectations")
        out: dict[tuple[str, str], int] = {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("line"), int):
                out[(str(row.get("step")), str(row.get("checker")))] = row["line"]
        return out


def _step_of(key: str, v: dict[str, Any]) -> str | None:
    """The step a verdict was filed for: ``steps[2]`` for ``steps[2].failover`` (a verdict
    whose key is its checker's name and a suffix); None for a checker's own row."""
    name = v.get("name") if isinstance(v, dict) else None
    if not isinstance(name, str) or not name or key == name:
        return None
    step = key.removesuffix("." + name)
    return step if step != key and step else None


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
    folder = ReportFolder(Path(report_dir))
    root = folder.root
    if not root.is_dir():
        raise ReportError(f"{root}: no such folder (write one with `kmschaos run --report-dir`)")
    summary_name = folder.summary.name
    partial: list[str] = []
    summary: dict[str, Any] = {}
    if folder.summary.is_file():
        loaded = _read_json(folder.summary)
        if not isinstance(loaded, dict):
            raise ReportError(
                f"{folder.summary}: expected a JSON object, got {type(loaded).__name__}"
            )
        summary = loaded
    elif folder.scenarios.is_dir():
        partial.append(f"{summary_name} is missing: the run stopped before it ended")
    else:
        raise ReportError(
            f"{root}: {summary_name} is missing (and no {folder.scenarios.name}/ folder): not "
            f"a kmschaos report folder; `kmschaos run --report-dir {root}` writes one"
        )

    raw_rows = summary.get("scenarios")
    rows: list[Any] = raw_rows if isinstance(raw_rows, list) else []
    scenarios: list[ScenarioData] = []
    seen: set[Path] = set()
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
        sfolder = folder.scenario(sid)
        seen.add(sfolder.root)
        _load_scenario_folder(sc, sfolder)
        scenarios.append(sc)
    for sfolder in folder.scenario_folders():
        if sfolder.root in seen:
            continue
        sc = ScenarioData(id=sfolder.root.name, outcome="interrupted" if summary else "unknown")
        _load_scenario_folder(sc, sfolder)
        if sc.outcome_name:
            sc.id = sc.outcome_name
        scenarios.append(sc)
        if summary:
            partial.append(f"{sc.id}: has a folder but no line in {summary_name}")
    _fill_from_merged(folder.history, scenarios)

    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else {}
    interrupted = int(totals.get("interrupted") or 0) if totals else 0
    if interrupted:
        partial.insert(0, f"{interrupted} scenario(s) interrupted")
    backend = summary.get("backend")
    return ReportData(root, summary, scenarios, partial, str(backend) if backend else None)


def _load_scenario_folder(sc: ScenarioData, sfolder: ScenarioFolder) -> None:
    if not sfolder.root.is_dir():
        return
    if sfolder.outcome.is_file():
        try:
            out = _read_json(sfolder.outcome)
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
    if sfolder.history.is_file():
        with sfolder.history.open(encoding="utf-8", errors="replace") as f:
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


__all__ = ["ReportData", "ReportError", "ScenarioData", "StepVerdict", "load_report"]
