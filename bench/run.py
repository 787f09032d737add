"""kmschaos benchmarks: proxy overhead, failover precision, start-up / stop and memory,
replication (async lag, convergence after a partition); and, when a Docker engine
answers and the images are built, the docker backend against the local one (ready
time, memory per container, proxy overhead, image build time).

    .venv/bin/python bench/run.py [--quick] [--docker-cold | --no-docker]

Writes ``bench/results/latest.json`` and ``bench/results/latest.md`` and prints the
table. Every figure is reported with its target and the ratio against it; see
``bench/README.md`` for what each number means.

No sleeps: every wait polls a condition with a deadline (the only timed waits pace
the replication writers to a rate, and hold a partition for its duration), and every
cluster is stopped by a context manager, on error and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's harness, whatever the venv points at

from harness import images, registry  # noqa: E402
from harness.audit import Auditor  # noqa: E402
from harness.client.failover_client import FailoverClient  # noqa: E402
from harness.client.operations import empty_client_config, new_pie_client  # noqa: E402
from harness.client.policies import TlsFiles, VCenterPolicy  # noqa: E402
from harness.client.transport import Endpoint  # noqa: E402
from harness.cluster.common import BaseCluster  # noqa: E402
from harness.cluster.docker_backend import (  # noqa: E402
    DockerCluster,
    docker_client,
    docker_run_ids,
    unavailable_reason,
    userland_proxy,
)
from harness.cluster.local import LocalCluster  # noqa: E402
from harness.faults import make_fault  # noqa: E402
from harness.history import Complete, History  # noqa: E402
from harness.toolchain import find_toxiproxy_server  # noqa: E402
from harness.topology import Topology, load_topology, parse_topology  # noqa: E402
from harness.wait import wait_until  # noqa: E402

TOPOLOGIES = REPO / "scenarios" / "topologies"
RESULTS = Path(__file__).resolve().parent / "results"

# Used only while scenarios/topologies/two-sites.yaml does not exist.
TWO_SITES_FALLBACK = """\
name: two-sites
sites:
  site-a:
    replicas: [kms-a, kms-b, kms-c]
  site-b:
    replicas: [kms-d, kms-e, kms-f]
clients:
  vc-a:
    site: site-a
    policy: vcenter
  vc-b:
    site: site-b
    policy: vcenter
replication:
  profile: none
timeouts:
  response_s: 60
  connect_s: 5
