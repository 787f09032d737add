"""The async crash window under `sync`: kms-a (the primary) copies every write to every
reachable replica before answering, so a lagging replication link only slows writes;
wiping kms-a right after loses nothing."""

import pytest

pytestmark = [
    pytest.mark.kms_topology("two-sites-sync.yaml"),
    pytest.mark.kms_needs("replication-lag", "wipe"),
]

LAG_MS = 200


def test_sync_crash_window_loses_nothing(kms_scenario):
    client = kms_scenario.client("vc-a")
    with kms_scenario.fault("replication-lag", "kms-a", ms=LAG_MS):
        made = [client.create() for _ in range(5)]
        assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in made)
        for c in made:
            assert client.get(c.key).outcome == "ok"
        with kms_scenario.fault("wipe", "kms-a"):
            pass  # killed, database deleted, started empty
    assert kms_scenario.audit_until_converged() is not None
    kms_scenario.check(include=("durability", "convergence"))
    kms_scenario.expect(durability="pass", convergence="pass")
    slowest = min(c.duration for c in made)
    assert slowest >= LAG_MS / 1000, f"a sync write answered in {slowest:.3f} s, before its copies"
    kms_scenario.finding(
        f"sync: every write waited for its copies (≥ {LAG_MS} ms replication lag, fastest "
        f"write {slowest:.3f} s); wiping the primary lost no acknowledged key"
    )
