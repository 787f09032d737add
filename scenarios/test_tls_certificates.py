"""Certificates and TLS handshakes: what each client does when the first replica serves
a bad certificate, rejects the clients' certificate, or never answers a handshake.

Each fault closes the replica's open sessions (as a restart onto new material would),
so both clients meet it on their next connection:

- the vCenter model connects for every operation, verifies the chain and the name,
  and moves to the next server at once on any TLS error (after its response timeout on
  a stalled handshake);
- PyKMIP's ProxyKmipClient (measured, PyKMIP 0.10): the operation on the closed
  connection fails; the reconnect tries the hosts in order and moves on after a TLS
  error on one; it does NOT check the server's name (``KMIPProxy._create_socket`` wraps
  without ``server_hostname``), so a certificate for another name is accepted.
"""

import pytest

from harness.history import Complete

# every TLS fault needs the same live controls of the replica program
pytestmark = [pytest.mark.kms_topology("one-site.yaml"), pytest.mark.kms_needs("tls-stall")]

# fault → the reason a verifying client's failed handshake must give
REJECTED = {
    "cert-expired": "expired",
    "cert-not-yet-valid": "not yet valid",
    "cert-untrusted": "unknown CA",
    "client-cert-rejected": "alert received",
}


def _after(kms_scenario, wl) -> list[Complete]:
    """The operations that ended after the fault began (the one in flight included)."""
    inj = next(f for f in kms_scenario.history.faults() if f.phase == "inject")
    return [c for c in wl.completes() if c.end > inj.t]


def _failover_op(ops: list[Complete]) -> Complete:
    """The first operation that moved past kms-a on a new connection (not the one in
    flight when its sessions were closed, whose attempt on kms-a ended in EOF)."""
    return next(
        c
        for c in ops
        if c.outcome == "ok"
        and c.served_by != "kms-a"
        and len(c.attempts) > 1
        and c.attempts[0].outcome not in ("eof", "reset")
    )


@pytest.mark.parametrize("kind", list(REJECTED))
def test_vcenter_moves_on_at_once_after_a_tls_error(kms_scenario, kind):
    wl = kms_scenario.fault_window(kind, "kms-a", policy="vcenter", failovers=2)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    first = _failover_op(_after(kms_scenario, wl))
    failed = first.attempts[0]
    assert (failed.server, failed.outcome) == ("kms-a", "tls-error"), first.attempts
    assert failed.detail.startswith(REJECTED[kind]), failed.detail
    kms_scenario.finding(
        f"vCenter model under {kind}: the handshake with kms-a failed ({failed.detail[:90]}) "
        f"after {failed.duration * 1000:.0f} ms; kms-b served the operation"
    )


@pytest.mark.parametrize("kind", list(REJECTED))
def test_pykmip_fails_the_open_operation_then_reconnects_past_the_bad_server(kms_scenario, kind):
    wl = kms_scenario.fault_window(kind, "kms-a", policy="pykmip", failovers=2)
    kms_scenario.check()
    # the operation on the closed connection fails: PyKMIP raises what the open
    # connection saw; its next open() walks the hosts and skips kms-a on the TLS error
    kms_scenario.expect(failover="pass", order="pass", availability="fail")
    ops = _after(kms_scenario, wl)
    broken = next(c for c in ops if c.outcome != "ok")
    assert [a.server for a in broken.attempts] == ["kms-a"] and broken.attempts[0].reused
    assert broken.attempts[0].outcome in ("eof", "reset"), broken.attempts
    first = _failover_op(ops)
    failed = first.attempts[0]
    assert (failed.server, failed.outcome) == ("kms-a", "tls-error"), first.attempts
    assert failed.detail.startswith(REJECTED[kind]), failed.detail
    kms_scenario.finding(
        f"PyKMIP under {kind}: the operation on the closed connection failed "
        f"({broken.attempts[0].outcome}); the reconnect failed over: kms-a refused in TLS "
        f"({failed.detail[:60]}), kms-b answered"
    )


def test_vcenter_refuses_a_certificate_for_another_name(kms_scenario):
    wl = kms_scenario.fault_window("cert-wrong-name", "kms-a", policy="vcenter", failovers=2)
    kms_scenario.check()
    kms_scenario.expect(failover="pass", order="pass", availability="pass")
    failed = _failover_op(_after(kms_scenario, wl)).attempts[0]
    assert failed.outcome == "tls-error" and failed.detail.startswith("hostname mismatch")


def test_pykmip_accepts_a_certificate_for_another_name(kms_scenario):
    wl = kms_scenario.fault_window(
        "cert-wrong-name", "kms-a", policy="pykmip", failovers=4, expect_served=False
    )
    verdicts = kms_scenario.check()
    # no failover expected from a client that does not check names (the failover
    # verdict says so); the operation on the closed connection failed
    kms_scenario.expect(failover="pass", order="pass", availability="fail")
    assert "does not check the server's name" in verdicts["failover"].summary
    served = [c for c in _after(kms_scenario, wl) if c.outcome == "ok"]
    assert served and all(c.served_by == "kms-a" for c in served), [c.served_by for c in served]
    shown = {a.identity for c in served for a in c.attempts if not a.reused}
    assert shown == {"wrong-name.invalid"}, shown
    kms_scenario.finding(
        f"PyKMIP accepted kms-a's certificate for 'wrong-name.invalid' ({len(served)} "
        "operations served): its client does not check the server's name"
    )


@pytest.mark.parametrize("policy", ["vcenter", "pykmip"])
def test_a_stalled_handshake_costs_one_response_timeout(kms_scenario, policy):
    wl = kms_scenario.fault_window("tls-stall", "kms-a", policy=policy, failovers=2)
    kms_scenario.check()
    # PyKMIP: the operation on the closed connection fails first
    lost = "pass" if policy == "vcenter" else "fail"
    kms_scenario.expect(failover="pass", order="pass", availability=lost)
    failed = _failover_op(_after(kms_scenario, wl)).attempts[0]
    assert failed.outcome == "timeout" and failed.detail.startswith("handshake timeout")
    t = kms_scenario.topology.response_timeout
    kms_scenario.finding(
        f"{policy} under tls-stall: the handshake with kms-a waited {failed.duration:.2f} s "
        f"(response timeout {t:g} s), then kms-b answered"
    )
