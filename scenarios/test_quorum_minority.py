"""`quorum` with a minority site cut off: site-c (1 of 5 replicas) is read-only, the
majority (sites a and b, 4 of 5) keeps writing."""

import time

import pytest

pytestmark = [
    pytest.mark.kms_topology("three-sites-quorum.yaml"),
    pytest.mark.kms_needs("partition"),
]

MIX = {"create": 0.4, "get": 0.6}


def test_quorum_minority_read_only_majority_writes(kms_scenario):
    wl = kms_scenario.workload(rate_per_s=20, mix=MIX)
    deadline = kms_scenario.op_deadline(10)
    with wl.running():
        for c in ("vc-a", "vc-c"):
            wl.wait_for(
                lambda cs, c=c: (
                    sum(1 for x in cs if x.client == c and x.op == "create" and x.outcome == "ok")
                    >= 5
                ),
                deadline,
                f"5 keys created by {c} before the partition",
            )
        with kms_scenario.fault("partition", "site-c"):
            cut = time.monotonic()
            wl.wait_for(
                lambda cs: all(
                    sum(1 for x in cs if x.client == c and x.start >= cut and x.op == op) >= 5
                    for c in ("vc-a", "vc-c")
                    for op in ("create", "get")
                ),
                deadline,
                "5 creates and 5 gets per site during the partition",
            )
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
