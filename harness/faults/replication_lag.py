"""`replication-lag`: latency on the replica's outgoing replication links only.

    kms-a ──[latency ms]──> kms-b, kms-c, ...      (clients' links untouched)

Keys written on the replica reach its peers `ms` later: a crash inside that window
loses acknowledged keys under `async` replication.
"""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultError
from harness.faults.link import LinkFault
from harness.faults.params import Param
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


class ReplicationLag(OutgoingReplicationFault):
    kind = "replication-lag"
    position = 150
    summary = "latency on its outgoing replication links only"
    client_sees = "nothing (clients untouched)"
    heals = "toxics removed"
    parameters = (
        Param("ms", "ms", "milliseconds added to its outgoing replication", required=True),
    )

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("latency", "upstream", {"latency": int(self.param("ms")), "jitter": 0})]
