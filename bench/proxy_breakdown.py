"""Section 1, where the proxied time goes: the phases of a connection per operation, and
the CPU each process spends per operation.

Each new connection to kms-a, directly and through client vc-a's link, goes through the
vCenter policy's phases, timed apart with a plain socket and the harness's client TLS
context (`client_context`, what `connect_tls` wraps with): TCP connect, TLS handshake,
KMIP Get on the new connection (PyKMIP's encoding over that socket, as the walker sends
it), close. Toxiproxy accepts the TCP connection itself and only then dials the replica,
so a proxied connect returns before the upstream connection exists: the dial (and
setting up the link) delays the handshake's first round trip.

    client ──connect──> Toxiproxy (accept; log; dial kms-a; start the link) ──> kms-a
           ──TLS 1.2 handshake: 2 round trips──> ──Get: 1──> close

Over the same blocks, the CPU time per operation of the client's thread, of kms-a's
processes and of Toxiproxy. Client and replica mostly take turns (request, answer), so
an operation's wall time is close to the sum of their CPU times: Toxiproxy's CPU is
added to it, less what finds an idle CPU meanwhile. The same for Gets on one long-lived
connection per path.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.clusters import create_key, direct_endpoint, endpoint_of, pie_connection
from bench.figures import Figure, ms, pct
from bench.machine import cpu_seconds, process_tree
from bench.profiles import Profile
from harness.client.operations import new_pie_client, perform
from harness.client.transport import Endpoint, client_context
from harness.client.walker import VCenterPolicy
from harness.cluster.local import LocalCluster
from harness.topology import Topology

PHASES = ("connect", "handshake", "get", "close")
ROUND_TRIPS = 3  # through the proxy per connection: TLS 1.2 full handshake 2, Get 1
BLOCK = 10  # connections per block
TOXIPROXY_ENV = ("LOG_LEVEL", "GOMAXPROCS")


def toxiproxy_settings(pid: int) -> dict[str, str]:
    """The environment variables that change Toxiproxy's cost, as the server got them."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    pairs = dict(e.decode(errors="replace").split("=", 1) for e in env if b"=" in e)
    return {k: pairs.get(k, "unset") for k in TOXIPROXY_ENV}


class CpuMeter:
    """CPU seconds spent by the client's thread, kms-a's processes and Toxiproxy."""

    def __init__(self, cluster: LocalCluster, replica: str) -> None:
        rs, st = cluster.state.replicas[replica], cluster.state
        if not rs.pid or not st.toxiproxy_pid:
            raise BenchError(f"{replica} or Toxiproxy has no pid in a ready cluster")
        self.replica = sorted(process_tree(rs.pid))
        self.toxiproxy = [st.toxiproxy_pid]

    def read(self) -> tuple[float, float, float]:
        return time.thread_time(), cpu_seconds(self.replica), cpu_seconds(self.toxiproxy)


def timed_blocks(
    ops: dict[str, Callable[[], list[float]]], rounds: int, per_round: int, meter: CpuMeter
) -> dict[str, dict[str, Any]]:
    """ABBA blocks of `per_round` calls per path (GC off inside a block); each call
    returns its own timings. Per path: every call's timings, the blocks' wall time and
    the CPU time (client, replica, Toxiproxy) spent during them."""
    out: dict[str, dict[str, Any]] = {
        n: {"samples": [], "wall_s": 0.0, "cpu_s": [0.0, 0.0, 0.0]} for n in ops
    }
    names = list(ops)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            acc = out[name]
            gc.collect()
            gc.disable()
            try:
                c0, t0 = meter.read(), time.perf_counter()
                for _ in range(per_round):
                    acc["samples"].append(ops[name]())
                t1, c1 = time.perf_counter(), meter.read()
            finally:
                gc.enable()
            acc["wall_s"] += t1 - t0
            acc["cpu_s"] = [a + y - x for a, x, y in zip(acc["cpu_s"], c0, c1, strict=True)]
    return out


