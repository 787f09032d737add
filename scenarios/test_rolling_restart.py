"""Rolling restart of every replica, one by one, under load: a vCenter-like client
never sees a failed operation (it moves on at once from the replica being restarted)."""

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites.yaml"), pytest.mark.kms_needs("restart")]


def test_rolling_restart_no_failed_operation(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20)
    with wl.running():
        wl.wait_ok(10, kms_scenario.op_deadline(10))
        for replica in kms_scenario.topology.replicas:
            with kms_scenario.fault("restart", replica):
                pass  # kill, start again, wait for its KMIP answer
            since = kms_scenario.history.faults()[-1].t
            wl.wait_ok(4, kms_scenario.op_deadline(4), since=since)
    kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="pass")
    failed = [c for c in kms_scenario.completes() if c.outcome != "ok"]
    assert not failed, f"{len(failed)} failed operation(s), first: {failed[0]}"
    restarted = {f.target for f in kms_scenario.history.faults() if f.phase == "inject"}
    assert restarted == set(kms_scenario.topology.replicas)
