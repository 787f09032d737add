"""`FailoverClient`: a virtual KMIP client that records everything it does.

Each operation is recorded as an `Invoke` and a `Complete` (with every attempt) in the
history, so checkers can tell what the user experienced and which replica served.
"""

from __future__ import annotations

import itertools
import time

from harness.client.operations import NEEDS_KEY, OPERATIONS
from harness.client.policies import FailoverPolicy, PolicyResult
from harness.history import Complete, History, Invoke


class FailoverClient:
    def __init__(
        self, name: str, policy: FailoverPolicy, history: History | None, worker: int = 0
    ) -> None:
        self.name = name
        self.policy = policy
        self.history = history
        self.worker = worker
        self._seq = itertools.count(1)

    def do(self, op: str, key: str | None = None) -> Complete:
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        if op in NEEDS_KEY and not key:
            raise ValueError(f"operation {op!r} needs a key")
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
