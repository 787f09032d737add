"""The walking engine against real replicas: what each policy field does to the attempts
an operation makes (one-site: kms-a, kms-b, kms-c behind Toxiproxy)."""

from __future__ import annotations

import select
from pathlib import Path

import pytest

from harness.client.failover_client import FailoverClient
from harness.client.operations import empty_client_config
from harness.client.policies import POLICIES, make_policy
from harness.client.policy_spec import PolicySpec, adjusted
from harness.cluster.local import LocalCluster
from harness.faults import make_fault
from harness.history import History
from harness.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kms_topology("one-site.yaml")]

CONNECT_S, RESPONSE_S = 0.5, 2.0


def _client(
    cluster: LocalCluster, spec: PolicySpec, history: History | None = None
) -> FailoverClient:
    st = cluster.state
    policy = make_policy(
        spec,
        st.endpoints("vc-a"),
        cluster.client_tls(),
        CONNECT_S,
        RESPONSE_S,
        empty_client_config(Path(st.state_dir) / "clients"),
    )
    return FailoverClient("vc-a", policy, history)


def _peer_closed(client: FailoverClient) -> bool:
    """Whether the server closed the client's open connection: an idle KMIP connection
    receives nothing unless the server closes it (close_notify, FIN)."""
    conn = client.policy._conn  # type: ignore[attr-defined]
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


def _trail(done) -> list[tuple[str, str, bool]]:
    return [(a.server, a.outcome, a.reused) for a in done.attempts]


@pytest.mark.kms_needs("refuse")
def test_sticky_keeps_its_connection_and_per_operation_does_not(kms_cluster: LocalCluster) -> None:
    sticky = _client(kms_cluster, adjusted(POLICIES["vcenter"], selection="sticky"))
    per_op = _client(kms_cluster, POLICIES["vcenter"])
    for c in (sticky, per_op):
        c.locate()
    assert _trail(sticky.locate()) == [("kms-a", "ok", True)]
    assert _trail(per_op.locate()) == [("kms-a", "ok", False)]
    sticky.close()


@pytest.mark.kms_needs("refuse")
def test_at_start_stays_on_its_server_until_restarted(kms_cluster: LocalCluster) -> None:
    mongo = _client(kms_cluster, POLICIES["mongodb"])
    assert mongo.locate().served_by == "kms-a"
    with make_fault("refuse", kms_cluster, "kms-a"):
        stuck = mongo.locate()
        assert stuck.outcome == "fail" and _trail(stuck) == [("kms-a", "refused", False)]
        assert "chosen at start" in stuck.error
        mongo.restart()
        moved = mongo.locate()
        assert _trail(moved) == [("kms-a", "refused", False), ("kms-b", "ok", False)]
        assert _trail(mongo.locate()) == [("kms-b", "ok", False)]


@pytest.mark.kms_needs("refuse")
def test_a_skip_window_avoids_a_server_that_failed_to_connect(kms_cluster: LocalCluster) -> None:
    spec = adjusted(POLICIES["vcenter"], skip_failed_s=60.0)
    client = _client(kms_cluster, spec)
    with make_fault("refuse", kms_cluster, "kms-a"):
        first = client.locate()
        assert _trail(first) == [("kms-a", "refused", False), ("kms-b", "ok", False)]
        assert _trail(client.locate()) == [("kms-b", "ok", False)]  # kms-a skipped
    plain = _client(kms_cluster, POLICIES["vcenter"])
    with make_fault("refuse", kms_cluster, "kms-a"):
        plain.locate()
        assert _trail(plain.locate())[0] == ("kms-a", "refused", False)


@pytest.mark.kms_needs("lost-response")
def test_retries_resend_a_mutation_only_when_the_policy_says_so(kms_cluster: LocalCluster) -> None:
    resend = adjusted(
        POLICIES["vcenter"], selection="sticky", retries=1, retry_on=("eof",), resend_mutations=True
    )
    careful = adjusted(resend, resend_mutations=False)
    for spec, expected in ((resend, "ok"), (careful, "info")):
        client = _client(kms_cluster, spec)
        client.locate()
        with make_fault("lost-response", kms_cluster, "kms-a", count=1):
            done = client.create()
        assert done.outcome == expected, _trail(done)
        assert done.attempts[0].outcome == "eof" and done.attempts[0].sent
        assert len(done.attempts) == (2 if expected == "ok" else 1)
        client.close()


@pytest.mark.kms_needs("idle-reap")
def test_idle_reconnect_opens_a_new_connection_before_the_server_reaps_it(
    kms_cluster: LocalCluster,
) -> None:
    spec = adjusted(POLICIES["vcenter"], selection="sticky", idle_reconnect_s=0.3)
    client = _client(kms_cluster, spec)
    naive = _client(kms_cluster, adjusted(spec, idle_reconnect_s=None))
    for c in (client, naive):
        c.locate()
    with make_fault("idle-reap", kms_cluster, "kms-a", after=0.6):
        for c in (client, naive):
            c.locate()  # a connection the reaper watches
        wait_until(
            lambda: _peer_closed(naive), 10.0, "the reaper closing the idle connection", poll_s=0.02
        )
        kept = client.locate()
        reaped = naive.locate()
    assert _trail(kept) == [("kms-a", "ok", False)]  # reconnected before using it
    assert _trail(reaped) == [("kms-a", "eof", True), ("kms-a", "ok", False)]
