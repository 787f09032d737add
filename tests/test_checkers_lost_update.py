"""The lost_update checker over hand-built histories: operations that change keys, clock
faults, and audit snapshots of what each replica shows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.checkers import CHECKERS, CheckContext, Verdict, brief, headline
from harness.checkers.lost_update import check_lost_update
from harness.history import Attempt, Complete, Event, FaultEvent, Snapshot
from harness.toolchain import repo_root
from harness.topology import load_topology

T0 = 500.0
REPLICAS = ["kms-a", "kms-b"]
OP_SECS = 0.02
KEY = "1001"
CLIENT_OF = {"kms-a": "admin-a", "kms-b": "admin-b"}


@dataclass
class Builder:
    """Operations as single-attempt completes (`at`: start, seconds after T0), a clock
    fault, audit rounds with each replica's objects."""

    events: list[Event] = field(default_factory=list)
    n: int = 0
    rounds: int = 0

    def op(
        self,
        op: str,
        at: float,
        server: str,
        key: str = KEY,
        outcome: str = "ok",
        name: str | None = None,
        secs: float = OP_SECS,
    ) -> Complete:
        self.n += 1
        start, end = T0 + at, T0 + at + secs
        attempt = {"ok": "ok", "fail": "kmip-error", "info": "timeout"}[outcome]
        c = Complete(
            op_id=f"{CLIENT_OF[server]}#0:{self.n}",
            client=CLIENT_OF[server],
            policy="vcenter",
            op=op,
            start=start,
            end=end,
            outcome=outcome,  # type: ignore[arg-type]
            served_by=server if outcome != "info" else None,
            key=key,
            attempts=[Attempt(server, f"{server}:5696", start, end, attempt)],
            name=name,
        )
        self.events.append(c)
        return c

    def skew(
        self, replica: str, at: float, offset: str = "-3600s", heal: float | None = None
    ) -> None:
        params = {"offset": offset}
        self.events.append(FaultEvent("f1", "inject", "clock-skew", replica, T0 + at, params))
        if heal is not None:
            self.events.append(FaultEvent("f1", "heal", "clock-skew", replica, T0 + heal, params))

    def audit(self, at: float, **shows: Any) -> None:
        """One round at T0 + at: `shows[replica]` maps uid -> state (str), or a full entry
        (dict), or the replica to None for a failed read; absent replicas show nothing."""
        self.rounds += 1
        for i, replica in enumerate(REPLICAS):
            t = T0 + at + 0.05 * i
            mine = shows.get(replica.replace("-", "_"), {})
            if mine is None:
                self.events.append(Snapshot(t, replica, self.rounds, {}, ok=False, error="EOF"))
                continue
            objects = {
                uid: v if isinstance(v, dict) else {"digest": "d", "state": v}
                for uid, v in mine.items()
            }
            self.events.append(
                Snapshot(t, replica, self.rounds, objects, identity=replica, fingerprint=replica)
            )


def judge(b: Builder, profile: str = "async") -> Verdict:
    v = check_lost_update(b.events, replicas=REPLICAS, profile=profile)
    json.dumps(v.to_dict())  # figures must be JSON-serialisable
    return v


def lost_revoke() -> Builder:
    """kms-b's clock is an hour behind: Create + Activate on kms-a, a Revoke on kms-b
    two seconds later; kms-a's Activate wins everywhere."""
    b = Builder()
    b.skew("kms-b", 0.0)
    b.op("create", 1.0, "kms-a", name="kmschaos-r-1")
    b.op("activate", 1.5, "kms-a")
    b.op("revoke", 3.5, "kms-b")
    return b


# ---- what it finds -------------------------------------------------------------------------


def test_a_revoke_undone_by_an_earlier_activate_fails_naming_both_changes_and_the_clocks() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    v = judge(b)
    assert v.status == "fail", v.summary
    assert v.summary.startswith("1 lost update on 1 of 1 changed keys: key 1001:")
    assert (
        "the Revoke (admin-b#0:3) acknowledged by kms-b at +3.520 s (→ DEACTIVATED) is lost "
        "on kms-a, kms-b: they show ACTIVE, left by the earlier Activate (admin-a#0:2) "
        "acknowledged by kms-a at +1.520 s" in v.summary
    ), v.summary
    assert "clocks: kms-a no clock fault; kms-b clock-skew -3600s (f1)" in v.summary
    (lost,) = v.figures["lost"]
    assert lost["on"] == ["kms-a", "kms-b"] and lost["shows"] == "ACTIVE"
    assert lost["lost"]["op"] == "revoke" and lost["lost"]["replica"] == "kms-b"
    assert lost["lost"]["clock_faults"] == [
        {"fault_id": "f1", "kind": "clock-skew", "offset": "-3600s"}
    ]
    assert lost["won"]["op"] == "activate" and lost["won"]["clock_faults"] == []
    assert v.figures["clock_faults"][0]["replicas"] == ["kms-b"]
    checker = CHECKERS["lost_update"]
    assert checker.headline(v.to_dict()) == "1 lost update(s) on kms-a, kms-b"
    assert brief(v.to_dict()) == " 1 lost"


