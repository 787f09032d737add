"""`quorum` with a minority site cut off: site-c (1 of 5 replicas) is read-only, the
majority (sites a and b, 4 of 5) keeps writing."""

import pytest

pytestmark = [
    pytest.mark.kms_topology("three-sites-quorum.yaml"),
    pytest.mark.kms_needs("partition"),
]


def test_quorum_minority_read_only_majority_writes(kms_scenario):
    kms_scenario.reads_and_writes_during("partition", "site-c", ["vc-a", "vc-c"])
    verdicts = kms_scenario.check(include=("order", "availability", "site_availability"))
    kms_scenario.expect(order="pass", availability="fail", site_availability="pass")
    window = next(iter(verdicts["site_availability"].figures["windows"].values()))
    a, c = window["sites"]["site-a"], window["sites"]["site-c"]
    assert a["creates"]["ok_share"] == 1.0, "the majority could not write"
    assert c["creates"]["ok_share"] == 0.0, "the minority wrote without a majority"
    assert c["gets"]["ok_share"] == 1.0, "the minority could not read"
    kms_scenario.finding(
        f"quorum: minority site-c read-only ({c['creates']['count']} creates refused, "
        f"{c['gets']['count']} gets served); majority wrote {a['creates']['count']} keys"
    )
