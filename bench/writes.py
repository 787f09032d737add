"""Writes for the replication section and when they become visible: Creates paced to
a rate over several connections, a watcher of when each key is first readable on one
replica, and the ids a replica lists."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import BenchError
from bench.clusters import direct_endpoint, pie_connection
from bench.figures import ms, pct
from harness.client.policies import TlsFiles
from harness.client.transport import Endpoint
from harness.client.walker import VCenterPolicy
from harness.cluster.base import BaseCluster


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
        try:
            with pie_connection(self.ep, self.tls, self.conf, 30.0) as pie:
                self._watch(pie)
        except BaseException as e:  # noqa: BLE001 - reported by all_seen
            self.error = e

    def _watch(self, pie: Any) -> None:
        from kmip.pie.exceptions import KmipOperationFailure

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

    def __enter__(self) -> Visibility:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def locate_all(cluster: BaseCluster, replica: str, conf: str) -> tuple[set[str], float]:
    """The ids one replica lists with PyKMIP's `locate()` (no maximum_items), directly;
    and how long that Locate took."""
    ep = direct_endpoint(cluster, replica)
    with pie_connection(ep, cluster.client_tls(), conf, 30.0) as pie:
        t = time.perf_counter()
        uids = {str(u) for u in pie.locate()}
        return uids, time.perf_counter() - t
