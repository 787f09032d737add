"""A misordered topology: site-a's client lists the remote kms-d first. Every request
crosses sites; with latency on the site link it pays that latency on every request,
while the well-ordered site-b client does not. The linter flags the order."""

import statistics
import time

import pytest

from harness.topology_lint import lint

pytestmark = [
    pytest.mark.kms_topology("two-sites-misordered.yaml"),
    pytest.mark.kms_needs("site-latency"),
]

WAN_MS = 100


def test_remote_first_order_crosses_sites_and_pays_wan_latency(kms_scenario):
    rules = {(f.rule, f.where) for f in lint(kms_scenario.topology)}
    assert ("remote-before-local", "clients.vc-a.order[0]") in rules

    wl = kms_scenario.workload(rate_per_s=10)
    deadline = kms_scenario.op_deadline(10)
    with wl.running():
        for c in ("vc-a", "vc-b"):
            wl.wait_ok(8, deadline, client=c)
        with kms_scenario.fault("site-latency", "site-a site-b", ms=WAN_MS):
            t = time.monotonic()
            for c in ("vc-a", "vc-b"):
                wl.wait_ok(8, deadline, since=t, client=c)
    kms_scenario.check(include=("order", "availability"))
    kms_scenario.expect(order="pass", availability="pass")
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    heal = next(f for f in kms_scenario.history.faults() if f.phase == "heal")

    def median(client, during):
        ops = [
            c
            for c in wl.completes(client=client)
            if c.outcome == "ok" and ((inj.t <= c.start and c.end <= heal.t) == during)
        ]
        return statistics.median(c.duration for c in ops), {c.served_by for c in ops}

    a_before, a_served = median("vc-a", False)
    a_during, _ = median("vc-a", True)
    b_before, _ = median("vc-b", False)
    b_during, b_served = median("vc-b", True)
    assert a_served == {"kms-d"}, f"vc-a served by {a_served}: every request should cross sites"
    assert b_served == {"kms-d"}
    assert a_during - a_before >= WAN_MS / 1000, "the misordered client did not pay the WAN"
    assert b_during - b_before < WAN_MS / 1000, "the local client paid WAN latency"
    kms_scenario.finding(
        f"misordered vc-a (kms-d first) crossed sites on every request: median "
        f"{a_before * 1000:.0f} → {a_during * 1000:.0f} ms with {WAN_MS} ms on the site link; "
        f"well-ordered vc-b stayed at {b_during * 1000:.0f} ms"
    )
