"""The load balancers' lint rules (`harness.lint_balancers`): unit tests on hand-written
topologies, no servers. Each rule fires (rule, severity, field, figures pinned) and
stays quiet on the layout it accepts; `kmschaos lint` prints them.
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
