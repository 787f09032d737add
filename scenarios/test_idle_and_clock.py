"""Idle connections and clocks: faults a client meets only after a quiet period, or
not at all until a certificate check goes wrong.

- `idle-reap`: the replica closes (or, silent, forgets) a connection idle longer than
  `after`. The vCenter model connects for every operation and never notices. PyKMIP
  keeps one connection: after every quiet period its first request fails (EOF), or
  with `silent` waits out its timeout and fails — it does not retry (ceph-nvmeof #1905).
  The `retrying` preset (ceph-nvmeof's fix) reconnects and sends again: every operation
  succeeds, the first request after a quiet period paying the EOF (or, silent, its
  response timeout).
- `clock-skew`: a replica whose clock is an hour off serves clients as before (its
  certificates are valid from 2 days before the cluster started); two years ahead it
  sees the clients' certificates as expired and refuses every new handshake, while an
  open connection (PyKMIP's) goes on working: TLS does not verify again.
"""

import pytest

from harness.history import Complete

pytestmark = [pytest.mark.kms_topology("one-site.yaml")]

QUIET_S = 1.0  # the reaper's idle limit
GAP_S = 2.0  # the workload's pause between operations: every connection goes idle


def _during(kms_scenario, wl) -> list[Complete]:
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    heal = next(f for f in kms_scenario.history.faults() if f.phase == "heal")
    return [c for c in wl.completes() if inj.t < c.start < heal.t]


@pytest.mark.kms_needs("idle-reap")
@pytest.mark.parametrize("silent", [False, True], ids=["closed", "silent"])
@pytest.mark.parametrize("policy", ["vcenter", "pykmip", "retrying"])
def test_idle_reap_breaks_only_the_client_that_keeps_its_connection(kms_scenario, policy, silent):
    # every operation comes after a quiet period longer than the reaper's limit
    wl = kms_scenario.fault_window(
        "idle-reap",
        "kms-a",
        policy=policy,
        failovers=3,
        expect_served=False,
        rate_per_s=1 / GAP_S,
        baseline_ops=2,
        recovery_ops=1,
        after=QUIET_S,
        silent=silent,
    )
    kms_scenario.check()
    kept = policy == "pykmip"
    kms_scenario.expect(availability="fail" if kept else "pass")
    ops = _during(kms_scenario, wl)
    assert len(ops) >= 3, ops
    if policy == "retrying":
        assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in ops), ops
        # the request on the reaped connection failed, and was sent again at once
        saved = [c for c in ops if c.attempts[0].reused and c.attempts[0].outcome != "ok"]
        assert saved, [c.attempts for c in ops]
        first, again = saved[0].attempts[0], saved[0].attempts[1]
        assert first.outcome == ("timeout" if silent else "eof"), first
        assert again.server == "kms-a" and not again.reused and again.outcome == "ok"
        kms_scenario.finding(
            f"retrying client, connection reaped after {QUIET_S:g} s idle: all {len(ops)} "
            f"operations succeeded; {len(saved)} met the reaped connection "
            f"({first.outcome}, {first.duration:.2f} s) and reconnected"
        )
        return
    if not kept:
        assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in ops), ops
        return
    failed = [c for c in ops if c.outcome != "ok"]
    first = failed[0].attempts[0]
    assert first.server == "kms-a" and first.reused, failed[0].attempts
    assert first.outcome == ("timeout" if silent else "eof"), first
    how = "waited out its timeout" if silent else "got EOF"
    kms_scenario.finding(
        f"PyKMIP, connection reaped after {QUIET_S:g} s idle ({'silent' if silent else 'FIN'}): "
        f"{len(failed)} of {len(ops)} operations after a {GAP_S:g} s pause failed — the first "
        f"request on the reaped connection {how} ({first.duration:.2f} s), no retry"
    )


@pytest.mark.kms_needs("clock-skew")
@pytest.mark.parametrize("policy", ["vcenter", "pykmip"])
def test_a_clock_an_hour_off_changes_nothing_for_clients(kms_scenario, policy):
    wl = kms_scenario.fault_window(
        "clock-skew", "kms-a", policy=policy, failovers=5, expect_served=False, offset="-1h"
    )
    kms_scenario.check()
    kms_scenario.expect(availability="pass")
    assert all(c.served_by == "kms-a" for c in _during(kms_scenario, wl) if c.outcome == "ok")


@pytest.mark.kms_needs("clock-skew")
@pytest.mark.parametrize("policy", ["vcenter", "pykmip"])
def test_a_replica_two_years_ahead_refuses_new_handshakes(kms_scenario, policy):
    wl = kms_scenario.fault_window(
        "clock-skew", "kms-a", policy=policy, failovers=5, expect_served=False, offset="+2y"
    )
    kms_scenario.check()
    kms_scenario.expect(availability="pass")
    ops = _during(kms_scenario, wl)
    if policy == "vcenter":
        moved = [c for c in ops if c.served_by == "kms-b"]
        assert moved, [c.served_by for c in ops]
        refused = moved[0].attempts[0]
        assert refused.outcome == "tls-error", refused
        assert refused.detail.startswith("alert received (certificate expired)"), refused
        kms_scenario.finding(
            f"vCenter model, kms-a two years ahead: kms-a refused its certificate "
            f"({refused.detail[:60]}); kms-b served"
        )
        return
    # PyKMIP's connection was open before the clock moved: served by kms-a throughout
    assert ops and all(c.served_by == "kms-a" for c in ops), [c.served_by for c in ops]
    assert all(a.reused for c in ops for a in c.attempts)
    kms_scenario.finding(
        f"PyKMIP, kms-a two years ahead: its open connection kept working ({len(ops)} "
        "operations on kms-a) while every new handshake with kms-a is refused"
    )
