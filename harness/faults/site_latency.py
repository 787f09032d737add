"""`site-latency`: latency on the links between sites (the WAN), nothing else.

    site-a clients ──[latency ms]──> site-b replicas     (and back, and replication)
    site-a clients ────────────────> site-a replicas     (untouched)

Groups as for `partition` (sites or comma-separated replica lists). Shows what a
client that crosses sites pays: a well-ordered client stays local and pays nothing.
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.faults.partition import Partition
from harness.links import Link


class SiteLatency(LinkFault):
    kind = "site-latency"
    position = 170
    summary = "latency on every link between the groups (the WAN), nothing else"
    client_sees = "cross-site requests slower"
    heals = "toxics removed"
    target_kind = "groups"
    parameters = (
        Param("ms", "ms", "milliseconds added to every link between the groups", required=True),
    )
    adds_delay = "ms"

    def _groups(self) -> Partition:
        return Partition(self.cluster, self.target)

    def check_target(self) -> None:
        self.params["groups"] = self._groups().groups()  # recorded: who is slowed

    def links(self) -> list[Link]:
        p = self._groups()
        return p.cut_links() + p.cut_replication_links()

    def affected_replicas(self) -> list[str]:
        return []  # nobody needs to fail over: it is slow, not down

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        ms = int(self.param("ms"))
        return [("latency", "downstream", {"latency": ms, "jitter": 0})]
