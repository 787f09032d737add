"""Server order: every op walked its client's replica list as its policy says.

The policy (`harness.client.policy_spec`) decides what a correct walk is, per client
instance (an op's id is ``client#worker:n``):

- fresh (non-reused) attempts name order[0], order[1], ... with nothing skipped,
  repeated or reversed, except:
  - a server that could not be connected to (TCP or TLS) within the policy's
    `skip_failed_s` may be skipped, and is not tried again inside that window (all
    skipped: the first is tried), judged with a tolerance of 50 ms + 5 %;
  - a failed attempt whose outcome the policy retries is followed by up to `retries`
    more tries of the same server;
- a connection opened by an earlier op may serve any replica, but only first; after an
  error on it, a policy with `open_connection_error: fail` tries nothing else;
- an `at-start` client walks the list at its first op after it (re)starts; after one
  succeeded, it tries only that server until a `ClientEvent` restarts it.

An attempt answered by a server whose certificate names another replica (a link that
leads elsewhere) makes the verdict `unknown`: the order recorded is not the order of the
servers reached (`harness.checkers.identity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers.base import CheckContext, Checker
from harness.checkers.identity import attempt_contradictions, distrust, identity_headline
from harness.checkers.verdict import Verdict, as_events, attempt_trail, capped, completes
from harness.client.policy_spec import POLICIES, PolicySpec, preset_of
from harness.history import ADMIN_CLIENT, Attempt, ClientEvent, Complete, Event, History

NAME = "order"
SKIP_SLACK_S = 0.05
SKIP_SLACK_SHARE = 0.05


@dataclass
class _Instance:
    """What one client instance remembers between ops, as the checker follows it."""

    dial_failed: dict[str, float] = field(default_factory=dict)  # server -> when
    chosen: str | None = None


def order_violation(
    attempts: Sequence[Attempt],
    order: Sequence[str],
    policy: PolicySpec | None = None,
    memory: _Instance | None = None,
    skip_s: float = 0.0,
) -> str | None:
    """Why these attempts break `order` under `policy`, or None if they follow it.
    `memory` is what the client instance knew before the op (updated here); `skip_s`
    is the policy's skip window at the run's time scale."""
    spec = policy or POLICIES["vcenter"]
    mem = memory if memory is not None else _Instance()
    for i, a in enumerate(attempts):
        if a.reused and i != 0:
            return f"reused connection to {a.server} tried as attempt {i + 1}, not first"
    if (
        attempts
        and attempts[0].reused
        and attempts[0].outcome != "ok"
        and len(attempts) > 1
        and spec.open_connection_error == "fail"
    ):
        return (
            f"tried {attempts[1].server} after an error on the open connection to "
            f"{attempts[0].server} ({spec.label}: open_connection_error fail)"
        )
    why = _walk_violation(attempts, order, spec, mem, skip_s)
    _remember(attempts, spec, mem)
    return why


def _walk_violation(
    attempts: Sequence[Attempt],
    order: Sequence[str],
    spec: PolicySpec,
    mem: _Instance,
    skip_s: float,
) -> str | None:
    # consecutive tries of one server: a retry must follow an outcome the policy retries
    runs: list[list[Attempt]] = []
    for a in attempts:
        if runs and runs[-1][0].server == a.server:
            runs[-1].append(a)
        else:
            runs.append([a])
    for run in runs:
        # after an error on the open connection, a new walk may begin at that server
        extra = 1 if run[0].reused and spec.open_connection_error == "failover" else 0
        retried = sum(1 for x in run[:-1] if x.outcome != "ok" and spec.retried(x.outcome))
        if len(run) > 1 + min(retried, spec.retries) + extra:
            what = f"×{spec.retries} on {', '.join(spec.retry_on)}" if spec.retries else "nothing"
            return (
                f"tried {run[0].server} {len(run)} times in a row after "
                f"{', '.join(x.outcome for x in run[:-1])}; {spec.label} retries {what}"
            )
    failed_here: set[str] = set()
    walk: list[Attempt] = []
    for run in runs:
        if run[0].reused:
            failed_here.add(run[0].server)
            rest = [x for x in run if not x.reused]
            if len(rest) > spec.retries:  # the walk begins at it
                walk.append(rest[-1])
            continue
        walk.append(run[0])
    if spec.selection == "at-start" and mem.chosen is not None:
        others = [a.server for a in walk if a.server != mem.chosen]
        if others:
            return (
                f"tried {others[0]} though it chose {mem.chosen} at start "
                f"({spec.label} does not fail over until restarted)"
            )
        return None
    for a in walk:
        if a.server not in order:
            return f"unknown server {a.server!r}"
    j = 0
    for i, a in enumerate(walk):
        if j >= len(order):
            return f"tried {a.server} again after the whole order"
        while order[j] != a.server:
            skipped = order[j]
            if order.index(a.server) < j:
                return f"went back to {a.server} after {walk[i - 1].server}"
            if skipped not in failed_here and not _may_skip(mem, skipped, a.start, skip_s):
                return f"skipped {skipped}" + _skip_note(mem, skipped, a.start, skip_s)
            j += 1
        if _must_skip(mem, a.server, a.start, skip_s) and any(
            not _must_skip(mem, o, a.start, skip_s) for o in order
        ):
            age = a.start - mem.dial_failed[a.server]
            return (
                f"tried {a.server}, which failed to connect {age:.3f} s before "
                f"({spec.label} skips such a server for {skip_s:.3f} s)"
            )
        j += 1
    return None


def _slack(skip_s: float) -> float:
    return SKIP_SLACK_S + SKIP_SLACK_SHARE * skip_s


def _may_skip(mem: _Instance, server: str, t: float, skip_s: float) -> bool:
    failed = mem.dial_failed.get(server)
    return bool(skip_s) and failed is not None and t - failed < skip_s + _slack(skip_s)


def _must_skip(mem: _Instance, server: str, t: float, skip_s: float) -> bool:
    failed = mem.dial_failed.get(server)
    return bool(skip_s) and failed is not None and t - failed < skip_s - _slack(skip_s)


def _skip_note(mem: _Instance, server: str, t: float, skip_s: float) -> str:
    failed = mem.dial_failed.get(server)
    if not skip_s:
        return ""
    if failed is None:
        return f" (it had not failed; skip window {skip_s:.3f} s)"
    return f" (it failed {t - failed:.3f} s before; skip window {skip_s:.3f} s)"


def _remember(attempts: Sequence[Attempt], spec: PolicySpec, mem: _Instance) -> None:
    for a in attempts:
        if a.outcome not in ("ok", "kmip-error") and not a.sent:
            mem.dial_failed[a.server] = a.end
    if spec.selection == "at-start" and mem.chosen is None:
        ok = [a.server for a in attempts if a.outcome == "ok"]
        if ok:
            mem.chosen = ok[-1]


def check_order(
    events: History | Iterable[Event],
    *,
    orders: dict[str, list[str]],
    replicas: Sequence[str] | None = None,
    external: Sequence[str] = (),
    behind: dict[str, tuple[str, ...]] | None = None,
    policies: dict[str, PolicySpec] | None = None,
    time_scale: float = 1.0,
) -> Verdict:
    """Check every op's attempts follow its client's replica order under its policy
    (`policies`: client → policy; default the preset its ops name; `time_scale`
    multiplies the policies' skip windows).

    Fails on any violation (skipped or repeated server, going backwards, unknown server,
    unknown client, a reused connection tried after a fresh one); unknown if no ops, or
    if an attempt was answered by a server whose identity contradicts it (`replicas`:
    the topology's, default every server the attempts name; `external`: those kmschaos
    did not start).
    """
    evs = as_events(events)
    verdict = _check_order(evs, orders, policies or {}, time_scale)
    problems = attempt_contradictions(evs, replicas=replicas, external=external, behind=behind)
    return distrust(verdict, problems, "attempts")


def _check_order(
    evs: list[Event],
    orders: dict[str, list[str]],
    policies: dict[str, PolicySpec],
    time_scale: float,
) -> Verdict:
    # an operator's operations (`harness.admin`) walk no client's list
    ops = [c for c in completes(evs) if c.client != ADMIN_CLIENT]
    # an op and the lifecycle events of its instance, in time order: a restart forgets
    timeline: list[tuple[float, int, Complete | ClientEvent]] = [(c.start, 1, c) for c in ops]
    timeline += [
        (e.t, 0, e) for e in evs if isinstance(e, ClientEvent) and e.action in ("restart", "start")
    ]
    timeline.sort(key=lambda x: (x[0], x[1]))
    memory: dict[str, _Instance] = {}
    per_client: dict[str, dict[str, int]] = {}
    evidence: list[str] = []
    violations = 0
    for _, _, c in timeline:
        if isinstance(c, ClientEvent):
            memory[f"{c.client}#{c.worker}"] = _Instance()
            continue
        mem = memory.setdefault(c.op_id.rsplit(":", 1)[0], _Instance())
        counts = per_client.setdefault(c.client, {"ops": 0, "violations": 0})
        counts["ops"] += 1
        order = orders.get(c.client)
        spec = policies.get(c.client) or preset_of(c.policy)
        reason: str | None
        if order is None:
            reason = f"unknown client (known: {', '.join(sorted(orders)) or 'none'})"
        else:
            skip_s = (spec.skip_failed_s or 0.0) * time_scale if spec else 0.0
            reason = order_violation(c.attempts, order, spec, mem, skip_s)
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
    what = (
        "Order: every request walks the client's replica list as its policy says: from the "
        "top, one by one (retries, skip windows, a server chosen at start)."
    )
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
            behind=ctx.behind,
            policies={n: c.policy for n, c in ctx.topology.clients.items()},
            time_scale=ctx.topology.time_scale,
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
