"""`sync` with the primary's site partitioned away: site-b cannot write (read-only) but
still reads its local copies; site-a, with the primary, writes."""

import time

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites-sync.yaml"), pytest.mark.kms_needs("partition")]

MIX = {"create": 0.4, "get": 0.6}


def test_sync_primary_unreachable_other_site_is_read_only(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20, mix=MIX)
    deadline = kms_scenario.op_deadline(10)
    with wl.running():
        for c in ("vc-a", "vc-b"):
            wl.wait_for(
                lambda cs, c=c: (
                    sum(1 for x in cs if x.client == c and x.op == "create" and x.outcome == "ok")
                    >= 5
                ),
                deadline,
                f"5 keys created by {c} before the partition",
            )
        with kms_scenario.fault("partition", "site-a site-b"):
            cut = time.monotonic()
            wl.wait_for(
                lambda cs: all(
                    sum(1 for x in cs if x.client == c and x.start >= cut and x.op == op) >= 5
                    for c in ("vc-a", "vc-b")
                    for op in ("create", "get")
                ),
                deadline,
                "5 creates and 5 gets per site during the partition",
            )
    verdicts = kms_scenario.check(include=("order", "availability", "site_availability"))
    kms_scenario.expect(order="pass", availability="fail", site_availability="pass")
    window = next(iter(verdicts["site_availability"].figures["windows"].values()))
    a, b = window["sites"]["site-a"], window["sites"]["site-b"]
    assert a["creates"]["ok_share"] == 1.0 and a["gets"]["ok_share"] == 1.0
    assert b["creates"]["ok_share"] == 0.0, "site-b wrote without its primary"
    assert b["gets"]["ok_share"] == 1.0, "site-b could not read its local copies"
    kms_scenario.finding(
        "sync, primary kms-a partitioned from site-b: site-b read-only "
        f"({b['creates']['count']} creates refused, {b['gets']['count']} gets served); "
        "site-a kept writing"
    )
