"""`FailoverClient`: a virtual KMIP client that records everything it does.

Each operation is recorded as an `Invoke` and a `Complete` (with every attempt) in the
history, so checkers can tell what the user experienced and which replica served.

A client whose policy has `key_state_poll_s` keeps a master key and polls its state
(`harness.client.keystate`): before an operation it may make the key (Create, Activate)
or read its State, each recorded like any operation; when the key is no longer Active it
stops itself (a `ClientEvent` whose detail says why) and the operation asked for is not
sent (`ClientStopped`).
"""

from __future__ import annotations

import itertools
import threading
import time

from harness.client.keycache import ClientKeyCache
from harness.client.keystate import KeyStatePoller
from harness.client.operations import NEEDS_KEY, OPERATIONS, OpValue
from harness.client.policies import FailoverPolicy, PolicyResult
from harness.history import ClientEvent, Complete, History, Invoke, Note


class ClientStopped(RuntimeError):
    """The client shut itself down before the operation asked for (its master key is no
    longer Active): that operation was not sent; the stop and its reason are recorded."""


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
        spec = policy.spec
        self.cache = (
            ClientKeyCache(spec.key_cache, time_scale) if spec.key_cache is not None else None
        )
        poll_s = spec.key_state_poll_s
        self.keystate = KeyStatePoller(poll_s, time_scale) if poll_s is not None else None
        self.shutdown_reason: str | None = None  # why it stopped itself, while stopped
        self.history = history
        self.worker = worker
        self._seq = itertools.count(1)
        self._running = threading.Event()
        self._running.set()
        self._restart_pending = False
        self.closed = False

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

    @property
    def master_key(self) -> str | None:
        """The uid of its master key (`key_state_poll_s`), once made."""
        return self.keystate.master_key if self.keystate is not None else None

    def carry_over(self, earlier: FailoverClient) -> None:
        """Continue `earlier`, an instance of the same client that ran before this one in
        the same process (a workload started again after a pause): its master key and
        polling clock, and a shutdown it made itself."""
        if earlier.keystate is not None:
            self.keystate = earlier.keystate
        if earlier.shutdown_reason is not None and not earlier.running:
            self.stop(f"still shut down: {earlier.shutdown_reason}")
            self.shutdown_reason = earlier.shutdown_reason

    def stop(self, detail: str = "") -> None:
        """Stop the client: it issues no operation until `start`."""
        self._running.clear()
        self._restart_pending = True
        self._event("stop", detail)

    def start(self, detail: str = "") -> None:
        """Start a stopped client again, as a fresh process."""
        self._restart_pending = True
        self.shutdown_reason = None
        self._running.set()
        self._event("start", detail)

    def do(self, op: str, key: str | None = None) -> Complete:
        """Run `op` through the policy and record it. With `key_state_poll_s`, the master
        key's upkeep comes first (recorded too); `ClientStopped` when it shut the
        client down."""
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPERATIONS)})")
        if op in NEEDS_KEY and not key:
            raise ValueError(f"operation {op!r} needs a key")
        if self._restart_pending:
            self._restart_pending = False
            self.policy.restart()
            if self.cache is not None:
                self.cache.restarted()
            if self.keystate is not None:
                self.keystate.restarted()
        if self.keystate is not None:
            why = self.keystate.before_op(self._record, self._warn)
            if why is not None:
                self.stop(why)
                self.shutdown_reason = why
                raise ClientStopped(f"{self.name}#{self.worker}: {why}")
        return self._record(op, key)[0]

    def _warn(self, text: str) -> None:
        """What a real client would log as a warning, as a note in the history."""
        if self.history is not None:
            self.history.append(
                Note(t=time.monotonic(), text=f"{self.name}#{self.worker}: warning: {text}")
            )

    def _record(self, op: str, key: str | None) -> tuple[Complete, OpValue | None]:
        """Run `op` through the policy (or the key cache), recorded: Invoke, Complete."""
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
        return done, value

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
        """Release its connections: this instance is done (its workload stopped)."""
        self.closed = True
        self.policy.close()

    def abort(self) -> None:
        """End an operation that waits with no timeout of its own (the workload stops)."""
        self.policy.abort()
