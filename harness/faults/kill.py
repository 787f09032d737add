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
    position = 50
    summary = "the replica's process group gets SIGKILL (docker: `docker kill`)"
    client_sees = "connect OK (Toxiproxy accepts), then EOF/reset"
    heals = "replica started again on the same data, address and port; awaited by a KMIP answer"
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_RESTART})
    crashes = True
    in_matrix = matrix_default = True

    def _inject(self) -> None:
        self.cluster.kill_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)


class Restart(Fault):
    window_from_start = True
    kind = "restart"
    position = 60
    summary = "kill, then start again at once (awaited)"
    client_sees = "a short outage"
    heals = "—"
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_RESTART})
    crashes = True

    def _inject(self) -> None:
        self.cluster.kill_replica(self.target)
        self.cluster.start_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)  # no-op when it is running
