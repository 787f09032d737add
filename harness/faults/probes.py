"""Probes: what the harness sees of a fault's effect, independently of the mechanism
that applied it (each fault's `observe`).

    harness ──TCP connect────────────> link listen     (refused? dropped? accepted?)
    harness ──TCP + TLS handshake────> link / direct   (answered? when? how many bytes?)
    harness ──POST /ping (HTTP)──────> replication link (the agent's answer; when?)

A probe touches only the cluster's own addresses (its loopback /24, or what the
topology names), costs at most its timeout, never raises for a network outcome, and
says in words what came back (`Seen.words`): "a TLS handshake through vc-a->kms-a
(127.0.3.1:40001) answered in 4 ms". The probe timeout comes from the cluster's
timeouts (`probe_timeout`): short, so that injecting stays fast, and still a hundred
times what a loopback answer takes.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from harness.cluster.base import CAP_RESETS, Cluster, ReplicaObservation
from harness.links import Link
from harness.topology import topology_from_dict

Effect = tuple[bool | None, str]  # what `Fault.observe` returns

Outcome = Literal[
    "connected",  # a TCP connect was accepted (a connect-only probe)
    "answered",  # the server sent bytes back (a TLS handshake, an alert, an HTTP reply)
    "refused",  # the connect was refused (RST to the SYN)
    "connect-timeout",  # no answer to the SYN within the timeout
    "timeout",  # connected, no answer within the timeout
    "eof",  # connected, then closed by the other side before any answer
    "reset",  # connected, then reset (RST) by the other side
    "error",  # anything else (`error` says what)
]

PROBE_TIMEOUT_MAX_S = 0.3
# A control (the direct address, another replica's link) is expected to answer: its wait
# is generous, so that a loaded machine is not taken for a dead replica, and costs
# nothing when it answers
CONTROL_TIMEOUT_S = 2.0
CLOSED: frozenset[str] = frozenset({"eof", "reset"})
PING = (
    b"POST /ping HTTP/1.1\r\nHost: kmschaos-probe\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
)


@dataclass(frozen=True)
class Seen:
    """What one probe saw: its outcome, how long it took from the first SYN, when the
    first byte came back (seconds after the connect) and how many bytes came back."""

    what: str  # "a TLS handshake through vc-a->kms-a (127.0.3.1:40001)"
    outcome: Outcome
    seconds: float
    first_byte_s: float | None = None
    bytes_in: int = 0
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome in ("answered", "connected")

    def words(self) -> str:
        """The probe and its outcome, as a sentence: "<what> answered in 4 ms"."""
        ms = f"{self.seconds * 1000:.0f} ms"
        said = {
            "connected": f"connected in {ms}",
            "answered": f"answered in {ms}",
            "refused": "was refused",
            "connect-timeout": f"got no answer to its SYN within {ms}",
            "timeout": f"got no answer within {ms}",
            "eof": f"was closed (EOF) after {ms}",
            "reset": f"was reset after {ms}",
            "error": f"failed after {ms} ({self.error})",
        }[self.outcome]
        return f"{self.what} {said}"


def probe_timeout(cluster: Cluster) -> float:
    """How long a probe waits for an answer: min(0.3 s, the response timeout / 4)."""
    topo = topology_from_dict(cluster.state.topology, cluster.state.topology_source)
    return min(PROBE_TIMEOUT_MAX_S, topo.response_timeout / 4)


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _connect(address: str, timeout_s: float) -> tuple[socket.socket | None, Outcome, str]:
    try:
        sock = socket.create_connection(_split(address), timeout=timeout_s)
    except ConnectionRefusedError:
        return None, "refused", ""
    except TimeoutError:
        return None, "connect-timeout", ""
    except OSError as e:
        return None, "error", f"{type(e).__name__}: {e}"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, "connected", ""


def _receive(sock: socket.socket, deadline: float) -> tuple[Outcome, bytes, str]:
    """One read before `deadline`: ("answered", the bytes) or why none came."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "timeout", b"", ""
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(65536)
    except TimeoutError:
        return "timeout", b"", ""
    except ConnectionResetError:
        return "reset", b"", ""
    except OSError as e:
        return "error", b"", f"{type(e).__name__}: {e}"
    return ("answered", chunk, "") if chunk else ("eof", b"", "")


def _send(sock: socket.socket, data: bytes) -> tuple[Outcome | None, str]:
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        return "reset", ""
    except OSError as e:
        return "error", f"{type(e).__name__}: {e}"
    return None, ""


