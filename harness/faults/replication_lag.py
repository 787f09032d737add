"""`replication-lag`: latency on the replica's outgoing replication links only.

    kms-a ──[latency ms]──> kms-b, kms-c, ...      (clients' links untouched)

Keys written on the replica reach its peers `ms` later: a crash inside that window
loses acknowledged keys under `async` replication.

Seen on the replication links themselves, not in Toxiproxy's list of toxics: a POST
/ping to the peer's agent through one of the replica's outgoing links is answered at
least `ms` (less a small slack) later than the same ping through another replica's link
into that peer.
"""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultError
from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.faults.probes import (
    CONTROL_TIMEOUT_S,
    Seen,
    http_ping,
    probe_timeout,
    quickest,
    slower_by,
)
from harness.links import Link


class OutgoingReplicationFault(LinkFault):
    """A toxic on every replication link leaving the target replica; clients untouched."""

    replicating = True

    def check_target(self) -> None:
        super().check_target()
        if not self.cluster.state.replication_links:
            raise FaultError(f"{self.kind}: this cluster does not replicate (profile none)")

    def links(self) -> list[Link]:
        return [
            link
            for link in self.cluster.state.replication_link_objects()
            if link.client == self.target
        ]

    def affected_replicas(self) -> list[str]:
        return []  # clients see no fault

    def pings(self, extra_s: float = 0.0) -> tuple[Link, Seen, Seen] | str:
        """A POST /ping through the first outgoing link and one through a link of
        another replica into the same peer (or, with two replicas, any other link): the
        link, what each saw. A string says why there is nothing to compare."""
        mine = self.links()
        if not mine:
            return f"{self.target} has no outgoing replication link to probe"
        link = mine[0]
        others = [
            lk for lk in self.cluster.state.replication_link_objects() if lk.client != self.target
        ]
        others.sort(key=lambda lk: lk.replica != link.replica)  # into the same peer first
        if not others:
            return "no other replication link to compare with"
        timeout = probe_timeout(self.cluster) + extra_s
        through = http_ping(f"a POST /ping through {link.name}", link.listen, timeout)
        control = quickest(
            http_ping(f"a POST /ping through {others[0].name}", others[0].listen, CONTROL_TIMEOUT_S)
            for _ in range(3)
        )
        return link, through, control


class ReplicationLag(OutgoingReplicationFault):
    kind = "replication-lag"
    position = 150
    summary = "latency on its outgoing replication links only"
    client_sees = "nothing (clients untouched)"
    heals = "toxics removed"
    parameters = (
        Param("ms", "ms", "milliseconds added to its outgoing replication", required=True),
    )
    proof = (
        "a POST /ping through an outgoing replication link: answered at least `ms` later "
        "than through another replica's link"
    )

    def observe(self) -> tuple[bool | None, str]:
        added = int(self.param("ms"))
        if added <= 0:
            return None, "0 ms of replication lag: nothing to see"
        seen = self.pings(extra_s=added / 1000)
        if isinstance(seen, str):
            return None, seen
        link, through, control = seen
        compared = control.what.replace("a POST /ping", "one")
        return slower_by(through, control, added, f"a POST /ping through {link.name}", compared)

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("latency", "upstream", {"latency": int(self.param("ms")), "jitter": 0})]
