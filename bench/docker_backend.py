"""Section 5, the docker backend, when a Docker engine answers and the images exist.

- image build, cached: `images.build(mode="auto")` with every image present;
- two-sites on both backends, runs interleaved: `start()` to ready, docker's `stop()`,
  memory per replica at ready (`docker stats`' MEM USAGE against local RSS and PSS);
- section 1's proxy overhead on a docker one-site cluster;
- with `--docker-cold`, an offline image build from nothing kmschaos keeps.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import REPO, TOPOLOGIES, BenchError
from bench.clusters import running_cluster, scratch
from bench.figures import (
    CACHED_BUILD_TARGET_S,
    COLD_BUILD_TARGET_S,
    DOCKER_READY_TARGET_S,
    DOCKER_STOP_TARGET_S,
    HOLDER_MEM_TARGET_MB,
    RSS_PER_REPLICA_TARGET_MB,
    RSS_TOXIPROXY_TARGET_MB,
    STARTUP_TARGETS_S,
    Figure,
    rss_total_target_mb,
)
from bench.machine import memory_snapshot, replica_memory
from bench.profiles import Profile
from bench.proxy import bench_proxy
from harness import images, registry
from harness.backends import cluster_class
from harness.cluster.docker_backend import (
    DockerCluster,
    docker_client,
    docker_run_ids,
    userland_proxy,
)
from harness.cluster.local import LocalCluster
from harness.topology import Topology, load_topology

MIB = 1024 * 1024


def _image_id(client: Any, ref: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(ref).id)
    except ImageNotFound:
        return None


def docker_facts() -> dict[str, Any]:
    client = docker_client()
    try:
        info, version = client.info(), client.version()
        kms, toxi = images.kms_image(), images.toxiproxy_image(client)
        return {
            "engine": version.get("Version"),
            "api": version.get("ApiVersion"),
            "cgroup_version": info.get("CgroupVersion"),
            "storage_driver": info.get("Driver"),
            "userland_proxy": userland_proxy(),
            "images": {ref: _image_id(client, ref) for ref in (kms, toxi, images.BASE_OFFLINE)},
            "kms_image": kms,
            "toxiproxy_image": toxi,
        }
    finally:
        client.close()


def container_memory(container: Any) -> dict[str, Any]:
    """What `docker stats` shows as MEM USAGE (docker CLI 20.10+): the cgroup's usage
    minus its inactive file pages (cgroup v1 `total_inactive_file`, v2
    `inactive_file`); also the anonymous memory (v1 `total_rss`, v2 `anon`)."""
    s = container.stats(stream=False, one_shot=True)
    mem = s.get("memory_stats") or {}
    if "usage" not in mem:
        raise BenchError(f"docker stats of {container.name}: no memory usage in {mem}")
    stats = mem.get("stats") or {}
    key = "total_inactive_file" if "total_inactive_file" in stats else "inactive_file"
    usage, inactive = int(mem["usage"]), int(stats.get(key, 0))
    anon = stats.get("total_rss", stats.get("anon"))
    return {
        "mb": (usage - inactive if inactive < usage else usage) / MIB,
        "usage_mb": usage / MIB,
        "minus": key,
        "minus_mb": inactive / MIB,
        "anon_mb": None if anon is None else int(anon) / MIB,
        "max_usage_mb": int(mem.get("max_usage", 0)) / MIB or None,  # cgroup v1 only
        "pids": (s.get("pids_stats") or {}).get("current"),
    }


def docker_memory(cluster: DockerCluster) -> dict[str, Any]:
    """`container_memory` of every replica container, its holder and Toxiproxy."""
    names = {cluster.toxiproxy_name: ("toxiproxy", "")}
    for r in cluster.state.replicas:
        names[cluster.container_name(r)] = (r, "replica")
        names[cluster.holder_name(r)] = (r, "holder")

    def one(name: str) -> dict[str, Any]:
        return container_memory(cluster.docker.containers.get(name))

    with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
        got = dict(zip(names, pool.map(one, names), strict=True))
    out: dict[str, Any] = {"replicas": {r: {} for r in cluster.state.replicas}}
    for name, (who, role) in names.items():
        if who == "toxiproxy":
            out["toxiproxy"] = {"container": name, **got[name]}
        else:
            out["replicas"][who][role] = {"container": name, **got[name]}
    return out


def ready_run(backend: str, topo: Topology) -> dict[str, Any]:
    """One cluster: `start()` call to return, memory at ready, `stop()`, leftovers."""
    with scratch() as d:
        cluster = cluster_class(backend).create(topo, d / "state")
        t0 = time.perf_counter()
        with cluster:
            ready = time.perf_counter() - t0
            if isinstance(cluster, DockerCluster):
                mem = docker_memory(cluster)
            else:
                assert isinstance(cluster, LocalCluster)
                mem = memory_snapshot(cluster)
            run_id = cluster.state.run_id
            t1 = time.perf_counter()
            cluster.stop()
            stop = time.perf_counter() - t1
    if backend == "docker":
        leftovers = sorted({run_id} & docker_run_ids())
    else:
        leftovers = sorted(map(str, registry.labelled_processes(run_id)))
    if leftovers:
        raise BenchError(f"{backend} run {run_id}: still there after stop(): {leftovers}")
    return {"run_id": run_id, "ready_s": ready, "stop_s": stop, "memory": mem}


def _docker_total_mb(mem: dict[str, Any]) -> float:
    return mem["toxiproxy"]["mb"] + sum(
        c["mb"] for r in mem["replicas"].values() for c in r.values()
    )


def bench_ready(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    """two-sites on both backends, runs interleaved (L D, D L, ...) so that drift in
    the machine's load hits both alike; memory of each run at ready."""
    path = TOPOLOGIES / "two-sites.yaml"
    topo = load_topology(path)
    n = len(topo.replicas)
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "docker": []}
    for i in range(prof.docker_runs):
        for backend in ("local", "docker") if i % 2 == 0 else ("docker", "local"):
            runs[backend].append(ready_run(backend, topo))
    ready = {b: [r["ready_s"] for r in rs] for b, rs in runs.items()}
    med = {b: statistics.median(v) for b, v in ready.items()}
    raw: dict[str, Any] = {
        "topology": str(path.relative_to(REPO)),
        "runs": runs,
        "ready_median_s": med,
        "ready_max_s": {b: max(v) for b, v in ready.items()},
        "docker_over_local": med["docker"] / med["local"],
    }
    sec = f"docker vs local, two-sites ({n} replicas): start() to ready"
    removes = f"removes {2 * n + 1} containers, {len(topo.sites)} networks, {n} volumes"
    note = f"median of {prof.docker_runs}"
    all_runs = ", ".join(f"{x:.2f}" for x in ready["docker"])
    figures = [
        Figure(sec, "local", med["local"], "s", STARTUP_TARGETS_S.get(n), "<=", note),
        Figure(sec, "local, max", max(ready["local"]), "s", STARTUP_TARGETS_S.get(n), "<="),
        Figure(sec, "docker", med["docker"], "s", DOCKER_READY_TARGET_S, "<=", note),
        Figure(sec, "docker, max", max(ready["docker"]), "s", DOCKER_READY_TARGET_S, "<=",
               f"runs {all_runs} s"),
        Figure(sec, "docker / local (medians)", raw["docker_over_local"], ""),
        Figure(sec, "docker stop()", statistics.median(r["stop_s"] for r in runs["docker"]), "s",
               DOCKER_STOP_TARGET_S, "<=", f"{note}; {removes}"),
    ]  # fmt: skip

    # memory at ready, over every run and replica of each backend
    dmems = [r["memory"] for r in runs["docker"]]
    lmems = [r["memory"] for r in runs["local"]]
    container = [c["replica"] for m in dmems for c in m["replicas"].values()]
    holder = [c["holder"]["mb"] for m in dmems for c in m["replicas"].values()]
    toxi = [m["toxiproxy"] for m in dmems]
    local = [x for m in lmems for x in replica_memory(m)]
    local_toxi = [m["toxiproxy"] for m in lmems]
    c_med = statistics.median(c["mb"] for c in container)
    rss_max = max(x["rss_mb"] for x in local)
    pss_med = statistics.median(x["pss_mb"] for x in local)
    raw["memory"] = {
        "docker_container_median_mb": c_med,
        "local_rss_max_mb": rss_max,
        "local_pss_median_mb": pss_med,
        "docker_total_max_mb": max(map(_docker_total_mb, dmems)),
    }
    sec = f"docker vs local, memory per replica at ready (two-sites, {n} replicas)"
    runs_note = f"{len(dmems)} runs × {n}"
    target = RSS_PER_REPLICA_TARGET_MB
    figures += [
        Figure(sec, "replica container", c_med, "MB", target, "<=",
               f"docker stats: usage − {container[0]['minus']}; median of {runs_note}"),
        Figure(sec, "replica container (max)", max(c["mb"] for c in container), "MB",
               target, "<=", "+ page cache of image files it read first"),
        Figure(sec, "replica container, anonymous memory (max)",
               max(c["anon_mb"] or 0.0 for c in container), "MB", note="cgroup rss/anon"),
        Figure(sec, "local replica, RSS (max)", rss_max, "MB", target, "<=",
               "VmRSS summed over its 3 processes, as in section 3"),
        Figure(sec, "local replica, PSS", pss_med, "MB", note="shared pages counted once; median"),
        Figure(sec, "replica container / local RSS", c_med / rss_max, ""),
        Figure(sec, "replica container / local PSS", c_med / pss_med, ""),
        Figure(sec, "holder container (max)", max(holder), "MB", HOLDER_MEM_TARGET_MB, "<=",
               "sleep infinity: owns the network namespace"),
        Figure(sec, "Toxiproxy container (max)", max(t["mb"] for t in toxi), "MB",
               RSS_TOXIPROXY_TARGET_MB, "<=", f"{len(topo.clients) * n} client links"),
        Figure(sec, "Toxiproxy container, anonymous memory (max)",
               max(t["anon_mb"] or 0.0 for t in toxi), "MB"),
        Figure(sec, "local Toxiproxy, RSS (max)", max(t["rss_mb"] for t in local_toxi), "MB",
               RSS_TOXIPROXY_TARGET_MB, "<="),
        Figure(sec, "local Toxiproxy, RssAnon (max)", max(t["anon_mb"] for t in local_toxi),
               "MB"),
        Figure(sec, "docker total (all containers, max)", raw["memory"]["docker_total_max_mb"],
               "MB", rss_total_target_mb(n), "<="),
    ]  # fmt: skip
    return figures, raw


