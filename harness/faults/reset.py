"""`reset`: connections are accepted, then reset (TCP RST) on the first bytes.

    client ──> listen ──[reset_peer]──X   (RST back to the client)

Toxiproxy's `reset_peer` toxic on the upstream stream closes with SO_LINGER 0 as
soon as the client sends (its TLS ClientHello), after `after_ms` (default 0).
On docker the client only sees the RST when ports are published without docker-proxy.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.cluster.base import CAP_LINKS, CAP_RESETS, Cluster
from harness.faults.link import LinkFault
from harness.faults.params import Param


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
