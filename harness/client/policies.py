"""Failover policies: how a client walks its ordered server list.

- `VCenterPolicy`: for every operation, a fresh TLS connection to each server in
  order. Refused / reset / closed → the next server at once; no TCP answer within
  `connect_timeout` → the next; connected but no answer within `response_timeout` →
  the next. All failed → the operation fails (or is `info` if a mutating request may
  have reached a server).
- `PyKmipPolicy`: the real `kmip.pie.client.ProxyKmipClient`, used as a PyKMIP user
  would: one long-lived connection, opened with the comma-separated host list and one
  shared port. PyKMIP fails over only while connecting (TLS handshake included) and
  uses one timeout for connect and response; an error on an open connection is raised
  to the caller. Our user then closes the client and reopens it on the next operation.
  The timeout is set through ``client.proxy.timeout`` because ProxyKmipClient ignores
  the config file's value (out of the box a stalled server costs 30 s).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from harness.catalog import Catalog
from harness.client.operations import MUTATING, KeyNames, OpValue, new_pie_client, perform
from harness.client.transport import (
    AttemptError,
    Endpoint,
    classify,
    connect_tls,
    describe,
    peer_identity,
)
from harness.history import Attempt, OpOutcome

# PyKMIP logs every failed connect at ERROR; the harness records them as attempts.
for _name in ("kmip.services.kmip_client", "kmip.pie.client"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False


@dataclass
class PolicyResult:
    outcome: OpOutcome
    value: OpValue | None
    served_by: str | None
    attempts: list[Attempt] = field(default_factory=list)
    error: str = ""


# What one failed attempt on a faulted server costs a client before it moves on: nothing
# (refused, reset, closed at once), a connect timeout (no TCP answer) or a response
# timeout (connected, no answer). A fault declares which one it causes
# (`Fault.client_wait`); a policy says which of its timeouts that is (`timeout_of`).
Wait = Literal["none", "connect", "response"]
WAITS: tuple[Wait, ...] = ("none", "connect", "response")
WAIT_MEANS: dict[str, str] = {
    "none": "refused / reset / EOF",
    "connect": "no TCP answer",
    "response": "connected, no answer",
}
Timeout = Literal["connect", "response"]


class FailoverPolicy:
    """How a client walks its ordered server list; subclasses register by `name`.

    A policy describes itself: `summary` (what it is), `reactions` (what it does when
    an attempt is refused, gets no TCP answer, or gets no response: per `Wait`) and
    `timeout_of` (which of the topology's timeouts it waits for each). The failover
    checker's expected wait, the matrix and the README's policy table read these. Every
    policy is made as ``cls(endpoints, tls, connect_timeout, response_timeout,
    empty_conf, keys)``: a client's endpoints in order, the TLS files, the topology's
    (scaled) timeouts, an empty PyKMIP config file and, optionally, the key names.
    """

    name: ClassVar[str] = ""
    position: ClassVar[int] = 0  # where tables list it
    # whether it checks that the server's certificate names the address it dialled
    # (faults that only such a client notices say so: `Fault.noticed_only_if`)
    checks_server_name: ClassVar[bool] = True
    summary: ClassVar[str] = ""
    reactions: ClassVar[dict[Wait, str]] = {}
    timeout_of: ClassVar[dict[Wait, Timeout | None]] = {
        "none": None,
        "connect": "connect",
        "response": "response",
    }

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name:
            POLICIES.register(cls)

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TlsFiles,
        connect_timeout: float,
        response_timeout: float,
        empty_conf: str,
        keys: KeyNames | None = None,
    ) -> None:
        raise NotImplementedError

    @classmethod
    def wait_s(cls, wait: Wait, *, connect_timeout: float, response_timeout: float) -> float:
        """Seconds one failed attempt of kind `wait` costs this policy."""
        timeout = cls.timeout_of.get(wait)
        if timeout is None:
            return 0.0
        return connect_timeout if timeout == "connect" else response_timeout

    def execute(self, op: str, key: str | None) -> PolicyResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the default has none."""


POLICIES: Catalog[type[FailoverPolicy]] = Catalog("policy", lambda c: c.name, lambda c: c.position)


def policy_names() -> tuple[str, ...]:
    return tuple(POLICIES)


def policy_class(name: str) -> type[FailoverPolicy]:
    try:
        return POLICIES.known(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str


def _key_name(keys: KeyNames | None, op: str) -> str | None:
    return keys.next_name() if keys is not None and op == "create" else None


def _record_created(
    keys: KeyNames | None, key_name: str | None, value: OpValue, replica: str
) -> None:
    if keys is not None and key_name is not None and value.key:
        keys.created(key_name, value.key, replica)


def _unanswered(op: str, attempts: list[Attempt], sent: bool, error: str) -> PolicyResult:
    outcome: OpOutcome = "info" if sent and op in MUTATING else "fail"
    return PolicyResult(outcome, None, None, attempts, error)


TIMED_OUT = ("connect-timeout", "timeout")


def tried(attempts: list[Attempt]) -> str:
    """The servers tried and why each failed, in order: ``kms-a refused, kms-b
    connect-timeout 0.250 s, kms-c timeout 3.000 s`` (a timeout with the seconds it
    cost, a TLS or other error with its first words)."""
    parts = []
    for a in attempts:
        part = f"{a.server} {a.outcome}"
        if a.outcome in TIMED_OUT:
            part += f" {a.duration:.3f} s"
        elif a.outcome in ("tls-error", "error") and a.detail:
            part += f" ({a.detail[:80]})"
        parts.append(part)
    return ", ".join(parts) or "no server tried"


class VCenterPolicy(FailoverPolicy):
    name = "vcenter"
    position = 10
    summary = "walks its ordered list for **every** operation, a fresh TLS connection each time"
    reactions = {
        "none": "next server at once",
        "connect": "next after `connect_s`·`time_scale`",
        "response": "next after `response_s`·`time_scale` (vCenter: 60 s per request)",
    }

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TlsFiles,
        connect_timeout: float,
        response_timeout: float,
        empty_conf: str,
        keys: KeyNames | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.keys = keys
        self._pie = new_pie_client(
            [endpoints[0].host], endpoints[0].port, tls.ca, tls.cert, tls.key, empty_conf
        )

    def execute(self, op: str, key: str | None) -> PolicyResult:
        from kmip.pie.exceptions import KmipOperationFailure
        from kmip.services.kmip_protocol import KMIPProtocol

        attempts: list[Attempt] = []
        sent_any = False
        for ep in self.endpoints:
            t0 = time.monotonic()
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
                attempts.append(
                    Attempt(ep.replica, ep.address, t0, time.monotonic(), e.outcome, e.detail)
                )
                continue
            who = peer_identity(sock).name  # a TLS session: whoever answered is recorded
            # a name per request sent: a Create lost on one server stays findable there
            key_name = _key_name(self.keys, op)
            pie = self._pie
            pie.proxy.socket = sock
            pie.proxy.protocol = KMIPProtocol(sock)
            pie._is_open = True
            try:
                value = perform(pie, op, key, key_name)
            except KmipOperationFailure as e:
                attempts.append(
                    Attempt(
                        ep.replica,
                        ep.address,
                        t0,
                        time.monotonic(),
                        "kmip-error",
                        str(e),
                        identity=who,
                    )
                )
                return PolicyResult("fail", None, ep.replica, attempts, str(e))
            except Exception as e:  # noqa: BLE001 - every failure is an attempt outcome
                outcome = classify(e, phase="request")
                attempts.append(
                    Attempt(
                        ep.replica,
                        ep.address,
                        t0,
                        time.monotonic(),
                        outcome,
                        describe(e),
                        identity=who,
                    )
                )
                sent_any = True
                continue
            finally:
                pie._is_open = False
                with contextlib.suppress(OSError):
                    sock.close()
            attempts.append(
                Attempt(ep.replica, ep.address, t0, time.monotonic(), "ok", identity=who)
            )
            _record_created(self.keys, key_name, value, ep.replica)
            return PolicyResult("ok", value, ep.replica, attempts)
        return _unanswered(op, attempts, sent_any, f"no server answered: {tried(attempts)}")


class PyKmipPolicy(FailoverPolicy):
    name = "pykmip"
    position = 20
    summary = (
        "the real `kmip.pie.client.ProxyKmipClient` with the comma-separated host list and "
        "one port, used as-is; one long-lived connection"
    )
    reactions = {
        "none": "while connecting: next host at once; on an open connection: **the "
        "operation fails**",
        "connect": "next host after its timeout",
        "response": "while connecting (TLS handshake): next host after its timeout; on an "
        "open connection: **the operation fails, no failover**",
    }
    # measured: KMIPProxy._create_socket wraps the socket without server_hostname (and
    # SSLContext(PROTOCOL_SSLv23) leaves check_hostname off): any name is accepted
    checks_server_name = False
    # PyKMIP has one timeout (`client.proxy.timeout`) for connects and responses
    timeout_of = {"none": None, "connect": "response", "response": "response"}

    def __init__(
        self,
        endpoints: list[Endpoint],
        tls: TlsFiles,
        connect_timeout: float,
        response_timeout: float,
        empty_conf: str,
        keys: KeyNames | None = None,
    ) -> None:
        del connect_timeout  # PyKMIP has one timeout, for connects too (`timeout_of`)
        ports = {ep.port for ep in endpoints}
        if len(ports) != 1:
            raise ValueError(
                f"PyKMIP's client needs one shared port; endpoints use {sorted(ports)}"
            )
        self.endpoints = endpoints
        self.keys = keys
        self._replica_of = {ep.host: ep for ep in endpoints}
        self.response_timeout = response_timeout
        self._pie = new_pie_client(
            [ep.host for ep in endpoints], endpoints[0].port, tls.ca, tls.cert, tls.key, empty_conf
        )
        # ProxyKmipClient ignores the config file's timeout; this is the only knob.
        self._pie.proxy.timeout = response_timeout
        self._connect_log: list[Attempt] = []
        self._connected_at: float | None = None
        self._identity: str | None = None  # who answered on the open connection
        self._instrument()

    def _instrument(self) -> None:
        """Record each host PyKMIP's own open() tries, without changing what it does."""
        proxy = self._pie.proxy
        original = proxy._create_socket
        policy = self

        def create_socket(sock: Any) -> None:
            original(sock)
            tls = proxy.socket
            connect = tls.connect

            def timed_connect(addr: tuple[str, int]) -> None:
                t0 = time.monotonic()
                ep = policy._replica_of.get(addr[0], Endpoint(addr[0], addr[0], addr[1]))
                try:
                    connect(addr)
                except BaseException as e:
                    phase = "connect"
                    if isinstance(e, socket.timeout | TimeoutError):
                        with contextlib.suppress(OSError):
                            tls.getpeername()
                            phase = "handshake"
                    policy._connect_log.append(
                        Attempt(
                            ep.replica,
                            ep.address,
                            t0,
                            time.monotonic(),
                            classify(e, phase),
                            describe(e, phase),
                        )
                    )
                    raise
                policy._connected_at = t0

            tls.connect = timed_connect

        proxy._create_socket = create_socket

    def _current(self) -> Endpoint:
        host = self._pie.proxy.host
        return self._replica_of.get(host, Endpoint(host, host, self.endpoints[0].port))

    def execute(self, op: str, key: str | None) -> PolicyResult:
        from kmip.pie.exceptions import KmipOperationFailure

        self._connect_log = []
        reused = bool(self._pie._is_open)
        t_op = time.monotonic()
        if not reused:
            try:
                self._pie.open()
            except Exception as e:  # noqa: BLE001 - PyKMIP re-raises the last host's error
                attempts = list(self._connect_log)
                hosts = ", ".join(ep.replica for ep in self.endpoints)
                return _unanswered(
                    op,
                    attempts,
                    False,
                    f"open failed: no host of {hosts} answered: {tried(attempts)} "
                    f"(PyKMIP raised {describe(e)})",
                )
            self._identity = peer_identity(self._pie.proxy.socket).name
        attempts = list(self._connect_log)
        ep = self._current()
        who = self._identity
        t0 = t_op if reused else (self._connected_at or t_op)
        key_name = _key_name(self.keys, op)
        try:
            value = perform(self._pie, op, key, key_name)
        except KmipOperationFailure as e:
            attempts.append(
                Attempt(
                    ep.replica, ep.address, t0, time.monotonic(), "kmip-error", str(e), reused, who
                )
            )
            return PolicyResult("fail", None, ep.replica, attempts, str(e))
        except Exception as e:  # noqa: BLE001 - raised to the caller, as PyKMIP does
            outcome = classify(e, phase="request")
            attempts.append(
                Attempt(
                    ep.replica, ep.address, t0, time.monotonic(), outcome, describe(e), reused, who
                )
            )
            self._reset_connection()
            return _unanswered(op, attempts, True, f"{ep.replica}: {outcome} (no failover)")
        attempts.append(
            Attempt(ep.replica, ep.address, t0, time.monotonic(), "ok", "", reused, who)
        )
        _record_created(self.keys, key_name, value, ep.replica)
        return PolicyResult("ok", value, ep.replica, attempts)

    def _reset_connection(self) -> None:
        self._identity = None
        with contextlib.suppress(Exception):
            self._pie.close()
        self._pie._is_open = False
        with contextlib.suppress(Exception):
            if self._pie.proxy.socket is not None:
                self._pie.proxy.socket.close()
        self._pie.proxy.socket = None

    def close(self) -> None:
        self._reset_connection()


def make_policy(
    policy: str,
    endpoints: list[Endpoint],
    tls: TlsFiles,
    connect_timeout: float,
    response_timeout: float,
    empty_conf: str,
    keys: KeyNames | None = None,
) -> FailoverPolicy:
    """A policy by name; with `keys`, every Create names its key and is recorded."""
    return policy_class(policy)(endpoints, tls, connect_timeout, response_timeout, empty_conf, keys)


def policy_table() -> str:
    """The README's policy table (markdown), from the policies' own descriptions."""
    head = ["policy", "what it is", *(WAIT_MEANS[w] for w in WAITS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cls in POLICIES.items():
        cells = [f"`{name}`", cls.summary, *(cls.reactions.get(w, "") for w in WAITS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
