"""Faults by name. Each fault lives in its own module with its heal step."""

from __future__ import annotations

from typing import Any

from harness.cluster.base import Cluster
from harness.faults.base import Fault, FaultError, active_fault_records
from harness.faults.blackhole import Blackhole
from harness.faults.flap import Flap
from harness.faults.kill import Kill, Restart
from harness.faults.latency import Bandwidth, Latency
from harness.faults.partition import Isolate, Partition, SiteDown
from harness.faults.refuse import Refuse
from harness.faults.replication_lag import ReplicationLag
from harness.faults.replication_pause import ReplicationPause
from harness.faults.reset import Reset
from harness.faults.site_latency import SiteLatency
from harness.faults.stall import Stall
from harness.faults.unreachable import Unreachable
from harness.faults.wipe import Wipe
from harness.history import History

FAULTS: dict[str, type[Fault]] = {
    cls.kind: cls
    for cls in (
        Refuse,
        Reset,
        Blackhole,
        Stall,
        Kill,
        Restart,
        Unreachable,
        Latency,
        Bandwidth,
        Flap,
        Partition,
        Isolate,
        SiteDown,
        Wipe,
        ReplicationLag,
        ReplicationPause,
        SiteLatency,
    )
}


def make_fault(
    kind: str,
    cluster: Cluster,
    target: str,
    history: History | None = None,
    fault_id: str | None = None,
    **params: Any,
) -> Fault:
    try:
        cls = FAULTS[kind]
    except KeyError:
        raise FaultError(f"unknown fault {kind!r} (known: {', '.join(FAULTS)})") from None
    return cls(cluster, target, history=history, fault_id=fault_id, **params)


def heal_recorded(cluster: Cluster, record: dict[str, Any]) -> Fault:
    """Heal a fault injected by another process, from its `faults/<id>.json` record."""
    fault = make_fault(
        record["kind"],
        cluster,
        record["target"],
        fault_id=record["fault_id"],
        **record.get("params", {}),
    )
    fault.restore(record.get("extra", {}))
    fault.active = True
    fault.heal()
    return fault


__all__ = [
    "FAULTS",
    "Fault",
    "FaultError",
    "active_fault_records",
    "heal_recorded",
    "make_fault",
]
