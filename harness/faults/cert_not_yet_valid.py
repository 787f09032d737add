"""`cert-not-yet-valid`: the replica serves a certificate of the right CA whose validity
starts tomorrow (live swap) — what a server shows after a renewal made on a clock ahead,
or to a client whose clock is behind.

    client ──TLS──> replica serving [CN=kms-a, valid from tomorrow]
"""

from __future__ import annotations

import datetime as dt

from harness.faults.certificates import CertificateFault, now, own_ca
from harness.pki import CertFiles


class CertNotYetValid(CertificateFault):
    kind = "cert-not-yet-valid"
    position = 210
    summary = (
        "the replica serves a certificate of the right CA valid from tomorrow (swapped "
        "live: new handshakes)"
    )
    proof = "a handshake reads that certificate; a verifying client's handshake fails"
    expected_reason = "not yet valid"
    what = "a certificate that is not valid yet"

    def _issue(self, stem: str, cn: str, ips: tuple[str, ...], dns: tuple[str, ...]) -> CertFiles:
        t = now()
        return own_ca(self.cluster.state.state_dir).issue(
            stem,
            cn,
            server=True,
            addresses=ips,
            dns_names=dns,
            not_before=t + dt.timedelta(days=1),
            not_after=t + dt.timedelta(days=30),
        )
