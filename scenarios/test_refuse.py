"""refuse on the first replica: a vCenter-like client moves to kms-b at once."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("refuse")]


def test_refuse_first_replica_fails_over_at_once(kms_scenario):
    kms_scenario.fault_window("refuse", "kms-a")
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
