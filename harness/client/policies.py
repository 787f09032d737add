"""Failover engines: what runs a client's policy (`harness.client.policy_spec`).

- `WalkingPolicy` (`harness.client.walker`): kmschaos's own client, following every
  field of the policy: per-operation, sticky or at-start selection, retries, skip
  windows, resent mutations (the vcenter, mongodb, ontap, kmip-go and retrying presets).
- `PyKmipPolicy`: the real `kmip.pie.client.ProxyKmipClient`, used as a PyKMIP user
  would: one long-lived connection, opened with the comma-separated host list and one
  shared port. PyKMIP fails over only while connecting (TLS handshake included) and
  uses one timeout for connect and response; an error on an open connection is raised
  to the caller. Our user then closes the client and reopens it on the next operation.
  The timeout is set through ``client.proxy.timeout`` because ProxyKmipClient ignores
  the config file's value (out of the box a stalled server costs 30 s).

Every engine is made as ``cls(endpoints, tls, connect_timeout, response_timeout,
empty_conf, keys, spec=..., time_scale=...)``: a client's endpoints in order, the TLS
files, the policy's timeouts at the topology's time scale (None: no timeout of its own),
an empty PyKMIP config file, optionally the key names, the policy and the time scale its
other durations are multiplied by.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

import harness.client.presets  # noqa: F401 - the presets register themselves
from harness.client.engine import (
    FailoverPolicy,
    PolicyResult,
    TlsFiles,
    _key_name,
    _record_created,
    _unanswered,
    tried,
)
from harness.client.operations import KeyNames, new_pie_client, perform
from harness.client.policy_spec import (
    POLICIES,
    WAIT_MEANS,
    WAITS,
    PolicySpec,
    Wait,
    policy_names,
)
from harness.client.transport import (
    Endpoint,
    classify,
    describe,
    peer_identity,
)
from harness.history import Attempt

__all__ = [
    "POLICIES",
    "WAITS",
    "WAIT_MEANS",
    "Wait",
    "FailoverPolicy",
    "PolicyResult",
    "PyKmipPolicy",
    "TlsFiles",
    "make_policy",
    "policy_names",
    "policy_table",
    "tried",
]

# PyKMIP logs every failed connect at ERROR; the harness records them as attempts.
for _name in ("kmip.services.kmip_client", "kmip.pie.client"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False


class PyKmipPolicy(FailoverPolicy):
    engine = "pykmip"

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
        del connect_timeout, time_scale  # PyKMIP has one timeout, for connects too
        self.spec = spec or POLICIES["pykmip"]
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
            [ep.host for ep in endpoints],
            endpoints[0].port,
            tls.ca,
            tls.cert,
            tls.key,
            empty_conf,
            self.spec.kmip_version,
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
            # the server's answer; a refused protocol version (`version-refused`) too:
            # PyKMIP raises it to the caller like any KMIP failure (no failover), and
            # the request did not run
            outcome = classify(e, phase="request")
            refused = outcome == "version-refused"
            detail = describe(e) if refused else str(e)
            attempts.append(
                Attempt(
                    ep.replica,
                    ep.address,
                    t0,
                    time.monotonic(),
                    outcome,
                    detail,
                    reused,
                    who,
                    sent=refused,
                )
            )
            return PolicyResult("fail", None, ep.replica, attempts, str(e))
        except Exception as e:  # noqa: BLE001 - raised to the caller, as PyKMIP does
            outcome = classify(e, phase="request")
            attempts.append(
                Attempt(
                    ep.replica,
                    ep.address,
                    t0,
                    time.monotonic(),
                    outcome,
                    describe(e),
                    reused,
                    who,
                    sent=True,
                )
            )
            if outcome == "version-refused":  # Modify Attribute's KMIP failure (rename)
                return PolicyResult("fail", None, ep.replica, attempts, str(e))
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


def engine_of(spec: PolicySpec) -> type[FailoverPolicy]:
    return PyKmipPolicy if spec.engine == "pykmip" else WalkingPolicy


def policy_spec(policy: str | PolicySpec) -> PolicySpec:
    """A preset by name (ValueError naming the known ones), or the spec itself."""
    if isinstance(policy, PolicySpec):
        return policy
    try:
        return POLICIES.known(policy)
    except KeyError as e:
        raise ValueError(e.args[0]) from None


from harness.client.walker import WalkingPolicy  # noqa: E402 - after the engines it uses


def make_policy(
    policy: str | PolicySpec,
    endpoints: list[Endpoint],
    tls: TlsFiles,
    connect_timeout: float | None,
    response_timeout: float | None,
    empty_conf: str,
    keys: KeyNames | None = None,
    time_scale: float = 1.0,
) -> FailoverPolicy:
    """An engine running `policy` (a preset name or a spec) with the given timeouts
    (already the policy's, at the time scale); with `keys`, every Create names its key
    and is recorded."""
    spec = policy_spec(policy)
    return engine_of(spec)(
        endpoints,
        tls,
        connect_timeout,
        response_timeout,
        empty_conf,
        keys,
        spec=spec,
        time_scale=time_scale,
    )


def policy_table() -> str:
    """The README's policy table (markdown), from the presets' own descriptions."""
    head = ["policy", "what it is", *(WAIT_MEANS[w] for w in WAITS), "KMIP", "source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, spec in POLICIES.items():
        cells = [
            f"`{name}`",
            spec.summary,
            *(spec.reactions.get(w, "") for w in WAITS),
            spec.kmip_version,
            spec.source,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
