"""Key-state polling (`PolicySpec.key_state_poll_s`) without a cluster: a fake KMS behind
a fake policy, a fake clock, the real `FailoverClient` and `KeyStatePoller`."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from harness.client.engine import FailoverPolicy, PolicyResult
from harness.client.failover_client import ClientStopped, FailoverClient
from harness.client.keystate import KeyStatePoller
from harness.client.operations import OpValue
from harness.client.presets import MONGODB
from harness.history import Attempt, ClientEvent, Complete, History, Note


class FakeKms:
    """Keys and their states; `reachable` False: every attempt is refused."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.reachable = True
        self._ids = itertools.count(1)

    def run(self, op: str, key: str | None) -> PolicyResult:
        if not self.reachable:
            return PolicyResult("fail", None, None, [_attempt("refused")], "kms-a refused")
        if op == "create":
            uid = f"k{next(self._ids)}"
            self.states[uid] = "PRE_ACTIVE"
            return PolicyResult("ok", OpValue(key=uid), "kms-a", [_attempt("ok")])
        assert key is not None
        if key not in self.states:
            return _refusal(f"Item Not Found: {key}")
        if op == "activate":
            if self.states[key] != "PRE_ACTIVE":
                return _refusal("Permission Denied: not pre-active")
            self.states[key] = "ACTIVE"
            return PolicyResult("ok", OpValue(key=key), "kms-a", [_attempt("ok")])
        if op == "state":
            return PolicyResult(
                "ok", OpValue(key=key, state=self.states[key]), "kms-a", [_attempt("ok")]
            )
        return PolicyResult("ok", OpValue(key=key), "kms-a", [_attempt("ok")])


def _attempt(outcome: str, detail: str = "") -> Attempt:
    return Attempt("kms-a", "127.0.0.1:1", 0.0, 0.0, outcome, detail)


def _refusal(error: str) -> PolicyResult:
    return PolicyResult("fail", None, "kms-a", [_attempt("kmip-error", error)], error)


class FakePolicy(FailoverPolicy):
    engine = "fake"

    def __init__(self, kms: FakeKms, poll_s: float | None) -> None:  # noqa: D107
        self.spec = dataclasses.replace(MONGODB, key_state_poll_s=poll_s)
        self.kms = kms
        self.restarts = 0

    def execute(self, op: str, key: str | None) -> PolicyResult:
        return self.kms.run(op, key)

    def restart(self) -> None:
        self.restarts += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def polling_client(
    poll_s: float = 10.0, time_scale: float = 0.5
) -> tuple[FailoverClient, FakeKms, Clock, History]:
    kms, clock, history = FakeKms(), Clock(), History()
    client = FailoverClient("mongo", FakePolicy(kms, poll_s), history, 0, time_scale)
    assert client.keystate is not None
    client.keystate._clock = clock  # the poller's clock only: operations keep theirs
    return client, kms, clock, history


def ops(history: History) -> list[str]:
    return [c.op for c in history.completes()]


def test_first_operation_makes_and_activates_the_master_key() -> None:
    client, kms, _, history = polling_client()
    done = client.do("locate")
    assert done.op == "locate"
    assert ops(history) == ["create", "activate", "locate"]
    assert client.master_key == "k1" and kms.states["k1"] == "ACTIVE"


def test_polls_once_per_scaled_period_and_goes_on_while_active() -> None:
    client, _, clock, history = polling_client(poll_s=10.0, time_scale=0.5)  # 5 s
    client.do("locate")
    clock.now += 4.9
    client.do("locate")
    assert "state" not in ops(history)
    clock.now += 0.2
    client.do("locate")
    client.do("locate")
    assert ops(history).count("state") == 1
    clock.now += 5.0
    client.do("locate")
    assert ops(history).count("state") == 2
    assert client.running


def test_a_revoked_master_key_stops_the_client_with_the_reason() -> None:
    client, kms, clock, history = polling_client()
    client.do("locate")
    kms.states["k1"] = "DEACTIVATED"
    client.do("locate")  # not yet due: it does not know
    clock.now += 5.0
    with pytest.raises(ClientStopped, match="master key k1 is DEACTIVATED"):
        client.do("get", "k1")
    assert not client.running
    assert ops(history)[-1] == "state"  # the Get was never sent
    stops = [e for e in history.events() if isinstance(e, ClientEvent)]
    assert [(e.action, e.detail) for e in stops] == [
        ("stop", "master key k1 is DEACTIVATED: shut down (key_state_poll_s)")
    ]


