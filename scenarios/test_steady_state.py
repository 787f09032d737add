"""Steady state: no fault; every operation succeeds on the first replica of the list."""

import pytest

pytestmark = pytest.mark.kms_topology("one-site.yaml")


def test_steady_state_every_operation_served_by_first_replica(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20, mix={"create": 0.3, "get": 0.5, "locate": 0.2})
    with wl.running():
        wl.wait_ok(40, kms_scenario.op_deadline(40))
    kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="pass")
    served = {c.served_by for c in kms_scenario.completes()}
    assert served == {"kms-a"}, f"steady state served by {served}, expected only kms-a"