def bench_docker_proxy(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    """Section 1's proxy overhead, on a docker one-site cluster: direct = the holder's
    published port, proxied = the Toxiproxy container's published link port."""
    topo = load_topology(TOPOLOGIES / "one-site.yaml").with_time_scale(prof.time_scale)
    with running_cluster(DockerCluster, topo) as (cluster, conf):
        return bench_proxy(cluster, topo, prof, conf, section="proxy overhead on docker")


def _build_figures(
    sec: str, report: images.BuildReport, total: float, target: float, note: str
) -> list[Figure]:
    figures = [Figure(sec, "total", total, "s", target, "<=", note)]
    figures += [Figure(sec, f"step: {step}", s, "s") for step, s in report.steps.items()]
    return figures


def bench_build_cached() -> tuple[list[Figure], dict[str, Any]]:
    """`images.build(mode="auto")` with every image present: what `make images` costs
    when there is nothing to do (the auto path's pull attempt included)."""
    log: list[str] = []
    t0 = time.perf_counter()
    report = images.build(mode="auto", log=log.append)
    total = time.perf_counter() - t0
    raw = {"total_s": total, "mode": report.mode, "reason": report.reason,
           "steps_s": report.steps, "images": report.images, "log": log}  # fmt: skip
    built = [line for line in log if line.strip().startswith("built ")]
    if built:
        raw["built"] = built
    note = f"{report.mode} path" + (f"; built: {len(built)} image(s)" if built else "")
    return _build_figures("docker, image build, cached", report, total,
                          CACHED_BUILD_TARGET_S, note), raw  # fmt: skip


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def bench_build_cold() -> tuple[list[Figure], dict[str, Any]]:
    """An offline build from nothing kmschaos keeps: `kmschaos/base:bookworm` untagged
    (debootstrap again), an empty `KMSCHAOS_CACHE` (wheels downloaded, Toxiproxy
    built), `no_cache=True` (no Docker layer cache). The kms and Toxiproxy tags are
    never removed (other runs may be using them): the build moves them to the new
    images. A backup tag keeps the old base until the build has made a new one, and
    puts it back if the build fails."""
    client = docker_client()
    base = images.BASE_OFFLINE
    repo = base.rsplit(":", 1)[0]
    backup_tag = f"bench-backup-{os.getpid()}"
    backup = f"{repo}:{backup_tag}"
    refs = (base, images.kms_image(), images.toxiproxy_image(client))
    before = {ref: _image_id(client, ref) for ref in refs}
    log: list[str] = []
    try:
        if before[base] is not None:
            client.images.get(base).tag(repo, backup_tag)
            client.images.remove(base, noprune=True)  # an untag: the backup holds the image
        with tempfile.TemporaryDirectory(prefix="kmschaos-bench-cache-") as cache:
            with _environ("KMSCHAOS_CACHE", cache):
                t0 = time.perf_counter()
                report = images.build(mode="offline", no_cache=True, log=log.append, client=client)
                total = time.perf_counter() - t0
    finally:
        if _image_id(client, backup) is not None:
            if _image_id(client, base) is None:  # the build failed before importing one
                client.images.get(backup).tag(repo, base.rsplit(":", 1)[1])
            client.images.remove(backup, noprune=True)
        after = {ref: _image_id(client, ref) for ref in refs}
        client.close()
    # another run may have re-imported the base meanwhile: then this was not cold
    warm = [line.strip() for line in log if line.strip().endswith(" present")]
    raw = {
        "total_s": total,
        "mode": report.mode,
        "steps_s": report.steps,
        "image_ids_before": before,
        "image_ids_after": after,
        "left_untagged": sorted(
            {i for ref, i in before.items() if i and after.get(ref) != i} - set(after.values())
        ),
        "not_cold": warm,
        "log": log,
    }
    note = "empty KMSCHAOS_CACHE, no layer cache; Go's and pip's own caches kept"
    if warm:
        note = f"NOT cold: {'; '.join(warm)}"
    return _build_figures("docker, image build, cold (--docker-cold)", report, total,
                          COLD_BUILD_TARGET_S, note), raw  # fmt: skip


def bench_docker(prof: Profile, cold: bool, figures: list[Figure], raw: dict[str, Any]) -> None:
    """The docker section, into `figures` and `raw` as it goes (so that what was
    measured before a failure is kept)."""
    raw["facts"] = docker_facts()
    parts: list[tuple[str, Callable[[], tuple[list[Figure], dict[str, Any]]]]] = [
        ("build_cached", bench_build_cached),
        ("ready_and_memory", lambda: bench_ready(prof)),
        ("proxy", lambda: bench_docker_proxy(prof)),
    ]
    if cold:
        parts.append(("build_cold", bench_build_cold))
    for name, part in parts:
        t0 = time.perf_counter()
        fig, raw[name] = part()
        raw[name]["elapsed_s"] = time.perf_counter() - t0
        figures += fig
