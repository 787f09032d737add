"""`cert-untrusted`: the replica serves a certificate for its own names signed by a CA
its clients do not trust (a rotated or foreign CA; live swap).

    client ──TLS, trusts CA 1──> replica serving [CN=kms-a, issuer: CA 2]
"""

from __future__ import annotations

from harness.faults.certificates import CertificateFault


class CertUntrusted(CertificateFault):
    kind = "cert-untrusted"
    position = 230
    summary = (
        "the replica serves a certificate for its names signed by a CA the clients do not "
        "trust (swapped live; open sessions closed)"
    )
    proof = "a handshake reads that certificate; a verifying client's handshake fails"
    expected_reason = "unknown CA"
    what = "a certificate of an untrusted CA"
    foreign_issuer = True
