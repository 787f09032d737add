"""Certificate lifecycle rehearsals: the `certificates` step's errors (file, line, field)
and defaults, its schema, and (integration) the three shipped rehearsals on a real
cluster, judged by evidence the rotation code does not report: the certificate each
replica serves to a new handshake (`served_certificate`), the clients' files and the
history. A rotation that rotates nothing is caught (sabotaged once), and whatever the
actions changed is undone when a rehearsal is interrupted."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from harness.client.transport import client_context
from harness.cluster.controls import ReplicaControls
from harness.faults.tls_probes import fingerprint, served_certificate
from harness.history import Note
from harness.pki import CertificateAuthority
from harness.pki_rotation import PkiRotation
from harness.rehearsal import (
    CertificatesStep,
    Rehearsal,
    RehearsalError,
    RehearsalFailure,
    RehearsalRun,
    load_rehearsal,
    parse_rehearsal,
    rehearsal_schema,
    run_rehearsal,
)
from harness.scenario import Scenario
from harness.toolchain import repo_root

REHEARSALS = repo_root() / "scenarios" / "rehearsals"
ROTATION = REHEARSALS / "server-cert-rotation.yaml"
CA_ROTATION = REHEARSALS / "ca-rotation.yaml"
CA_EXPIRED = REHEARSALS / "ca-expired.yaml"
TOPOLOGY = "two-replicas-async.yaml"  # every shipped one's: each replica serves a client
HEAD = f"name: r\ntopology: {TOPOLOGY}\nworkload: {{rate_per_s: 20}}\nsteps:\n"


def load(steps: str) -> Rehearsal:
    return parse_rehearsal(HEAD + textwrap.dedent(steps), "r.yaml", base_dir=REHEARSALS)


def error_of(steps: str) -> str:
    with pytest.raises(RehearsalError) as e:
        load(steps)
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- the file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "  - certificates: {action: rotate}\n",
            "r.yaml: line 5: steps[0].certificates.action: unknown action 'rotate' (known: "
            "new-ca, trust, rotate-server-cert, rotate-client-cert, expire-ca, restore)",
        ),
        (
            "  - certificates: renew-everything\n",
            "r.yaml: line 5: steps[0].certificates: unknown action 'renew-everything'",
        ),
        (
            "  - certificates: {action: rotate-server-cert, replicas: [kms-a, kms-x]}\n",
            "r.yaml: line 5: steps[0].certificates.replicas[1]: unknown replica 'kms-x' "
            "(known: kms-a, kms-b)",
        ),
        (
            "  - certificates: {action: rotate-server-cert, replicas: kms-c}\n",
            "r.yaml: line 5: steps[0].certificates.replicas: unknown replica 'kms-c'",
        ),
        (
            "  - certificates: {action: rotate-server-cert, replicas: [kms-a, kms-a]}\n",
            "r.yaml: line 5: steps[0].certificates.replicas[1]: replica 'kms-a' listed twice",
        ),
        (
            "  - certificates: {action: trust, cas: [old, new]}\n",
            "r.yaml: line 5: steps[0].certificates.cas[1]: no new CA yet: make it first with "
            "`- certificates: new-ca`",
        ),
        (
            "  - certificates: {action: trust}\n",
            "r.yaml: line 5: steps[0].certificates.cas: missing; trust needs cas",
        ),
        (
            "  - certificates: {action: new-ca, replicas: all}\n",
            "r.yaml: line 5: steps[0].certificates.replicas: unknown key 'replicas' "
            "(known: action)",
        ),
        (
            "  - certificates: {action: expire-ca, ca: older}\n",
            "r.yaml: line 5: steps[0].certificates.ca: unknown CA 'older' (known: old, new)",
        ),
        (
            "  - certificates: {replicas: all}\n",
            "r.yaml: line 5: steps[0].certificates.action: missing; name the action",
        ),
        (
            "  - certificates: [restore]\n",
            "r.yaml: line 5: steps[0].certificates: must be an action (new-ca, trust, ",
        ),
        (
            "  - certificates: new-ca\n  - wait: 1s\n  - certificates: new-ca\n",
            "r.yaml: line 7: steps[2].certificates: a new CA was already made by steps[0]",
        ),
        (
            "  - certificates: {action: rotate-server-cert, gap: soon}\n",
            "r.yaml: line 5: steps[0].certificates.gap: ",
        ),
    ],
)
def test_certificate_step_errors_name_file_line_and_field(steps: str, expected: str) -> None:
    assert error_of(steps).startswith(expected)


def test_external_replicas_have_no_certificates_to_rotate() -> None:
    with pytest.raises(RehearsalError) as e:
        parse_rehearsal(
            "topology: external-example.yaml\nsteps:\n  - certificates: restore\n",
            "r.yaml",
            base_dir=REHEARSALS,
        )
    assert str(e.value).startswith("r.yaml: line 3: steps[0].certificates: certificates act ")
    assert "are external KMSs" in str(e.value)


def test_steps_are_modelled_with_their_defaults() -> None:
    r = load(
        """\
          - certificates: rotate-server-cert
          - certificates: expire-ca
          - certificates: new-ca
          - certificates: {action: trust, cas: [new, old]}
          - certificates: {action: rotate-server-cert, replicas: kms-b, gap: 500ms}
          - certificates: {action: rotate-client-cert, ca: old}
          - certificates: restore
        """
    )
    steps = [s for s in r.steps if isinstance(s, CertificatesStep)]
    got = [(s.action, s.ca, s.cas, s.replicas, s.gap_s) for s in steps]
    assert got == [
        ("rotate-server-cert", "old", (), ("kms-a", "kms-b"), 0.0),
        ("expire-ca", "old", (), (), 0.0),
        ("new-ca", "old", (), (), 0.0),
        ("trust", "new", ("new", "old"), (), 0.0),  # after new-ca, `new` is the default
        ("rotate-server-cert", "new", (), ("kms-b",), 0.5),
        ("rotate-client-cert", "old", (), (), 0.0),
        ("restore", "new", (), (), 0.0),
    ]
    assert steps[4].describe() == (
        "certificates: rotate-server-cert kms-b from the new CA, 500ms apart"
    )
    assert r.fault_kinds() == []


def test_the_schema_documents_every_action() -> None:
    step = rehearsal_schema()["properties"]["steps"]["items"]["properties"]["certificates"]
    text = str(step) + str(rehearsal_schema()["$defs"])
    for action in ("new-ca", "trust", "rotate-server-cert", "rotate-client-cert", "expire-ca"):
        assert f"`{action}`" in text
    assert "graceful reload" in text and "expired copy of itself" in text


def test_the_shipped_lifecycle_rehearsals_load() -> None:
    for path, actions in (
        (ROTATION, ["rotate-server-cert"]),
        (CA_ROTATION, ["new-ca", "trust", "rotate-server-cert", "rotate-client-cert", "trust"]),
        (CA_EXPIRED, ["expire-ca", "restore"]),
    ):
        r = load_rehearsal(path)
        assert r.topology.name == "two-replicas-async" and r.workload is not None
        assert [s.action for s in r.steps if isinstance(s, CertificatesStep)] == actions


def test_client_contexts_follow_files_replaced_in_place(tmp_path: Path) -> None:
    """A CA bundle or client certificate replaced at its path is used from the next
    connection on (the context is cached per version of the files, not per path)."""
    ca = CertificateAuthority(tmp_path / "ca", "t")
    files = ca.issue("client", "c", server=False)
    first = client_context(files.ca, files.cert, files.key)
    assert client_context(files.ca, files.cert, files.key) is first
    other = CertificateAuthority(tmp_path / "other", "u")
    bundle = Path(files.ca).read_bytes() + other.ca_path.read_bytes()
    tmp = tmp_path / "bundle.pem"
    tmp.write_bytes(bundle)
    os.replace(tmp, files.ca)
    second = client_context(files.ca, files.cert, files.key)
    assert second is not first
    assert len(second.get_ca_certs()) == 2 and len(first.get_ca_certs()) == 1


# ---- evidence ------------------------------------------------------------------------------


@dataclass
class Moment:
    """What clients met at one moment of a run: each replica's served certificate, the
    clients' CA bundle and certificate."""

    label: str
    t: float
    served: dict[str, x509.Certificate | None]
    bundle: list[x509.Certificate]
    client: x509.Certificate


