"""Clock skew and replication: an operator's later Revoke silently undone.

kms-b's clock runs an hour behind (`clock-skew`). An operator creates and activates a
key through kms-a, waits until kms-b holds it Active, then revokes it through kms-b, and
the Revoke is acknowledged. Async replication resolves the two versions of the key by
last writer wins on each replica's wall clock: the Revoke, stamped an hour in the past,
loses to the earlier Activate, and kms-a keeps serving the key as Active. The
`lost_update` checker fails naming the lost Revoke, the Activate that won, where and
when each was made and kms-b's clock: an expected failure, a finding. The replicas
then agree — on the Activate: kms-b itself shows the key Active again. Under `sync` the
same steps pass: the primary orders every write, no replica's clock decides.
"""

from __future__ import annotations

import pytest

from harness.history import Snapshot
from harness.scenario import Scenario
from harness.workload import Script, Step

SKEW = "-1h"
CLOCK_SKEW = "clock-skew"
STEPS = (
    Step("admin-a", "create", key="k", served_by="kms-a"),
    Step("admin-a", "activate", key="k", served_by="kms-a"),
    Step("admin-b", "revoke", key="k", served_by="kms-b"),
)


def revoke_through_the_skewed_replica(sc: Scenario) -> tuple[str, float | None]:
    """Create and Activate through kms-a, Revoke through kms-b (its clock `SKEW` off)
    once kms-b holds the key Active; heal the clock; audit until the replicas agree or
    50 replication intervals pass. The key's uid, and how long agreement took (None:
    never)."""
    script = Script({name: sc.client(name) for name in ("admin-a", "admin-b")})

    def settle(step: Step, _done: object) -> None:
        if step.op == "activate":  # kms-b can revoke the key only once it holds it Active
            assert sc.audit_until_converged() is not None, "kms-b never received the Activate"

    with sc.fault(CLOCK_SKEW, "kms-b", offset=SKEW):
        script.run(STEPS, between=settle)
    interval = float(sc.cluster.state.replication.get("interval_ms", 250)) / 1000
    return script.keys["k"], sc.audit_until_converged(deadline_s=50 * interval)


def states(sc: Scenario, uid: str) -> dict[str, str]:
    """What each replica's last audit showed of key `uid`."""
    last: dict[str, Snapshot] = {}
    for e in sc.history.events():
        if isinstance(e, Snapshot):
            last[e.replica] = e
    return {r: str(s.objects.get(uid, {}).get("state", "absent")) for r, s in sorted(last.items())}


@pytest.mark.kms_topology("two-replicas-async.yaml")
@pytest.mark.kms_needs(CLOCK_SKEW)
def test_async_a_revoke_on_a_replica_with_a_slow_clock_is_lost(kms_scenario: Scenario) -> None:
    uid, took = revoke_through_the_skewed_replica(kms_scenario)
    verdicts = kms_scenario.check(include=("lost_update", "durability"))
    kms_scenario.expect(lost_update="fail", durability="pass")
    lost = verdicts["lost_update"]
    assert f"key {uid}: the Revoke (admin-b#0:1) acknowledged by kms-b" in lost.summary
    assert "(→ DEACTIVATED) is lost on kms-a" in lost.summary, lost.summary
    assert "ACTIVE, left by the earlier Activate (admin-a#0:2) acknowledged by kms-a" in (
        lost.summary
    )
    assert f"kms-b {CLOCK_SKEW} {SKEW}" in lost.summary, lost.summary
    # last writer wins converges, on the wrong answer: both replicas show it Active
    assert took is not None, "the replicas never agreed on the key"
    shown = states(kms_scenario, uid)
    assert shown == {"kms-a": "ACTIVE", "kms-b": "ACTIVE"}, shown
    agreed = f"agreed after {took:.2f} s"
    kms_scenario.finding(
        f"async + {CLOCK_SKEW} {SKEW} on kms-b: the Revoke an operator saw succeed was "
        f"undone (replicas {agreed}; key {uid}: "
        f"{', '.join(f'{r} {s}' for r, s in shown.items())}): {lost.summary}"
    )


@pytest.mark.kms_topology("two-replicas-sync.yaml")
@pytest.mark.kms_needs(CLOCK_SKEW)
def test_sync_the_primary_orders_the_revoke_whatever_the_clocks(kms_scenario: Scenario) -> None:
    uid, took = revoke_through_the_skewed_replica(kms_scenario)
    verdicts = kms_scenario.check(include=("lost_update", "durability", "convergence"))
    kms_scenario.expect(lost_update="pass", durability="pass", convergence="pass")
    assert took is not None
    assert states(kms_scenario, uid) == {"kms-a": "DEACTIVATED", "kms-b": "DEACTIVATED"}
    kms_scenario.finding(
        f"sync + {CLOCK_SKEW} {SKEW} on kms-b: the Revoke stuck on every replica "
        f"(agreed after {took:.2f} s): {verdicts['lost_update'].summary}"
    )