def test_a_destroyed_master_key_stops_the_client() -> None:
    client, kms, clock, _ = polling_client()
    client.do("locate")
    del kms.states["k1"]
    clock.now += 5.0
    with pytest.raises(ClientStopped, match="could not be read .*Item Not Found"):
        client.do("locate")


def test_an_unreachable_kms_during_a_poll_is_only_a_warning() -> None:
    client, kms, clock, history = polling_client()
    client.do("locate")
    kms.reachable = False
    clock.now += 5.0
    failed = client.do("locate")  # the poll fails, the operation is still sent
    assert client.running and failed.op == "locate"
    polls = [c for c in history.completes() if c.op == "state"]
    assert len(polls) == 1 and polls[0].outcome == "fail"
    warnings = [e.text for e in history.events() if isinstance(e, Note)]
    assert warnings and "could not read the state of master key k1" in warnings[0]
    kms.reachable = True
    kms.states["k1"] = "COMPROMISED"
    client.do("locate")  # the next poll is one period after the failed one
    clock.now += 5.0
    with pytest.raises(ClientStopped, match="COMPROMISED"):
        client.do("locate")


def test_restart_keeps_the_key_and_reads_its_state_first() -> None:
    client, kms, _, history = polling_client()
    client.do("locate")
    client.restart("test")
    client.do("locate")
    assert ops(history) == ["create", "activate", "locate", "state", "locate"]
    assert client.master_key == "k1" and len(kms.states) == 1
    # started again after a shutdown, it reads the state at once and stops again
    kms.states["k1"] = "DEACTIVATED"
    client.restart("test")
    with pytest.raises(ClientStopped):
        client.do("locate")
    client.start("operator")
    assert client.shutdown_reason is None
    with pytest.raises(ClientStopped):
        client.do("locate")


def test_no_master_key_while_the_kms_is_unreachable_then_made() -> None:
    client, kms, _, history = polling_client()
    kms.reachable = False
    client.do("locate")
    assert client.master_key is None and client.running
    kms.reachable = True
    client.do("locate")
    assert client.master_key == "k1"
    assert ops(history) == ["create", "locate", "create", "activate", "locate"]


def test_a_later_instance_carries_the_key_and_the_shutdown_over() -> None:
    client, kms, clock, history = polling_client()
    client.do("locate")
    kms.states["k1"] = "DEACTIVATED"
    clock.now += 5.0
    with pytest.raises(ClientStopped):
        client.do("locate")
    later = FailoverClient("mongo", FakePolicy(kms, 10.0), history, 1, 0.5)
    later.carry_over(client)
    assert later.master_key == "k1" and not later.running
    assert later.shutdown_reason == client.shutdown_reason


def test_without_key_state_poll_s_nothing_changes() -> None:
    kms, history = FakeKms(), History()
    client = FailoverClient("mongo", FakePolicy(kms, None), history)
    client.do("locate")
    assert client.keystate is None and client.master_key is None
    assert ops(history) == ["locate"]


def test_poller_refuses_a_period_of_zero() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        KeyStatePoller(0.0)


def test_poller_activate_refused_then_the_state_decides() -> None:
    """An Activate refused by the KMS (it was done: the first response was lost) is
    followed by a state read that finds the key Active."""
    kms, clock = FakeKms(), Clock()
    poller = KeyStatePoller(10.0, 1.0, clock)
    warnings: list[str] = []

    def run(op: str, key: str | None) -> tuple[Complete, OpValue | None]:
        r = kms.run(op, key)
        uid = r.value.key if r.value is not None else key
        c = Complete("x", "mongo", "mongodb", op, 0.0, 0.0, r.outcome, r.served_by, uid)
        c.attempts = r.attempts
        c.error = r.error
        return c, r.value

    assert poller.before_op(run, warnings.append) is None  # made + activated
    assert poller.master_key == "k1" and kms.states["k1"] == "ACTIVE"
    poller._active = False  # as if the Activate's answer had been lost
    assert poller.before_op(run, warnings.append) is None
    assert poller.polls == 1 and not warnings
