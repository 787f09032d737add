"""kill: the first replica is killed (SIGKILL). Toxiproxy accepts then closes, so the
client moves on at once; healing starts kms-a again on its data and it serves again."""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("kill")]


def test_kill_first_replica_fails_over_at_once_and_recovers(kms_scenario):
    wl = kms_scenario.fault_window("kill", "kms-a", recovery_ops=5)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    healed = max(f.t for f in kms_scenario.history.faults() if f.phase == "heal")
    after = [c for c in wl.completes(since=healed) if c.outcome == "ok"]
    assert after and after[-1].served_by == "kms-a", "kms-a does not serve again after restart"
