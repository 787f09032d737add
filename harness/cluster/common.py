"""The former home of what the backends share, kept as an import path.

`BaseCluster` (the one cluster interface and its shared machinery), `ClientPlan`,
`free_port` and the readiness deadlines live in `harness.cluster.base`; the backends by
name (`cluster_class`, `attach_cluster`, `BACKENDS`) in `harness.backends`, above the
backends. New code imports from those; this module must not import `harness.backends`.
"""

from __future__ import annotations

from harness.cluster.base import (
    EXTERNAL_READY_S,
    READY_DEADLINE_S,
    BaseCluster,
    ClientPlan,
    free_port,
)

__all__ = ["EXTERNAL_READY_S", "READY_DEADLINE_S", "BaseCluster", "ClientPlan", "free_port"]
