"""Scale: a site partition on 40 replicas (five sites of eight, async multi-master,
`five-sites-40-async.yaml`). Site-a is cut from the four others while a vCenter per site
reads and writes; every site keeps serving on its own replicas; after heal the keys made
on both sides reach all 40 replicas (byte for byte), and every verdict holds.

It needs the machine to itself (`kms_alone`): `make scale` runs it, and `make test` runs
it alone after the suite. What one machine does at this size is in the README ("How far
one machine goes")."""

import time

import pytest

pytestmark = [
    pytest.mark.kms_topology("five-sites-40-async.yaml"),
    pytest.mark.kms_needs("partition"),
    pytest.mark.kms_alone("40 replicas on 2 cores need the machine to themselves"),
]

CLIENTS = ["vc-a", "vc-b", "vc-c", "vc-d", "vc-e"]
# few keys: the audit reads every one on each of the 40 replicas (Get + attributes)
MIX = {"create": 0.2, "get": 0.8}


def test_site_partition_on_forty_replicas_every_site_serves_and_all_converge(kms_scenario):
    sc = kms_scenario
    wl = sc.workload(CLIENTS, rate_per_s=2, mix=MIX)
    deadline = sc.op_deadline(2)
    with wl.running():
        for c in CLIENTS:
            wl.wait_ok(3, deadline, client=c)
        with sc.fault("partition", "site-a"):
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
                        >= 2
                    ),
                    deadline,
                    f"2 keys created by {c} during the partition",
                )
        healed = time.monotonic()
        wl.wait_ok(5, deadline, since=healed)
    took = sc.audit_until_converged()
    # no failover to judge: every client lists its own site's eight replicas first, and
    # they all kept answering (as in test_async_partition)
    verdicts = sc.check(
        include=(
            "order",
            "availability",
            "fault_effect",
            "durability",
            "convergence",
            "site_availability",
        ),
    )
    sc.expect(
        order="pass",
        availability="pass",
        fault_effect="pass",
        durability="pass",
        convergence="pass",
        site_availability="pass",
    )
    assert took is not None
    sa = verdicts["site_availability"].figures
    window = next(iter(sa["windows"].values()))
    for site in ("site-a", "site-b"):
        assert window["sites"][site]["creates"]["ok_share"] == 1.0, (site, window["sites"][site])
    sc.finding(
        f"40 replicas, site-a partitioned from four sites: every site kept writing; all 40 "
        f"agreed {verdicts['convergence'].figures.get('convergence_s'):.2f} s after heal "
        f"(audit took {took:.1f} s)"
    )
