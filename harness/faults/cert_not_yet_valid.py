"""`cert-not-yet-valid`: the replica serves a certificate of the right CA whose validity
starts tomorrow (live swap) — what a server shows after a renewal made on a clock ahead,
or to a client whose clock is behind.

    client ──TLS──> replica serving [CN=kms-a, valid from tomorrow]
"""

from __future__ import annotations

import datetime as dt

from harness.faults.certificates import CertificateFault


class CertNotYetValid(CertificateFault):
    kind = "cert-not-yet-valid"
    position = 210
    summary = (
        "the replica serves a certificate of the right CA valid from tomorrow (swapped "
        "live; open sessions closed)"
    )
    proof = "a handshake reads that certificate; a verifying client's handshake fails"
    expected_reason = "not yet valid"
    what = "a certificate that is not valid yet"
    valid_from = dt.timedelta(days=1)
    valid_to = dt.timedelta(days=30)
