"""Durability: every acknowledged key is still on every replica, with the bytes clients read.

An acknowledged key is one whose Create completed `ok`: a client was told it exists and
may have encrypted a VM with it. Its reference bytes are the digest the first `ok` Get of
it returned; a key never read is only checked for presence. The final state of a replica
is its audit snapshot with the highest round (taken after heal and convergence).

A key is lost on a replica if it is absent there, or present with other bytes (corrupt),
or present in a destroyed state nobody asked for. A key a Destroy may have removed
(outcome `ok`, or `info`: unknown, so it may have run) is allowed to be absent. Keys audited
without a digest count as present. Keys made after a replica's last audit are not judged
there, and leave the verdict unknown unless something is lost.

Who answered: a snapshot answered by another server than the replica it is labelled
with, or two replicas that showed one certificate, make the verdict `unknown` (never
`pass`, never a `fail` built on another server's holdings), naming the contradiction
(`harness.checkers.identity`).

A Create that ran twice: an acknowledged Create's key Name held by more than one unique
identifier in the final audits (a client re-sent a Create whose response it never got,
as ovh/kmip-go does on EOF) is reported (`duplicate_creates`, `duplicates`: Name ->
uids), not failed: nothing acknowledged is lost, and the extra key is visible.

RPO per crash fault (kill, wipe, restart): each lost key made on the crashed replica
before the crash is charged to the first such crash after its creation; the fault's
`rpo_s` is its inject time minus the earliest creation among the keys charged to it, the
span of acknowledged writes the crash took away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.base import AUDIT_WITHIN, CheckContext, Checker
from harness.checkers.identity import audit_contradictions, distrust, identity_headline
from harness.checkers.verdict import Verdict, as_events, capped, completes, history_span, rounded
from harness.faults import FAULTS
from harness.history import Complete, Event, FaultEvent, History, Snapshot

NAME = "durability"
DESTROYED_STATES = ("DESTROYED", "DESTROYED_COMPROMISED")
MAX_LISTED = 100  # keys listed in figures; the counts stay complete


# --- Reading audits (shared with the convergence checker) ------------------------------


def snapshots(events: Sequence[Event]) -> list[Snapshot]:
    """Audit snapshots in (round, time) order."""
    return sorted((e for e in events if isinstance(e, Snapshot)), key=lambda s: (s.round, s.t))


def final_snapshots(snaps: Iterable[Snapshot]) -> dict[str, Snapshot]:
    """Per replica, its snapshot with the highest round (the later one on a tie)."""
    last: dict[str, Snapshot] = {}
    for s in snaps:
        prev = last.get(s.replica)
        if prev is None or (s.round, s.t) >= (prev.round, prev.t):
            last[s.replica] = s
    return last


def held(snapshot: Snapshot) -> dict[str, tuple[str | None, str | None]]:
    """The objects of a snapshot as uid -> (digest, state); malformed entries read as None."""
    objects = snapshot.objects if isinstance(snapshot.objects, dict) else {}
    out: dict[str, tuple[str | None, str | None]] = {}
    for uid, entry in objects.items():
        if isinstance(entry, dict):
            digest, state = entry.get("digest"), entry.get("state")
            out[str(uid)] = (
                None if digest is None else str(digest),
                None if state is None else str(state),
            )
        else:
            out[str(uid)] = (None, None)
    return out


def history_origin(events: Sequence[Event]) -> float:
    """The earliest time in the history, audits included (0.0 if empty)."""
    span = history_span([e for e in events if not isinstance(e, Snapshot)])
    times = [s.t for s in events if isinstance(s, Snapshot)]
    if span is not None:
        times.append(span[0])
    return min(times) if times else 0.0


# --- The checker -----------------------------------------------------------------------


@dataclass
class AcknowledgedKey:
    uid: str
    made_on: str | None
    made_at: float
    reference: str | None = None
    missing_on: list[str] = field(default_factory=list)
    corrupt_on: dict[str, str | None] = field(default_factory=dict)
    destroyed_on: list[str] = field(default_factory=list)

    @property
    def lost(self) -> bool:
        return bool(self.missing_on or self.corrupt_on or self.destroyed_on)


def check_durability(
    events: History | Iterable[Event],
    *,
    replicas: list[str],
    external: Sequence[str] = (),
) -> Verdict:
    """Check every acknowledged key survived on every replica in `replicas`.

    Fails if any acknowledged key is lost on any replica. Unknown if there is no audit,
    no acknowledged key, (when nothing is lost) some replica's final audit is missing
    or failed, naming it, or whenever a snapshot was answered by another server than
    its replica or two replicas showed one server (`external`: the replicas kmschaos
    did not start, whose certificates may name anything).
    """
    evs = as_events(events)
    verdict = _check_durability(evs, replicas)
    return distrust(verdict, audit_contradictions(evs, external=external), "audit")


def _check_durability(evs: list[Event], replicas: list[str]) -> Verdict:
    origin = history_origin(evs)
    ops = completes(evs)
    bound = "every acknowledged key present on every replica with the bytes clients read"

    keys: dict[str, AcknowledgedKey] = {}
    for c in sorted(ops, key=lambda c: c.end):
        if c.op == "create" and c.outcome == "ok" and c.key is not None:
            uid = str(c.key)
            keys.setdefault(uid, AcknowledgedKey(uid, c.served_by, c.end))
    reads: dict[str, set[str]] = {}
    for c in sorted(ops, key=lambda c: (c.end, c.start)):
        if c.op == "get" and c.outcome == "ok" and c.key is not None and c.digest is not None:
            uid = str(c.key)
            reads.setdefault(uid, set()).add(c.digest)
            if uid in keys and keys[uid].reference is None:
                keys[uid].reference = c.digest
    destroyed = _destroyed(ops)

    final = final_snapshots(snapshots(evs))
    unlisted = sorted(set(final) - set(replicas))
    figures: dict[str, Any] = {
        "acknowledged": len(keys),
        "digest_checked": sum(1 for k in keys.values() if k.reference is not None),
        "presence_only": sum(1 for k in keys.values() if k.reference is None),
        "destroyed": sum(1 for uid in keys if uid in destroyed),
        "replicas": {},
        "unjudged_replicas": [],
        "unlisted_replicas": unlisted,
    }
    if not final:
        return Verdict(NAME, "unknown", "no audit: cannot judge durability", figures, [], bound)
    if not replicas:
        summary = "no replicas named: cannot judge durability"
        return Verdict(NAME, "unknown", summary, figures, [], bound)

    unjudged: dict[str, str] = {}
    destroyed_but_present: list[dict[str, Any]] = []
    for replica in replicas:
        snap = final.get(replica)
        if snap is None:
            unjudged[replica] = "never audited"
            figures["replicas"][replica] = {"audited": False}
            continue
        rep: dict[str, Any] = {
            "audited": True,
            "round": snap.round,
            "audited_at_s": rounded(snap.t - origin),
            "ok": snap.ok,
        }
        figures["replicas"][replica] = rep
        if not snap.ok:
            unjudged[replica] = (
                f"last audit (round {snap.round}) failed: {snap.error or 'no reason'}"
            )
            continue
        objects = held(snap)
        rep["objects"] = len(objects)
        counts = {"missing": 0, "corrupt": 0, "destroyed": 0, "unverified": 0, "after_audit": 0}
        for uid, key in keys.items():
            found = objects.get(uid)
            if uid in destroyed:
                if (
                    found is not None
                    and destroyed[uid] == "ok"
                    and found[1] not in DESTROYED_STATES
                ):
                    destroyed_but_present.append(
                        {"uid": uid, "replica": replica, "state": found[1], "by": destroyed[uid]}
                    )
                continue
            if key.made_at > snap.t:
                counts["after_audit"] += 1
                continue
            if found is None:
                key.missing_on.append(replica)
                counts["missing"] += 1
            elif found[1] in DESTROYED_STATES:
                key.destroyed_on.append(replica)
                counts["destroyed"] += 1
            elif key.reference is not None and found[0] is None:
                counts["unverified"] += 1
            elif key.reference is not None and found[0] != key.reference:
                key.corrupt_on[replica] = found[0]
                counts["corrupt"] += 1
        rep.update(counts)
        if counts["after_audit"]:
            unjudged[replica] = (
                f"{counts['after_audit']} acknowledged keys made after its last audit "
                f"(round {snap.round})"
            )

    lost = [k for k in keys.values() if k.lost]
    figures["unjudged_replicas"] = sorted(unjudged)
    figures["lost_keys"] = len(lost)
    figures["missing_keys"] = sum(1 for k in lost if k.missing_on)
    figures["corrupt_keys"] = sum(1 for k in lost if k.corrupt_on)
    figures["lost"] = [
        {
            "uid": k.uid,
            "made_on": k.made_on,
            "made_at_s": rounded(k.made_at - origin),
            "missing_on": list(k.missing_on),
            "corrupt_on": sorted(k.corrupt_on),
            "destroyed_on": list(k.destroyed_on),
        }
        for k in lost[:MAX_LISTED]
    ]
    figures["corrupt"] = [
        {"uid": k.uid, "replica": r, "expected": k.reference, "found": found}
        for k in lost
        for r, found in k.corrupt_on.items()
    ][:MAX_LISTED]
    figures["destroyed_but_present"] = destroyed_but_present[:MAX_LISTED]
    figures["inconsistent_reads"] = sorted(uid for uid, ds in reads.items() if len(ds) > 1)[
        :MAX_LISTED
    ]
    crash, unattributed = _rpo(evs, lost)
    figures["crash_faults"] = crash
    figures["lost_outside_crash"] = unattributed
    twice = _duplicate_creates(ops, final.values())
    figures["duplicate_creates"] = len(twice)
    figures["duplicates"] = [{"name": n, "uids": uids} for n, uids in twice[:MAX_LISTED]]
    also = _duplicates_suffix(twice)

    evidence = [_lost_line(k, origin) for k in lost]
    evidence += [
        f"{fid} {f['kind']} of {f['target']}: {f['lost']} acknowledged keys lost, "
        f"RPO {f['rpo_s']:.3f} s"
        for fid, f in crash.items()
    ]
    evidence += [f"{r}: cannot judge, {why}" for r, why in sorted(unjudged.items())]
    for r, rep in figures["replicas"].items():
        if rep.get("unverified"):
            evidence.append(f"{r}: {rep['unverified']} keys audited without a digest (present)")
    evidence += [
        f"{d['uid']}: destroyed ({d['by']}) but still {d['state']} on {d['replica']}"
        for d in destroyed_but_present
    ]
    if figures["inconsistent_reads"]:
        evidence.append(
            f"keys read with different bytes: {', '.join(figures['inconsistent_reads'])}"
        )
    evidence += [
        f"Create of {n} ran {len(uids)} times (acknowledged once): {len(uids)} keys named "
        f"{n}: {', '.join(uids)}"
        for n, uids in twice
    ]

    if lost:
        parts = [f"{figures['missing_keys']} missing"]
        if figures["corrupt_keys"]:
            parts.append(f"{figures['corrupt_keys']} corrupt")
        where = sorted({r for k in lost for r in [*k.missing_on, *k.corrupt_on, *k.destroyed_on]})
        summary = (
            f"{len(lost)} of {len(keys)} acknowledged keys lost ({', '.join(parts)}) "
            f"on {', '.join(where)}{also}"
        )
        return Verdict(NAME, "fail", summary, figures, capped(evidence), bound)
    if unjudged:
        names = ", ".join(f"{r} ({why})" for r, why in sorted(unjudged.items()))
        summary = f"nothing lost on the replicas audited, but cannot judge {names}{also}"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    if not keys:
        summary = "no acknowledged create: nothing to judge"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    checked = figures["digest_checked"]
    summary = (
        f"all {len(keys)} acknowledged keys present on {len(replicas)} replicas "
        f"({checked} with the bytes clients read, {len(keys) - checked} never read: "
        f"presence only){also}"
    )
    return Verdict(NAME, "pass", summary, figures, capped(evidence), bound)


def _duplicate_creates(
    ops: Sequence[Complete], final: Iterable[Snapshot]
) -> list[tuple[str, list[str]]]:
    """Acknowledged Creates whose Name more than one key holds in the final audits (every
    replica's, read ones only): (Name, its uids sorted), in the Creates' order."""
    holders: dict[str, set[str]] = {}
    for snap in final:
        if not snap.ok or not isinstance(snap.objects, dict):
            continue
        for uid, entry in snap.objects.items():
            names = entry.get("names") if isinstance(entry, dict) else None
            for name in names if isinstance(names, list) else []:
                holders.setdefault(str(name), set()).add(str(uid))
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for c in sorted(ops, key=lambda c: c.end):
        if c.op != "create" or c.outcome != "ok" or not c.name or c.name in seen:
            continue
        seen.add(c.name)
        if len(holders.get(c.name, ())) > 1:
            out.append((c.name, sorted(holders[c.name])))
    return out


def _duplicates_suffix(twice: Sequence[tuple[str, list[str]]]) -> str:
    """``; 1 Create ran twice (2 keys named kmschaos-…)`` for a summary ("" if none)."""
    if not twice:
        return ""
    shown = ", ".join(f"{len(uids)} keys named {n}" for n, uids in twice[:3])
    more = ", …" if len(twice) > 3 else ""
    if len(twice) == 1:
        k = len(twice[0][1])
        return f"; 1 Create ran {'twice' if k == 2 else f'{k} times'} ({shown})"
    return f"; {len(twice)} Creates ran more than once ({shown}{more})"


def _destroyed(ops: Sequence[Complete]) -> dict[str, str]:
    """Keys a Destroy may have removed: uid -> "ok" or "info" (ok wins)."""
    out: dict[str, str] = {}
    for c in ops:
        if c.op == "destroy" and c.key is not None and c.outcome in ("ok", "info"):
            uid = str(c.key)
            if out.get(uid) != "ok":
                out[uid] = c.outcome
    return out


def _rpo(
    events: Sequence[Event], lost: Sequence[AcknowledgedKey]
) -> tuple[dict[str, dict[str, Any]], int]:
    """Per crash fault, the lost keys charged to it and its RPO; and how many lost keys no
    crash explains."""
    crashes = sorted(
        (
            e
            for e in events
            if isinstance(e, FaultEvent) and e.phase == "inject" and _crashes(e.kind)
        ),
        key=lambda e: e.t,
    )
    charged: dict[str, list[float]] = {f.fault_id: [] for f in crashes}
    unattributed = 0
    for k in lost:
        fault = next(
            (f for f in crashes if k.made_on in _crashed(f) and f.t >= k.made_at),
            None,
        )
        if fault is None:
            unattributed += 1
        else:
            charged[fault.fault_id].append(k.made_at)
    out: dict[str, dict[str, Any]] = {}
    for f in crashes:
        made = charged[f.fault_id]
        out[f.fault_id] = {
            "kind": f.kind,
            "target": f.target,
            "lost": len(made),
            "rpo_s": rounded(f.t - min(made)) if made else 0.0,
        }
    return out, unattributed


def _crashes(kind: str) -> bool:
    """Whether fault `kind` kills a replica's process (its own declaration)."""
    cls = FAULTS.get(kind)
    return cls is not None and cls.crashes


def _crashed(fault: FaultEvent) -> list[str]:
    raw = fault.params.get("replicas") if isinstance(fault.params, dict) else None
    return [str(r) for r in raw] if isinstance(raw, list | tuple) and raw else [fault.target]


def _lost_line(k: AcknowledgedKey, origin: float) -> str:
    how = []
    if k.missing_on:
        how.append(f"missing on {', '.join(k.missing_on)}")
    for replica, found in k.corrupt_on.items():
        shown = found[:12] if found else "no digest"
        expected = (k.reference or "")[:12]
        how.append(f"corrupt on {replica} ({shown}…, clients read {expected}…)")
    if k.destroyed_on:
        how.append(f"destroyed unasked on {', '.join(k.destroyed_on)}")
    return f"key {k.uid} made on {k.made_on or '?'} at +{k.made_at - origin:.3f} s: " + "; ".join(
        how
    )


class DurabilityChecker(Checker):
    name = NAME
    position = 40
    what = (
        "Durability: every key a client was told exists must, after heal and "
        "convergence, be on every replica with the bytes clients read."
    )
    failure_means = (
        "A failure means acknowledged keys are gone or changed: machines encrypted with "
        "them cannot be unlocked. The lost keys are listed below."
    )
    expectations = (AUDIT_WITHIN,)
    needs_audit = True

    def check(self, ctx: CheckContext) -> Verdict:
        return check_durability(
            ctx.events, replicas=ctx.replicas, external=ctx.topology.external_replicas
        )

    def headline(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        if not isinstance(f, dict):
            return ""
        mismatch = identity_headline(v)
        if mismatch:
            return mismatch
        if f.get("lost_keys"):
            return f"{f['lost_keys']} of {f.get('acknowledged', '?')} keys lost"
        kept = f"{f['acknowledged']} keys kept" if "acknowledged" in f else ""
        twice = f.get("duplicate_creates")
        return f"{kept}, {twice} made twice" if kept and twice else kept

    def brief(self, v: dict[str, Any]) -> str:
        if identity_headline(v):
            return " identity"
        lost = (v.get("figures") or {}).get("lost_keys")
        return f" {lost} lost" if lost else ""
