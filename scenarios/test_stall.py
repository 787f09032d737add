"""stall: the first replica's processes are frozen (SIGSTOP). The kernel still accepts
TCP, nothing answers: like a blackhole, it costs one response timeout per request."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("stall")]


def test_stall_first_replica_costs_one_response_timeout(kms_scenario):
    kms_scenario.fault_window("stall", "kms-a", failovers=2)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    assert kms_scenario.cluster.replica_running("kms-a"), "kms-a did not survive SIGSTOP/SIGCONT"
