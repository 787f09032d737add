"""The load balancers' lint rules (`harness.lint_balancers`): unit tests on hand-written
topologies, no servers. Each rule fires (rule, severity, field, figures pinned) and
stays quiet on the layout it accepts; `kmschaos lint` prints them. The replica rules of
`harness.topology_lint` read a client's order through its balancers: no false finding for
a replica reached through one, the true ones still found.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.client.policies import POLICIES
from harness.lint_balancers import RULES as BALANCER_RULES
from harness.lint_balancers import balancer_findings, fails_on_idle_close
from harness.topology import Topology, parse_topology
from harness.topology_lint import RULES, Finding, lint

# Two sites, a balancer per site with the KMIP check, each client its own site's
# balancer first: what the balancer rules accept.
SITES = """\
name: lb
sites:
  site-a: {replicas: [kms-a, kms-b, kms-c]}
  site-b: {replicas: [kms-d, kms-e, kms-f]}
replication: {profile: async}
"""
LB_A = {"site": "site-a", "replicas": ["kms-a", "kms-b", "kms-c"], "check": "kmip"}
LB_B = {"site": "site-b", "replicas": ["kms-d", "kms-e", "kms-f"], "check": "kmip"}
GOOD_CLIENTS = """\
  vc-a: {site: site-a, order: [lb-a, lb-b]}
  vc-b: {site: site-b, order: [lb-b, lb-a]}
