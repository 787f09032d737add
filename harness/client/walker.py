"""`WalkingPolicy`: kmschaos's own KMIP client, following a `PolicySpec` field by field.

One instance is one client process: it keeps what such a process keeps between
operations (an open connection for `sticky`, the server chosen at start for `at-start`,
when each server last failed for `skip_failed_s`) and forgets it on `restart`.

Every try of one server is an `Attempt`: `reused` when it went over the connection an
earlier operation opened, `sent` when the request was written (a mutation may have run
there). Requests go through PyKMIP's own encoding, in the policy's KMIP version.

A KMIP failure ends the operation (`kmip-error`: the server's answer), except a refusal
of the request's protocol version (`version-refused`): that server cannot serve this
client at all, the request did not run, and the walk moves on to the next server (the
connection is closed, the server is not skipped later: it was reached).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field

from harness.client.engine import (
    FailoverPolicy,
    PolicyResult,
    TlsFiles,
    _key_name,
    _record_created,
    _unanswered,
    tried,
)
from harness.client.operations import MUTATING, KeyNames, OpValue, new_pie_client, perform
from harness.client.policy_spec import POLICIES, PolicySpec
from harness.client.transport import (
    AttemptError,
    Endpoint,
    classify,
    connect_tls,
    describe,
    peer_identity,
    refuses_version,
)
from harness.history import Attempt

ABORTED = "no response timeout of its own: still waiting when kmschaos stopped the client"


@dataclass
class _Conn:
    ep: Endpoint
    sock: ssl.SSLSocket
    identity: str | None
    last_used: float


@dataclass
class _Op:
    """One operation in progress: what was tried, whether a request went out, and
    whether it must stop (a mutation that may have run and must not be sent again)."""

    op: str
    key: str | None
    key_name: str | None
    attempts: list[Attempt] = field(default_factory=list)
    sent: bool = False
    stop: bool = False
    result: PolicyResult | None = None


def _sent(ep: Endpoint, t0: float, outcome: str, detail: str, reused: bool, conn: _Conn) -> Attempt:
    """An attempt whose request was written to `conn` (ending now)."""
    return Attempt(
        ep.replica,
        ep.address,
        t0,
        time.monotonic(),
        outcome,
        detail,
        reused,
        conn.identity,
        sent=True,
    )


class WalkingPolicy(FailoverPolicy):
    engine = "walk"

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TlsFiles,
        connect_timeout: float | None,
        response_timeout: float | None,
        empty_conf: str,
        keys: KeyNames | None = None,
        *,
        spec: PolicySpec | None = None,
        time_scale: float = 1.0,
    ) -> None:
        self.spec = spec or POLICIES["vcenter"]
        self.endpoints = list(endpoints)
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.keys = keys
        self.skip_s = (self.spec.skip_failed_s or 0.0) * time_scale
        self.idle_s = (self.spec.idle_reconnect_s or 0.0) * time_scale
        self._pie = new_pie_client(
            [endpoints[0].host],
            endpoints[0].port,
            tls.ca,
            tls.cert,
            tls.key,
            empty_conf,
            self.spec.kmip_version,
        )
        self._conn: _Conn | None = None
        self._chosen: Endpoint | None = None  # at-start: the server chosen at start
        self._failed_at: dict[str, float] = {}  # replica -> when it last failed to connect
        self._inflight: ssl.SSLSocket | None = None  # the connection a request waits on
        self._aborted = False

    # ---- one operation -----------------------------------------------------------------

    def execute(self, op: str, key: str | None) -> PolicyResult:
        run = _Op(op, key, _key_name(self.keys, op))
        spec = self.spec
        if spec.selection == "at-start" and self._chosen is not None:
            self._try_server(self._chosen, run)
        else:
            if spec.selection == "sticky" and self._conn is not None:
                self._on_open_connection(run)
            if run.result is None and not run.stop:
                self._walk(run)
        if run.result is not None:
            return run.result
        if spec.selection == "at-start" and self._chosen is not None:
            why = f"{self._chosen.replica} (chosen at start; no failover until restarted)"
            return _unanswered(op, run.attempts, run.sent, f"{why}: {tried(run.attempts)}")
        if run.stop:
            why = "no resend: the request may have run"
            return _unanswered(op, run.attempts, True, f"{why}: {tried(run.attempts)}")
        return _unanswered(op, run.attempts, run.sent, f"no server answered: {tried(run.attempts)}")

    def _on_open_connection(self, run: _Op) -> None:
        conn = self._conn
        assert conn is not None
        if self.idle_s and time.monotonic() - conn.last_used > self.idle_s:
            self._close()  # reconnect before using a connection idle this long
            return
        if self._attempt(conn.ep, run, conn) or run.result is not None:
            return
        if self.spec.open_connection_error == "fail":
            run.result = _unanswered(
                run.op,
                run.attempts,
                run.sent,
                f"{conn.ep.replica}: {run.attempts[-1].outcome} on the open connection "
                "(no failover)",
            )
            return
        if not run.stop and self.spec.retried(run.attempts[-1].outcome):
            self._try_server(conn.ep, run, tries=1)

    def _walk(self, run: _Op) -> None:
        """Try the servers in order, skipping those that failed within the skip window
        (all of them: the first)."""
        now = time.monotonic()
        order = self.endpoints
        if self.skip_s:
            fresh = [
                ep for ep in order if now - self._failed_at.get(ep.replica, -1e9) >= self.skip_s
            ]
            order = fresh or order[:1]
        for ep in order:
            self._try_server(ep, run)
            if run.result is not None or run.stop:
                return

    def _try_server(self, ep: Endpoint, run: _Op, tries: int = 0) -> None:
        """Try `ep`, and again while the policy retries the outcome."""
        while True:
            tries += 1
            if self._attempt(ep, run, None) or run.result is not None or run.stop:
                return
            if not (tries <= self.spec.retries and self.spec.retried(run.attempts[-1].outcome)):
                return

    def _attempt(self, ep: Endpoint, run: _Op, conn: _Conn | None) -> bool:
        """One try of `ep` (over `conn` when given): True when it answered (`run.result`
        set); a failure is recorded, and stops the operation when a mutation may have
        run and the policy does not send it again."""
        from kmip.pie.exceptions import KmipOperationFailure
        from kmip.services.kmip_protocol import KMIPProtocol

        t0 = time.monotonic()
        if conn is None:
            try:
                sock = connect_tls(
                    ep,
                    self.tls.ca,
                    self.tls.cert,
                    self.tls.key,
                    self.connect_timeout,
                    self.response_timeout,
                )
            except AttemptError as e:
                run.attempts.append(
                    Attempt(ep.replica, ep.address, t0, time.monotonic(), e.outcome, e.detail)
                )
                self._failed_at[ep.replica] = time.monotonic()
                return False
            conn = _Conn(ep, sock, peer_identity(sock).name, t0)
            reused = False
        else:
            reused = True
        pie = self._pie
        pie.proxy.socket = conn.sock
        pie.proxy.protocol = KMIPProtocol(conn.sock)
        pie._is_open = True
        keep = False
        self._inflight = conn.sock
        try:
            value = perform(pie, run.op, run.key, run.key_name)
        except Exception as e:  # noqa: BLE001 - every failure is an attempt outcome
            if refuses_version(e):  # answered: it does not speak the client's version
                run.attempts.append(_sent(ep, t0, "version-refused", describe(e), reused, conn))
                return False  # not final: the walk tries the next server
            if not isinstance(e, KmipOperationFailure):
                self._failed_request(ep, run, t0, e, reused, conn)
                return False
            run.attempts.append(_sent(ep, t0, "kmip-error", str(e), reused, conn))
            run.result = PolicyResult("fail", None, ep.replica, run.attempts, str(e))
            keep = True
            return False
        else:
            keep = True
            run.attempts.append(_sent(ep, t0, "ok", "", reused, conn))
            _record_created(self.keys, run.key_name, value or OpValue(), ep.replica)
            run.result = PolicyResult("ok", value, ep.replica, run.attempts)
            if self.spec.selection == "at-start":
                self._chosen = ep
            return True
        finally:
            self._inflight = None
            pie._is_open = False
            if keep and self.spec.selection == "sticky":
                conn.last_used = time.monotonic()
                if self._conn is not conn:
                    self._close()
                    self._conn = conn
            else:
                if self._conn is conn:
                    self._conn = None
                with contextlib.suppress(OSError):
                    conn.sock.close()

    def _failed_request(
        self, ep: Endpoint, run: _Op, t0: float, e: BaseException, reused: bool, conn: _Conn
    ) -> None:
        """A request that got no KMIP answer: recorded as sent; a mutation that may have
        run stops the operation unless the policy sends it again."""
        outcome = classify(e, phase="request")
        detail = describe(e)
        if self._aborted:  # `abort` ended the wait, not the server
            self._aborted = False
            outcome, detail = "timeout", ABORTED
        run.attempts.append(_sent(ep, t0, outcome, detail, reused, conn))
        run.sent = True
        if run.op in MUTATING and not self.spec.resend_mutations:
            run.stop = True

    # ---- lifecycle ---------------------------------------------------------------------

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.sock.close()

    def close(self) -> None:
        self._close()

    def abort(self) -> None:
        sock = self._inflight
        if sock is None or self.response_timeout is not None:
            return
        self._aborted = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def restart(self) -> None:
        self._close()
        self._chosen = None
        self._failed_at.clear()


# the vCenter model under its old name (benchmarks and tests make it directly): the
# walking engine's default policy is vcenter
VCenterPolicy = WalkingPolicy


__all__ = ["WalkingPolicy", "VCenterPolicy"]
