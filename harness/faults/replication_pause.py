"""`replication-pause`: nothing the replica sends to its peers gets through.

    kms-a ──[timeout=0: swallowed]──X kms-b, kms-c, ...     (clients untouched)

Replication from the replica lags without bound while the fault lasts: its agent keeps
pushing, the bytes are swallowed, nothing is acknowledged. A crash inside that window
loses every key written on the replica since the pause (`durability` names them).
Heal removes the toxics; the agent's next push delivers the backlog. Unlike
`replication-lag` (latency: bytes already sent arrive later, even if the sender dies),
this models changes that never left the replica.
"""

from __future__ import annotations

from typing import Any

from harness.faults.replication_lag import OutgoingReplicationFault


class ReplicationPause(OutgoingReplicationFault):
    kind = "replication-pause"
    position = 160
    summary = "its outgoing replication swallowed (`timeout` toxic)"
    client_sees = "nothing; its writes do not leave it"
    heals = "toxics removed; the backlog is pushed"

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("timeout", "upstream", {"timeout": 0}), ("timeout", "downstream", {"timeout": 0})]
