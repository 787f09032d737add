"""One probe of one server: TCP, a verified TLS handshake (and, when verification
fails, an unverified one that still presents the client certificate), then Discover
Versions and Query in one KMIP request — read from the response: the versions, the
vendor, the round trip and the server's time stamp.

    probe ──TCP──> HOST:PORT ──TLS (client certificate)──> Discover Versions + Query ──> KMS

TLS runs over memory BIOs (`_Channel`), so the bytes a server that is not a TLS server
sends back (an HTTP status line, an HTML page, a banner) can be named.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509

from harness.client.transport import VERIFY_REASONS  # OpenSSL verify code -> reason
from harness.pki import CertFiles
from harness.probe.certificates import Certificate, ProbeSetupError, read_certificates
from harness.probe.targets import Target

T = TypeVar("T")

TIMEOUT_S = 5.0

# alerts a server sends when it will not take the client's certificate
_CERT_ALERTS = (
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_REQUIRED",
    "ACCESS_DENIED",
)
_TLS_RECORD_TYPES = (0x14, 0x15, 0x16, 0x17)


def duration_text(s: float) -> str:
    """Seconds as a person reads them: ``0.4 s``, ``3 min 5 s``, ``2 h 0 min``."""
    if s < 120:
        return f"{s:.1f} s"
    h, rest = divmod(round(s), 3600)
    return f"{h} h {rest // 60} min" if h else f"{rest // 60} min {rest % 60} s"


@dataclass(frozen=True)
class Clock:
    """The server's time stamp (whole seconds, as KMIP sends it) and this host's clock
    just before the request was sent and just after the answer arrived. The server
    stamped its answer at some instant of [stamp, stamp + 1) of its clock, read while
    this host's clock was within [sent, received]: the offset (server minus local) lies
    in [low, high], reported as its midpoint ± half its width (about ±0.5 s plus half the
    round trip). Assumes the stamp is truncated to the second, as PyKMIP does."""

    stamp: int
    sent: float
    received: float

    @property
    def low(self) -> float:
        return self.stamp - self.received

    @property
    def high(self) -> float:
        return self.stamp + 1 - self.sent

    @property
    def offset_s(self) -> float:
        return (self.low + self.high) / 2

    @property
    def uncertainty_s(self) -> float:
        return (self.high - self.low) / 2

    def text(self) -> str:
        """``+0.2 s ±0.5 s``, or ``+2 h 0 min ±0.5 s`` for a large offset."""
        sign = "-" if self.offset_s < 0 else "+"
        return f"{sign}{duration_text(abs(self.offset_s))} ±{self.uncertainty_s:.1f} s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "offset_s": round(self.offset_s, 3),
            "uncertainty_s": round(self.uncertainty_s, 3),
            "low_s": round(self.low, 3),
            "high_s": round(self.high, 3),
            "server_time": datetime.fromtimestamp(self.stamp, UTC).isoformat(),
        }


@dataclass
class Probe:
    """What one target showed. `failure` is set (one line) when no TLS server answered:
    nothing else is known then. `verify_error` is "" when the chain verified; otherwise
    the chain and the KMIP facts come from the unverified second handshake.
    `client_accepted` is None when it could not be told."""

    target: Target
    failure: str = ""
    chain: list[Certificate] = field(default_factory=list)
    verify_error: str = ""
    tls_version: str = ""
    cipher: str = ""
    client_accepted: bool | None = None
    client_error: str = ""
    tls_error: str = ""
    versions: list[str] = field(default_factory=list)
    vendor: str = ""
    kmip_error: str = ""
    rtt_ms: float | None = None
    clock: Clock | None = None
    took_s: float = 0.0

    @property
    def verified(self) -> bool:
        """The server's chain verified against the CA file and the name."""
        return bool(self.chain) and not self.verify_error

    def to_dict(self, now: datetime) -> dict[str, Any]:
        t = self.target
        return {
            "target": t.name,
            "address": t.address,
            "server_name": t.check_name,
            "via": t.via,
            "probed": not self.failure,
            "failure": self.failure or None,
            "tls": {
                "version": self.tls_version or None,
                "cipher": self.cipher or None,
                "verified": self.verified,
                "verify_error": self.verify_error or None,
                "error": self.tls_error or None,
            },
            "chain": [c.to_dict(now) for c in self.chain],
            "client_certificate": {
                "accepted": self.client_accepted,
                "error": self.client_error or None,
            },
            "kmip": {
                "versions": self.versions,
                "vendor": self.vendor or None,
                "error": self.kmip_error or None,
            },
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "clock": self.clock.to_dict() if self.clock else None,
            "took_s": round(self.took_s, 3),
        }


