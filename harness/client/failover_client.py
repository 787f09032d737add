"""`FailoverClient`: a virtual KMIP client that records everything it does.

Each operation is recorded as an `Invoke` and a `Complete` (with every attempt) in the
history, so checkers can tell what the user experienced and which replica served.
"""

from __future__ import annotations

import itertools
import threading
import time

from harness.client.operations import NEEDS_KEY, OPERATIONS
from harness.client.policies import FailoverPolicy, PolicyResult
from harness.history import ClientEvent, Complete, History, Invoke


class FailoverClient:
    def __init__(
        self, name: str, policy: FailoverPolicy, history: History | None, worker: int = 0
    ) -> None:
        self.name = name
        self.policy = policy
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
        op_id = f"{self.name}#{self.worker}:{next(self._seq)}"
        start = time.monotonic()
        if self.history is not None:
            self.history.append(Invoke(op_id=op_id, client=self.name, op=op, t=start, key=key))
        try:
            result = self.policy.execute(op, key)
        except Exception as e:  # noqa: BLE001 - a harness bug must not lose the record
            result = PolicyResult("info", None, None, [], f"harness error: {e!r}")
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
        )
        if self.history is not None:
            self.history.append(done)
        return done

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
