"""latency on the first replica: below the response timeout nobody fails over; every
request is slower by at least the added latency."""

import statistics

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("latency")]

LATENCY_MS = 100


def test_latency_below_timeout_slows_but_does_not_fail_over(kms_scenario):
    wl = kms_scenario.fault_window(
        "latency", "kms-a", ms=LATENCY_MS, expect_served=False, failovers=10
    )
    kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="pass")
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    heal = next(f for f in kms_scenario.history.faults() if f.phase == "heal")
    before = [c.duration for c in wl.completes() if c.end < inj.t and c.outcome == "ok"]
    during = [c for c in wl.completes(since=inj.t) if c.end <= heal.t]
    assert {c.served_by for c in during} == {"kms-a"}, "a client left kms-a under mere latency"
    slowdown = statistics.median(c.duration for c in during) - statistics.median(before)
    assert slowdown >= LATENCY_MS / 1000, f"median slowdown {slowdown:.3f} s < {LATENCY_MS} ms"
