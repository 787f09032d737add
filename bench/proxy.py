"""Section 1, proxy overhead: what the harness's Toxiproxy link costs a client.

The same client code reaches kms-a directly and through client vc-a's link, with KMIP
Get of one key, on one long-lived connection and with a connection per operation (the
vCenter policy). Direct and proxied blocks alternate (ABBA…) so that drift cancels.
Target: ops/s proxied / direct ≥ `PROXY_RATIO_MIN`, judged on the median of independent
repetitions (one run's figure moves with the machine's other work). Raw TCP echo round
trips, direct and through a Toxiproxy proxy of the same echo server, show the proxy's
cost without KMIP and TLS; `bench.proxy_breakdown` where a proxied connection's time
goes. Section 5 runs `bench_proxy` again on a docker cluster.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import BenchError
from bench.clusters import create_key, direct_endpoint, endpoint_of, pie_connection
from bench.figures import PROXY_RATIO_MIN, Figure, ms, pct
from bench.profiles import Profile
from bench.proxy_breakdown import bench_breakdown
from harness.client.walker import VCenterPolicy
from harness.cluster.base import BaseCluster
from harness.cluster.local import LocalCluster
from harness.topology import Topology

ECHO_BYTES = 256  # about a KMIP Get response for an AES-256 key


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


def bench_local_proxy(
    cluster: LocalCluster, topo: Topology, prof: Profile, conf: str
) -> tuple[list[Figure], dict[str, Any]]:
    """Section 1 on a local cluster: the ratios, the raw TCP echo, the breakdown."""
    figures, raw = bench_proxy(cluster, topo, prof, conf)
    fig, echo = bench_raw_rtt(cluster, prof)
    figures += fig
    fig, raw["breakdown"] = bench_breakdown(
        cluster,
        topo,
        prof,
        conf,
        echo["added_p50_ms"],
        echo["new_connection"]["added_beyond_round_trip_ms"],
    )
    raw["raw_tcp_echo"] = echo
    return figures + fig, raw


def merged(parts: list[PathSamples]) -> PathSamples:
    """The samples of several repetitions as one."""
    return PathSamples(
        [x for p in parts for x in p.latencies],
        sum(p.busy_s for p in parts),
        [x for p in parts for x in p.round_rates],
    )


def throughput_ratio(res: dict[str, PathSamples]) -> float:
    """ops/s proxied / ops/s direct (operations over the time spent in the blocks)."""
    d, p = res["direct"], res["proxy"]
    return (len(p.latencies) / p.busy_s) / (len(d.latencies) / d.busy_s)


def bench_proxy(
    cluster: BaseCluster, topo: Topology, prof: Profile, conf: str, section: str = "proxy overhead"
) -> tuple[list[Figure], dict[str, Any]]:
    """`prof.proxy_reps` independent repetitions (fresh connections, own warm-up) of both
    modes' ABBA rounds, the modes taking turns; the target is judged on the median of
    the repetitions' ratios, and their min and max say how far it moves."""
    tls = cluster.client_tls()
    paths = {
        "direct": direct_endpoint(cluster, "kms-a"),
        "proxy": endpoint_of(cluster, "vc-a", "kms-a"),
    }
    rt, ct = topo.response_timeout, topo.connect_timeout
    key = create_key(VCenterPolicy([paths["direct"]], tls, ct, rt, conf), "kms-a")
    raw: dict[str, Any] = {
        "key": key,
        "paths": {n: ep.address for n, ep in paths.items()},
        "repetitions": prof.proxy_reps,
        "rounds": prof.proxy_rounds,
        "warmup_per_path": prof.warmup,
    }

    # (b) the vCenter policy: a fresh TLS connection per operation
    def per_op(policy: VCenterPolicy) -> Callable[[], None]:
        def op() -> None:
            r = policy.execute("get", key)
            if r.outcome != "ok":
                raise BenchError(f"Get through {policy.endpoints[0].address} failed: {r.error}")

        return op

    reps: dict[str, list[dict[str, PathSamples]]] = {"long_lived": [], "connection_per_op": []}
    for _ in range(prof.proxy_reps):
        # (a) one long-lived PyKMIP connection per path
        with contextlib.ExitStack() as stack:
            pies = {
                name: stack.enter_context(pie_connection(ep, tls, conf, max(rt, 5.0)))
                for name, ep in paths.items()
            }
            reps["long_lived"].append(
                alternate(
                    {n: functools.partial(p.get, key) for n, p in pies.items()},
                    prof.proxy_rounds,
                    prof.long_ops,
                    prof.warmup,
                )
            )
        policies = {n: VCenterPolicy([ep], tls, ct, rt, conf) for n, ep in paths.items()}
        reps["connection_per_op"].append(
            alternate(
                {n: per_op(p) for n, p in policies.items()},
                prof.proxy_rounds,
                prof.per_op_ops,
                max(10, prof.warmup // 3),
            )
        )
        for policy in policies.values():
            policy.close()

    figures: list[Figure] = []
    for mode, label, per_round in (
        ("long_lived", "long-lived conn.", prof.long_ops),
        ("connection_per_op", "conn. per op (vcenter)", prof.per_op_ops),
    ):
        res = {n: merged([r[n] for r in reps[mode]]) for n in paths}
        d, p = res["direct"].summary(), res["proxy"].summary()
        rep_ratios = [throughput_ratio(r) for r in reps[mode]]
        ratio = p["ops_per_s"] / d["ops_per_s"]
        median = statistics.median(rep_ratios)
        raw[mode] = {
            "per_round": per_round,
            "direct": d,
            "proxy": p,
            "ratio_ops_per_s": ratio,
            "repetition_ratios": rep_ratios,
            "repetition_ratio_median": median,
            "added_p50_ms": p["p50_ms"] - d["p50_ms"],
        }
        sec = f"{section}, {label}"
        n = len(rep_ratios)
        spread = f"min {min(rep_ratios):.3f}, max {max(rep_ratios):.3f}"
        figures += [
            Figure(sec, "Get p50 direct", d["p50_ms"], "ms"),
            Figure(sec, "Get p50 proxied", p["p50_ms"], "ms"),
            Figure(sec, "Get p99 direct", d["p99_ms"], "ms"),
            Figure(sec, "Get p99 proxied", p["p99_ms"], "ms"),
            Figure(sec, "ops/s direct", d["ops_per_s"], "ops/s"),
            Figure(sec, "ops/s proxied", p["ops_per_s"], "ops/s"),
            Figure(sec, "ops/s proxied / direct", ratio, "", note=f"pooled over {n} repetitions"),
            Figure(
                sec,
                "ops/s proxied / direct",
                median,
                "",
                PROXY_RATIO_MIN,
                ">=",
                f"median of {n} repetitions of {prof.proxy_rounds} ABBA rounds; {spread}",
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
    """What Toxiproxy adds to one small request/response round trip, without KMIP, on an
    open connection and on a new one (connect, one round trip, close): Toxiproxy accepts
    at once, then dials the upstream before it forwards the first bytes."""
    payload = b"k" * ECHO_BYTES
    rounds = prof.proxy_rounds * prof.proxy_reps

    def ping(s: socket.socket) -> None:
        s.sendall(payload)
        got = 0
        while got < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError("echo connection closed")
            got += len(chunk)

    def fresh(addr: tuple[str, int]) -> None:
        with socket.create_connection(addr, timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ping(s)

    with echo_server() as (host, port), contextlib.ExitStack() as stack:
        cluster.api.create_proxy("bench-echo", "127.0.0.1:0", f"{host}:{port}")
        listen = cluster.api.proxies()["bench-echo"]["listen"]
        phost, pport = listen.rsplit(":", 1)
        addrs = {"direct": (host, port), "proxy": (phost, int(pport))}
        socks = {}
        for name, addr in addrs.items():
            s = socket.create_connection(addr, timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stack.callback(s.close)
            socks[name] = s
        res = alternate(
            {n: functools.partial(ping, s) for n, s in socks.items()},
            rounds,
            prof.long_ops * 3,
            prof.warmup * 3,
        )
        new = alternate(
            {n: functools.partial(fresh, a) for n, a in addrs.items()},
            rounds,
            prof.per_op_ops * 2,
            prof.warmup,
        )
    d, p = res["direct"].summary(), res["proxy"].summary()
    nd, np_ = new["direct"].summary(), new["proxy"].summary()
    added = p["p50_ms"] - d["p50_ms"]
    added_new = np_["p50_ms"] - nd["p50_ms"] - added
    raw = {
        "direct": d,
        "proxy": p,
        "added_p50_ms": added,
        "new_connection": {"direct": nd, "proxy": np_, "added_beyond_round_trip_ms": added_new},
    }
    sec = f"proxy overhead, raw TCP echo ({ECHO_BYTES} B)"
    figures = [
        Figure(sec, "round trip p50 direct", d["p50_ms"], "ms"),
        Figure(sec, "round trip p50 proxied", p["p50_ms"], "ms"),
        Figure(sec, "added by Toxiproxy per round trip (p50)", added, "ms"),
        Figure(sec, "connect + round trip + close p50 direct", nd["p50_ms"], "ms"),
        Figure(sec, "connect + round trip + close p50 proxied", np_["p50_ms"], "ms"),
        Figure(
            sec,
            "added by Toxiproxy per new connection (p50)",
            added_new,
            "ms",
            note="beyond its round trip: accept, upstream dial, link set-up",
        ),
    ]
    return figures, raw
