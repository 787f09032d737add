"""Site partition under async replication: both sites keep serving (reads and writes);
keys made on each side during the partition reach the other after heal; the time to
converge is reported."""

import time

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites-async.yaml"), pytest.mark.kms_needs("partition")]

MIX = {"create": 0.4, "get": 0.6}


def test_partition_both_sites_serve_and_converge_after_heal(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20, mix=MIX)
    deadline = kms_scenario.op_deadline(10)
    with wl.running():
        for c in ("vc-a", "vc-b"):
            wl.wait_ok(10, deadline, client=c)
        with kms_scenario.fault("partition", "site-a site-b"):
            cut = time.monotonic()
            for c in ("vc-a", "vc-b"):
                wl.wait_for(
                    lambda cs, c=c: (
                        sum(
                            1
                            for x in cs
                            if x.client == c
                            and x.start >= cut
                            and x.op == "create"
                            and x.outcome == "ok"
                        )
                        >= 5
                    ),
                    deadline,
                    f"5 keys created by {c} during the partition",
                )
        healed = time.monotonic()
        wl.wait_ok(5, deadline, since=healed)
    took = kms_scenario.audit_until_converged()
    verdicts = kms_scenario.check(
        include=("order", "availability", "durability", "convergence", "site_availability"),
    )
    kms_scenario.expect(
        order="pass",
        availability="pass",
        durability="pass",
        convergence="pass",
        site_availability="pass",
    )
    assert took is not None
    sa = verdicts["site_availability"].figures
    window = next(iter(sa["windows"].values()))
    for site in ("site-a", "site-b"):
        assert window["sites"][site]["creates"]["ok_share"] == 1.0, (site, window["sites"][site])
    kms_scenario.finding(
        f"async partition: both sites kept writing; replicas agreed "
        f"{verdicts['convergence'].figures.get('convergence_s'):.2f} s after heal"
    )