class Witness:
    """Looks at the cluster before a run, at every hold (waits, gaps between replicas)
    and after every `certificates` step — through `RehearsalRun`, not the rotation."""

    def __init__(self, sc: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sc = sc
        st = sc.cluster.state
        self.replicas = list(st.replicas)
        self.files = dict(st.tls)
        self.original_files = {k: Path(v).read_bytes() for k, v in self.files.items()}
        self.own = {r: _pem(Path(rs.cert).read_bytes())[0] for r, rs in st.replicas.items()}
        self.ca = _pem(self.original_files["ca"])[0]
        self.moments: list[Moment] = []
        hold, step = RehearsalRun._hold, RehearsalRun._step

        def probing_hold(run: RehearsalRun, seconds: float) -> None:
            self.look(f"hold {seconds}")
            hold(run, seconds)

        def probing_step(run: RehearsalRun, s: Any) -> None:
            step(run, s)
            if isinstance(s, CertificatesStep):
                self.look(f"after {s.path} {s.action}")

        monkeypatch.setattr(RehearsalRun, "_hold", probing_hold)
        monkeypatch.setattr(RehearsalRun, "_step", probing_step)
        self.look("before")

    def look(self, label: str) -> Moment:
        served = {r: served_certificate(self.sc.cluster, r)[0] for r in self.replicas}
        m = Moment(
            label,
            time.monotonic(),
            served,
            _pem(Path(self.files["ca"]).read_bytes()),
            _pem(Path(self.files["cert"]).read_bytes())[0],
        )
        self.moments.append(m)
        return m

    def after(self, step: str) -> Moment:
        return next(m for m in self.moments if m.label.startswith(f"after {step} "))

    def assert_restored(self) -> None:
        now = self.look("end")
        for r in self.replicas:
            assert _fp(now.served[r]) == _fp(self.own[r]), f"{r} does not serve its own again"
        for k, data in self.original_files.items():
            assert Path(self.files[k]).read_bytes() == data, f"the clients' {k} file"
        for r, rs in self.sc.cluster.state.replicas.items():
            left = set(ReplicaControls(rs).current()) & {"cert", "key", "ca"}
            assert not left, f"{r} still has controls {left}"


def _pem(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def _fp(cert: x509.Certificate | None) -> str | None:
    return fingerprint(cert) if cert is not None else None


def _issued_by(cert: x509.Certificate | None, ca: x509.Certificate) -> bool:
    if cert is None:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _sans(cert: x509.Certificate | None) -> Any:
    assert cert is not None
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def assert_rotated_one_at_a_time(w: Witness, step: str, ca: x509.Certificate) -> None:
    """After `step` every replica serves a certificate other than its own, issued by
    `ca`, for the same names; midway, one replica had its new one and the other its
    own still."""
    after = w.after(step)
    for r in w.replicas:
        new, own = after.served[r], w.own[r]
        assert new is not None, f"{r} served nothing after {step}"
        assert _fp(new) != _fp(own), f"{r} still serves its own certificate after {step}"
        assert new.serial_number != own.serial_number
        assert _issued_by(new, ca), f"{r}'s new certificate is not issued by {ca.subject}"
        assert new.subject == own.subject and _sans(new) == _sans(own)
        assert new.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != own.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ), f"{r}: a new certificate, but the old key"
    first, second = w.replicas
    assert any(
        _fp(m.served[first]) == _fp(after.served[first])
        and _fp(m.served[second]) == _fp(w.own[second])
        for m in w.moments
        if m.t < after.t
    ), f"never a moment with {first} rotated and {second} not yet: not one at a time"


def assert_no_failed_operation(sc: Scenario, w: Witness, step: str) -> None:
    """Every operation succeeded, and each replica served some after `step`."""
    ops = sc.history.completes()
    failed = [c for c in ops if c.outcome != "ok"]
    assert ops and not failed, f"{len(failed)} of {len(ops)} failed: {failed[:3]}"
    t = w.after(step).t
    for r in w.replicas:
        assert any(c.served_by == r and c.start > t for c in ops), f"no op on {r} after {step}"
    v = sc.outcome.verdicts["availability"]
    assert (v.status, sc.outcome.expected["availability"]) == ("pass", "pass"), v.summary


def began(sc: Scenario, step: str) -> float:
    """When the runner began `step` (its note in the history)."""
    return next(
        e.t for e in sc.history.events() if isinstance(e, Note) and e.text.startswith(f"{step} (")
    )


def run(path: Path, sc: Scenario) -> RehearsalRun:
    r = load_rehearsal(path)
    return run_rehearsal(r, sc, seed=r.seed or 0)


# ---- the shipped rehearsals on a real cluster ----------------------------------------------


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_rolling_server_certificate_rotation(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Witness(kms_scenario, monkeypatch)
    done = run(ROTATION, kms_scenario)
    assert_rotated_one_at_a_time(w, "steps[1]", w.ca)  # the same CA
    assert_no_failed_operation(kms_scenario, w, "steps[1]")
    assert kms_scenario.outcome.regressions() == []
    assert [f["action"] for f in done.figures["certificates"]] == ["rotate-server-cert", "restore"]
    w.assert_restored()


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_ca_rotation_with_a_bundle(kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    w = Witness(kms_scenario, monkeypatch)
    run(CA_ROTATION, kms_scenario)
    bundle = w.after("steps[2]").bundle  # trust [old, new]
    assert len(bundle) == 2 and bundle[0] == w.ca and bundle[1].subject != w.ca.subject
    new_ca = bundle[1]
    assert_rotated_one_at_a_time(w, "steps[4]", new_ca)
    client = w.after("steps[6]").client  # rotate-client-cert
    own_client = _pem(w.original_files["cert"])[0]
    assert _issued_by(client, new_ca) and not _issued_by(client, w.ca)
    assert client.public_key() == own_client.public_key() and client.subject == own_client.subject
    assert w.after("steps[8]").bundle == [new_ca]  # the old CA dropped
    assert_no_failed_operation(kms_scenario, w, "steps[8]")
    assert kms_scenario.outcome.regressions() == []
    w.assert_restored()


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_an_expired_ca_is_a_total_outage(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = kms_scenario
    w = Witness(sc, monkeypatch)
    run(CA_EXPIRED, sc)  # passes: availability fails, as the file expects
    (expired,) = w.after("steps[1]").bundle
    assert expired.subject == w.ca.subject and expired.public_key() == w.ca.public_key()
    assert expired.not_valid_after_utc < dt.datetime.now(dt.UTC)
    v = sc.outcome.verdicts["availability"]
    assert (v.status, sc.outcome.expected["availability"]) == ("fail", "fail"), v.summary
    assert sc.outcome.regressions() == []
    t_expired, t_restored = w.after("steps[1]").t, w.after("steps[3]").t
    t_restoring = began(sc, "steps[3]")
    ops = sc.history.completes()
    during = [c for c in ops if t_expired < c.start and c.end < t_restoring]
    assert len(during) >= 5 and all(c.outcome == "fail" for c in during)
    for c in during:  # every replica tried, every handshake refused for the expiry
        assert {a.server for a in c.attempts} == set(w.replicas)
        assert all(a.outcome == "tls-error" and a.detail.startswith("expired") for a in c.attempts)
    later = [c for c in ops if c.start > t_restored]
    assert later and all(c.outcome == "ok" for c in later), "the cluster works again"
    assert any("total outage" in f for f in sc.outcome.findings), sc.outcome.findings
    w.assert_restored()


# ---- sabotage: a rotation that does nothing, an interrupted rehearsal ----------------------


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_a_rotation_that_rotates_nothing_is_caught(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotaged twice: the replicas are never told (the action's own proof fails the
    step), and the whole rotation skipped (the rehearsal passes: availability is 100 %
    — and this file's evidence says no replica rotated)."""
    w = Witness(kms_scenario, monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(PkiRotation, "_set", lambda self, replica, **fields: None)
        with pytest.raises(RehearsalFailure, match=r"line \d+: steps\[1\]\.certificates: .*still"):
            run(ROTATION, kms_scenario)
    skip: Callable[..., dict[str, Any]] = lambda self, replica, ca: {}  # noqa: E731
    monkeypatch.setattr(PkiRotation, "_rotate_one", skip)
    w.moments = w.moments[:1]
    run(ROTATION, kms_scenario)
    assert kms_scenario.outcome.verdicts["availability"].status == "pass"
    with pytest.raises(AssertionError, match="still serves its own certificate"):
        assert_rotated_one_at_a_time(w, "steps[1]", w.ca)


@pytest.mark.integration
@pytest.mark.kms_topology(TOPOLOGY)
def test_an_interrupted_rehearsal_is_undone(
    kms_scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the CA, a server certificate and the client certificate changed:
    the cluster's own material is back everywhere."""
    w = Witness(kms_scenario, monkeypatch)
    r = load(
        """\
          - certificates: new-ca
          - certificates: {action: trust, cas: [old, new]}
          - certificates: {action: rotate-server-cert, replicas: kms-b}
          - certificates: rotate-client-cert
          - wait: 30s
        """
    )
    held = RehearsalRun._hold

    def interrupt(run: RehearsalRun, seconds: float) -> None:
        held(run, 0)
        raise KeyboardInterrupt

    monkeypatch.setattr(RehearsalRun, "_hold", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_rehearsal(r, kms_scenario, seed=1)
    changed = w.after("steps[3]")
    assert _fp(changed.served["kms-b"]) != _fp(w.own["kms-b"]) and len(changed.bundle) == 2
    assert not _issued_by(changed.client, w.ca)
    w.assert_restored()
