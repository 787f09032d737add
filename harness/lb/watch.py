"""Watching load balancers during a run: each balancer's stats socket is read every
`poll_s` and every change of a server's state (and the first state read) goes into the
history as a `BalancerEvent` — HAProxy's own account of when it took a replica out of
rotation and put it back, which the `lb_ejection` checker lines up with the faults and
the operations.

The poll period bounds how late a change is seen: a fifth of the shortest check
interval, between 10 and 100 ms. A balancer whose stats cannot be read (frozen,
killed) is skipped until it answers again.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from harness.cluster.base import Cluster
from harness.history import BalancerEvent, History
from harness.lb.haproxy import HaproxyError, ServerStatus, check_timing, read_stats
from harness.topology import Topology, topology_from_dict
from harness.wait import wait_until

MIN_POLL_S = 0.01
MAX_POLL_S = 0.1


def poll_period(topology: Topology) -> float:
    """How often the balancers of `topology` are read."""
    intervals = [check_timing(b, topology.time_scale)[0] for b in topology.load_balancers.values()]
    if not intervals:
        return MAX_POLL_S
    return min(MAX_POLL_S, max(MIN_POLL_S, min(intervals) / 5))


class BalancerWatch:
    """Records every balancer's server states into `history` while running."""

    def __init__(self, cluster: Cluster, history: History) -> None:
        self.cluster = cluster
        self.history = history
        self._addresses = {n: b.stats for n, b in cluster.state.balancers.items() if b.stats}
        self._last: dict[tuple[str, str], ServerStatus] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll_s = MAX_POLL_S
        if self._addresses:
            st = cluster.state
            self.poll_s = poll_period(topology_from_dict(st.topology, st.topology_source))

    def start(self) -> BalancerWatch:
        if self._addresses and self._thread is None:
            self.read_once()  # the state every server starts from, before anything else
            self._thread = threading.Thread(target=self._run, name="balancer-watch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._addresses:
            self.read_once()  # the state at the end

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.read_once()

    def read_once(self) -> None:
        for lb, address in self._addresses.items():
            try:
                servers = read_stats(address, timeout_s=max(self.poll_s, 0.05))
            except HaproxyError:
                continue
            t = time.monotonic()
            for server, now in servers.items():
                before = self._last.get((lb, server))
                if before is not None and (before.status, before.check_status) == (
                    now.status,
                    now.check_status,
                ):
                    continue
                self._last[(lb, server)] = now
                self.history.append(
                    BalancerEvent(
                        t, lb, server, now.status, now.check_status, now.check_desc, now.sessions
                    )
                )

    def __enter__(self) -> BalancerWatch:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def await_rotation(
    history: History,
    balancer: str,
    server: str,
    in_rotation: bool,
    since: float,
    deadline_s: float,
) -> BalancerEvent:
    """Wait until the history holds `balancer`'s account of `server` being in (fully UP)
    or out of rotation, read after `since`; that event. On timeout, `WaitTimeout` says
    what was awaited and the last state read."""
    found: list[BalancerEvent] = []

    def seen() -> bool:
        for e in history.events():
            if (
                isinstance(e, BalancerEvent)
                and (e.balancer, e.server) == (balancer, server)
                and e.t >= since
                and (e.status == "UP" if in_rotation else not e.in_rotation)
            ):
                found.append(e)
                return True
        return False

    what = f"{balancer} to report {server} {'back in' if in_rotation else 'out of'} rotation"
    wait_until(seen, deadline_s, what, poll_s=0.02)
    return found[0]
