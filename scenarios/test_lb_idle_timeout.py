"""A balancer's idle timeout: HAProxy closes a connection idle longer than
`idle_timeout_s` (its client and server timeouts), both sides, no fault injected.

PyKMIP keeps one connection open between operations: after a pause longer than the
balancer's limit its next request meets the closed connection (EOF) and fails — it does
not reconnect and retry (as with a replica's own idle reaper, `test_idle_and_clock`). A
vCenter-like client connects for every operation and never notices.
"""

import pytest

pytestmark = [pytest.mark.kms_topology("one-site-balancer-idle.yaml")]

GAP_S = 1.0  # the pause between operations: twice the balancer's 0.5 s idle limit


@pytest.mark.parametrize("client", ["py", "vc"])
def test_idle_timeout_breaks_only_the_long_lived_client(kms_scenario, client):
    sc = kms_scenario
    idle_s = sc.topology.load_balancers["lb-a"].idle_timeout_s * sc.topology.time_scale
    assert GAP_S > idle_s, "every pause must outlast the balancer's idle timeout"
    wl = sc.workload([client], rate_per_s=1 / GAP_S)
    with wl.running():
        wl.wait_for(
            lambda cs: len([c for c in cs if c.client == client]) >= 5,
            5 * GAP_S + sc.op_deadline(5),
            f"5 operations of {client}, each after a {GAP_S:g} s pause",
        )
    ops = [c for c in wl.completes() if c.client == client]
    after_pause = ops[1:]  # the first one opened the connection
    if client == "vc":
        assert all(c.outcome == "ok" for c in ops), [(c.outcome, c.error) for c in ops]
        assert not any(a.reused for c in ops for a in c.attempts)
        return
    failed = [c for c in after_pause if c.outcome != "ok"]
    assert failed, [(c.outcome, c.attempts) for c in ops]
    first = failed[0].attempts[0]
    assert first.server == "lb-a" and first.reused and first.outcome == "eof", first
    sc.finding(
        f"PyKMIP behind a balancer with a {idle_s:g} s idle timeout: {len(failed)} of "
        f"{len(after_pause)} operations after a {GAP_S:g} s pause failed — the first request "
        f"on the connection the balancer closed got {first.outcome} ({first.duration:.3f} s)"
    )
