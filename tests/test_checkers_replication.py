"""Replication checkers (durability, convergence, site availability) over hand-built histories."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.checkers import Verdict
from harness.checkers.convergence import check_convergence
from harness.checkers.durability import DurabilityChecker, check_durability
from harness.checkers.site_availability import check_site_availability
from harness.history import Attempt, Complete, Event, FaultEvent, Snapshot

T0 = 1000.0
REPLICAS = ["kms-a", "kms-b", "kms-c", "kms-d"]
OP_SECS = 0.01


def digest(uid: str) -> str:
    return f"{uid}-sha256".ljust(64, "0")


@dataclass
class Builder:
    """Ops as single-attempt completes, faults as inject/heal pairs, audits as snapshots.

    Times are seconds after T0; an op's `at` is its start and it lasts OP_SECS.
    """

    events: list[Event] = field(default_factory=list)
    n: int = 0

    def op(
        self,
        op: str,
        client: str,
        at: float,
        server: str,
        key: str | None,
        outcome: str = "ok",
        digest: str | None = None,
    ) -> Complete:
        self.n += 1
        start, end = T0 + at, T0 + at + OP_SECS
        result = {"ok": "ok", "fail": "refused", "info": "timeout"}[outcome]
        c = Complete(
            op_id=f"op-{self.n}",
            client=client,
            policy="vcenter",
            op=op,
            start=start,
            end=end,
            outcome=outcome,  # type: ignore[arg-type]
            served_by=server if outcome == "ok" else None,
            key=key,
            attempts=[Attempt(server, f"{server}:5696", start, end, result)],
            digest=digest,
        )
        self.events.append(c)
        return c

    def create(self, key: str, at: float, server: str = "kms-a", client: str = "vc-a") -> None:
        """An acknowledged create that ends at `at` + OP_SECS."""
        self.op("create", client, at, server, key)

    def get(self, key: str, at: float, server: str = "kms-a", client: str = "vc-a") -> None:
        self.op("get", client, at, server, key, digest=digest(key))

    def fault(
        self,
        fault_id: str,
        kind: str,
        target: str,
        inject: float,
        heal: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        p = dict(params or {})
        self.events.append(FaultEvent(fault_id, "inject", kind, target, T0 + inject, p))
        if heal is not None:
            self.events.append(FaultEvent(fault_id, "heal", kind, target, T0 + heal, p))

    def audit(
        self,
        round: int,
        at: float,
        keys: list[str],
        replicas: list[str] | None = None,
        **overrides: dict[str, Any] | None,
    ) -> None:
        """One audit round at T0 + at (replica i read at at + 0.1 i), each holding `keys`
        as ACTIVE with their reference digests. `overrides[replica]` replaces entries of
        that replica's objects (None removes the key); a replica overridden with None
        itself reports a failed read."""
        for i, replica in enumerate(replicas or REPLICAS):
            objects: dict[str, dict[str, Any]] = {
                k: {"digest": digest(k), "state": "ACTIVE"} for k in keys
            }
            name = replica.replace("-", "_")
            t = T0 + at + 0.1 * i
            if name in overrides and overrides[name] is None:
                self.events.append(Snapshot(t, replica, round, {}, ok=False, error="TLS error"))
                continue
            for k, entry in (overrides.get(name) or {}).items():
                if entry is None:
                    objects.pop(k, None)
                else:
                    objects[k] = entry
            self.events.append(Snapshot(t, replica, round, objects))


def judged(v: Verdict) -> Verdict:
    json.dumps(v.to_dict())  # figures must be JSON-serialisable
    return v


def durability(b: Builder) -> Verdict:
    return judged(check_durability(b.events, replicas=REPLICAS))


# --- durability -----------------------------------------------------------------------


def written(b: Builder) -> None:
    """k1 and k2 made on kms-a and read back; k3 made on kms-b and never read."""
    b.create("k1", 1.0)
    b.create("k2", 2.0)
    b.create("k3", 3.0, server="kms-b", client="vc-b")
    b.get("k1", 4.0, server="kms-b", client="vc-b")
    b.get("k2", 5.0)


def test_durability_passes_when_every_key_is_on_every_replica_in_the_last_audit() -> None:
    b = Builder()
    written(b)
    b.audit(1, 6.0, ["k1", "k2"])  # k3 not yet copied: an earlier round does not count
    b.audit(2, 8.0, ["k1", "k2", "k3"])
    v = durability(b)
    assert v.status == "pass", v.summary
    assert v.figures["acknowledged"] == 3
    assert v.figures["digest_checked"] == 2
    assert v.figures["presence_only"] == 1
    assert v.figures["lost_keys"] == 0
    assert v.figures["replicas"]["kms-d"]["round"] == 2
    assert "1 never read: presence only" in v.summary


def test_durability_fails_naming_a_missing_key_and_a_corrupt_key() -> None:
    b = Builder()
    written(b)
    wrong = {"digest": "f" * 64, "state": "ACTIVE"}
    b.audit(1, 8.0, ["k1", "k2", "k3"], kms_d={"k2": None}, kms_b={"k1": wrong})
    v = durability(b)
    assert v.status == "fail"
    assert v.figures["lost_keys"] == 2
    assert v.figures["missing_keys"] == 1
    assert v.figures["corrupt_keys"] == 1
    lost = {k["uid"]: k for k in v.figures["lost"]}
    assert lost["k2"]["made_on"] == "kms-a"
    assert lost["k2"]["made_at_s"] == pytest.approx(2.0 + OP_SECS - 1.0)  # history starts at 1 s
    assert lost["k2"]["missing_on"] == ["kms-d"]
    assert lost["k1"]["corrupt_on"] == ["kms-b"]
    assert v.figures["corrupt"] == [
        {"uid": "k1", "replica": "kms-b", "expected": digest("k1"), "found": "f" * 64}
    ]
    assert v.figures["replicas"]["kms-d"]["missing"] == 1
    assert "1 missing, 1 corrupt" in v.summary
    assert any("key k2 made on kms-a" in d and "missing on kms-d" in d for d in v.details)
    assert any("key k1" in d and "corrupt on kms-b" in d for d in v.details)


def test_durability_a_destroyed_key_may_be_absent() -> None:
    def history(destroyed: bool) -> Builder:
        b = Builder()
        written(b)
        if destroyed:
            b.op("destroy", "vc-a", 6.0, "kms-a", "k2")
        b.audit(1, 8.0, ["k1", "k3"])
        return b

    v = durability(history(destroyed=True))
    assert v.status == "pass", v.summary
    assert v.figures["destroyed"] == 1
    assert v.figures["lost_keys"] == 0
    assert durability(history(destroyed=False)).status == "fail"


def test_durability_destroyed_key_still_active_is_reported_not_failed() -> None:
    b = Builder()
    written(b)
    b.op("destroy", "vc-a", 6.0, "kms-a", "k2")
    b.audit(1, 8.0, ["k1", "k2", "k3"])
    v = durability(b)
    assert v.status == "pass", v.summary
    assert {d["replica"] for d in v.figures["destroyed_but_present"]} == set(REPLICAS)
    assert any("k2: destroyed (ok) but still ACTIVE" in d for d in v.details)


def test_durability_reports_a_create_that_ran_twice_and_still_passes() -> None:
    """kmip-go re-sent a Create whose response was lost: two keys hold its Name (the
    first, k2a, made by the request that got no response; k2b acknowledged)."""
    b = Builder()
    b.op("create", "vc-a", 1.0, "kms-a", "k1").name = "kmschaos-run-1"
    b.op("create", "vc-a", 3.0, "kms-a", "k2b").name = "kmschaos-run-2"

    def named(name: str) -> dict[str, Any]:
        return {"digest": None, "state": "PRE_ACTIVE", "names": [name]}

    held = {"k1": named("kmschaos-run-1"), "k2a": named("kmschaos-run-2")}
    held["k2b"] = named("kmschaos-run-2")
    b.audit(1, 8.0, [], **{r.replace("-", "_"): held for r in REPLICAS})
    v = durability(b)
    assert v.status == "pass", v.summary
    assert v.figures["lost_keys"] == 0
    assert v.figures["duplicate_creates"] == 1
    assert v.figures["duplicates"] == [{"name": "kmschaos-run-2", "uids": ["k2a", "k2b"]}]
    assert v.summary.endswith("; 1 Create ran twice (2 keys named kmschaos-run-2)"), v.summary
    assert any(
        d.startswith("Create of kmschaos-run-2 ran 2 times") and "k2a, k2b" in d for d in v.details
    ), v.details
    assert DurabilityChecker().headline(v.to_dict()) == "2 keys kept, 1 made twice"

    # one replica keeps both keys, another only one: still one Create that ran twice,
    # and a key missing on kms-d fails the verdict, the duplicate still said
    b.audit(2, 9.0, [], kms_a=held, kms_b=held, kms_c=held, kms_d={"k1": held["k1"]})
    v = durability(b)
    assert v.status == "fail" and v.figures["duplicate_creates"] == 1, v.summary
    assert "missing" in v.summary and "1 Create ran twice" in v.summary

    # an unacknowledged Create's Name held twice is no duplicate of an acknowledged one
    c = Builder()
    c.op("create", "vc-a", 1.0, "kms-a", "k1").name = "kmschaos-run-1"
    other = {"x1": named("kmschaos-run-9"), "x2": named("kmschaos-run-9")}
    c.audit(1, 8.0, ["k1"], **{r.replace("-", "_"): other for r in REPLICAS})
    v = durability(c)
    assert v.status == "pass" and v.figures["duplicate_creates"] == 0, v.summary
    assert "ran twice" not in v.summary


def test_durability_rpo_of_a_kill_is_the_age_of_the_oldest_lost_write() -> None:
    b = Builder()
    b.create("k0", 1.0)  # copied before the crash
    b.create("k1", 10.0 - 1.5 - OP_SECS)  # acknowledged 1.5 s before the kill
    b.create("k2", 10.0 - 0.5 - OP_SECS)  # acknowledged 0.5 s before the kill
    b.create("k3", 9.0, server="kms-b", client="vc-b")
    b.fault("f1", "kill", "kms-a", 10.0, 12.0)
    b.fault("f2", "kill", "kms-b", 20.0, 22.0)
    b.audit(1, 30.0, ["k0", "k3"])
    v = durability(b)
    assert v.status == "fail"
    assert v.figures["crash_faults"]["f1"] == {
        "kind": "kill",
        "target": "kms-a",
        "lost": 2,
        "rpo_s": pytest.approx(1.5),
    }
    assert v.figures["crash_faults"]["f2"] == {
        "kind": "kill",
        "target": "kms-b",
        "lost": 0,
        "rpo_s": 0.0,
    }
    assert v.figures["lost_outside_crash"] == 0
    assert any("f1 kill of kms-a: 2 acknowledged keys lost, RPO 1.500 s" in d for d in v.details)


def test_durability_without_any_audit_is_unknown() -> None:
    b = Builder()
    written(b)
    v = durability(b)
    assert v.status == "unknown"
    assert v.summary == "no audit: cannot judge durability"


def test_durability_replica_whose_last_audit_failed_is_unknown_unless_a_key_is_lost() -> None:
    b = Builder()
    written(b)
    b.audit(1, 8.0, ["k1", "k2", "k3"])
    b.audit(2, 9.0, ["k1", "k2", "k3"], kms_c=None)
    v = durability(b)
    assert v.status == "unknown"
    assert v.figures["unjudged_replicas"] == ["kms-c"]
    assert "kms-c (last audit (round 2) failed: TLS error)" in v.summary

    b.audit(3, 10.0, ["k1", "k2", "k3"], kms_c=None, kms_d={"k1": None})
    v = durability(b)
    assert v.status == "fail"
    assert v.figures["unjudged_replicas"] == ["kms-c"]
    assert any("kms-c: cannot judge" in d for d in v.details)


def test_durability_key_made_after_the_last_audit_is_not_judged() -> None:
    b = Builder()
    written(b)
    b.audit(1, 8.0, ["k1", "k2", "k3"])
    b.create("k4", 9.0)
    v = durability(b)
    assert v.status == "unknown"
    assert v.figures["replicas"]["kms-a"]["after_audit"] == 1
    assert v.figures["lost_keys"] == 0
    assert "1 acknowledged keys made after its last audit (round 1)" in v.summary


# --- convergence ----------------------------------------------------------------------


def convergence(b: Builder, bound_s: float | None = None) -> Verdict:
    return judged(check_convergence(b.events, replicas=REPLICAS, bound_s=bound_s))


def partitioned() -> Builder:
    """A partition healed at 10 s; k2 made on kms-a during it reaches the others in round 3."""
    b = Builder()
    b.fault("p1", "partition", "site-a", 4.0, 10.0)
    b.audit(1, 2.0, ["k1"])
    b.audit(2, 11.0, ["k1", "k2"], kms_c={"k2": None}, kms_d={"k2": None})
    b.audit(3, 12.0, ["k1", "k2"])  # last snapshot (kms-d) at 12.3
    b.audit(4, 13.0, ["k1", "k2"])
    return b


def test_convergence_measured_from_the_heal_to_the_first_agreeing_round() -> None:
    v = convergence(partitioned())
    assert v.status == "pass", v.summary
    assert v.figures["converged_round"] == 3
    assert v.figures["convergence_s"] == pytest.approx(2.3)
    assert v.figures["rounds_examined"] == 2
    assert v.figures["anchor"]["fault_id"] == "p1"
    assert v.summary.startswith("converged in round 3, 2.300 s after the last heal")


def test_convergence_never_reached_fails_with_per_replica_differences() -> None:
    b = Builder()
    b.fault("p1", "partition", "site-a", 4.0, 10.0)
    stale = {"digest": digest("k1"), "state": "PRE_ACTIVE"}
    for n in (1, 2):
        b.audit(n, 10.0 + n, ["k1", "k2"], kms_c={"k2": None}, kms_b={"k1": stale})
    v = convergence(b)
    assert v.status == "fail"
    assert v.figures["convergence_s"] is None
    assert v.figures["rounds_examined"] == 2
    diff = v.figures["differences"]
    assert diff["kms-c"] == {"snapshot": "ok", "missing": 1, "extra": 0, "differs": 0}
    assert diff["kms-b"] == {"snapshot": "ok", "missing": 0, "extra": 0, "differs": 1}
    assert diff["kms-a"] == {"snapshot": "ok", "missing": 0, "extra": 0, "differs": 0}
    assert "still differs on kms-b, kms-c" in v.summary
    assert any(d.startswith("kms-c in round 2: 1 missing (k2)") for d in v.details)


def test_convergence_not_reached_while_a_partition_is_unhealed_is_unknown() -> None:
    b = Builder()
    b.fault("p1", "partition", "site-a", 4.0)
    b.audit(1, 11.0, ["k1", "k2"], kms_c={"k2": None})
    v = convergence(b)
    assert v.status == "unknown"
    assert v.figures["unhealed_faults"] == ["p1"]
    assert v.summary.startswith("p1 never healed, so convergence was not due: never converged")
    b.audit(2, 12.0, ["k1", "k2"])
    assert convergence(b).status == "pass"


def test_convergence_slower_than_the_bound_fails() -> None:
    assert convergence(partitioned(), bound_s=5.0).status == "pass"
    v = convergence(partitioned(), bound_s=1.0)
    assert v.status == "fail"
    assert v.figures["convergence_s"] == pytest.approx(2.3)
    assert "slower than 1.000 s" in v.summary


def test_convergence_without_an_audit_after_the_heal_is_unknown() -> None:
    b = Builder()
    b.audit(1, 2.0, ["k1"])
    b.fault("p1", "partition", "site-a", 4.0, 10.0)
    b.audit(2, 9.9, ["k1"])  # straddles the heal: began before it
    v = convergence(b)
    assert v.status == "unknown"
    assert "no audit round began after the last heal" in v.summary


# --- site availability ----------------------------------------------------------------

REPLICA_SITES = {"kms-a": "site-a", "kms-b": "site-a", "kms-c": "site-b", "kms-d": "site-b"}
CLIENT_SITES = {"vc-a": "site-a", "vc-b": "site-b"}


def sites(b: Builder) -> Verdict:
    return judged(
        check_site_availability(b.events, replica_sites=REPLICA_SITES, client_sites=CLIENT_SITES)
    )


def sync_partition(cut: bool = True) -> Builder:
    """Primary kms-a on site-a; site-b cut off from 10 s to 20 s: it reads, cannot write."""
    b = Builder()
    b.create("k1", 1.0)
    b.create("k2", 2.0)
    if cut:
        groups = [["kms-a", "kms-b"], ["kms-c", "kms-d"]]
        b.fault("p1", "partition", "site-b", 10.0, 20.0, params={"groups": groups})
    for i in range(4):
        b.get("k1" if i % 2 else "k2", 11.0 + i, server="kms-a")
        b.get("k1" if i % 2 else "k2", 11.0 + i, server="kms-c", client="vc-b")
    b.create("k3", 12.5)
    b.create("k4", 13.5, server="kms-b")
    for i in range(3):
        b.op("create", "vc-b", 15.0 + i, "kms-c", None, outcome="fail")
    b.get("k3", 18.0, server="kms-c", client="vc-b")  # made during the cut: not counted
    return b


def test_site_availability_sync_partition_minority_site_is_read_only_and_passes() -> None:
    v = sites(sync_partition())
    assert v.status == "pass", v.summary
    w = v.figures["windows"]["p1"]
    assert w["groups"] == [["kms-a", "kms-b"], ["kms-c", "kms-d"]]
    site_b = w["sites"]["site-b"]
    assert site_b["gets"]["count"] == 4
    assert site_b["gets"]["ok_share"] == 1.0
    assert site_b["gets"]["served_by"] == {"kms-c": 4}
    assert site_b["gets"]["served_by_site"] == {"site-b": 4}
    assert site_b["gets_not_counted"] == 1
    assert site_b["creates"]["count"] == 3
    assert site_b["creates"]["ok_share"] == 0.0
    site_a = w["sites"]["site-a"]
    assert site_a["creates"]["ok_share"] == 1.0
    assert site_a["creates"]["served_by"] == {"kms-a": 1, "kms-b": 1}
    assert v.summary == (
        "site-a: gets 100% (4), creates 100% (2); site-b: gets 100% (4), creates 0% (3: read-only)"
    )


def test_site_availability_without_a_partition_is_unknown() -> None:
    b = sync_partition(cut=False)
    b.fault("f1", "kill", "kms-a", 10.0, 20.0)  # not a partition
    v = sites(b)
    assert v.status == "unknown"
    assert v.summary == "no partition window"
    assert v.figures["windows"] == {}


def test_site_availability_site_without_ops_in_a_window_is_unknown() -> None:
    b = sync_partition()
    b.events = [e for e in b.events if not (isinstance(e, Complete) and e.client == "vc-b")]
    v = sites(b)
    assert v.status == "unknown"
    assert v.summary.startswith("no ops from site-b during p1")