"""


def topo(
    clients: str = GOOD_CLIENTS,
    lb_a: dict[str, Any] | None = None,
    lb_b: dict[str, Any] | None = None,
    extra: str = "",
) -> Topology:
    """SITES with lb-a and lb-b (KMIP-checked, their other fields the defaults; `lb_a`
    and `lb_b` change fields), `clients` (indented mapping lines), `extra` top-level
    lines."""
    a, b = {**LB_A, **(lb_a or {})}, {**LB_B, **(lb_b or {})}
    text = (
        SITES
        + f"load_balancers:\n  lb-a: {json.dumps(a)}\n  lb-b: {json.dumps(b)}\n"
        + "clients:\n"
        + clients
        + textwrap.dedent(extra)
    )
    return parse_topology(text, "t.yaml")


def found(t: Topology, rule: str) -> list[Finding]:
    assert rule in BALANCER_RULES
    return [f for f in balancer_findings(t) if f.rule == rule]


def one(t: Topology, rule: str) -> Finding:
    (f,) = found(t, rule)
    assert f.where and f.message and f.fix
    assert "\n" not in f.message + f.fix
    return f


# ---- registration and the accepted layout -------------------------------------------------


def test_the_rules_are_registered_with_the_linter() -> None:
    assert set(BALANCER_RULES) <= set(RULES)
    assert len(set(RULES)) == len(RULES)


def test_no_balancer_rule_fires_on_the_good_layout() -> None:
    assert balancer_findings(topo()) == []


def test_a_topology_without_balancers_has_no_balancer_findings() -> None:
    t = parse_topology(SITES + "clients:\n  vc-a: {site: site-a}\n", "t.yaml")
    assert balancer_findings(t) == []


def test_lint_sorts_balancer_findings_with_the_others() -> None:
    t = topo("  vc-a: {site: site-a, order: [lb-a]}\n", lb_a={"check": "tcp"})
    findings = lint(t)
    balancer = [f for f in findings if f.rule in BALANCER_RULES]
    assert [(f.rule, f.severity) for f in balancer] == [
        ("single-balancer", "error"),
        ("tcp-check", "warning"),
    ]
    assert findings[0].severity == "error"  # errors first, whichever module found them


# ---- single-balancer ---------------------------------------------------------------------


def test_single_balancer_when_the_order_is_one_balancer() -> None:
    f = one(topo("  vc-a: {site: site-a, order: [lb-a]}\n"), "single-balancer")
    assert (f.severity, f.where) == ("error", "clients.vc-a.order")
    assert "client 'vc-a' reaches every KMS through one balancer, 'lb-a'" in f.message
    assert "kms-a, kms-b, kms-c" in f.message
    assert "second balancer" in f.fix


@pytest.mark.parametrize(
    "order", ["[lb-a, lb-b]", "[lb-a, kms-d]", "[kms-a]", "[kms-a, kms-b, kms-c, kms-d]"]
)
def test_no_single_balancer_with_another_way_or_no_balancer(order: str) -> None:
    assert found(topo(f"  vc-a: {{site: site-a, order: {order}}}\n"), "single-balancer") == []


# ---- tcp-check -------------------------------------------------------------------------------


def test_tcp_check_on_an_explicit_or_default_tcp_check() -> None:
    f = one(topo(lb_a={"check": "tcp"}), "tcp-check")
    assert (f.severity, f.where) == ("warning", "load_balancers.lb-a.check")
    assert "'lb-a' checks its replicas with a TCP connect only" in f.message
    assert "frozen" in f.message and "TLS" in f.message
    assert "check: kmip" in f.fix and "kmschaos lb-config t.yaml lb-a" in f.fix
    default = parse_topology(
        SITES
        + "load_balancers:\n  lb-a: {site: site-a, replicas: [kms-a, kms-b, kms-c]}\n"
        + "clients:\n  vc-a: {site: site-a, order: [lb-a, kms-d]}\n",
        "t.yaml",
    )
    assert default.load_balancers["lb-a"].check == "tcp"
    assert [f.where for f in found(default, "tcp-check")] == ["load_balancers.lb-a.check"]


@pytest.mark.parametrize("check", ["tls", "kmip"])
def test_no_tcp_check_for_tls_or_kmip(check: str) -> None:
    assert found(topo(lb_a={"check": check}, lb_b={"check": check}), "tcp-check") == []


# ---- slow-ejection ---------------------------------------------------------------------------


def test_slow_ejection_gives_both_figures() -> None:
    f = one(topo(lb_a={"interval_ms": 30000, "fall": 3}), "slow-ejection")
    assert (f.severity, f.where) == ("warning", "load_balancers.lb-a.interval_ms")
    # 30 s x 3 = 90 s against vCenter's 60 s (the topology's response timeout); both
    # clients list lb-a
    assert "'lb-a' takes 90 s to take a failing replica out of rotation" in f.message
    assert "(interval_ms 30000 × fall 3)" in f.message
    assert "'vc-a' (vcenter, 60 s), 'vc-b' (vcenter, 60 s)" in f.message
    assert "clients time out before the balancer notices" in f.message
    assert "shorter than 60000 ms" in f.fix and "interval_ms: 10000 with fall: 3" in f.fix


def test_slow_ejection_compares_at_the_time_scale() -> None:
    t = topo(lb_a={"interval_ms": 30000, "fall": 3}, extra="time_scale: 0.05\n")
    f = one(t, "slow-ejection")
    assert "takes 4.5 s" in f.message and "at time_scale 0.05" in f.message
    assert "(vcenter, 3 s)" in f.message
    assert "shorter than 60000 ms" in f.fix  # what to write in the file: before time_scale


def test_slow_ejection_against_a_policy_timeout_and_its_boundary() -> None:
    # the default check: 2000 ms x 3 = 6 s
    quick = (
        "  vc-a: {site: site-a, order: [lb-a, kms-d], policy: {response_timeout_s: 5}}\n"
        "  vc-b: {site: site-b, order: [lb-b, lb-a]}\n"
    )
    f = one(topo(quick), "slow-ejection")
    assert "'lb-a' takes 6 s" in f.message and "'vc-a' (vcenter*, 5 s)" in f.message
    assert "vc-b" not in f.message  # lb-a's other client waits 60 s
    equal = "  vc-a: {site: site-a, order: [lb-a, kms-d], policy: {response_timeout_s: 6}}\n"
    assert found(topo(equal), "slow-ejection") == []


def test_no_slow_ejection_for_a_client_without_a_response_timeout() -> None:
    clients = "  go-a: {site: site-a, order: [lb-a, lb-b], policy: kmip-go}\n"
    assert POLICIES["kmip-go"].response_timeout_s == "os"
    assert found(topo(clients, lb_a={"interval_ms": 600000}), "slow-ejection") == []


# ---- idle-timeout ----------------------------------------------------------------------------


def test_idle_timeout_for_pykmips_long_lived_connection() -> None:
    clients = "  px-a: {site: site-a, order: [lb-a, lb-b], policy: pykmip}\n"
    findings = found(topo(clients, lb_a={"idle_timeout_s": 120}), "idle-timeout")
    assert [f.where for f in findings] == ["clients.px-a.order[0]", "clients.px-a.order[1]"]
    f = findings[0]
    assert f.severity == "warning"
    assert f.message == (
        "client 'px-a' (pykmip) keeps its connection open between operations; 'lb-a' closes "
        "connections idle for 120 s: the next operation after a pause that long fails "
        "unless the client reconnects (idle_reconnect_s)"
    )
    assert "raise 'lb-a' idle_timeout_s" in f.fix and "does not reconnect" in f.fix
    scaled = found(topo(clients, extra="time_scale: 0.05\n"), "idle-timeout")[0]
    assert "idle for 15 s, at time_scale 0.05:" in scaled.message


@pytest.mark.parametrize(
    "policy, fires",
    [
        ("pykmip", True),
        ("vcenter", False),  # a fresh connection per operation
        ("mongodb", False),  # at-start: a fresh connection per operation to its server
        ("ontap", False),
        ("kmip-go", False),  # sticky, but redials and re-sends on EOF
        ("retrying", False),  # sticky, but reconnects and sends again
        ("{preset: retrying, open_connection_error: fail}", True),
        ("{preset: retrying, open_connection_error: fail, idle_reconnect_s: 299}", False),
        ("{preset: retrying, open_connection_error: fail, idle_reconnect_s: 300}", True),
        ("{preset: retrying, retries: 0, resend_mutations: false}", True),
    ],
)
def test_idle_timeout_only_for_a_client_that_fails_on_the_closed_connection(
    policy: str, fires: bool
) -> None:
    clients = f"  c-a: {{site: site-a, order: [lb-a, kms-d], policy: {policy}}}\n"
    t = topo(clients)
    findings = found(t, "idle-timeout")
    assert [f.where for f in findings] == (["clients.c-a.order[0]"] if fires else [])
    assert fails_on_idle_close(t.clients["c-a"].policy, 300.0) is fires
    if fires and t.clients["c-a"].policy.open_connection_error != "fail":
        assert "the next change (create, " in findings[0].message


# ---- double-counting -------------------------------------------------------------------------


def test_double_counting_a_replica_behind_a_listed_balancer() -> None:
    f = one(topo("  vc-a: {site: site-a, order: [lb-a, kms-b, lb-b]}\n"), "double-counting")
    assert (f.severity, f.where) == ("warning", "clients.vc-a.order[1]")
    assert "client 'vc-a' lists 'kms-b' and 'lb-a', which balances it too" in f.message
    assert "either 'lb-a' or its replicas (kms-a, kms-b, kms-c)" in f.fix
    before = one(topo("  vc-a: {site: site-a, order: [kms-a, kms-c, lb-a]}\n"), "double-counting")
    assert before.where == "clients.vc-a.order[0]"
    assert "'kms-a', 'kms-c' and 'lb-a', which balances them too" in before.message


def test_no_double_counting_for_replicas_another_balancer_fronts() -> None:
    clients = "  vc-a: {site: site-a, order: [lb-a, kms-d, kms-e]}\n"
    assert found(topo(clients), "double-counting") == []


# ---- cross-site-balancer ---------------------------------------------------------------------


def test_cross_site_balancer() -> None:
    t = topo(lb_a={"replicas": ["kms-a", "kms-b", "kms-d"]})
    f = one(t, "cross-site-balancer")
    assert (f.severity, f.where) == ("warning", "load_balancers.lb-a.replicas[2]")
    assert "'lb-a' (site 'site-a') balances 'kms-d' of site 'site-b'" in f.message
    assert "balance roundrobin sends connections there" in f.message


def test_cross_site_balancer_first_is_a_fallback_only_after_the_local_replicas() -> None:
    last = {"replicas": ["kms-a", "kms-b", "kms-d"], "balance": "first"}
    assert found(topo(lb_a=last), "cross-site-balancer") == []
    first = {"replicas": ["kms-d", "kms-a", "kms-b"], "balance": "first"}
    assert one(topo(lb_a=first), "cross-site-balancer").where == "load_balancers.lb-a.replicas[0]"


# ---- the replica rules read a client's order through its balancers ---------------------------


def lint_rule(t: Topology, rule: str) -> list[Finding]:
    assert rule in RULES and rule not in BALANCER_RULES
    return [f for f in lint(t) if f.rule == rule]


def test_the_good_layout_has_no_findings_at_all() -> None:
    # the replicas behind lb-a and lb-b are reached, and each client's own VIP is local
    assert lint(topo()) == []


@pytest.mark.parametrize("order", ["[lb-b, kms-d]", "[lb-b, lb-a]", "[kms-d, lb-b, kms-a]"])
def test_no_remote_before_local_for_the_clients_own_balancer(order: str) -> None:
    clients = (
        f"  vc-a: {{site: site-a, order: [lb-a, lb-b]}}\n  vc-b: {{site: site-b, order: {order}}}\n"
    )
    assert lint_rule(topo(clients), "remote-before-local") == []


def test_remote_before_local_through_a_remote_balancer() -> None:
    clients = (
        "  vc-a: {site: site-a, order: [lb-a, lb-b]}\n  vc-b: {site: site-b, order: [lb-a, lb-b]}\n"
    )
    (f,) = lint_rule(topo(clients), "remote-before-local")
    assert (f.severity, f.where) == ("error", "clients.vc-b.order[0]")
    assert "'lb-a' (site 'site-a') is tried before local lb-b:" in f.message
    assert f.fix == "list site 'site-b' servers first: order: [lb-b, lb-a]"
    mixed = "  vc-b: {site: site-b, order: [kms-a, lb-b]}\n"
    (f,) = lint_rule(topo(mixed), "remote-before-local")
    assert f.where == "clients.vc-b.order[0]" and "'kms-a' (site 'site-a')" in f.message


@pytest.mark.parametrize("rule", ["local-missing", "unreachable-replica"])
def test_replicas_behind_a_listed_balancer_are_reached(rule: str) -> None:
    one_each = (
        "  vc-a: {site: site-a, order: [lb-a, kms-d]}\n  vc-b: {site: site-b, order: [lb-b]}\n"
    )
    assert lint_rule(topo(one_each), rule) == []


def test_local_missing_for_a_local_replica_behind_no_listed_balancer() -> None:
    t = topo(lb_a={"replicas": ["kms-a", "kms-b"]})  # kms-c behind no balancer, in no order
    (f,) = lint_rule(t, "local-missing")
    assert (f.severity, f.where) == ("warning", "clients.vc-a.order")
    assert "omits 'kms-c' of its own site 'site-a', listed or behind a balancer it lists" in (
        f.message
    )
    assert f.fix == "add kms-c after the other site 'site-a' replicas"
    direct = topo("  vc-a: {site: site-a, order: [kms-a, kms-b, lb-b]}\n")
    (f,) = lint_rule(direct, "local-missing")
    assert (
        f.fix
        == "add kms-c (or a balancer in front of them: lb-a) after the other site 'site-a' replicas"
    )


def test_unreachable_replica_behind_no_balancer_and_in_no_order() -> None:
    t = topo(lb_a={"replicas": ["kms-a", "kms-b"]})
    (f,) = lint_rule(t, "unreachable-replica")
    assert (f.severity, f.where) == ("warning", "sites.site-a.replicas[2]")
    assert f.message.startswith("'kms-c' is in no client's order: no client ever reaches it")
    assert f.fix.startswith("add 'kms-c' to the order")


def test_unreachable_replica_behind_a_balancer_no_client_lists() -> None:
    found = lint_rule(topo("  vc-a: {site: site-a, order: [lb-a]}\n"), "unreachable-replica")
    assert [f.where for f in found] == [f"sites.site-b.replicas[{i}]" for i in range(3)]
    assert "'kms-d' is in no client's order, nor behind a balancer one lists (lb-b):" in (
        found[0].message
    )
    assert found[0].fix.startswith("add 'kms-d' (or 'lb-b') to the order")


def versioned(site_b: str, clients: str = GOOD_CLIENTS) -> Topology:
    """`topo(clients)` with site-b's replicas written as `site_b` (a YAML list)."""
    text = SITES.replace("[kms-d, kms-e, kms-f]", site_b) + (
        f"load_balancers:\n  lb-a: {json.dumps(LB_A)}\n  lb-b: {json.dumps(LB_B)}\n"
        + "clients:\n"
        + clients
    )
    return parse_topology(text, "t.yaml")


