"""What the certificate faults share: material made by the cluster's own CA (or a
foreign one), swapped into a replica's TLS live, and the proof that a client's
handshake now fails for the fault's reason.

    client ──TLS (verifies)──> replica serving <the fault's certificate>

The swap is live (`harness.replica.control`), and open sessions are closed with it, as
a server restarted onto new material would (without losing its process or its data):
every client, one that keeps a connection too, meets the new certificate on its next
connection. (Left open, a session would keep what it negotiated: TLS does not verify a
certificate again, so an expiry alone breaks nothing until the next handshake.)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509

from harness.cluster.base import CAP_TLS
from harness.cluster.controls import ReplicaControls
from harness.faults.base import Fault
from harness.faults.probes import Effect
from harness.faults.tls_probes import client_handshake, fingerprint, served_certificate
from harness.pki import CertFiles, CertificateAuthority
from harness.store import StateFolder

FOREIGN_CA = "foreign"  # a CA of the PKI folder that no client or replica trusts


def replica_names(cert_path: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """A certificate's CN, IP addresses and DNS names (its SANs)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (str(cn[0].value) if cn else "", (), ())
    ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    names = tuple(san.get_values_for_type(x509.DNSName))
    return (str(cn[0].value) if cn else "", ips, names)


def own_ca(cluster_state_dir: str) -> CertificateAuthority:
    return CertificateAuthority.load(StateFolder(Path(cluster_state_dir)).pki)


def foreign_ca(cluster_state_dir: str) -> CertificateAuthority:
    """A CA nobody in the cluster trusts (made once per cluster, then reused)."""
    d = StateFolder(Path(cluster_state_dir)).pki / FOREIGN_CA
    if (d / "ca.key").exists():
        return CertificateAuthority.load(d)
    return CertificateAuthority(d, "foreign (trusted by nobody)")


class TlsControlFault(Fault):
    """A fault applied through the replica program's live controls: `_inject` sets the
    values `_controls` gives (named by `control_keys`), `_heal` clears those names.
    One that closes the replica's open sessions with them (`drops_sessions`) is seen by
    clients from the moment it writes its controls: its window opens when `_inject`
    starts."""

    requires: ClassVar[frozenset[str]] = frozenset({CAP_TLS})
    control_keys: ClassVar[tuple[str, ...]] = ()
    drops_sessions: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        if cls.drops_sessions:  # before registering: the registry reads the class
            cls.window_from_start = True
        super().__init_subclass__(**kw)

    @property
    def controls(self) -> ReplicaControls:
        return self.cluster.controls(self.target)

    def _controls(self) -> dict[str, Any]:
        """The values of `control_keys` to set (files installed into the folder first)."""
        raise NotImplementedError

    def _inject(self) -> None:
        values = self._controls()
        if self.drops_sessions:
            values["drop_sessions"] = self.fault_id
        self.controls.set(**values)

    def _heal(self) -> None:
        self.controls.clear(*self.control_keys)


class CertificateFault(TlsControlFault):
    """The replica serves another certificate; a client's handshake fails with
    `expected_reason` (`harness.client.transport.TLS_REASONS`)."""

    client_wait = "none"
    in_matrix = True
    control_keys = ("cert", "key")
    drops_sessions = True
    heals = "its own certificate again (live, for new handshakes)"
    client_sees = "its open connection closed; the next TLS handshake fails at once"
    expected_reason: ClassVar[str] = ""
    what: ClassVar[str] = ""  # "an expired certificate"
    # the certificate `_issue` makes by default: for the replica's own names, by the
    # cluster's CA (or, `foreign_issuer`, by a CA nobody trusts), valid from
    # now + `valid_from` to now + `valid_to` (None: the PKI's usual validity)
    foreign_issuer: ClassVar[bool] = False
    valid_from: ClassVar[dt.timedelta | None] = None
    valid_to: ClassVar[dt.timedelta | None] = None

    def _issue(self, stem: str, cn: str, ips: tuple[str, ...], dns: tuple[str, ...]) -> CertFiles:
        state_dir = self.cluster.state.state_dir
        ca = foreign_ca(state_dir) if self.foreign_issuer else own_ca(state_dir)
        t = now()
        return ca.issue(
            stem,
            cn,
            server=True,
            addresses=ips,
            dns_names=dns,
            not_before=None if self.valid_from is None else t + self.valid_from,
            not_after=None if self.valid_to is None else t + self.valid_to,
        )

    def _controls(self) -> dict[str, Any]:
        rs = self.cluster.state.replicas[self.target]
        cn, ips, dns = replica_names(rs.cert)
        files = self._issue(f"{self.fault_id}", cn, ips, dns)
        self._served = self._fingerprint(files.cert)
        return {
            "cert": self.controls.install(files.cert, f"{self.kind}.pem"),
            "key": self.controls.install(files.key, f"{self.kind}.key"),
        }

    @staticmethod
    def _fingerprint(path: str) -> str:
        return fingerprint(x509.load_pem_x509_certificate(Path(path).read_bytes()))

    def observe(self) -> Effect:
        cert, why = served_certificate(self.cluster, self.target)
        if cert is None:
            return None, why
        if fingerprint(cert) != getattr(self, "_served", None):
            return False, f"{self.target} still serves {_about(cert)}, not {self.what}"
        seen = client_handshake(self.cluster, self.target)
        if seen.reason is None:
            return False, (
                f"{self.target} serves the certificate the fault made ({_about(cert)}), "
                f"and yet a client's handshake passed"
            )
        if not seen.reason.startswith(self.expected_reason):
            return False, (
                f"{self.target} serves {self.what}; a client's handshake failed for "
                f"another reason than {self.expected_reason!r}: {seen.detail}"
            )
        return True, f"{self.target} serves {self.what} ({_about(cert)}): {seen.detail}"


def _about(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(cn[0].value) if cn else cert.subject.rfc4514_string()
    return (
        f"CN={name}, valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
