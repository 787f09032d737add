"""Who answered: every attempt and audit snapshot records the identity of the server that
answered, and the checkers refuse to judge through a contradiction.

Unit tests over hand-built histories (the helper, each checker, the policies' error
texts) and, for real: the auditor sabotaged to read kms-a for every replica (the async
crash-window flow then ends with `unknown` audit verdicts naming the mismatch, where it
used to pass) and `kmschaos audit` on a running cluster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_checkers import CONNECT, ORDERS, RESPONSE
from test_checkers import Builder as OpsBuilder
from test_checkers_replication import REPLICAS, Builder

from harness.audit import Auditor
from harness.checkers import CHECKERS, brief, headline
from harness.checkers.convergence import check_convergence
from harness.checkers.durability import check_durability
from harness.checkers.failover import check_failover
from harness.checkers.identity import attempt_contradictions, audit_contradictions
from harness.checkers.order import check_order
from harness.cli import main
from harness.client.policies import PyKmipPolicy, TlsFiles, tried
from harness.client.transport import Endpoint, PeerIdentity, peer_identity
from harness.client.walker import VCenterPolicy
from harness.history import Attempt, Snapshot
from harness.pki import CertificateAuthority
from harness.scenario import Scenario

# ---- reading who answered --------------------------------------------------------------


class FakeTls:
    def __init__(self, der: bytes | None = None, error: Exception | None = None) -> None:
        self.der, self.error = der, error

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        assert binary_form
        if self.error is not None:
            raise self.error
        return self.der


def test_peer_identity_is_the_certificate_cn_and_its_fingerprint(tmp_path: Path) -> None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = CertificateAuthority(tmp_path, "kctest").issue("kms-b", "kms-b", server=True)
    der = x509.load_pem_x509_certificate(Path(cert.cert).read_bytes()).public_bytes(Encoding.DER)
    who = peer_identity(FakeTls(der))
    assert who == PeerIdentity("kms-b", hashlib.sha256(der).hexdigest())
    # no certificate, a closed socket, not a TLS socket: nobody, and no exception
    assert peer_identity(FakeTls(None)) == PeerIdentity()
    assert peer_identity(FakeTls(error=OSError("closed"))) == PeerIdentity()
    assert peer_identity(object()) == PeerIdentity()


# ---- the policies say which servers they tried and why each failed -----------------------


def attempt(server: str, outcome: str, secs: float, detail: str = "") -> Attempt:
    return Attempt(server, f"{server}:5696", 10.0, 10.0 + secs, outcome, detail)


def test_tried_lists_every_server_with_its_reason() -> None:
    trail = [
        attempt("kms-a", "refused", 0.001),
        attempt("kms-b", "connect-timeout", 0.2504),
        attempt("kms-c", "timeout", 3.0),
        attempt("kms-d", "tls-error", 0.01, "SSLCertVerificationError: certificate expired"),
    ]
    assert tried(trail) == (
        "kms-a refused, kms-b connect-timeout 0.250 s, kms-c timeout 3.000 s, "
        "kms-d tls-error (SSLCertVerificationError: certificate expired)"
    )
    assert tried([]) == "no server tried"


def closed_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()  # bound once, never listening: a connect is refused
    return ports


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    ca = CertificateAuthority(tmp_path / "pki", "kctest")
    client = ca.issue("client", "kmschaos-client", server=False)
    return TlsFiles(client.ca, client.cert, client.key)


def test_vcenter_error_names_the_servers_it_tried(tls: TlsFiles, tmp_path: Path) -> None:
    one, two = closed_ports(2)
    endpoints = [Endpoint("kms-a", "127.0.0.1", one), Endpoint("kms-b", "127.0.0.1", two)]
    conf = str(tmp_path / "empty.conf")
    Path(conf).write_text("")
    result = VCenterPolicy(endpoints, tls, 0.5, 0.5, conf).execute("locate", None)
    assert result.outcome == "fail"
    assert result.error == "no server answered: kms-a refused, kms-b refused"
    # the list it was given is the list it names: one server, one reason
    alone = VCenterPolicy(endpoints[:1], tls, 0.5, 0.5, conf).execute("locate", None)
    assert alone.error == "no server answered: kms-a refused"
    assert all(a.identity is None for a in result.attempts)  # no TLS session: nobody


def test_pykmip_open_failure_names_the_hosts_it_tried(tls: TlsFiles, tmp_path: Path) -> None:
    (port,) = closed_ports(1)
    endpoints = [Endpoint("kms-a", "127.0.0.1", port), Endpoint("kms-b", "127.0.0.2", port)]
    conf = str(tmp_path / "empty.conf")
    Path(conf).write_text("")
    policy = PyKmipPolicy(endpoints, tls, 0.5, 0.5, conf)
    try:
        result = policy.execute("locate", None)
    finally:
        policy.close()
    assert result.outcome == "fail"
    assert result.error.startswith(
        "open failed: no host of kms-a, kms-b answered: kms-a refused, kms-b refused "
        "(PyKMIP raised ConnectionRefusedError"
    ), result.error


# ---- audits: the helper and the two audit verdicts -------------------------------------------


def with_identities(b: Builder, shown: dict[str, str] | None = None, **prints: str) -> Builder:
    """Every snapshot answered by its own replica (own certificate), except those named
    in `shown` (replica -> identity shown); `prints` replaces fingerprints by replica."""
    shown = shown or {}
    for e in b.events:
        if isinstance(e, Snapshot):
            e.identity = shown.get(e.replica, e.replica)
            e.fingerprint = prints.get(e.replica.replace("-", "_"), f"fp-{e.identity}")
    return b


def replicated(keys: int = 3) -> Builder:
    """Keys made on kms-a and read, then one audit round in which every replica has them."""
    b = Builder()
    names = [f"k{i}" for i in range(keys)]
    for i, k in enumerate(names):
        b.create(k, 0.1 * i)
        b.get(k, 0.1 * i + 0.05)
    b.audit(1, 5.0, names)
    return b


def test_an_audit_answered_by_each_replica_itself_is_judged_as_before() -> None:
    b = with_identities(replicated())
    assert audit_contradictions(b.events) == []
    assert check_durability(b.events, replicas=REPLICAS).status == "pass"
    assert check_convergence(b.events, replicas=REPLICAS).status == "pass"


def test_a_history_without_identities_is_judged_as_before() -> None:
    b = replicated()  # written before identities were recorded
    assert audit_contradictions(b.events) == []
    assert check_durability(b.events, replicas=REPLICAS).status == "pass"


def test_a_snapshot_answered_by_another_replica_makes_durability_unknown() -> None:
    b = with_identities(replicated(), {"kms-b": "kms-a"})
    (problem,) = [p for p in audit_contradictions(b.events) if p.kind == "wrong-server"]
    assert problem.replicas == ("kms-b",) and problem.shown == "kms-a"
    v = check_durability(b.events, replicas=REPLICAS)
    assert v.status == "unknown"
    assert "kms-b's audit (round 1) was answered by a server whose certificate names 'kms-a'" in (
        v.summary
    )
    assert v.summary.endswith("the audit alone would say pass")
    assert v.figures["status_without_identity"] == "pass"
    assert v.figures["acknowledged"] == 3  # what the snapshots said is kept
    assert headline(v.to_dict()) == "wrong server answered"
    assert brief(v.to_dict()) == " identity"


def test_a_failure_read_through_the_wrong_server_is_unknown_too() -> None:
    b = replicated()
    b.audit(2, 9.0, ["k0", "k1", "k2"], kms_c={"k2": None})  # k2 "lost" on kms-c ...
    with_identities(b, {"kms-c": "kms-d"})  # ... as kms-d answered for it
    v = check_durability(b.events, replicas=REPLICAS)
    assert v.status == "unknown" and v.figures["status_without_identity"] == "fail"
    assert "'kms-d'" in v.summary and "alone would say fail" in v.summary
    assert any("1 of 3 acknowledged keys lost" in d for d in v.details)


def test_the_auditor_reading_one_replica_for_all_is_caught_by_both_audit_verdicts() -> None:
    # the sabotage of issue 10: every snapshot is kms-a's, labelled as each replica
    b = with_identities(
        replicated(),
        dict.fromkeys(REPLICAS, "kms-a"),
        **{r.replace("-", "_"): "fp-kms-a" for r in REPLICAS},
    )
    problems = audit_contradictions(b.events)
    assert [p.replicas for p in problems if p.kind == "wrong-server"] == [
        ("kms-b",),
        ("kms-c",),
        ("kms-d",),
    ]
    (same,) = [p for p in problems if p.kind == "one-server"]
    assert same.replicas == tuple(REPLICAS) and same.shown == "kms-a"
    assert "showed one certificate (CN 'kms-a'" in same.text
    for v in (
        check_durability(b.events, replicas=REPLICAS),
        check_convergence(b.events, replicas=REPLICAS),
    ):
        assert v.status == "unknown", (v.name, v.summary)
        assert v.figures["status_without_identity"] == "pass"
        assert "cannot trust the audit" in v.summary
        assert any("one certificate" in d for d in v.details)


def test_external_replicas_may_show_any_name_but_not_one_server_twice() -> None:
    ext = ["kms-c", "kms-d"]
    own_names = with_identities(replicated(), {"kms-c": "kms1.example.net", "kms-d": "kms2.ex"})
    assert audit_contradictions(own_names.events, external=ext) == []
    assert check_durability(own_names.events, replicas=REPLICAS, external=ext).status == "pass"
    # an external one answering as a replica kmschaos started: its link leads there
    misrouted = with_identities(replicated(), {"kms-d": "kms-a"}, kms_d="fp-x")
    (p,) = audit_contradictions(misrouted.events, external=ext)
    assert p.kind == "wrong-server" and p.replicas == ("kms-d",)
    # one certificate behind two external names: reported once (not again by name)
    both = {"kms-c": "kms.example.net", "kms-d": "kms.example.net"}
    twice = with_identities(replicated(), both)
    (one,) = audit_contradictions(twice.events, external=ext)
    assert one.kind == "one-server" and one.replicas == ("kms-c", "kms-d")
    assert one.text.startswith("kms-c and kms-d showed one certificate (CN 'kms.example.net'")
    # one name on two certificates (a shared CN): reported as external replicas
    named = with_identities(replicated(), both, kms_c="fp-1", kms_d="fp-2")
    (same,) = audit_contradictions(named.events, external=ext)
    assert same.kind == "one-server" and same.replicas == ("kms-c", "kms-d")
    assert "external replicas kms-c and kms-d all answered as 'kms.example.net'" in same.text
    v = check_convergence(named.events, replicas=REPLICAS, external=ext)
    assert v.status == "unknown" and headline(v.to_dict()) == "one server, two names"


def test_the_checkers_read_external_replicas_from_the_topology() -> None:
    from harness.checkers import CheckContext
    from harness.topology import parse_topology

    topo = parse_topology(
        "name: t\nallow_external: true\ntls: {ca: ca.pem, cert: c.pem, key: c.key}\n"
        "sites:\n  s:\n    replicas:\n      - kms-a\n      - kms-b\n      - kms-c\n"
        "      - {name: kms-d, external: {host: kms.example.net}}\n"
        "clients: {vc-a: {site: s, order: [kms-a, kms-b, kms-c, kms-d]}}\n",
        "t.yaml",
    )
    b = with_identities(replicated(), {"kms-d": "kms.example.net"})
    ctx = CheckContext.of(b.events, topo)
    assert CHECKERS.known("durability").check(ctx).status == "pass"
    assert CHECKERS.known("convergence").check(ctx).status == "pass"


# ---- attempts: failover and order ----------------------------------------------------------


def refuse_history(identity_of_b: str | None) -> OpsBuilder:
    b = OpsBuilder()
    b.baseline()
    b.fault("f1", "refuse", "kms-a", 2.0, 10.0)
    b.op("vc-a", 3.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.010))
    b.op("vc-a", 4.0, ("kms-a", "refused", 0.001), ("kms-b", "ok", 0.010))
    for e in b.events:
        for a in getattr(e, "attempts", []):
            if a.outcome == "ok":
                a.identity = identity_of_b if a.server == "kms-b" else a.server
    return b


def test_attempts_answered_by_their_own_server_are_judged_as_before() -> None:
    b = refuse_history("kms-b")
    assert attempt_contradictions(b.events, replicas=["kms-a", "kms-b", "kms-c"]) == []
    v = check_failover(b.events, response_timeout=RESPONSE, connect_timeout=CONNECT)
    assert v.status == "pass"
    assert check_order(b.events, orders=ORDERS).status == "pass"


def test_a_failover_to_a_server_that_is_not_the_one_meant_is_unknown() -> None:
    b = refuse_history("kms-a")  # "kms-b" answered with kms-a's certificate
    v = check_failover(b.events, response_timeout=RESPONSE, connect_timeout=CONNECT)
    assert v.status == "unknown", v.summary
    assert v.summary.startswith("cannot trust the attempts, a server answered for another: ")
    assert "vc-a's attempts on kms-b were answered by a server whose certificate names 'kms-a'" in (
        v.summary
    )
    assert "(2 ops, first op-6)" in v.summary
    assert v.figures["status_without_identity"] == "pass"
    o = check_order(b.events, orders=ORDERS)
    assert o.status == "unknown" and "kms-b" in o.summary and "'kms-a'" in o.summary
    assert headline(o.to_dict()) == "wrong server answered"


def test_an_external_attempt_may_show_any_name_except_an_own_replica() -> None:
    b = refuse_history("kms.example.net")
    assert attempt_contradictions(b.events, replicas=["kms-a", "kms-b"], external=["kms-b"]) == []
    v = check_order(b.events, orders=ORDERS, external=["kms-b"])
    assert v.status == "pass"
    c = refuse_history("kms-c")
    (p,) = attempt_contradictions(
        c.events, replicas=["kms-a", "kms-b", "kms-c"], external=["kms-b"]
    )
    assert p.replicas == ("kms-b",) and p.shown == "kms-c"


# ---- for real ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.kms_topology("two-sites-async.yaml")
@pytest.mark.kms_needs("replication-pause", "wipe")
def test_sabotaged_auditor_reading_kms_a_for_every_replica_gives_unknown_audit_verdicts(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10's sabotage: the auditor reads kms-a and labels the snapshot as every
    replica. The async crash-window flow (scenarios/test_async_crash_window.py) used to
    pass (durability fail as expected, convergence pass); now both are unknown and say
    why."""
    t0 = time.monotonic()
    real_client = Auditor._client

    def everyone_is_kms_a(self: Auditor, replica: str) -> Any:
        return real_client(self, "kms-a")

    monkeypatch.setattr(Auditor, "_client", everyone_is_kms_a)
    sc = kms_scenario
    client = sc.client("vc-a")
    before = [client.create() for _ in range(5)]
    for c in before:
        assert c.outcome == "ok" and c.served_by == "kms-a"
        client.get(c.key or "")
    assert sc.audit_until_converged() is not None
    with sc.fault("replication-pause", "kms-a"):
        window = [client.create() for _ in range(5)]
        assert all(c.outcome == "ok" and c.served_by == "kms-a" for c in window)
        with sc.fault("wipe", "kms-a"):
            pass
    assert sc.audit_until_converged() is not None
    verdicts = sc.check(include=("durability", "convergence"))
    took = time.monotonic() - t0
    print(f"\nsabotaged auditor: verdicts in {took:.1f} s")  # with -s: the added test time
    durability, convergence = verdicts["durability"], verdicts["convergence"]
    # before identities, these were the verdicts: the scenario passed
    assert durability.figures["status_without_identity"] == "fail"
    assert convergence.figures["status_without_identity"] == "pass"
    for v in (durability, convergence):
        assert v.status == "unknown", (v.name, v.summary)
        assert "kms-b's audit" in v.summary and "'kms-a'" in v.summary, v.summary
        assert any("showed one certificate (CN 'kms-a'" in d for d in v.details), v.details
    # every attempt of the clients was answered by the replica it meant
    assert all(
        a.identity == a.server
        for c in sc.history.completes()
        for a in c.attempts
        if a.identity is not None
    )
    assert any(a.identity == "kms-a" for c in window for a in c.attempts)


