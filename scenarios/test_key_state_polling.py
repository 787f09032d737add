"""An operator revokes a MongoDB-like client's master key (`key_state_poll_s`), on the
two-site async layout (`two-sites-key-state.yaml`).

`mongo-a` (site-a, on kms-a) and `mongo-b` (site-b, on kms-c) each make a master key at
their first operation and read its state every `key_state_poll_s`·`time_scale`. The
operator revokes mongo-a's key on kms-c, a site-b replica: mongo-a keeps working until
replication has carried the revocation to kms-a and its next poll sees it, then shuts
down with the reason; mongo-b, whose key is untouched, goes on. Then the operator
revokes mongo-b's key on kms-c, mongo-b's own server: no replication in between, so
mongo-b shuts down within one poll. The shutdown delay differs per site by the
replication lag.
"""

from __future__ import annotations

import time

import pytest

from harness.admin import key_state_on
from harness.history import ClientEvent, Complete
from harness.scenario import Scenario
from harness.wait import wait_until

pytestmark = [pytest.mark.kms_topology("two-sites-key-state.yaml")]
CLIENTS = ["mongo-a", "mongo-b"]
RATE_PER_S = 20.0
MIX = {"create": 0.3, "get": 0.7}


def shutdown(sc: Scenario, client: str, since: float) -> ClientEvent | None:
    """The first time `client` stopped itself after `since`."""
    for e in sc.history.events():
        if isinstance(e, ClientEvent) and e.client == client and e.action == "stop":
            if e.t >= since and "key_state_poll_s" in e.detail:
                return e
    return None


def polls_ok(cs: list[Complete], client: str, n: int) -> bool:
    return sum(1 for c in cs if c.client == client and c.op == "state" and c.outcome == "ok") >= n


