"""Section 4, replication on two-sites-async (six replicas, async, `interval_ms`).

Lag: on a fresh cluster, vc-a Creates keys on kms-a at `LAG_REFERENCE_RATE` then
`LAG_RATE` Creates/s while a watcher records when each is first readable on kms-d (no
target; expected ≈ one to two intervals). Convergence: on another fresh cluster,
site-a and site-b are partitioned while both sites' clients write; nothing may cross
before heal; after heal, the time until every replica lists the same ids, then one
full audit round (target: all replicas agree, every acknowledged key everywhere) and
memory. Last, section 3's start-up with replication on.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import REPO, BenchError
from bench.clusters import direct_endpoint, running_cluster
from bench.figures import (
    PSS_1000_KEYS_TARGET_MB,
    RSS_PER_REPLICA_TARGET_MB,
    Figure,
    ms,
    pct,
    rss_total_target_mb,
)
from bench.machine import memory_snapshot, replica_memory, replica_pss
from bench.profiles import Profile
from bench.startup import startup_case
from bench.writes import Visibility, creates_summary, locate_all, paced_creates
from harness.audit import Auditor
from harness.client.walker import VCenterPolicy
from harness.cluster.local import LocalCluster
from harness.faults import make_fault
from harness.history import History
from harness.topology import Topology, load_topology
from harness.wait import wait_until

ASYNC_TOPOLOGY = "scenarios/topologies/two-sites-async.yaml"
LAG_RATE = 50.0  # Creates per second for the async lag (brief)
LAG_REFERENCE_RATE = 10.0  # well below what the agent sustains: its own delay
LAG_WRITERS = 4  # connections sharing that schedule, so one slow Create delays no other
PARTITION_WRITERS = 2  # connections per site client during the partition
WATCH_POLL_S = 0.010  # least pause between two passes of the visibility watcher
CONVERGE_DEADLINE_S = 120.0
CONVERGE_POLL_MIN_S = 0.1
APPLIED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* applied (\d+) object")


def lag_run(
    cluster: LocalCluster, topo: Topology, conf: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Creates at `rate` for `seconds` on kms-a (through vc-a, whose first replica it
    is); when each key is first readable on kms-d."""
    tls = cluster.client_tls()
    rt, ct = topo.response_timeout, topo.connect_timeout
    endpoints = cluster.state.endpoints("vc-a")
    with Visibility(direct_endpoint(cluster, "kms-d"), tls, conf, WATCH_POLL_S) as watch:
        created = paced_creates(
            "vc-a",
            lambda: VCenterPolicy(endpoints, tls, ct, rt, conf),
            round(rate * seconds),
            rate,
            LAG_WRITERS,
            on_ack=lambda c: watch.expect(c.key or "", c.ack),
        )
        keys = [c.key for c in created if c.key]
        if not keys:
            raise BenchError(f"no Create succeeded on vc-a: {created[0].error if created else ''}")
        wait_until(lambda: watch.all_seen(keys), 120, "kms-d to serve every key created via vc-a")
    listed, locate_s = locate_all(cluster, "kms-d", conf)
    lags = [watch.seen[k][1] - watch.acked[k] for k in keys]
    t0 = min(c.due for c in created)
    by_second: dict[int, list[float]] = {}
    for k, lag in zip(keys, lags, strict=True):
        by_second.setdefault(int(watch.acked[k] - t0), []).append(lag)
    resolution = [watch.seen[k][1] - watch.seen[k][0] for k in keys]
    delivered_s = max(s[1] for s in watch.seen.values()) - t0
    return {
        "rate_asked_per_s": rate,
        "writers": LAG_WRITERS,
        "watch_poll_s": WATCH_POLL_S,
        "creates": creates_summary(created),
        "keys": len(keys),
        "lag_s": lags,
        "lag_p50_ms": ms(pct(lags, 50)),
        "lag_p99_ms": ms(pct(lags, 99)),
        "lag_max_ms": ms(max(lags)),
        "lag_min_ms": ms(min(lags)),
        "lag_p50_by_second_ms": {s: ms(statistics.median(v)) for s, v in sorted(by_second.items())},
        "readable_on_kms_d_per_s": len(keys) / delivered_s,
        "resolution_p50_ms": ms(pct(resolution, 50)),
        "watch_passes": {
            kind: {
                "passes": len(d),
                "pending_max": max(p for _, p, _ in d),
                "p50_ms": ms(pct([x for _, _, x in d], 50)),
            }
            for kind in ("locate", "get")
            if (d := [x for x in watch.passes if x[0] == kind])
        },
        "kms_d_locate": {
            "listed": len(listed),
            "acked_listed": len(listed & set(keys)),
            "s": locate_s,
        },
    }


