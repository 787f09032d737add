"""kmschaos benchmarks: proxy overhead, failover precision, start-up / stop and memory.

    .venv/bin/python bench/run.py [--quick]

Writes ``bench/results/latest.json`` and ``bench/results/latest.md`` and prints the
table. Every figure is reported with its target and the ratio against it; see
``bench/README.md`` for what each number means.

No sleeps: every wait polls a condition with a deadline, and every cluster is stopped
by a context manager, on error and on SIGTERM too.
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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's harness, whatever the venv points at

from harness import registry  # noqa: E402
from harness.client.failover_client import FailoverClient  # noqa: E402
from harness.client.operations import empty_client_config, new_pie_client  # noqa: E402
from harness.client.policies import TlsFiles, VCenterPolicy  # noqa: E402
from harness.client.transport import Endpoint  # noqa: E402
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


FULL = Profile("full", 40, 90, 25, 50, 20, 3, 0.05, 40, 3)
QUICK = Profile("quick", 12, 60, 12, 30, 10, 3, 0.02, 20, 3)


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


def memory_snapshot(cluster: LocalCluster) -> dict[str, Any]:
    """Sum of VmRSS (and VmHWM) per replica process group and for Toxiproxy."""
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
        }
    return out


# ---- clusters -----------------------------------------------------------------------


@contextlib.contextmanager
def running_cluster(topo: Topology) -> Iterator[tuple[LocalCluster, Path]]:
    with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
        cluster = LocalCluster.create(topo, Path(d) / "state")
        with cluster:
            yield cluster, Path(d)


def tls_of(cluster: LocalCluster) -> TlsFiles:
    return cluster.client_tls()


def endpoint_of(cluster: LocalCluster, client: str, replica: str) -> Endpoint:
    for ep in cluster.state.endpoints(client):
        if ep.replica == replica:
            return ep
    raise BenchError(f"client {client} has no endpoint for {replica}")


def direct_endpoint(cluster: LocalCluster, replica: str) -> Endpoint:
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
    cluster: LocalCluster, topo: Topology, prof: Profile, conf: str
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
        sec = f"proxy overhead, {label}"
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
        runs = []
        for _ in range(prof.startup_runs):
            with tempfile.TemporaryDirectory(prefix="kmschaos-bench-") as d:
                t0 = time.perf_counter()
                cluster = LocalCluster.create(topo, Path(d) / "state")
                with cluster:
                    t_ready = time.perf_counter()
                    mem = memory_snapshot(cluster)
                    run_id = cluster.state.run_id
                    t1 = time.perf_counter()
                    cluster.stop()
                    t_stop = time.perf_counter()
                leftovers = registry.labelled_processes(run_id)
                runs.append(
                    {
                        "start_s": t_ready - t0,
                        "stop_s": t_stop - t1,
                        "memory": mem,
                        "leftover_processes": sorted(leftovers),
                    }
                )
        starts = [r["start_s"] for r in runs]
        stops = [r["stop_s"] for r in runs]
        totals = [sum(m["rss_mb"] for m in r["memory"].values()) for r in runs]
        peak = runs[totals.index(max(totals))]["memory"]
        replica_rss = [m["rss_mb"] for name, m in peak.items() if name != "toxiproxy"]
        procs = "/".join(
            sorted({str(m["processes"]) for name, m in peak.items() if name != "toxiproxy"})
        )
        raw[f"{n}_replicas"] = {
            "topology": source,
            "links": n * len(topo.clients),
            "runs": runs,
            "start_median_s": statistics.median(starts),
            "stop_median_s": statistics.median(stops),
            "rss_total_peak_mb": max(totals),
            "rss_at_peak_run": peak,
        }
        sec = f"start-up, {n} replicas"
        runs_note = f"median of {len(runs)}"
        figures += [
            Figure(sec, "create+start to ready", statistics.median(starts), "s",
                   STARTUP_TARGETS_S.get(n), "<=", runs_note),
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
        for r in runs:
            if r["leftover_processes"]:
                raise BenchError(
                    f"processes of a stopped cluster still run: {r['leftover_processes']}"
                )
    return figures, raw


# ---- main -----------------------------------------------------------------------------------


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every cluster context


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, time_scale 0.02")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder")
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
        f"{topo.response_timeout:g} s); load average before/after "
        f"{doc['noise_before']['loadavg'][0]:.2f}/{doc['noise_after']['loadavg'][0]:.2f}; "
        f"run took {doc['elapsed_s']:.0f} s.",
    ]
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
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        why = e or "SIGINT"
        print(f"bench/run.py: interrupted ({why}); every cluster was stopped", file=sys.stderr)
        sys.exit(130)
