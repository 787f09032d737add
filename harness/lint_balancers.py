"""Design checks on a topology's load balancers (`load_balancers`): the layouts that
run but fail their clients once a replica, or the balancer itself, misbehaves.

    client ──> lb (HAProxy: a check every interval_ms, out after `fall` failures,
                   connections idle for idle_timeout_s closed) ──> kms-a, kms-b, kms-c

`harness.topology_lint.lint` runs these rules beside its own (`RULES` here are
registered there); each `Finding` names the field, the balancer or client, the figures,
and a fix. Durations are compared at the topology's `time_scale`, as clients wait them
(`ClientSpec.timeouts`).
"""

from __future__ import annotations

from harness.client.operations import CHANGES
from harness.client.policy_spec import PolicySpec
from harness.lint_finding import Finding, Severity
from harness.topology import Topology
from harness.topology.model import BalancerSpec, ClientSpec

RULES = (
    "single-balancer",
    "tcp-check",
    "slow-ejection",
    "idle-timeout",
    "double-counting",
    "cross-site-balancer",
)


def balancer_findings(t: Topology) -> list[Finding]:
    """Every finding of the balancer rules (unsorted: `lint` sorts them all)."""
    if not t.load_balancers:
        return []
    return [
        *_single_balancer(t),
        *_tcp_check(t),
        *_slow_ejection(t),
        *_idle_timeout(t),
        *_double_counting(t),
        *_cross_site(t),
    ]


def _finding(rule: str, severity: Severity, where: str, message: str, fix: str) -> Finding:
    assert rule in RULES
    return Finding(rule, severity, where, message, fix)


# ---- rules -----------------------------------------------------------------------------


def _single_balancer(t: Topology) -> list[Finding]:
    """A client whose order is one balancer and nothing else: that HAProxy down or
    frozen is a total outage for it, however many replicas stand behind it."""
    out: list[Finding] = []
    for c in t.clients.values():
        if len(c.order) != 1 or c.order[0] not in t.load_balancers:
            continue
        lb = t.load_balancers[c.order[0]]
        out.append(
            _finding(
                "single-balancer",
                "error",
                f"clients.{c.name}.order",
                f"client '{c.name}' reaches every KMS through one balancer, '{lb.name}' "
                f"({', '.join(lb.replicas)} behind it): while '{lb.name}' is down or frozen "
                "the client has no KMS at all — one balancer is one point of failure",
                f"list a second balancer, or replicas, of another site after '{lb.name}' in "
                "its order",
            )
        )
    return out


def _tcp_check(t: Topology) -> list[Finding]:
    out: list[Finding] = []
    for lb in t.load_balancers.values():
        if lb.check != "tcp":
            continue
        out.append(
            _finding(
                "tcp-check",
                "warning",
                f"load_balancers.{lb.name}.check",
                f"'{lb.name}' checks its replicas with a TCP connect only (check: tcp, the "
                "default): a frozen (stalled) replica or one whose TLS is broken still "
                "accepts connections, so it stays in rotation and clients sent to it wait "
                "for their timeout or fail",
                f"set check: kmip (a KMIP Discover Versions request over TLS; `kmschaos "
                f"lb-config {t.source} {lb.name}` prints the HAProxy configuration)",
            )
        )
    return out


def _slow_ejection(t: Topology) -> list[Finding]:
    """A balancer that needs longer to eject a replica that stopped answering
    (`interval_ms` × `fall`) than a client listing it waits for a response."""
    out: list[Finding] = []
    for lb in t.load_balancers.values():
        eject_s = lb.interval_ms / 1000.0 * lb.fall * t.time_scale
        quicker: list[tuple[ClientSpec, float]] = []
        for c in _clients_of(t, lb):
            response = c.timeouts(t)[1]
            if response is not None and response < eject_s:
                quicker.append((c, response))
        if not quicker:
            continue
        shortest = min(r for _, r in quicker) / t.time_scale
        interval_ms = max(1, int(shortest * 1000 / lb.fall / 2))
        who = ", ".join(f"'{c.name}' ({c.policy.label}, {_s(r)})" for c, r in quicker)
        out.append(
            _finding(
                "slow-ejection",
                "warning",
                f"load_balancers.{lb.name}.interval_ms",
                f"'{lb.name}' takes {_s(eject_s)} to take a failing replica out of rotation "
                f"(interval_ms {lb.interval_ms:g} × fall {lb.fall}{_at_scale(t)}), longer "
                f"than the response timeout of {who}: clients time out before the balancer "
                "notices, and it keeps sending new connections to that replica meanwhile",
                f"make interval_ms × fall shorter than {shortest * 1000:g} ms (the shortest "
                f"of those timeouts before time_scale), e.g. interval_ms: {interval_ms} with "
                f"fall: {lb.fall}; or give those clients a longer response timeout",
            )
        )
    return out