def bench_lag(
    cluster: LocalCluster, topo: Topology, prof: Profile, conf: str
) -> tuple[list[Figure], dict[str, Any]]:
    """The lag at a low reference rate first (the agent's own delay), then at LAG_RATE."""
    interval = topo.replication_interval_ms
    raw = {
        "interval_ms": interval,
        "reference": lag_run(cluster, topo, conf, LAG_REFERENCE_RATE, prof.lag_s),
        "main": lag_run(cluster, topo, conf, LAG_RATE, prof.lag_s),
    }
    figures: list[Figure] = []
    expect = f"interval_ms {interval:g}: expected ≈ 1–2 intervals"
    for which, rate in (("main", LAG_RATE), ("reference", LAG_REFERENCE_RATE)):
        r = raw[which]
        w = r["creates"]
        sec = f"replication (async), lag kms-a → kms-d at {rate:g} Creates/s"
        other = {s: k for s, k in w["served_by"].items() if s != "kms-a"}
        write_note = (
            f"{w['rate_per_s']:.1f}/s achieved, {LAG_WRITERS} connections"
            + (f", {len(w['failed'])} failed" if w["failed"] else "")
            + (f", served elsewhere: {other}" if other else "")
        )
        seconds = list(r["lag_p50_by_second_ms"].values())
        trend = (
            f"p50 of the 1st second's Creates {seconds[0]:.0f} ms, of the last {seconds[-1]:.0f} ms"
        )
        figures += [
            Figure(sec, "Creates acked by kms-a (via vc-a)", r["keys"], "n", note=write_note),
            Figure(sec, "lag p50 (ack → readable on kms-d)", r["lag_p50_ms"], "ms", note=expect),
            Figure(sec, "lag p99", r["lag_p99_ms"], "ms"),
            Figure(sec, "lag max", r["lag_max_ms"], "ms", note=trend),
        ]  # fmt: skip
        if which == "main":
            passes = r["watch_passes"]
            how = ", ".join(f"{v['passes']} {k} passes" for k, v in passes.items())
            loc = r["kms_d_locate"]
            figures += [
                Figure(sec, "Create p50 (vc-a, connection per op)", w["create_p50_ms"], "ms"),
                Figure(sec, "keys readable on kms-d per second", r["readable_on_kms_d_per_s"],
                       "ops/s", note="first Create due → last key readable"),
                Figure(sec, "poll resolution p50 (hit − previous miss)", r["resolution_p50_ms"],
                       "ms", note=how),
                Figure(sec, "acked ids kms-d's Locate lists (no maximum_items)",
                       loc["acked_listed"], "n", r["keys"], ">=",
                       f"Locate took {ms(loc['s']):.0f} ms"),
            ]  # fmt: skip
    return figures, raw


def last_logged_apply(cluster: LocalCluster, since_wall: float) -> float | None:
    """Seconds after `since_wall` of the last "applied N object(s)" line any replica's
    agent logged (its replication.log), or None: a cross-check of convergence that
    adds no load."""
    last = None
    for rs in cluster.state.replicas.values():
        with contextlib.suppress(OSError):
            for line in (Path(rs.data_dir) / "replication.log").read_text().splitlines():
                m = APPLIED_LINE.match(line)
                if m:
                    wall = time.mktime(time.strptime(m[1][:19], "%Y-%m-%d %H:%M:%S"))
                    t = wall + int(m[1][20:]) / 1000 - since_wall
                    if t > 0 and (last is None or t > last):
                        last = t
    return last


