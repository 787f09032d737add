"""Lost updates: every replica shows what the last acknowledged change of a key left.

A change is an operation that alters a key (`harness.client.operations.CHANGES`): Create
(Pre-Active), Activate, Revoke (Deactivated, or Compromised for a key compromise),
Destroy (no key) and a rename (a new Name). For every key changed after its Create, and
for each of its two aspects — its State (or its absence) and its first Name — the changes
are ordered in real time by the harness's clock (monotonic time of the `ok` completion).
The last acknowledged change may be any `ok` change that no other `ok` change began
after; an `info` change (no answer: it may have run, at any time since it was sent) may
be the last too. Every replica's final audit snapshot must show the value one of those
left. Showing the value of an earlier change that a later acknowledged change replaced
is a lost update: replication let the earlier change win (async last writer wins on a
replica's wall clock: a replica whose clock is behind makes changes that lose to
earlier ones). The finding names the key, the lost change and the one that won, the
replica and harness time of each, and the clocks involved (faults with an `offset`
parameter active on either replica then).

Not this checker's to judge: a key missing without any Destroy (durability's), a
value no recorded change explains (a change recorded as failed may have taken effect:
unknown), a replica whose last audit began before a change of the key ended (unknown),
and with replication `none` nothing (every key lives where it was made: no replica's
change can overwrite another's). A snapshot answered by another server than its
replica makes the verdict unknown (`harness.checkers.identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.checkers.base import AUDIT_WITHIN, CheckContext, Checker
from harness.checkers.durability import final_snapshots, history_origin, snapshots
from harness.checkers.identity import audit_contradictions, distrust, identity_headline
from harness.checkers.verdict import FaultWindow, Verdict, as_events, capped, fault_windows
from harness.client.operations import CHANGES
from harness.history import Complete, Event, History, Snapshot

NAME = "lost_update"
GONE = "no key"  # the value a Destroy leaves
CLOCK_PARAMS = ("offset", "offset_s")  # a fault with one of these shifts a replica's clock
MAX_LISTED = 100
Aspect = Literal["state", "name"]


@dataclass(frozen=True)
class KeyChange:
    """One operation that changed a key (`ok`) or may have (`info`): the aspect it
    touched and the value it left (None: unknown, an unanswered rename)."""

    op: Complete
    aspect: Aspect
    value: str | None

    @property
    def acknowledged(self) -> bool:
        return self.op.outcome == "ok"

    @property
    def replica(self) -> str | None:
        if self.op.served_by:
            return self.op.served_by
        return self.op.attempts[-1].server if self.op.attempts else None


@dataclass
class Finding:
    """One lost update on some replicas: what they show, the change lost and the one
    that won."""

    uid: str
    aspect: Aspect
    shows: str
    lost: KeyChange
    won: KeyChange
    replicas: list[str]


def changes_of(ops: Iterable[Complete]) -> dict[tuple[str, Aspect], list[KeyChange]]:
    """Per (key, aspect), the changes that were acknowledged or may have run, by end."""
    out: dict[tuple[str, Aspect], list[KeyChange]] = {}
    for c in sorted(ops, key=lambda c: (c.end, c.start)):
        change = CHANGES.get(c.op)
        if change is None or c.key is None or c.outcome not in ("ok", "info"):
            continue
        uid = str(c.key)
        if change.state is not None or change.gone:
            value = GONE if change.gone else change.state
            out.setdefault((uid, "state"), []).append(KeyChange(c, "state", value))
        if change.renames or (c.op == "create" and c.name):
            out.setdefault((uid, "name"), []).append(KeyChange(c, "name", c.name))
    return out


def last_changes(changes: Sequence[KeyChange]) -> list[KeyChange]:
    """The changes that may have been the last: `ok` ones no other `ok` change began
    after, and every `info` one."""
    ok = [c for c in changes if c.acknowledged]
    return [
        c
        for c in changes
        if not c.acknowledged or not any(d.op.start > c.op.end for d in ok if d is not c)
    ]


def shown(snapshot: Snapshot, uid: str, aspect: Aspect) -> str | None:
    """What a snapshot shows of a key's aspect: its State (GONE when absent), its first
    Name; None when the snapshot does not say (names not audited)."""
    objects = snapshot.objects if isinstance(snapshot.objects, dict) else {}
    entry = objects.get(uid)
    if entry is None:
        return GONE if aspect == "state" else None
    if not isinstance(entry, dict):
        return None
    if aspect == "state":
        state = entry.get("state")
        return None if state is None else str(state)
    names = entry.get("names")
    return str(names[0]) if isinstance(names, list) and names else None


def check_lost_update(
    events: History | Iterable[Event],
    *,
    replicas: list[str],
    profile: str,
    external: Sequence[str] = (),
) -> Verdict:
    """Check every replica shows what the last acknowledged change of each key left.

    Fails on a lost update (a replica shows the value of a change a later acknowledged
    one replaced). Passes with replication `none` or when no key changed after its
    Create. Unknown if there is no audit, a replica's final audit is missing or failed
    or began before a change of a key ended, a replica shows a value no recorded change
    left (and nothing is lost), or a snapshot was answered by another server than its
    replica (`external`: the replicas kmschaos did not start).
    """
    evs = as_events(events)
    verdict = _check(evs, replicas, profile)
    return distrust(verdict, audit_contradictions(evs, external=external), "audit")


def _check(evs: list[Event], replicas: list[str], profile: str) -> Verdict:
    origin = history_origin(evs)
    bound = "every replica shows what the last acknowledged change of each key left"
    ops = [e for e in evs if isinstance(e, Complete)]
    by_key = changes_of(ops)
    changed = sorted(
        {uid for (uid, _), cs in by_key.items() if any(c.op.op != "create" for c in cs)}
    )
    windows = fault_windows(evs)
    figures: dict[str, Any] = {
        "profile": profile,
        "keys_changed": len(changed),
        "changes": len(
            {c.op.op_id for (uid, _), cs in by_key.items() if uid in changed for c in cs}
        ),
        "clock_faults": [_clock_figure(w, origin) for w in windows if _offset(w) is not None],
        "lost_updates": 0,
        "lost": [],
        "unexplained": [],
        "missing": 0,
        "unjudged_replicas": [],
    }
    if profile == "none":
        summary = (
            "replication none: every key lives where it was made, no replica's change "
            "can overwrite another's: nothing to judge"
        )
        return Verdict(NAME, "pass", summary, figures, [], bound)
    if not changed:
        summary = "no key was changed after its Create: no update to lose"
        return Verdict(NAME, "pass", summary, figures, [], bound)
    final = final_snapshots(snapshots(evs))
    if not final:
        return Verdict(NAME, "unknown", "no audit: cannot judge lost updates", figures, [], bound)
    if not replicas:
        summary = "no replicas named: cannot judge lost updates"
        return Verdict(NAME, "unknown", summary, figures, [], bound)

    unjudged: dict[str, str] = {}
    findings: dict[tuple[str, Aspect, str, str, str], Finding] = {}
    unexplained: list[str] = []
    for replica in replicas:
        snap = final.get(replica)
        if snap is None:
            unjudged[replica] = "never audited"
            continue
        if not snap.ok:
            unjudged[replica] = f"last audit (round {snap.round}) failed: {snap.error or '?'}"
            continue
        late = 0
        for (uid, aspect), cs in sorted(by_key.items()):
            if uid not in changed or not any(c.acknowledged for c in cs):
                continue
            if max(c.op.end for c in cs) > snap.t:
                late += 1
                continue
            value = shown(snap, uid, aspect)
            if value is None:
                continue  # this snapshot does not say (names not audited)
            last = last_changes(cs)
            if any(c.value is None or c.value == value for c in last):
                continue
            if value == GONE and not any(c.value == GONE for c in cs):
                figures["missing"] += 1  # durability's finding: no Destroy explains it
                continue
            won = next((c for c in reversed(cs) if c.value == value), None)
            if won is None:
                unexplained.append(
                    f"key {uid} on {replica}: shows {_value(aspect, value)}, which no "
                    f"recorded change left (a change recorded as failed may have run)"
                )
                continue
            lost = max((c for c in last if c.acknowledged), key=lambda c: c.op.end)
            ident = (uid, aspect, value, lost.op.op_id, won.op.op_id)
            finding = findings.setdefault(ident, Finding(uid, aspect, value, lost, won, []))
            finding.replicas.append(replica)
        if late:
            unjudged[replica] = (
                f"its last audit (round {snap.round}) began before {late} change(s) ended"
            )

    lines = [_finding_line(f, windows, origin) for f in findings.values()]
    figures["lost_updates"] = len(findings)
    figures["lost"] = [_finding_figure(f, windows, origin) for f in findings.values()][:MAX_LISTED]
    figures["unexplained"] = unexplained[:MAX_LISTED]
    figures["unjudged_replicas"] = sorted(unjudged)
    evidence = lines + unexplained + [f"{r}: cannot judge, {why}" for r, why in unjudged.items()]
    if findings:
        keys = len({f.uid for f in findings.values()})
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        summary = (
            f"{len(findings)} lost update{'s' if len(findings) != 1 else ''} on {keys} of "
            f"{len(changed)} changed keys: {lines[0]}{more}"
        )
        return Verdict(NAME, "fail", summary, figures, capped(evidence), bound)
    if unjudged or unexplained:
        why = [f"{r} ({w})" for r, w in sorted(unjudged.items())]
        if unexplained:
            why.append(f"{len(unexplained)} value(s) no recorded change left")
        summary = f"no lost update seen, but cannot judge: {'; '.join(why)}"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    summary = (
        f"every replica shows the last acknowledged change of all {len(changed)} changed "
        f"keys ({figures['changes']} changes)"
    )
    return Verdict(NAME, "pass", summary, figures, capped(evidence), bound)


# --- Words and figures -----------------------------------------------------------------


def _value(aspect: Aspect, value: str) -> str:
    return f"the name {value!r}" if aspect == "name" else value


def _offset(w: FaultWindow) -> str | None:
    for p in CLOCK_PARAMS:
        if p in w.params:
            return str(w.params[p])
    return None


def clocks_at(windows: Sequence[FaultWindow], replica: str | None, t: float) -> list[FaultWindow]:
    """The clock faults in effect on `replica` at time `t`."""
    return [
        w for w in windows if _offset(w) is not None and replica in w.replicas and w.contains(t)
    ]


def _clock_text(windows: Sequence[FaultWindow], replica: str | None, t: float) -> str:
    skews = clocks_at(windows, replica, t)
    if not skews:
        return f"{replica or '?'} no clock fault"
    return ", ".join(f"{replica} {w.kind} {_offset(w)} ({w.fault_id})" for w in skews)


def _made(c: KeyChange, origin: float, earlier: bool = False) -> str:
    what = f"the {'earlier ' if earlier else ''}{CHANGES[c.op.op].title} ({c.op.op_id}"
    if c.acknowledged:
        return f"{what}) acknowledged by {c.replica or '?'} at +{c.op.end - origin:.3f} s"
    return f"{what}, outcome unknown) sent to {c.replica or '?'} at +{c.op.start - origin:.3f} s"


def _finding_line(f: Finding, windows: Sequence[FaultWindow], origin: float) -> str:
    lost_value = _value(f.aspect, f.lost.value or "?")
    clocks = {
        _clock_text(windows, f.lost.replica, f.lost.op.end),
        _clock_text(windows, f.won.replica, f.won.op.end),
    }
    return (
        f"key {f.uid}: {_made(f.lost, origin)} (→ {lost_value}) is lost on "
        f"{', '.join(f.replicas)}: {'it shows' if len(f.replicas) == 1 else 'they show'} "
        f"{_value(f.aspect, f.shows)}, left by {_made(f.won, origin, earlier=True)}; "
        f"clocks: {'; '.join(sorted(clocks))}"
    )


def _change_figure(c: KeyChange, windows: Sequence[FaultWindow], origin: float) -> dict[str, Any]:
    return {
        "op": c.op.op,
        "op_id": c.op.op_id,
        "client": c.op.client,
        "outcome": c.op.outcome,
        "replica": c.replica,
        "at_s": round(c.op.end - origin, 6),
        "leaves": c.value,
        "clock_faults": [
            {"fault_id": w.fault_id, "kind": w.kind, "offset": _offset(w)}
            for w in clocks_at(windows, c.replica, c.op.end)
        ],
    }


def _finding_figure(f: Finding, windows: Sequence[FaultWindow], origin: float) -> dict[str, Any]:
    return {
        "uid": f.uid,
        "aspect": f.aspect,
        "on": list(f.replicas),
        "shows": f.shows,
        "lost": _change_figure(f.lost, windows, origin),
        "won": _change_figure(f.won, windows, origin),
    }


def _clock_figure(w: FaultWindow, origin: float) -> dict[str, Any]:
    return {
        "fault_id": w.fault_id,
        "kind": w.kind,
        "replicas": list(w.replicas),
        "offset": _offset(w),
        "from_s": round(w.start - origin, 6),
        "to_s": round(w.end - origin, 6) if w.healed else None,
    }


class LostUpdateChecker(Checker):
    name = NAME
    position = 55
    what = (
        "Lost updates: for every key changed after its Create, every replica must show "
        "what the last acknowledged change left (its State, its Name, or no key after a "
        "Destroy), in the harness's real-time order — not an earlier change that won by "
        "a replica's clock."
    )
    failure_means = (
        "A failure means an acknowledged change was silently undone: a Revoke or Destroy "
        "an operator saw succeed did not stick (a revoked key is usable again), or an "
        "attribute change vanished. Each lost change is named with the one that won, "
        "where and when both were made, and the clocks involved."
    )
    expectations = (AUDIT_WITHIN,)
    needs_audit = True

    def check(self, ctx: CheckContext) -> Verdict:
        return check_lost_update(
            ctx.events,
            replicas=ctx.replicas,
            profile=ctx.topology.replication_profile,
            external=ctx.topology.external_replicas,
        )

    def headline(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        if not isinstance(f, dict):
            return ""
        mismatch = identity_headline(v)
        if mismatch:
            return mismatch
        if f.get("lost_updates"):
            where = sorted({r for x in f.get("lost", []) for r in x.get("on", [])})
            return f"{f['lost_updates']} lost update(s) on {', '.join(where)}"
        return f"{f['keys_changed']} changed keys kept" if "keys_changed" in f else ""

    def brief(self, v: dict[str, Any]) -> str:
        if identity_headline(v):
            return " identity"
        lost = (v.get("figures") or {}).get("lost_updates")
        return f" {lost} lost" if lost else ""