"""

# Targets: (comparison, value, source). "brief" targets come from the benchmark's
# specification; "provisional" ones were set with the first measurements, so that a
# regression shows, and may be tightened.
PROXY_RATIO_MIN = 0.9
FAILOVER_REL_TOL = 0.05
FAILOVER_ABS_TOL_S = 0.050
STARTUP_TARGETS_S = {3: 5.0, 6: 10.0}  # provisional
ECHO_BYTES = 256  # about a KMIP Get response for an AES-256 key
STOP_TARGET_S = 2.0  # provisional
RSS_PER_REPLICA_TARGET_MB = 150.0  # provisional
RSS_TOXIPROXY_TARGET_MB = 50.0  # provisional
# docker backend (section 5)
DOCKER_READY_TARGET_S = 20.0  # provisional: two-sites, 13 containers
DOCKER_STOP_TARGET_S = 10.0  # provisional
HOLDER_MEM_TARGET_MB = 5.0  # provisional: `sleep infinity`
CACHED_BUILD_TARGET_S = 1.0  # brief: everything present, nothing to build
COLD_BUILD_TARGET_S = 300.0  # provisional


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


class BenchError(RuntimeError):
    """A benchmark could not measure what it should; the message says why."""


# ---- figures ----------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    target: float | None = None
    op: str | None = None  # ">=" or "<=" (None: a component, no target of its own)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.target is None or self.target == 0:
            return None
        return self.value / self.target

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        if abs(value) >= 100:
            return f"{value:.0f} ms"
        return f"{value:.3f} ms" if abs(value) < 1 else f"{value:.2f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ops/s":
        return f"{value:.0f} ops/s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "n":
        return f"{value:.0f}"
    return f"{value:.3f}"


def markdown(figures: list[Figure], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append("| benchmark | figure | measured | target | ratio | met |")
    lines.append("|---|---|---:|---:|---:|:-:|")
    for f in figures:
        target = f"{f.op} {fmt(f.target, f.unit)}" if f.target is not None else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        met = {True: "yes", False: "**NO**", None: ""}[f.met]
        name = f"{f.name} ({f.note})" if f.note else f.name
        lines.append(
            f"| {f.section} | {name} | {fmt(f.value, f.unit)} | {target} | {ratio} | {met} |"
        )
    return "\n".join(lines) + "\n"


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(x: float) -> float:
    return x * 1000.0


# ---- machine ----------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["mem_total_mb"] = round(int(line.split()[1]) / 1024)
    path, version = find_toxiproxy_server()
    facts["toxiproxy"] = {"path": path, "version": version}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        facts["pykmip"] = importlib.metadata.version("pykmip")
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if r.returncode == 0:
            facts["git_commit"] = r.stdout.strip()
    return facts


def load_and_runs() -> dict[str, Any]:
    """What else is running: load averages and other live kmschaos runs (noise)."""
    others = [e.run_id for e in registry.read_entries() if e.owner_alive()]
    return {"loadavg": list(os.getloadavg()), "other_kmschaos_runs": others}


# ---- process memory ---------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(d.name)] = (int(fields[1]), int(fields[2]))
    return out


def _group(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    """`root`, its process group and all their descendants."""
    members = {root} | {p for p, (_, pg) in table.items() if pg == root}
    changed = True
    while changed:
        grown = {p for p, (pp, _) in table.items() if pp in members} - members
        members |= grown
        changed = bool(grown)
    return {p for p in members if p in table}


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: each page shared by n processes counts 1/n (so a group's
    sum counts its shared pages once, as a container's cgroup does)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def memory_snapshot(cluster: LocalCluster) -> dict[str, Any]:
    """Sum of VmRSS (and VmHWM, Pss, RssAnon) per replica process group and for
    Toxiproxy."""
    table = _proc_table()
    st = cluster.state
    roots = {name: rs.pid for name, rs in st.replicas.items()}
    roots["toxiproxy"] = st.toxiproxy_pid
    out: dict[str, Any] = {}
    for name, pid in roots.items():
        if not pid:
            raise BenchError(f"{name} has no pid in a ready cluster")
        pids = _group(pid, table)
        out[name] = {
            "processes": len(pids),
            "rss_mb": sum(_status_kb(p, "VmRSS") for p in pids) / 1024,
            "hwm_mb": sum(_status_kb(p, "VmHWM") for p in pids) / 1024,
            "pss_mb": sum(_pss_kb(p) for p in pids) / 1024,
            "anon_mb": sum(_status_kb(p, "RssAnon") for p in pids) / 1024,
        }
    return out


# ---- clusters -----------------------------------------------------------------------


@contextlib.contextmanager
def running_cluster(topo: Topology) -> Iterator[tuple[LocalCluster, Path]]:
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
        cluster = LocalCluster.create(topo, Path(d) / "state")
        with cluster:
            yield cluster, Path(d)


def tls_of(cluster: BaseCluster) -> TlsFiles:
    return cluster.client_tls()


def endpoint_of(cluster: BaseCluster, client: str, replica: str) -> Endpoint:
    for ep in cluster.state.endpoints(client):
        if ep.replica == replica:
            return ep
    raise BenchError(f"client {client} has no endpoint for {replica}")


def direct_endpoint(cluster: BaseCluster, replica: str) -> Endpoint:
    rs = cluster.state.replicas[replica]
    return Endpoint(replica, rs.host, rs.port)


def create_key(policy: VCenterPolicy, where: str) -> str:
    r = policy.execute("create", None)
    if r.outcome != "ok" or r.value is None or not r.value.key:
        raise BenchError(f"could not create a key on {where}: {r.error}")
    return r.value.key


# ---- 1. proxy overhead ---------------------------------------------------------------


@dataclass
class PathSamples:
    latencies: list[float]
    busy_s: float
    round_rates: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "ops": len(self.latencies),
            "p50_ms": ms(pct(self.latencies, 50)),
            "p99_ms": ms(pct(self.latencies, 99)),
            "mean_ms": ms(statistics.fmean(self.latencies)),
            "ops_per_s": len(self.latencies) / self.busy_s,
            "round_ops_per_s": self.round_rates,
        }


def alternate(
    ops: dict[str, Callable[[], None]], rounds: int, per_round: int, warmup: int
) -> dict[str, PathSamples]:
    """Warm every path up, then time `rounds` blocks of `per_round` operations per path,
    alternating which path goes first (ABBA...) so that drift cancels out."""
    for op in ops.values():
        for _ in range(warmup):
            op()
    out = {name: PathSamples([], 0.0, []) for name in ops}
    names = list(ops)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            op = ops[name]
            samples = []
            gc.collect()
            gc.disable()
            try:
                t_block = time.perf_counter()
                for _ in range(per_round):
                    t = time.perf_counter()
                    op()
                    samples.append(time.perf_counter() - t)
                block = time.perf_counter() - t_block
            finally:
                gc.enable()
            out[name].latencies += samples
            out[name].busy_s += block
            out[name].round_rates.append(per_round / block)
    return out


def bench_proxy(
    cluster: BaseCluster, topo: Topology, prof: Profile, conf: str, section: str = "proxy overhead"
) -> tuple[list[Figure], dict[str, Any]]:
    tls = tls_of(cluster)
    paths = {
        "direct": direct_endpoint(cluster, "kms-a"),
        "proxy": endpoint_of(cluster, "vc-a", "kms-a"),
    }
    rt, ct = topo.response_timeout, topo.connect_timeout
    key = create_key(VCenterPolicy([paths["direct"]], tls, ct, rt, conf), "kms-a")
    raw: dict[str, Any] = {
        "key": key,
        "paths": {n: ep.address for n, ep in paths.items()},
        "rounds": prof.proxy_rounds,
        "warmup_per_path": prof.warmup,
    }
    figures: list[Figure] = []

    # (a) one long-lived PyKMIP connection per path
    with contextlib.ExitStack() as stack:
        pies = {}
        for name, ep in paths.items():
            pie = new_pie_client([ep.host], ep.port, tls.ca, tls.cert, tls.key, conf)
            pie.proxy.timeout = max(rt, 5.0)
            pie.open()
            stack.callback(pie.close)
            pies[name] = pie
        long = alternate(
            {n: (lambda p=p: p.get(key)) for n, p in pies.items()},
            prof.proxy_rounds,
            prof.long_ops,
            prof.warmup,
        )

    # (b) the vCenter policy: a fresh TLS connection per operation
    def per_op(policy: VCenterPolicy) -> Callable[[], None]:
        def op() -> None:
            r = policy.execute("get", key)
            if r.outcome != "ok":
                raise BenchError(f"Get through {policy.endpoints[0].address} failed: {r.error}")

        return op

    policies = {n: VCenterPolicy([ep], tls, ct, rt, conf) for n, ep in paths.items()}
    conn = alternate(
        {n: per_op(p) for n, p in policies.items()},
        prof.proxy_rounds,
        prof.per_op_ops,
        max(10, prof.warmup // 3),
    )

    for mode, label, res, per_round in (
        ("long_lived", "long-lived conn.", long, prof.long_ops),
        ("connection_per_op", "conn. per op (vcenter)", conn, prof.per_op_ops),
    ):
        d, p = res["direct"].summary(), res["proxy"].summary()
        round_ratios = [
            b / a for a, b in zip(d["round_ops_per_s"], p["round_ops_per_s"], strict=True)
        ]
        ratio = p["ops_per_s"] / d["ops_per_s"]
        raw[mode] = {
            "per_round": per_round,
            "direct": d,
            "proxy": p,
            "ratio_ops_per_s": ratio,
            "round_ratios": round_ratios,
            "round_ratio_median": statistics.median(round_ratios),
            "added_p50_ms": p["p50_ms"] - d["p50_ms"],
        }
        sec = f"{section}, {label}"
        figures += [
            Figure(sec, "Get p50 direct", d["p50_ms"], "ms"),
            Figure(sec, "Get p50 proxied", p["p50_ms"], "ms"),
            Figure(sec, "Get p99 direct", d["p99_ms"], "ms"),
            Figure(sec, "Get p99 proxied", p["p99_ms"], "ms"),
            Figure(sec, "ops/s direct", d["ops_per_s"], "ops/s"),
            Figure(sec, "ops/s proxied", p["ops_per_s"], "ops/s"),
            Figure(sec, "ops/s proxied / direct", ratio, "", PROXY_RATIO_MIN, ">=", "pooled"),
            Figure(
                sec,
                "ops/s proxied / direct",
                statistics.median(round_ratios),
                "",
                PROXY_RATIO_MIN,
                ">=",
                f"median of {len(round_ratios)} adjacent round pairs",
            ),
        ]
    return figures, raw


ECHO_SERVER = """
import socket, sys, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass
while True:
    conn, _ = srv.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP echo server in its own process (as a replica is), for raw round trips."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server is bound, or exits
        if not line.strip():
            raise BenchError(f"echo server exited with status {proc.wait(5)} before binding")
        yield "127.0.0.1", int(line)
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def bench_raw_rtt(cluster: LocalCluster, prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    """What Toxiproxy adds to one small request/response round trip, without KMIP."""
    payload = b"k" * ECHO_BYTES
    with echo_server() as (host, port), contextlib.ExitStack() as stack:
        cluster.api.create_proxy("bench-echo", "127.0.0.1:0", f"{host}:{port}")
        listen = cluster.api.proxies()["bench-echo"]["listen"]
        phost, pport = listen.rsplit(":", 1)
        socks = {}
        for name, addr in (("direct", (host, port)), ("proxy", (phost, int(pport)))):
            s = socket.create_connection(addr, timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stack.callback(s.close)
            socks[name] = s

        def ping(s: socket.socket) -> None:
            s.sendall(payload)
            got = 0
            while got < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    raise BenchError("echo connection closed")
                got += len(chunk)

        res = alternate(
            {n: (lambda s=s: ping(s)) for n, s in socks.items()},
            prof.proxy_rounds,
            prof.long_ops * 3,
            prof.warmup * 3,
        )
    d, p = res["direct"].summary(), res["proxy"].summary()
    raw = {"direct": d, "proxy": p, "added_p50_ms": p["p50_ms"] - d["p50_ms"]}
    sec = f"proxy overhead, raw TCP echo ({ECHO_BYTES} B)"
    figures = [
        Figure(sec, "round trip p50 direct", d["p50_ms"], "ms"),
        Figure(sec, "round trip p50 proxied", p["p50_ms"], "ms"),
        Figure(sec, "added by Toxiproxy per round trip (p50)", raw["added_p50_ms"], "ms"),
    ]
    return figures, raw


# ---- 2. failover precision -------------------------------------------------------------


def _connect(host: str, port: int, timeout: float) -> str:
    """'ok' or 'refused' (or the exception's name) for one TCP connect."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return type(e).__name__


def refused_connect_times(host: str, n: int) -> list[float]:
    """Durations of `n` TCP connects refused by the kernel (a bound, non-listening
    port on `host`), made the way the vCenter policy connects."""
    out = []
    with socket.socket() as holder:
        holder.bind((host, 0))  # bound, never listening: SYN is answered with RST
        port = holder.getsockname()[1]
        for _ in range(n):
            t = time.perf_counter()
            got = _connect(host, port, 1.0)
            out.append(time.perf_counter() - t)
            if got != "refused":
                raise BenchError(f"connect to closed port {host}:{port} gave {got}, not refused")
    return out


def _qualifies(c: Complete, first_outcome: str) -> bool:
    return (
        c.outcome == "ok"
        and c.served_by == "kms-b"
        and len(c.attempts) == 2
        and c.attempts[0].server == "kms-a"
        and c.attempts[0].outcome == first_outcome
    )


def _failover_figures(
    kind: str,
    ops: list[Complete],
    first_outcome: str,
    theoretical: float,
    components: dict[str, float],
) -> tuple[list[Figure], dict[str, Any]]:
    good = [c for c in ops if _qualifies(c, first_outcome)]
    rejected = [
        {
            "outcome": c.outcome,
            "served_by": c.served_by,
            "attempts": [(a.server, a.outcome, a.duration) for a in c.attempts],
        }
        for c in ops
        if not _qualifies(c, first_outcome)
    ]
    if not good:
        raise BenchError(
            f"{kind}: no operation failed over as expected "
            f"(first attempt {first_outcome} on kms-a, then ok on kms-b): {rejected[:3]}"
        )
    durations = [c.duration for c in good]
    excess = [d - theoretical for d in durations]
    tol = max(FAILOVER_REL_TOL * theoretical, FAILOVER_ABS_TOL_S)
    raw = {
        "ops": len(ops),
        "qualifying_ops": len(good),
        "rejected": rejected,
        "theoretical_s": theoretical,
        "components_s": components,
        "tolerance_s": tol,
        "durations_s": durations,
        "first_attempt_s": [c.attempts[0].duration for c in good],
        "second_attempt_s": [c.attempts[1].duration for c in good],
        "median_s": statistics.median(durations),
        "median_excess_s": statistics.median(excess),
        "max_excess_s": max(excess),
    }
    sec = f"failover, {kind} on kms-a"
    n = f"n={len(good)}" + (f", {len(rejected)} rejected" if rejected else "")
    figs = [
        Figure(sec, "theoretical minimum", ms(theoretical), "ms"),
        Figure(sec, "measured median", ms(raw["median_s"]), "ms", note=n),
        Figure(sec, "median excess", ms(raw["median_excess_s"]), "ms", ms(tol), "<="),
        Figure(sec, "max excess", ms(raw["max_excess_s"]), "ms", ms(tol), "<="),
    ]
    return figs, raw


def bench_failover(
    cluster: LocalCluster, topo: Topology, prof: Profile, conf: str
) -> tuple[list[Figure], dict[str, Any]]:
    tls = tls_of(cluster)
    rt, ct = topo.response_timeout, topo.connect_timeout
    ep_a = endpoint_of(cluster, "vc-a", "kms-a")
    ep_b = endpoint_of(cluster, "vc-a", "kms-b")
    history = History()
    only_b = FailoverClient("bench-b", VCenterPolicy([ep_b], tls, ct, rt, conf), history)
    created = only_b.create()
    if created.outcome != "ok" or not created.key:
        raise BenchError(f"could not create a key on kms-b: {created.error}")
    key = created.key  # lives on kms-b only (replication: none)

    def plain_op() -> float:
        c = only_b.get(key)
        if c.outcome != "ok":
            raise BenchError(f"plain Get on kms-b failed: {c.error}")
        return c.duration

    for _ in range(10):  # warm up
        plain_op()
    refused = refused_connect_times(ep_a.host, prof.baseline_samples)
    plain = [plain_op() for _ in range(prof.baseline_samples)]
    refused_med, plain_med = statistics.median(refused), statistics.median(plain)
    vc = FailoverClient(
        "vc-a", VCenterPolicy(cluster.state.endpoints("vc-a"), tls, ct, rt, conf), history
    )
    raw: dict[str, Any] = {
        "time_scale": topo.time_scale,
        "response_timeout_s": rt,
        "connect_timeout_s": ct,
        "refused_connect_s": {"median": refused_med, "max": max(refused)},
        "plain_op_kms_b_s": {"median": plain_med, "p99": pct(plain, 99), "max": max(plain)},
    }
    figures: list[Figure] = []

    with make_fault("refuse", cluster, "kms-a", history):
        wait_until(
            lambda: _connect(ep_a.host, ep_a.port, 1.0) == "refused",
            10,
            f"refuse to take effect on {ep_a.address}",
        )
        refused_ops = [vc.get(key) for _ in range(prof.refuse_reps)]
    wait_until(
        lambda: _connect(ep_a.host, ep_a.port, 1.0) == "ok",
        10,
        f"{ep_a.address} to accept again after refuse",
    )
    figs, raw["refuse"] = _failover_figures(
        "refuse",
        refused_ops,
        "refused",
        refused_med + plain_med,
        {"refused_connect": refused_med, "tls_session_and_get_kms_b": plain_med},
    )
    figures += figs

    with make_fault("blackhole", cluster, "kms-a", history):
        bh_ops = [vc.get(key) for _ in range(prof.blackhole_reps)]
    figs, raw["blackhole"] = _failover_figures(
        "blackhole",
        bh_ops,
        "timeout",
        rt + plain_med,
        {"response_timeout": rt, "tls_session_and_get_kms_b": plain_med},
    )
    figures += figs
    return figures, raw


# ---- 3. start-up, stop, memory -----------------------------------------------------------


def six_replica_topology() -> tuple[Topology, str]:
    path = TOPOLOGIES / "two-sites.yaml"
    if path.exists():
        return load_topology(path), str(path.relative_to(REPO))
    return parse_topology(TWO_SITES_FALLBACK, "two-sites (built in bench/run.py)"), "built-in"


def startup_case(
    topo: Topology, source: str, runs_n: int, sec: str
) -> tuple[list[Figure], dict[str, Any]]:
    """Create+start to ready, stop, and RSS at ready, `runs_n` times."""
    n = len(topo.replicas)
    runs = []
    for _ in range(runs_n):
        with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
            t0 = time.perf_counter()
            cluster = LocalCluster.create(topo, Path(d) / "state")
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
    replica_rss = [m["rss_mb"] for name, m in peak.items() if name != "toxiproxy"]
    procs = "/".join(
        sorted({str(m["processes"]) for name, m in peak.items() if name != "toxiproxy"})
    )
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
               f"{procs} processes each"),
        Figure(sec, "RSS Toxiproxy", peak["toxiproxy"]["rss_mb"], "MB",
               RSS_TOXIPROXY_TARGET_MB, "<="),
        Figure(sec, "RSS total", max(totals), "MB",
               n * RSS_PER_REPLICA_TARGET_MB + RSS_TOXIPROXY_TARGET_MB, "<=",
               f"max of {len(runs)}"),
    ]  # fmt: skip
    return figures, raw


def bench_startup(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    six, six_source = six_replica_topology()
    cases = [
        (load_topology(TOPOLOGIES / "one-site.yaml"), "scenarios/topologies/one-site.yaml"),
        (six, six_source),
    ]
    figures: list[Figure] = []
    raw: dict[str, Any] = {}
    for topo, source in cases:
        n = len(topo.replicas)
        figs, raw[f"{n}_replicas"] = startup_case(
            topo, source, prof.startup_runs, f"start-up, {n} replicas"
        )
        figures += figs
    return figures, raw


# ---- 4. replication ---------------------------------------------------------------------

ASYNC_TOPOLOGY = "scenarios/topologies/two-sites-async.yaml"
LAG_RATE = 50.0  # Creates per second for the async lag (brief)
LAG_REFERENCE_RATE = 10.0  # well below what the agent sustains: its own delay
LAG_WRITERS = 4  # connections sharing that schedule, so one slow Create delays no other
PARTITION_WRITERS = 2  # connections per site client during the partition
WATCH_POLL_S = 0.010  # least pause between two passes of the visibility watcher
CONVERGE_DEADLINE_S = 120.0
CONVERGE_POLL_MIN_S = 0.1
APPLIED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* applied (\d+) object")


@dataclass
class Created:
    client: str
    index: int
    due: float  # perf_counter: when the schedule wanted it
    start: float
    ack: float  # perf_counter: the Create's response was read
    outcome: str
    served_by: str | None
    key: str | None
    error: str


def paced_creates(
    client: str,
    policy_factory: Callable[[], VCenterPolicy],
    n: int,
    rate: float,
    workers: int,
    on_ack: Callable[[Created], None] | None = None,
    abort: threading.Event | None = None,
) -> list[Created]:
    """`n` Creates through `client`, the i-th due at start + i / rate, shared by `workers`
    connections (threads) so that a slow Create does not hold the next one back."""
    abort = abort or threading.Event()
    lock = threading.Lock()
    claim = iter(range(n))
    out: list[Created] = []
    errors: list[BaseException] = []
    t0 = time.perf_counter()

    def work() -> None:
        policy = policy_factory()
        try:
            while not abort.is_set():
                with lock:
                    i = next(claim, None)
                if i is None:
                    return
                due = t0 + i / rate
                if abort.wait(max(0.0, due - time.perf_counter())):  # pacing to the rate
                    return
                start = time.perf_counter()
                r = policy.execute("create", None)
                ack = time.perf_counter()
                key = r.value.key if r.outcome == "ok" and r.value and r.value.key else None
                c = Created(client, i, due, start, ack, r.outcome, r.served_by, key, r.error)
                if on_ack is not None and key:
                    on_ack(c)
                with lock:
                    out.append(c)
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
            errors.append(e)
            abort.set()
        finally:
            policy.close()

    threads = [
        threading.Thread(target=work, daemon=True, name=f"bench-{client}-{w}")
        for w in range(workers)
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        abort.set()
        raise
    if errors:
        raise BenchError(f"{client}: a writer failed: {errors[0]!r}") from errors[0]
    return sorted(out, key=lambda c: c.index)


def creates_summary(created: list[Created]) -> dict[str, Any]:
    ok = [c for c in created if c.key]
    span = max(c.ack for c in created) - min(c.due for c in created) if created else 0.0
    lateness = [c.start - c.due for c in created]
    return {
        "asked": len(created),
        "ok": len(ok),
        "failed": [(c.index, c.outcome, c.error) for c in created if not c.key],
        "served_by": {r: sum(1 for c in ok if c.served_by == r) for r in {c.served_by for c in ok}},
        "span_s": span,
        "rate_per_s": len(created) / span if span else 0.0,
        "create_p50_ms": ms(pct([c.ack - c.start for c in created], 50)) if created else 0.0,
        "create_p99_ms": ms(pct([c.ack - c.start for c in created], 99)) if created else 0.0,
        "start_late_max_ms": ms(max(lateness)) if lateness else 0.0,
    }


class Visibility:
    """When keys become readable on one replica: from its own thread, over one long-lived
    direct KMIP connection, pass after pass, look for every expected key not seen yet —
    with one Locate (every id the replica holds) or one Get per pending key, whichever
    the durations measured so far make cheaper: a Locate costs more as the replica
    holds more objects, the Gets as more keys are pending. Between passes it pauses
    `poll_s`, or as long as the pass took if longer, so that it keeps the replica
    busy at most half the time."""

    def __init__(self, ep: Endpoint, tls: TlsFiles, conf: str, poll_s: float) -> None:
        self.ep, self.tls, self.conf, self.poll_s = ep, tls, conf, poll_s
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # uid -> when last missed (first: its ack)
        self.acked: dict[str, float] = {}
        self.seen: dict[str, tuple[float, float]] = {}  # uid -> (last miss sent, hit read)
        self.passes: list[tuple[str, int, float]] = []  # (locate|get, pending, duration)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-watch")

    def expect(self, uid: str, acked: float) -> None:
        with self._lock:
            self.acked[uid] = acked
            self._pending[uid] = acked

    def all_seen(self, uids: list[str]) -> bool:
        if self.error is not None:
            raise BenchError(f"watching {self.ep.replica} failed: {self.error!r}")
        with self._lock:
            return all(u in self.seen for u in uids)

    def _found(self, uid: str, hit: bool, sent: float, read: float) -> None:
        with self._lock:
            if uid not in self._pending:
                return
            if hit:
                self.seen[uid] = (self._pending.pop(uid), read)
            else:
                self._pending[uid] = sent

    def _run(self) -> None:
        from kmip.pie.exceptions import KmipOperationFailure

        try:
            pie = new_pie_client(
                [self.ep.host], self.ep.port, self.tls.ca, self.tls.cert, self.tls.key, self.conf
            )
            pie.proxy.timeout = 30.0
            pie.open()
            try:
                t = time.perf_counter()
                pie.locate()
                locate_s, get_s = time.perf_counter() - t, 0.0  # estimates (moving averages)
                while not self._stop.is_set():
                    with self._lock:
                        todo = list(self._pending)
                    t_pass = time.perf_counter()
                    if todo and len(todo) * (get_s or 0.003) > locate_s:
                        listed = {str(u) for u in pie.locate()}
                        read = time.perf_counter()
                        for uid in todo:
                            self._found(uid, uid in listed, t_pass, read)
                        locate_s = 0.7 * locate_s + 0.3 * (read - t_pass)
                        self.passes.append(("locate", len(todo), read - t_pass))
                    elif todo:
                        for uid in todo:
                            sent = time.perf_counter()
                            try:
                                pie.get(uid)
                                hit = True
                            except KmipOperationFailure:  # not there (yet)
                                hit = False
                            read = time.perf_counter()
                            self._found(uid, hit, sent, read)
                            get_s = 0.7 * get_s + 0.3 * (read - sent) if get_s else read - sent
                        self.passes.append(("get", len(todo), time.perf_counter() - t_pass))
                    self._stop.wait(max(self.poll_s, time.perf_counter() - t_pass))
            finally:
                with contextlib.suppress(Exception):
                    pie.close()
        except BaseException as e:  # noqa: BLE001 - reported by all_seen
            self.error = e

    def __enter__(self) -> Visibility:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def locate_all(cluster: LocalCluster, replica: str, conf: str) -> tuple[set[str], float]:
    """The ids one replica lists with PyKMIP's `locate()` (no maximum_items), directly;
    and how long that Locate took."""
    ep, tls = direct_endpoint(cluster, replica), tls_of(cluster)
    pie = new_pie_client([ep.host], ep.port, tls.ca, tls.cert, tls.key, conf)
    pie.proxy.timeout = 30.0
    pie.open()
    try:
        t = time.perf_counter()
        uids = {str(u) for u in pie.locate()}
        return uids, time.perf_counter() - t
    finally:
        with contextlib.suppress(Exception):
            pie.close()


def lag_run(
    cluster: LocalCluster, topo: Topology, conf: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Creates at `rate` for `seconds` on kms-a (through vc-a, whose first replica it
    is); when each key is first readable on kms-d."""
    tls = tls_of(cluster)
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
    tls = tls_of(cluster)
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
    replica_rss = [m["rss_mb"] for name, m in mem.items() if name != "toxiproxy"]
    replica_hwm = [m["hwm_mb"] for name, m in mem.items() if name != "toxiproxy"]
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
        Figure(sec, "peak RSS per replica (max)", max(replica_hwm), "MB",
               RSS_PER_REPLICA_TARGET_MB, "<=", "VmHWM summed over its processes"),
        Figure(sec, f"RSS total with {len(acked)} keys", total_rss, "MB",
               n * RSS_PER_REPLICA_TARGET_MB + RSS_TOXIPROXY_TARGET_MB, "<=",
               "after the audit"),
    ]  # fmt: skip
    return figures, raw


def bench_replication(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    topo = load_topology(REPO / ASYNC_TOPOLOGY)
    if topo.replication_profile != "async":
        raise BenchError(f"{ASYNC_TOPOLOGY}: replication profile is not async")
    raw: dict[str, Any] = {"topology": ASYNC_TOPOLOGY, "interval_ms": topo.replication_interval_ms}
    figures: list[Figure] = []
    with running_cluster(topo) as (cluster, tmp):
        conf = empty_client_config(tmp / "bench-clients")
        fig, raw["lag"] = bench_lag(cluster, topo, prof, conf)
        figures += fig
    with running_cluster(topo) as (cluster, tmp):
        conf = empty_client_config(tmp / "bench-clients")
        fig, raw["partition"] = bench_partition(cluster, topo, prof, conf)
        figures += fig
    fig, raw["startup"] = startup_case(
        topo, ASYNC_TOPOLOGY, prof.startup_runs, "replication (async), start-up, 6 replicas"
    )
    figures += fig
    return figures, raw


# ---- 5. docker backend ---------------------------------------------------------------------

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


@contextlib.contextmanager
def running_docker_cluster(topo: Topology) -> Iterator[tuple[DockerCluster, Path]]:
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
        cluster = DockerCluster.create(topo, Path(d) / "state")
        with cluster:
            yield cluster, Path(d)


def ready_run(backend: str, topo: Topology) -> dict[str, Any]:
    """One cluster: `start()` call to return, memory at ready, `stop()`, leftovers."""
    cls: type[BaseCluster] = DockerCluster if backend == "docker" else LocalCluster
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
        cluster = cls.create(topo, Path(d) / "state")
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
    local = [x for m in lmems for r, x in m.items() if r != "toxiproxy"]
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
               "MB", n * RSS_PER_REPLICA_TARGET_MB + RSS_TOXIPROXY_TARGET_MB, "<="),
    ]  # fmt: skip
    return figures, raw


