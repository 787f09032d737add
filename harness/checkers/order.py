"""Server order: every op walked its client's replica list from the start, in order.

Both policies open new connections by walking the client's order from order[0]: an op's
fresh (non-reused) attempts must name exactly order[0], order[1], ... with nothing
skipped, repeated or reversed. A connection opened by an earlier op may serve any
replica, but it is only ever tried first.

An attempt answered by a server whose certificate names another replica (a link that
leads elsewhere) makes the verdict `unknown`: the order recorded is not the order of the
servers reached (`harness.checkers.identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.identity import attempt_contradictions, distrust, identity_headline
from harness.checkers.verdict import Verdict, as_events, attempt_trail, capped, completes
from harness.history import Attempt, Complete, Event, History

NAME = "order"


def order_violation(attempts: Sequence[Attempt], order: Sequence[str]) -> str | None:
    """Why these attempts break `order`, or None if they follow it."""
    for i, a in enumerate(attempts):
        if a.reused and i != 0:
            return f"reused connection to {a.server} tried as attempt {i + 1}, not first"
    fresh = [a.server for a in attempts if not a.reused]
    for i, server in enumerate(fresh):
        if server not in order:
            return f"unknown server {server!r}"
        if i >= len(order):
            return f"tried {server} again after the whole order"
        expected = order[i]
        if server == expected:
            continue
        pos = order.index(server)
        if pos < i:
            return f"went back to {server} after {fresh[i - 1]}"
        return f"skipped {', '.join(order[i:pos])}"
    return None


def check_order(
    events: History | Iterable[Event],
    *,
    orders: dict[str, list[str]],
    replicas: Sequence[str] | None = None,
    external: Sequence[str] = (),
) -> Verdict:
    """Check every op's attempts follow its client's replica order.

    Fails on any violation (skipped or repeated server, going backwards, unknown server,
    unknown client, a reused connection tried after a fresh one); unknown if no ops, or
    if an attempt was answered by a server whose identity contradicts it (`replicas`:
    the topology's, default every server the attempts name; `external`: those kmschaos
    did not start).
    """
    evs = as_events(events)
    verdict = _check_order(evs, orders)
    problems = attempt_contradictions(evs, replicas=replicas, external=external)
    return distrust(verdict, problems, "attempts")


def _check_order(evs: list[Event], orders: dict[str, list[str]]) -> Verdict:
    ops = completes(evs)
    per_client: dict[str, dict[str, int]] = {}
    evidence: list[str] = []
    violations = 0
    for c in ops:
        counts = per_client.setdefault(c.client, {"ops": 0, "violations": 0})
        counts["ops"] += 1
        order = orders.get(c.client)
        reason: str | None
        if order is None:
            reason = f"unknown client (known: {', '.join(sorted(orders)) or 'none'})"
        else:
            reason = order_violation(c.attempts, order)
        if reason is None:
            continue
        counts["violations"] += 1
        violations += 1
        evidence.append(_evidence(c, order, reason))

    figures: dict[str, Any] = {
        "ops_checked": len(ops),
        "violations": violations,
        "clients": per_client,
    }
    if not ops:
        return Verdict(NAME, "unknown", "no ops to check", figures, [])
    if violations:
        worst_client = max(per_client, key=lambda k: per_client[k]["violations"])
        summary = (
            f"{violations} of {len(ops)} ops broke their client's server order "
            f"(most: {worst_client}, {per_client[worst_client]['violations']}); "
            f"first: {evidence[0]}"
        )
        return Verdict(NAME, "fail", summary, figures, capped(evidence))
    summary = f"all {len(ops)} ops of {len(per_client)} clients followed their server order"
    return Verdict(NAME, "pass", summary, figures, [])


def _evidence(c: Complete, order: Sequence[str] | None, reason: str) -> str:
    expected = ", ".join(order) if order is not None else "?"
    return (
        f"{c.op_id} {c.client}: {reason}; attempted {attempt_trail(c.attempts)}; "
        f"expected a prefix of [{expected}]"
    )


class OrderChecker(Checker):
    name = NAME
    position = 20
    what = "Order: every request walks the client's replica list from the top, one by one."
    failure_means = (
        "A failure means a client skipped a replica, went back to one it had left, or "
        "tried one that is not on its list: the configured order is not what runs."
    )

    def check(self, ctx: CheckContext) -> Verdict:
        return check_order(
            ctx.events,
            orders=ctx.orders,
            replicas=ctx.replicas,
            external=ctx.topology.external_replicas,
        )

    def headline(self, v: dict[str, Any]) -> str:
        f = v.get("figures") or {}
        mismatch = identity_headline(v)
        if mismatch:
            return mismatch
        if not isinstance(f, dict) or "violations" not in f:
            return ""
        bad, ops = f["violations"], f.get("ops_checked", "?")
        return f"{bad} of {ops} ops out of order" if bad else f"{ops} ops in order"
