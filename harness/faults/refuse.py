"""`refuse`: every client link into the replica is disabled.

    client ──X listen (closed: ECONNREFUSED)      replica

Toxiproxy closes the listener, so new connects are refused at once, and it closes
the connections already open on both sides. Heal re-enables the links. Seen by a TCP
connect to each of the links: refused.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_LINKS
from harness.faults.base import Fault
from harness.faults.probes import Effect, links_cut


class Refuse(Fault):
    kind = "refuse"
    position = 10
    summary = "Toxiproxy disables the replica's links: the listener closes"
    client_sees = "new connects: ECONNREFUSED at once; open connections closed"
    heals = "links enabled"
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS})
    in_matrix = matrix_default = True
    proof = "a TCP connect to each of its links: refused"

    def observe(self) -> Effect:
        return links_cut(self.cluster, self.cluster.links_into(self.target))

    def _inject(self) -> None:
        for link in self.cluster.links_into(self.target):
            self.cluster.api.set_enabled(link.name, False)

    def _heal(self) -> None:
        for link in self.cluster.links_into(self.target):
            self.cluster.api.set_enabled(link.name, True)
