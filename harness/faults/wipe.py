"""`wipe`: the replica is killed, its database deleted, and it is started empty.

    kms-a (killed) ── rm kms.sqlite, replication.sqlite ──> kms-a (empty, refilled by peers)

On docker the replica's volume is removed and a new one created.

Under replication the empty replica is refilled from its peers; keys that existed only
on it are gone for good (what the `durability` verdict looks for). Heal is a no-op: the
data is not coming back.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_RESTART
from harness.faults.base import Fault


class Wipe(Fault):
    window_from_start = True
    kind = "wipe"
    position = 140
    summary = "kill, delete its database, start it empty (docker: a new volume)"
    client_sees = "like kill; keys only it had are gone"
    heals = "nothing comes back (peers refill it)"
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_RESTART})
    crashes = True

    def _inject(self) -> None:
        self.cluster.wipe_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)  # no-op when it is running