def test_revoked_master_key_stops_its_client_after_replication_and_a_poll(kms_scenario):
    sc = kms_scenario
    topo = sc.topology
    policy = topo.clients["mongo-a"].policy
    assert policy.selection == "at-start" and policy.key_state_poll_s is not None
    poll_s = policy.key_state_poll_s * topo.time_scale
    interval_s = topo.replication_interval_ms / 1000
    # the agent notices a local change at its next scan and pushes it at its next round
    # (two intervals); the client polls within one period and only before an operation
    # (one pacing interval); the slack covers one push's HTTP round and a loaded machine
    slack_s = max(0.5, interval_s)
    remote_bound = 2 * interval_s + poll_s + 1 / RATE_PER_S + slack_s
    local_bound = poll_s + 1 / RATE_PER_S + slack_s
    wl = sc.workload(CLIENTS, rate_per_s=RATE_PER_S, mix=MIX)
    with wl.running():
        wl.wait_for(
            lambda cs: all(polls_ok(cs, n, 2) for n in CLIENTS),
            sc.op_deadline(2) + 4 * poll_s,
            "two polls of each client's master key",
        )
        (mongo_a,) = sc.clients_named("mongo-a")
        (mongo_b,) = sc.clients_named("mongo-b")
        key_a, key_b = mongo_a.master_key, mongo_b.master_key
        assert key_a and key_b and key_a != key_b
        # mongo-a made its key on kms-a: the operator finds it on kms-c once replicated
        wait_until(
            lambda: key_state_on(sc.cluster, "kms-c", key_a) == "ACTIVE",
            4 * interval_s + 5.0,
            f"mongo-a's master key {key_a} Active on kms-c",
            poll_s=interval_s / 4,
        )

        # the operator revokes mongo-a's key on a site-b replica
        (revoke_a,) = sc.admin("revoke", "kms-c", "master-of mongo-a")
        assert (revoke_a.client, revoke_a.served_by, revoke_a.key) == ("admin", "kms-c", key_a)
        t_a = revoke_a.end
        # when kms-a, mongo-a's server, shows it (the operator's console, read directly)
        wait_until(
            lambda: key_state_on(sc.cluster, "kms-a", key_a) == "DEACTIVATED",
            3 * remote_bound + 5.0,
            "the revocation replicated to kms-a",
            poll_s=0.02,
        )
        lag_a = time.monotonic() - t_a
        wait_until(
            lambda: shutdown(sc, "mongo-a", t_a) is not None,
            3 * remote_bound + 5.0,
            "mongo-a to shut down over its revoked master key",
        )
        stop_a = shutdown(sc, "mongo-a", t_a)
        assert stop_a is not None
        delay_a = stop_a.t - t_a
        # mongo-b is unaffected: it goes on, with its own key Active
        wl.wait_ok(5, sc.op_deadline(5), since=stop_a.t, client="mongo-b")
        assert shutdown(sc, "mongo-b", 0.0) is None and mongo_b.running

        # the operator revokes mongo-b's key on its own server
        (revoke_b,) = sc.admin("revoke", "kms-c", "master-of mongo-b")
        t_b = revoke_b.end
        wait_until(
            lambda: shutdown(sc, "mongo-b", t_b) is not None,
            3 * local_bound + 5.0,
            "mongo-b to shut down over its revoked master key",
        )
        stop_b = shutdown(sc, "mongo-b", t_b)
        assert stop_b is not None
        delay_b = stop_b.t - t_b

    ops = sc.completes()
    a_ops = [c for c in ops if c.client == "mongo-a"]
    # the poll that stopped mongo-a read DEACTIVATED on its own server, kms-a
    last_a = max(a_ops, key=lambda c: c.start)
    assert (last_a.op, last_a.outcome, last_a.served_by) == ("state", "ok", "kms-a")
    assert stop_a.detail == f"master key {key_a} is DEACTIVATED: shut down (key_state_poll_s)"
    assert not any(c.start > stop_a.t for c in a_ops), "mongo-a issued an operation once stopped"
    worked_a = [c for c in a_ops if c.start >= t_a and c.outcome == "ok" and c.op != "state"]
    last_b = max((c for c in ops if c.client == "mongo-b"), key=lambda c: c.start)
    assert (last_b.op, last_b.served_by) == ("state", "kms-c")
    assert stop_b.detail == f"master key {key_b} is DEACTIVATED: shut down (key_state_poll_s)"

    # it shut down within one poll of the revocation reaching its server, not before
    assert delay_a >= lag_a - 0.3, f"mongo-a stopped {delay_a:.3f} s after, replicated {lag_a:.3f}"
    assert delay_a - lag_a <= local_bound, (delay_a, lag_a, local_bound)
    assert delay_a <= remote_bound, (
        f"mongo-a shut down {delay_a:.3f} s after the revoke on kms-c; bound {remote_bound:.3f} "
        f"s (2 x replication {interval_s:g} s + poll {poll_s:g} s + pacing + slack {slack_s:g} s)"
    )
    assert delay_b <= local_bound, (
        f"mongo-b shut down {delay_b:.3f} s after the revoke on its own server; bound "
        f"{local_bound:.3f} s (poll {poll_s:g} s + pacing + slack {slack_s:g} s)"
    )

    # the operator's revocations reached every replica and none was lost
    sc.audit_until_converged()
    sc.check(include=("durability", "lost_update"))
    sc.expect(durability="pass", lost_update="pass")
    sc.outcome.figures["shutdown_delay_s"] = {
        "mongo-a (site-a; revoked on kms-c, site-b)": round(delay_a, 3),
        "revocation seen on kms-a": round(lag_a, 3),
        "mongo-b (site-b; revoked on kms-c, its own server)": round(delay_b, 3),
    }
    sc.finding(
        f"Master key revoked on kms-c (site-b): mongo-a (site-a, on kms-a) shut down "
        f"{delay_a:.3f} s later (kms-a showed it after {lag_a:.3f} s), after "
        f"{len(worked_a)} more successful operations (bound "
        f"{remote_bound:.3f} s: replication every {interval_s:g} s, polls every {poll_s:g} s); "
        f"mongo-b, revoked on its own server, {delay_b:.3f} s later (bound {local_bound:.3f} s)"
    )
