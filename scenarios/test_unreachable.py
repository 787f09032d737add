"""unreachable: SYNs to the first replica's address are dropped (iptables). The client
waits its connect timeout (vCenter: 5 s, scaled), then moves on. Needs root."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("unreachable")]


def test_unreachable_first_replica_costs_one_connect_timeout(kms_scenario):
    kms_scenario.fault_window("unreachable", "kms-a", failovers=3)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    outcomes = {
        a.outcome for c in kms_scenario.completes() for a in c.attempts if a.server == "kms-a"
    }
    assert "connect-timeout" in outcomes, f"no connect timeout on kms-a (saw {outcomes})"
