"""Probes of what a replica's TLS and clock look like to a client, for the faults that
act on them (certificates, stalled handshakes, idle reaping, clock skew).

    harness ──TLS, no verification──> replica   which certificate does it serve?
    harness ──TLS, as clients verify─> replica   does a client's handshake pass? why not?
    harness ──KMIP Discover Versions─> replica   the response header's time stamp

Each goes to the replica's direct address (the fault is in the replica, not on a link),
with the cluster's client identity, and never raises for a network outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import struct
import time
from dataclasses import dataclass

from cryptography import x509

from harness.client.transport import (
    AttemptError,
    Endpoint,
    connect_tls,
    describe,
    tls_reason,
)
from harness.cluster.base import Cluster
from harness.faults.probes import CONTROL_TIMEOUT_S, _probe_context
from harness.lb.haproxy import KMIP_CHECK_REQUEST

KMIP_HEADER = 8  # tag (3), type (1), length (4)


def _direct(cluster: Cluster, replica: str) -> tuple[str, int]:
    rs = cluster.state.replicas[replica]
    return rs.host, rs.port


def served_certificate(
    cluster: Cluster, replica: str, timeout_s: float = CONTROL_TIMEOUT_S
) -> tuple[x509.Certificate | None, str]:
    """The certificate the replica serves to a new handshake (read without verifying
    it), or None and why none could be read."""
    host, port = _direct(cluster, replica)
    tls = cluster.state.tls
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            raw.settimeout(timeout_s)
            ctx = _probe_context(tls.get("cert", ""), tls.get("key", ""))
            with ctx.wrap_socket(raw, server_hostname=host) as conn:
                der = conn.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        return None, f"no certificate read from {replica} ({host}:{port}): {describe(e)}"
    if not der:
        return None, f"{replica} ({host}:{port}) showed no certificate"
    return x509.load_der_x509_certificate(der), ""


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class Handshake:
    """A client's verified handshake with a replica: None reason when it passed."""

    reason: str | None
    detail: str
    seconds: float


def client_handshake(
    cluster: Cluster, replica: str, timeout_s: float = CONTROL_TIMEOUT_S
) -> Handshake:
    """A handshake as the harness's clients make it (the cluster CA, the replica's
    address as the name to check, the client certificate), then one read: a server that
    rejects the client's certificate says so in an alert during or right after the
    handshake."""
    host, port = _direct(cluster, replica)
    tls = cluster.state.tls
    t0 = time.monotonic()
    try:
        conn = connect_tls(
            Endpoint(replica, host, port), tls["ca"], tls["cert"], tls["key"], timeout_s, timeout_s
        )
    except AttemptError as e:
        cause = e.__cause__ or e
        reason = tls_reason(cause, "handshake") or e.outcome
        return Handshake(reason, e.detail, time.monotonic() - t0)
    with conn:
        try:
            _discover_versions(conn)
        except (OSError, ssl.SSLError, EOFError) as e:
            reason = tls_reason(e) or "closed after the handshake"
            return Handshake(reason, describe(e), time.monotonic() - t0)
    return Handshake(None, "handshake and a KMIP request passed", time.monotonic() - t0)


def _discover_versions(conn: ssl.SSLSocket) -> bytes:
    """Send a KMIP 1.2 Discover Versions request (the one balancers' kmip check sends);
    the raw response."""
    conn.sendall(KMIP_CHECK_REQUEST)
    head = _read(conn, KMIP_HEADER)
    return head + _read(conn, struct.unpack("!I", head[4:])[0])


def _read(conn: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def server_time(
    cluster: Cluster, replica: str, timeout_s: float = CONTROL_TIMEOUT_S
) -> tuple[float | None, str]:
    """The replica's clock offset against this host in seconds (its KMIP response
    header's time stamp minus the middle of the request), or None and why. The time
    stamp has a resolution of one second: the offset is good to ±1 s."""
    from kmip.core import utils
    from kmip.core.messages import messages

    host, port = _direct(cluster, replica)
    tls = cluster.state.tls
    try:
        conn = connect_tls(
            Endpoint(replica, host, port), tls["ca"], tls["cert"], tls["key"], timeout_s, timeout_s
        )
    except AttemptError as e:
        return None, f"no KMIP session with {replica}: {e.detail}"
    with conn:
        try:
            before = time.time()
            raw = _discover_versions(conn)
            after = time.time()
        except (OSError, ssl.SSLError, EOFError) as e:
            return None, f"{replica} did not answer a Discover Versions: {describe(e)}"
    response = messages.ResponseMessage()
    with contextlib.suppress(Exception):
        response.read(utils.BytearrayStream(raw))
    stamp = getattr(getattr(response.response_header, "time_stamp", None), "value", None)
    if stamp is None:
        return None, f"{replica}'s response carried no time stamp"
    # the stamp is whole seconds, truncated: its middle is half a second later
    return float(stamp) + 0.5 - (before + after) / 2, ""
