"""`cert-wrong-name`: the replica serves a valid certificate of the right CA for another
name (CN and SAN ``wrong-name.invalid``), as after a certificate was installed on the
wrong host (live swap).

    client ──TLS, checks "127.0.3.1"──> replica serving [CN=wrong-name.invalid]

Only a client that checks the server's name notices.
"""

from __future__ import annotations

from harness.faults.base import SERVES_AS
from harness.faults.certificates import CertificateFault, own_ca
from harness.pki import CertFiles

WRONG_NAME = "wrong-name.invalid"


class CertWrongName(CertificateFault):
    kind = "cert-wrong-name"
    position = 220
    summary = (
        f"the replica serves a valid certificate of the right CA for `{WRONG_NAME}` "
        "(swapped live; open sessions closed)"
    )
    proof = "a handshake reads that certificate; a client checking the name fails"
    expected_reason = "hostname mismatch"
    what = f"a certificate for {WRONG_NAME}"
    noticed_only_if = "checks_server_name"
    unnoticed_because = "does not check the server's name"

    def recorded_facts(self) -> dict[str, str]:
        # its target answering as WRONG_NAME is the fault, not a wrong server
        return {SERVES_AS: WRONG_NAME}

    def _issue(self, stem: str, cn: str, ips: tuple[str, ...], dns: tuple[str, ...]) -> CertFiles:
        return own_ca(self.cluster.state.state_dir).issue(
            stem, WRONG_NAME, server=True, dns_names=(WRONG_NAME,)
        )
