"""Site faults: `partition`, `isolate`, `site-down` — cutting sets of links.

    site-a clients ──X── kms-d, kms-e, kms-f        (partition site-a site-b)
    site-b clients ──X── kms-a, kms-b, kms-c
    every client   ──X── kms-a                      (isolate kms-a)
    every client   ──X── kms-a, kms-b, kms-c        (site-down site-a)

A cut link is a disabled Toxiproxy proxy: connects across the cut are refused and open
connections are closed. Replication links (when replication exists) are cut the same
way. Groups are sites or comma-separated replica lists; replicas in no group form one
more group. A client is on the side of its site's replicas. `one_way` cuts only the
links from the first group's clients to the other groups' replicas. Seen by a TCP
connect to every cut link (client and replication): refused.
"""

from __future__ import annotations

from typing import ClassVar

from harness.client.policies import Wait
from harness.cluster.base import CAP_LINKS
from harness.faults.base import Fault, FaultError
from harness.faults.params import Param
from harness.faults.probes import Effect, links_cut
from harness.links import Link
from harness.topology import replica_names


class LinkCut(Fault):
    """Disable a computed set of links; heal enables them again."""

    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS})
    client_wait: ClassVar[Wait | None] = "none"  # a cut link is refused: the next at once
    partitions: ClassVar[bool] = True
    proof: ClassVar[str] = "a TCP connect to every cut link (client and replication): refused"

    def observe(self) -> Effect:
        return links_cut(self.cluster, self._all_cut())

    def cut_links(self) -> list[Link]:
        """Client links to cut."""
        raise NotImplementedError

    def cut_replication_links(self) -> list[Link]:
        """Replica -> replica links to cut (`client` is the source replica)."""
        return []

    def affected_replicas(self) -> list[str]:
        cut = {link.replica for link in self.cut_links()}
        return [r for r in self.cluster.state.replicas if r in cut]

    def _all_cut(self) -> list[Link]:
        return self.cut_links() + self.cut_replication_links()

    def _inject(self) -> None:
        for link in self._all_cut():
            self.cluster.api.set_enabled(link.name, False)

    def _heal(self) -> None:
        for link in self._all_cut():
            self.cluster.api.set_enabled(link.name, True)

    def _sites(self) -> dict[str, list[str]]:
        sites: dict[str, dict[str, list[str]]] = self.cluster.state.topology["sites"]
        return {s: replica_names(v["replicas"]) for s, v in sites.items()}


class SiteDown(LinkCut):
    kind = "site-down"
    position = 130
    summary = "every replica of the site cut (client and replication links)"
    client_sees = "refused for the whole site"
    heals = "links enabled"
    target_kind = "site"

    def check_target(self) -> None:
        if self.target not in self._sites():
            known = ", ".join(self._sites())
            raise FaultError(f"site-down: unknown site {self.target!r} (known: {known})")

    def cut_links(self) -> list[Link]:
        st = self.cluster.state
        # the site's replicas, and the balancers that run there
        reps = set(self._sites()[self.target])
        reps |= {b for b, lb in st.balancers.items() if lb.site == self.target}
        return [link for link in st.link_objects() if link.replica in reps]

    def cut_replication_links(self) -> list[Link]:
        reps = set(self._sites()[self.target])
        return [
            link
            for link in self.cluster.state.replication_link_objects()
            if link.replica in reps or link.client in reps
        ]


class Isolate(LinkCut):
    kind = "isolate"
    position = 120
    summary = "every client and replication link into and out of the replica disabled"
    client_sees = "refused"
    heals = "links enabled"

    def cut_links(self) -> list[Link]:
        return [link for link in self.cluster.state.link_objects() if link.replica == self.target]

    def cut_replication_links(self) -> list[Link]:
        return [
            link
            for link in self.cluster.state.replication_link_objects()
            if self.target in (link.replica, link.client)
        ]


class Partition(LinkCut):
    kind = "partition"
    position = 110
    summary = (
        "every client link and replication link between groups (sites, or comma-separated "
        "replica lists; the rest is one more group) disabled, both ways; `--one-way`: only "
        "from the first group"
    )
    client_sees = "across the cut: refused; own side: normal"
    heals = "links enabled"
    target_kind = "groups"
    parameters = (
        Param("one_way", "bool", "cut only the first group's clients from the other groups"),
    )

    def groups(self) -> list[list[str]]:
        sites = self._sites()
        known = list(self.cluster.state.replicas)
        groups: list[list[str]] = []
        for word in self.target.split():
            if word in sites:
                group = sites[word]
            else:
                group = [r for r in word.split(",") if r]
                for r in group:
                    if r not in known:
                        raise FaultError(
                            f"partition: {r!r} is neither a site ({', '.join(sites)}) "
                            f"nor a replica ({', '.join(known)})"
                        )
            groups.append(group)
        if len(groups) < 2 and len({r for g in groups for r in g}) == len(known):
            raise FaultError("partition: name at least two groups (sites or replica lists)")
        if not groups:
            raise FaultError("partition: name the groups, e.g. `partition site-a site-b`")
        seen: set[str] = set()
        for g in groups:
            if seen & set(g):
                raise FaultError(f"partition: {sorted(seen & set(g))} in two groups")
            seen |= set(g)
        rest = [r for r in known if r not in seen]
        if rest:
            groups.append(rest)
        return groups

    def check_target(self) -> None:
        self.params["groups"] = self.groups()  # recorded with the fault's events

    def _group_of_replica(self) -> dict[str, int]:
        return {r: i for i, g in enumerate(self.groups()) for r in g}

    def _group_of_client(self, client: str) -> int:
        """The group of a client, or of a balancer (which sits in its site too)."""
        site = self.cluster.state.site_of(client)
        of = self._group_of_replica()
        for r in self._sites()[site]:
            if r in of:
                return of[r]
        return -1

    def cut_links(self) -> list[Link]:
        of = self._group_of_replica()
        one_way = bool(self.params.get("one_way"))
        cut = []
        for link in self.cluster.state.link_objects():
            cg = self._group_of_client(link.client)
            rg = of[link.replica] if link.replica in of else self._group_of_client(link.replica)
            if cg == rg:
                continue
            if one_way and cg != 0:
                continue
            cut.append(link)
        return cut

    def cut_replication_links(self) -> list[Link]:
        of = self._group_of_replica()
        one_way = bool(self.params.get("one_way"))
        return [
            link
            for link in self.cluster.state.replication_link_objects()
            if of[link.client] != of[link.replica] and (not one_way or of[link.client] == 0)
        ]
