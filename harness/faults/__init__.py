"""Faults by name. Each fault lives in its own module with its heal step and describes
itself there (`harness.faults.base.Fault`); importing this package imports every module
in it, which registers every fault in `FAULTS`."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from harness.cluster.base import Cluster
from harness.faults.base import FAULTS, Fault, FaultError, active_fault_records
from harness.history import History

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def make_fault(
    kind: str,
    cluster: Cluster,
    target: str,
    history: History | None = None,
    fault_id: str | None = None,
    **params: Any,
) -> Fault:
    cls = FAULTS.get_class(kind)
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
