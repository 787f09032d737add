"""The cluster backends by name: the factory that sits above every backend.

`cluster_class("local")` and `attach_cluster(state_dir)` are how the command line, the
pytest plugin, the matrix and the faults reach a backend without knowing which one runs.
"""

from __future__ import annotations

from harness.cluster.common import BACKENDS, attach_cluster, cluster_class

__all__ = ["BACKENDS", "attach_cluster", "cluster_class"]