def tcp_connect(what: str, address: str, timeout_s: float) -> Seen:
    """A TCP connect only: refused, unanswered, or accepted (and closed at once)."""
    t0 = time.monotonic()
    sock, outcome, error = _connect(address, timeout_s)
    took = time.monotonic() - t0
    if sock is not None:
        sock.close()
    return Seen(f"{what} ({address})", outcome, took, error=error)


def connect_and_listen(what: str, address: str, timeout_s: float) -> Seen:
    """A TCP connect, then a wait for the other side without sending anything: a
    listener that forwards nowhere closes at once (EOF or reset); a live path to a TLS
    server stays silent (`timeout`), the server waiting for the client to speak."""
    t0 = time.monotonic()
    sock, outcome, error = _connect(address, timeout_s)
    if sock is None:
        return Seen(f"{what} ({address})", outcome, time.monotonic() - t0, error=error)
    with sock:
        got, chunk, error = _receive(sock, time.monotonic() + timeout_s)
    took = time.monotonic() - t0
    return Seen(f"{what} ({address})", got, took, took if chunk else None, len(chunk), error)


@lru_cache(maxsize=16)
def _probe_context(cert: str, key: str) -> ssl.SSLContext:
    """A client context with the cluster's client identity that verifies nothing: a
    probe asks whether and when a server answers, not who it is."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_handshake(
    what: str,
    address: str,
    cluster: Cluster,
    timeout_s: float,
    *,
    connect_timeout_s: float | None = None,
) -> Seen:
    """TCP connect, then a TLS handshake with the cluster's client identity, waiting
    at most `timeout_s` for the server once connected. Counts the bytes that came back
    and when the first of them arrived (what a latency toxic delays)."""
    t0 = time.monotonic()
    sock, outcome, error = _connect(address, connect_timeout_s or timeout_s)
    label = f"{what} ({address})"
    if sock is None:
        return Seen(label, outcome, time.monotonic() - t0, error=error)
    tls = cluster.state.tls
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = _probe_context(tls.get("cert", ""), tls.get("key", "")).wrap_bio(
        incoming, outgoing, server_side=False
    )
    t_conn = time.monotonic()
    deadline = t_conn + timeout_s
    n, first = 0, None
    with sock:
        while True:
            try:
                conn.do_handshake()
                outcome = "answered"
            except ssl.SSLWantReadError:
                outcome = "connected"  # not done: the server has more to say
            except ssl.SSLError as e:  # an alert or a protocol error
                outcome, error = ("answered", "") if n else ("error", str(e))
            pending = outgoing.read()
            if pending:
                failed, why = _send(sock, pending)
                if failed and outcome == "connected":
                    outcome, error = failed, why
            if outcome != "connected":
                break
            got, chunk, error = _receive(sock, deadline)
            if got != "answered":
                outcome = got
                break
            if first is None:
                first = time.monotonic() - t_conn
            n += len(chunk)
            incoming.write(chunk)
    return Seen(label, outcome, time.monotonic() - t0, first, n, error)


def http_ping(what: str, address: str, timeout_s: float) -> Seen:
    """POST /ping to a replication agent (through a replication link or directly): the
    first bytes of its HTTP answer, or why none came."""
    t0 = time.monotonic()
    sock, outcome, error = _connect(address, timeout_s)
    label = f"{what} ({address})"
    if sock is None:
        return Seen(label, outcome, time.monotonic() - t0, error=error)
    t_conn = time.monotonic()
    with sock:
        failed, error = _send(sock, PING)
        if failed:
            return Seen(label, failed, time.monotonic() - t0, error=error)
        got, chunk, error = _receive(sock, t_conn + timeout_s)
    first = time.monotonic() - t_conn if chunk else None
    return Seen(label, got, time.monotonic() - t0, first, len(chunk), error)


# ---- what several faults observe -----------------------------------------------------


def direct_address(cluster: Cluster, replica: str) -> str:
    """Where the replica answers without any link (the auditor's address)."""
    rs = cluster.state.replicas[replica]
    return f"{rs.host}:{rs.port}"


def handshake_through(cluster: Cluster, link: Link, timeout_s: float) -> Seen:
    return tls_handshake(f"a TLS handshake through {link.name}", link.listen, cluster, timeout_s)


def handshake_direct(
    cluster: Cluster, replica: str, timeout_s: float = CONTROL_TIMEOUT_S, samples: int = 1
) -> Seen:
    """A TLS handshake to the replica's direct address: the control of a link probe
    (the quickest of `samples`, so that a scheduling hiccup does not count as a delay)."""
    address = direct_address(cluster, replica)
    return quickest(
        tls_handshake(f"{replica}'s direct address", address, cluster, timeout_s)
        for _ in range(samples)
    )


def quickest(seen: Iterable[Seen], whole: bool = False) -> Seen:
    """The probe whose answer came first (by first byte, then in all; with `whole`, by
    when its exchange was complete: the measure of a probe that compares `seconds`);
    else the last."""
    tried = list(seen)
    answered = [s for s in tried if s.answered]
    if not answered:
        return tried[-1]
    if whole:
        return min(answered, key=lambda s: s.seconds)
    return min(answered, key=lambda s: (s.first_byte_s or s.seconds, s.seconds))


def links_cut(cluster: Cluster, links: list[Link]) -> Effect:
    """Every link refuses a TCP connect: a link Toxiproxy disabled has no listener. Where
    a userland proxy publishes the links (docker without CAP_RESETS) it accepts and then
    closes at once instead, which counts as cut too."""
    if not links:
        return None, "no link to probe"
    timeout = probe_timeout(cluster)
    proxied = CAP_RESETS not in cluster.capabilities
    first: Seen | None = None
    for link in links:
        seen = tcp_connect(f"a TCP connect to {link.name}", link.listen, timeout)
        if seen.outcome == "connected" and proxied:
            seen = connect_and_listen(f"a TCP connect to {link.name}", link.listen, timeout)
            if seen.outcome in CLOSED:
                seen = Seen(seen.what, "refused", seen.seconds)  # the proxy's way to refuse
        if seen.outcome != "refused":
            return False, seen.words()
        first = first or seen
    assert first is not None
    if len(links) == 1:
        return True, first.words()
    return True, f"all {len(links)} cut links refused a TCP connect ({first.words()}, …)"


def stopped_and_closed(cluster: Cluster, target: str, seen: ReplicaObservation) -> Effect:
    """A process that was killed: `seen` (its process or container, just observed) says
    stopped, and a TLS handshake through a link into `target` is closed (Toxiproxy
    accepts, then its dial fails: EOF, or a reset when the hello was still unread)."""
    if seen.state != "stopped":
        return False, f"{target} is still {seen.state}: {seen.detail}"
    links = cluster.links_into(target)
    if not links:
        return True, f"{target} is stopped ({seen.detail}); no client link to probe"
    through = handshake_through(cluster, links[0], probe_timeout(cluster))
    if through.outcome not in CLOSED:
        return False, f"{target} is stopped ({seen.detail}), but {through.words()}"
    return True, f"{target} is stopped ({seen.detail}); {through.words()}"


def link_silent(cluster: Cluster, link: Link) -> Effect:
    """A TLS handshake through `link` gets no answer, while the replica's direct address
    answers (the silence is the link's, not a dead replica's)."""
    timeout = probe_timeout(cluster)
    through = handshake_through(cluster, link, timeout)
    if through.outcome != "timeout":
        return False, through.words()
    direct = handshake_direct(cluster, link.replica)
    if not direct.answered:
        return None, f"{through.words()}, but {direct.words()}: the replica itself is silent"
    return True, f"{through.words()}, while {direct.words()}"


def slower_by(slow: Seen, fast: Seen, added_ms: float, what: str, compared: str) -> Effect:
    """Whether `slow` got its first answer at least `added_ms` (minus a small slack:
    10 %, at least 2 ms) after `fast` did."""
    delay = delay_between(slow, fast)
    if delay is None:
        return None, f"{slow.words()}; {fast.words()}: no delay to measure"
    needed = added_ms / 1000 - max(0.002, 0.1 * added_ms / 1000)
    said = (
        f"{what} answered first after {ms(slow.first_byte_s or 0)}, {compared} after "
        f"{ms(fast.first_byte_s or 0)}: {ms(delay)} later"
    )
    if delay >= needed:
        return True, f"{said} (≥ {added_ms:g} ms less slack)"
    return False, f"{said}, not {added_ms:g} ms (less slack: {ms(needed)})"


def delay_between(slow: Seen, fast: Seen) -> float | None:
    """Seconds by which `slow`'s first answer came later than `fast`'s (None when either
    got no answer)."""
    if slow.first_byte_s is None or fast.first_byte_s is None:
        return None
    return slow.first_byte_s - fast.first_byte_s


def ms(seconds: float) -> str:
    """Seconds as whole milliseconds ("4 ms"; never "-0 ms")."""
    return f"{round(seconds * 1000) or 0} ms"


__all__ = [
    "CLOSED",
    "CONTROL_TIMEOUT_S",
    "PROBE_TIMEOUT_MAX_S",
    "Effect",
    "Outcome",
    "Seen",
    "connect_and_listen",
    "delay_between",
    "direct_address",
    "handshake_direct",
    "handshake_through",
    "http_ping",
    "link_silent",
    "links_cut",
    "ms",
    "slower_by",
    "probe_timeout",
    "quickest",
    "tcp_connect",
    "tls_handshake",
]
