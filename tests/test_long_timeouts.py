"""A stalled service stays silent for the client's whole response timeout, also when
that is longer than PyKMIP's own 10 s session timeout (vCenter waits 60 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.client.failover_client import FailoverClient
from harness.client.operations import empty_client_config
from harness.client.policies import make_policy
from harness.cluster.local import LocalCluster
from harness.faults import make_fault

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kms_topology("one-site.yaml"),
    pytest.mark.kms_needs("blackhole"),
]

PYKMIP_SESSION_TIMEOUT_S = 10.0


def test_blackhole_outlasts_pykmip_session_timeout(kms_cluster: LocalCluster) -> None:
    response_timeout = PYKMIP_SESSION_TIMEOUT_S + 1.0
    st = kms_cluster.state
    policy = make_policy(
        "vcenter",
        st.endpoints("vc-a"),
        kms_cluster.client_tls(),
        1.0,
        response_timeout,
        empty_client_config(Path(st.state_dir) / "clients"),
    )
    client = FailoverClient("vc-a", policy, None)
    with make_fault("blackhole", kms_cluster, "kms-a"):
        done = client.locate()
    first = done.attempts[0]
    assert first.server == "kms-a"
    assert first.outcome == "timeout", (
        f"blackholed kms-a ended with {first.outcome} after {first.duration:.2f} s: "
        "the replica closed its silent session and the close leaked through"
    )
    assert first.duration >= response_timeout - 0.02
    assert done.outcome == "ok" and done.served_by == "kms-b"
