"""Section 7, scale: local clusters of 6, 20 and 40 replicas with async replication.

For each size: create+start to ready, the memory of a replica (its proportional set
size, plus its share of the spawner that forked it: `harness.replica.spawner`), the
Toxiproxy links it needed, and a site partition: site-a cut from every other site while
vc-a writes on site-a and vc-b on site-b, then heal, and the time until every replica
lists the same ids. The sizes: ``two-sites-async.yaml`` (6), the first four replicas of
each site of ``five-sites-40-async.yaml`` (20), and that file (40).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import REPO, TOPOLOGIES, BenchError
from bench.clusters import running_cluster, scratch
from bench.figures import (
    PSS_PER_REPLICA_TARGET_MB,
    SCALE_READY_TARGETS_S,
    Figure,
)
from bench.machine import memory_snapshot, replica_pss
from bench.profiles import Profile
from bench.writes import paced_creates
from harness import registry
from harness.audit import Auditor
from harness.client.walker import VCenterPolicy
from harness.cluster.local import LocalCluster
from harness.faults import make_fault
from harness.history import History
from harness.topology import Topology, load_topology, topology_from_dict

SCALE_40 = TOPOLOGIES / "five-sites-40-async.yaml"
CONVERGE_DEADLINE_S = 120.0
WRITERS = 2


def sized(n_per_site: int) -> Topology:
    """five-sites-40-async with the first `n_per_site` replicas of each site."""
    topo = load_topology(SCALE_40)
    if n_per_site == 8:
        return topo
    d = topo.to_dict()
    for site in d["sites"].values():
        site["replicas"] = site["replicas"][:n_per_site]
    for client in d["clients"].values():
        client.pop("order", None)  # derived from the sites again
    d["name"] = f"five-sites-{5 * n_per_site}-async"
    return topology_from_dict(d, f"{SCALE_40.relative_to(REPO)} ({n_per_site} per site)")


def cases() -> list[tuple[str, Callable[[], Topology]]]:
    return [
        ("scenarios/topologies/two-sites-async.yaml", lambda: load_topology(
            TOPOLOGIES / "two-sites-async.yaml")),
        (f"{SCALE_40.relative_to(REPO)}, 4 per site", lambda: sized(4)),
        (str(SCALE_40.relative_to(REPO)), lambda: sized(8)),
    ]  # fmt: skip


def _start(topo: Topology) -> dict[str, Any]:
    """One create+start to ready: its time, memory and links; stopped again."""
    with scratch() as d:
        t0 = time.perf_counter()
        cluster = LocalCluster.create(topo, d / "state")
        with cluster:
            ready = time.perf_counter() - t0
            mem = memory_snapshot(cluster)
            run = {
                "start_s": ready,
                "memory": mem,
                "client_links": len(cluster.state.links),
                "replication_links": len(cluster.state.replication_links),
            }
            run_id = cluster.state.run_id
        left = registry.labelled_processes(run_id)
        if left:
            raise BenchError(f"processes of a stopped cluster still run: {sorted(left)}")
    return run


def _partition(topo: Topology, keys_per_site: int, hold_s: float) -> dict[str, Any]:
    """Cut site-a from every other site while vc-a and vc-b write; heal; the time until
    every replica lists the same ids."""
    with running_cluster(LocalCluster, topo) as (cluster, conf):
        tls = cluster.client_tls()
        rt, ct = topo.response_timeout, topo.connect_timeout
        history = History()
        auditor = Auditor(cluster, history)
        abort = threading.Event()

        def factory(client: str) -> Callable[[], VCenterPolicy]:
            endpoints = cluster.state.endpoints(client)
            return lambda: VCenterPolicy(endpoints, tls, ct, rt, conf)

        fault = make_fault("partition", cluster, "site-a", history)
        t_inject = time.perf_counter()
        with fault:
            t_cut = time.perf_counter()
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [
                    pool.submit(
                        paced_creates,
                        c,
                        factory(c),
                        keys_per_site,
                        keys_per_site / hold_s,
                        WRITERS,
                        None,
                        abort,
                    )
                    for c in ("vc-a", "vc-b")
                ]
                try:
                    created = [f.result() for f in futures]
                except BaseException:
                    abort.set()
                    raise
            threading.Event().wait(max(0.0, t_cut + hold_s - time.perf_counter()))
            t_heal = time.perf_counter()
        t_healed = time.perf_counter()
        polls = 0
        converged: float | None = None
        while time.perf_counter() - t_healed < CONVERGE_DEADLINE_S:
            polls += 1
            if auditor.same_ids():
                converged = time.perf_counter() - t_healed
                break
            threading.Event().wait(0.2)  # wait-ok: poll interval of a convergence deadline
        acked = sum(1 for batch in created for x in batch if x.key)
    return {
        "inject_s": t_cut - t_inject,
        "heal_s": t_healed - t_heal,
        "cut_links": len(fault.cut_links()) + len(fault.cut_replication_links()),
        "acked": acked,
        "convergence_s": converged,
        "polls": polls,
    }


def bench_scale(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    for source, make in cases():
        topo = make().with_time_scale(prof.time_scale)
        n = len(topo.replicas)
        sec = f"scale, {n} replicas (async)"
        runs = [_start(topo) for _ in range(prof.scale_runs)]
        part = _partition(topo, prof.scale_keys, prof.scale_partition_s)
        starts = [r["start_s"] for r in runs]
        pss = [p for r in runs for p in replica_pss(r["memory"])]
        links = runs[0]["client_links"] + runs[0]["replication_links"]
        raw[f"{n}_replicas"] = {"topology": source, "runs": runs, "partition": part}
        conv = part["convergence_s"]
        figures += [
            Figure(sec, "create+start to ready", statistics.median(starts), "s",
                   SCALE_READY_TARGETS_S.get(n), "<=",
                   f"median of {len(runs)}; max {max(starts):.2f} s; {source}"),
            Figure(sec, "PSS per replica at ready (median)", statistics.median(pss), "MB",
                   PSS_PER_REPLICA_TARGET_MB, "<=",
                   "its own + its share of the spawner's"),
            Figure(sec, "PSS per replica at ready (max)", max(pss), "MB",
                   PSS_PER_REPLICA_TARGET_MB, "<="),
            Figure(sec, "PSS total at ready (max)", max(
                sum(m["pss_mb"] for m in r["memory"].values()) for r in runs), "MB",
                   note="replicas, spawner, Toxiproxy"),
            Figure(sec, "Toxiproxy links", links, "n",
                   note=f"{runs[0]['client_links']} client + "
                        f"{runs[0]['replication_links']} replication"),
            Figure(sec, "partition site-a: links cut / inject / heal", part["inject_s"], "s",
                   note=f"{part['cut_links']} links; heal {part['heal_s']:.2f} s"),
            Figure(sec, "heal → same ids on all replicas",
                   conv if conv is not None else CONVERGE_DEADLINE_S, "s",
                   note=(f"{part['acked']} keys written during "
                         f"{prof.scale_partition_s:g} s; {part['polls']} polls")
                   if conv is not None else "NOT converged"),
        ]  # fmt: skip
    return figures, raw
