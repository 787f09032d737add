"""`kmschaos audit`: what every replica of a running cluster holds, who answered for it,
and which keys one replica holds that another lacks — the first command to run after an
incident.

One audit round (`harness.audit.Auditor`: directly to each replica, not through its
links; on an external target only the keys this run made there), then per key where it
exists and where it is missing, per replica the identity it showed, and the identity
contradictions the checkers would refuse to judge through (`harness.checkers.identity`):
a replica that answered with another's certificate, two replicas that are one server.
External replicas' host names are resolved (with a short deadline) so two names for one
address are reported too (`harness.topology_lint.same_server`). Exit 0 when every
replica was read, each answered as itself, and all hold the same keys with the same
bytes and states; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import Any

from harness import options
from harness.cli.common import EXIT_FAIL, EXIT_OK, attach
from harness.history import Snapshot

DIGEST_SHOWN = 12  # hex digits of a digest in the text output
RESOLVE_TIMEOUT_S = 2.0


@dataclass
class KeySpread:
    """One key across the replicas that could be read: who holds it with what (digest,
    state), who lacks it, and whether the holders disagree on bytes or state."""

    uid: str
    held: dict[str, tuple[str | None, str | None]]
    missing_on: list[str]

    @property
    def differs(self) -> bool:
        return len(set(self.held.values())) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "on": {r: {"digest": d, "state": s} for r, (d, s) in self.held.items()},
            "missing_on": self.missing_on,
            "differs": self.differs,
        }


@dataclass
class AuditReport:
    """What one audit round found, compared (pure; `build_report`)."""

    run_id: str
    profile: str
    snapshots: list[Snapshot]
    external: list[str]
    keys: list[KeySpread] = field(default_factory=list)
    identity: list[str] = field(default_factory=list)  # contradictions, one line each
    unresolved: dict[str, str] = field(default_factory=dict)  # host -> why
    took_s: float = 0.0

    @property
    def unreadable(self) -> list[Snapshot]:
        return [s for s in self.snapshots if not s.ok]

    @property
    def at_risk(self) -> list[KeySpread]:
        return [k for k in self.keys if k.missing_on]

    @property
    def differing(self) -> list[KeySpread]:
        return [k for k in self.keys if k.differs]

    @property
    def agree(self) -> bool:
        return not (self.unreadable or self.at_risk or self.differing or self.identity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replication_profile": self.profile,
            "agree": self.agree,
            "took_s": round(self.took_s, 3),
            "replicas": {
                s.replica: {
                    "external": s.replica in self.external,
                    "identity": s.identity,
                    "fingerprint": s.fingerprint,
                    "ok": s.ok,
                    "error": s.error,
                    "objects": len(s.objects) if s.ok else None,
                    "lacks": sorted(k.uid for k in self.keys if s.replica in k.missing_on),
                    "only_here": sorted(
                        k.uid for k in self.keys if list(k.held) == [s.replica] and k.missing_on
                    ),
                }
                for s in self.snapshots
            },
            "at_risk": [k.to_dict() for k in self.at_risk],
            "differing": [k.to_dict() for k in self.differing],
            "identity_problems": self.identity,
            "unresolved_hosts": self.unresolved,
        }


def build_report(
    snaps: list[Snapshot],
    *,
    run_id: str,
    profile: str,
    external: list[str],
    identity: list[str],
    unresolved: dict[str, str] | None = None,
    took_s: float = 0.0,
) -> AuditReport:
    """Per key, where it is and where it is missing among the replicas read (pure)."""
    from harness.checkers.durability import held

    readable = {s.replica: held(s) for s in snaps if s.ok}
    uids = sorted(set().union(*readable.values()) if readable else set(), key=_uid_order)
    keys = [
        KeySpread(
            uid,
            {r: objs[uid] for r, objs in readable.items() if uid in objs},
            [r for r, objs in readable.items() if uid not in objs],
        )
        for uid in uids
    ]
    return AuditReport(
        run_id, profile, snaps, external, keys, identity, dict(unresolved or {}), took_s
    )


def render(report: AuditReport) -> str:
    """The report for a person: the replicas, the keys at risk, the verdict."""
    snaps = report.snapshots
    lines = [
        f"kmschaos audit: run {report.run_id}, {len(snaps)} replicas read directly (not "
        f"through links) in {report.took_s:.2f} s; replication profile {report.profile}",
        "",
    ]
    rows = [("replica", "answered as", "objects", "read")]
    for s in snaps:
        ext = " (external)" if s.replica in report.external else ""
        rows.append(
            (
                s.replica + ext,
                s.identity or "-",
                str(len(s.objects)) if s.ok else "-",
                "ok" if s.ok else f"FAILED: {s.error or 'no reason'}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
        for r in rows
    ]
    if report.external:
        lines.append(
            f"(external replicas {', '.join(report.external)}: only the keys this run made "
            "there are read)"
        )
    if report.identity:
        lines += ["", "WHO ANSWERED does not match (what these replicas hold is not known):"]
        lines += [f"  {p}" for p in report.identity]
    for host, why in sorted(report.unresolved.items()):
        lines.append(f"  note: {host}: {why}")
    at_risk = report.at_risk
    if at_risk:
        among = ", among the replicas read," if report.unreadable else ""
        lines += [
            "",
            f"{_n(len(at_risk), 'key')} held by some replicas and missing on others{among} "
            "(lost for good if the replicas holding them are lost):",
        ]
        lines += [f"  key {k.uid}{_value(k)}: on {', '.join(k.held)}; missing on "
                  f"{', '.join(k.missing_on)}" for k in at_risk]  # fmt: skip
        if report.profile == "none":
            lines.append(
                "  (replication profile none: the replicas do not copy keys to each other, "
                "so every key lives only where it was made)"
            )
    differing = report.differing
    if differing:
        lines += ["", f"{_n(len(differing), 'key')} with other bytes or state on some replicas:"]
        for k in differing:
            values = ", ".join(f"{r} {_entry(v)}" for r, v in k.held.items())
            lines.append(f"  key {k.uid}: {values}")
    lines += ["", _verdict(report)]
    return "\n".join(lines)


def _verdict(report: AuditReport) -> str:
    n = len(report.snapshots)
    if report.agree:
        return (
            f"AGREE: all {n} replicas answered as themselves and hold the same "
            f"{_n(len(report.keys), 'key')} with the same bytes and states"
        )
    parts = []
    if report.identity:
        parts.append(f"{_n(len(report.identity), 'identity problem')}")
    if report.at_risk:
        parts.append(f"{_n(len(report.at_risk), 'key')} missing on some replicas")
    if report.differing:
        parts.append(f"{_n(len(report.differing), 'key')} differing")
    if report.unreadable:
        names = ", ".join(s.replica for s in report.unreadable)
        parts.append(f"{names} unreadable (what it holds is unknown)")
    return f"DIFFER: {'; '.join(parts)}"


def _value(k: KeySpread) -> str:
    values = set(k.held.values())
    return f" ({_entry(next(iter(values)))})" if len(values) == 1 else " (values differ)"


def _entry(v: tuple[str | None, str | None]) -> str:
    digest, state = v
    shown = f"sha256 {digest[:DIGEST_SHOWN]}…" if digest else "no digest"
    return f"{state or '?'}, {shown}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _uid_order(uid: str) -> tuple[int, str]:
    return (int(uid), "") if uid.isdigit() else (1 << 62, uid)


def cmd_audit(args: argparse.Namespace) -> int:
    from harness.audit import Auditor
    from harness.checkers.identity import audit_contradictions
    from harness.external import external_names
    from harness.history import History
    from harness.topology import topology_from_dict
    from harness.topology_lint import resolve, same_server

    cluster = attach(args)
    st = cluster.state
    external = sorted(external_names(st), key=list(st.replicas).index)
    t0 = time.monotonic()
    snaps = Auditor(cluster, History(), timeout_s=args.timeout).round()
    took = time.monotonic() - t0
    problems = [p.text for p in audit_contradictions(snaps, external=external)]
    unresolved: dict[str, str] = {}
    if external:
        topo = topology_from_dict(st.topology, st.topology_source)
        hosts = [e.host for r in external if (e := topo.info_of(r).external) is not None]
        addresses = resolve(hosts, RESOLVE_TIMEOUT_S)
        unresolved = {h: a for h, a in addresses.items() if isinstance(a, str)}
        problems += [f.message for f in same_server(topo, addresses)]
    report = build_report(
        snaps,
        run_id=st.run_id,
        profile=str(st.replication.get("profile", "none")),
        external=external,
        identity=problems,
        unresolved=unresolved,
        took_s=took,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report))
    return EXIT_OK if report.agree else EXIT_FAIL


def add_parsers(sub: Any) -> None:
    """The subcommands of this module."""
    p = sub.add_parser(
        "audit",
        help="what every replica of a running cluster holds, and which keys are at risk",
        description="Read every replica of a running cluster once over KMIP, directly (not "
        "through its links): per replica the identity it showed (its certificate's name) "
        "and how many objects it holds; every key one replica holds that another lacks "
        "(where it exists, where it is missing), and keys whose bytes or state differ. Two "
        "replicas that answered with one certificate, or external replicas whose names "
        "resolve to one address, are reported. Exit 0 when all agree; 1 when they differ, a "
        "replica is unreadable, or a replica answered as another.",
    )
    options.add_state_dir(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for each replica (default 10)",
    )
    p.add_argument("--json", action="store_true", help="the report as JSON, for programs")
    p.set_defaults(func=cmd_audit)
