"""The history: typed, append-only events, persisted as JSON lines.

Times are `time.monotonic()` seconds (one clock for every process on the machine, so a
fault injected by the CLI and an operation of a test line up). The first line of a
history file is a header that anchors monotonic time to wall-clock time.

Operations are recorded Jepsen-style: an `invoke` event when a client starts an
operation and a `complete` event when it ends, with every attempt the failover policy
made. A completion's outcome is `ok`, `fail` (it certainly did not take effect) or
`info` (unknown: a request was sent and no answer came, so a Create may have run).

An attempt refused for its protocol version (`version-refused`: the server answered, but
does not speak the KMIP version in the request header) is a failed attempt, not a final
answer: the request certainly did not run, and a client that cannot talk to one server
tries the next (the walking engine moves on at once; PyKMIP's own client raises it to
its caller, as it does every KMIP failure). Every other KMIP failure (`kmip-error`) is
the server's answer and ends the operation.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

OpOutcome = Literal["ok", "fail", "info"]
# the client name of an operator's operations run directly on a replica (`harness.admin`)
ADMIN_CLIENT = "admin"

# Attempt outcomes: what one try against one server ended with.
ATTEMPT_OUTCOMES = (
    "ok",  # the server answered with success
    "refused",  # TCP connect refused (RST to SYN)
    "reset",  # connection reset by peer after connect
    "eof",  # connection closed by peer (e.g. Toxiproxy with a dead upstream)
    "connect-timeout",  # no answer to SYN within the connect timeout
    "timeout",  # connected, but no answer within the response timeout
    "tls-error",  # TLS handshake failed (bad certificate, protocol error)
    "kmip-error",  # the server answered with a KMIP failure (e.g. item not found)
    # the server answered that it does not speak the request's KMIP protocol version
    # (PyKMIP: Operation Failed, Invalid Message, "KMIP 1.1 is not supported by the
    # server."); the request did not run, and the walking engine tries the next server
    "version-refused",
    "error",  # anything else; `detail` says what
)


@dataclass
class Attempt:
    """One try of one operation against one server."""

    server: str
    address: str
    start: float
    end: float
    outcome: str
    detail: str = ""
    reused: bool = False  # sent on a connection opened by an earlier operation
    # who answered: the subject (CN) of the certificate the server showed; None when no
    # TLS session was made (refused, timed out before the handshake)
    identity: str | None = None
    # the request was written to the connection: it may have reached the server (a
    # mutation may have run there even though this attempt failed)
    sent: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Invoke:
    op_id: str
    client: str
    op: str
    t: float
    key: str | None = None
    type: Literal["invoke"] = "invoke"


@dataclass
class Complete:
    op_id: str
    client: str
    policy: str
    op: str
    start: float
    end: float
    outcome: OpOutcome
    served_by: str | None = None
    key: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    error: str = ""
    digest: str | None = None  # sha256 of key material returned by a Get
    name: str | None = None  # the Name a Create gave its key, or the one a rename set
    # served from the client's key cache, without the KMS (no attempts)
    cached: bool = False
    type: Literal["complete"] = "complete"

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class FaultEvent:
    fault_id: str
    phase: Literal["inject", "heal"]
    kind: str
    target: str
    t: float
    params: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    type: Literal["fault"] = "fault"


@dataclass
class Note:
    """A free-form marker (scenario phase, readiness) for the timeline."""

    t: float
    text: str
    type: Literal["note"] = "note"


@dataclass
class Snapshot:
    """What one replica holds at one moment, read by the harness's auditor over KMIP
    (direct to the replica, not through a link). Audits run in numbered rounds; a round
    reads every replica once. `objects` maps a unique identifier to
    ``{"digest": sha256 hex of the key material or None, "state": "ACTIVE" | ...,
    "names": [its KMIP Names, in index order]}`` ("names" is absent from snapshots
    written before audits read names, and from hand-built ones that do not care)."""

    t: float
    replica: str
    round: int
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    ok: bool = True
    error: str = ""
    # who answered: the subject (CN) of the server's certificate, and the certificate's
    # sha256 fingerprint (two replicas showing one certificate may be one server)
    identity: str | None = None
    fingerprint: str | None = None
    type: Literal["snapshot"] = "snapshot"


@dataclass
class Observation:
    """What the harness saw of a fault's effect, independently of the mechanism that
    applied it (a probe through the link, the process state, the store): `effect` True
    when the effect was seen, False when the probe found none, None when it could not
    tell; `detail` says what was probed and what came back."""

    fault_id: str
    kind: str
    target: str
    t: float
    effect: bool | None
    detail: str = ""
    type: Literal["observation"] = "observation"


@dataclass
class ClientEvent:
    """A client instance (`client`, `worker`) started, stopped or restarted (a lifecycle
    step), or stopped itself (`detail` says why). A restart forgets what the client
    learned: its open connection, the server it chose at start, the servers it avoids."""

    t: float
    client: str
    worker: int
    action: Literal["start", "stop", "restart"]
    detail: str = ""
    type: Literal["client"] = "client"


@dataclass
class BalancerEvent:
    """A load balancer's view of one of its servers changed (or was first read): its
    HAProxy `status` (UP, DOWN, ``UP 1/3`` going down, ``DOWN 1/2`` coming back), the
    last health check's status and description, and the connections HAProxy had given
    it in all (`sessions`), read from its stats socket at `t`."""

    t: float
    balancer: str
    server: str
    status: str
    check: str = ""
    detail: str = ""
    sessions: int = 0
    type: Literal["balancer"] = "balancer"

    @property
    def in_rotation(self) -> bool:
        """HAProxy gives it new connections (UP, or UP and going down)."""
        return self.status.startswith("UP")


Event = Invoke | Complete | FaultEvent | Note | Snapshot | Observation | ClientEvent | BalancerEvent


def event_to_dict(e: Event) -> dict[str, Any]:
    return asdict(e)


def event_from_dict(d: dict[str, Any]) -> Event:
    kind = d.get("type")
    body = {k: v for k, v in d.items() if k != "type"}
    if kind == "invoke":
        return Invoke(**body)
    if kind == "complete":
        body["attempts"] = [Attempt(**a) for a in body.get("attempts", [])]
        return Complete(**body)
    if kind == "fault":
        return FaultEvent(**body)
    if kind == "note":
        return Note(**body)
    if kind == "snapshot":
        return Snapshot(**body)
    if kind == "observation":
        return Observation(**body)
    if kind == "client":
        return ClientEvent(**body)
    if kind == "balancer":
        return BalancerEvent(**body)
    raise ValueError(f"unknown event type {kind!r}")


class History:
    """An append-only, thread-safe list of events, optionally mirrored to a JSONL file."""

    def __init__(self, path: Path | None = None, meta: dict[str, Any] | None = None) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self.path = path
        self.meta = dict(meta or {})
        self.meta.setdefault("wall", time.time())
        self.meta.setdefault("mono", time.monotonic())
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
            self._file.write(json.dumps({"type": "header", **self.meta}) + "\n")
            self._file.flush()

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            if self._file is not None:
                self._file.write(json.dumps(event_to_dict(event)) + "\n")
                self._file.flush()

    def extend(self, events: Iterable[Event]) -> None:
        for e in events:
            self.append(e)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def completes(self) -> list[Complete]:
        return [e for e in self.events() if isinstance(e, Complete)]

    def faults(self) -> list[FaultEvent]:
        return [e for e in self.events() if isinstance(e, FaultEvent)]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    @classmethod
    def load(cls, path: Path) -> History:
        h = cls()
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e.msg}") from None
                if d.get("type") == "header":
                    h.meta = {k: v for k, v in d.items() if k != "type"}
                    continue
                h._events.append(event_from_dict(d))
        return h
