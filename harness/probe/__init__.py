"""What a KMIP server shows a client, read without creating anything (`kmschaos probe`).

    probe ──TCP──> HOST:PORT ──TLS (client certificate)──> Discover Versions + Query ──> KMS

Per target: the certificate chain the server presents (and the trust anchor that
verified it), the TLS version and cipher, whether the client certificate is accepted (a
KMIP request is answered after the handshake), the KMIP protocol versions (Discover
Versions) and vendor (Query), the round trip, and the server's clock against this host:
a KMIP response header carries the server's time stamp, in whole seconds.

The handshake is verified first (the CA file, the name the certificate must carry). When
verification fails, the probe says why (expired, not yet valid, hostname mismatch,
unknown CA) and handshakes again **without** verifying, still presenting the client
certificate, only to read the chain and ask Discover Versions and Query — requests that
create and reveal nothing. TLS runs over memory BIOs, so the bytes a server that is not
a TLS server sends back (an HTTP status line, garbage) can be named.

`probe` returns a `Probe` per target (network); `judge` turns one into findings (pure:
the thresholds and a `now`); `ProbeReport` is the whole answer, as JSON too. A target
that is not a TLS server at all (nothing listens, no TLS answer, a name that does not
resolve) has `failure`: one line saying what was reached and what failed.

The package: `targets` (what to probe), `certificates` (a certificate's facts and
expiry, also read by the linter), `session` (one probe over the network), `findings`
(judging, the report, `probe_all`).
"""

from __future__ import annotations

from harness.probe.certificates import (
    Certificate,
    ProbeSetupError,
    days_text,
    expiry_problem,
    name_of,
    read_certificates,
)
from harness.probe.findings import (
    ERROR_DAYS,
    MAX_OFFSET_S,
    WARN_DAYS,
    ProbeFinding,
    ProbeReport,
    Thresholds,
    judge,
    probe_all,
)
from harness.probe.session import TIMEOUT_S, Clock, Probe, contexts, probe
from harness.probe.targets import Target, cluster_targets, parse_target, topology_targets

__all__ = [
    "ERROR_DAYS",
    "MAX_OFFSET_S",
    "TIMEOUT_S",
    "WARN_DAYS",
    "Certificate",
    "Clock",
    "Probe",
    "ProbeFinding",
    "ProbeReport",
    "ProbeSetupError",
    "Target",
    "Thresholds",
    "cluster_targets",
    "contexts",
    "days_text",
    "expiry_problem",
    "judge",
    "name_of",
    "parse_target",
    "probe",
    "probe_all",
    "read_certificates",
    "topology_targets",
]
