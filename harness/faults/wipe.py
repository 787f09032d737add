"""`wipe`: the replica is killed, its database deleted, and it is started empty.

    kms-a (killed) ── rm kms.sqlite, replication.sqlite ──> kms-a (empty, refilled by peers)

On docker the replica's volume is removed and a new one created.

Under replication the empty replica is refilled from its peers; keys that existed only
on it are gone for good (what the `durability` verdict looks for). Heal is a no-op: the
data is not coming back.

Seen: the replica runs another process than before, and the store it runs on is not the
one it had: the database files held open before the wipe have no name left and new ones
took their place (docker: a mark left in the volume before is gone — a new volume). A
new database is an empty one: whatever it holds later came from its peers.
"""

from __future__ import annotations

from typing import ClassVar

from harness.cluster.base import CAP_RESTART, ReplicaObservation, StoreWitness
from harness.faults.base import Fault
from harness.faults.kill import came_back
from harness.faults.probes import Effect


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
    proof = (
        "a new process on a new store: the database files held open before have no name "
        "left (docker: a mark left in the volume is gone)"
    )

    def _remember(self) -> None:
        self._before: ReplicaObservation | None = self.cluster.observe_replica(self.target)
        self._witness: StoreWitness | None = self.cluster.store_witness(self.target)

    def _forget(self) -> None:
        witness = getattr(self, "_witness", None)
        if witness is not None:
            witness.close()
        self._witness = None

    def observe(self) -> Effect:
        back, said = came_back(
            self.cluster.observe_replica(self.target), getattr(self, "_before", None)
        )
        if back is not True:
            return back, f"{self.target}: {said}"
        witness = getattr(self, "_witness", None)
        if witness is None:
            return None, f"{self.target}: {said}; its store was not seen before the wipe"
        replaced, how = witness.replaced()
        return replaced, f"{self.target}: {said}; {how}"

    def _inject(self) -> None:
        self.cluster.wipe_replica(self.target)

    def _heal(self) -> None:
        self.cluster.start_replica(self.target)  # no-op when it is running
