"""Section 3, start-up, stop and memory of local clusters.

One-site (3 replicas) and two-sites (6), `Profile.startup_runs` times each: `create`
then `start()` until every replica and link answered, `stop()`, and the memory of
every replica's process group and Toxiproxy once ready (from the run with the largest
total). A process of the run that survives its stop fails the section. Section 4 runs
`startup_case` again with async replication on.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import REPO, TOPOLOGIES, BenchError
from bench.clusters import scratch
from bench.figures import (
    PSS_PER_REPLICA_TARGET_MB,
    RSS_PER_REPLICA_TARGET_MB,
    RSS_TOXIPROXY_TARGET_MB,
    STARTUP_TARGETS_S,
    STOP_TARGET_S,
    Figure,
    rss_total_target_mb,
)
from bench.machine import memory_snapshot, replica_memory, replica_pss
from bench.profiles import Profile
from harness import registry
from harness.cluster.local import LocalCluster
from harness.topology import Topology, load_topology


def startup_case(
    topo: Topology, source: str, runs_n: int, sec: str
) -> tuple[list[Figure], dict[str, Any]]:
    """Create+start to ready, stop, and RSS at ready, `runs_n` times."""
    n = len(topo.replicas)
    runs = []
    for _ in range(runs_n):
        with scratch() as d:
            t0 = time.perf_counter()
            cluster = LocalCluster.create(topo, d / "state")
            with cluster:
                t_ready = time.perf_counter()
                mem = memory_snapshot(cluster)
                run_id = cluster.state.run_id
                links = len(cluster.state.links)
                repl_links = len(cluster.state.replication_links)
                t1 = time.perf_counter()
                cluster.stop()
                t_stop = time.perf_counter()
            leftovers = registry.labelled_processes(run_id)
            runs.append(
                {
                    "start_s": t_ready - t0,
                    "stop_s": t_stop - t1,
                    "memory": mem,
                    "client_links": links,
                    "replication_links": repl_links,
                    "leftover_processes": sorted(leftovers),
                }
            )
    for r in runs:
        if r["leftover_processes"]:
            raise BenchError(f"processes of a stopped cluster still run: {r['leftover_processes']}")
    starts = [r["start_s"] for r in runs]
    stops = [r["stop_s"] for r in runs]
    totals = [sum(m["rss_mb"] for m in r["memory"].values()) for r in runs]
    peak = runs[totals.index(max(totals))]["memory"]
    replica_rss = [m["rss_mb"] for m in replica_memory(peak)]
    procs = "/".join(sorted({str(m["processes"]) for m in replica_memory(peak)}))
    raw = {
        "topology": source,
        "replication": topo.replication_profile,
        "client_links": runs[0]["client_links"],
        "replication_links": runs[0]["replication_links"],
        "runs": runs,
        "start_median_s": statistics.median(starts),
        "stop_median_s": statistics.median(stops),
        "rss_total_peak_mb": max(totals),
        "rss_at_peak_run": peak,
    }
    runs_note = f"median of {len(runs)}"
    links_note = f"{runs[0]['client_links']} client links"
    if runs[0]["replication_links"]:
        links_note += f" + {runs[0]['replication_links']} replication links"
    figures = [
        Figure(sec, "create+start to ready", statistics.median(starts), "s",
               STARTUP_TARGETS_S.get(n), "<=", f"{runs_note}; {links_note}"),
        Figure(sec, "stop", statistics.median(stops), "s", STOP_TARGET_S, "<=", runs_note),
        Figure(sec, "RSS per replica (max)", max(replica_rss), "MB",
               RSS_PER_REPLICA_TARGET_MB, "<=",
               f"{procs} process(es) each; pages shared with the spawner counted in full"),
        Figure(sec, "PSS per replica (max)", max(replica_pss(peak)), "MB",
               PSS_PER_REPLICA_TARGET_MB, "<=",
               "its own + its share of the spawner that forked it"),
        Figure(sec, "RSS Toxiproxy", peak["toxiproxy"]["rss_mb"], "MB",
               RSS_TOXIPROXY_TARGET_MB, "<="),
        Figure(sec, "RSS total", max(totals), "MB", rss_total_target_mb(n), "<=",
               f"max of {len(runs)}"),
    ]  # fmt: skip
    return figures, raw


def bench_startup(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    for name in ("one-site.yaml", "two-sites.yaml"):
        path = TOPOLOGIES / name
        topo = load_topology(path)
        n = len(topo.replicas)
        figs, raw[f"{n}_replicas"] = startup_case(
            topo, str(path.relative_to(REPO)), prof.startup_runs, f"start-up, {n} replicas"
        )
        figures += figs
    return figures, raw
