"""latency on the first replica: below the response timeout nobody fails over; every
request served by it is slower by at least the added latency (the slowdown verdict)."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("latency")]

LATENCY_MS = 100


def test_latency_below_timeout_slows_but_does_not_fail_over(kms_scenario):
    kms_scenario.fault_window("latency", "kms-a", ms=LATENCY_MS, expect_served=False, failovers=10)
    kms_scenario.check(include=("order", "availability", "slowdown"))
    kms_scenario.expect(order="pass", availability="pass", slowdown="pass")
    fig = next(iter(kms_scenario.outcome.verdicts["slowdown"].figures.values()))
    assert fig["affected_ops"] >= 10 and fig["failed_over"] == 0, fig
