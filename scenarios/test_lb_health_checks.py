"""A replica behind load balancers stalls: what each health check kind sees.

Three HAProxies front the same three replicas, one per check kind (tcp, tls, kmip), each
with a vCenter-like client that lists only its balancer. kms-b is frozen (SIGSTOP):

- the `tcp` check still connects (the kernel accepts into the backlog): lb-tcp keeps
  kms-b in rotation and every third connection of its client waits out a response
  timeout — the finding;
- the `tls` and `kmip` checks get no answer: their balancers take kms-b out within
  fall × (interval + check timeout), and put it back within rise checks after the heal.
"""

import pytest

from harness.checkers.lb_ejection import back_bound, eject_bounds
from harness.lb.watch import await_rotation

pytestmark = [
    pytest.mark.kms_topology("one-site-balancers.yaml"),
    pytest.mark.kms_needs("stall", "refuse"),
]


def test_stalled_replica_tcp_check_keeps_it_kmip_and_tls_checks_eject_it(kms_scenario):
    sc = kms_scenario
    topo = sc.topology
    wl = sc.workload(["vc-tcp", "vc-tls", "vc-kmip"], rate_per_s=10)
    with wl.running():
        wl.wait_ok(6, sc.op_deadline(1), since=0.0)
        with sc.fault("stall", "kms-b") as stall:
            t0 = stall.injected_at
            for lb in ("lb-tls", "lb-kmip"):
                latest = eject_bounds(topo.load_balancers[lb], topo)[1]
                await_rotation(sc.history, lb, "kms-b", False, t0, latest + sc.op_deadline(1))
            # lb-tcp's client meets the frozen replica: one response timeout, then a failure
            wl.wait_for(
                lambda cs: any(
                    c.client == "vc-tcp" and c.outcome != "ok" and c.start >= t0 for c in cs
                ),
                sc.op_deadline(6),
                "an operation of vc-tcp through lb-tcp to fail while kms-b is frozen",
            )
        healed = stall.healed_at
        for lb in ("lb-tls", "lb-kmip"):
            bound = back_bound(topo.load_balancers[lb], topo)
            await_rotation(sc.history, lb, "kms-b", True, healed, bound + sc.op_deadline(1))
        wl.wait_ok(3, sc.op_deadline(1), since=healed, client="vc-kmip")

    v = sc.check(include=("lb_ejection",))["lb_ejection"]
    figs = {key.split("/", 1)[1]: f for key, f in v.figures.items()}
    tcp, tls, kmip = figs["lb-tcp/kms-b"], figs["lb-tls/kms-b"], figs["lb-kmip/kms-b"]
    assert tcp["ejected"] is False and tcp["failed_attempts"] >= 1, tcp
    for fig in (tls, kmip):
        assert fig["ejected"] is True, fig
        assert fig["earliest_s"] <= fig["detect_since_began_s"], fig
        assert fig["detect_s"] <= fig["bound_s"], fig
        assert fig["failed_after_ejection"] == 0, fig
        assert fig["back_s"] is not None and "back_bound_s" not in fig, fig  # a process fault
    sc.finding(
        f"stall kms-b: tcp check never ejected it ({tcp['failed_attempts']} of "
        f"{tcp['routed_attempts']} attempts through lb-tcp failed); tls ejected it in "
        f"{tls['detect_s']:.2f} s, kmip in {kmip['detect_s']:.2f} s"
    )
    sc.expect(lb_ejection="fail")  # the tcp check's blindness is the finding


def test_refused_replica_every_check_ejects_it_and_takes_it_back(kms_scenario):
    """A refused link (connect refused): even the tcp check sees it. Every balancer takes
    kms-b out within its bound and back within rise checks of the heal."""
    sc = kms_scenario
    topo = sc.topology
    names = ("lb-tcp", "lb-tls", "lb-kmip")
    wl = sc.workload(["vc-tcp", "vc-tls", "vc-kmip"], rate_per_s=10)
    with wl.running():
        wl.wait_ok(6, sc.op_deadline(1), since=0.0)
        with sc.fault("refuse", "kms-b") as refuse:
            for lb in names:
                latest = eject_bounds(topo.load_balancers[lb], topo)[1]
                await_rotation(
                    sc.history, lb, "kms-b", False, refuse.injected_at, latest + sc.op_deadline(1)
                )
        for lb in names:
            bound = back_bound(topo.load_balancers[lb], topo)
            await_rotation(
                sc.history, lb, "kms-b", True, refuse.healed_at, bound + sc.op_deadline(1)
            )
        wl.wait_ok(3, sc.op_deadline(1), since=refuse.healed_at, client="vc-tcp")

    v = sc.check(include=("lb_ejection",))["lb_ejection"]
    for key, fig in v.figures.items():
        assert fig["ejected"] is True, (key, fig)
        assert fig["earliest_s"] <= fig["detect_since_began_s"], (key, fig)
        assert fig["detect_s"] <= fig["bound_s"], (key, fig)
        assert fig["failed_after_ejection"] == 0, (key, fig)
        assert fig["back_s"] is not None and fig["back_s"] <= fig["back_bound_s"], (key, fig)
    sc.expect(lb_ejection="pass")
