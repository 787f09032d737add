"""`latency` and `bandwidth`: slow links into the replica (server -> client stream).

client <── listen <──[latency ms ± jitter | bandwidth KB/s]── replica
"""

from __future__ import annotations

from typing import Any

from harness.faults.base import FaultError
from harness.faults.link import LinkFault


class Latency(LinkFault):
    kind = "latency"
    summary = "adds `ms` (± `jitter` ms) to every response"

    def check_target(self) -> None:
        super().check_target()
        ms = self.params.get("ms")
        if not isinstance(ms, int | float) or ms < 0:
            raise FaultError("latency: needs --ms N (milliseconds, >= 0)")

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (
                "latency",
                "downstream",
                {"latency": int(self.params["ms"]), "jitter": int(self.params.get("jitter", 0))},
            )
        ]


class Bandwidth(LinkFault):
    kind = "bandwidth"
    summary = "limits responses to `kbps` KB/s"

    def check_target(self) -> None:
        super().check_target()
        rate = self.params.get("kbps")
        if not isinstance(rate, int | float) or rate <= 0:
            raise FaultError("bandwidth: needs --kbps N (KB/s, > 0)")

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("bandwidth", "downstream", {"rate": int(self.params["kbps"])})]
