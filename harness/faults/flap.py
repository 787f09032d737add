"""`flap`: the replica's client links go down and up in cycles until healed.

    client ──X listen  (down_s)  ──> client ──> listen ──> replica  (up_s)  ...

In a test the cycles run in a thread of the process; from the CLI (`detached=True`)
they run in a labelled background process (`python -m harness.faults.flap`) that
`kmschaos heal` and the reaper stop. Heal always leaves the links enabled. Seen by a TCP
connect to each link during a down phase: refused (probed until one comes: a detached
flapper needs a moment to start).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from harness import registry
from harness.cluster.base import CAP_LINKS
from harness.faults.base import Fault
from harness.faults.params import Param
from harness.faults.probes import Effect, links_cut

START_S = 2.0  # what a detached flapper may take to start (a Python process)


def _cycle(cluster: Any, target: str, down_s: float, up_s: float, stop: threading.Event) -> None:
    links = cluster.links_into(target)
    try:
        while not stop.is_set():
            for link in links:
                cluster.api.set_enabled(link.name, False)
            if stop.wait(down_s):
                break
            for link in links:
                cluster.api.set_enabled(link.name, True)
            stop.wait(up_s)
    finally:
        for link in links:
            with contextlib.suppress(Exception):
                cluster.api.set_enabled(link.name, True)


class Flap(Fault):
    kind = "flap"
    position = 100
    summary = "refuse for `--down-s`, enable for `--up-s`, repeatedly"
    client_sees = "alternating"
    heals = "links enabled"
    parameters = (
        Param("down_s", "s", "seconds down per cycle (default 1)", default=1.0),
        Param("up_s", "s", "seconds up per cycle (default 1)", default=1.0),
    )
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS})
    in_matrix = True
    background = True
    proof = "a TCP connect to each of its links during a down phase: refused"

    def observe(self) -> Effect:
        return links_cut(self.cluster, self.cluster.links_into(self.target))

    def observe_deadline_s(self) -> float:
        """A whole cycle (the probe may land in an up phase), and a detached flapper's
        start."""
        return float(self.param("down_s")) + float(self.param("up_s")) + START_S

    def _inject(self) -> None:
        down = float(self.param("down_s"))
        up = float(self.param("up_s"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = self.params.get("_pid")
        if self.params.get("detached"):
            st = self.cluster.state
            env = registry.labelled_python_env(st.run_id)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "harness.faults.flap",
                    "--state-dir",
                    st.state_dir,
                    "--target",
                    self.target,
                    "--down-s",
                    str(down),
                    "--up-s",
                    str(up),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._pid = proc.pid
        else:
            self._thread = threading.Thread(
                target=_cycle,
                args=(self.cluster, self.target, down, up, self._stop),
                daemon=True,
                name=f"flap-{self.target}",
            )
            self._thread.start()

    def _heal(self) -> None:
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            assert self._thread is not None
            self._thread.join(30)
        pid = getattr(self, "_pid", None)
        if pid:
            registry.kill_pids([pid], grace_s=2.0)
        for link in self.cluster.links_into(self.target):
            self.cluster.api.set_enabled(link.name, True)

    def extra(self) -> dict[str, Any]:
        return {"pid": getattr(self, "_pid", None)}

    def restore(self, extra: dict[str, Any]) -> None:
        self._pid = extra.get("pid")
        self._thread = None


def main(argv: list[str] | None = None) -> int:
    from harness.backends import attach_cluster

    ap = argparse.ArgumentParser(prog="python -m harness.faults.flap")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--down-s", type=float, required=True)
    ap.add_argument("--up-s", type=float, required=True)
    args = ap.parse_args(argv)
    cluster = attach_cluster(Path(args.state_dir))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _cycle(cluster, args.target, args.down_s, args.up_s, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
