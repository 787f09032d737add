"""flap: kms-a's links go down and up in cycles. A vCenter-like client moves to kms-b
whenever kms-a is down and back to kms-a when it is up; no operation fails."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("flap")]


def test_flap_first_replica_no_operation_fails(kms_scenario):
    scale = kms_scenario.topology.time_scale
    cycle = max(0.3, 10 * scale)
    wl = kms_scenario.fault_window("flap", "kms-a", down_s=cycle, up_s=cycle, failovers=3)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    served = {c.served_by for c in wl.completes(since=inj.t) if c.outcome == "ok"}
    assert "kms-b" in served, f"never failed over during flap (served by {served})"