def _idle_timeout(t: Topology) -> list[Finding]:
    """A long-lived client (`fails_on_idle_close`) that lists a balancer: any pause
    longer than the balancer's idle timeout ends in a closed connection."""
    out: list[Finding] = []
    for c in t.clients.values():
        for i, server in enumerate(c.order):
            lb = t.load_balancers.get(server)
            if lb is None or not fails_on_idle_close(c.policy, lb.idle_timeout_s):
                continue
            if c.policy.open_connection_error == "fail":
                fails = "the next operation after a pause that long fails"
            else:
                fails = (
                    f"the next change ({', '.join(CHANGES)}) after a pause that long fails "
                    "(it does not re-send one)"
                )
            if c.policy.engine == "pykmip":
                fix = (
                    f"raise '{lb.name}' idle_timeout_s above the longest pause between its "
                    "operations, or have the application reopen PyKMIP's client after a "
                    "pause: it does not reconnect by itself"
                )
            else:
                fix = (
                    f"set its policy's idle_reconnect_s below {lb.idle_timeout_s:g}, or "
                    f"raise '{lb.name}' idle_timeout_s above its longest pause"
                )
            out.append(
                _finding(
                    "idle-timeout",
                    "warning",
                    f"clients.{c.name}.order[{i}]",
                    f"client '{c.name}' ({c.policy.label}) keeps its connection open between "
                    f"operations; '{lb.name}' closes connections idle for "
                    f"{_s(lb.idle_timeout_s * t.time_scale)}{_at_scale(t)}: {fails} unless "
                    "the client reconnects (idle_reconnect_s)",
                    fix,
                )
            )
    return out


def fails_on_idle_close(policy: PolicySpec, idle_timeout_s: float) -> bool:
    """Whether a client of `policy` keeps a connection open between operations (sticky)
    without reconnecting before `idle_timeout_s` (its `idle_reconnect_s`; PyKMIP's
    engine has none), and an operation that meets that connection closed fails: the
    policy fails on an error of the open connection, or does not re-send a change.
    Durations before time_scale."""
    if policy.selection != "sticky":
        return False
    reconnect = policy.idle_reconnect_s if policy.engine == "walk" else None
    if reconnect is not None and reconnect < idle_timeout_s:
        return False
    return policy.open_connection_error == "fail" or not policy.resend_mutations


def _double_counting(t: Topology) -> list[Finding]:
    out: list[Finding] = []
    for c in t.clients.values():
        for server in c.order:
            lb = t.load_balancers.get(server)
            if lb is None:
                continue
            direct = [r for r in c.order if r in t.behind(lb.name)]
            if not direct:
                continue
            first = c.order.index(direct[0])
            out.append(
                _finding(
                    "double-counting",
                    "warning",
                    f"clients.{c.name}.order[{first}]",
                    f"client '{c.name}' lists {_names(direct)} and '{lb.name}', which "
                    f"balances {'it' if len(direct) == 1 else 'them'} too: a replica that "
                    f"stopped answering can cost an operation two attempts (through "
                    f"'{lb.name}' until it is ejected, then directly), and the order holds "
                    "fewer independent servers than it lists",
                    f"list either '{lb.name}' or its replicas ({', '.join(lb.replicas)}), "
                    "not both; as a fallback past the balancer, list a balancer or replicas "
                    "of another site",
                )
            )
    return out


def _cross_site(t: Topology) -> list[Finding]:
    """A balancer with replicas of another site among its servers, unless `balance:
    first` reaches them only after every local one (a deliberate fallback)."""
    out: list[Finding] = []
    for lb in t.load_balancers.values():
        remote = [r for r in lb.replicas if t.site_of(r) != lb.site]
        if not remote:
            continue
        first = lb.replicas.index(remote[0])
        if lb.balance == "first" and all(t.site_of(r) != lb.site for r in lb.replicas[first:]):
            continue
        sites = sorted({t.site_of(r) for r in remote})
        out.append(
            _finding(
                "cross-site-balancer",
                "warning",
                f"load_balancers.{lb.name}.replicas[{first}]",
                f"'{lb.name}' (site '{lb.site}') balances {_names(remote)} of "
                f"{_names(sites, 'site')}: balance {lb.balance} sends connections there "
                f"while site '{lb.site}' is healthy, so requests cross sites, and a cut "
                "between the sites delays or fails the connections sent there until the "
                "balancer ejects those replicas",
                f"keep '{lb.name}' to replicas of site '{lb.site}'; for a fallback to "
                f"{', '.join(sites)}, list their replicas (or their own balancer) after "
                f"'{lb.name}' in the clients' order, or use balance: first with the local "
                "replicas listed first",
            )
        )
    return out


# ---- helpers ---------------------------------------------------------------------------


def _clients_of(t: Topology, lb: BalancerSpec) -> list[ClientSpec]:
    return [c for c in t.clients.values() if lb.name in c.order]


def _s(seconds: float) -> str:
    return f"{round(seconds, 3):g} s"


def _at_scale(t: Topology) -> str:
    return "" if t.time_scale == 1.0 else f", at time_scale {t.time_scale:g}"


def _names(names: list[str], kind: str = "") -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"{kind}s {quoted}" if kind and len(names) > 1 else f"{kind} {quoted}".lstrip()
