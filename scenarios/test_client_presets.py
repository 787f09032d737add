"""The clients people run, on the seed two-site layout (`two-sites-presets.yaml`).

- MongoDB (`mongodb` preset, at-start): it chooses its KMS when it starts. When site-a
  goes down under it, every operation fails — it does not fail over — until it is
  restarted; restarted while site-a is still down, it walks its list and starts on
  site-b.
- NetApp ONTAP (`ontap` preset with two key-server groups): a primary, then its
  secondaries in listed order, then the next group: with kms-d (its primary) killed it
  goes to kms-e, its first secondary, never to the other group's primary.
"""

import time

import pytest

from harness.history import Complete

pytestmark = [pytest.mark.kms_topology("two-sites-presets.yaml")]
SITE_A = ["kms-a", "kms-b", "kms-c"]
SITE_B = {"kms-d", "kms-e", "kms-f"}


def test_mongodb_fails_until_restarted_then_starts_on_site_b(kms_scenario):
    sc = kms_scenario
    wl = sc.workload(["mongo"], rate_per_s=20)
    with wl.running():
        wl.wait_ok(5, sc.op_deadline(1))
        faults = [sc.fault("kill", r) for r in SITE_A]
        try:
            for f in faults:
                f.inject()
            t_down = time.monotonic()
            sc.note("site-a down")

            def failed_on_a(cs: list[Complete]) -> bool:
                late = [c for c in cs if c.client == "mongo" and c.start >= t_down]
                return sum(1 for c in late if c.outcome != "ok") >= 5

            wl.wait_for(failed_on_a, sc.op_deadline(5), "5 failed mongo ops with site-a down")
            sc.restart_client("mongo")
            t_restart = time.monotonic()

            def served_by_b(cs: list[Complete]) -> bool:
                return any(
                    c.start >= t_restart and c.outcome == "ok" and c.served_by in SITE_B for c in cs
                )

            wl.wait_for(served_by_b, sc.op_deadline(2), "mongo served by site-b after restart")
        finally:
            for f in faults:
                f.heal()
        wl.wait_ok(3, sc.op_deadline(3), since=time.monotonic())
    sc.audit_until_converged()
    sc.check()
    ops = wl.completes()
    before = [c for c in ops if t_down <= c.start < t_restart]
    after = [c for c in ops if c.start >= t_restart]
    # at-start: before the restart every attempt went to kms-a only, and failed
    assert before and all(c.outcome != "ok" for c in before), before
    assert {a.server for c in before for a in c.attempts} == {"kms-a"}
    first = next(c for c in after if c.outcome == "ok")
    assert [a.server for a in first.attempts] == ["kms-a", "kms-b", "kms-c", "kms-d"]
    # every later op during the outage stays on the server it chose at the restart
    healed = faults[0].healed_at or time.monotonic()
    assert {c.served_by for c in after if c.outcome == "ok" and c.end < healed} == {"kms-d"}
    sc.expect(order="pass")
    sc.finding(
        f"MongoDB (at-start), site-a killed: {len(before)} operations failed on kms-a with no "
        f"failover until the restart; {first.end - t_restart:.3f} s after the restart it was "
        f"served by {first.served_by} (site-b)"
    )


def test_ontap_tries_its_primary_then_its_secondaries(kms_scenario):
    wl = kms_scenario.fault_window("kill", "kms-d", clients=["ontap"], failovers=5)
    kms_scenario.audit_until_converged()
    kms_scenario.check()
    kms_scenario.expect(order="pass", failover="pass")
    moved = [c for c in wl.completes() if c.served_by == "kms-e"]
    assert moved, [c.served_by for c in wl.completes()]
    assert [a.server for a in moved[0].attempts] == ["kms-d", "kms-e"]
    assert all(c.served_by != "kms-a" for c in wl.completes())
