"""Async crash window: keys acknowledged by kms-a while its replication is held back,
then kms-a is killed and its database wiped before those keys left it. They are gone:
`durability` fails and names them, with the measured RPO. Keys replicated before the
pause survive (the wiped replica is refilled from its peers)."""

import pytest

pytestmark = [
    pytest.mark.kms_topology("two-sites-async.yaml"),
    pytest.mark.kms_needs("replication-pause", "wipe"),
]


def test_async_crash_window_loses_acknowledged_keys(kms_scenario):
    client = kms_scenario.client("vc-a")
    before = [client.create() for _ in range(5)]
    for c in before:
        assert c.outcome == "ok" and c.served_by == "kms-a"
        client.get(c.key)
    assert kms_scenario.audit_until_converged() is not None, "baseline never replicated"
    with kms_scenario.fault("replication-pause", "kms-a"):
        window = [client.create() for _ in range(5)]
        assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in window)
        for c in window:
            assert client.get(c.key).outcome == "ok"  # acknowledged and readable
        with kms_scenario.fault("wipe", "kms-a"):
            pass  # killed, database deleted, started empty (heal: nothing comes back)
    assert kms_scenario.audit_until_converged() is not None
    verdicts = kms_scenario.check(include=("durability", "convergence"))
    kms_scenario.expect(durability="fail", convergence="pass")
    figures = verdicts["durability"].figures
    lost = {k["uid"] for k in figures["lost"]}
    assert lost == {c.key for c in window}, f"lost {sorted(lost)}"
    assert not lost & {c.key for c in before}, "a replicated key was lost"
    crash = next(iter(figures["crash_faults"].values()))
    assert crash["lost"] == 5 and crash["rpo_s"] > 0
    kms_scenario.finding(
        f"async: {len(lost)} acknowledged keys lost with kms-a's database "
        f"(RPO {crash['rpo_s']:.2f} s of writes); every VM encrypted with them is unrecoverable"
    )
