"""A client's master key and the polling of its state (`PolicySpec.key_state_poll_s`),
after MongoDB's `kmipKeyStatePollingSeconds` (900 s; docs/clients.md).

- A client whose policy has `key_state_poll_s` gets a master key at its first operation
  after it starts: a Create and an Activate through its own policy, each recorded as an
  ordinary operation. It keeps that key across restarts (MongoDB reuses its key): a
  restart only reads the key's state again, before the first operation after it.
- Whenever `key_state_poll_s`·`time_scale` seconds have passed since the last poll, the
  client reads the key's KMIP State (operation `state`, recorded) before its next
  operation. A State other than Active, or a KMS that answers with a KMIP error (the
  key is gone), is a fatal shutdown: the client stops, and the stop's detail says why.
  A KMS that cannot be reached is only a warning (a `Note`): the client goes on and
  polls again one period later.

`KeyStatePoller` is the logic alone, with no KMS and no history: it is given a way to run
an operation (`Run`: the recording client's) and to warn, and answers whether the client
must shut down and why. `FailoverClient` owns one when its policy asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.client.operations import OpValue
from harness.history import Complete

ACTIVE = "ACTIVE"
REASON = "key_state_poll_s"
# runs an operation through the client's policy and records it: its completion, its value
Run = Callable[[str, str | None], tuple[Complete, OpValue | None]]


def answered_no(done: Complete) -> bool:
    """Whether a KMS answered the operation with a KMIP error (it was reached, and
    refused: no such key, wrong state), as opposed to not being reached at all."""
    return (
        done.outcome != "ok" and bool(done.attempts) and done.attempts[-1].outcome == "kmip-error"
    )


class KeyStatePoller:
    """One client's master key (`master_key`, its uid once made) and when it polls."""

    def __init__(
        self,
        poll_s: float,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if poll_s <= 0:
            raise ValueError(f"key_state_poll_s must be > 0, got {poll_s}")
        self.period_s = poll_s * time_scale
        self.master_key: str | None = None
        self.polls = 0  # state reads made
        self._active = False  # its Activate was acknowledged (or the KMS said it was done)
        self._last_poll: float | None = None
        self._reread = False  # read its state before the next operation (after a restart)
        self._clock = clock

    def restarted(self) -> None:
        """The client restarts: it keeps its key and reads its state again first."""
        self._reread = self.master_key is not None

    def due(self) -> bool:
        """Whether the key's state is to be read before the next operation."""
        if self.master_key is None or not self._active:
            return False
        if self._reread or self._last_poll is None:
            return True
        return self._clock() - self._last_poll >= self.period_s

    def before_op(self, run: Run, warn: Callable[[str], None]) -> str | None:
        """What the client does before its next operation: make and activate its master
        key if it has none yet, or read its state when a poll is due. Returns the reason
        to shut down, or None to go on."""
        if self.master_key is None:
            done, _ = run("create", None)
            if done.outcome != "ok" or not done.key:
                return None  # no master key yet: made again before the next operation
            self.master_key = done.key
        if not self._active:
            done, _ = run("activate", self.master_key)
            if done.outcome == "ok":
                self._active = True
                self._last_poll = self._clock()
                self._reread = False
                return None
            if not answered_no(done):
                return None  # not reached: activated before the next operation
            # refused (e.g. already Active after a lost response): its state decides
            self._active = True
            return self.poll(run, warn)
        return self.poll(run, warn) if self.due() else None

    def poll(self, run: Run, warn: Callable[[str], None]) -> str | None:
        """Read the master key's state now; the reason to shut down, or None."""
        uid = self.master_key
        assert uid is not None
        self._last_poll = self._clock()
        self._reread = False
        self.polls += 1
        done, value = run("state", uid)
        state = value.state if value is not None else None
        if done.outcome == "ok" and state is not None:
            if state == ACTIVE:
                return None
            return f"master key {uid} is {state}: shut down ({REASON})"
        if answered_no(done):
            return f"master key {uid} could not be read ({done.error}): shut down ({REASON})"
        why = done.error or ("no State in the answer" if done.outcome == "ok" else done.outcome)
        warn(f"could not read the state of master key {uid}: {why}; goes on ({REASON})")
        return None
