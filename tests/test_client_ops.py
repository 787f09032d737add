"""FailoverClient operations against real replicas, through both policies, and the
workload's pacing."""

from __future__ import annotations

import pytest

from harness.cluster.local import LocalCluster
from harness.faults import FAULTS
from harness.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.kms_topology("one-site.yaml")]


@pytest.mark.parametrize("policy", ["vcenter", "pykmip"])
def test_create_get_activate_locate_destroy(kms_scenario: Scenario, policy: str) -> None:
    client = kms_scenario.client("vc-a", policy=policy)
    created = client.create()
    assert created.outcome == "ok" and created.served_by == "kms-a" and created.key
    uid = created.key
    first = client.get(uid)
    again = client.get(uid)
    assert first.outcome == "ok" and first.digest and len(first.digest) == 64
    assert again.digest == first.digest, "the same key returned different bytes"
    assert client.activate(uid).outcome == "ok"
    located = client.locate()
    assert located.outcome == "ok"
    reactivated = client.activate(uid)  # activating an active key: a KMIP error answer
    assert reactivated.outcome == "fail" and reactivated.served_by == "kms-a"
    gone = client.destroy(client.create().key or "")
    assert gone.outcome == "ok"
    missing = client.get(gone.key or "")
    assert missing.outcome == "fail"
    assert missing.attempts[-1].outcome == "kmip-error", "a KMIP answer must not fail over"
    assert [a.server for a in missing.attempts] == ["kms-a"]


def test_unknown_operation_and_missing_key_are_refused(kms_scenario: Scenario) -> None:
    client = kms_scenario.client("vc-a")
    with pytest.raises(ValueError, match="unknown operation"):
        client.do("rekey")
    with pytest.raises(ValueError, match="needs a key"):
        client.do("get")


def test_workload_runs_virtual_clients_at_their_rate(kms_scenario: Scenario) -> None:
    wl = kms_scenario.workload(per_client=2, rate_per_s=10, mix={"create": 0.5, "locate": 0.5})
    done = wl.run_for(1.5)
    workers = {c.op_id.split(":")[0] for c in done}
    assert workers == {"vc-a#0", "vc-a#1"}
    for w in workers:
        mine = [c for c in done if c.op_id.startswith(w + ":")]
        # paced at 10/s for 1.5 s: at most 16 starts (never a burst); an op slower than
        # the 0.1 s interval delays the schedule (no catch-up), so each such op may cost
        # one start
        late = sum(1 for c in mine if c.duration > 0.1)
        assert 15 - late - 1 <= len(mine) <= 16, (w, len(mine), late)
    assert all(c.outcome == "ok" for c in done)


def test_unreachable_says_why_it_cannot_run_without_root(
    kms_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.toolchain as toolchain

    monkeypatch.setattr(toolchain.os, "geteuid", lambda: 1000)
    caps = kms_cluster.capabilities - {"firewall"}
    monkeypatch.setattr(kms_cluster, "capabilities", caps)
    reason = FAULTS["unreachable"].unsupported_reason(kms_cluster)
    assert reason is not None and "needs root" in reason
    from harness.faults import FaultError, make_fault

    with pytest.raises(FaultError, match="needs root"):
        make_fault("unreachable", kms_cluster, "kms-a").inject()


def test_revoke_compromise_and_rename_change_what_the_audit_reads(kms_scenario: Scenario) -> None:
    """The opt-in changes: Revoke (Cessation of Operation), Revoke (Key Compromise) and a
    rename (KMIP 1.x ModifyAttribute of the first Name), each recorded with its key, the
    rename with the name it set; the audit reads every key's State and Names."""
    from harness.audit import Auditor
    from harness.client.operations import CHANGES

    client = kms_scenario.client("vc-a")
    made = [client.create() for _ in range(3)]
    assert all(c.outcome == "ok" and c.name for c in made), made
    revoked, compromised, renamed = (c.key or "" for c in made)
    early = client.do("revoke", revoked)  # Cessation of Operation needs an Active key
    assert early.outcome == "fail" and early.attempts[-1].outcome == "kmip-error"
    assert client.activate(revoked).outcome == "ok"
    assert client.do("revoke", revoked).outcome == "ok"
    assert client.do("compromise", compromised).outcome == "ok"
    rename = client.do("rename", renamed)
    assert rename.outcome == "ok" and rename.key == renamed
    assert rename.name and rename.name.startswith("renamed-") and rename.name != made[2].name
    (snap,) = [
        s
        for s in Auditor(kms_scenario.cluster, kms_scenario.history).round()
        if s.replica == "kms-a"
    ]
    seen = {uid: (o["state"], o["names"]) for uid, o in snap.objects.items()}
    assert seen[revoked] == (CHANGES["revoke"].state, [made[0].name])
    assert seen[compromised] == (CHANGES["compromise"].state, [made[1].name])
    assert seen[renamed] == (CHANGES["create"].state, [rename.name])