def bench_partition(
    cluster: LocalCluster, topo: Topology, prof: Profile, conf: str
) -> tuple[list[Figure], dict[str, Any]]:
    """Partition site-a / site-b while both sites' clients write; heal; time until every
    replica lists the same ids, then one full audit round."""
    tls = cluster.client_tls()
    rt, ct = topo.response_timeout, topo.connect_timeout
    replicas = list(cluster.state.replicas)
    history = History()
    auditor = Auditor(cluster, history)
    per_site = prof.partition_keys // 2
    hold = prof.partition_s
    rate = per_site / hold
    clients = {"vc-a": "kms-a", "vc-b": "kms-d"}  # client -> the replica it writes to
    abort = threading.Event()

    def factory(client: str) -> Callable[[], VCenterPolicy]:
        endpoints = cluster.state.endpoints(client)
        return lambda: VCenterPolicy(endpoints, tls, ct, rt, conf)

    with make_fault("partition", cluster, "site-a site-b", history):
        t_cut = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            futures = {
                c: pool.submit(
                    paced_creates, c, factory(c), per_site, rate, PARTITION_WRITERS, None, abort
                )
                for c in clients
            }
            try:
                created = {c: f.result() for c, f in futures.items()}
            except BaseException:
                abort.set()
                raise
        t_written = time.perf_counter()
        # the partition lasts `hold` seconds whatever the writers took
        threading.Event().wait(max(0.0, t_cut + hold - time.perf_counter()))
        # nothing may have crossed: site-b's keys on kms-a, site-a's on kms-d
        keys = {c: {x.key for x in created[c] if x.key} for c in clients}
        on_a, _ = locate_all(cluster, "kms-a", conf)
        on_d, _ = locate_all(cluster, "kms-d", conf)
        crossed = len(keys["vc-b"] & on_a) + len(keys["vc-a"] & on_d)
        t_heal = time.perf_counter()
    t_healed, healed_wall = time.perf_counter(), time.time()

    # poll same_ids() (one Locate of every object on each replica: heavy for PyKMIP)
    # with pauses twice as long as a poll, so that polling slows convergence little
    polls: list[tuple[float, float, bool]] = []
    convergence_s: float | None = None
    pause = threading.Event()
    while True:
        t0 = time.perf_counter()
        same = auditor.same_ids()
        t1 = time.perf_counter()
        polls.append((t0 - t_healed, t1 - t_healed, same))
        if same:
            convergence_s = t1 - t_healed
            break
        if t1 - t_healed > CONVERGE_DEADLINE_S:
            break
        pause.wait(max(CONVERGE_POLL_MIN_S, 2 * (t1 - t0)))
    last_apply = last_logged_apply(cluster, healed_wall)
    t0 = time.perf_counter()
    snaps = auditor.round()
    audit_s = time.perf_counter() - t0
    mem = memory_snapshot(cluster)

    acked = keys["vc-a"] | keys["vc-b"]
    agreeing = [s.replica for s in snaps if s.ok and s.objects == snaps[0].objects]
    per_replica = {s.replica: len(acked & set(s.objects)) for s in snaps}
    poll_s = [b - a for a, b, _ in polls]
    raw = {
        "interval_ms": topo.replication_interval_ms,
        "partition_s": t_heal - t_cut,
        "heal_s": t_healed - t_heal,
        "writers_per_client": PARTITION_WRITERS,
        "rate_per_client_asked_per_s": rate,
        "writes_span_s": t_written - t_cut,
        "creates": {c: creates_summary(created[c]) for c in clients},
        "crossed_before_heal": crossed,
        "convergence_s": convergence_s,
        "convergence_lower_bound_s": polls[-1][0] if convergence_s is not None else None,
        "same_ids_polls": polls,
        "last_logged_apply_s": last_apply,
        "audit_round_s": audit_s,
        "audit_agree": Auditor.agree(snaps),
        "audit_agreeing_with_first": agreeing,
        "audit_errors": {s.replica: s.error for s in snaps if not s.ok},
        "objects_per_replica": {s.replica: len(s.objects) for s in snaps},
        "acked_keys_per_replica": per_replica,
        "acked_keys": len(acked),
        "locate_default_maximum": None,  # PyKMIP 0.11: no maximum unless asked for
        "memory_after_audit": mem,
    }
    sec = f"replication (async), partition site-a / site-b {hold:g} s, then heal"
    failed = sum(len(s["failed"]) for s in raw["creates"].values())
    n_a, n_b = len(keys["vc-a"]), len(keys["vc-b"])
    write_note = f"vc-a {n_a} on kms-a, vc-b {n_b} on kms-d, over {raw['writes_span_s']:.1f} s" + (
        f"; {failed} failed" if failed else ""
    )
    if convergence_s is None:
        conv_value = polls[-1][1] if polls else CONVERGE_DEADLINE_S
        conv_note = f"NOT converged at the {CONVERGE_DEADLINE_S:g} s deadline"
    else:
        conv_value = convergence_s
        conv_note = (
            f"{len(polls)} same_ids() polls of {statistics.median(poll_s):.2f} s (median), "
            f"the last began at {polls[-1][0]:.2f} s"
        )
        if last_apply is not None:
            conv_note += f"; last apply logged at {last_apply:.2f} s"
    replica_rss = [m["rss_mb"] for m in replica_memory(mem)]
    replica_hwm = [m["hwm_mb"] for m in replica_memory(mem)]
    total_rss = sum(m["rss_mb"] for m in mem.values())
    n = len(replicas)
    figures = [
        Figure(sec, "Creates acknowledged during the partition", len(acked), "n",
               note=write_note),
        Figure(sec, "keys across the cut before heal", crossed, "n", 0, "<="),
        Figure(sec, "heal → same ids on all replicas", conv_value, "s", note=conv_note),
        Figure(sec, "then one full audit round (Get + State of every object)", audit_s, "s"),
        Figure(sec, "replicas agreeing (ids, digests, states)", len(agreeing), "n", n, ">=",
               "" if raw["audit_agree"] else f"agree() false: {raw['audit_errors'] or 'differ'}"),
        Figure(sec, "acknowledged keys on each replica (min)", min(per_replica.values()), "n",
               len(acked), ">=", "listed by Locate without maximum_items"),
        Figure(sec, f"RSS per replica (max) with {len(acked)} keys", max(replica_rss), "MB",
               RSS_PER_REPLICA_TARGET_MB, "<=", "after the audit"),
        Figure(sec, f"PSS per replica (max) with {len(acked)} keys",
               max(replica_pss(mem)), "MB", PSS_1000_KEYS_TARGET_MB, "<=",
               "after the audit; with its share of the spawner"),
        Figure(sec, "peak RSS per replica (max)", max(replica_hwm), "MB",
               RSS_PER_REPLICA_TARGET_MB, "<=", "VmHWM summed over its processes"),
        Figure(sec, f"RSS total with {len(acked)} keys", total_rss, "MB",
               rss_total_target_mb(n), "<=", "after the audit"),
    ]  # fmt: skip
    return figures, raw


def bench_replication(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    topo = load_topology(REPO / ASYNC_TOPOLOGY)
    if topo.replication_profile != "async":
        raise BenchError(f"{ASYNC_TOPOLOGY}: replication profile is not async")
    raw: dict[str, Any] = {"topology": ASYNC_TOPOLOGY, "interval_ms": topo.replication_interval_ms}
    figures: list[Figure] = []
    with running_cluster(LocalCluster, topo) as (cluster, conf):
        fig, raw["lag"] = bench_lag(cluster, topo, prof, conf)
        figures += fig
    with running_cluster(LocalCluster, topo) as (cluster, conf):
        fig, raw["partition"] = bench_partition(cluster, topo, prof, conf)
        figures += fig
    fig, raw["startup"] = startup_case(
        topo, ASYNC_TOPOLOGY, prof.startup_runs, "replication (async), start-up, 6 replicas"
    )
    figures += fig
    return figures, raw
