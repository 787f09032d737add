"""Order on the seed two-site layout: each site's client uses its local replicas first
(site-a: kms-a,b,c then d,e,f) and goes remote only when its whole site is down."""

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites.yaml"), pytest.mark.kms_needs("refuse")]

SITE_A = {"kms-a", "kms-b", "kms-c"}
SITE_B = {"kms-d", "kms-e", "kms-f"}


def test_each_site_client_uses_its_first_local_replica(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20)
    with wl.running():
        wl.wait_ok(10, kms_scenario.op_deadline(10), client="vc-a")
        wl.wait_ok(10, kms_scenario.op_deadline(10), client="vc-b")
    kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="pass")
    served = {(c.client, c.served_by) for c in kms_scenario.completes()}
    assert served == {("vc-a", "kms-a"), ("vc-b", "kms-d")}, served


def test_local_site_down_reaches_the_remote_site_at_once(kms_scenario):
    wl = kms_scenario.fault_window("site-down", "site-a", clients=["vc-a", "vc-b"])
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    heal = next(f for f in kms_scenario.history.faults() if f.phase == "heal")
    during = [c for c in wl.completes(since=inj.t) if c.end <= heal.t and c.outcome == "ok"]
    assert {c.served_by for c in during if c.client == "vc-a"} == {"kms-d"}
    assert {c.served_by for c in during if c.client == "vc-b"} == {"kms-d"}


def test_one_local_replica_down_never_leaves_the_site(kms_scenario):
    wl = kms_scenario.fault_window("refuse", "kms-a", clients=["vc-a"], failovers=10)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    served = {c.served_by for c in wl.completes() if c.outcome == "ok"}
    assert served <= SITE_A, f"vc-a went remote with only kms-a down: {served - SITE_A}"
    assert "kms-b" in served
