"""`reset`: connections are accepted, then reset (TCP RST) on the first bytes.

    client ──> listen ──[reset_peer]──X   (RST back to the client)

Toxiproxy's `reset_peer` toxic on the upstream stream closes with SO_LINGER 0 as
soon as the client sends (its TLS ClientHello), after `after_ms` (default 0).
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault


class Reset(LinkFault):
    kind = "reset"
    summary = "connections accepted then reset (RST) when the client sends"

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("reset_peer", "upstream", {"timeout": int(self.params.get("after_ms", 0))})]
