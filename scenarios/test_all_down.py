"""All replicas refused: a total outage (every operation fails, quickly); after heal the
client recovers on its first replica, and the recovery time is measured."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("refuse")]


def test_all_down_total_outage_then_recovery(kms_scenario):
    wl = kms_scenario.fault_window(
        "refuse", ["kms-a", "kms-b", "kms-c"], expect_served=False, failovers=10
    )
    verdicts = kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="fail")
    figures = verdicts["availability"].figures
    # the three faults go in one after another: every replica is down from the last
    # inject to the first heal, and no operation started then may succeed
    faults = kms_scenario.history.faults()
    all_down = max(f.t for f in faults if f.phase == "inject")
    first_heal = min(f.t for f in faults if f.phase == "heal")
    during = [c for c in wl.completes(since=all_down) if c.start < first_heal]
    assert during, "no operation ran while every replica was down"
    ok = [c for c in during if c.outcome == "ok"]
    assert not ok, f"an operation succeeded with every replica down: {ok[0]}"
    recovery = [w["recovery_s"] for w in figures["faults"].values()]
    # after heal the next operation starts within one interval (20/s) and takes about a
    # baseline operation: bound = interval + 4 × baseline p99 + 0.25 s slack
    inj = min(f.t for f in kms_scenario.history.faults() if f.phase == "inject")
    base = sorted(c.duration for c in wl.completes() if c.end < inj and c.outcome == "ok")
    p99 = base[min(len(base) - 1, int(0.99 * len(base)))]
    bound = 1 / 20 + 4 * p99 + 0.25
    assert all(r is not None and r <= bound for r in recovery), f"recovery {recovery} > {bound}"
    kms_scenario.finding(f"total outage; recovery after heal: {max(recovery):.3f} s")
    healed = max(f.t for f in kms_scenario.history.faults() if f.phase == "heal")
    assert {c.served_by for c in wl.completes(since=healed) if c.outcome == "ok"} == {"kms-a"}
