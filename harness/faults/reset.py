"""`reset`: connections are accepted, then reset (TCP RST) on the first bytes.

    client ──> listen ──[reset_peer]──X   (RST back to the client)

Toxiproxy's `reset_peer` toxic on the upstream stream closes with SO_LINGER 0 as
soon as the client sends (its TLS ClientHello), after `after_ms` (default 0).
On docker the client only sees the RST when ports are published without docker-proxy.
Seen by a TLS handshake through one of its links: reset (after `after_ms`), while the
replica's direct address answers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.cluster.base import CAP_LINKS, CAP_RESETS, Cluster
from harness.faults.link import LinkFault
from harness.faults.params import Param
from harness.faults.probes import Effect, handshake_direct, handshake_through, probe_timeout


class Reset(LinkFault):
    kind = "reset"
    position = 20
    summary = "`reset_peer` toxic: accepted, then RST on the first bytes (`--after-ms`)"
    client_sees = "connect OK, then connection reset during TLS"
    heals = "toxic removed"
    parameters = (Param("after_ms", "ms", "reset after this many ms (default 0)", default=0),)
    client_wait = "none"
    requires: ClassVar[frozenset[str]] = frozenset({CAP_LINKS, CAP_RESETS})
    in_matrix = matrix_default = True
    proof = "a TLS handshake through a link: reset, while the direct address answers"

    def observe(self) -> Effect:
        links = self.links()
        if not links:
            return None, f"no client link into {self.target} to probe"
        timeout = probe_timeout(self.cluster)
        through = handshake_through(
            self.cluster, links[0], timeout + int(self.param("after_ms")) / 1000
        )
        if through.outcome != "reset":
            return False, through.words()
        direct = handshake_direct(self.cluster, self.target)
        if not direct.answered:
            return None, f"{through.words()}, but {direct.words()}: the replica itself fails"
        return True, f"{through.words()}, while {direct.words()}"

    @classmethod
    def _explain_missing(cls, cluster: Cluster, missing: frozenset[str]) -> str:
        if missing == {CAP_RESETS}:
            return (
                "fault 'reset' cannot run here: the Docker engine publishes ports through "
                "docker-proxy (userland-proxy), which turns the link's RST into an orderly "
                "close; start dockerd with --userland-proxy=false to test resets"
            )
        return super()._explain_missing(cluster, missing)

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("reset_peer", "upstream", {"timeout": int(self.param("after_ms"))})]
