"""Faults on the second site's first replica, kms-d (vc-b's first choice, vc-a's fourth):
a stall costs vc-b one response timeout per request before kms-e answers; a kill is
refused at once and kms-d serves again after its restart. On the swarm backend's
two-node lab site-b runs on node 2, so these are faults on a remote node (its engine
pauses, kills and restarts the container); elsewhere they cost the same."""

import pytest

from harness.checkers.failover import client_figures

pytestmark = [pytest.mark.kms_topology("two-sites.yaml"), pytest.mark.kms_needs("stall", "kill")]


def test_stall_of_kms_d_costs_vc_b_one_response_timeout(kms_scenario):
    kms_scenario.fault_window("stall", "kms-d", clients=["vc-b"], failovers=2)
    verdicts = kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    measured = [
        c for c in client_figures(verdicts["failover"].figures) if c.get("status") == "pass"
    ]
    assert measured, "no judged failover"
    assert all(c["served_by"] == "kms-e" for c in measured), measured
    t = kms_scenario.topology.response_timeout
    assert all(abs(c["expected_wait_s"] - t) < 1e-6 for c in measured), measured
    assert kms_scenario.cluster.replica_running("kms-d"), "kms-d did not survive the stall"


def test_kill_of_kms_d_fails_vc_b_over_at_once_and_kms_d_serves_after_restart(kms_scenario):
    wl = kms_scenario.fault_window("kill", "kms-d", clients=["vc-b"], recovery_ops=5)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    healed = max(f.t for f in kms_scenario.history.faults() if f.phase == "heal")
    after = [c for c in wl.completes(since=healed) if c.outcome == "ok"]
    assert after and after[-1].served_by == "kms-d", "kms-d does not serve again after restart"
