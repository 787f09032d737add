"""`site-latency`: latency on the links between sites (the WAN), nothing else.

    site-a clients ──[latency ms]──> site-b replicas     (and back, and replication)
    site-a clients ────────────────> site-a replicas     (untouched)

Groups as for `partition` (sites or comma-separated replica lists). Shows what a
client that crosses sites pays: a well-ordered client stays local and pays nothing.
Seen by a TLS handshake through a client link between the groups, whose first answer
comes at least `ms` later than the replica's direct address's (with no client link
across: a POST /ping through a replication link, against one inside a group).
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.faults.partition import Partition
from harness.faults.probes import (
    CONTROL_TIMEOUT_S,
    Effect,
    handshake_direct,
    handshake_through,
    http_ping,
    probe_timeout,
    quickest,
    slower_by,
)
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
    proof = (
        "a TLS handshake through a link between the groups: its first answer at least `ms` "
        "later than the direct address's"
    )

    def observe(self) -> Effect:
        added = int(self.param("ms"))
        if added <= 0:
            return None, "0 ms between the groups: nothing to see"
        p = self._groups()
        timeout = probe_timeout(self.cluster) + added / 1000
        across = p.cut_links()
        if across:
            link = across[0]
            direct = handshake_direct(self.cluster, link.replica, samples=3)
            through = handshake_through(self.cluster, link, timeout)
            what = f"a TLS handshake through {link.name}"
            return slower_by(through, direct, added, what, f"{link.replica}'s direct address")
        wan = p.cut_replication_links()
        names = {lk.name for lk in wan}
        local = [lk for lk in self.cluster.state.replication_link_objects() if lk.name not in names]
        if not wan or not local:
            return None, "no pair of links (between the groups, inside one) to compare"
        link = wan[0]
        local.sort(key=lambda lk: lk.replica != link.replica)
        through = http_ping(f"a POST /ping through {link.name}", link.listen, timeout)
        control = quickest(
            http_ping(f"one through {local[0].name}", local[0].listen, CONTROL_TIMEOUT_S)
            for _ in range(3)
        )
        return slower_by(through, control, added, f"a POST /ping through {link.name}", control.what)

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
