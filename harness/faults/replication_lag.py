"""`replication-lag`: latency on the replica's outgoing replication links only.

    kms-a ──[latency ms]──> kms-b, kms-c, ...      (clients' links untouched)

Keys written on the replica reach its peers `ms` later: a crash inside that window
loses acknowledged keys under `async` replication.
"""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultError
from harness.faults.link import LinkFault
from harness.links import Link


class OutgoingReplicationFault(LinkFault):
    """A toxic on every replication link leaving the target replica; clients untouched."""

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
    summary = "adds `ms` to the replica's outgoing replication (clients untouched)"

    def check_target(self) -> None:
        ms = self.params.get("ms")
        if not isinstance(ms, int | float) or ms < 0:
            raise FaultError("replication-lag: needs --ms N (milliseconds, >= 0)")
        super().check_target()

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("latency", "upstream", {"latency": int(self.params["ms"]), "jitter": 0})]
