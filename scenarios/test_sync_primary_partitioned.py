"""`sync` with the primary's site partitioned away: site-b cannot write (read-only) but
still reads its local copies; site-a, with the primary, writes."""

import pytest

pytestmark = [pytest.mark.kms_topology("two-sites-sync.yaml"), pytest.mark.kms_needs("partition")]


def test_sync_primary_unreachable_other_site_is_read_only(kms_scenario):
    kms_scenario.reads_and_writes_during("partition", "site-a site-b", ["vc-a", "vc-b"])
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