ONLY_12 = "{name: kms-%s, kmip_versions: ['1.2']}"


def test_unspoken_version_behind_a_balancer() -> None:
    t = versioned(f"[{', '.join(ONLY_12 % x for x in 'def')}]")
    assert t.clients["vc-a"].policy.kmip_version == "1.1"
    found = {f.where: f for f in lint_rule(t, "unspoken-version")}
    assert set(found) == {"clients.vc-a.order[1]", "clients.vc-b.order[0]"}
    f = found["clients.vc-a.order[1]"]
    assert f.severity == "warning"
    assert f.message == (
        "client 'vc-a' (vcenter) sends KMIP 1.1, which 'kms-d', 'kms-e' and 'kms-f' behind "
        "'lb-b' do not speak (kmip_versions: 1.2): every request 'lb-b' sends to them is "
        "refused (version-refused), and each operation spends an attempt there before it "
        "moves on"
    )
    assert f.fix.startswith("add 1.1 to the kmip_versions of 'kms-d', 'kms-e' and 'kms-f'")
    assert "take them out of 'lb-b' (or 'lb-b' out of the client's order)" in f.fix


def test_unspoken_version_for_some_replicas_of_a_balancer_and_for_nobody() -> None:
    mixed = versioned(f"[kms-d, {ONLY_12 % 'e'}, {{name: kms-f, kmip_versions: ['1.4']}}]")
    f = lint_rule(mixed, "unspoken-version")[0]
    assert "'kms-e' and 'kms-f' behind 'lb-b' do not speak (kmip_versions of 'kms-e': 1.2; " in (
        f.message
    )
    assert "'kms-f': 1.4)" in f.message
    assert "every request 'lb-b' sends to them (not to 'kms-d', which speaks it) is" in f.message
    alone = versioned(
        f"[{', '.join(ONLY_12 % x for x in 'def')}]", "  vc-b: {site: site-b, order: [lb-b]}\n"
    )
    (f,) = lint_rule(alone, "unspoken-version")
    assert f.where == "clients.vc-b.order[0]"
    assert "no server in its order speaks 1.1: every operation fails" in f.message


