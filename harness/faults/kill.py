"""`kill` and `restart`: the replica's processes are killed (SIGKILL).

    client ──> listen ──> (nothing: Toxiproxy accepts, then closes — EOF)

`kill` heals by starting the replica again on the same data, address and port, and
waits for a KMIP answer. `restart` kills and starts at once: a transient outage.

Seen: for `kill`, no process of the replica in the process table (docker: the container
not running) and a TLS handshake through one of its links closed by Toxiproxy (EOF, or
a reset when the hello was still unread);
for `restart`, the replica running another process than before (pid and start time;
docker: container start time).
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_RESTART, ReplicaObservation
from harness.faults.base import Fault
from harness.faults.probes import Effect, stopped_and_closed


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
    proof = (
        "no process of the replica left (docker: the container not running), and a TLS "
        "handshake through a link is closed (EOF or reset)"
    )
    observe_within_s = 2.0

    def observe(self) -> Effect:
        return stopped_and_closed(
            self.cluster, self.target, self.cluster.observe_replica(self.target)
        )

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
    proof = "the replica runs another process than before (pid and start; docker: container start)"

    def _remember(self) -> None:
        self._before: ReplicaObservation | None = self.cluster.observe_replica(self.target)

    def observe(self) -> Effect:
        now = self.cluster.observe_replica(self.target)
        back, said = came_back(now, getattr(self, "_before", None))
        return back, f"{self.target}: {said}"

    def _inject(self) -> None:
        self.cluster.kill_replica(self.target)
        self.cluster.start_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)  # no-op when it is running


def came_back(now: ReplicaObservation, before: ReplicaObservation | None) -> Effect:
    """A replica that was killed and started again runs another process (or container
    start) than the one seen before."""
    if before is None or before.incarnation is None:
        return None, "the replica's process could not be seen before the fault"
    if now.state != "running":
        return False, f"it is {now.state} after the fault: {now.detail}"
    if now.incarnation == before.incarnation:
        return False, f"it runs the same process as before ({now.incarnation})"
    return True, f"it runs a new process: {before.incarnation} before, {now.incarnation} now"
