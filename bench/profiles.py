"""How much each section measures: the full profile and the `--quick` one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    proxy_rounds: int  # alternating direct / proxied rounds
    long_ops: int  # Gets per round and path on a long-lived connection
    per_op_ops: int  # Gets per round and path, connection per operation
    warmup: int  # untimed operations per path and mode first
    refuse_reps: int
    blackhole_reps: int
    time_scale: float
    baseline_samples: int  # samples of each theoretical component
    startup_runs: int
    lag_s: float  # seconds of Creates at LAG_RATE for the async lag
    partition_s: float  # how long site-a and site-b stay partitioned
    partition_keys: int  # Creates during the partition, half per site
    docker_runs: int  # start-ups of two-sites per backend for the docker comparison


FULL = Profile("full", 40, 90, 25, 50, 20, 3, 0.05, 40, 3, lag_s=10, partition_s=30,
               partition_keys=1000, docker_runs=3)  # fmt: skip
QUICK = Profile("quick", 12, 60, 12, 30, 10, 3, 0.02, 20, 3, lag_s=4, partition_s=5,
                partition_keys=150, docker_runs=2)  # fmt: skip
