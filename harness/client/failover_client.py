"""`FailoverClient`: a virtual KMIP client that records everything it does.

Each operation is recorded as an `Invoke` and a `Complete` (with every attempt) in the
history, so checkers can tell what the user experienced and which replica served.
"""

from __future__ import annotations

import itertools
import threading
import time

from harness.client.keycache import ClientKeyCache
from harness.client.operations import NEEDS_KEY, OPERATIONS, OpValue
from harness.client.policies import FailoverPolicy, PolicyResult
from harness.history import ClientEvent, Complete, History, Invoke


class FailoverClient:
    def __init__(
        self,
        name: str,
        policy: FailoverPolicy,
        history: History | None,
        worker: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        self.name = name
        self.policy = policy
        spec = getattr(policy, "spec", None)
        self.cache = (
            ClientKeyCache(spec.key_cache, time_scale)
            if spec is not None and spec.key_cache is not None
            else None
        )
        self.history = history
        self.worker = worker
        self._seq = itertools.count(1)
        self._running = threading.Event()
        self._running.set()
        self._restart_pending = False

    # ---- lifecycle (a rehearsal's restart-client, stop-client, start-client) -------------

    @property
    def running(self) -> bool:
        return self._running.is_set()

    def wait_running(self, timeout_s: float) -> bool:
        return self._running.wait(timeout_s)

    def _event(self, action: str, detail: str = "") -> None:
        if self.history is not None:
            self.history.append(
                ClientEvent(time.monotonic(), self.name, self.worker, action, detail)  # type: ignore[arg-type]
            )

    def restart(self, detail: str = "") -> None:
        """Restart the client process: from its next operation on it has forgotten its
        connection, the server it chose at start and the servers it avoided (an operation
        in flight ends as it would have)."""
        self._restart_pending = True
        self._event("restart", detail)

    def stop(self, detail: str = "") -> None:
        """Stop the client: it issues no operation until `start`."""
        self._running.clear()
        self._restart_pending = True
        self._event("stop", detail)

    def start(self, detail: str = "") -> None:
        """Start a stopped client again, as a fresh process."""
        self._restart_pending = True
        self._running.set()
        self._event("start", detail)

    def do(self, op: str, key: str | None = None) -> Complete:
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        if op in NEEDS_KEY and not key:
            raise ValueError(f"operation {op!r} needs a key")
        if self._restart_pending:
            self._restart_pending = False
            self.policy.restart()
            if self.cache is not None:
                self.cache.restarted()
        op_id = f"{self.name}#{self.worker}:{next(self._seq)}"
        start = time.monotonic()
        if self.history is not None:
            self.history.append(Invoke(op_id=op_id, client=self.name, op=op, t=start, key=key))
        cached = self.cache.hit(key) if self.cache is not None and op == "get" and key else None
        if cached is not None:
            result = PolicyResult("ok", OpValue(key=key, digest=cached), None)
        else:
            result = self._execute(op, key)
        end = time.monotonic()
        value = result.value
        done = Complete(
            op_id=op_id,
            client=self.name,
            policy=self.policy.name,
            op=op,
            start=start,
            end=end,
            outcome=result.outcome,
            served_by=result.served_by,
            key=(value.key if value and value.key else key),
            attempts=result.attempts,
            error=result.error,
            digest=value.digest if value else None,
            name=value.name if value else None,
            cached=cached is not None,
        )
        if self.cache is not None and done.outcome == "ok" and done.key:
            if op == "get" and done.digest:
                self.cache.put(done.key, done.digest)
            elif op == "destroy":
                self.cache.drop(done.key)
        if self.history is not None:
            self.history.append(done)
        return done

    def _execute(self, op: str, key: str | None) -> PolicyResult:
        try:
            return self.policy.execute(op, key)
        except Exception as e:  # noqa: BLE001 - a harness bug must not lose the record
            return PolicyResult("info", None, None, [], f"harness error: {e!r}")

    def create(self) -> Complete:
        return self.do("create")

    def get(self, key: str) -> Complete:
        return self.do("get", key)

    def activate(self, key: str) -> Complete:
        return self.do("activate", key)

    def destroy(self, key: str) -> Complete:
        return self.do("destroy", key)

    def locate(self) -> Complete:
        return self.do("locate")

    def close(self) -> None:
        self.policy.close()

    def abort(self) -> None:
        """End an operation that waits with no timeout of its own (the workload stops)."""
        self.policy.abort()