def bench_breakdown(
    cluster: LocalCluster,
    topo: Topology,
    prof: Profile,
    conf: str,
    per_round_trip_ms: float,
    per_new_connection_ms: float,
) -> tuple[list[Figure], dict[str, Any]]:
    """The phases and CPU rows; `per_round_trip_ms` and `per_new_connection_ms` are the
    raw TCP echo's added costs, to set the KMIP figures against."""
    tls = cluster.client_tls()
    paths = {
        "direct": direct_endpoint(cluster, "kms-a"),
        "proxy": endpoint_of(cluster, "vc-a", "kms-a"),
    }
    rt, ct = topo.response_timeout, topo.connect_timeout
    key = create_key(VCenterPolicy([paths["direct"]], tls, ct, rt, conf), "kms-a")
    ctx = client_context(tls.ca, tls.cert, tls.key)
    pie = new_pie_client(
        [paths["direct"].host], paths["direct"].port, tls.ca, tls.cert, tls.key, conf
    )
    meter = CpuMeter(cluster, "kms-a")
    facts: dict[str, Any] = {}

    from kmip.services.kmip_protocol import KMIPProtocol

    def connection(ep: Endpoint) -> Callable[[], list[float]]:
        def op() -> list[float]:
            t0 = time.perf_counter()
            raw = socket.create_connection((ep.host, ep.port), timeout=ct)
            t1 = time.perf_counter()
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                raw.settimeout(rt)
                sock = ctx.wrap_socket(raw, server_hostname=ep.server_name or ep.host)
            except BaseException:
                raw.close()
                raise
            t2 = time.perf_counter()
            try:
                pie.proxy.socket = sock  # as the walker attaches its own connection
                pie.proxy.protocol = KMIPProtocol(sock)
                pie._is_open = True
                perform(pie, "get", key)
                t3 = time.perf_counter()
                facts.setdefault(ep.address, (sock.version(), sock.session_reused))
            finally:
                pie._is_open = False
                sock.close()
            t4 = time.perf_counter()
            return [t1 - t0, t2 - t1, t3 - t2, t4 - t3]

        return op

    ops = {n: connection(ep) for n, ep in paths.items()}
    for op in ops.values():
        for _ in range(max(10, prof.warmup // 3)):
            op()
    rounds = max(2, prof.breakdown_conns // BLOCK)
    per_op = timed_blocks(ops, rounds + rounds % 2, BLOCK, meter)  # even: ABBA balanced

    with contextlib.ExitStack() as stack:
        pies = {
            n: stack.enter_context(pie_connection(ep, tls, conf, max(rt, 5.0)))
            for n, ep in paths.items()
        }

        def get_on(client: Any) -> Callable[[], list[float]]:
            def op() -> list[float]:
                client.get(key)
                return []

            return op

        gets = {n: get_on(c) for n, c in pies.items()}
        for get in gets.values():
            for _ in range(prof.warmup):
                get()
        rounds = max(4, prof.breakdown_conns // 25)
        long = timed_blocks(gets, rounds + rounds % 2, prof.long_ops, meter)

    def phases(name: str) -> dict[str, Any]:
        samples = per_op[name]["samples"]
        n = len(samples)
        cpu = per_op[name]["cpu_s"]
        return {
            "connections": n,
            **{f"{ph}_p50_ms": ms(pct([s[i] for s in samples], 50)) for i, ph in enumerate(PHASES)},
            "all_p50_ms": ms(pct([sum(s) for s in samples], 50)),
            "wall_per_op_ms": ms(per_op[name]["wall_s"] / n),
            "client_cpu_per_op_ms": ms(cpu[0] / n),
            "replica_cpu_per_op_ms": ms(cpu[1] / n),
            "toxiproxy_cpu_per_op_ms": ms(cpu[2] / n),
        }

    def per_get(name: str) -> dict[str, Any]:
        n = len(long[name]["samples"])
        cpu = long[name]["cpu_s"]
        return {
            "gets": n,
            "wall_per_get_ms": ms(long[name]["wall_s"] / n),
            "client_cpu_per_get_ms": ms(cpu[0] / n),
            "replica_cpu_per_get_ms": ms(cpu[1] / n),
            "toxiproxy_cpu_per_get_ms": ms(cpu[2] / n),
        }

    d, p = phases("direct"), phases("proxy")
    ld, lp = per_get("direct"), per_get("proxy")
    settings = toxiproxy_settings(meter.toxiproxy[0])
    added = p["all_p50_ms"] - d["all_p50_ms"]
    expected = ROUND_TRIPS * per_round_trip_ms + per_new_connection_ms
    tls_facts = {address: {"version": v, "session_reused": r} for address, (v, r) in facts.items()}
    raw = {
        "key": key,
        "paths": {n: ep.address for n, ep in paths.items()},
        "tls": tls_facts,
        "toxiproxy_env": settings,
        "connection_per_op": {"direct": d, "proxy": p, "added_p50_ms": added},
        "long_lived": {"direct": ld, "proxy": lp},
        "expected_added_ms": expected,
    }

    versions = sorted({f["version"] or "?" for f in tls_facts.values()})
    reused = any(f["session_reused"] for f in tls_facts.values())
    sec = "proxy overhead, where the time goes (conn. per op)"
    figures = []
    for i, ph in enumerate(PHASES[:3]):
        label = {"connect": "TCP connect", "handshake": "TLS handshake", "get": "Get"}[ph]
        note = ""
        if i == 1:
            note = f"{'/'.join(versions)}, session resumed: {'yes' if reused else 'no'}"
        elif i == 2:
            note = "first request on the new connection"
        figures += [
            Figure(sec, f"{label} p50 direct", d[f"{ph}_p50_ms"], "ms", note=note),
            Figure(sec, f"{label} p50 proxied", p[f"{ph}_p50_ms"], "ms"),
        ]
    cpu_sum = {
        n: f["client_cpu_per_op_ms"] + f["replica_cpu_per_op_ms"] + f["toxiproxy_cpu_per_op_ms"]
        for n, f in (("direct", d), ("proxy", p))
    }
    figures += [
        Figure(sec, "whole connection p50 direct", d["all_p50_ms"], "ms", note="connect to close"),
        Figure(sec, "whole connection p50 proxied", p["all_p50_ms"], "ms"),
        Figure(
            sec,
            "added by the proxy per connection (p50)",
            added,
            "ms",
            note=f"raw TCP echo predicts {expected:.2f} ms: {ROUND_TRIPS} round trips "
            f"× {per_round_trip_ms:.3f} + a new connection {per_new_connection_ms:.3f}",
        ),
        Figure(sec, "client CPU per op direct", d["client_cpu_per_op_ms"], "ms"),
        Figure(sec, "client CPU per op proxied", p["client_cpu_per_op_ms"], "ms"),
        Figure(sec, "kms-a CPU per op direct", d["replica_cpu_per_op_ms"], "ms"),
        Figure(sec, "kms-a CPU per op proxied", p["replica_cpu_per_op_ms"], "ms"),
        Figure(
            sec,
            "Toxiproxy CPU per op",
            p["toxiproxy_cpu_per_op_ms"],
            "ms",
            note=", ".join(f"{k}={v}" for k, v in settings.items()),
        ),
        Figure(
            sec,
            "wall per op (mean) direct",
            d["wall_per_op_ms"],
            "ms",
            note=f"CPU of the three: {cpu_sum['direct']:.2f} ms",
        ),
        Figure(
            sec,
            "wall per op (mean) proxied",
            p["wall_per_op_ms"],
            "ms",
            note=f"CPU of the three: {cpu_sum['proxy']:.2f} ms",
        ),
    ]
    sec = "proxy overhead, where the time goes (long-lived conn.)"
    figures += [
        Figure(sec, "wall per Get (mean) direct", ld["wall_per_get_ms"], "ms"),
        Figure(sec, "wall per Get (mean) proxied", lp["wall_per_get_ms"], "ms"),
        Figure(
            sec,
            "client + kms-a CPU per Get direct",
            ld["client_cpu_per_get_ms"] + ld["replica_cpu_per_get_ms"],
            "ms",
        ),
        Figure(
            sec,
            "client + kms-a CPU per Get proxied",
            lp["client_cpu_per_get_ms"] + lp["replica_cpu_per_get_ms"],
            "ms",
        ),
        Figure(sec, "Toxiproxy CPU per Get", lp["toxiproxy_cpu_per_get_ms"], "ms"),
    ]
    return figures, raw
