"""Site availability: during a partition, what each site's clients could still do.

A partition window runs from a `partition`, `isolate` or `site-down` inject to its heal (or
the end of the history). Per window and per client site, over the ops its clients started
in the window: Gets of keys acknowledged before the window began (a key made during the
cut may not have reached this side, so it says nothing about reads), and Creates; each
with count, ok share and who served them (replica and replica site).

This checker describes; it does not judge the replication profile, and it never fails,
by design: a site that can read but not write is what `sync` and `quorum` promise on the
minority side, and whether a profile kept its promise is judged by `durability` and
`convergence`. It passes when every site with clients had ops in every window, and is
unknown otherwise (nothing to describe).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.verdict import (
    FaultWindow,
    Verdict,
    as_events,
    capped,
    completes,
    fault_windows,
    rounded,
)
from harness.faults import FAULTS
from harness.history import Complete, Event, History, Snapshot

NAME = "site_availability"
UNMAPPED = "(unmapped)"


def check_site_availability(
    events: History | Iterable[Event],
    *,
    replica_sites: dict[str, str],
    client_sites: dict[str, str],
) -> Verdict:
    """Describe, per partition window and client site, how Gets and Creates fared.

    Pass when every site with clients had at least one Get or Create in every window;
    unknown when there was no partition window, no such op, or a site had none. Never
    fails.
    """
    # Audit snapshots are not ops; fault_windows reads the span of ops and faults only.
    evs = [e for e in as_events(events) if not isinstance(e, Snapshot)]
    ops = completes(evs)
    windows = [w for w in fault_windows(evs) if _partitions(w.kind)]
    origin = min([c.start for c in ops] + [w.start for w in windows], default=0.0)
    bound = "describes only: never fails (refused writes can be the profile's promise)"
    sites = sorted(set(client_sites.values()))
    figures: dict[str, Any] = {"windows": {}, "sites": sites}
    if not windows:
        return Verdict(NAME, "unknown", "no partition window", figures, [], bound)

    created: dict[str, float] = {}
    for c in ops:
        if c.op == "create" and c.outcome == "ok" and c.key is not None:
            created[str(c.key)] = min(c.end, created.get(str(c.key), c.end))

    unmapped = sorted({c.client for c in ops if c.client not in client_sites})
    figures["unmapped_clients"] = unmapped
    silent: list[str] = []
    lines: list[str] = []
    evidence: list[str] = []
    counted = 0
    for w in windows:
        per_site: dict[str, Any] = {}
        for site in [*sites, *([UNMAPPED] if unmapped else [])]:
            mine = [
                c
                for c in ops
                if client_sites.get(c.client, UNMAPPED) == site and w.contains(c.start)
            ]
            gets = [
                c
                for c in mine
                if c.op == "get"
                and c.key is not None
                and created.get(str(c.key), w.start) < w.start
            ]
            creates = [c for c in mine if c.op == "create"]
            per_site[site] = {
                "gets": _tally(gets, replica_sites),
                "creates": _tally(creates, replica_sites),
                "gets_not_counted": sum(1 for c in mine if c.op == "get") - len(gets),
                "other_ops": sum(1 for c in mine if c.op not in ("get", "create")),
            }
            if site != UNMAPPED:
                counted += len(gets) + len(creates)
                if not gets and not creates:
                    silent.append(f"{site} during {w.fault_id}")
        figures["windows"][w.fault_id] = {
            "kind": w.kind,
            "target": w.target,
            "groups": _groups(w),
            "start_s": rounded(w.start - origin),
            "end_s": rounded(w.end - origin),
            "healed": w.healed,
            "sites": per_site,
        }
        text = "; ".join(_site_text(s, f) for s, f in per_site.items())
        lines.append(text if len(windows) == 1 else f"{w.fault_id}: {text}")
        evidence.append(f"{w.fault_id} {w.kind} on {w.target}: {text}")
        evidence += [
            f"{w.fault_id} {site} {kind} served by "
            + ", ".join(f"{r} ×{n}" for r, n in f[kind]["served_by"].items())
            for site, f in per_site.items()
            for kind in ("gets", "creates")
            if f[kind]["served_by"]
        ]

    summary = " | ".join(lines)
    if not counted:
        summary = f"no get or create started in any partition window: {summary}"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    if silent:
        summary = f"no ops from {', '.join(silent)}: {summary}"
        return Verdict(NAME, "unknown", summary, figures, capped(evidence), bound)
    return Verdict(NAME, "pass", summary, figures, capped(evidence), bound)


def _partitions(kind: str) -> bool:
    """Whether fault `kind` cuts sites or replicas apart (its own declaration)."""
    cls = FAULTS.get(kind)
    return cls is not None and cls.partitions


def _tally(ops: Sequence[Complete], replica_sites: dict[str, str]) -> dict[str, Any]:
    ok = [c for c in ops if c.outcome == "ok"]
    served = Counter(c.served_by for c in ok if c.served_by is not None)
    by_site = Counter(replica_sites.get(r, UNMAPPED) for r in served.elements())
    return {
        "count": len(ops),
        "ok": len(ok),
        "ok_share": rounded(len(ok) / len(ops)) if ops else None,
        "info": sum(1 for c in ops if c.outcome == "info"),
        "served_by": dict(sorted(served.items())),
        "served_by_site": dict(sorted(by_site.items())),
    }


def _groups(w: FaultWindow) -> list[list[str]] | None:
    raw = w.params.get("groups")
    if not isinstance(raw, list | tuple):
        return None
    return [[str(r) for r in g] for g in raw if isinstance(g, list | tuple)]


def _site_text(site: str, f: dict[str, Any]) -> str:
    gets, creates = f["gets"], f["creates"]
    read = _share_text(gets)
    write = _share_text(creates)
    if creates["count"] and not creates["ok"]:
        if gets["ok"]:
            label = "read-only"
        elif gets["count"]:
            label = "unavailable"
        else:
            label = "writes refused"
        write = write[:-1] + f": {label})"
    return f"{site}: gets {read}, creates {write}"


def _share_text(t: dict[str, Any]) -> str:
    if not t["count"]:
        return "n/a (0)"
    return f"{t['ok'] / t['count']:.0%} ({t['count']})"


class SiteAvailabilityChecker(Checker):
    name = NAME
    position = 60
    what = (
        "Site availability: during a partition, what each site's clients could still "
        "read and write, and who served them."
    )
    failure_means = (
        "It describes rather than judges: a result other than pass means some site had "
        "no operations in a window, so nothing can be said about it."
    )

    def check(self, ctx: CheckContext) -> Verdict:
        topo = ctx.topology
        return check_site_availability(
            ctx.events,
            replica_sites={r: topo.site_of(r) for r in topo.replicas},
            client_sites={n: c.site for n, c in topo.clients.items()},
        )
