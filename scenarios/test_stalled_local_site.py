"""The cost of a stalled local site: kms-a, kms-b and kms-c accept TCP but never answer.
A vCenter-like client waits its response timeout on each before the remote site
answers: ≈ 3 × response_s per request (3 minutes at vCenter's 60 s)."""

import pytest

from harness.checkers.failover import client_figures

pytestmark = [pytest.mark.kms_topology("two-sites.yaml"), pytest.mark.kms_needs("blackhole")]

UNSCALED_RESPONSE_S = 60


def test_stalled_local_site_costs_three_response_timeouts(kms_scenario):
    kms_scenario.fault_window(
        "blackhole", ["kms-a", "kms-b", "kms-c"], clients=["vc-a"], failovers=1, baseline_ops=5
    )
    verdicts = kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    t = kms_scenario.topology.response_timeout
    measured = [
        c for c in client_figures(verdicts["failover"].figures) if c.get("status") == "pass"
    ]
    assert measured, "no judged failover"
    assert all(abs(c["expected_wait_s"] - 3 * t) < 1e-6 for c in measured)
    assert all(c["served_by"] == "kms-d" for c in measured)
    worst = max(c["failover_s"] for c in measured)
    kms_scenario.finding(
        f"a stalled local site costs every request {worst:.2f} s (≈ 3 × response timeout "
        f"{t:g} s) before kms-d answers; unscaled, vCenter waits "
        f"{3 * UNSCALED_RESPONSE_S} s per request"
    )
