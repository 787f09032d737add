"""A rehearsal's background workload (`Traffic`): started before the first step, paused
while the auditor reads every replica, started again after.

Each start makes fresh client instances with their own worker numbers, so operation ids
never repeat in the history; the instance that replaces an earlier one continues it
where a process would: a client stopped by a `stop-client` step stays stopped, and one
with a master key (`key_state_poll_s`) keeps its key, its polling clock and a shutdown
it made itself (`FailoverClient.carry_over`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.client.failover_client import FailoverClient
from harness.rehearsal.model import WorkloadSpec
from harness.scenario import Scenario
from harness.workload import Workload


class Traffic:
    """The rehearsal's background workload; `paused()` stops it (operations in flight
    complete) and starts a fresh one after."""

    def __init__(self, scenario: Scenario, spec: WorkloadSpec | None, seed: int) -> None:
        self.scenario = scenario
        self.spec = spec
        self.seed = seed
        self.generation = 0
        self.workload: Workload | None = None
        self.stopped: set[str] = set()  # by stop-client steps: a fresh workload stops them
        self.instances: dict[tuple[str, int], FailoverClient] = {}  # (client, w) -> the last

    @property
    def clients(self) -> tuple[str, ...]:
        return self.spec.clients if self.spec else ()

    def start(self) -> None:
        if self.spec is None or self.workload is not None:
            return
        s = self.spec
        base = self.generation * s.per_client
        clients = []
        for name in s.clients:
            for w in range(s.per_client):
                c = self.scenario.client(name, s.policy, base + w)
                earlier = self.instances.get((name, w))
                if earlier is not None:
                    c.carry_over(earlier)
                self.instances[(name, w)] = c
                clients.append(c)
        for c in clients:
            if c.name in self.stopped and c.running:
                c.stop("stopped by a stop-client step")
        self.workload = Workload(
            clients, self.scenario.history, s.rate_per_s, s.ops, self.seed + self.generation
        )
        self.generation += 1
        self.workload.start()

    def stop(self) -> None:
        if self.workload is not None:
            wl, self.workload = self.workload, None
            wl.stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        was_running = self.workload is not None
        self.stop()
        try:
            yield
        finally:
            if was_running:
                self.start()
