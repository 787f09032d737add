"""`kill` and `restart`: the replica's processes are killed (SIGKILL).

    client ──> listen ──> (nothing: Toxiproxy accepts, then closes — EOF)

`kill` heals by starting the replica again on the same data, address and port, and
waits for a KMIP answer. `restart` kills and starts at once: a transient outage.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_RESTART
from harness.faults.base import Fault


class Kill(Fault):
    # in effect from the SIGKILL on, not only once its death was confirmed and recorded
    window_from_start = True
    kind = "kill"
    summary = "replica killed (SIGKILL); heal starts it again on the same data"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_RESTART})

    def _inject(self) -> None:
        self.cluster.kill_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)


class Restart(Fault):
    window_from_start = True
    kind = "restart"
    summary = "replica killed and started again at once (transient outage)"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_RESTART})

    def _inject(self) -> None:
        self.cluster.kill_replica(self.target)
        self.cluster.start_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)  # no-op when it is running
