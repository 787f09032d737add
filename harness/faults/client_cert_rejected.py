"""`client-cert-rejected`: the replica stops trusting the clients' CA (it trusts only a
foreign one), so it ends every new handshake with an alert (live swap; open sessions
are closed with it, as by a restart onto the new trust store).

    client [cert of CA 1] ──TLS──> replica trusting CA 2 only ──alert: unknown CA──>
"""

from __future__ import annotations

from harness.faults.certificates import TlsControlFault, foreign_ca
from harness.faults.probes import Effect
from harness.faults.tls_probes import client_handshake


class ClientCertRejected(TlsControlFault):
    kind = "client-cert-rejected"
    position = 240
    summary = (
        "the replica stops trusting the clients' CA: new handshakes end with an alert "
        "(swapped live; open sessions closed)"
    )
    client_sees = "its open connection closed; the next handshake fails at once (alert)"
    heals = "trust in the clients' CA restored (live, for new handshakes)"
    client_wait = "none"
    in_matrix = True
    control_keys = ("ca",)
    drops_sessions = True
    proof = "a client's handshake (or its first read) ends with an alert from the replica"

    def _controls(self) -> dict[str, str]:
        ca = foreign_ca(self.cluster.state.state_dir)
        return {"ca": self.controls.install(ca.ca_path, "trusted-ca.pem")}

    def observe(self) -> Effect:
        seen = client_handshake(self.cluster, self.target)
        if seen.reason is None:
            return False, f"a client's handshake with {self.target} passed: {seen.detail}"
        if seen.reason.startswith("alert received"):
            return True, f"{self.target} rejects the clients' certificate: {seen.detail}"
        return False, f"{self.target}'s handshake failed otherwise: {seen.detail}"
