"""A failover policy as data: how a client picks servers, what it waits for, what it
retries. A topology's `clients.<name>.policy` is a preset name (`PRESETS`) or a mapping
of these fields (``preset:`` names the one it starts from, default `vcenter`).

Durations are seconds before the topology's `time_scale`, like `timeouts`; a timeout of
`os` means the client has none of its own: a connect then lasts as long as the kernel
retries its SYN (`os_connect_timeout`), a response as long as the connection stays
open. A timeout left out is the topology's (`timeouts.connect_s`, `timeouts.response_s`).

Selection (`selection`):

- ``per-operation``: every operation walks the list from the top on fresh connections
  (vCenter);
- ``sticky``: one connection is kept; a new one walks the list from the top (PyKMIP,
  kmip-go); an error on the open connection fails the operation
  (`open_connection_error: fail`) or walks on (`failover`);
- ``at-start``: the list is walked once, at the client's first operation after it
  starts; every later operation goes to that server only, until the client restarts
  (MongoDB).

On a failed attempt whose outcome is in `retry_on`, the same server is tried again up to
`retries` times (a fresh connection each time); a mutation whose request may have
reached a server is sent again only with `resend_mutations` (then a Create may run
twice: both requests carry one Name). A server that could not be connected to (TCP or
TLS) within the last `skip_failed_s` is skipped when the list is walked (every server
skipped: the first is tried), as ovh/kmip-go's `DialCluster` does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from harness.catalog import Catalog

Selection = Literal["per-operation", "sticky", "at-start"]
SELECTIONS: tuple[Selection, ...] = ("per-operation", "sticky", "at-start")
SELECTION_MEANS = {
    "per-operation": "walks the list for every operation, a fresh connection each time",
    "sticky": "keeps one connection; a new one walks the list from the top",
    "at-start": "walks the list once when it starts; then only that server until it restarts",
}
RETRYABLE = ("refused", "reset", "eof", "connect-timeout", "timeout", "tls-error")
OS = "os"
KMIP_VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "2.0")
Seconds = float | Literal["os"] | None  # None: the topology's timeout

# What one failed attempt on a faulted server costs a client before it moves on: nothing
# (refused, reset, closed at once), a connect timeout (no TCP answer) or a response
# timeout (connected, no answer). A fault declares which one it causes
# (`Fault.client_wait`); the policy's timeouts say how long that is (`PolicySpec.wait_s`).
Wait = Literal["none", "connect", "response"]
WAITS: tuple[Wait, ...] = ("none", "connect", "response")
WAIT_MEANS: dict[str, str] = {
    "none": "refused / reset / EOF",
    "connect": "no TCP answer",
    "response": "connected, no answer",
}
# the attempt outcome each wait ends in (what `retry_on` names)
WAIT_OUTCOME: dict[Wait, str] = {"none": "eof", "connect": "connect-timeout", "response": "timeout"}


@lru_cache(maxsize=1)
def os_connect_timeout() -> float:
    """Seconds Linux tries a TCP connect that gets no answer: the first SYN and
    `tcp_syn_retries` retransmissions, the wait doubling from 1 s (6 → 127 s)."""
    try:
        retries = int(Path("/proc/sys/net/ipv4/tcp_syn_retries").read_text())
    except (OSError, ValueError):
        retries = 6  # the kernel's default
    return float(2 ** (retries + 1) - 1)


@dataclass(frozen=True)
class Group:
    """An ONTAP key-server group: a primary and the secondaries tried after it, in order."""

    primary: str
    secondaries: tuple[str, ...] = ()

    @property
    def members(self) -> tuple[str, ...]:
        return (self.primary, *self.secondaries)


@dataclass(frozen=True)
class KeyCache:
    """Keys a client keeps in memory once read: served without the KMS for `ttl_s`
    seconds (None: as long as the process runs); `survives_restart`: kept across a
    restart too (ESXi 7.0U2+ with key persistence in the TPM)."""

    ttl_s: float | None = None
    survives_restart: bool = False


@dataclass(frozen=True)
class PolicySpec:
    """One failover policy; presets are in `POLICIES`, a topology may adjust one.

    `engine` says what runs it: ``walk`` (kmschaos's client, following every field) or
    ``pykmip`` (PyKMIP's real ProxyKmipClient, which only takes `response_timeout_s`
    and `kmip_version`). `source` and `measured` are the README's citations."""

    name: str
    engine: Literal["walk", "pykmip"] = "walk"
    selection: Selection = "per-operation"
    connect_timeout_s: Seconds = None
    response_timeout_s: Seconds = None
    retries: int = 0
    retry_on: tuple[str, ...] = ()
    resend_mutations: bool = True
    skip_failed_s: float | None = None
    open_connection_error: Literal["fail", "failover"] = "failover"
    idle_reconnect_s: float | None = None
    groups: tuple[Group, ...] = ()
    # every this many seconds the client reads its master key's state and stops when it
    # is no longer Active (MongoDB: kmipKeyStatePollingSeconds)
    key_state_poll_s: float | None = None
    key_cache: KeyCache | None = None
    kmip_version: str = "1.2"
    checks_server_name: bool = True
    summary: str = ""
    source: str = field(default="", compare=False)
    position: int = field(default=100, compare=False)
    preset: str = ""  # the preset it was made from ("" for a preset itself)

    ENGINE_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "pykmip": ("response_timeout_s", "kmip_version"),
    }

    # ---- timeouts --------------------------------------------------------------------

    @property
    def one_timeout(self) -> bool:
        """Whether it waits for connects with its response timeout (PyKMIP has one
        timeout, `client.proxy.timeout`, for both)."""
        return self.engine == "pykmip"

    def timeouts(
        self, connect_s: float, response_s: float, time_scale: float
    ) -> tuple[float | None, float | None]:
        """(connect, response) seconds at `time_scale` (None: no timeout of its own), from
        the topology's `connect_s`/`response_s` where the policy names none."""
        response = _scaled(self.response_timeout_s, response_s, time_scale)
        connect = _scaled(self.connect_timeout_s, connect_s, time_scale)
        return (response if self.one_timeout else connect), response

    def wait_s(
        self, wait: Wait, *, connect_timeout: float | None, response_timeout: float | None
    ) -> float:
        """Seconds one failed attempt of kind `wait` costs (timeouts as `timeouts` gives
        them, or the topology's); infinite for a response it has no timeout for."""
        if wait == "none":
            return 0.0
        if wait == "connect":
            connect = response_timeout if self.one_timeout else connect_timeout
            return os_connect_timeout() if connect is None else connect
        return float("inf") if response_timeout is None else response_timeout

    def retried(self, outcome: str) -> bool:
        return self.retries > 0 and outcome in self.retry_on

    @property
    def reactions(self) -> dict[Wait, str]:
        """What it does after each kind of failed attempt, in words (README, `policies`)."""
        out: dict[Wait, str] = {}
        for wait in WAITS:
            out[wait] = self._reaction(wait)
        return out

    def _reaction(self, wait: Wait) -> str:
        if wait == "none":
            cost = "at once"
        elif self.one_timeout:
            cost = _cost(self.response_timeout_s, "response_s", wait)
        elif wait == "connect":
            cost = _cost(self.connect_timeout_s, "connect_s", wait)
        else:
            cost = _cost(self.response_timeout_s, "response_s", wait)
        outcome = WAIT_OUTCOME[wait]
        retry = (
            f"; retried ×{self.retries} on it" if outcome in self.retry_on and self.retries else ""
        )
        if self.selection == "at-start":
            return f"the operation fails {cost} (no failover until restarted){retry}"
        text = f"next server {cost}{retry}"
        if self.selection == "sticky" and self.open_connection_error == "fail":
            text += "; on an open connection: **the operation fails**"
        return text

    @property
    def label(self) -> str:
        """Its name in tables: the preset's, marked ``*`` when the topology adjusted it."""
        return f"{self.preset}*" if self.preset else self.name

    def to_data(self) -> str | dict[str, Any]:
        """The topology-file form: the preset name, or a mapping of what differs."""
        if not self.preset:
            return self.name
        base = POLICIES[self.preset]
        out: dict[str, Any] = {"preset": self.preset}
        for f in POLICY_DATA_FIELDS:
            mine, theirs = getattr(self, f), getattr(base, f)
            if mine != theirs:
                out[f] = _data(mine)
        return out


