"""The fault interface: `inject()` / `heal()`, a context manager that always heals; and
the registry every fault describes itself in.

A fault class says, in its own file, everything the rest of kmschaos needs to know about
it: its `kind` and one-line documentation (`summary`, `client_sees`, `heals`), what it
targets (`target_kind`), its parameters (`parameters`), what one failed attempt on an
affected replica costs a client (`client_wait`: which of a policy's timeouts), what it
needs from a backend (`requires`, with the reason when missing), whether it needs
replication, crashes a replica or cuts sites apart, and whether the matrix runs it.
Defining the class registers it (`FAULTS`); the command line's `inject` options,
`kmschaos faults`, rehearsal validation, the matrix, the failover checker's bound and
the README's fault table all read the registry.

Every fault also proves its effect: `observe` probes it in a way the mechanism that
applied it did not report (a connect through a cut link is refused, a handshake through
a blackholed one gets no answer, the stalled replica's processes are in state T ...;
`harness.faults.probes`), right after `_inject`, retrying briefly while the effect may
still be coming (`observe_within_s`). What it saw is an `Observation` in the history,
which the `fault_effect` checker reads; `proof` says in words what is probed.

A fault records its inject and heal in the history (when given one) and in the state
folder (``faults/<id>.json``), so ``kmschaos heal`` in another process can heal it.
`heal()` is idempotent. `requires` names the cluster capabilities the fault needs;
`check_supported` refuses a fault before a run starts, with the reason. A fault that
needs a replica's process (signals, restart) is refused when it is made, before it
touches anything, if it would act on an external target (`external_refusal`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from harness.catalog import Catalog
from harness.client.policies import Wait
from harness.cluster.base import CAP_RESTART, CAP_SIGNALS, Cluster, ClusterError, ClusterState
from harness.external import external_names
from harness.faults.params import Param
from harness.history import FaultEvent, History, Observation
from harness.store import StateFolder
from harness.wait import WaitTimeout, wait_until

# what a fault's TARGET names: one replica, one site, or groups of sites / replica lists
TargetKind = Literal["replica", "site", "groups", "balancer"]
TARGET_USAGE: dict[str, str] = {
    "replica": "REPLICA",
    "site": "SITE",
    "groups": "GROUP GROUP...",
    "balancer": "BALANCER",
}
# what one failed attempt on an affected replica costs a client, in words
WAIT_WORDS: dict[str | None, str] = {
    "none": "nothing: next server at once",
    "connect": "the policy's connect timeout",
    "response": "the policy's response timeout",
    None: "no failover expected",
}
# a fault event's param: the certificate name the fault's target shows while it is in
# effect (`Fault.recorded_facts`): that name on that replica is no wrong server
SERVES_AS = "serves_as"
# an inject event's param: when `_inject` returned, for a window that opened before
IN_EFFECT_AT = "in_effect_at"
# an inject event's param: when `_inject` began, for a window that opened when it
# returned (a client may meet the fault while the harness still applies it)
INJECTING_FROM = "injecting_from"
# abilities that act on a replica's own process, which an external target does not offer
PROCESS_CAPS = frozenset({CAP_SIGNALS, CAP_RESTART})


class FaultError(RuntimeError):
    """A fault cannot be injected or healed; the message says why."""


class Fault:
    # ---- what the fault is (declared by each fault class) -------------------------
    kind: ClassVar[str] = ""  # registered under this name; "" for abstract bases
    position: ClassVar[int] = 0  # where `kmschaos faults` and the README list it
    summary: ClassVar[str] = ""  # what exactly happens
    client_sees: ClassVar[str] = ""  # what a client sees meanwhile
    heals: ClassVar[str] = ""  # what heal does
    target_kind: ClassVar[TargetKind] = "replica"
    parameters: ClassVar[tuple[Param, ...]] = ()
    # What one failed attempt on an affected replica costs a client before it moves on
    # ("none": refused at once; "connect" / "response": one of the policy's timeouts);
    # None: clients are not expected to fail over (slower, or untouched).
    client_wait: ClassVar[Wait | None] = None
    # A fault only a client with this ability notices (the name of a boolean attribute
    # of `FailoverPolicy`, e.g. "checks_server_name"), and in words what a client without
    # it does not do: the failover checker expects no failover from such a client
    noticed_only_if: ClassVar[str] = ""
    unnoticed_because: ClassVar[str] = ""
    # A fault that slows clients down instead: the parameter whose milliseconds every
    # response through an affected link gains (the slowdown checker's bound)
    adds_delay: ClassVar[str | None] = None
    requires: ClassVar[frozenset[str]] = frozenset()
    replicating: ClassVar[bool] = False  # acts on replication: needs a profile but none
    crashes: ClassVar[bool] = False  # the replica's process dies: what only it held is at risk
    partitions: ClassVar[bool] = False  # cuts sites or replicas apart (site availability)
    in_matrix: ClassVar[bool] = False  # a matrix cell: failover from one replica, no params
    matrix_default: ClassVar[bool] = False  # in the matrix without --faults
    background: ClassVar[bool] = False  # its effect needs a running process (CLI: detached)
    # The fault window starts when `_inject` has returned (the fault is in effect) —
    # except for faults whose whole effect happens inside `_inject` (restart, wipe).
    window_from_start: ClassVar[bool] = False
    # How the harness sees the effect, independently of the mechanism (`observe`), in
    # words: `kmschaos faults`, the README's table
    proof: ClassVar[str] = ""
    # How long the effect may take to show once `_inject` returned: `observe` is
    # retried while it sees no effect, this long at most
    observe_within_s: ClassVar[float] = 0.5

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            FAULTS.register(cls)

    def __init__(
        self,
        cluster: Cluster,
        target: str,
        history: History | None = None,
        fault_id: str | None = None,
        **params: Any,
    ) -> None:
        self.cluster = cluster
        self.target = target
        self.history = history
        self.params = params
        slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:40]
        self.fault_id = fault_id or f"{self.kind}-{slug}-{secrets.token_hex(3)}"
        self.active = False
        self.injected_at: float | None = None
        self.in_effect_at: float | None = None  # when `_inject` returned
        self.healed_at: float | None = None
        self._inject_began: float | None = None
        self.observation: Observation | None = None
        self.check_params()
        self.check_target()
        why = external_refusal(self.kind, self.requires, cluster.state, self.affected_replicas())
        if why:
            raise FaultError(why)

    # ---- to implement -------------------------------------------------------------

    def _inject(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def affected_replicas(self) -> list[str]:
        return [self.target]

    def observe(self) -> tuple[bool | None, str]:
        """Probe the fault's effect now, in a way `_inject` did not report: (True, what
        was seen) when the effect is there, (False, what came back instead) when it is
        not, (None, why) when the probe cannot tell. Cheap: well under a second."""
        return None, f"{self.kind} declares no way to observe its effect"

    def observe_deadline_s(self) -> float:
        """How long `observe` is retried while it sees no effect (`observe_within_s`)."""
        return self.observe_within_s

    def _remember(self) -> None:
        """Note, just before `_inject`, what `observe` compares with afterwards (the
        process that ran before a restart, a witness of the store before a wipe)."""

    def _forget(self) -> None:
        """Let go of what `_remember` holds (files, marks), once observed."""

    def check_params(self) -> None:
        """Every declared parameter: present when required, of its unit when given.
        Values a fault does not declare (set by the harness itself) are its own business."""
        for p in self.parameters:
            value = self.params.get(p.name)
            if value is None:
                if p.required:
                    raise FaultError(p.missing(self.kind))
                continue
            why = p.check(self.kind, value)
            if why:
                raise FaultError(why)

    def param(self, name: str) -> Any:
        """A declared parameter's value, or its default."""
        value = self.params.get(name)
        if value is not None:
            return value
        return next(p.default for p in self.parameters if p.name == name)

    def check_target(self) -> None:
        if self.target not in self.cluster.state.replicas:
            known = ", ".join(self.cluster.state.replicas)
            raise FaultError(f"{self.kind}: unknown replica {self.target!r} (known: {known})")

    # ---- lifecycle ------------------------------------------------------------------

    @classmethod
    def unsupported_reason(cls, cluster: Cluster) -> str | None:
        missing = cls.requires - cluster.capabilities
        if not missing:
            return None
        return cls._explain_missing(cluster, missing)

    @classmethod
    def _explain_missing(cls, cluster: Cluster, missing: frozenset[str]) -> str:
        return (
            f"fault '{cls.kind}' needs {', '.join(sorted(missing))}, which the "
            f"{cluster.state.backend} backend here lacks"
        )

    def inject(self) -> Fault:
        reason = self.unsupported_reason(self.cluster)
        if reason:
            raise FaultError(reason)
        if self.active:
            return self
        self._persist()
        started = self._inject_began = time.monotonic()
        try:
            with contextlib.suppress(Exception):  # a witness never stops the fault
                self._remember()
            self._inject()
        except BaseException:
            with contextlib.suppress(Exception):
                self._forget()
            with contextlib.suppress(Exception):
                self._heal()
            self._unpersist()
            raise
        in_effect = self.in_effect_at = time.monotonic()
        self.injected_at = started if self.window_from_start else in_effect
        self.active = True
        self._persist()  # again: `extra()` may name what `_inject` started
        self._record("inject", self.injected_at, in_effect)
        self._observe()
        return self

    def _observe(self) -> Observation:
        """`observe`, retried while it sees no effect for `observe_within_s` at most;
        what it saw last is recorded (history) and kept (`observation`). A probe that
        crashes says "could not tell", never breaks the fault."""
        last: list[tuple[bool | None, str]] = []

        def seen() -> bool:
            try:
                last.append(self.observe())
            except Exception as e:  # noqa: BLE001 - an observation never breaks a fault
                last.append((None, f"the probe of {self.kind} crashed: {e!r}"))
            return last[-1][0] is not False

        within = self.observe_deadline_s()
        try:
            with contextlib.suppress(WaitTimeout):
                wait_until(seen, within, f"{self.kind}'s effect", poll_s=0.05)
        finally:
            with contextlib.suppress(Exception):
                self._forget()
        effect, detail = last[-1]
        if effect is False and len(last) > 1:
            detail += f" (probed {len(last)} times in {within:g} s)"
        self.observation = Observation(
            self.fault_id, self.kind, self.target, time.monotonic(), effect, detail
        )
        if self.history is not None:
            self.history.append(self.observation)
        return self.observation

    def heal(self) -> None:
        if not self.active:
            return
        # the window ends when healing begins: from then on the fault is not guaranteed
        started = time.monotonic()
        try:
            self._heal()
        finally:
            self.active = False
            self.healed_at = started
            self._record("heal", self.healed_at)
            self._unpersist()

    def __enter__(self) -> Fault:
        try:
            return self.inject()
        except BaseException:
            self.heal()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.heal()

    # ---- records --------------------------------------------------------------------

    def _record(self, phase: str, t: float, in_effect: float | None = None) -> None:
        """A history event; an inject whose window opened when `_inject` began also
        says when `_inject` returned (``in_effect_at``: every part of its effect in
        place, e.g. sessions closed and then handshakes stalled)."""
        if self.history is None:
            return
        when: dict[str, float] = {}
        if in_effect is not None and in_effect != t:
            when[IN_EFFECT_AT] = in_effect
        if phase == "inject" and self._inject_began is not None and self._inject_began < t:
            when[INJECTING_FROM] = self._inject_began
        self.history.append(
            FaultEvent(
                fault_id=self.fault_id,
                phase=phase,  # type: ignore[arg-type]
                kind=self.kind,
                target=self.target,
                t=t,
                params={
                    **self.params,
                    "replicas": self.affected_replicas(),
                    **self.recorded_facts(),
                    **when,
                },
            )
        )

    def record(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "kind": self.kind,
            "target": self.target,
            "params": self.params,
            "injected_at": self.injected_at,
            "pid": os.getpid(),
            "extra": self.extra(),
        }

    def recorded_facts(self) -> dict[str, Any]:
        """Facts about the fault's effect that checkers read from its history events,
        beside its parameters: e.g. ``serves_as``, the certificate name its target
        shows while injected (`harness.checkers.identity`)."""
        return {}

    def extra(self) -> dict[str, Any]:
        """Anything another process needs to heal this fault."""
        return {}

    def restore(self, extra: dict[str, Any]) -> None:
        """Take back what `extra()` saved (in the healing process)."""

    def _record_path(self) -> Path:
        return StateFolder(Path(self.cluster.state.state_dir)).fault(self.fault_id)

    def _persist(self) -> None:
        path = self._record_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record(), indent=2))
        os.replace(tmp, path)

    def _unpersist(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._record_path().unlink()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fault_id} active={self.active}>"


