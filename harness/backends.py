"""The cluster backends by name: the factory that sits above every backend.

`cluster_class("local")` and `attach_cluster(state_dir)` are how the command line, the
pytest plugin, the matrix and the faults reach a backend without knowing which one runs.
Importing this module imports every backend, so each one's reaper is registered with
`harness.registry` (the docker backend's removes its containers, networks and volumes)
and `BaseCluster.create` can ask any backend whether a state folder's cluster still runs.
Adding a backend: its module under `harness/cluster/`, and its class in `_CLASSES`.
"""

from __future__ import annotations

from pathlib import Path

from harness.cluster.base import BaseCluster
from harness.cluster.docker_backend import DockerCluster
from harness.cluster.local import LocalCluster
from harness.cluster.state import ClusterError, load_state
from harness.cluster.swarm_backend import SwarmCluster

_CLASSES: dict[str, type[BaseCluster]] = {
    c.backend: c for c in (LocalCluster, DockerCluster, SwarmCluster)
}
BACKENDS = tuple(_CLASSES)

__all__ = ["BACKENDS", "attach_cluster", "cluster_class"]


def cluster_class(backend: str) -> type[BaseCluster]:
    """The cluster class of a backend name (`BACKENDS`)."""
    try:
        return _CLASSES[backend]
    except KeyError:
        raise ClusterError(
            f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})"
        ) from None


def attach_cluster(state_dir: Path) -> BaseCluster:
    """Attach to the cluster started from `state_dir`, whatever its backend."""
    state = load_state(state_dir.resolve())
    return cluster_class(state.backend).attach(state_dir)
