"""Section 2, failover precision: how close a vCenter client's failover comes to its
theoretical minimum.

On one-site at a small time scale, client vc-a (order kms-a, kms-b, kms-c) Gets a key
that lives on kms-b while kms-a refuses connections, then while it blackholes them.
Theoretical minimum: a refused connect (or the response timeout) plus a plain Get on
kms-b, both measured medians. Target: median and max excess ≤
max(`FAILOVER_REL_TOL` × theoretical, `FAILOVER_ABS_TOL_S`).
"""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any

from bench import BenchError
from bench.clusters import endpoint_of
from bench.figures import FAILOVER_ABS_TOL_S, FAILOVER_REL_TOL, Figure, ms, pct
from bench.profiles import Profile
from harness.client.failover_client import FailoverClient
from harness.client.walker import VCenterPolicy
from harness.cluster.local import LocalCluster
from harness.faults import make_fault
from harness.history import Complete, History
from harness.topology import Topology
from harness.wait import wait_until


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
    tls = cluster.client_tls()
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
