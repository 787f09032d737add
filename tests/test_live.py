"""The live status of a run, from the histories the scenarios write line by line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from harness.live import LiveStatus


def write(path: Path, *events: dict[str, object], partial: str = "") -> None:
    with path.open("a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
        f.write(partial)


def test_step_faults_rate_and_errors_of_running_scenarios(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios" / "scenarios_test_x.py_test_refuse_first"
    folder.mkdir(parents=True)
    hist = folder / "history.jsonl"
    now = time.monotonic()
    write(
        hist,
        {"type": "header"},
        {"type": "note", "t": now, "text": "baseline"},
        {"type": "complete", "outcome": "ok", "end": now - 0.5},
        {"type": "fault", "phase": "inject", "fault_id": "f1", "kind": "refuse", "target": "kms-a"},
        {"type": "note", "t": now, "text": "refuse on kms-a"},
        {"type": "complete", "outcome": "fail", "end": now - 0.1},
        {"type": "complete", "outcome": "ok", "end": now - 10},  # outside the rate window
        partial='{"type": "complete", "outc',  # being written: not read yet
    )
    live = LiveStatus(tmp_path, Console(file=open("/dev/null", "w")))  # noqa: SIM115
    [line] = live.poll()
    assert line.startswith("test_refuse_first: 1 ops/s, 1/3 failed")
    assert "faults: refuse kms-a" in line and line.endswith("refuse on kms-a")

    write(hist, partial='ome": "ok", "end": 0}\n')
    write(hist, {"type": "fault", "phase": "heal", "fault_id": "f1"})
    [line] = live.poll()
    assert "1/4 failed" in line and "faults: none" in line

    (folder / "outcome.json").write_text("{}")
    assert live.poll() == [], "a finished scenario leaves the live view"