def bench_docker_proxy(prof: Profile) -> tuple[list[Figure], dict[str, Any]]:
    """Section 1's proxy overhead, on a docker one-site cluster: direct = the holder's
    published port, proxied = the Toxiproxy container's published link port."""
    topo = load_topology(TOPOLOGIES / "one-site.yaml").with_time_scale(prof.time_scale)
    with running_docker_cluster(topo) as (cluster, tmp):
        conf = empty_client_config(tmp / "bench-clients")
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


# ---- main -----------------------------------------------------------------------------------


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every cluster context


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, time_scale 0.02")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    ap.add_argument(
        "--docker-cold",
        action="store_true",
        help="also time a cold image build (untags kmschaos/base:bookworm, empty "
        "KMSCHAOS_CACHE, no layer cache; about a minute)",
    )
    ap.add_argument("--no-docker", action="store_true", help="skip the docker section")
    args = ap.parse_args(argv)
    prof = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, _sigterm)

    t_start = time.perf_counter()
    doc: dict[str, Any] = {
        "profile": asdict(prof),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_facts(),
        "noise_before": load_and_runs(),
    }
    figures: list[Figure] = []

    fig, doc["startup"] = bench_startup(prof)
    startup_figs = fig
    topo = load_topology(TOPOLOGIES / "one-site.yaml").with_time_scale(prof.time_scale)
    with running_cluster(topo) as (cluster, tmp):
        conf = empty_client_config(tmp / "bench-clients")
        fig, doc["proxy"] = bench_proxy(cluster, topo, prof, conf)
        figures += fig
        fig, doc["proxy"]["raw_tcp_echo"] = bench_raw_rtt(cluster, prof)
        figures += fig
        fig, doc["failover"] = bench_failover(cluster, topo, prof, conf)
        figures += fig
    figures += startup_figs
    fig, doc["replication"] = bench_replication(prof)
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

    doc["noise_after"] = load_and_runs()
    doc["elapsed_s"] = time.perf_counter() - t_start
    doc["figures"] = [f.to_dict() for f in figures]
    missed = [
        f"{f.section}: {f.name}" + (f" ({f.note})" if f.note else "")
        for f in figures
        if f.met is False
    ]
    doc["targets_missed"] = missed

    m = doc["machine"]
    header = [
        f"# kmschaos benchmarks ({prof.name})",
        "",
        f"{doc['started']}, commit {m.get('git_commit', '?')}, {m['cpu_count']} CPUs "
        f"({m.get('cpu_model', '?')}), Python {m['python']}, "
        f"Toxiproxy {m['toxiproxy']['version']}, PyKMIP {m.get('pykmip', '?')}; "
        f"failover at time_scale {prof.time_scale} (response timeout "
        f"{topo.response_timeout:g} s); replication on {ASYNC_TOPOLOGY} (async, interval "
        f"{doc['replication']['interval_ms']:g} ms); load average before/after "
        f"{doc['noise_before']['loadavg'][0]:.2f}/{doc['noise_after']['loadavg'][0]:.2f}; "
        f"run took {doc['elapsed_s']:.0f} s.",
    ]
    if skipped is not None:
        header.append(f"\n**Docker section skipped:** {skipped}")
    else:
        f = doc["docker"]["facts"]
        cold = "with" if args.docker_cold else "without"
        header.append(
            f"\nDocker: engine {f['engine']} (cgroup v{f['cgroup_version']}, "
            f"{f['storage_driver']}, userland proxy {'on' if f['userland_proxy'] else 'off'}), "
            f"images {f['kms_image']} and {f['toxiproxy_image']}; {cold} the cold build "
            "(`--docker-cold`)."
        )
    if docker_error is not None:
        header.append(f"\n**Docker section failed:** {docker_error}")
    busy = sorted(
        set(doc["noise_before"]["other_kmschaos_runs"])
        | set(doc["noise_after"]["other_kmschaos_runs"])
    )
    if busy:
        header.append(
            f"\n**Noise:** other kmschaos runs were live on this machine ({', '.join(busy)}); "
            "ratios and latencies are less reliable."
        )
    table = markdown(figures, header)
    if missed:
        table += "\nTargets missed: " + "; ".join(missed) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "latest.md").write_text(table)
    print(table)
    return 1 if docker_error is not None else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        why = e or "SIGINT"
        print(f"bench/run.py: interrupted ({why}); every cluster was stopped", file=sys.stderr)
        sys.exit(130)
