"""Load balancers on the local backend: one HAProxy process per balancer on loopback.

    balancer j   clients' links   S.(200+j):<each client's port>
                 frontend (VIP)   S.(220+j):<free port>      stats  S.(220+j):<free port>
                 its servers      its links to the replicas, S.i:<the balancer's port>

Each HAProxy runs in the foreground (``-db``) in its own process group with the run's
label, so a kill, a SIGSTOP and the reaper act on it as on a replica.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from harness import registry
from harness.cluster.base import free_port
from harness.cluster.observed import ReplicaObservation
from harness.cluster.state import BalancerState, ClusterError
from harness.lb.haproxy import HaproxyError, check_config, find_haproxy
from harness.lb.runner import Balancers
from harness.links import Link
from harness.wait import WaitTimeout, tail, wait_until

PAUSE_DEADLINE_S = 2.0


class LocalBalancers(Balancers):
    @staticmethod
    def binary() -> str:
        """The HAProxy binary, or `ClusterError` saying how to install it."""
        try:
            return find_haproxy()
        except HaproxyError as e:
            raise ClusterError(str(e)) from None

    def _place(self, b: BalancerState) -> None:
        b.port = free_port([b.host])
        b.stats = f"{b.host}:{free_port([b.host], taken=[b.port])}"

    def _validate(self, b: BalancerState) -> None:
        try:
            check_config(self.binary(), Path(b.config))
        except HaproxyError as e:
            raise ClusterError(str(e)) from None

    def _bind(self, b: BalancerState) -> str:
        return f"{b.host}:{b.port}"

    def _server_address(self, link: Link) -> str:
        return link.listen

    def _stats_bind(self, b: BalancerState) -> str:
        return b.stats

    def _stats_address(self, b: BalancerState) -> str:
        return b.stats

    def _spawn(self, name: str) -> None:
        b = self.balancer(name)
        with open(b.log, "ab") as log:
            proc = subprocess.Popen(
                [self.binary(), "-db", "-f", b.config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=registry.labelled_env(self.state.run_id),
                start_new_session=True,
            )
        b.pid = proc.pid
        b.pid_start = registry.process_start_time(proc.pid)
        b.status = "starting"

    def running(self, name: str) -> bool:
        b = self.balancer(name)
        return bool(b.pid) and registry.process_alive(b.pid or 0, b.pid_start)

    def _process_state(self, name: str) -> str | None:
        b = self.balancer(name)
        if not self.running(name):
            return None
        try:
            stat = Path(f"/proc/{b.pid}/stat").read_text()
        except OSError:
            return None
        letter = stat[stat.rindex(")") + 2 :].split()[0]
        return None if letter == "Z" else letter

    def observe(self, name: str) -> ReplicaObservation:
        b = self.balancer(name)
        letter = self._process_state(name)
        if letter is None:
            return ReplicaObservation("stopped", None, f"no HAProxy process of {name} runs")
        incarnation = f"pid {b.pid} started at tick {b.pid_start}"
        state = "paused" if letter in "Tt" else "running"
        return ReplicaObservation(state, incarnation, f"HAProxy pid {b.pid} ({letter})")

    def logs(self, name: str) -> str:
        b = self.balancer(name)
        return f"--- {b.log} ---\n{tail(Path(b.log))}" if b.log else "(not started)"

    def kill(self, name: str) -> None:
        b = self.balancer(name)
        if self.running(name):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(b.pid or 0, signal.SIGKILL)
            wait_until(
                lambda: self._process_state(name) is None,
                10,
                f"HAProxy of {name} (pid {b.pid}) to die after SIGKILL",
            )
        self._update(name, pid=None, status="stopped")

    def pause(self, name: str) -> None:
        b = self.balancer(name)
        if not self.running(name):
            raise ClusterError(f"load balancer {name} is not running")
        os.killpg(b.pid or 0, signal.SIGSTOP)
        try:
            wait_until(
                lambda: self.observe(name).state == "paused",
                PAUSE_DEADLINE_S,
                f"HAProxy of {name} to stop",
                poll_s=0.005,
            )
        except WaitTimeout:
            raise ClusterError(
                f"load balancer {name} did not stop after SIGSTOP: {self.observe(name).detail}"
            ) from None
        self._update(name, status="paused")

    def resume(self, name: str) -> None:
        b = self.balancer(name)
        if self.running(name):
            os.killpg(b.pid or 0, signal.SIGCONT)
        self._update(name, status="running")

    def pids(self) -> list[int]:
        return [b.pid for b in self.state.balancers.values() if b.pid]
