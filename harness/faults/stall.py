"""`stall`: the replica's processes are frozen (SIGSTOP); heal sends SIGCONT.

    client ──> listen ──> replica (frozen: the kernel still accepts TCP, no answer)

Connects still succeed (the kernel completes the handshake into the backlog), TLS and
KMIP get no answer: the client waits for its response timeout. Seen in the process table
(every process of the replica's group in state T) or, on docker, in the engine's
container state (paused).
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_SIGNALS
from harness.faults.base import Fault
from harness.faults.probes import Effect


class Stall(Fault):
    kind = "stall"
    position = 40
    summary = "the replica's process group gets SIGSTOP (docker: `docker pause`)"
    client_sees = "connect OK (kernel backlog), then silence"
    heals = "SIGCONT"
    client_wait = "response"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_SIGNALS})
    in_matrix = matrix_default = True
    proof = "every process of the replica in state T (docker: the container paused)"

    def observe(self) -> Effect:
        seen = self.cluster.observe_replica(self.target)
        if seen.state == "paused":
            return True, f"{self.target} is frozen: {seen.detail}"
        return False, f"{self.target} is {seen.state}: {seen.detail}"

    def _inject(self) -> None:
        self.cluster.pause_replica(self.target)

    def _heal(self) -> None:
        self.cluster.resume_replica(self.target)
