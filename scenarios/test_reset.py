"""reset on the first replica: connections are accepted then reset; next server at once."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("reset")]


def test_reset_first_replica_fails_over_at_once(kms_scenario):
    kms_scenario.fault_window("reset", "kms-a")
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    outcomes = {
        a.outcome for c in kms_scenario.completes() for a in c.attempts if a.server == "kms-a"
    }
    assert "reset" in outcomes, f"no attempt on kms-a was reset (saw {outcomes})"
