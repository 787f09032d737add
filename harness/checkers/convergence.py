"""Convergence: after the last fault ends, how long until every replica holds the same keys.

Measured from the last fault event (normally the last heal; an unhealed inject if it came
later; the first audit if there was no fault) over the audit rounds that began after it.
A round has converged when every replica's snapshot is in it and readable, and all hold
the same uids with the same digests and states. `convergence_s` is the time of that
round's last snapshot minus the anchor: an upper bound on the real convergence time, as
precise as the audit interval. While a fault is still unhealed, divergence is expected:
never converging is then unknown, not a failure. Snapshots answered by another server
than their replica, or two replicas showing one server, make it unknown: agreement
between copies of one server's holdings proves nothing (`harness.checkers.identity`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from harness.checkers.base import Bound, CheckContext, Checker
from harness.checkers.durability import held, history_origin, snapshots
from harness.checkers.identity import audit_contradictions, distrust, identity_headline
from harness.checkers.verdict import Verdict, as_events, capped, rounded
from harness.history import Event, FaultEvent, History, Snapshot

NAME = "convergence"
EXAMPLES = 5  # uids named per replica in the evidence


def check_convergence(
    events: History | Iterable[Event],
    *,
    replicas: list[str],
    bound_s: float | None = None,
    external: Sequence[str] = (),
) -> Verdict:
    """Check the replicas in `replicas` converged after the last fault (within `bound_s`).

    Fails if no audit round after the anchor converged, or if convergence took longer
    than `bound_s`. Unknown if there is no audit round after the anchor, if it never
    converged while some fault was never healed, or if a snapshot was answered by
    another server than its replica or two replicas showed one server (`external`: the
    replicas kmschaos did not start).
    """
    evs = as_events(events)
    verdict = _check_convergence(evs, replicas, bound_s)
    return distrust(verdict, audit_contradictions(evs, external=external), "audit")


def _check_convergence(evs: list[Event], replicas: list[str], bound_s: float | None) -> Verdict:
    origin = history_origin(evs)
    bound = f"converged within {bound_s:.3f} s" if bound_s is not None else "converged"
    snaps = snapshots(evs)
    faults = sorted((e for e in evs if isinstance(e, FaultEvent)), key=lambda e: e.t)
    figures: dict[str, Any] = {
        "convergence_s": None,
        "converged_round": None,
        "rounds_examined": 0,
        "bound_s": bound_s,
    }

    if faults:
        last = faults[-1]
        anchor = last.t
        healed = {e.fault_id for e in faults if e.phase == "heal"}
        unhealed = sorted({e.fault_id for e in faults if e.fault_id not in healed})
        what = "last heal" if last.phase == "heal" else f"unhealed {last.kind}"
        figures["anchor"] = {
            "event": last.phase,
            "fault_id": last.fault_id,
            "kind": last.kind,
            "at_s": rounded(anchor - origin),
        }
        figures["unhealed_faults"] = unhealed
        anchor_text = f"{what} ({last.fault_id} {last.kind} on {last.target})"
    elif snaps:
        anchor = min(s.t for s in snaps)
        figures["anchor"] = {"event": "first-audit", "at_s": rounded(anchor - origin)}
        anchor_text = "first audit (no faults)"
    else:
        return Verdict(NAME, "unknown", "no audit and no faults", figures, [], bound)

    rounds: dict[int, list[Snapshot]] = {}
    for s in snaps:
        rounds.setdefault(s.round, []).append(s)
    after = [(n, ss) for n, ss in sorted(rounds.items()) if min(s.t for s in ss) >= anchor]
    if not after:
        summary = f"no audit round began after the {anchor_text}: cannot judge convergence"
        return Verdict(NAME, "unknown", summary, figures, [], bound)
    if not replicas:
        summary = "no replicas named: cannot judge convergence"
        return Verdict(NAME, "unknown", summary, figures, [], bound)

    examined = 0
    for n, ss in after:
        examined += 1
        differences = round_differences(ss, replicas)
        if all(not _differs(d) for d in differences.values()):
            took = max(s.t for s in ss) - anchor
            figures.update(convergence_s=rounded(took), converged_round=n, rounds_examined=examined)
            line = f"converged in round {n}, {took:.3f} s after the {anchor_text}"
            if bound_s is not None and took > bound_s:
                summary = f"{line}: slower than {bound_s:.3f} s"
                return Verdict(NAME, "fail", summary, figures, [summary], bound)
            return Verdict(NAME, "pass", line, figures, [line], bound)

    last_round, last_snaps = after[-1]
    differences = round_differences(last_snaps, replicas)
    diverged = [r for r, d in differences.items() if _differs(d)]
    figures["rounds_examined"] = examined
    figures["last_round"] = last_round
    figures["differences"] = {r: _counts(d) for r, d in differences.items()}
    evidence = [
        f"{r} in round {last_round}: {_describe(d)}" for r, d in differences.items() if _differs(d)
    ]
    rounds_text = f"{examined} audit round{'s' if examined != 1 else ''}"
    summary = (
        f"never converged: {rounds_text} after the {anchor_text}, last (round "
        f"{last_round}) still differs on {', '.join(diverged)}"
    )
    unhealed = figures.get("unhealed_faults") or []
    if unhealed:
        summary = f"{', '.join(unhealed)} never healed, so convergence was not due: {summary}"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    return Verdict(NAME, "fail", summary, figures, capped(evidence), bound)


def round_differences(round_snaps: Sequence[Snapshot], replicas: Sequence[str]) -> dict[str, Any]:
    """Per replica, how its holdings in one round differ from the others'.

    `missing`: uids another replica holds and it lacks; `extra`: uids only it holds (with
    other replicas to compare against); `differs`: uids whose (digest, state) is not the
    value most holders agree on (on a tie, every holder differs). A replica absent from
    the round, or whose read failed, is marked so and left out of the comparison.
    """
    by_replica = {s.replica: s for s in sorted(round_snaps, key=lambda s: s.t)}
    readable: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    out: dict[str, Any] = {}
    for r in replicas:
        s = by_replica.get(r)
        if s is None:
            out[r] = {"snapshot": "absent"}
        elif not s.ok:
            out[r] = {"snapshot": "failed", "error": s.error}
        else:
            readable[r] = held(s)
    consensus: dict[str, tuple[str | None, str | None] | None] = {}
    for uid in set().union(*readable.values()) if readable else set():
        values = Counter(objs[uid] for objs in readable.values() if uid in objs)
        top = values.most_common(2)
        tied = len(top) > 1 and top[0][1] == top[1][1]
        consensus[uid] = None if tied else top[0][0]
    for r, objs in readable.items():
        others = [o for name, o in readable.items() if name != r]
        elsewhere = set().union(*others) if others else set()
        out[r] = {
            "snapshot": "ok",
            "missing": sorted(elsewhere - set(objs)),
            "extra": sorted(set(objs) - elsewhere) if others else [],
            "differs": sorted(uid for uid, v in objs.items() if consensus.get(uid) != v),
        }
    return out


def _differs(d: dict[str, Any]) -> bool:
    if d.get("snapshot") != "ok":
        return True
    return bool(d["missing"] or d["extra"] or d["differs"])


def _counts(d: dict[str, Any]) -> dict[str, Any]:
    if d.get("snapshot") != "ok":
        return dict(d)
    return {
        "snapshot": "ok",
        "missing": len(d["missing"]),
        "extra": len(d["extra"]),
        "differs": len(d["differs"]),
    }


def _describe(d: dict[str, Any]) -> str:
    if d.get("snapshot") == "absent":
        return "not audited"
    if d.get("snapshot") == "failed":
        return f"audit failed: {d.get('error') or 'no reason'}"
    parts = []
    for what in ("missing", "extra", "differs"):
        uids = d[what]
        if uids:
            shown = ", ".join(uids[:EXAMPLES]) + (" …" if len(uids) > EXAMPLES else "")
            parts.append(f"{len(uids)} {what} ({shown})")
    return "; ".join(parts)


class ConvergenceChecker(Checker):
    name = NAME
    position = 50
    what = (
        "Convergence: after the last heal, how long until every replica holds the same "
        "objects with the same bytes and states (audit rounds over KMIP)."
    )
    failure_means = (
        "A failure means the replicas still disagreed at the last audit round, or agreed "
        "later than the bound: a client may read a key on one replica and miss it on another."
    )
    expectations = (
        Bound("within", "duration", "within_s", "every replica agrees this soon after heal"),
    )
    needs_audit = True
    audit_grace_s = 5.0  # the audit goes on past `within`, so a late one is measured
    judges_operations = False

    def check(self, ctx: CheckContext) -> Verdict:
        return check_convergence(
            ctx.events,
            replicas=ctx.replicas,
            bound_s=ctx.bound("within_s"),
            external=ctx.topology.external_replicas,
        )

    def headline(self, v: dict[str, Any]) -> str:
        mismatch = identity_headline(v)
        if mismatch:
            return mismatch
        took = (v.get("figures") or {}).get("convergence_s")
        return f"{took:.3f} s" if isinstance(took, int | float) else ""

    def brief(self, v: dict[str, Any]) -> str:
        if identity_headline(v):
            return " identity"
        took = (v.get("figures") or {}).get("convergence_s")
        return f" {took:.2f}s" if took is not None else ""
