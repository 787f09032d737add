"""Workloads: N virtual clients issuing KMIP operations at a rate, in threads.

Each virtual client is closed-loop (one operation at a time, like a real client) and
paced: operation k starts at ``t0 + k / rate`` or as soon as the previous one ends if
it is late (no catch-up bursts). The operation mix is drawn from a seeded RNG. An
operation on a key (Get, Activate, Revoke, ...: `NEEDS_KEY`) uses a key this virtual
client created earlier; with none yet it creates. Only the operations a mix names are
drawn: the default mix changes no key after its Create. A client that shuts itself
down (its master key is no longer Active: `key_state_poll_s`) issues nothing more until
it is started again, like one stopped by a lifecycle step.

A `Script` is the opposite of a random mix: given operations by given clients, in
order, each no earlier than its time — the conflicting changes a lost-update scenario
needs (Create and Activate through one replica, a Revoke through another later).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.client.failover_client import ClientStopped, FailoverClient
from harness.client.operations import NEEDS_KEY
from harness.history import Complete, History
from harness.wait import wait_until

DEFAULT_MIX = {"get": 0.7, "create": 0.2, "activate": 0.05, "locate": 0.05}


class Workload:
    def __init__(
        self,
        clients: list[FailoverClient],
        history: History,
        rate_per_s: float = 10.0,
        mix: dict[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.clients = clients
        self.history = history
        self.rate_per_s = rate_per_s
        self.mix = dict(mix or DEFAULT_MIX)
        self.seed = seed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.keys: dict[str, list[str]] = {}

    def start(self) -> None:
        for i, client in enumerate(self.clients):
            rng = random.Random(f"{self.seed}:{i}")
            t = threading.Thread(
                target=self._loop, args=(client, rng), name=f"kms-{client.name}#{i}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def stop(self, timeout_s: float = 120) -> None:
        """Stop issuing operations and wait for those in flight to complete."""
        self._stop.set()
        for c in self.clients:
            c.abort()  # a wait with no timeout of its own would never end
        for t in self._threads:
            t.join(timeout_s)
        for c in self.clients:
            c.close()

    def run_for(self, duration_s: float) -> list[Complete]:
        """Run for `duration_s` seconds (a workload length, not a synchronisation), stop,
        and return the operations completed meanwhile."""
        t0 = time.monotonic()
        self.start()
        try:
            threading.Event().wait(duration_s)
        finally:
            self.stop()
        return self.completes(since=t0)

    @contextmanager
    def running(self) -> Iterator[Workload]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _loop(self, client: FailoverClient, rng: random.Random) -> None:
        ops = list(self.mix)
        weights = [self.mix[o] for o in ops]
        mine: list[str] = self.keys.setdefault(f"{client.name}#{client.worker}", [])
        interval = 1.0 / self.rate_per_s
        next_t = time.monotonic()
        while not self._stop.is_set():
            if not client.running:  # stopped by a lifecycle step: wait to be started
                client.wait_running(0.05)
                continue
            op = rng.choices(ops, weights)[0]
            key = None
            if op in NEEDS_KEY:
                if not mine:
                    op = "create"
                else:
                    key = rng.choice(mine)
            try:
                done = client.do(op, key)
            except ClientStopped:
                continue  # it stopped itself (recorded): wait until it is started
            if op == "create" and done.outcome == "ok" and done.key:
                mine.append(done.key)
            if op == "destroy" and done.outcome == "ok" and key in mine:
                mine.remove(key)
            next_t = max(next_t + interval, time.monotonic())
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    # ---- conditions to wait for ---------------------------------------------------

    def completes(self, since: float = 0.0, client: str | None = None) -> list[Complete]:
        return [
            c
            for c in self.history.completes()
            if c.start >= since and (client is None or c.client == client)
        ]

    def wait_for(
        self, predicate: Callable[[list[Complete]], bool], timeout_s: float, what: str
    ) -> None:
        """Wait until `predicate(completed operations)` holds."""
        wait_until(lambda: predicate(self.history.completes()), timeout_s, what, poll_s=0.02)

    def wait_ok(
        self,
        n: int,
        timeout_s: float,
        since: float = 0.0,
        served_by: set[str] | None = None,
        not_served_by: set[str] | None = None,
        client: str | None = None,
    ) -> list[Complete]:
        """Wait for `n` successful operations started after `since` (served by / not by
        the given replicas) and return them."""

        def matching() -> list[Complete]:
            return [
                c
                for c in self.completes(since, client)
                if c.outcome == "ok"
                and (served_by is None or c.served_by in served_by)
                and (not_served_by is None or c.served_by not in not_served_by)
            ]

        desc = f"{n} ok operation(s)"
        if served_by:
            desc += f" served by {sorted(served_by)}"
        if not_served_by:
            desc += f" not served by {sorted(not_served_by)}"
        if client:
            desc += f" of client {client}"
        wait_until(lambda: len(matching()) >= n, timeout_s, desc)
        return matching()[:n]

    def wait_completes(self, n: int, timeout_s: float, since: float = 0.0) -> list[Complete]:
        """Wait for `n` completed operations (any outcome) started after `since`."""
        wait_until(
            lambda: len(self.completes(since)) >= n, timeout_s, f"{n} completed operation(s)"
        )
        return self.completes(since)


# ---- scripted operations ---------------------------------------------------------------


class ScriptError(AssertionError):
    """A scripted step could not run as written (its key was never made, or a step that
    had to succeed did not); the message names the step and what came back."""


@dataclass(frozen=True)
class Step:
    """One scripted operation: `client` (a topology client: its order decides which
    replica it reaches first) does `op` on the key labelled `key` (a Create gives its
    key that label; later steps name it), no earlier than `at_s` seconds after the
    script started. `served_by`: the replica that must serve it, else `ScriptError`
    (None: any); `must_succeed`: an outcome other than ok is a `ScriptError`."""

    client: str
    op: str
    key: str = ""
    at_s: float = 0.0
    served_by: str | None = None
    must_succeed: bool = True

    def describe(self) -> str:
        on = f" {self.key}" if self.key else ""
        where = f" on {self.served_by}" if self.served_by else ""
        return f"{self.client} {self.op}{on}{where} (at +{self.at_s:g} s)"


@dataclass
class Script:
    """Run `Step`s in order through the given clients, each recorded in the history like
    any operation (`FailoverClient`: Invoke, Complete with its attempts). A step starts
    at its `at_s` after `run` began, or when the previous one ended if that is later:
    real-time order is the order of the steps. `between(done_step, complete)` runs after
    each step (a condition to wait for, such as replicas agreeing)."""

    clients: Mapping[str, FailoverClient]
    keys: dict[str, str] = field(default_factory=dict)  # label -> unique identifier
    done: list[tuple[Step, Complete]] = field(default_factory=list)

    def run(
        self,
        steps: Sequence[Step],
        between: Callable[[Step, Complete], None] | None = None,
    ) -> list[Complete]:
        t0 = time.monotonic()
        out: list[Complete] = []
        for step in steps:
            client = self.clients.get(step.client)
            if client is None:
                known = ", ".join(sorted(self.clients))
                raise ScriptError(f"{step.describe()}: no client {step.client!r} (known: {known})")
            uid = None
            if step.op in NEEDS_KEY:
                uid = self.keys.get(step.key)
                if uid is None:
                    raise ScriptError(f"{step.describe()}: no key labelled {step.key!r} was made")
            # pacing of a schedule, not a synchronisation: the step may not start earlier
            threading.Event().wait(max(0.0, t0 + step.at_s - time.monotonic()))
            try:
                done = client.do(step.op, uid)
            except ClientStopped as e:
                raise ScriptError(f"{step.describe()}: not sent: {e}") from e
            self.done.append((step, done))
            out.append(done)
            if step.op == "create" and done.outcome == "ok" and done.key and step.key:
                self.keys[step.key] = done.key
            if step.must_succeed and done.outcome != "ok":
                raise ScriptError(f"{step.describe()}: {done.outcome}: {done.error}")
            if step.served_by is not None and done.served_by != step.served_by:
                raise ScriptError(
                    f"{step.describe()}: served by {done.served_by}, not {step.served_by}"
                )
            if between is not None:
                between(step, done)
        return out
