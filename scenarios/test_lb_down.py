"""lb-down: a site's load balancer dies (its HAProxy killed). The replicas behind it are
fine, but a client that lists only that VIP has no way to them: a total outage for it,
while a client that lists the other site's VIP too fails over at once (Toxiproxy
accepts its connect and closes it: EOF, then the next server)."""

import time

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites-balancers.yaml")]


def test_lb_down_one_vip_is_an_outage_two_vips_fail_over(kms_scenario):
    sc = kms_scenario
    sc.fault_window("lb-down", "lb-a", clients=["vc-a", "vc-b"], failovers=3)
    sc.check(include=("failover", "order", "availability", "fault_effect"))
    sc.expect(failover="pass", order="pass", availability="pass")
    assert sc.cluster.balancers.running("lb-a"), "lb-a did not come back after the heal"


def test_lb_down_single_vip_client_loses_every_operation(kms_scenario):
    sc = kms_scenario
    wl = sc.workload(["vc-solo"], rate_per_s=20)
    with wl.running():
        wl.wait_ok(5, sc.op_deadline(1), since=0.0)
        with sc.fault("lb-down", "lb-a") as down:
            # the kill confirmed: the window opens when it starts, and an op may beat it
            dead = time.monotonic()
            wl.wait_for(
                lambda cs: sum(c.outcome != "ok" and c.start >= dead for c in cs) >= 5,
                sc.op_deadline(5),
                "5 operations of vc-solo to fail with lb-a down",
            )
        wl.wait_ok(3, sc.op_deadline(3), since=down.healed_at)
    # every operation that ran inside the outage (one still running when the heal began
    # may be served by the restarted HAProxy)
    during = [c for c in sc.completes() if dead <= c.start and c.end <= down.healed_at]
    assert during and all(c.outcome != "ok" for c in during), [c.outcome for c in during]
    assert all(
        a.server == "lb-a" and a.outcome in ("eof", "reset") for c in during for a in c.attempts
    )
    sc.check(include=("availability", "fault_effect"))
    sc.finding(f"lb-down lb-a: vc-solo (one VIP) lost all {len(during)} operations until the heal")
    sc.expect(availability="fail")
