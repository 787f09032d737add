"""Who answered: the identity a server showed, compared with the replica that was meant.

Every attempt and every audit snapshot records who answered: the subject CN of the
certificate the server showed (`Attempt.identity`, `Snapshot.identity`) and, for
snapshots, the certificate's sha256 fingerprint. A history that says "kms-b holds 12
keys" only means it if kms-b answered. Two contradictions make the evidence untrustworthy:

- **wrong server**: a replica kmschaos started answered with another name (each one's
  certificate has CN = its own name): the auditor or a link reached the wrong server.
  An external target may show any name, but never the name of a replica kmschaos
  started.
- **one server, two names**: two replicas showed one certificate (same fingerprint),
  or two external replicas the same identity: a DNS or balancer mistake, a mistyped
  port. Such a topology looks replicated when it is not.

An identity that was not recorded (None: no TLS session, or a history written before
identities were) is not a contradiction. `audit_contradictions` reads snapshots (for
`durability` and `convergence`), `attempt_contradictions` reads attempts (for `failover`
and `order`); `distrust` turns a verdict built on contradicted evidence into `unknown`,
saying why and what the evidence alone would have said. Pure: events in, lines out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.checkers.verdict import Verdict, capped
from harness.faults.base import SERVES_AS
from harness.history import Complete, Event, FaultEvent, Snapshot

Kind = Literal["wrong-server", "one-server"]
FINGERPRINT_SHOWN = 12  # hex digits of a fingerprint named in a line


@dataclass(frozen=True)
class Contradiction:
    """One identity contradiction: `replicas` the ones meant, `shown` the identity that
    answered (the shared one for `one-server`), `where` which evidence, `text` the line."""

    kind: Kind
    replicas: tuple[str, ...]
    shown: str | None
    where: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "replicas": list(self.replicas),
            "shown": self.shown,
            "where": self.where,
            "text": self.text,
        }


def fault_identities(events: Iterable[Event]) -> dict[str, set[str]]:
    """Replica → the other names faults made it show (`SERVES_AS`)."""
    out: dict[str, set[str]] = {}
    for e in events:
        if isinstance(e, FaultEvent) and e.phase == "inject" and e.params.get(SERVES_AS):
            for r in e.params.get("replicas") or [e.target]:
                out.setdefault(r, set()).add(str(e.params[SERVES_AS]))
    return out


def expected_identity(replica: str, external: Collection[str]) -> str | None:
    """The identity `replica` must show: its own name for a replica kmschaos started;
    None for an external target (whatever certificate it has)."""
    return None if replica in external else replica


def audit_contradictions(
    events: Iterable[Event], *, external: Collection[str] = ()
) -> list[Contradiction]:
    """Contradictions in the audit snapshots of a history: a replica kmschaos started
    that answered with another name (or an external one that answered with such a
    name), and replicas that showed one certificate (or, external, one identity)."""
    evs = list(events)
    snaps = [e for e in evs if isinstance(e, Snapshot)]
    own = {s.replica for s in snaps if s.replica not in external}
    faulted = fault_identities(evs)
    out: list[Contradiction] = []

    wrong: dict[tuple[str, str], list[int]] = {}
    for s in snaps:
        if s.identity is None or s.identity == s.replica:
            continue
        if s.identity in faulted.get(s.replica, ()):
            continue
        if s.replica in external and s.identity not in own:
            continue
        wrong.setdefault((s.replica, s.identity), []).append(s.round)
    for (replica, shown), rounds in sorted(wrong.items()):
        out.append(
            Contradiction(
                "wrong-server",
                (replica,),
                shown,
                f"audit {_rounds(rounds)}",
                f"{replica}'s audit ({_rounds(rounds)}) was answered by a server whose "
                f"certificate names {shown!r}, not {replica}: it read another server",
            )
        )

    by_print: dict[str, dict[str, str | None]] = {}
    for s in snaps:
        if s.fingerprint:
            by_print.setdefault(s.fingerprint, {})[s.replica] = s.identity
    seen: set[frozenset[str]] = set()
    for fp, holders in sorted(by_print.items()):
        if len(holders) < 2:
            continue
        names = tuple(sorted(holders))
        seen.add(frozenset(names))
        cn = next((i for i in holders.values() if i), None)
        out.append(
            Contradiction(
                "one-server",
                names,
                cn,
                "audit",
                f"{_and(names)} showed one certificate (CN {cn!r}, sha256 "
                f"{fp[:FINGERPRINT_SHOWN]}…): one server behind {len(names)} names (a DNS or "
                "balancer mistake, a mistyped port?), so what each holds cannot be told apart",
            )
        )

    by_name: dict[str, set[str]] = {}
    for s in snaps:
        if s.replica in external and s.identity:
            by_name.setdefault(s.identity, set()).add(s.replica)
    for name, named in sorted(by_name.items()):
        names = tuple(sorted(named))
        if len(names) < 2 or frozenset(names) in seen:
            continue
        out.append(
            Contradiction(
                "one-server",
                names,
                name,
                "audit",
                f"external replicas {_and(names)} all answered as {name!r}: one server "
                "behind several names (a DNS or balancer mistake, a mistyped port?), or "
                "nodes that share one certificate name; the audit cannot tell them apart",
            )
        )
    return out


def attempt_contradictions(
    events: Iterable[Event],
    *,
    replicas: Collection[str] | None = None,
    external: Collection[str] = (),
    behind: Mapping[str, Collection[str]] | None = None,
) -> list[Contradiction]:
    """Attempts whose server answered with an identity that contradicts it: a replica
    kmschaos started that showed another name, an external one that showed the name of
    a replica kmschaos started (`replicas`: the topology's; default every server the
    attempts name); a load balancer answers with any of the replicas `behind` it. One
    line per (client, server, identity shown)."""
    evs = list(events)
    ops = [e for e in evs if isinstance(e, Complete)]
    faulted = fault_identities(evs)
    if replicas is None:
        replicas = {a.server for c in ops for a in c.attempts}
    own = {r for r in replicas if r not in external}
    found: dict[tuple[str, str, str], list[str]] = {}
    for c in ops:
        for a in c.attempts:
            shown = a.identity
            if shown is None or shown == a.server or shown in faulted.get(a.server, ()):
                continue
            if behind and shown in behind.get(a.server, ()):
                continue
            if a.server in external and shown not in own:
                continue
            found.setdefault((c.client, a.server, shown), []).append(c.op_id)
    out = []
    for (client, server, shown), op_ids in sorted(found.items()):
        n = len(op_ids)
        out.append(
            Contradiction(
                "wrong-server",
                (server,),
                shown,
                f"{client} ops",
                f"{client}'s attempts on {server} were answered by a server whose "
                f"certificate names {shown!r} ({n} op{'s' if n != 1 else ''}, first "
                f"{op_ids[0]}): its link leads to another server",
            )
        )
    return out


def distrust(verdict: Verdict, problems: Sequence[Contradiction], evidence: str) -> Verdict:
    """`verdict` as `unknown` when its `evidence` (the audit, the attempts) is
    contradicted by who answered: the summary says why, the figures keep what the
    evidence alone said (`identity`, `status_without_identity`)."""
    if not problems:
        return verdict
    figures = dict(verdict.figures)
    figures["identity"] = [p.to_dict() for p in problems]
    figures["status_without_identity"] = verdict.status
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    summary = (
        f"cannot trust the {evidence}, a server answered for another: {problems[0].text}"
        f"{more}; the {evidence} alone would say {verdict.status}"
    )
    details = [f"identity: {p.text}" for p in problems]
    details.append(f"the {evidence} alone says {verdict.status}: {verdict.summary}")
    return Verdict(
        verdict.name,
        "unknown",
        summary,
        figures,
        capped(details + list(verdict.details)),
        verdict.bound,
    )


def identity_headline(v: dict[str, Any]) -> str | None:
    """The headline of a verdict made unknown by `distrust` (None for any other)."""
    f = v.get("figures") or {}
    problems = f.get("identity") if isinstance(f, dict) else None
    if not problems or not isinstance(problems, list):
        return None
    kinds = {p.get("kind") for p in problems if isinstance(p, dict)}
    return "one server, two names" if kinds == {"one-server"} else "wrong server answered"


def _rounds(rounds: Sequence[int]) -> str:
    ordered = sorted(set(rounds))
    if len(ordered) == 1:
        return f"round {ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"rounds {ordered[0]}–{ordered[-1]}"
    return "rounds " + ", ".join(str(r) for r in ordered)


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
