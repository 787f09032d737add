"""`replication-pause`: nothing the replica sends to its peers gets through.

    kms-a ──[timeout=0: swallowed]──X kms-b, kms-c, ...     (clients untouched)

Replication from the replica lags without bound while the fault lasts: its agent keeps
pushing, the bytes are swallowed, nothing is acknowledged. A crash inside that window
loses every key written on the replica since the pause (`durability` names them).
Heal removes the toxics; the agent's next push delivers the backlog. Unlike
`replication-lag` (latency: bytes already sent arrive later, even if the sender dies),
this models changes that never left the replica.

Seen on the replication links themselves: a POST /ping to a peer's agent through one of
the replica's outgoing links gets no answer within the probe timeout, while the same
ping through another replica's link is answered.
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
    proof = (
        "a POST /ping through an outgoing replication link: no answer within the probe "
        "timeout, while another replica's link answers"
    )

    def observe(self) -> tuple[bool | None, str]:
        seen = self.pings()
        if isinstance(seen, str):
            return None, seen
        _, through, control = seen
        if through.outcome != "timeout":
            return False, through.words()
        if not control.answered:
            return None, f"{through.words()}, but {control.words()}: no agent answers"
        return True, f"{through.words()}, while {control.words()}"

    def toxics(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [("timeout", "upstream", {"timeout": 0}), ("timeout", "downstream", {"timeout": 0})]
