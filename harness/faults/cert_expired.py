"""`cert-expired`: the replica serves a certificate whose validity ended, signed by the
cluster's own CA (live swap: new handshakes get it).

    client ──TLS──> replica serving [CN=kms-a, valid until yesterday]

A client that verifies the chain refuses it ("certificate has expired"). What a real
client does next (fail, or try the next server) is its policy's finding.
"""

from __future__ import annotations

import datetime as dt

from harness.faults.certificates import CertificateFault


class CertExpired(CertificateFault):
    kind = "cert-expired"
    position = 200
    summary = (
        "the replica serves a certificate of the right CA whose validity ended yesterday "
        "(swapped live; open sessions closed)"
    )
    proof = "a handshake reads the expired certificate; a verifying client's handshake fails"
    expected_reason = "expired"
    what = "an expired certificate"
    valid_from = -dt.timedelta(days=30)
    valid_to = -dt.timedelta(days=1)
