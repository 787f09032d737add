"""Sabotaged load balancers: the HAProxy configuration broken with a test-only patch
(nothing in the product), and `lb_ejection` must fail and name the cause.

Listed in `test_sabotage.HARNESS_SABOTAGES` (the README's count).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.checkers.lb_ejection import eject_bounds
from harness.lb import runner
from harness.lb.haproxy import BalancerPlan, render_config
from harness.lb.watch import await_rotation
from harness.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.kms_needs("stall")]
TOPOLOGY = "one-site-balancer-idle.yaml"


def _config_with(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Every balancer's HAProxy runs with `changes` to its spec (the topology unchanged)."""

    def sabotaged(plan: BalancerPlan, **kw: Any) -> str:
        spec = dataclasses.replace(plan.spec, **changes)
        return render_config(dataclasses.replace(plan, spec=spec), **kw)

    monkeypatch.setattr(runner, "render_config", sabotaged)


def _stall_kms_b(sc: Scenario, until: Any) -> None:
    wl = sc.workload(["vc"], rate_per_s=10)
    with wl.running():
        wl.wait_ok(3, sc.op_deadline(1), since=0.0)
        with sc.fault("stall", "kms-b") as stall:
            until(stall.injected_at)
    sc.check(include=("lb_ejection",))


def _failed(sc: Scenario, *fragments: str) -> str:
    v = sc.outcome.verdicts["lb_ejection"]
    text = " ".join([v.summary, *v.details])
    assert v.status == "fail", f"lb_ejection {v.status}: {v.summary}"
    for f in fragments:
        assert f in text, f"lb_ejection does not name {f!r}: {v.summary}"
    return v.summary


@pytest.mark.kms_topology(TOPOLOGY)
def test_a_kmip_check_configured_as_tcp_is_caught_by_lb_ejection(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _config_with(monkeypatch, check="tcp")
    sc: Scenario = request.getfixturevalue("kms_scenario")
    latest = eject_bounds(sc.topology.load_balancers["lb-a"], sc.topology)[1]

    def failing_past_the_bound(t0: float) -> None:
        # operations still fail after the kmip check should have ejected kms-b
        sc._workloads[0].wait_for(
            lambda cs: any(c.outcome != "ok" and c.start >= t0 + latest for c in cs),
            latest + sc.op_deadline(6),
            f"an operation through lb-a to fail {latest:.2f} s after kms-b froze",
        )

    _stall_kms_b(sc, failing_past_the_bound)
    _failed(
        sc, "lb-a never took kms-b out of rotation", "kmip check", "attempts through lb-a failed"
    )


@pytest.mark.kms_topology(TOPOLOGY)
def test_haproxy_failing_slower_than_configured_is_caught_by_lb_ejection(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _config_with(monkeypatch, fall=9)  # the topology says 3
    sc: Scenario = request.getfixturevalue("kms_scenario")
    lb = sc.topology.load_balancers["lb-a"]
    latest = eject_bounds(lb, sc.topology)[1]

    def ejected(t0: float) -> None:
        await_rotation(sc.history, "lb-a", "kms-b", False, t0, 3 * latest + sc.op_deadline(1))

    _stall_kms_b(sc, ejected)
    _failed(sc, "lb-a → kms-b", "later than check timeout + fall × (interval + check timeout)")