def test_no_unspoken_version_behind_a_balancer_whose_replicas_speak_it() -> None:
    clients = "  px-a: {site: site-a, order: [lb-a, lb-b], policy: pykmip}\n"
    t = versioned(f"[{', '.join(ONLY_12 % x for x in 'def')}]", clients)
    assert t.clients["px-a"].policy.kmip_version == "1.2"
    assert lint_rule(t, "unspoken-version") == []


# ---- kmschaos lint ---------------------------------------------------------------------------

EVERY_RULE = """\
name: lb-bad
sites:
  site-a: {replicas: [kms-a, kms-b, kms-c]}
  site-b: {replicas: [kms-d, kms-e, kms-f]}
load_balancers:
  lb-a: {site: site-a, replicas: [kms-a, kms-b, kms-d], interval_ms: 30000}
  lb-b: {site: site-b, replicas: [kms-e, kms-f], check: kmip}
clients:
  vc-a: {site: site-a, order: [lb-a]}
  px-b: {site: site-b, order: [lb-b, kms-e, lb-a], policy: pykmip}
replication: {profile: async}
"""


def test_kmschaos_lint_prints_every_balancer_rule(tmp_path: Path) -> None:
    path = tmp_path / "lb-bad.yaml"
    path.write_text(EVERY_RULE)
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "lint", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stdout + r.stderr  # single-balancer is an error
    assert "Traceback" not in r.stderr
    for rule in BALANCER_RULES:
        assert f": {rule}: " in r.stdout, rule
    assert f"{path}: clients.vc-a.order: single-balancer: error: client 'vc-a'" in r.stdout
