"""blackhole on the first replica: TCP connects, nothing answers; the client waits
its response timeout, then moves on (vCenter: 60 s per request, scaled)."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("blackhole")]


def test_blackhole_first_replica_costs_one_response_timeout(kms_scenario):
    kms_scenario.fault_window("blackhole", "kms-a", failovers=2)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    fo = kms_scenario.outcome.verdicts["failover"].figures
    client = next(v for k, v in fo.items() if isinstance(v, dict) and "clients" in v)["clients"]
    assert client["vc-a"]["failover_s"] >= kms_scenario.topology.response_timeout * 0.98
