"""The facts of a certificate a person acts on, and whether its validity is a problem
now: shared by `kmschaos probe` (the chains servers present, the client certificate)
and the linter (the TLS files a topology names). No network."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

Severity = Literal["error", "warning"]

DAY_S = 86400.0


class ProbeSetupError(ValueError):
    """A TLS file cannot be used (missing, not PEM, a key that does not fit its
    certificate); the message names the file. Nothing was contacted."""


@dataclass(frozen=True)
class Certificate:
    """The facts of one certificate a person acts on. `presented`: the server sent it
    (else it is the trust anchor from the CA file that verified the chain)."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str
    presented: bool = True

    @classmethod
    def of(cls, cert: x509.Certificate, presented: bool = True) -> Certificate:
        der = cert.public_bytes(Encoding.DER)
        return cls(
            name_of(cert.subject),
            name_of(cert.issuer),
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            hashlib.sha256(der).hexdigest(),
            presented,
        )

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / DAY_S

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left(now), 3),
            "presented": self.presented,
            "sha256": self.sha256,
        }


def name_of(name: x509.Name) -> str:
    """``CN=...`` when the name has a common name, else the whole name (RFC 4514)."""
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return f"CN={value if isinstance(value, str) else value.decode(errors='replace')}"
    return name.rfc4514_string() or "(empty name)"


def read_certificates(path: str) -> list[x509.Certificate]:
    """The PEM certificates in a file; `ProbeSetupError` naming it when there are none."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ProbeSetupError(f"{path}: file not found") from None
    except OSError as e:
        raise ProbeSetupError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ProbeSetupError(f"{path}: not a PEM certificate file") from None


def expiry_problem(
    cert: Certificate, now: datetime, error_days: float, warn_days: float
) -> tuple[Severity, str] | None:
    """Whether a certificate's validity is a problem now: (severity, what), or None.
    Expired or not yet valid: error; expiring in under `error_days`: error; in under
    `warn_days`: warning. Shared by `kmschaos probe` and the linter."""
    left = cert.days_left(now)
    until = cert.not_after.strftime("%Y-%m-%d %H:%M UTC")
    if left < 0:
        return "error", f"expired {days_text(-left)} ago ({until})"
    if cert.not_before > now:
        start = cert.not_before.strftime("%Y-%m-%d %H:%M UTC")
        ahead = (cert.not_before - now).total_seconds() / DAY_S
        return "error", f"not valid until {start} ({days_text(ahead)} from now)"
    if left < error_days:
        return "error", f"expires in {days_text(left)} ({until}; under {error_days:g} days)"
    if left < warn_days:
        return "warning", f"expires in {days_text(left)} ({until}; under {warn_days:g} days)"
    return None


def days_text(d: float) -> str:
    """Days with one decimal, rounded down (29.996 days left is not yet 30)."""
    return f"{math.floor(d * 10) / 10:.1f} days"