@pytest.mark.integration
@pytest.mark.kms_topology("one-site.yaml")
def test_kmschaos_audit_names_the_keys_at_risk_and_where_they_are(
    kms_scenario: Scenario,
    kms_cluster: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state_dir = kms_cluster.state.state_dir
    assert main(["audit", "--state-dir", state_dir]) == 0
    out = capsys.readouterr().out
    assert "AGREE: all 3 replicas answered as themselves and hold the same 0 keys" in out

    made = kms_scenario.client("vc-a").create()  # on kms-a only: profile none
    assert made.served_by == "kms-a" and made.attempts[-1].identity == "kms-a"
    assert main(["audit", "--state-dir", state_dir]) == 1
    out = capsys.readouterr().out
    assert f"  key {made.key} (PRE_ACTIVE, sha256 " in out
    assert "on kms-a; missing on kms-b, kms-c" in out
    assert "DIFFER: 1 key missing on some replicas" in out
    assert main(["audit", "--state-dir", state_dir, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["agree"] is False
    assert doc["replicas"]["kms-a"]["identity"] == "kms-a"
    assert doc["replicas"]["kms-a"]["only_here"] == [made.key]
    assert doc["replicas"]["kms-b"]["lacks"] == [made.key]
    (risk,) = doc["at_risk"]
    assert list(risk["on"]) == ["kms-a"] and risk["missing_on"] == ["kms-b", "kms-c"]

    # the auditor sabotaged: every replica read is kms-a, and the audit says so
    real_client = Auditor._client
    monkeypatch.setattr(Auditor, "_client", lambda self, r: real_client(self, "kms-a"))
    assert main(["audit", "--state-dir", state_dir]) == 1
    out = capsys.readouterr().out
    assert "WHO ANSWERED does not match" in out
    assert "kms-b's audit (round 1) was answered by a server whose certificate names 'kms-a'" in (
        out
    )
    assert "kms-a, kms-b and kms-c showed one certificate" in out
    monkeypatch.undo()

    # a replica that cannot be read: the audit says so and exits 1
    kms_cluster.kill_replica("kms-c")
    assert main(["audit", "--state-dir", state_dir, "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "kms-c unreadable (what it holds is unknown)" in out