def active_fault_records(state_dir: Path) -> list[dict[str, Any]]:
    d = StateFolder(state_dir).faults
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return out


def external_refusal(
    kind: str, requires: frozenset[str], state: ClusterState, replicas: list[str]
) -> str:
    """Why a fault cannot act on `replicas` ("" if it can): a fault that needs a
    replica's process cannot act on an external target (a KMS kmschaos does not run)."""
    if not requires & PROCESS_CAPS:
        return ""
    ext = sorted(external_names(state) & set(replicas))
    if not ext:
        return ""
    usable = ", ".join(
        k for k, c in FAULTS.items() if not c.requires & PROCESS_CAPS and not c.replicating
    )
    return (
        f"{kind}: {', '.join(ext)} is an external target: kmschaos does not run its process, "
        f"so it cannot freeze, kill, restart or wipe it; use a link fault ({usable})"
    )


# ---- the registry ------------------------------------------------------------------------


class FaultRegistry(Catalog[type[Fault]]):
    """Every fault class by kind, in `position` order. A fault class with a `kind`
    registers itself when it is defined; `harness.faults` imports every module of the
    package, so a new fault is one new file."""

    def __init__(self) -> None:
        super().__init__("fault", lambda c: c.kind, lambda c: c.position)

    def get_class(self, kind: str) -> type[Fault]:
        """The class of `kind`, or `FaultError` naming the known kinds."""
        try:
            return self.known(kind)
        except KeyError as e:
            raise FaultError(e.args[0]) from None

    def matrix_kinds(self, *, default_only: bool = False) -> tuple[str, ...]:
        """Faults the matrix runs (`in_matrix`), or only those it runs by default."""
        return tuple(
            k for k, c in self.items() if c.in_matrix and (c.matrix_default or not default_only)
        )

    def all_parameters(self) -> dict[str, list[tuple[str, Param]]]:
        """Every parameter name with the faults that take it: one command-line option each."""
        out: dict[str, list[tuple[str, Param]]] = {}
        for kind, cls in self.items():
            for p in cls.parameters:
                out.setdefault(p.name, []).append((kind, p))
        return out


FAULTS = FaultRegistry()


def usage(cls: type[Fault]) -> str:
    """How a fault is written on the command line after its name: ``REPLICA --ms N``."""
    parts = [TARGET_USAGE[cls.target_kind], *(p.usage() for p in cls.parameters)]
    return " ".join(parts)


def fault_table() -> str:
    """The README's fault table (markdown), from the faults' own descriptions."""
    lines = [
        "| fault | what exactly happens | a client sees | a failed attempt costs | heal "
        "| its effect is seen by |",
        "|---|---|---|---|---|---|",
    ]
    for kind, cls in FAULTS.items():
        cells = [
            f"`{kind} {usage(cls)}`",
            cls.summary,
            cls.client_sees,
            WAIT_WORDS[cls.client_wait],
            cls.heals,
            cls.proof or "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = [
    "FAULTS",
    "ClusterError",
    "Fault",
    "FaultError",
    "FaultRegistry",
    "TARGET_USAGE",
    "WAIT_WORDS",
    "TargetKind",
    "active_fault_records",
    "external_refusal",
    "fault_table",
    "usage",
]