class _NotTls(Exception):
    """The peer is not a TLS server (or said nothing); the message says what it did."""


class _Channel:
    """TLS over a connected socket through memory BIOs: `sendall`/`recv` as
    `KMIPProtocol` needs them, and the first bytes the server sent (`received`), so a
    handshake that fails on a non-TLS answer can name that answer."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_name: str) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._in, self._out, server_hostname=server_name)
        self.received = b""
        self.eof = False

    def _run(self, op: Callable[[], T]) -> T:
        while True:
            try:
                result = op()
            except ssl.SSLWantReadError:
                self._flush()
                if self.eof:
                    raise EOFError("the server closed the connection") from None
                data = self.sock.recv(16384)
                if not data:
                    self.eof = True
                    self._in.write_eof()
                else:
                    if len(self.received) < 256:
                        self.received += data[: 256 - len(self.received)]
                    self._in.write(data)
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def handshake(self) -> None:
        self._run(self.tls.do_handshake)

    def sendall(self, data: bytes) -> None:
        self._run(lambda: self.tls.write(data))

    def recv(self, n: int) -> bytes:
        try:
            return self._run(lambda: self.tls.read(n))
        except (ssl.SSLZeroReturnError, EOFError):
            return b""

    def chain(self) -> tuple[list[bytes], list[bytes]]:
        """The DER certificates the server presented, and the verified chain (empty
        when not verified)."""
        inner: Any = getattr(self.tls, "_sslobj", self.tls)
        out: list[list[bytes]] = []
        for name in ("get_unverified_chain", "get_verified_chain"):
            get = getattr(inner, name, None)
            try:
                certs = get() if get is not None else None
            except (ssl.SSLError, ValueError):
                certs = None
            # Python < 3.13: _ssl.Certificate objects; 2 is _ssl.ENCODING_DER
            out.append([c if isinstance(c, bytes) else c.public_bytes(2) for c in certs or []])
        presented, verified = out
        if not presented:
            try:
                der = self.tls.getpeercert(binary_form=True)
            except (ValueError, ssl.SSLError):
                der = None
            presented = [der] if der else []
        return presented, verified


def contexts(tls: CertFiles) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(verifying, not verifying) client contexts, both presenting the client
    certificate; `ProbeSetupError` naming the file that cannot be used."""
    read_certificates(tls.ca)
    read_certificates(tls.cert)
    made = []
    for verify in (True, False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            try:
                ctx.load_verify_locations(tls.ca)
            except (ssl.SSLError, OSError) as e:
                raise ProbeSetupError(f"{tls.ca}: cannot be used as a CA file ({e})") from None
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            ctx.load_cert_chain(tls.cert, tls.key)
        except FileNotFoundError:
            raise ProbeSetupError(f"{tls.key}: file not found") from None
        except (ssl.SSLError, OSError) as e:
            raise ProbeSetupError(
                f"{tls.cert} with {tls.key}: cannot be used as a client certificate and its "
                f"key ({getattr(e, 'reason', None) or e})"
            ) from None
        made.append(ctx)
    return made[0], made[1]


def probe(
    target: Target,
    timeout_s: float = TIMEOUT_S,
    ctxs: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
) -> Probe:
    """Probe one target (with its `contexts`, made here unless given); never raises for
    anything the network or the server does."""
    t0 = time.monotonic()
    p = Probe(target)
    verifying, trusting = ctxs or contexts(target.tls)
    try:
        _probe(p, verifying, trusting, timeout_s)
    except _NotTls as e:
        p.failure = f"{target.address}: {e}"
    except Exception as e:  # noqa: BLE001 - a server that breaks the probe is a finding
        p.failure = f"{target.address}: the probe failed: {type(e).__name__}: {e}"
    p.took_s = time.monotonic() - t0
    return p


def _probe(p: Probe, verifying: ssl.SSLContext, trusting: ssl.SSLContext, timeout: float) -> None:
    t = p.target
    ch, error = _handshake(t, verifying, timeout)
    if isinstance(error, ssl.SSLCertVerificationError):
        p.verify_error = _verify_reason(error)
        ch, error = _handshake(t, trusting, timeout)
    presented, verified = ch.chain()
    p.chain = _chain(presented, verified)
    if error is not None:
        _failed_tls(p, error)
        return
    try:
        p.tls_version = ch.tls.version() or ""
        cipher = ch.tls.cipher()
        p.cipher = cipher[0] if cipher else ""
        _ask(p, ch, timeout)
    finally:
        ch.sock.close()


def _verify_reason(e: ssl.SSLCertVerificationError) -> str:
    """``expired (certificate has expired)``: the kind a person acts on, then OpenSSL's
    words (alone when they already start with the kind)."""
    kind = VERIFY_REASONS.get(e.verify_code, "not trusted")
    said = str(e.verify_message or e.reason or e).rstrip(".")
    if said.lower().startswith(kind.lower()):
        return said[0].lower() + said[1:]
    return f"{kind} ({said})"


def _handshake(
    t: Target, ctx: ssl.SSLContext, timeout: float
) -> tuple[_Channel, ssl.SSLError | None]:
    """A TLS channel after its handshake, or with the TLS error its handshake ended with
    (its socket closed; what the server presented can still be read); `_NotTls` when no
    TLS server answered."""
    try:
        infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise _NotTls(f"nothing reached: the name {t.host!r} does not resolve ({e})") from None
    try:
        sock = socket.create_connection((t.host, t.port), timeout=timeout)
    except ConnectionRefusedError:
        raise _NotTls("nothing reached: connection refused (no server listens there)") from None
    except TimeoutError:
        raise _NotTls(f"nothing reached: no TCP answer within {timeout:g} s") from None
    except OSError as e:
        addrs = ", ".join(sorted({str(i[4][0]) for i in infos}))
        raise _NotTls(f"nothing reached at {addrs}: {e.strerror or e}") from None
    ch = _Channel(sock, ctx, t.check_name)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ch.handshake()
    except ssl.SSLError as e:
        sock.close()
        if ch.received and ch.received[0] in _TLS_RECORD_TYPES:
            return ch, e
        raise _NotTls(_not_tls(ch.received, "closed")) from None
    except (EOFError, OSError) as e:
        sock.close()
        if isinstance(e, TimeoutError):
            said = "the TLS handshake stalled" if ch.received else "no answer to the TLS hello"
            raise _NotTls(f"TCP connected, but {said} within {timeout:g} s") from None
        how = "reset" if isinstance(e, ConnectionResetError) else "closed"
        raise _NotTls(_not_tls(ch.received, how)) from None
    return ch, None


def _not_tls(received: bytes, how: str) -> str:
    """What a server that broke off a TLS hello did, from the bytes it sent."""
    first = received.split(b"\n", 1)[0].decode("latin-1").strip()
    if received.startswith(b"HTTP/"):
        said = f"'{first}'"
    elif received.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        said = f"an HTML page ('{first[:40]}')"  # an HTTP/0.9-style answer: no status line
    else:
        said = ""
    if said:
        return (
            f"TCP connected, and the server answered the TLS hello with {said}: an HTTP "
            "server, not KMIP over TLS"
        )
    if received and received[0] not in _TLS_RECORD_TYPES:
        return (
            "TCP connected, and the server answered the TLS hello with bytes that are not "
            f"TLS ({received[:24]!r}): not a TLS server"
        )
    said = "after part of a TLS answer" if received else "without answering the TLS hello"
    return (
        f"TCP connected, then the server {how} the connection {said} (not a TLS server, "
        "or it drops this client)"
    )


def _failed_tls(p: Probe, e: ssl.SSLError) -> None:
    """Record a TLS error in the handshake or on the first read: an alert saying the
    server will not take the client certificate (`client_accepted` False), or another
    TLS failure (`tls_error`)."""
    reason = str(e.reason or "")
    if "ALERT" in reason:
        alert = reason.split("ALERT_", 1)[-1].lower().replace("_", " ")
        if any(a in reason for a in _CERT_ALERTS):
            p.client_accepted = False
            p.client_error = f"the server refused the client certificate (TLS alert: {alert})"
        else:
            p.tls_error = f"the server ended the TLS session (TLS alert: {alert})"
    else:
        p.tls_error = f"TLS failed: {e}"


def _chain(presented: list[bytes], verified: list[bytes]) -> list[Certificate]:
    """The presented certificates in order, then those of the verified chain the server
    did not send (the trust anchor from the CA file)."""
    seen = {hashlib.sha256(d).hexdigest() for d in presented}
    out = [Certificate.of(x509.load_der_x509_certificate(d)) for d in presented]
    for d in verified:
        if hashlib.sha256(d).hexdigest() not in seen:
            out.append(Certificate.of(x509.load_der_x509_certificate(d), presented=False))
    return out


def _ask(p: Probe, ch: _Channel, timeout: float) -> None:
    """Discover Versions and Query (server information) in one KMIP request: the
    versions, the vendor, the round trip and the clock."""
    from kmip.core import enums
    from kmip.core.messages import contents, messages, payloads
    from kmip.core.utils import BytearrayStream
    from kmip.services.kmip_protocol import KMIPProtocol

    version = enums.KMIPVersion.KMIP_1_2
    items = [
        messages.RequestBatchItem(
            unique_batch_item_id=contents.UniqueBatchItemID(b"\x01"),
            operation=contents.Operation(enums.Operation.DISCOVER_VERSIONS),
            request_payload=payloads.DiscoverVersionsRequestPayload(),
        ),
        messages.RequestBatchItem(
            unique_batch_item_id=contents.UniqueBatchItemID(b"\x02"),
            operation=contents.Operation(enums.Operation.QUERY),
            request_payload=payloads.QueryRequestPayload(
                [enums.QueryFunction.QUERY_SERVER_INFORMATION]
            ),
        ),
    ]
    header = messages.RequestHeader(
        protocol_version=contents.ProtocolVersion(1, 2),
        batch_count=contents.BatchCount(len(items)),
    )
    stream = BytearrayStream()
    messages.RequestMessage(request_header=header, batch_items=items).write(stream, version)
    ch.sock.settimeout(timeout)
    sent_mono, sent = time.monotonic(), time.time()
    try:
        ch.sendall(bytes(stream.buffer))
        data = KMIPProtocol(ch).read()
    except ssl.SSLError as e:  # TLS 1.3: a refused client certificate shows on the first read
        _failed_tls(p, e)
        return
    except TimeoutError:
        p.kmip_error = f"no answer to a KMIP request within {timeout:g} s"
        return
    except Exception as e:  # noqa: BLE001 - EOF, a short read, a reset: what the server did
        p.kmip_error = (
            "the server closed the connection instead of answering a KMIP request (it "
            f"refused this client, or it is not a KMIP server): {type(e).__name__}: {e}"
        )
        return
    received, received_mono = time.time(), time.monotonic()
    p.rtt_ms = (received_mono - sent_mono) * 1000
    p.client_accepted = True  # the server answered a request on this session
    response = messages.ResponseMessage()
    try:
        response.read(data, version)
    except Exception as e:  # noqa: BLE001 - whatever came back, it is not KMIP we can read
        p.kmip_error = f"the answer is not a KMIP response ({type(e).__name__}: {e})"
        return
    stamp = response.response_header.time_stamp
    if stamp is not None and stamp.value is not None:
        p.clock = Clock(int(stamp.value), sent, received)
    for item in response.batch_items:
        status = item.result_status.value if item.result_status else None
        if status != enums.ResultStatus.SUCCESS:
            op = item.operation.value.name if item.operation else "request"
            reason = item.result_reason.value.name if item.result_reason else "?"
            message = item.result_message.value if item.result_message else ""
            p.kmip_error = p.kmip_error or f"{op} failed: {reason} {message}".strip()
            continue
        payload = item.response_payload
        if item.operation.value == enums.Operation.DISCOVER_VERSIONS:
            p.versions = [f"{v.major}.{v.minor}" for v in payload.protocol_versions or []]
        elif item.operation.value == enums.Operation.QUERY:
            p.vendor = str(payload.vendor_identification or "")
