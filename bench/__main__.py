"""kmschaos benchmarks: sections 1–4 on local clusters, 5 on docker, 6 the catalogue.

    .venv/bin/python -m bench [--quick] [--docker-cold | --no-docker] [--no-catalogue]
    .venv/bin/python -m bench --only catalogue
    .venv/bin/python -m bench --only proxy [--quick]

Writes ``bench/results/latest.json`` and ``bench/results/latest.md`` and prints the
table. Every figure is reported with its target and the ratio against it; see
``bench/README.md`` for what each number means. This module only wires the sections
together and writes the results.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import TOPOLOGIES
from bench.catalogue import bench_catalogue
from bench.clusters import running_cluster
from bench.docker_backend import bench_docker
from bench.failover import bench_failover
from bench.figures import Figure, markdown
from bench.machine import load_and_runs, machine_facts
from bench.profiles import FULL, QUICK, Profile
from bench.proxy import bench_local_proxy
from bench.replication import ASYNC_TOPOLOGY, bench_replication
from bench.scale import bench_scale
from bench.startup import bench_startup
from harness.cluster.docker_backend import unavailable_reason
from harness.cluster.local import LocalCluster
from harness.topology import load_topology

RESULTS = Path(__file__).resolve().parent / "results"


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every cluster context


def header(
    doc: dict[str, Any],
    prof: Profile,
    response_timeout: float,
    docker_cold: bool,
    skipped: str | None,
    docker_error: str | None,
) -> list[str]:
    """The lines above the table: what ran, on what, and the noise around it."""
    m = doc["machine"]
    lines = [
        f"# kmschaos benchmarks ({prof.name})",
        "",
        f"{doc['started']}, commit {m.get('git_commit', '?')}, {m['cpu_count']} CPUs "
        f"({m.get('cpu_model', '?')}), Python {m['python']}, "
        f"Toxiproxy {m['toxiproxy']['version']}, PyKMIP {m.get('pykmip', '?')}; "
        f"failover at time_scale {prof.time_scale} (response timeout "
        f"{response_timeout:g} s); replication on {ASYNC_TOPOLOGY} (async, interval "
        f"{doc['replication']['interval_ms']:g} ms); load average before/after "
        f"{doc['noise_before']['loadavg'][0]:.2f}/{doc['noise_after']['loadavg'][0]:.2f}; "
        f"run took {doc['elapsed_s']:.0f} s.",
    ]
    if skipped is not None:
        lines.append(f"\n**Docker section skipped:** {skipped}")
    else:
        f = doc["docker"]["facts"]
        cold = "with" if docker_cold else "without"
        lines.append(
            f"\nDocker: engine {f['engine']} (cgroup v{f['cgroup_version']}, "
            f"{f['storage_driver']}, userland proxy {'on' if f['userland_proxy'] else 'off'}), "
            f"images {f['kms_image']} and {f['toxiproxy_image']}; {cold} the cold build "
            "(`--docker-cold`)."
        )
    if docker_error is not None:
        lines.append(f"\n**Docker section failed:** {docker_error}")
    busy = sorted(
        set(doc["noise_before"]["other_kmschaos_runs"])
        | set(doc["noise_after"]["other_kmschaos_runs"])
    )
    if busy:
        lines.append(
            f"\n**Noise:** other kmschaos runs were live on this machine ({', '.join(busy)}); "
            "ratios and latencies are less reliable."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, time_scale 0.02")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    ap.add_argument(
        "--docker-cold",
        action="store_true",
        help="also time a cold image build (untags kmschaos/base:bookworm, empty "
        "KMSCHAOS_CACHE, no layer cache; about a minute)",
    )
    ap.add_argument("--no-docker", action="store_true", help="skip the docker section")
    ap.add_argument(
        "--no-catalogue",
        action="store_true",
        help="skip section 6, the scenario catalogue with -n 1 and -n 2 (about 12 minutes; "
        "--quick skips it too)",
    )
    ap.add_argument(
        "--only",
        choices=("catalogue", "proxy", "scale"),
        help="run only this section (proxy: section 1, with --quick's profile if given); "
        "results in <section>.json and <section>.md (latest.* are kept)",
    )
    args = ap.parse_args(argv)
    prof = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, _sigterm)
    if args.only == "catalogue":
        return only_catalogue(args.out)
    if args.only == "proxy":
        return only_proxy(args.out, prof)
    if args.only == "scale":
        return only_scale(args.out, prof)

    t_start = time.perf_counter()
    doc: dict[str, Any] = {
        "profile": asdict(prof),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "noise_before": load_and_runs(),
    }
    figures: list[Figure] = []

    startup_figs, doc["startup"] = bench_startup(prof)
    topo = load_topology(TOPOLOGIES / "one-site.yaml").with_time_scale(prof.time_scale)
    with running_cluster(LocalCluster, topo) as (cluster, conf):
        fig, doc["proxy"] = bench_local_proxy(cluster, topo, prof, conf)
        figures += fig
        fig, doc["failover"] = bench_failover(cluster, topo, prof, conf)
        figures += fig
    figures += startup_figs
    fig, doc["replication"] = bench_replication(prof)
    figures += fig
    fig, doc["scale"] = bench_scale(prof)
    figures += fig

    docker_error = None
    skipped = "--no-docker" if args.no_docker else unavailable_reason()
    if skipped is not None:
        doc["docker"] = {"skipped": skipped}
    else:
        doc["docker"] = {"cold_asked": args.docker_cold}
        try:
            bench_docker(prof, args.docker_cold, figures, doc["docker"])
        except Exception as e:  # noqa: BLE001 - reported; what was measured is kept
            docker_error = f"{type(e).__name__}: {e}"
            doc["docker"]["error"] = docker_error

    if prof.catalogue and not args.no_catalogue:
        fig, doc["catalogue"] = bench_catalogue()
        figures += fig
    else:
        doc["catalogue"] = {"skipped": "--no-catalogue" if args.no_catalogue else "--quick"}

    doc["noise_after"] = load_and_runs()
    doc["elapsed_s"] = time.perf_counter() - t_start
    doc["figures"] = [f.to_dict() for f in figures]
    missed = [
        f"{f.section}: {f.name}" + (f" ({f.note})" if f.note else "")
        for f in figures
        if f.met is False
    ]
    doc["targets_missed"] = missed

    lines = header(doc, prof, topo.response_timeout, args.docker_cold, skipped, docker_error)
    for what in ("skipped", "error"):
        if what in doc["catalogue"]:
            lines.append(f"\n**Catalogue section (6) {what}:** {doc['catalogue'][what]}")
    table = markdown(figures, lines)
    if missed:
        table += "\nTargets missed: " + "; ".join(missed) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "latest.md").write_text(table)
    print(table)
    return 1 if docker_error is not None or "error" in doc["catalogue"] else 0


def only_section(
    out: Path,
    key: str,
    title: str,
    facts: Callable[[dict[str, Any]], str],
    measure: Callable[[], tuple[list[Figure], Any]],
    prof: Profile | None = None,
) -> int:
    """`--only KEY`: one section alone, into KEY.json and KEY.md (latest.* are kept);
    `facts(machine)` is what the header says beyond the machine, `measure` runs the
    section."""
    t_start = time.perf_counter()
    doc: dict[str, Any] = {
        **({"profile": asdict(prof)} if prof is not None else {}),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "noise_before": load_and_runs(),
    }
    figures, doc[key] = measure()
    doc["noise_after"] = load_and_runs()
    doc["elapsed_s"] = time.perf_counter() - t_start
    doc["figures"] = [f.to_dict() for f in figures]
    doc["targets_missed"] = [f"{f.section}: {f.name}" for f in figures if f.met is False]
    m = doc["machine"]
    lines = [
        f"# kmschaos benchmarks ({title})",
        "",
        f"{doc['started']}, commit {m.get('git_commit', '?')}, {m['cpu_count']} CPUs "
        f"({m.get('cpu_model', '?')}), Python {m['python']}{facts(m)}; load average "
        f"before/after {doc['noise_before']['loadavg'][0]:.2f}/"
        f"{doc['noise_after']['loadavg'][0]:.2f}; run took {doc['elapsed_s']:.0f} s.",
    ]
    failed = isinstance(doc[key], dict) and "error" in doc[key]
    if failed:
        lines.append(f"\n**{key.capitalize()} section failed:** {doc[key]['error']}")
    table = markdown(figures, lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{key}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / f"{key}.md").write_text(table)
    print(table)
    return 1 if failed else 0


def only_catalogue(out: Path) -> int:
    """`--only catalogue`: section 6 alone."""
    return only_section(out, "catalogue", "catalogue only", lambda m: "", bench_catalogue)


def only_proxy(out: Path, prof: Profile) -> int:
    """`--only proxy`: section 1 alone, on its own one-site cluster."""
    topo = load_topology(TOPOLOGIES / "one-site.yaml").with_time_scale(prof.time_scale)

    def measure() -> tuple[list[Figure], Any]:
        with running_cluster(LocalCluster, topo) as (cluster, conf):
            return bench_local_proxy(cluster, topo, prof, conf)

    def toxiproxy(m: dict[str, Any]) -> str:
        return f", Toxiproxy {m['toxiproxy']['version']}"

    return only_section(out, "proxy", f"proxy only, {prof.name}", toxiproxy, measure, prof)


def only_scale(out: Path, prof: Profile) -> int:
    """`--only scale`: section 7 alone (6, 20, 40 replicas)."""
    return only_section(
        out,
        "scale",
        f"scale only, {prof.name}",
        lambda m: f"; time scale {prof.time_scale}",
        lambda: bench_scale(prof),
        prof,
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        why = e or "SIGINT"
        print(f"python -m bench: interrupted ({why}); every cluster was stopped", file=sys.stderr)
        sys.exit(130)
