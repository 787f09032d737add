"""How much each section measures: the full profile and the `--quick` one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    proxy_rounds: int  # alternating direct / proxied rounds per repetition
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
    catalogue: bool = True  # section 6 (the whole catalogue, twice: about 12 minutes)
    proxy_reps: int = 5  # independent repetitions of section 1's ABBA rounds (median judged)
    breakdown_conns: int = 160  # connections per path timed phase by phase (section 1)
    scale_runs: int = 3  # start-ups per size in section 7 (6, 20, 40 replicas)
    scale_keys: int = 50  # Creates per side during section 7's partition
    scale_partition_s: float = 10.0  # how long section 7 cuts site-a


FULL = Profile("full", 8, 90, 25, 50, 20, 3, 0.05, 40, 3, lag_s=10, partition_s=30,
               partition_keys=1000, docker_runs=3, proxy_reps=5,
               breakdown_conns=160)  # fmt: skip
QUICK = Profile("quick", 4, 60, 12, 30, 10, 3, 0.02, 20, 3, lag_s=4, partition_s=5,
                partition_keys=150, docker_runs=2, catalogue=False, proxy_reps=3,
                breakdown_conns=60, scale_runs=1, scale_keys=20,
                scale_partition_s=4)  # fmt: skip
