"""PyKMIP's own client under a blackholed first replica.

PyKMIP's ProxyKmipClient fails over only while connecting. On an open connection a
stalled response raises to the caller: the operation fails, no other server is tried.
The next operation reconnects, waits the timeout again on the silent host, and only
then reaches kms-b. This is a finding the report states, not a test to skip."""

import pytest

from harness.scenario import PYKMIP_DEFAULT_TIMEOUT_S

pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("blackhole")]


def test_pykmip_client_does_not_fail_over_on_stalled_response(kms_scenario):
    wl = kms_scenario.fault_window("blackhole", "kms-a", policy="pykmip", failovers=2)
    verdicts = kms_scenario.check()
    # the reconnect that reached kms-b cost one timeout (failover within bounds), but the
    # operation in flight on the stalled connection failed: availability < 100 %
    kms_scenario.expect(failover="pass", order="pass", availability="fail")
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    failed = [c for c in wl.completes() if c.end > inj.t and c.outcome != "ok"]
    assert failed, "expected the operation on the stalled connection to fail"
    first = failed[0]
    assert [a.server for a in first.attempts] == ["kms-a"], "PyKMIP tried another server"
    assert first.attempts[0].reused and first.attempts[0].outcome == "timeout"
    t = kms_scenario.topology.response_timeout
    fo = next(
        v for v in verdicts["failover"].figures.values() if isinstance(v, dict) and "clients" in v
    )
    cost = fo["clients"]["vc-a"]["detect_s"]
    kms_scenario.finding(
        f"PyKMIP client: a stalled response raised to the caller ({len(failed)} failed "
        f"operation(s)); kms-b answered {cost:.2f} s after the fault (≈ 2 × timeout {t:g} s). "
        f"Out of the box (timeout {PYKMIP_DEFAULT_TIMEOUT_S} s, config file ignored) a stalled "
        f"first server costs a PyKMIP user {2 * PYKMIP_DEFAULT_TIMEOUT_S} s and a failed request."
    )
