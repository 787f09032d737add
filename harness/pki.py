"""A throwaway certificate authority for one cluster.

The CA signs one server certificate per replica (SANs: every address a client may
use for it) and one client certificate. Certificates are valid from `BACKDATE` before
the cluster's start (so a replica whose clock is skewed back by less than that still
accepts them) for `VALIDITY` (so `kmschaos probe` of a fresh cluster finds no
certificate about to expire). The CA's key is kept (``ca.key``, 0600) so certificate
faults can issue more (`CertificateAuthority.load`). Every KMIP client of a cluster and the
harness's own checkers share the client identity `CLIENT_IDENTITY`: PyKMIP makes the
certificate's CN the owner of each object it creates and lets only the owner Get a
symmetric key, so one shared identity means "key not found" can never be confused
with "not allowed". Private keys are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_IDENTITY = "kmschaos-client"
BACKDATE = dt.timedelta(days=2)
VALIDITY = dt.timedelta(days=397)  # the CA/Browser Forum's maximum; past any warning
CA_CERT = "ca.pem"
CA_KEY = "ca.key"


@dataclass(frozen=True)
class CertFiles:
    ca: str
    cert: str
    key: str

    def to_dict(self) -> dict[str, str]:
        return {"ca": self.ca, "cert": self.cert, "key": self.key}


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class CertificateAuthority:
    """Issues certificates into `directory` (created 0700)."""

    def __init__(
        self,
        directory: Path,
        run_id: str,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        common_name: str | None = None,
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self._now = dt.datetime.now(dt.UTC) - BACKDATE
        self._key = key or ec.generate_private_key(ec.SECP256R1())
        cn = common_name or f"kmschaos CA {run_id}"
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self._name = name
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self._now)
            .not_valid_after(not_after or self._now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path = directory / CA_CERT
        _write_cert(self.ca_path, self._cert)
        _write_key(directory / CA_KEY, self._key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA made earlier in `directory` (its certificate and key), to issue more."""
        self = cls.__new__(cls)
        self.directory = directory
        self.ca_path = directory / CA_CERT
        self._cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self._key = key
        self._name = self._cert.subject
        self._now = dt.datetime.now(dt.UTC) - BACKDATE
        return self

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    def reissued(
        self, directory: Path, *, not_before: dt.datetime, not_after: dt.datetime
    ) -> CertificateAuthority:
        """The same CA (name and key: what it signed still chains to it) with another
        validity, written into `directory` — e.g. an expired copy of the CA."""
        cn = self._name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return CertificateAuthority(
            directory,
            "",
            not_before=not_before,
            not_after=not_after,
            key=self._key,
            common_name=str(cn),
        )

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        server: bool,
        addresses: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self._now)
            .not_valid_after(not_after or self._now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_path = self.directory / f"{stem}.pem"
        key_path = self.directory / f"{stem}.key"
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
        return CertFiles(ca=str(self.ca_path), cert=str(cert_path), key=str(key_path))