def test_replicas_that_disagree_fail_on_the_one_that_lost_the_change() -> None:
    """The agent today: kms-a refuses kms-b's older version and kms-b keeps its own."""
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "DEACTIVATED"})
    v = judge(b)
    assert v.status == "fail"
    assert "is lost on kms-a: it shows ACTIVE" in v.summary
    assert v.figures["lost"][0]["on"] == ["kms-a"]


def test_a_later_change_that_won_passes() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "DEACTIVATED"}, kms_b={KEY: "DEACTIVATED"})
    v = judge(b)
    assert v.status == "pass", v.summary
    assert v.summary == (
        "every replica shows the last acknowledged change of all 1 changed keys (3 changes)"
    )
    assert headline(v.to_dict()) == "1 changed keys kept"


def test_no_change_after_create_passes_with_nothing_to_judge() -> None:
    b = Builder()
    b.op("create", 1.0, "kms-a")
    b.op("create", 1.1, "kms-b", key="1002")
    b.op("get", 1.2, "kms-a")
    b.audit(5.0, kms_a={KEY: "PRE_ACTIVE"}, kms_b={KEY: "PRE_ACTIVE", "1002": "PRE_ACTIVE"})
    v = judge(b)
    assert (v.status, v.summary) == (
        "pass",
        "no key was changed after its Create: no update to lose",
    )


def test_an_audit_that_could_not_read_a_replica_is_unknown_not_pass() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "DEACTIVATED"}, kms_b=None)
    v = judge(b)
    assert v.status == "unknown", v.summary
    assert "kms-b (last audit (round 1) failed: EOF)" in v.summary
    assert v.figures["unjudged_replicas"] == ["kms-b"]


def test_no_audit_is_unknown() -> None:
    v = judge(lost_revoke())
    assert (v.status, v.summary) == ("unknown", "no audit: cannot judge lost updates")


def test_a_change_after_the_last_audit_is_unknown_there() -> None:
    b = lost_revoke()
    b.audit(3.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})  # before the Revoke
    v = judge(b)
    assert v.status == "unknown"
    assert "began before 1 change(s) ended" in v.summary


def test_the_final_round_is_judged_not_an_earlier_one() -> None:
    b = lost_revoke()
    b.audit(2.5, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    b.audit(10.0, kms_a={KEY: "DEACTIVATED"}, kms_b={KEY: "DEACTIVATED"})
    assert judge(b).status == "pass"


def test_without_replication_there_is_nothing_to_judge() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "ACTIVE"})
    v = judge(b, profile="none")
    assert v.status == "pass" and "replication none" in v.summary


def test_sync_is_judged_like_async() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    assert judge(b, profile="sync").status == "fail"


# ---- destroy, rename, unknown outcomes, concurrency -----------------------------------------


def test_a_destroy_undone_fails_and_a_destroy_that_won_passes() -> None:
    b = Builder()
    b.op("create", 1.0, "kms-a")
    b.op("compromise", 1.5, "kms-a")
    b.op("destroy", 3.0, "kms-b")
    b.audit(10.0, kms_a={KEY: "COMPROMISED"}, kms_b={})
    v = judge(b)
    assert v.status == "fail"
    assert "the Destroy (admin-b#0:3) acknowledged by kms-b" in v.summary
    assert "(→ no key) is lost on kms-a: it shows COMPROMISED, left by the earlier Revoke " in (
        v.summary
    )
    b2 = Builder(events=b.events[:3], n=3)
    b2.audit(10.0, kms_a={}, kms_b={})
    assert judge(b2).status == "pass"


def test_a_rename_lost_to_the_create_name_fails_naming_both_names() -> None:
    b = Builder()
    b.op("create", 1.0, "kms-a", name="kmschaos-r-1")
    b.op("rename", 2.0, "kms-b", name="renamed-0a0b0c0d")
    entry = {"digest": "d", "state": "PRE_ACTIVE", "names": ["kmschaos-r-1"]}
    b.audit(10.0, kms_a={KEY: entry}, kms_b={KEY: {**entry, "names": ["renamed-0a0b0c0d"]}})
    v = judge(b)
    assert v.status == "fail"
    assert "(→ the name 'renamed-0a0b0c0d') is lost on kms-a: it shows the name " in v.summary
    assert "'kmschaos-r-1', left by the earlier Create" in v.summary
    assert v.figures["lost"][0]["aspect"] == "name"


