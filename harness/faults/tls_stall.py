"""`tls-stall`: the replica closes its open sessions, then accepts TCP but answers no
TLS handshake (its accept loop runs, the session threads wait) — a TLS front end that
hangs after a restart.

    client ──TCP ok──> replica ──ClientHello… (no answer)

A client waits out its response timeout on every new connection.
"""

from __future__ import annotations

from harness.faults.certificates import TlsControlFault
from harness.faults.probes import Effect, direct_address, probe_timeout, tls_handshake


class TlsStall(TlsControlFault):
    kind = "tls-stall"
    position = 250
    summary = (
        "the replica accepts TCP but answers no TLS handshake; sessions already open keep working"
    )
    client_sees = "its open connection closed; then connect OK, no ServerHello"
    heals = "handshakes answered again (the waiting ones go on)"
    client_wait = "response"
    in_matrix = True
    control_keys = ("stall_handshake",)
    drops_sessions = True
    proof = "a handshake to the replica's own address connects and gets no answer"

    def _controls(self) -> dict[str, bool]:
        return {"stall_handshake": True}

    def observe(self) -> Effect:
        address = direct_address(self.cluster, self.target)
        seen = tls_handshake(
            f"a TLS handshake to {self.target}", address, self.cluster, probe_timeout(self.cluster)
        )
        if seen.outcome == "timeout" and not seen.bytes_in:
            return True, seen.words()
        return False, seen.words()
