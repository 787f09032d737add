"""`refuse`: every client link into the replica is disabled.

    client ──X listen (closed: ECONNREFUSED)      replica

Toxiproxy closes the listener, so new connects are refused at once, and it closes
the connections already open on both sides. Heal re-enables the links.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_LINKS
from harness.faults.base import Fault


class Refuse(Fault):
    kind = "refuse"
    summary = "proxy disabled: new connects get ECONNREFUSED, open ones are closed"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS})

    def _inject(self) -> None:
        for link in self.cluster.links_into(self.target):
            self.cluster.api.set_enabled(link.name, False)

    def _heal(self) -> None:
        for link in self.cluster.links_into(self.target):
            self.cluster.api.set_enabled(link.name, True)