def test_snapshots_without_names_judge_states_only() -> None:
    b = Builder()
    b.op("create", 1.0, "kms-a", name="kmschaos-r-1")
    b.op("rename", 2.0, "kms-b", name="renamed-0a0b0c0d")
    b.audit(10.0, kms_a={KEY: "PRE_ACTIVE"}, kms_b={KEY: "PRE_ACTIVE"})
    assert judge(b).status == "pass"


def test_a_change_with_an_unknown_outcome_may_be_the_last() -> None:
    b = lost_revoke()
    b.op("activate", 5.0, "kms-a", outcome="info")  # may have run (it would fail: not pre-active)
    b.audit(10.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    assert judge(b).status == "pass"


def test_a_failed_change_does_not_count() -> None:
    b = lost_revoke()
    b.op("compromise", 5.0, "kms-a", outcome="fail")
    b.audit(10.0, kms_a={KEY: "DEACTIVATED"}, kms_b={KEY: "DEACTIVATED"})
    assert judge(b).status == "pass"


def test_concurrent_changes_may_end_either_way() -> None:
    b = Builder()
    b.op("create", 1.0, "kms-a")
    b.op("activate", 1.5, "kms-a")
    b.op("revoke", 3.0, "kms-b", secs=0.5)
    b.op("compromise", 3.2, "kms-a", secs=0.1)  # inside the Revoke's span: concurrent
    for shows in ("DEACTIVATED", "COMPROMISED"):
        b.audit(10.0 + b.rounds, kms_a={KEY: shows}, kms_b={KEY: shows})
        assert judge(b).status == "pass", shows
    b.audit(20.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    v = judge(b)
    assert v.status == "fail" and "left by the earlier Activate" in v.summary


def test_a_value_no_change_left_is_unknown_and_a_missing_key_is_durabilitys() -> None:
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "COMPROMISED"}, kms_b={KEY: "DEACTIVATED"})
    v = judge(b)
    assert v.status == "unknown"
    assert "1 value(s) no recorded change left" in v.summary
    assert "key 1001 on kms-a: shows COMPROMISED" in v.figures["unexplained"][0]
    b2 = lost_revoke()
    b2.audit(10.0, kms_a={}, kms_b={KEY: "DEACTIVATED"})
    v2 = judge(b2)
    assert v2.status == "pass" and v2.figures["missing"] == 1


# ---- who answered ----------------------------------------------------------------------------


def test_an_audit_that_read_the_wrong_replica_is_unknown_not_pass() -> None:
    """The sabotaged auditor reads kms-b for both replicas: kms-b shows the Revoke (it
    kept its own version), kms-a — which lost it — is never read. The snapshots alone
    would pass; who answered says the audit cannot be trusted."""
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "DEACTIVATED"}, kms_b={KEY: "DEACTIVATED"})
    for e in b.events:
        if isinstance(e, Snapshot):
            e.identity, e.fingerprint = "kms-b", "fp-of-kms-b"
    v = judge(b)
    assert v.status == "unknown", v.summary
    assert v.figures["status_without_identity"] == "pass"
    assert "kms-a's audit (round 1) was answered by a server whose certificate names 'kms-b'" in (
        v.summary
    )
    assert CHECKERS["lost_update"].headline(v.to_dict()) == "wrong server answered"
    assert brief(v.to_dict()) == " identity"


# ---- registered, reads the topology ------------------------------------------------------------


@pytest.mark.parametrize(("topology", "status"), [("async", "fail"), ("sync", "fail")])
def test_the_registered_checker_reads_the_topologys_replicas_and_profile(
    topology: str, status: str
) -> None:
    topo = load_topology(repo_root() / "scenarios" / "topologies" / f"two-replicas-{topology}.yaml")
    assert topo.replication_profile == topology
    b = lost_revoke()
    b.audit(10.0, kms_a={KEY: "ACTIVE"}, kms_b={KEY: "ACTIVE"})
    v = CHECKERS["lost_update"].check(CheckContext.of(b.events, topo))
    assert v.status == status
    assert CHECKERS["lost_update"].needs_audit
    unreplicated = load_topology(repo_root() / "scenarios" / "topologies" / "one-site.yaml")
    assert CHECKERS["lost_update"].check(CheckContext.of(b.events, unreplicated)).status == "pass"
