"""`blackhole`: TCP connects, nothing ever comes back (a stalled service).

    client ──> listen ──[timeout=0]──> replica
    client <── listen <──[timeout=0]── replica

A `timeout` toxic with timeout 0 on both streams swallows every byte and keeps the
connection open, so the client waits for its response timeout. Both directions are
cut so that a Create never reaches the replica and the replica's own idle close
(PyKMIP closes idle sessions after 10 s) never reaches the client. Heal removes the
toxics, which closes the held connections. Seen by a TLS handshake through one of its
links that gets no answer within the probe timeout while the replica's direct address
answers.
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault
from harness.faults.probes import Effect, link_silent


class Blackhole(LinkFault):
    kind = "blackhole"
    position = 30
    summary = (
        "`timeout` toxic (timeout 0) on both streams: every byte swallowed, connection kept open"
    )
    client_sees = "connect OK, then silence until its response timeout"
    heals = "toxics removed (held connections close)"
    client_wait = "response"
    in_matrix = matrix_default = True
    proof = (
        "a TLS handshake through a link: no answer within the probe timeout, while the "
        "direct address answers"
    )

    def observe(self) -> Effect:
        links = self.links()
        if not links:
            return None, f"no client link into {self.target} to probe"
        return link_silent(self.cluster, links[0])

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            ("timeout", "upstream", {"timeout": 0}),
            ("timeout", "downstream", {"timeout": 0}),
        ]
