"""Section 1, proxy overhead: what the harness's Toxiproxy link costs a client.

The same client code reaches kms-a directly and through client vc-a's link, with KMIP
Get of one key, on one long-lived connection and with a connection per operation (the
vCenter policy). Direct and proxied blocks alternate (ABBA…) so that drift cancels.
Target: ops/s proxied / direct ≥ `PROXY_RATIO_MIN`. Raw TCP echo round trips, direct
and through a Toxiproxy proxy of the same echo server, show the proxy's cost without
KMIP and TLS. Section 5 runs `bench_proxy` again on a docker cluster.
"""

from __future__ import annotations

import contextlib
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


def bench_proxy(
    cluster: BaseCluster, topo: Topology, prof: Profile, conf: str, section: str = "proxy overhead"
) -> tuple[list[Figure], dict[str, Any]]:
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
        "rounds": prof.proxy_rounds,
        "warmup_per_path": prof.warmup,
    }
    figures: list[Figure] = []

    # (a) one long-lived PyKMIP connection per path
    with contextlib.ExitStack() as stack:
        pies = {
            name: stack.enter_context(pie_connection(ep, tls, conf, max(rt, 5.0)))
            for name, ep in paths.items()
        }
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
