"""Planned operator actions on a cluster's own PKI: certificate rotation, CA rotation
and an expired CA — what a rehearsal's ``certificates`` steps do (not faults: nothing
here is healed by `kmschaos heal`; `PkiRotation.restore` undoes it all).

    PkiRotation ──certificate, key, CA bundle──> replica control folder ──tls.json──> replica
                                                   (live, for new handshakes; sessions kept)
                ──CA bundle, client certificate──> the clients' TLS files (`state.tls`),
                                                   replaced whole: each client's next connection

Two CAs at most: ``old``, the cluster's own (a copy of its certificate and key), and
``new``, made by `new_ca`. Material is written below ``<state>/pki/rotation/`` and into
the replicas' control folders under names never used before (the replica program
rebuilds its TLS context when a file name changes). The clients' CA file and
certificate keep their paths (PyKMIP's configuration and every policy name them) and are
replaced atomically; the client certificate is reissued for the same key pair, since a
certificate and its key are two files that no rename replaces together.

Every action proves what it did with probes its mechanism does not report: the
certificate a replica serves to a new handshake (`served_certificate`), and a handshake
as the clients make it (`client_handshake`); what they saw goes into notes and `figures`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness.cluster.base import CAP_TLS, Cluster
from harness.faults.certificates import replica_names
from harness.faults.tls_probes import client_handshake, fingerprint, served_certificate
from harness.pki import BACKDATE, CA_CERT, CA_KEY, VALIDITY, CertificateAuthority
from harness.store import StateFolder
from harness.wait import WaitTimeout

OLD, NEW = "old", "new"  # the cluster's CA, and the one `new_ca` makes
ROTATION_DIR = "rotation"  # below the PKI folder
EXPIRED_FOR = dt.timedelta(days=1)  # how long ago an expired CA copy ended
CONTROLLED = ("cert", "key", "ca")  # the replica controls rotation sets


class RotationError(Exception):
    """An action could not be done, or did not have its effect; the message says which
    replica or file and what was seen instead."""


def _replace(path: str | Path, data: bytes) -> None:
    """Write `path` whole: a reader sees the old file or the new one, never a mix."""
    p = Path(path)
    tmp = p.with_name(p.name + ".rotating")
    tmp.write_bytes(data)
    os.chmod(tmp, p.stat().st_mode & 0o777 if p.exists() else 0o644)
    os.replace(tmp, p)


def _certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _about(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(cn[0].value) if cn else cert.subject.rfc4514_string()
    issuer = cert.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    by = str(issuer[0].value) if issuer else cert.issuer.rfc4514_string()
    return f"CN={name} serial {cert.serial_number:x} (issuer {by})"


class PkiRotation:
    """The actions on one cluster, in the order given; `restore` puts back what the
    cluster started with. `note(text)` records what each action saw; `finding(text)`
    states an outage it caused."""

    def __init__(
        self,
        cluster: Cluster,
        note: Callable[[str], None] = lambda _: None,
        finding: Callable[[str], None] = lambda _: None,
    ) -> None:
        if CAP_TLS not in cluster.capabilities:
            raise RotationError(
                f"certificate actions need the replica program's live TLS controls "
                f"({CAP_TLS}), which the {cluster.state.backend} backend here lacks"
            )
        self.cluster = cluster
        self.note = note
        self.finding = finding
        st = cluster.state
        pki = StateFolder(Path(st.state_dir)).pki
        self.folder = pki / ROTATION_DIR
        self.replicas = [r for r, rs in st.replicas.items() if rs.status != "external"]
        self.files = dict(st.tls)  # the clients' ca, cert, key
        self.original = {k: Path(self.files[k]).read_bytes() for k in ("ca", "cert")}
        old = self.folder / OLD
        old.mkdir(parents=True, exist_ok=True)
        for name in (CA_CERT, CA_KEY):  # the cluster's CA, to issue from
            shutil.copy2(pki / name, old / name)
        self.cas: dict[str, CertificateAuthority] = {OLD: CertificateAuthority.load(old)}
        self.trusted: dict[str, bytes] = {OLD: self.original["ca"]}  # CA -> certificate
        self.changed = False
        self._serial = 0  # numbers the files written, so no name is used twice
        self.figures: list[dict[str, Any]] = []

    # ---- actions ---------------------------------------------------------------------

    def new_ca(self) -> None:
        """A new CA (its own name and key), trusted by nobody yet."""
        run_id = self.cluster.state.run_id
        ca = CertificateAuthority(self.folder / NEW, f"{run_id} (new)")
        self.cas[NEW] = ca
        self._record("new-ca", ca=_about(ca.certificate))

    def trust(self, cas: tuple[str, ...]) -> None:
        """Clients' CA file and replicas' trusted CAs: one bundle of `cas`."""
        chosen = {c: self.trusted.get(c) or self._pem(c) for c in cas}
        self.trusted = chosen
        self._distribute(b"".join(chosen.values()))
        self._record("trust", cas=list(cas), handshakes=self._handshakes())

    def rotate_server_certs(
        self, replicas: tuple[str, ...], ca: str, gap_s: float, hold: Callable[[float], None]
    ) -> None:
        """Each replica in turn serves a new certificate from `ca` (same names, new key
        and serial), live and without closing sessions; `gap_s` held between two. A
        replica that still serves another certificate is a `RotationError`."""
        served: dict[str, Any] = {}
        for i, r in enumerate(replicas):
            if i and gap_s:
                hold(gap_s)
            served[r] = self._rotate_one(r, ca)
        self._record("rotate-server-cert", ca=ca, replicas=served)

    def _rotate_one(self, replica: str, ca: str) -> dict[str, Any]:
        rs = self.cluster.state.replicas[replica]
        before, _ = served_certificate(self.cluster, replica)
        cn, ips, dns = replica_names(rs.cert)
        n = self._next()
        files = self._ca(ca).issue(f"{replica}-{n}", cn, server=True, addresses=ips, dns_names=dns)
        controls = self.cluster.controls(replica)
        cert = controls.install(files.cert, f"rotation-{n}.pem")
        key = controls.install(files.key, f"rotation-{n}.key")
        self._mark()
        self._set(replica, cert=cert, key=key)
        new = _certificate(Path(files.cert).read_bytes())
        after, why = served_certificate(self.cluster, replica)
        if after is None:
            raise RotationError(f"{replica} after its rotation: {why}")
        if fingerprint(after) != fingerprint(new):
            raise RotationError(
                f"{replica} still serves {_about(after)}, not the new certificate ({_about(new)})"
            )
        seen = client_handshake(self.cluster, replica)
        text = "passed" if seen.reason is None else f"failed: {seen.detail}"
        was = _about(before) if before is not None else "nothing readable"
        self.note(f"{replica} serves {_about(after)} (was {was}); a client's handshake {text}")
        return {
            "before": f"{before.serial_number:x}" if before is not None else None,
            "after": f"{after.serial_number:x}",
            "fingerprint": fingerprint(after),
            "handshake": seen.reason or "ok",
        }

    def rotate_client_cert(self, ca: str) -> None:
        """The clients' certificate reissued from `ca` for the same key pair, replaced
        in place (`state.tls["cert"]`)."""
        issuer = self._ca(ca)
        path = self.files["cert"]
        old = _certificate(Path(path).read_bytes())
        new = _reissue(old, issuer)
        self._mark()
        _replace(path, new.public_bytes(serialization.Encoding.PEM))
        self.note(f"client certificate {_about(old)} -> {_about(new)}")
        self._record(
            "rotate-client-cert",
            ca=ca,
            before=f"{old.serial_number:x}",
            after=f"{new.serial_number:x}",
            handshakes=self._handshakes(),
        )

    def expire_ca(self, ca: str) -> None:
        """The certificate of `ca` that clients and replicas trust becomes an expired
        copy of itself (same name and key); when every handshake then fails, that is
        stated as a finding."""
        now = dt.datetime.now(dt.UTC)
        current = _certificate(self.trusted.get(ca) or self._pem(ca))
        span = current.not_valid_after_utc - current.not_valid_before_utc
        expired = self._ca(ca).reissued(
            self.folder / f"{ca}-expired-{self._next()}",
            not_before=now - EXPIRED_FOR - span,
            not_after=now - EXPIRED_FOR,
        )
        self.trusted[ca] = expired.ca_path.read_bytes()
        self._distribute(b"".join(self.trusted.values()))
        seen = self._handshakes()
        ended = f"{now - EXPIRED_FOR:%Y-%m-%d %H:%M} UTC"
        self._record("expire-ca", ca=ca, ended=ended, handshakes=seen)
        failed = {r: why for r, why in seen.items() if why != "ok"}
        if failed and len(failed) == len(seen):
            reasons = ", ".join(sorted(set(failed.values())))
            self.finding(
                f"the {ca} CA that clients and replicas trust expired ({ended}): every "
                f"handshake with {', '.join(seen)} fails ({reasons}): a total outage, "
                "whatever the failover order, until the CA is renewed everywhere"
            )

    def restore(self) -> None:
        """Back to what the cluster started with, without a moment where clients and
        replicas disagree: everything trusted at once, then the original certificates,
        then the original CA file alone. A replica that is not running applies it when
        it starts again. A `RotationError` names what could not be restored."""
        if not self.changed:
            return
        errors: list[str] = []
        everything = {**self.trusted, OLD: self.original["ca"]}  # the old CA unexpired
        steps: list[tuple[str, Callable[[], None]]] = [
            ("trusting every CA", lambda: self._distribute(b"".join(everything.values()))),
            ("the replicas' own certificates", lambda: self._clear("cert", "key")),
            ("the client certificate", lambda: _replace(self.files["cert"], self.original["cert"])),
            ("the clients' CA file", lambda: _replace(self.files["ca"], self.original["ca"])),
            ("the replicas' CA", lambda: self._clear("ca")),
        ]
        for what, do in steps:
            try:
                do()
            except (OSError, WaitTimeout, RotationError) as e:
                errors.append(f"{what}: {e}")
        self.trusted = {OLD: self.original["ca"]}
        errors += self._check_restored()
        self._record("restore", errors=errors)
        if errors:
            raise RotationError("restore: " + "; ".join(errors))
        self.changed = False

    # ---- parts -----------------------------------------------------------------------

    def _check_restored(self) -> list[str]:
        errors = []
        for r in self.replicas:
            if not self.cluster.replica_running(r):
                continue
            own = _certificate(Path(self.cluster.state.replicas[r].cert).read_bytes())
            served, why = served_certificate(self.cluster, r)
            if served is None:
                errors.append(why)
            elif fingerprint(served) != fingerprint(own):
                errors.append(f"{r} serves {_about(served)}, not its own {_about(own)}")
            else:
                seen = client_handshake(self.cluster, r)
                if seen.reason is not None:
                    errors.append(f"a client's handshake with {r} fails: {seen.detail}")
        return errors

    def _ca(self, ca: str) -> CertificateAuthority:
        if ca not in self.cas:
            raise RotationError(f"no {ca} CA: a new-ca action must come first")
        return self.cas[ca]

    def _pem(self, ca: str) -> bytes:
        return self._ca(ca).ca_path.read_bytes()

    def _distribute(self, bundle: bytes) -> None:
        """`bundle` becomes what replicas trust for client certificates, then the
        clients' CA file."""
        self._mark()
        name = f"rotation-{self._next()}-ca.pem"
        src = self.folder / name
        src.write_bytes(bundle)
        for r in self.replicas:
            self.cluster.controls(r).install(src, name)
            self._set(r, ca=name)
        _replace(self.files["ca"], bundle)

    def _set(self, replica: str, **fields: Any) -> None:
        """Set controls, waiting for a running replica to apply them (no session is
        closed: a graceful reload); a stopped one reads them when it starts again."""
        controls = self.cluster.controls(replica)
        try:
            controls.set(**fields)
        except WaitTimeout:
            if self.cluster.replica_running(replica):
                raise
            self.note(f"{replica} is not running: it applies {', '.join(fields)} at its start")

    def _clear(self, *names: str) -> None:
        for r in self.replicas:
            controls = self.cluster.controls(r)
            try:
                controls.clear(*names)
            except WaitTimeout:
                if self.cluster.replica_running(r):
                    raise

    def _handshakes(self) -> dict[str, str]:
        """Per running replica: "ok", or why a client's handshake failed."""
        out = {}
        for r in self.replicas:
            if self.cluster.replica_running(r):
                seen = client_handshake(self.cluster, r)
                out[r] = seen.reason or "ok"
        self.note("client handshakes: " + ", ".join(f"{r} {why}" for r, why in out.items()))
        return out

    def _mark(self) -> None:
        self.changed = True

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def _record(self, action: str, **what: Any) -> None:
        self.figures.append({"action": action, **what})


def _reissue(old: x509.Certificate, issuer: CertificateAuthority) -> x509.Certificate:
    """`old` (subject, key, extensions) signed by `issuer` anew, valid from now."""
    key = serialization.load_pem_private_key((issuer.directory / CA_KEY).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    start = dt.datetime.now(dt.UTC) - BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
    )
    for ext in old.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(key, hashes.SHA256())
