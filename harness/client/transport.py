"""Connecting to one server, and naming what went wrong.

`connect_tls` opens TCP with the connect timeout, then TLS with the response timeout,
verifying the server certificate against the cluster CA and the address used.
`classify` turns an exception into an attempt outcome (see `harness.history`);
`refuses_version` tells a server's refusal of the request's KMIP protocol version from
every other KMIP failure.
`peer_identity` says who answered on a TLS socket: the subject CN of the certificate
the server showed and that certificate's sha256 fingerprint (recorded on every attempt
and audit snapshot, so a checker can tell when the server reached was not the one meant).

    client ──TCP (connect_timeout)──> listen ──TLS + KMIP (response_timeout)──> replica
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """Where a client reaches one replica (through its link). `server_name` is the name
    the server's certificate is checked against when it is not `host` (an external KMS
    reached through a link)."""

    replica: str
    host: str
    port: int
    server_name: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_dict(self) -> dict[str, object]:
        return {"replica": self.replica, "host": self.host, "port": self.port}


class AttemptError(Exception):
    """One attempt failed; `outcome` is its attempt outcome, `sent` whether a request
    may have reached the server (so a mutating operation's effect is unknown)."""

    def __init__(self, outcome: str, detail: str, sent: bool) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.sent = sent


FileVersion = tuple[int, int, int]  # st_mtime_ns, st_size, st_ino; zeros: no such file


def _versions(*paths: str) -> tuple[FileVersion, ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def client_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A client context trusting `ca` and presenting `cert`/`key`, built once per
    version of the three files (path, modification time, size, inode): a CA bundle or a
    client certificate replaced in place is used from the next connection on, as by
    PyKMIP's client, which reads the files at every open. Replace a file whole
    (`os.replace`), never rewrite it in place."""
    return _context_of(ca, cert, key, _versions(ca, cert, key))


@lru_cache(maxsize=64)
def _context_of(ca: str, cert: str, key: str, versions: tuple[FileVersion, ...]) -> ssl.SSLContext:
    del versions  # the cache key: another version of a file is another context
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.check_hostname = True
    return ctx


def connect_tls(
    ep: Endpoint,
    ca: str,
    cert: str,
    key: str,
    connect_timeout: float | None,
    response_timeout: float | None,
) -> ssl.SSLSocket:
    """Open a verified TLS connection or raise `AttemptError` (a timeout of None: none of
    the client's own; the OS decides)."""
    try:
        raw = socket.create_connection((ep.host, ep.port), timeout=connect_timeout)
    except BaseException as e:
        raise AttemptError(classify(e, phase="connect"), describe(e), sent=False) from e
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.settimeout(response_timeout)
        tls = client_context(ca, cert, key).wrap_socket(
            raw, server_hostname=ep.server_name or ep.host
        )
    except BaseException as e:
        raw.close()
        raise AttemptError(
            classify(e, phase="handshake"), describe(e, phase="handshake"), sent=False
        ) from e
    return tls


@dataclass(frozen=True)
class PeerIdentity:
    """Who answered on a TLS connection: the subject CN of the server's certificate
    (its whole subject, RFC 4514, when it has no CN) and the certificate's sha256
    fingerprint (hex). Both None when no certificate could be read."""

    name: str | None = None
    fingerprint: str | None = None


def peer_identity(sock: Any) -> PeerIdentity:
    """The identity the server showed on `sock` (an `ssl.SSLSocket` after its
    handshake); an empty `PeerIdentity` when there is none (not TLS, no handshake yet,
    closed). Never raises: the identity is evidence, not a reason to fail an attempt."""
    try:
        der = sock.getpeercert(binary_form=True)
    except (AttributeError, OSError, ValueError):
        return PeerIdentity()
    if not der:
        return PeerIdentity()
    return PeerIdentity(certificate_name(der), hashlib.sha256(der).hexdigest())


def certificate_name(der: bytes) -> str | None:
    """The subject CN of a DER certificate (the subject as RFC 4514 without a CN)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return cert.subject.rfc4514_string() or None


# What a server says when it does not speak the request header's protocol version:
# PyKMIP's server "KMIP 1.1 is not supported by the server." (engine.py
# `_set_protocol_version`, Result Reason Invalid Message, as KMIP's error handling asks
# for a protocol version it does not support), and the wordings other servers use. Not
# PyKMIP's "DiscoverVersions is not supported by KMIP 1.0" (an operation the version
# lacks: `kmip-error`).
VERSION_REFUSALS = (
    re.compile(r"\bKMIP \d+\.\d+ is not supported\b"),
    re.compile(r"\bversion\b.{0,40}\b(not supported|unsupported|mismatch)", re.IGNORECASE),
    re.compile(r"\bunsupported (KMIP |protocol )*version\b", re.IGNORECASE),
)


def kmip_failure(e: BaseException) -> tuple[str, str] | None:
    """(Result Reason, Result Message) of a KMIP failure the server answered with: PyKMIP's
    client raises `KmipOperationFailure` (most operations) or `OperationFailure` (those
    sent with `send_request_payload`, e.g. Modify Attribute); None for anything else."""
    from kmip.core.exceptions import OperationFailure
    from kmip.pie.exceptions import KmipOperationFailure

    if isinstance(e, KmipOperationFailure):
        return _enum_name(e.reason), str(e.message)
    if isinstance(e, OperationFailure):
        return _enum_name(e.reason), str(e.args[0] if e.args else "")
    return None


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def refuses_version(e: BaseException) -> bool:
    """Whether `e` is a server's answer that it does not speak the request's KMIP
    protocol version (attempt outcome `version-refused`)."""
    failure = kmip_failure(e)
    if failure is None:
        return False
    message = failure[1]
    return any(p.search(message) for p in VERSION_REFUSALS)


def classify(e: BaseException, phase: str) -> str:
    """The attempt outcome for exception `e` raised during `phase`
    (connect | handshake | request)."""
    from kmip.pie.exceptions import KmipOperationFailure

    if refuses_version(e):
        return "version-refused"
    if isinstance(e, KmipOperationFailure):
        return "kmip-error"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, socket.timeout | TimeoutError):
        return "connect-timeout" if phase == "connect" else "timeout"
    if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "reset"
    if isinstance(e, EOFError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return "eof"
    if isinstance(e, ssl.SSLError):
        text = str(e)
        if "UNEXPECTED_EOF" in text or "EOF occurred" in text:
            return "eof"
        if "reset" in text.lower():
            return "reset"
        return "tls-error"
    if isinstance(e, OSError) and "closed" in str(e).lower():
        return "eof"
    return "error"


# Why a TLS handshake failed, as an attempt's detail starts (`tls_reason`)
TLS_REASONS = (
    "expired",
    "not yet valid",
    "hostname mismatch",
    "unknown CA",
    "alert received",
    "handshake timeout",
)
# OpenSSL's X509_V_ERR_* codes behind each verification reason (also `kmschaos probe`'s)
VERIFY_REASONS = {
    10: "expired",  # CERT_HAS_EXPIRED
    9: "not yet valid",  # CERT_NOT_YET_VALID
    62: "hostname mismatch",  # HOSTNAME_MISMATCH
    64: "hostname mismatch",  # IP_ADDRESS_MISMATCH
    2: "unknown CA",  # UNABLE_TO_GET_ISSUER_CERT
    18: "unknown CA",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "unknown CA",  # SELF_SIGNED_CERT_IN_CHAIN
    20: "unknown CA",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "unknown CA",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
}


def tls_reason(e: BaseException, phase: str = "") -> str | None:
    """Why a TLS handshake failed (one of `TLS_REASONS`, an alert's name after "alert
    received"), or None when `e` is no TLS failure."""
    if isinstance(e, ssl.SSLCertVerificationError):
        reason = VERIFY_REASONS.get(e.verify_code)
        if reason:
            return reason
        return e.verify_message or "certificate verify failed"
    if phase == "handshake" and isinstance(e, socket.timeout | TimeoutError):
        return "handshake timeout"
    if isinstance(e, ssl.SSLError) and "ALERT" in str(e.reason or "").upper():
        alert = str(e.reason).split("ALERT_", 1)[-1].lower().replace("_", " ")
        return f"alert received ({alert})"
    return None


def describe(e: BaseException, phase: str = "") -> str:
    """An attempt's detail: the exception, after the TLS reason when there is one
    (``expired: SSLCertVerificationError: ...``)."""
    text = str(e) or type(e).__name__
    reason = tls_reason(e, phase)
    head = f"{reason}: " if reason else ""
    return f"{head}{type(e).__name__}: {text}"[:300]
