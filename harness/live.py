"""What a run is doing right now: the current step, the active faults, ops/s and errors
of every scenario still running, for `kmschaos run`'s progress display.

Scenarios (in this process or in pytest-xdist workers) write their history line by line
to their folder of the report folder (`harness.store`); `LiveStatus` follows those files,
so it needs nothing from the workers. A scenario is done once its outcome exists. The
first scenario found running at a time scale of 0.5 or more gets a note: its stalled-server
waits take about a minute each.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from harness.store import ReportFolder

RATE_WINDOW_S = 2.0
SLOW_TIME_SCALE = 0.5  # at this scale or more, say what a stalled server costs
PLAIN_EVERY_S = 10.0  # without a terminal: a status line at most this often


@dataclass
class ScenarioStatus:
    """What one scenario's history says so far."""

    name: str
    offset: int = 0
    step: str = "starting"
    faults: dict[str, str] = field(default_factory=dict)  # fault id -> "kind target"
    ends: deque[float] = field(default_factory=deque)  # monotonic end of recent ops
    ops: int = 0
    errors: int = 0
    time_scale: float | None = None  # from the history's header

    def feed(self, line: str) -> None:
        try:
            d = json.loads(line)
        except ValueError:
            return
        kind = d.get("type")
        if kind == "header":
            scale = d.get("time_scale")
            self.time_scale = float(scale) if isinstance(scale, int | float) else None
        elif kind == "note":
            self.step = str(d.get("text", "")).splitlines()[0][:80] if d.get("text") else ""
        elif kind == "fault":
            if d.get("phase") == "inject":
                self.faults[str(d.get("fault_id"))] = f"{d.get('kind')} {d.get('target')}"
            else:
                self.faults.pop(str(d.get("fault_id")), None)
        elif kind == "complete":
            self.ops += 1
            if d.get("outcome") != "ok":
                self.errors += 1
            self.ends.append(float(d.get("end", 0.0)))

    def rate(self, now: float) -> float:
        cutoff = now - RATE_WINDOW_S
        while self.ends and self.ends[0] < cutoff:  # mostly in order: keeps the deque short
            self.ends.popleft()
        return sum(1 for end in self.ends if end >= cutoff) / RATE_WINDOW_S

    def line(self, now: float) -> str:
        faults = ", ".join(self.faults.values()) or "none"
        return (
            f"{self.name}: {self.rate(now):.0f} ops/s, {self.errors}/{self.ops} failed · "
            f"faults: {faults} · {self.step}"
        )


class LiveStatus:
    """Follow the running scenarios of a report folder; show their status on `console`
    (a live region on a terminal, a plain line now and then elsewhere)."""

    def __init__(self, report_dir: Path, console: Console, interval_s: float = 0.5) -> None:
        self.report_dir = report_dir
        self.console = console
        self.interval_s = interval_s
        self.running: dict[Path, ScenarioStatus] = {}
        self.slow_noted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> list[str]:
        """Read what the histories gained; the status line of each running scenario."""
        now = time.monotonic()
        for scenario in ReportFolder(self.report_dir).scenario_folders():
            folder, hist = scenario.root, scenario.history
            if scenario.outcome.exists() or not hist.exists():
                self.running.pop(folder, None)
                continue
            st = self.running.setdefault(folder, ScenarioStatus(_short(folder.name)))
            try:
                with hist.open("rb") as f:
                    f.seek(st.offset)
                    chunk = f.read()
            except OSError:
                continue
            done = chunk.rfind(b"\n") + 1  # a line being written waits for the next poll
            st.offset += done
            for raw in chunk[:done].splitlines():
                st.feed(raw.decode("utf-8", errors="replace"))
            self._note_slow(st)
        return [st.line(now) for st in self.running.values()]

    def _note_slow(self, st: ScenarioStatus) -> None:
        if self.slow_noted or st.time_scale is None or st.time_scale < SLOW_TIME_SCALE:
            return
        self.slow_noted = True
        self.console.print(
            f"  note: {st.name} runs at time scale {st.time_scale:g}: a stalled server costs "
            f"its clients about {60 * st.time_scale:g} s per request; --time-scale 0.05 makes "
            "it 3 s",
            highlight=False,
            markup=False,
        )

    def start(self) -> LiveStatus:
        self._thread = threading.Thread(target=self._loop, name="kmschaos-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        if self.console.is_terminal:
            with Live(Text(""), console=self.console, transient=True, auto_refresh=False) as live:
                while not self._stop.wait(self.interval_s):
                    live.update(Text("\n".join(self.poll()), style="dim"), refresh=True)
            return
        last, shown = 0.0, ""
        while not self._stop.wait(self.interval_s):
            lines = self.poll()
            text = "\n".join(f"  … {line}" for line in lines)
            if text and text != shown and time.monotonic() - last >= PLAIN_EVERY_S:
                self.console.print(text, highlight=False, markup=False)
                last, shown = time.monotonic(), text


def _short(folder_name: str) -> str:
    """`scenarios_test_kill.py_test_kill_first...` -> `test_kill_first...` (for a line)."""
    return folder_name.rsplit(".py_", 1)[-1].rsplit(".yaml_", 1)[-1][:32]
