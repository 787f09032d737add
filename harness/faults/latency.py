"""`latency` and `bandwidth`: slow links into the replica (server -> client stream).

client <── listen <──[latency ms ± jitter | bandwidth KB/s]── replica
"""

from __future__ import annotations

from typing import Any

from harness.faults.link import LinkFault
from harness.faults.params import Param


class Latency(LinkFault):
    kind = "latency"
    position = 80
    summary = "`latency` toxic on responses: `--ms N`, `--jitter N`"
    client_sees = "every answer later"
    heals = "toxic removed"
    parameters = (
        Param("ms", "ms", "milliseconds added to each response", required=True),
        Param("jitter", "ms", "± jitter in milliseconds", default=0),
    )
    adds_delay = "ms"

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (
                "latency",
                "downstream",
                {"latency": int(self.param("ms")), "jitter": int(self.param("jitter"))},
            )
        ]


class Bandwidth(LinkFault):
    kind = "bandwidth"
    position = 90
    summary = "`bandwidth` toxic on responses: `--kbps N` KB/s"
    client_sees = "slow answers"
    heals = "toxic removed"
    parameters = (Param("kbps", "kbps", "responses limited to this many KB/s", required=True),)

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("bandwidth", "downstream", {"rate": int(self.param("kbps"))})]
