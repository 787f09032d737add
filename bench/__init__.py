"""kmschaos benchmarks: proxy overhead, failover precision, start-up / stop and memory,
replication (async lag, convergence after a partition); and, when a Docker engine
answers and the images are built, the docker backend against the local one (ready
time, memory per container, proxy overhead, image build time).

Run as ``python -m bench`` from the repository root (see ``bench/README.md``). One
module per section (`proxy`, `failover`, `startup`, `replication`, `docker_backend`);
`figures` holds the targets and renders the table, `machine` reads the machine and
its processes, `clusters` starts clusters and reaches their replicas.

No sleeps: every wait polls a condition with a deadline (the only timed waits pace
the replication writers to a rate, and hold a partition for its duration), and every
cluster is stopped by a context manager, on error and on SIGTERM too.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = REPO / "scenarios" / "topologies"


class BenchError(RuntimeError):
    """A benchmark could not measure what it should; the message says why."""