def _data(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_data(v) for v in value]
    if isinstance(value, Group):
        return {"primary": value.primary, "secondaries": list(value.secondaries)}
    if isinstance(value, KeyCache):
        out: dict[str, Any] = {"survives_restart": value.survives_restart}
        if value.ttl_s is not None:
            out["ttl_s"] = value.ttl_s
        return out
    return value


def _scaled(own: Seconds, topology_s: float, time_scale: float) -> float | None:
    if own == OS:
        return None
    return (topology_s if own is None else float(own)) * time_scale


def _cost(t: Seconds, key: str, wait: Wait) -> str:
    if t == OS:
        return (
            "when the OS gives up (no timeout of its own)"
            if wait == "connect"
            else ("never: **no response timeout of its own**")
        )
    if t is None:
        return f"after `{key}`·`time_scale`"
    return f"after {t:g} s·`time_scale`"


# the fields a topology may set (beyond `preset`)
POLICY_DATA_FIELDS = (
    "selection",
    "connect_timeout_s",
    "response_timeout_s",
    "retries",
    "retry_on",
    "resend_mutations",
    "skip_failed_s",
    "open_connection_error",
    "idle_reconnect_s",
    "groups",
    "key_state_poll_s",
    "key_cache",
    "kmip_version",
)

POLICIES: Catalog[PolicySpec] = Catalog("policy", lambda p: p.name, lambda p: p.position)


def preset(spec: PolicySpec) -> PolicySpec:
    POLICIES.register(spec)
    return spec


def policy_label(data: str | dict[str, Any]) -> str:
    """How a policy in file form is named in tables: the preset, marked when adjusted."""
    if isinstance(data, str):
        return data
    return f"{data.get('preset', 'vcenter')}*"


def preset_of(label: str) -> PolicySpec | None:
    """The preset an operation's recorded policy names (`PolicySpec.label`: the
    preset's name, ``*`` when adjusted), or None for an unknown one."""
    return POLICIES.get(label.removesuffix("*"))


def policy_names() -> tuple[str, ...]:
    return tuple(POLICIES)


def adjusted(base: PolicySpec, **changes: Any) -> PolicySpec:
    """`base` with `changes` (a topology's mapping), named after it."""
    if not changes:
        return base
    return dataclasses.replace(base, preset=base.preset or base.name, **changes)
