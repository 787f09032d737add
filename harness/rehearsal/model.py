"""The rehearsal model: a `Rehearsal` is a topology, an optional workload and a tuple of
typed steps (`WaitStep`, `InjectStep`, `HealStep`, `ExpectStep` with its
`Expectation`s, `RunStep`, `CheckpointStep`, `RandomStep`, `CertificatesStep`, the
`ClientStep`s `RestartClientStep`, `StopClientStep`, `StartClientStep`, `AdminStep`), each
knowing its index and file line. Built only by the validator
(`harness.rehearsal.validate`); run by `harness.rehearsal.run`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.checkers import CHECKERS, Bound
from harness.rehearsal.fileformat import DEFAULT_RUN_TIMEOUT_S, OLD_CA
from harness.rehearsal.schedule import Draw, describe_fault, draw_faults
from harness.scenario import FAILOVER_MIX
from harness.topology import Topology
from harness.yamlfile import format_duration


@dataclass(frozen=True)
class WorkloadSpec:
    clients: tuple[str, ...]
    rate_per_s: float = 20.0
    ops: dict[str, float] = field(default_factory=lambda: dict(FAILOVER_MIX))
    policy: str | None = None
    per_client: int = 1


@dataclass(frozen=True)
class FaultSpec:
    """One fault as `harness.faults.make_fault` takes it."""

    kind: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return describe_fault(self.kind, self.target, self.params)


@dataclass(frozen=True, kw_only=True)
class Step:
    index: int
    line: int
    kind: ClassVar[str] = ""

    @property
    def path(self) -> str:
        return f"steps[{self.index}]"

    def describe(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class WaitStep(Step):
    kind: ClassVar[str] = "wait"
    seconds: float

    def describe(self) -> str:
        return f"wait {format_duration(self.seconds)}"


@dataclass(frozen=True, kw_only=True)
class InjectStep(Step):
    kind: ClassVar[str] = "inject"
    faults: tuple[FaultSpec, ...]
    name: str | None = None

    def describe(self) -> str:
        named = f" as {self.name}" if self.name else ""
        return "inject " + ", ".join(f.describe() for f in self.faults) + named


@dataclass(frozen=True, kw_only=True)
class HealStep(Step):
    kind: ClassVar[str] = "heal"
    names: tuple[str, ...] | None  # None: every fault the rehearsal injected

    def describe(self) -> str:
        return "heal " + ("all" if self.names is None else ", ".join(self.names))


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """One checker with its expected status and bounds (`within_s` etc. when given)."""

    checker: str
    want: str
    line: int
    path: str
    client: str | None = None
    within_s: float | None = None
    to_site: str | None = None
    to_replica: str | None = None
    fault: str | None = None  # the `as` name of the fault judged (failover)
    fault_step: int | None = None  # the inject step of that fault (failover)
    min_ok_share: float | None = None
    max_gap_s: float | None = None
    others: dict[str, Any] = field(default_factory=dict)  # bounds of other checkers

    @property
    def bounds(self) -> dict[str, Any]:
        """Every bound given, by the name the checker takes it under (`Bound.into`)."""
        named = {b.into: getattr(self, b.into, None) for b in _bounds_of(self.checker)}
        return {k: v for k, v in {**named, **self.others}.items() if v is not None}

    @property
    def bounded(self) -> bool:
        """Whether the expectation asks more than a status (a client, fault, time...)."""
        return bool(self.bounds)

    def describe(self) -> str:
        parts = [f"{self.checker} {self.want}"]
        given = self.bounds
        for b in _bounds_of(self.checker):
            if b.into in given:
                v = given[b.into]
                shown = format_duration(v) if b.kind == "duration" else v
                parts.append(f"{b.key}={shown}")
        return " ".join(parts)


def _bounds_of(checker: str) -> tuple[Bound, ...]:
    found = CHECKERS.get(checker)
    return found.expectations if found is not None else ()


EXPECTATION_FIELDS = frozenset(  # the bounds `Expectation` has a field for
    ("client", "within_s", "to_site", "to_replica", "fault", "min_ok_share", "max_gap_s")
)


@dataclass(frozen=True, kw_only=True)
class ExpectStep(Step):
    kind: ClassVar[str] = "expect"
    expectations: tuple[Expectation, ...]

    def describe(self) -> str:
        return "expect " + "; ".join(e.describe() for e in self.expectations)


@dataclass(frozen=True, kw_only=True)
class RunStep(Step):
    kind: ClassVar[str] = "run"
    command: str
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    expect_exit: int | None = 0  # None: any exit status

    def describe(self) -> str:
        return f"run {self.command!r}"


@dataclass(frozen=True, kw_only=True)
class CheckpointStep(Step):
    kind: ClassVar[str] = "checkpoint"
    message: str

    def describe(self) -> str:
        return f"checkpoint: {self.message}"


@dataclass(frozen=True, kw_only=True)
class RandomStep(Step):
    """`count` faults drawn from `faults` × `targets`, each injected, held, healed, then
    a gap; holds and gaps are fixed or drawn from [lo, hi]."""

    kind: ClassVar[str] = "random"
    faults: tuple[str, ...]
    targets: tuple[str, ...]
    count: int
    hold_s: tuple[float, float]
    gap_s: tuple[float, float] = (0.0, 0.0)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def draw(self, rng: random.Random) -> list[Draw]:
        return draw_faults(
            rng,
            faults=self.faults,
            targets=self.targets,
            count=self.count,
            hold_s=self.hold_s,
            gap_s=self.gap_s,
            params=self.params,
        )

    def describe(self) -> str:
        return f"random {self.count} of {', '.join(self.faults)} on {', '.join(self.targets)}"


@dataclass(frozen=True, kw_only=True)
class CertificatesStep(Step):
    """A planned operator action on the cluster's certificates (`CERT_ACTIONS`), with
    the defaults resolved by the validator: `ca` the CA that issues or expires,
    `cas` the CAs trusted, `replicas` in the order they are rotated."""

    kind: ClassVar[str] = "certificates"
    action: str
    ca: str = OLD_CA
    cas: tuple[str, ...] = ()
    replicas: tuple[str, ...] = ()
    gap_s: float = 0.0

    def describe(self) -> str:
        if self.action == "trust":
            return f"certificates: trust {' + '.join(self.cas)}"
        if self.action == "rotate-server-cert":
            gap = f", {format_duration(self.gap_s)} apart" if self.gap_s else ""
            return (
                f"certificates: rotate-server-cert {', '.join(self.replicas)} from the "
                f"{self.ca} CA{gap}"
            )
        if self.action in ("rotate-client-cert", "expire-ca"):
            return f"certificates: {self.action} ({self.ca} CA)"
        return f"certificates: {self.action}"


@dataclass(frozen=True, kw_only=True)
class ClientStep(Step):
    """A lifecycle action on every instance of a workload client (`CLIENT_STEPS`)."""

    client: str

    def describe(self) -> str:
        return f"{self.kind} {self.client}"


@dataclass(frozen=True, kw_only=True)
class RestartClientStep(ClientStep):
    kind: ClassVar[str] = "restart-client"


@dataclass(frozen=True, kw_only=True)
class StopClientStep(ClientStep):
    kind: ClassVar[str] = "stop-client"


@dataclass(frozen=True, kw_only=True)
class StartClientStep(ClientStep):
    kind: ClassVar[str] = "start-client"


CLIENT_STEP_TYPES: dict[str, type[ClientStep]] = {
    t.kind: t for t in (RestartClientStep, StopClientStep, StartClientStep)
}


@dataclass(frozen=True, kw_only=True)
class AdminStep(Step):
    """An administrator's KMIP operation (`harness.admin.ADMIN_OPS`) on `replica`
    directly; `key` a uid or ``master-of CLIENT`` (then `client` is that client)."""

    kind: ClassVar[str] = "admin"
    op: str
    replica: str
    key: str
    client: str | None = None

    def describe(self) -> str:
        return f"admin {self.op} {self.key} on {self.replica}"


@dataclass(frozen=True, kw_only=True)
class Rehearsal:
    name: str
    source: str  # the file as messages name it
    path: Path | None
    topology: Topology
    topology_path: Path
    workload: WorkloadSpec | None
    steps: tuple[Step, ...]
    seed: int | None = None
    description: str = ""

    def fault_kinds(self) -> list[str]:
        """Every fault the rehearsal may inject (for skipping where one cannot run)."""
        kinds: list[str] = []
        for s in self.steps:
            if isinstance(s, InjectStep):
                kinds += [f.kind for f in s.faults]
            elif isinstance(s, RandomStep):
                kinds += list(s.faults)
        return list(dict.fromkeys(kinds))

    def schedule(self, seed: int) -> dict[int, list[Draw]]:
        """The faults every `random` step will inject, drawn with `random.Random(seed)`
        in step order: the same seed gives the same schedule."""
        rng = random.Random(seed)
        return {s.index: s.draw(rng) for s in self.steps if isinstance(s, RandomStep)}
